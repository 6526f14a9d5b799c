"""Upstream's LLaVA/CLIP strings and attention-mask rules against prompt_template/prompt_template.json.

Every length (tokenizer max length, crop, image ones) is read from the fixture, never assumed.
"""

from __future__ import annotations

import json

import pytest

from conftest import FIXTURES
from hunyuan_custom.pipelines.text_encoders import prompt_template as pt

FIXTURE_COPY = FIXTURES / "reference"  # our copy, not HYC_REFERENCE_DIR


@pytest.fixture(scope="module")
def spec(reference_dir):
    return json.loads((reference_dir / "prompt_template" / "prompt_template.json").read_text())


def _lengths(spec, encode_outputs):
    """(tokenizer max length, crop_start, image ones) as the fixture states them."""
    max_length = encode_outputs["tokenizer_mask_len"]
    crop_start = spec["crop_start"]
    image_extra = encode_outputs["encode_mask_len"] - (max_length - crop_start)
    assert image_extra > 0
    return max_length, crop_start, image_extra


def test_parity_template_constant_is_upstreams(spec):
    # Our constant IS upstream's "li-dit-encode-video" template.
    if spec["template_name"] == "li-dit-encode-video":
        assert pt.LLAVA_VIDEO_TEMPLATE == spec["template"]
    assert pt.template_prefix(spec["template"]) + "{}" + "<|eot_id|>" == spec["template"]


def test_parity_llava_strings(spec):
    # Every case the fixture holds (a fixture set may have more or fewer than this one).
    assert spec["strings"], "prompt_template.json has no string cases"
    for index, case in enumerate(spec["strings"]):
        inputs, expected = case["inputs"], case["llava_tokenizer_inputs"]
        # With the fixture's template and with the built-in constant: both must give upstream's string.
        templates = [spec["template"]] + ([pt.LLAVA_VIDEO_TEMPLATE] if spec["template_name"] == "li-dit-encode-video" else [])
        for template in templates:
            label = f"strings[{index}] {inputs['prompt']!r}"
            assert pt.build_llava_text(inputs["prompt"], inputs["name"], template) == expected["positive"], label
            assert pt.build_llava_text(inputs["negative_prompt"], pt.NEGATIVE_SUBJECT, template) == expected["negative"], label
        # CLIP gets the raw texts.
        assert case["clip_tokenizer_inputs"] == {"positive": inputs["prompt"], "negative": inputs["negative_prompt"]}


def test_parity_fixture_has_every_string_case(spec):
    assert len(spec["strings"]) >= 1 and len(spec["mask_examples"]) >= 1


def _check_example(spec, example):
    counts = example["stub_token_counts_incl_template"]
    rows = {}
    for side in ("positive", "negative"):
        out = example["encode_outputs"][side]
        max_length, crop_start, image_extra = _lengths(spec, out)
        n = counts[side]
        tok = pt.tokenizer_mask(n, max_length)
        assert tok.shape[1] == out["tokenizer_mask_len"] and int(tok.sum()) == out["tokenizer_mask_sum"]
        mask = pt.encode_mask(n, max_length, image_extra, crop_start)
        assert mask.shape[1] == out["encode_mask_len"] == out["encode_hidden_len"]
        assert pt.run_lengths(mask) == out["encode_mask_rle"]
        # The composed steps agree with the one-call helper.
        stepwise = pt.crop_template(pt.append_image_ones(tok, image_extra), crop_start)
        assert stepwise.equal(mask)
        rows[side] = (mask, image_extra)
    neg_mask, image_extra = rows["negative"]
    uncond = pt.cfg_negative_mask(neg_mask, image_extra)
    cond = rows["positive"][0]
    expected = example["transformer_text_mask_rle"]
    assert pt.run_lengths(uncond) == expected["row0_uncond"]
    assert pt.run_lengths(cond) == expected["row1_cond"]
    assert [int(uncond.sum()), int(cond.sum())] == example["transformer_text_mask_sums"]
    assert (int(neg_mask.sum()) > image_extra) == example["negative_rewrite_applied"]


def test_parity_mask_examples(spec):
    # Whatever cases a set holds pass on their numbers; which cases our copy covers is checked below.
    examples = spec["mask_examples"]
    for index, example in enumerate(examples):
        try:
            _check_example(spec, example)
        except AssertionError as exc:
            raise AssertionError(f"mask_examples[{index}] {example['stub_token_counts_incl_template']}: {exc}") from exc
    sums = [e["encode_outputs"]["negative"]["tokenizer_mask_sum"] for e in examples]
    assert min(sums) >= spec["crop_start"]


def test_our_fixture_copy_covers_the_mask_edge_cases():
    # A property of the copy in tests/fixtures (whatever HYC_REFERENCE_DIR says): it must exercise the
    # edge cases the mask rules single out, so that the parity test above proves them.
    examples = json.loads((FIXTURE_COPY / "prompt_template" / "prompt_template.json").read_text())["mask_examples"]
    assert any(_full_length(e) for e in examples), "no truncation (full-length) example"
    assert any(not e["negative_rewrite_applied"] for e in examples), "no no-rewrite example"


def test_a_valid_set_without_a_truncation_example_passes_parity():
    spec = json.loads((FIXTURE_COPY / "prompt_template" / "prompt_template.json").read_text())
    spec["mask_examples"] = [e for e in spec["mask_examples"] if not _full_length(e)]
    assert spec["mask_examples"]
    test_parity_mask_examples(spec)


def _full_length(example) -> bool:
    positive = example["encode_outputs"]["positive"]
    return positive["tokenizer_mask_sum"] == positive["tokenizer_mask_len"]


def test_parity_run_length_roundtrip(spec):
    for example in spec["mask_examples"]:
        for runs in example["transformer_text_mask_rle"].values():
            assert pt.run_lengths(pt.from_run_lengths(runs)) == runs
