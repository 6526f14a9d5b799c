"""Text encoders with offload "group": LLaVA's decoder layers streamed by diffusers' hooks.

On a GPU the layers would move between CPU RAM and VRAM; here both devices are the CPU, which still
runs every hook (onload, offload, the unmatched group of norm + rotary embedding) on the real module
tree, so the encodings must be bit-identical to offload "model".
"""

from __future__ import annotations

import gc
import weakref

import pytest
import torch

import _single_file_encoders as sfe
import _tiny_text_encoders as tiny
from hunyuan_custom.pipelines import offload_policy as policy
from hunyuan_custom.pipelines.text_encoders import offload as teo
from hunyuan_custom.pipelines.text_encoders import cache as te_cache
from hunyuan_custom.pipelines.text_encoders import encoding as te
from hunyuan_custom.pipelines.text_encoders import encodings as te_rows
from hunyuan_custom.pipelines.text_encoders import loading as te_loading
from hunyuan_custom.pipelines.text_encoders import sizes

GIB = 1024**3
PROMPT = "A woman is drinking coffee at a cafe."
NEGATIVE = "bad hands, low quality"
SUBJECT = "woman"


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return sfe.build_encoder_pair(tmp_path_factory.mktemp("encoders"))


def _load(llava, clip, offload: str, **kwargs) -> te.TextEncoders:
    try:
        return te_loading.load_text_encoders(llava, clip, dtype=torch.float32, device="cpu", offload=offload, **kwargs)
    except teo.TextOffloadError as exc:  # diffusers 0.37 (our oldest supported) insists on an accelerator
        assert not torch.accelerator.is_available()
        pytest.skip(f"this diffusers version group-offloads only with an accelerator: {exc}")


def _encode(encoders: te.TextEncoders) -> te_rows.TextConditioning:
    return encoders.encode(PROMPT, NEGATIVE, SUBJECT, sfe.pixel_values(3), tiny.white_pixel_values())


def _single_file_options(pair) -> dict:
    return dict(llava_vision=pair.vision_file, llava_tokenizer=pair.llama_tokenizer, clip_tokenizer=pair.clip_tokenizer)


def _assert_identical(a: te_rows.TextConditioning, b: te_rows.TextConditioning) -> None:
    assert torch.equal(a.states, b.states) and torch.equal(a.mask, b.mask) and torch.equal(a.pooled, b.pooled)


def _hooked_modules(model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """Modules carrying a diffusers group-offloading hook, by name."""
    return {name: m for name, m in model.named_modules()
            if getattr(m, "_diffusers_hook", None) is not None and m._diffusers_hook.get_hook(teo.GROUP_OFFLOADING_HOOK)}


# ---------------------------------------------------------------------------------------------- encodings


def test_group_gives_exactly_the_encodings_of_model_for_the_folders(pair):
    expected = _encode(te_loading.load_text_encoders(pair.llava_folder, pair.clip_folder, dtype=torch.float32))
    grouped = _load(pair.llava_folder, pair.clip_folder, "group")
    _assert_identical(_encode(grouped), expected)
    _assert_identical(_encode(grouped), expected)  # second call: the hooks' learned order is used


@pytest.mark.parametrize("llama", ["llama_file", "llama_fp8_file"])
def test_group_gives_exactly_the_encodings_of_model_for_single_files(pair, llama):
    """Single files, also without lm_head (tied to embed_tokens, which stays out of the groups) and fp8."""
    path = getattr(pair, llama)
    expected = _encode(te_loading.load_text_encoders(path, pair.clip_file, dtype=torch.float32, **_single_file_options(pair)))
    grouped = _load(path, pair.clip_file, "group", **_single_file_options(pair))
    assert grouped.llava.lm_head.weight is grouped.llava.get_input_embeddings().weight  # the file has no lm_head
    _assert_identical(_encode(grouped), expected)


def test_hooks_are_on_the_language_models_layers_and_nowhere_else(pair):
    encoders = _load(pair.llava_folder, pair.clip_folder, "group")
    llava = encoders.llava
    language = llava.model.language_model
    hooked = _hooked_modules(llava)
    layers = {f"model.language_model.layers.{i}" for i in range(len(language.layers))}
    # one group per decoder layer, plus the language model itself (its norm + rotary embedding group)
    assert set(hooked) == layers | {"model.language_model"}
    groups = {id(h._diffusers_hook.get_hook(teo.GROUP_OFFLOADING_HOOK).group): h for h in hooked.values()}
    assert len(groups) == len(language.layers) + 1
    unmatched = language._diffusers_hook.get_hook(teo.GROUP_OFFLOADING_HOOK).group
    assert language.embed_tokens not in unmatched.modules  # LlavaModel calls it before language_model.forward
    assert {type(m).__name__ for m in unmatched.modules} == {type(language.norm).__name__,
                                                             type(language.rotary_emb).__name__}
    assert _hooked_modules(encoders.clip) == {}


def test_model_mode_puts_no_hooks_anywhere(pair):
    encoders = te_loading.load_text_encoders(pair.llava_folder, pair.clip_folder, dtype=torch.float32)
    assert _hooked_modules(encoders.llava) == {} and _hooked_modules(encoders.clip) == {}


def test_unknown_offload_is_refused(pair):
    with pytest.raises(ValueError, match="offload must be one of model, group"):
        te_loading.load_text_encoders(pair.llava_folder, pair.clip_folder, offload="auto")


def test_free_leaves_nothing_referenced(pair):
    encoders = _load(pair.llava_folder, pair.clip_folder, "group")
    _encode(encoders)
    llava, clip = weakref.ref(encoders.llava), weakref.ref(encoders.clip)
    groups = [weakref.ref(g) for g in teo.offload_groups(encoders.llava)]
    layer_weight = weakref.ref(encoders.llava.model.language_model.layers[0].mlp.up_proj.weight)
    assert len(groups) == sfe.LLAVA_LAYERS + 1
    encoders.free()
    gc.collect()
    assert llava() is None and clip() is None
    assert all(g() is None for g in groups) and layer_weight() is None


def test_release_drops_the_groups_cpu_copies_and_hooks(pair):
    """What free() does before dropping the model: nothing the hooks hold survives, even if someone
    else still holds the model."""
    encoders = _load(pair.llava_folder, pair.clip_folder, "group")
    groups = teo.offload_groups(encoders.llava)
    for g in groups:  # CPU -> CPU keeps no copies; stand in for the pinned ones of a CUDA run
        g.cpu_param_dict = {p: p.data for m in g.modules for p in m.parameters()}
    teo.remove_text_group_offloading(encoders.llava)
    assert all(g.cpu_param_dict == {} for g in groups)
    assert _hooked_modules(encoders.llava) == {}
    assert all(getattr(m, "_diffusers_hook", None) is None or not m._diffusers_hook.hooks
               for m in encoders.llava.modules())


def test_encode_text_conditioning_passes_group_only_when_asked(pair):
    seen: list[dict] = []

    def old_loader(llava, clip, dtype, device, *, crop_start=None, text_len=256):  # written before the option
        seen.append({})
        return te_loading.load_text_encoders(llava, clip, dtype, device, crop_start=crop_start, text_len=text_len)

    def loader(*args, **kwargs):
        seen.append(kwargs)
        return te_loading.load_text_encoders(*args, **kwargs)

    common = dict(prompt=PROMPT, negative_prompt=NEGATIVE, subject=SUBJECT, pixel_values=sfe.pixel_values(3),
                  uncond_pixel_values=tiny.white_pixel_values(), do_cfg=True, dtype=torch.float32, cache=None)
    model = te_cache.encode_text_conditioning(pair.llava_folder, pair.clip_folder, loader=old_loader, **common)
    decided: list[str] = []
    said: list[str] = []
    try:
        group = te_cache.encode_text_conditioning(pair.llava_folder, pair.clip_folder, loader=loader, status=said.append,
                                            offload=lambda: decided.append("asked") or "group", **common)
    except teo.TextOffloadError:
        assert not torch.accelerator.is_available()
        pytest.skip("this diffusers version group-offloads only with an accelerator")
    assert seen[-1]["offload"] == "group" and decided == ["asked"]
    assert any("streamed from CPU RAM" in s for s in said)
    _assert_identical(group, model)
    # A cache hit loads nothing, so the offload decision is not even made.
    cache = te_cache.EncodingCache()
    te_cache.encode_text_conditioning(pair.llava_folder, pair.clip_folder, loader=loader, **{**common, "cache": cache})
    te_cache.encode_text_conditioning(pair.llava_folder, pair.clip_folder, loader=loader,
                                offload=lambda: decided.append("again") or "group", **{**common, "cache": cache})
    assert decided == ["asked"]


# ---------------------------------------------------------------------------------------------- policy


REAL_LLAVA_BYTES = 16_710_550_280  # xtuner llava-llama-3-8b-v1_1 in bf16 (15.6 GiB): Llama-3-8B + ViT-L/14-336 + projector
REAL_CLIP_BYTES = 126_332_520  # CLIP-L's text model in bf16


def test_real_sizes_are_those_of_the_estimates_shape_only_models():
    from transformers import CLIPTextModel, LlavaForConditionalGeneration

    from hunyuan_custom.benchmarks import vram_estimate

    with torch.device("meta"):
        llava = LlavaForConditionalGeneration(vram_estimate.llava_llama3_config()).to(torch.bfloat16)
        clip = CLIPTextModel(vram_estimate.clip_text_config()).to(torch.bfloat16)
    # (transformers 4.57 lacks one 128-byte rotary buffer)
    assert abs(policy.module_bytes(llava) - REAL_LLAVA_BYTES) < 4096
    assert policy.module_bytes(clip) == REAL_CLIP_BYTES


@pytest.mark.parametrize("card_gib, mode", [(8, "group"), (12, "group"), (16, "group"), (20, "model"),
                                            (24, "model"), (80, "model")])
def test_text_policy_for_real_sizes(card_gib, mode):
    # free VRAM: the card less ~0.5 GiB the driver/desktop keeps
    choice = policy.choose_text_offload(REAL_LLAVA_BYTES, REAL_CLIP_BYTES, 2, int((card_gib - 0.5) * GIB))
    assert choice.mode == mode
    assert 18 * GIB < choice.need_bytes < 19 * GIB  # 15.8 GiB weights + 0.5 GiB activations + 2 GiB margin
    assert f"offload auto -> {mode}" in choice.describe() and "text encoders" in choice.describe()


def test_text_policy_counts_activations_by_the_compute_dtype():
    bf16 = policy.choose_text_offload(GIB, 0, 2, 0).need_bytes
    fp32 = policy.choose_text_offload(GIB, 0, 4, 0).need_bytes
    assert fp32 - bf16 == 2 * policy.TEXT_ACTIVATION_BYTES_PER_BYTE


def _shape_only_text_estimate_runs() -> bool:
    from hunyuan_custom.benchmarks import vram_estimate

    return vram_estimate.text_estimate_supported()


@pytest.mark.skipif(not _shape_only_text_estimate_runs(),
                    reason="the shape-only text estimate needs transformers 5 (4.57's rotary embedding opens an "
                           "autocast region on the meta device, which torch refuses)")
def test_text_policy_is_never_below_the_shape_only_estimate():
    """TEXT_ACTIVATION_BYTES_PER_BYTE is read off vram_estimate's text stage; re-calibrate if it grows."""
    from hunyuan_custom.benchmarks import vram_estimate

    stage = vram_estimate.estimate_text_encoders(torch.bfloat16)
    assert abs(stage.weights_total - REAL_LLAVA_BYTES - REAL_CLIP_BYTES) < 4096
    need = policy.choose_text_offload(REAL_LLAVA_BYTES, REAL_CLIP_BYTES, 2, 0).need_bytes
    assert stage.peak_total + policy.MARGIN_BYTES <= need <= stage.peak_total + policy.MARGIN_BYTES + 0.25 * GIB


# ---------------------------------------------------------------------------------------------- sizes


def _stored_bytes(model: torch.nn.Module) -> int:
    """Bytes of what a checkpoint stores (state_dict; tied weights once). Non-persistent buffers such
    as the rotary inv_freq are built by the constructors: a few hundred bytes, not counted from files."""
    unique = {id(t): t for t in model.state_dict(keep_vars=True).values()}
    return sum(t.numel() * t.element_size() for t in unique.values())


def test_sizes_from_headers_equal_the_loaded_models(pair):
    for dtype in (torch.float32, torch.bfloat16):
        loaded = te_loading.load_text_encoders(pair.llava_folder, pair.clip_folder, dtype=dtype)
        itemsize = dtype.itemsize
        assert sizes.llava_bytes(pair.llava_folder, itemsize) == _stored_bytes(loaded.llava)
        assert sizes.clip_bytes(pair.clip_folder, itemsize) == _stored_bytes(loaded.clip)
        single = te_loading.load_text_encoders(pair.llama_file, pair.clip_file, dtype=dtype, **_single_file_options(pair))
        assert sizes.llava_bytes(pair.llama_file, itemsize, pair.vision_file) == _stored_bytes(single.llava)
        assert sizes.clip_bytes(pair.clip_file, itemsize) == _stored_bytes(single.clip)
        assert 0 <= policy.module_bytes(single.llava) - _stored_bytes(single.llava) < 4096
    # fp8 weights are counted as what they are dequantized to, not as the 1-byte file content
    assert sizes.llava_bytes(pair.llama_fp8_file, 4, pair.vision_file) == sizes.llava_bytes(pair.llama_file, 4,
                                                                                            pair.vision_file)


# ---------------------------------------------------------------------------------------------- generate.py


def _cuda_generator(monkeypatch, offload: str):
    from hunyuan_custom.pipelines.generate import LocalGenerator, ModelFiles, RuntimeOptions

    monkeypatch.setattr(ModelFiles, "check", lambda self: None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # RuntimeOptions.check; nothing touches CUDA
    return LocalGenerator(ModelFiles("t", "v", "l", "c"), RuntimeOptions(device="cuda", offload=offload))


@pytest.mark.parametrize("free_gib, mode", [(6, "group"), (15, "group"), (40, "model")])
def test_generator_auto_asks_the_policy_with_the_files_sizes_and_says_so(monkeypatch, free_gib, mode):
    monkeypatch.setattr(policy, "available_vram", lambda device: free_gib * GIB)
    monkeypatch.setattr(sizes, "llava_bytes", lambda path, itemsize, vision=None: REAL_LLAVA_BYTES)
    monkeypatch.setattr(sizes, "clip_bytes", lambda path, itemsize: REAL_CLIP_BYTES)
    said: list[str] = []
    assert _cuda_generator(monkeypatch, "auto")._text_offload_mode(said.append) == mode
    assert len(said) == 1 and f"text encoders: offload auto -> {mode}" in said[0]
    assert f"{free_gib:.1f} GiB of VRAM is free" in said[0]


@pytest.mark.parametrize("offload, mode", [("group", "group"), ("model", "model"), ("none", "model")])
def test_generator_fixed_modes_ask_nobody(monkeypatch, offload, mode):
    monkeypatch.setattr(policy, "available_vram", lambda device: pytest.fail("asked for free VRAM"))
    said: list[str] = []
    assert _cuda_generator(monkeypatch, offload)._text_offload_mode(said.append) == mode
    assert said == []


@pytest.mark.parametrize("offload", ["auto", "group"])
def test_generator_never_groups_on_the_cpu(monkeypatch, offload):
    from hunyuan_custom.pipelines.generate import LocalGenerator, ModelFiles, RuntimeOptions

    monkeypatch.setattr(ModelFiles, "check", lambda self: None)
    monkeypatch.setattr(policy, "available_vram", lambda device: pytest.fail("asked for free VRAM"))
    generator = LocalGenerator(ModelFiles("t", "v", "l", "c"), RuntimeOptions(device="cpu", offload=offload))
    assert generator._text_offload_mode(lambda _text: None) == "model"


def test_generator_hands_its_decision_to_the_text_stage(monkeypatch, tmp_path):
    """_generate gives encode_text_conditioning the decision (a function, made on a cache miss only)."""
    from hunyuan_custom.pipelines.conditioning.prompt_spec import PromptSpec
    from hunyuan_custom.pipelines.job import Job

    monkeypatch.setattr(policy, "available_vram", lambda device: 6 * GIB)
    monkeypatch.setattr(sizes, "llava_bytes", lambda path, itemsize, vision=None: REAL_LLAVA_BYTES)
    monkeypatch.setattr(sizes, "clip_bytes", lambda path, itemsize: REAL_CLIP_BYTES)
    generator = _cuda_generator(monkeypatch, "auto")
    tiny.build_tiny_llava(tmp_path / "llava")
    generator.files = type(generator.files)("t", "v", str(tmp_path / "llava"), "c")
    got: dict = {}

    class Stop(Exception):
        pass

    def fake_encode(*_args, **kwargs):
        got["offload"] = kwargs["offload"]() if callable(kwargs["offload"]) else kwargs["offload"]
        raise Stop

    monkeypatch.setattr(te_cache, "encode_text_conditioning", fake_encode)
    monkeypatch.setattr(generator, "release", lambda: None)
    monkeypatch.setattr(generator, "check_job", lambda job: None)  # the files here are stand-ins
    with pytest.raises(Stop):
        generator.generate(Job.from_params(PromptSpec.create(PROMPT, NEGATIVE, SUBJECT, torch.rand(48, 64, 3)),
                                           {"size": "832*480"}))
    assert got["offload"] == "group"


# ---------------------------------------------------------------------------------------------- estimate


@pytest.mark.skipif(not _shape_only_text_estimate_runs(), reason="the shape-only text estimate needs transformers 5")
def test_estimate_counts_only_the_streamed_layers_on_the_device():
    """benchmarks/vram_estimate.py's text stage with 'group' applies load_text_encoders' offloading and
    records diffusers' schedule: the always-resident part + at most two layers + the norm group."""
    from hunyuan_custom.benchmarks import vram_estimate

    whole = vram_estimate.estimate_text_encoders(torch.float32, tiny=True, offload="model")
    streamed = vram_estimate.estimate_text_encoders(torch.float32, tiny=True, offload="group")
    assert whole.peak_weights == whole.weights_total == streamed.weights_total
    config = vram_estimate.llava_llama3_config(tiny=True).text_config
    h, inter = config.hidden_size, config.intermediate_size
    kv = config.num_key_value_heads * (h // config.num_attention_heads)
    layer = 4 * (2 * h * h + 2 * h * kv + 3 * h * inter + 2 * h)  # float32 q/o, k/v, MLP, two norms
    layers = config.num_hidden_layers * layer
    # 'group' keeps everything but the layers on the device; of those, two at the peak (the running
    # one and the prefetched next) plus the final norm + rotary group
    streamed_part_on_device = streamed.peak_weights - (whole.peak_weights - layers)
    assert 2 * layer <= streamed_part_on_device <= 2 * layer + 4 * h + 1024
    assert any("at most 3 groups" in note for note in streamed.notes)
    assert streamed.peak_total < whole.peak_total - layers + 3 * layer
