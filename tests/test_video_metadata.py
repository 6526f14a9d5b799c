"""mp4 tag text survives the FFMETADATA escape/unescape round trip, whatever it holds."""

from __future__ import annotations

import json

from hypothesis import given, settings, strategies as st

from hunyuan_custom.pipelines.media import video_io
from hunyuan_custom.pipelines.media.metadata_scrub import REDACTED, scrub

keys = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=12)
values = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\0\r"), max_size=200)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(keys, values, min_size=1, max_size=4))
def test_ffmetadata_escape_round_trip(tags):
    text = ";FFMETADATA1\n" + "".join(
        f"{video_io._ffmetadata_escape(k)}={video_io._ffmetadata_escape(v)}\n" for k, v in tags.items())
    parsed = video_io.parse_ffmetadata(text)
    assert parsed == tags


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(json_values, st.text(min_size=8, max_size=16).filter(lambda s: "<" not in s and any(c.isalpha() for c in s)))
def test_scrub_leaves_no_secret_anywhere(value, secret):
    wrapped = {"a": value, "b": [secret, f"x{secret}y"], "nested": {"api_key": "short", "k": {"v": secret}}}
    cleaned = scrub(wrapped, secrets=[secret])
    assert secret not in json.dumps(cleaned, ensure_ascii=False)
    assert cleaned["nested"]["api_key"] == REDACTED


def test_tags_survive_a_real_file_and_sections_end_the_global_tags(tmp_path):
    import torch

    tags = {"workflow": json.dumps({"a": "x=y;z#w", "b": "[1]\n\\"}), "[k]": "[v]", ";c": "#d", "big": "x" * 200_000}
    path = video_io.write_video(tmp_path / "t.mp4", torch.rand(2, 16, 16, 3), fps=25, metadata=tags)
    back = video_io.read_metadata(path)
    assert {k: back.get(k) for k in tags} == tags
    assert video_io.parse_ffmetadata(";FFMETADATA1\n# note\na=1\n[STREAM]\nb=2\n") == {"a": "1"}
