"""LLaVA + CLIP prompt encoding with tiny random models built in code (transformers 5.x)."""

from __future__ import annotations

import json
import logging

import pytest
import torch

import _tiny_text_encoders as tiny
from hunyuan_custom.pipelines.text_encoders import prompt_template as pt
from hunyuan_custom.pipelines.text_encoders import cache as te_cache
from hunyuan_custom.pipelines.text_encoders import encoding as te
from hunyuan_custom.pipelines.text_encoders import files as te_files
from hunyuan_custom.pipelines.text_encoders import loading as te_loading

PROMPT = "A woman is drinking coffee at a cafe."
NEGATIVE = "bad hands, bad teeth, low quality"
SUBJECT = "woman"


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    return tiny.build_tiny_text_encoders(tmp_path_factory.mktemp("encoders"))


@pytest.fixture(scope="module")
def encoders(dirs):
    return te_loading.load_text_encoders(*dirs, dtype=torch.float32, device="cpu")


@pytest.fixture
def calls(encoders):
    """Every LLaVA forward call's keyword arguments."""
    seen = []
    handle = encoders.llava.register_forward_pre_hook(lambda m, a, kw: seen.append(kw) and None, with_kwargs=True)
    yield seen
    handle.remove()


def _n_tokens(encoders, prompt=PROMPT, subject=SUBJECT):
    return int(encoders.tokenize_llava(prompt, subject)[1].sum())


def test_loads_real_layouts_and_derives_counts(encoders):
    assert encoders.num_image_features == tiny.IMAGE_TOKENS
    assert encoders.image_extra == tiny.IMAGE_TOKENS - 1
    # crop_start = BOS + template tokens before the user prompt (95 for the real tokenizer).
    prefix_ids = encoders.llava_tokenizer(pt.template_prefix())["input_ids"]
    assert encoders.crop_start == len(prefix_ids) != pt.LLAVA_CROP_START
    assert encoders.max_length == pt.LLAVA_TEXT_LEN + encoders.crop_start
    full_ids = encoders.tokenize_llava(PROMPT, SUBJECT)[0][0].tolist()
    assert full_ids[: encoders.crop_start] == prefix_ids  # exactly the template is cropped
    first_prompt_token = encoders.llava_tokenizer(PROMPT, add_special_tokens=False)["input_ids"][0]
    assert full_ids[encoders.crop_start] == first_prompt_token


def test_expand_image_tokens_pure():
    ids = torch.tensor([[1, 5, 6, 9, 0, 0]])  # 9 = <image>, 0 = pad
    mask = torch.tensor([[1, 1, 1, 1, 0, 0]])
    out = te.expand_image_tokens(ids, mask, image_token_id=9, num_features=3)
    assert out.input_ids.tolist() == [[1, 5, 6, 9, 9, 9, 0, 0]]
    assert out.attention_mask.tolist() == [[1, 1, 1, 1, 1, 1, 0, 0]]
    assert out.position_ids.tolist() == [[0, 1, 2, 3, 4, 5, 1, 1]]
    with pytest.raises(ValueError, match="exactly one <image>"):
        te.expand_image_tokens(torch.tensor([[1, 5, 0]]), torch.tensor([[1, 1, 0]]), 9, 3)


def test_llava_call_sees_expanded_sequence(encoders, calls):
    n = _n_tokens(encoders)
    N = encoders.num_image_features
    encoders.encode_llava(PROMPT, SUBJECT, tiny.random_pixel_values())
    assert len(calls) == 1
    kw = calls[0]
    ids, mask = kw["input_ids"], kw["attention_mask"]
    assert ids.shape == mask.shape == (1, encoders.max_length + N - 1)
    image_positions = (ids[0] == encoders.image_token_id).nonzero().flatten().tolist()
    assert image_positions == list(range(n - 1, n - 1 + N))  # in place of <image>, the last text token
    assert int(mask.sum()) == n + N - 1 and int(mask[0, : n + N - 1].sum()) == n + N - 1
    assert kw["output_hidden_states"] is True and kw["pixel_values"].shape == (1, 3, tiny.IMAGE_SIZE, tiny.IMAGE_SIZE)
    assert kw["position_ids"][0, : n + N - 1].tolist() == list(range(n + N - 1))


def _capture_output(store):
    def hook(_module, _args, out):
        store["h"] = out[0] if isinstance(out, tuple) else out

    return hook


def test_states_are_hidden_states_minus_3_cropped(encoders):
    captured = {}
    layers = encoders.llava.model.language_model.layers
    assert len(layers) == tiny.LLAVA_LAYERS
    hook = layers[-3].register_forward_hook(_capture_output(captured))
    try:
        states, mask = encoders.encode_llava(PROMPT, SUBJECT, tiny.random_pixel_values())
    finally:
        hook.remove()
    expected = captured["h"][:, encoders.crop_start :]
    assert states.shape == (1, encoders.max_length - encoders.crop_start + encoders.image_extra, tiny.LLAVA_HIDDEN)
    assert torch.equal(states, expected)
    # Not the final (normed) layer.
    captured.clear()
    hook = layers[-1].register_forward_hook(_capture_output(captured))
    try:
        encoders.encode_llava(PROMPT, SUBJECT, tiny.random_pixel_values())
    finally:
        hook.remove()
    assert not torch.allclose(states, captured["h"][:, encoders.crop_start :])


def test_matches_a_manual_merge_like_transformers_4_41(encoders):
    """Independent re-derivation of what upstream's pinned transformers did inside the model:
    image features written where <image> was, pad embeddings zeroed, position ids from the mask."""
    px = tiny.random_pixel_values(3)
    ids, mask = encoders.tokenize_llava(PROMPT, SUBJECT)
    p = int((ids[0] == encoders.image_token_id).nonzero()[0])
    model = encoders.llava.model
    with torch.no_grad():
        emb = model.get_input_embeddings()(ids)
        emb[ids == encoders.llava_tokenizer.pad_token_id] = 0
        feats = model.get_image_features(pixel_values=px)
        feats = getattr(feats, "pooler_output", feats)[0]  # transformers 5 returns an output object, 4.x a list
        N = feats.shape[0]
        merged = torch.cat([emb[:, :p], feats[None], emb[:, p + 1 :]], dim=1)
        attn = torch.cat([mask[:, :p], torch.ones(1, N, dtype=mask.dtype), mask[:, p + 1 :]], dim=1)
        pos = (attn.cumsum(-1) - 1).masked_fill(attn == 0, 1)
        out = model.language_model(inputs_embeds=merged, attention_mask=attn, position_ids=pos, output_hidden_states=True)
    want = out.hidden_states[-3][:, encoders.crop_start :]
    got, _ = encoders.encode_llava(PROMPT, SUBJECT, px)
    assert N == encoders.num_image_features
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def test_layout_text_then_image_then_padding_and_quirky_mask(encoders):
    n = _n_tokens(encoders)
    crop, N = encoders.crop_start, encoders.num_image_features
    a, mask = encoders.encode_llava(PROMPT, SUBJECT, tiny.random_pixel_values(1))
    b, mask_b = encoders.encode_llava(PROMPT, SUBJECT, tiny.random_pixel_values(2))
    # Causal LM: rows before the image features do not depend on the image; the features start
    # right after the text (where <image> was).
    first_image_row = n - 1 - crop
    assert torch.equal(a[:, :first_image_row], b[:, :first_image_row])
    assert not torch.allclose(a[:, first_image_row], b[:, first_image_row])
    # The mask is upstream's: tokenizer mask + (N-1) ones at the END, then cropped.
    assert mask.dtype == torch.int64 and torch.equal(mask, mask_b)
    assert pt.run_lengths(mask) == [[1, n - crop], [0, encoders.max_length - n], [1, N - 1]]
    assert torch.equal(mask, pt.encode_mask(n, encoders.max_length, N - 1, crop))


def test_padding_rows_follow_transformers_4_41(encoders, calls):
    """Pad tokens enter the LM with zero embeddings and position id 1 (the refiner reads pad rows)."""
    seen = {}
    emb = encoders.llava.get_input_embeddings()

    def capture_input(_module, args, kwargs):
        seen["x"] = (args[0] if args else kwargs["hidden_states"]).clone()

    pre = encoders.llava.model.language_model.layers[0].register_forward_pre_hook(capture_input, with_kwargs=True)
    try:
        encoders.encode_llava(PROMPT, SUBJECT, tiny.random_pixel_values())
    finally:
        pre.remove()
    ids = calls[0]["input_ids"]
    pad = ids[0] == encoders.llava_tokenizer.pad_token_id
    assert pad.any()
    assert torch.count_nonzero(seen["x"][0, pad]) == 0
    assert torch.count_nonzero(seen["x"][0, ~pad]) > 0
    assert set(calls[0]["position_ids"][0, pad].tolist()) == {1}
    assert len(emb._forward_hooks) == 0  # the temporary hook is gone


def test_cfg_batch_order_and_negative_rewrite(encoders):
    px, white = tiny.random_pixel_values(), tiny.white_pixel_values()
    cond = encoders.encode(PROMPT, NEGATIVE, SUBJECT, px, white, do_cfg=True)
    assert cond.has_uncond and cond.mask.dtype == torch.int64
    neg_states, neg_mask = encoders.encode_llava(NEGATIVE, pt.NEGATIVE_SUBJECT, white)
    pos_states, pos_mask = encoders.encode_llava(PROMPT, SUBJECT, px)
    assert torch.equal(cond.states[0:1], neg_states) and torch.equal(cond.states[1:2], pos_states)
    assert torch.equal(cond.mask[1:2], pos_mask)  # positive row unchanged
    n_neg = _n_tokens(encoders, NEGATIVE, pt.NEGATIVE_SUBJECT)
    assert int(neg_mask.sum()) == n_neg - encoders.crop_start + encoders.image_extra
    assert pt.run_lengths(cond.mask[0]) == [[1, n_neg - encoders.crop_start], [0, cond.mask.shape[1] - (n_neg - encoders.crop_start)]]
    assert torch.equal(cond.pooled[0:1], encoders.encode_clip(NEGATIVE))
    assert torch.equal(cond.pooled[1:2], encoders.encode_clip(PROMPT))
    single = encoders.encode(PROMPT, NEGATIVE, SUBJECT, px, do_cfg=False)
    assert single.batch_size == 1
    for got, want in zip((single.states, single.mask, single.pooled), (cond.cond_only().states, cond.cond_only().mask, cond.cond_only().pooled)):
        assert torch.equal(got, want)
    half = cond.to(dtype=torch.float16)
    assert half.states.dtype == torch.float16 and half.mask.dtype == torch.int64


def test_clip_pooled_equals_manual_call(dirs, encoders):
    from transformers import CLIPTextModel, CLIPTokenizer

    tok = CLIPTokenizer.from_pretrained(str(dirs[1]))
    model = CLIPTextModel.from_pretrained(str(dirs[1]))
    enc = tok(PROMPT, max_length=77, padding="max_length", truncation=True, return_tensors="pt")
    with torch.no_grad():
        want = model(**enc).pooler_output
    got = encoders.encode_clip(PROMPT)
    assert got.shape == (1, tiny.CLIP_HIDDEN)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    # Raw prompt: the LLaVA template must not reach CLIP (a long text would differ after 77 tokens).
    assert not torch.allclose(got, encoders.encode_clip(pt.build_llava_text(PROMPT, SUBJECT)))


def test_parity_tokenizer_inputs_and_call_order(reference_dir, dirs):
    """With upstream's crop (95) and text_len the tokenizer calls equal the recorded ones."""
    spec = json.loads((reference_dir / "prompt_template" / "prompt_template.json").read_text())
    base = te_loading.load_text_encoders(*dirs, dtype=torch.float32)
    for case in spec["strings"]:
        kwargs = case["tokenizer_kwargs"]
        text_len = kwargs["llava"]["max_length"] - spec["crop_start"]
        enc = te.TextEncoders(base.llava, base.llava_tokenizer, base.clip, base.clip_tokenizer,
                              crop_start=spec["crop_start"], text_len=text_len,
                              clip_max_length=kwargs["clip"]["max_length"])
        recorded = []

        def spy(name, tokenizer):
            def call(text, **kw):
                if "max_length" in kw:  # the encoding calls, not the length checks
                    recorded.append((name, text, kw))
                return tokenizer(text, **kw)
            return call

        enc.llava_tokenizer = spy("llava", base.llava_tokenizer)
        enc.clip_tokenizer = spy("clip", base.clip_tokenizer)
        inputs = case["inputs"]
        enc.encode(inputs["prompt"], inputs["negative_prompt"], inputs["name"], tiny.random_pixel_values(), tiny.white_pixel_values())
        expected_texts = {
            "llava:positive": case["llava_tokenizer_inputs"]["positive"], "llava:negative": case["llava_tokenizer_inputs"]["negative"],
            "clip:positive": case["clip_tokenizer_inputs"]["positive"], "clip:negative": case["clip_tokenizer_inputs"]["negative"],
        }
        assert [expected_texts[c] for c in case["call_order"]] == [text for _, text, _ in recorded]
        assert [c.split(":")[0] for c in case["call_order"]] == [name for name, _, _ in recorded]
        for name, _, kw in recorded:
            assert kw == kwargs[name]


def test_long_prompt_keeps_image_suffix(encoders, caplog):
    long_prompt = " ".join(["red ball"] * 400) + " TAIL"
    with caplog.at_level(logging.WARNING):
        ids, mask = encoders.tokenize_llava(long_prompt, SUBJECT)
    assert "longer than" in caplog.text
    assert int(mask.sum()) <= encoders.max_length
    tail = encoders.llava_tokenizer(pt.LLAVA_SUBJECT_SUFFIX.format(SUBJECT), add_special_tokens=False)["input_ids"]
    valid = ids[0, : int(mask.sum())].tolist()
    assert valid[-len(tail):] == tail and valid.count(encoders.image_token_id) == 1
    states, out_mask = encoders.encode_llava(long_prompt, SUBJECT, tiny.random_pixel_values())
    assert states.shape[1] == out_mask.shape[1]


def test_bad_pixel_values_are_refused(encoders):
    with pytest.raises(ValueError, match=r"\[1, 3, 28, 28\]"):
        encoders.encode_llava(PROMPT, SUBJECT, torch.zeros(1, 3, 56, 56))


def test_missing_or_incomplete_folders_are_named(dirs, tmp_path):
    llava_dir, clip_dir = dirs
    with pytest.raises(te_files.TextEncoderFilesError, match="not found: .*nowhere"):
        te_loading.load_text_encoders(tmp_path / "nowhere", clip_dir)
    partial = tmp_path / "llava-llama-3-8b-v1_1"
    partial.mkdir()
    (partial / "config.json").write_text((llava_dir / "config.json").read_text())
    with pytest.raises(te_files.TextEncoderFilesError, match=r"llava-llama-3-8b-v1_1 is incomplete, missing: model\.safetensors.*tokenizer\.json"):
        te_loading.load_text_encoders(partial, clip_dir)
    (partial / "tokenizer.json").write_text("{}")
    (partial / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": "model-00001-of-00002.safetensors"}}))
    with pytest.raises(te_files.TextEncoderFilesError, match="model-00001-of-00002.safetensors"):
        te_loading.load_text_encoders(partial, clip_dir)
    clip_partial = tmp_path / "openai_clip-vit-large-patch14"
    clip_partial.mkdir()
    with pytest.raises(te_files.TextEncoderFilesError, match="CLIP text encoder folder .* missing: config.json"):
        te_loading.load_text_encoders(llava_dir, clip_partial)


def test_real_size_tokenizer_uses_upstreams_crop(caplog):
    class FakeLlama3Tokenizer:
        def __len__(self):
            return 128_320

        def __call__(self, text, **kw):
            return {"input_ids": list(range(90))}

    with caplog.at_level(logging.WARNING):
        assert te.template_token_count(FakeLlama3Tokenizer()) == pt.LLAVA_CROP_START
    assert "gives 90 template tokens" in caplog.text


class _CountingLoader:
    def __init__(self):
        self.loads = 0
        self.llava_calls = 0
        self.last = None

    def __call__(self, *args, **kwargs):
        self.loads += 1
        encoders = te_loading.load_text_encoders(*args, **kwargs)
        encoders.llava.register_forward_pre_hook(lambda *a: setattr(self, "llava_calls", self.llava_calls + 1))
        self.last = encoders
        return encoders


def test_cache_skips_loading_and_encoding_for_a_new_seed(dirs):
    cache = te_cache.EncodingCache(max_entries=4)
    loader = _CountingLoader()
    px, white = tiny.random_pixel_values(), tiny.white_pixel_values()
    messages = []

    def run(**over):
        args = dict(prompt=PROMPT, negative_prompt=NEGATIVE, subject=SUBJECT, pixel_values=px, uncond_pixel_values=white,
                    do_cfg=True, dtype=torch.float32, device="cpu", cache=cache, loader=loader, status=messages.append)
        args.update(over)
        return te_cache.encode_text_conditioning(*dirs, **args)

    first = run()
    assert (loader.loads, loader.llava_calls, len(cache)) == (1, 2, 2)
    assert loader.last.llava is None and loader.last.clip is None  # freed after encoding
    assert messages == ["loading text encoders (LLaVA-Llama-3-8B, CLIP-L)", "encoding 2 prompt(s)"]
    again = run()  # same prompt/reference, e.g. a new seed
    assert (loader.loads, loader.llava_calls) == (1, 2)
    assert messages[-1] == "prompt encoding: cached"
    for a, b in ((first.states, again.states), (first.mask, again.mask), (first.pooled, again.pooled)):
        assert torch.equal(a, b)
    assert torch.equal(run(do_cfg=False).states, first.cond_only().states)  # guidance 1: cond row cached
    assert loader.loads == 1
    run(subject="man")  # only the positive row is new
    assert (loader.loads, loader.llava_calls) == (2, 3)
    run(pixel_values=tiny.random_pixel_values(5))  # new reference pixels
    assert (loader.loads, loader.llava_calls) == (3, 4)
    run(dtype=torch.bfloat16)  # other dtype: both rows
    assert (loader.loads, loader.llava_calls) == (4, 6)
    assert len(cache) == 4


def test_no_cache_always_encodes(dirs):
    loader = _CountingLoader()
    for _ in range(2):
        te_cache.encode_text_conditioning(*dirs, prompt=PROMPT, negative_prompt="", subject=SUBJECT,
                                    pixel_values=tiny.random_pixel_values(), uncond_pixel_values=None, do_cfg=False,
                                    dtype=torch.float32, cache=None, loader=loader)
    assert (loader.loads, loader.llava_calls) == (2, 2)


def test_encoders_free_themselves_as_a_context_manager(dirs):
    with te_loading.load_text_encoders(*dirs, dtype=torch.float32) as encoders:
        assert encoders.encode_clip(PROMPT).shape == (1, tiny.CLIP_HIDDEN)
    assert encoders.llava is None and encoders.clip is None
    with pytest.raises(RuntimeError, match="freed"):
        encoders.encode_clip(PROMPT)


def test_encoder_identity_follows_the_files(dirs):
    before = te_loading.encoder_identity(*dirs)
    assert before == te_loading.encoder_identity(*dirs)
    assert before != te_loading.encoder_identity(*dirs, text_len=128)
    config = dirs[1] / "config.json"
    config.write_text(config.read_text() + " ")
    assert before != te_loading.encoder_identity(*dirs)
