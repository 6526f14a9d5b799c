"""The one parameter schema: defaults, ranges, and clear errors for every bad value."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings, strategies as st

from hunyuan_custom.pipelines import schema
from hunyuan_custom.pipelines.schema import LOCAL, REMOTE, ParameterError


def test_defaults_and_ranges_are_wavespeeds():
    f = schema.FIELDS
    assert f["prompt"].default == "" and f["prompt"].multiline
    assert f["negative_prompt"].default == ""
    assert f["size"].default == "1280*720"
    assert set(schema.REMOTE_SIZES) == {"1280*720", "720*1280", "832*480", "480*832"}
    assert {"960*544", "544*960", "896*512", "512*896"} <= set(f["size"].options)
    assert (f["guidance_scale"].default, f["guidance_scale"].min, f["guidance_scale"].max) == (7.5, 1.0, 10.0)
    assert (f["flow_shift"].default, f["flow_shift"].min, f["flow_shift"].max) == (13.0, 1.0, 20.0)
    assert (f["seed"].default, f["seed"].min, f["seed"].max) == (-1, -1, 9_999_999_999)
    assert f["enable_safety_checker"].default is True and f["enable_safety_checker"].backends == (REMOTE,)
    assert f["num_frames"].default == 129 and f["num_frames"].backends == (LOCAL,)
    assert f["steps"].default == 30 and f["steps"].backends == (LOCAL,)
    assert f["subject"].default == "object"


def test_validate_fills_defaults_per_backend():
    local = schema.validate({"prompt": "a cat"}, LOCAL)
    assert local["size"] == "1280*720" and local["num_frames"] == 129 and "enable_safety_checker" not in local
    remote = schema.validate({"prompt": "a cat"}, REMOTE)
    assert remote["enable_safety_checker"] is True and "steps" not in remote


@pytest.mark.parametrize("size", ["1280*720", "720*1280", "832*480", "480*832"])
def test_remote_sizes_accepted_everywhere(size):
    assert schema.check_value("size", size, REMOTE) == size
    assert schema.check_value("size", size, LOCAL) == size


def test_local_accepts_any_multiple_of_16_and_remote_lists_what_it_accepts():
    assert schema.parse_size("960*544", LOCAL) == (960, 544)
    assert schema.parse_size("48*80", LOCAL) == (48, 80)
    with pytest.raises(ParameterError) as e:
        schema.parse_size("960*544", REMOTE)
    for s in schema.REMOTE_SIZES:
        assert s in str(e.value)
    with pytest.raises(ParameterError, match="multiples of 16"):
        schema.parse_size("1000*720", LOCAL)


def test_remote_model_follows_size():
    assert schema.remote_model_for_size("720*1280").endswith("ref2v-720p")
    assert schema.remote_model_for_size("832*480").endswith("ref2v-480p")


def test_empty_prompt_refused():
    with pytest.raises(ParameterError, match="prompt"):
        schema.validate({"prompt": "   "}, LOCAL)


def test_seed_resolution():
    assert schema.resolve_seed(42) == 42
    s = schema.resolve_seed(-1)
    assert 0 <= s <= schema.SEED_MAX


# Property-based: any value outside a numeric field's range or of the wrong type is refused
# with a message that names the field and the value.
NUMERIC = ["guidance_scale", "flow_shift", "seed", "num_frames", "steps"]


@settings(max_examples=200, deadline=None)
@given(name=st.sampled_from(NUMERIC), value=st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(min_value=-10**12, max_value=10**12),
    st.text(max_size=5), st.booleans(), st.none(), st.lists(st.integers(), max_size=2)))
def test_bad_numbers_are_refused_with_the_field_name(name, value):
    f = schema.FIELDS[name]
    ok_type = isinstance(value, (int, float)) and not isinstance(value, bool)
    if f.kind == "INT":
        ok_type = ok_type and (isinstance(value, int) or (math.isfinite(value) and float(value).is_integer()))
    ok = ok_type and math.isfinite(value) and f.min <= value <= f.max
    if name == "num_frames" and ok:
        ok = (int(value) - 1) % 4 == 0 or value == 0  # 0: as long as the audio or the source
    if ok:
        assert schema.check_value(name, value, LOCAL) == value
    else:
        with pytest.raises(ParameterError) as e:
            schema.check_value(name, value, LOCAL)
        assert name in str(e.value)
        assert e.value.field == name


@settings(max_examples=200, deadline=None)
@given(w=st.integers(-100, 5000), h=st.integers(-100, 5000))
def test_sizes_property(w, h):
    text = f"{w}*{h}"
    ok = 16 <= w <= 4096 and 16 <= h <= 4096 and w % 16 == 0 and h % 16 == 0
    if ok:
        assert schema.parse_size(text, LOCAL) == (w, h)
    else:
        with pytest.raises(ParameterError, match="size"):
            schema.parse_size(text, LOCAL)
    if text not in schema.REMOTE_SIZES:
        with pytest.raises(ParameterError, match="WaveSpeed accepts"):
            schema.parse_size(text, REMOTE)


@settings(max_examples=100, deadline=None)
@given(value=st.one_of(st.text(max_size=12), st.integers(), st.none()))
def test_garbage_sizes_refused(value):
    if isinstance(value, str) and value.replace(" ", "") in {"1280*720", "720*1280", "832*480", "480*832"}:
        return
    with pytest.raises(ParameterError) as e:
        schema.check_value("size", value, REMOTE)
    assert "size" in str(e.value)


def test_boolean_field_refuses_non_booleans():
    with pytest.raises(ParameterError, match="enable_safety_checker"):
        schema.validate({"prompt": "x", "enable_safety_checker": "yes"}, REMOTE)


def test_unknown_and_wrong_backend_fields():
    with pytest.raises(ParameterError, match="not a HunyuanCustom parameter"):
        schema.validate({"prompt": "x", "cfg": 3}, LOCAL)
    with pytest.raises(ParameterError, match="steps"):
        schema.validate({"prompt": "x", "steps": 30}, REMOTE, names=["steps"])
