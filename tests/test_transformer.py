"""Behaviour of our HunyuanCustom transformer beyond the upstream fixtures: attention paths,
deepcache, key conversion (incl. full-size manifests on the meta device), config, audio windows."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from hunyuan_custom.pipelines.audio_encoders.windows import window_whisper_states
from hunyuan_custom.pipelines.diffusion_models.deep_cache import DeepCache, upstream_deep_cache_mode
from hunyuan_custom.pipelines.diffusion_models.transformer import HunyuanCustomTransformer3DModel
from hunyuan_custom.pipelines.diffusion_models.keys import (
    FULL_SIZE_CONFIG,
    config_from_upstream_json,
    convert_upstream_state_dict,
    converted_shapes,
    full_size_config,
    invert_plan,
    map_upstream_key,
    plan_conversion,
)

MANIFESTS = Path(__file__).resolve().parent / "fixtures" / "manifests"
TINY = dict(
    num_attention_heads=2,
    attention_head_dim=16,
    num_layers=2,
    num_single_layers=2,
    rope_axes_dim=(4, 6, 6),
    text_embed_dim=12,
    pooled_projection_dim=10,
)


def _randomised(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Seeded non-trivial weights everywhere (as the reference fixtures do)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator)
            if param.ndim >= 2:
                param.copy_(noise / math.sqrt(math.prod(param.shape[1:])))
            elif name.endswith("weight"):
                param.copy_(1.0 + 0.1 * noise)
            else:
                param.copy_(0.05 * noise)
    return model.eval()


def _tiny(**overrides) -> HunyuanCustomTransformer3DModel:
    return _randomised(HunyuanCustomTransformer3DModel(**{**TINY, **overrides}))


def _inputs(batch: int = 1, frames: int = 2, height: int = 4, width: int = 6, text: int = 9, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return dict(
        hidden_states=torch.randn(batch, 16, frames, height, width, generator=g),
        timestep=torch.full((batch,), 700.0),
        encoder_hidden_states=torch.randn(batch, text, TINY["text_embed_dim"], generator=g),
        encoder_attention_mask=torch.ones(batch, text, dtype=torch.int64),
        pooled_projections=torch.randn(batch, TINY["pooled_projection_dim"], generator=g),
        ref_latents=torch.randn(batch, 16, 1, height, width, generator=g),
    )


def _run(model, **kwargs) -> torch.Tensor:
    with torch.no_grad():
        return model(**kwargs).sample


# ------------------------------------------------------------------ attention paths


def test_mask_free_path_equals_masked_path_with_upstream_mask_quirk():
    model = _tiny()
    inputs = _inputs(text=12)
    # Upstream's LLaVA mask: text ones, padding zeros, then image-feature ones at the END.
    inputs["encoder_attention_mask"] = torch.tensor([[1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 1]])
    masks_seen = []
    hook = model.transformer_blocks[0].register_forward_pre_hook(lambda _m, args: masks_seen.append(args[3]))
    try:
        free = _run(model, **inputs, trim_text=True)
        masked = _run(model, **inputs, trim_text=False)
    finally:
        hook.remove()
    assert masks_seen[0] is None, "batch-1 trimmed path must not pass an attention mask"
    assert masks_seen[1] is not None
    torch.testing.assert_close(free, masked, atol=1e-5, rtol=1e-5)


def test_batched_rows_equal_their_single_row_runs():
    """Rows with different valid text lengths in one batch give each row's batch-1 answer."""
    model = _tiny()
    inputs = _inputs(batch=2, text=10)
    inputs["encoder_attention_mask"] = torch.tensor([[1] * 4 + [0] * 6, [1] * 7 + [0] * 3])
    inputs["timestep"] = torch.tensor([300.0, 800.0])
    batched = _run(model, **inputs)
    for row in range(2):
        single = _run(model, **{k: v[row : row + 1] for k, v in inputs.items()})
        torch.testing.assert_close(batched[row : row + 1], single, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(batched, _run(model, **inputs, trim_text=False), atol=1e-5, rtol=1e-5)


def test_reference_tokens_change_the_output_and_are_dropped_from_it():
    model = _tiny()
    inputs = _inputs()
    with_ref = _run(model, **inputs)
    other_ref = _run(model, **{**inputs, "ref_latents": inputs["ref_latents"] + 1.0})
    assert with_ref.shape == inputs["hidden_states"].shape
    assert (with_ref - other_ref).abs().max() > 1e-3


def test_wrong_inputs_are_refused_with_clear_errors():
    model = _tiny()
    inputs = _inputs()
    with pytest.raises(ValueError, match="video_condition"):
        _run(model, **inputs, bg_latents=torch.zeros(1, 32, 2, 4, 6))
    with pytest.raises(ValueError, match="audio_condition"):
        _run(model, **inputs, audio_prompts=torch.zeros(1, 5, 10, 5, 384))
    with pytest.raises(ValueError, match="ref_latents"):
        _run(model, **{**inputs, "ref_latents": torch.zeros(1, 16, 1, 4, 4)})


def test_audio_frame_count_must_match_latent_frames():
    model = _tiny(audio_condition=True, audio_channels=4, audio_intermediate_dim=8, audio_attention_dim=8, audio_attention_head_dim=8)
    inputs = _inputs(frames=2)
    good = torch.randn(1, 5, 10, 5, 4)  # 4*2-3 video frames
    assert _run(model, **inputs, audio_prompts=good, audio_strength=0.8).shape == inputs["hidden_states"].shape
    with pytest.raises(ValueError, match="latent frames"):
        _run(model, **inputs, audio_prompts=torch.randn(1, 6, 10, 5, 4))


def test_bad_constructor_arguments_are_refused():
    with pytest.raises(ValueError, match="guidance"):
        HunyuanCustomTransformer3DModel(**TINY, guidance_embeds=True)
    with pytest.raises(ValueError, match="rope_axes_dim"):
        HunyuanCustomTransformer3DModel(**{**TINY, "rope_axes_dim": (4, 4, 4)})


def test_config_round_trips_through_from_config():
    model = HunyuanCustomTransformer3DModel(**TINY, video_condition=True)
    again = HunyuanCustomTransformer3DModel.from_config(model.config)
    assert again.config.video_condition and hasattr(again, "bg_in")
    assert set(again.state_dict()) == set(model.state_dict())


def test_diffusers_runtime_features_still_work():
    """Attention backend choice, group offloading, layerwise casting and cache hooks wrap our blocks."""
    from diffusers import FirstBlockCacheConfig

    inputs = _inputs(text=8)
    inputs["encoder_attention_mask"][:, 5:] = 0
    expected = _run(_tiny(), **inputs)
    native = _tiny()
    native.set_attention_backend("native")
    torch.testing.assert_close(_run(native, **inputs), expected)
    offloaded = _tiny()
    try:
        offloaded.enable_group_offload(torch.device("cpu"), offload_type="block_level", num_blocks_per_group=1)
    except AttributeError:  # diffusers 0.37 (our oldest supported) insists on an accelerator for group offloading
        assert not torch.accelerator.is_available()
    else:
        torch.testing.assert_close(_run(offloaded, **inputs), expected)
    cached = _tiny()
    cached.enable_cache(FirstBlockCacheConfig(threshold=0.0))  # threshold 0: never skips, so exact
    with cached.cache_context("cond"):
        torch.testing.assert_close(_run(cached, **inputs), expected)
    cast = _tiny()
    cast.enable_layerwise_casting(storage_dtype=torch.bfloat16, compute_dtype=torch.float32)
    assert cast.transformer_blocks[0].attn.to_q.weight.dtype == torch.bfloat16
    assert cast.x_embedder.proj.weight.dtype == torch.float32  # patch embeds stay full precision
    torch.testing.assert_close(_run(cast, **inputs), expected, atol=0.1, rtol=0.1)


# ------------------------------------------------------------------ deepcache


def _manual_last_block(model, block_input: tuple, timestep, pooled, latent_shape) -> torch.Tensor:
    """Last single block + output layers by hand, from a captured block input."""
    image, text, _temb, mask, rotary = block_input
    temb, _ = model.time_text_embed(timestep, pooled)
    image, _ = model.single_transformer_blocks[-1](image, text, temb, mask, rotary)
    batch, _, frames, height, width = latent_shape
    p = model.config.patch_size
    video = image[:, (height // p) * (width // p) :]  # one reference frame of tokens comes first
    tokens = model.proj_out(model.norm_out(video, temb))
    tokens = tokens.reshape(batch, frames, height // p, width // p, -1, 1, p, p)
    return tokens.permute(0, 4, 1, 5, 2, 6, 3, 7).reshape(batch, -1, frames, height, width)


def test_deep_cache_reuse_runs_only_the_last_single_block_on_the_stored_input():
    model = _tiny()
    inputs = _inputs(text=8)
    inputs["encoder_attention_mask"][:, 5:] = 0
    captured = []
    hook = model.single_transformer_blocks[-1].register_forward_pre_hook(lambda _m, args: captured.append(args))
    cache = DeepCache("store")
    try:
        full = _run(model, **inputs, deep_cache=cache)
        # Reuse step: other timestep and a DIFFERENT latent/text, which must be ignored (upstream reuses the stored input).
        later = {**inputs, "timestep": torch.tensor([420.0]), "hidden_states": torch.randn_like(inputs["hidden_states"])}
        later["encoder_hidden_states"] = torch.randn_like(inputs["encoder_hidden_states"])
        calls_before = len(captured)
        cache.mode = "reuse"
        first_blocks = []
        h0 = model.transformer_blocks[0].register_forward_hook(lambda *a: first_blocks.append(1))
        try:
            reused = _run(model, **later, deep_cache=cache)
        finally:
            h0.remove()
    finally:
        hook.remove()
    assert not first_blocks, "reuse mode must not run the double blocks"
    assert len(captured) == calls_before + 1
    with torch.no_grad():
        expected = _manual_last_block(model, captured[0], later["timestep"], later["pooled_projections"], later["hidden_states"].shape)
        same_step = _manual_last_block(model, captured[0], inputs["timestep"], inputs["pooled_projections"], inputs["hidden_states"].shape)
    torch.testing.assert_close(reused, expected, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(full, same_step, atol=1e-6, rtol=1e-6)
    assert (reused - full).abs().max() > 1e-4  # the timestep really changed the result


def test_deep_cache_refuses_reuse_without_a_matching_store():
    model = _tiny()
    inputs = _inputs()
    with pytest.raises(RuntimeError, match="store"):
        _run(model, **inputs, deep_cache=DeepCache("reuse"))
    cache = DeepCache("store")
    _run(model, **inputs, deep_cache=cache)
    cache.mode = "reuse"
    with pytest.raises(RuntimeError, match="latent"):
        _run(model, **_inputs(width=8), deep_cache=cache)
    off = DeepCache("off")
    _run(model, **inputs, deep_cache=off)
    assert off.stored is None


def test_upstream_deep_cache_schedule():
    reuse = [i for i in range(30) if upstream_deep_cache_mode(i, 30) == "reuse"]
    assert reuse == [11, 12, 14, 15, 17, 18, 20, 21]
    # Only the step right before a reuse stores (upstream stores every step, reading only those).
    assert [i for i in range(30) if upstream_deep_cache_mode(i, 30) == "store"] == [10, 13, 16, 19]
    assert all(upstream_deep_cache_mode(i, 50) == "off" for i in range(50))


@pytest.mark.parametrize("steps", [30, 8])
def test_sampling_holds_a_stored_block_input_only_while_a_reuse_is_ahead(steps, monkeypatch):
    from hunyuan_custom.pipelines import sampling
    from hunyuan_custom.pipelines.text_encoders.encodings import TextConditioning

    held: list[list[bool]] = []  # per step: which passes hold a stored block input afterwards
    caches: list[DeepCache] = []

    class Spy(DeepCache):
        def __init__(self, mode="store"):
            super().__init__(mode)
            caches.append(self)

    monkeypatch.setattr(sampling, "DeepCache", Spy)
    model = _tiny()
    inputs = _inputs(batch=2)
    text = TextConditioning(inputs["encoder_hidden_states"], inputs["encoder_attention_mask"], inputs["pooled_projections"])
    request = sampling.DenoiseRequest(
        latents=inputs["hidden_states"][:1], ref_latents=inputs["ref_latents"][:1], text=text, steps=steps,
        flow_shift=5.0, guidance_scale=6.0, deep_cache=True,
    )
    with torch.no_grad():
        sampling.denoise(model, request, on_step=lambda *_: held.append([c.stored is not None for c in caches]))
    assert len(caches) == 2  # one cache per CFG pass
    holding = [i for i, flags in enumerate(held) if any(flags)]
    assert holding == (list(range(10, 22)) if steps == 30 else [])  # stored at 10, last reused at 21
    assert all(all(flags) == any(flags) for flags in held)  # both passes alike


# ------------------------------------------------------------------ keys and config


@pytest.mark.parametrize("variant", ["ref2v", "editing", "audio"])
def test_full_size_manifest_maps_onto_our_modules_on_meta(variant):
    manifest = json.loads((MANIFESTS / f"transformer_{variant}_full.json").read_text())
    with torch.device("meta"):
        model = HunyuanCustomTransformer3DModel(**full_size_config(variant))
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    mapped = converted_shapes(manifest["keys"])
    assert sorted(set(ours) - set(mapped)) == [], "missing keys"
    assert sorted(set(mapped) - set(ours)) == [], "unexpected keys"
    assert {k: s for k, s in mapped.items() if ours[k] != s} == {}, "shape mismatches"
    assert sum(math.prod(s) for s in ours.values()) == manifest["n_params"]
    # every float8 Linear of upstream's --use-fp8 checkpoints maps onto weights we have
    shapes = {k: tuple(v) for k, v in manifest["keys"].items()}
    for module in manifest["fp8_linear_modules"]:
        key = f"{module}.weight"
        assert set(map_upstream_key(key, shapes[key], 3072).targets) <= set(ours)


def test_converted_meta_state_dict_loads_strictly():
    manifest = json.loads((MANIFESTS / "transformer_editing_full.json").read_text())
    upstream = {k: torch.empty(v, device="meta", dtype=torch.bfloat16) for k, v in manifest["keys"].items()}
    with torch.device("meta"):
        model = HunyuanCustomTransformer3DModel(**full_size_config("editing"))
    result = model.load_state_dict(convert_upstream_state_dict(upstream), strict=True, assign=True)
    assert not result.missing_keys and not result.unexpected_keys


def _tiny_upstream_state(hidden=40, mlp=160):
    g = torch.Generator().manual_seed(3)
    return {
        "img_in.proj.weight": torch.randn(hidden, 16, 1, 2, 2, generator=g),
        "single_blocks.0.linear1.weight": torch.randn(3 * hidden + mlp, hidden, generator=g),
        "single_blocks.0.linear1.bias": torch.randn(3 * hidden + mlp, generator=g),
        "double_blocks.0.img_attn_qkv.weight": torch.randn(3 * hidden, hidden, generator=g),
        "final_layer.adaLN_modulation.1.weight": torch.randn(2 * hidden, hidden, generator=g),
        "final_layer.adaLN_modulation.1.bias": torch.randn(2 * hidden, generator=g),
    }


def test_converter_splits_by_shape_with_views_and_keeps_the_input():
    upstream = _tiny_upstream_state()
    before = {k: v.clone() for k, v in upstream.items()}
    out = convert_upstream_state_dict(upstream)
    assert set(upstream) == set(before) and all(torch.equal(upstream[k], before[k]) for k in before)
    linear1 = upstream["single_blocks.0.linear1.weight"]
    q = out["single_transformer_blocks.0.attn.to_q.weight"]
    mlp = out["single_transformer_blocks.0.proj_mlp.weight"]
    assert q.shape == (40, 40) and mlp.shape == (160, 40)
    assert q.untyped_storage().data_ptr() == linear1.untyped_storage().data_ptr(), "split must be a view"
    torch.testing.assert_close(mlp, linear1[120:])
    torch.testing.assert_close(out["single_transformer_blocks.0.attn.to_v.bias"], upstream["single_blocks.0.linear1.bias"][80:120])
    torch.testing.assert_close(out["transformer_blocks.0.attn.to_k.weight"], upstream["double_blocks.0.img_attn_qkv.weight"][40:80])
    shift, scale = upstream["final_layer.adaLN_modulation.1.weight"].chunk(2)
    torch.testing.assert_close(out["norm_out.linear.weight"], torch.cat([scale, shift]))


def test_converter_keeps_float8_dtype():
    upstream = {k: v.to(torch.float8_e4m3fn) if v.ndim == 2 else v for k, v in _tiny_upstream_state().items()}
    out = convert_upstream_state_dict(upstream)
    assert out["single_transformer_blocks.0.attn.to_q.weight"].dtype == torch.float8_e4m3fn
    assert out["norm_out.linear.weight"].dtype == torch.float8_e4m3fn
    assert out["single_transformer_blocks.0.proj_mlp.bias"].dtype == torch.float32


def test_converter_refuses_unknown_keys():
    upstream = {**_tiny_upstream_state(), "double_blocks.0.not_a_layer.weight": torch.zeros(2, 2)}
    with pytest.raises(KeyError, match="not_a_layer"):
        convert_upstream_state_dict(upstream)


def test_inverse_plan_covers_every_row_of_every_target_once():
    manifest = json.loads((MANIFESTS / "transformer_audio_full.json").read_text())
    plan = plan_conversion(manifest["keys"])
    targets = converted_shapes(manifest["keys"])
    sources = invert_plan(plan)
    assert set(sources) == set(targets)
    for target, parts in sources.items():
        rows = sorted(((p.target_start or 0), (p.target_start or 0) + p.source_stop - p.source_start) for _, p in parts)
        assert rows[0][0] == 0 and rows[-1][1] == targets[target][0]
        assert all(a[1] == b[0] for a, b in zip(rows, rows[1:])), target


def test_config_from_upstream_json_maps_and_refuses():
    cfg = {
        "constructor_kwargs": {
            "patch_size": [1, 2, 2], "in_channels": 16, "out_channels": 16, "hidden_size": 96, "mlp_width_ratio": 4.0,
            "mlp_act_type": "gelu_tanh", "num_heads": 3, "depth_double_blocks": 3, "depth_single_blocks": 5,
            "rope_dim_list": [8, 12, 12], "qkv_bias": True, "qk_norm": True, "qk_norm_type": "rms",
            "guidance_embed": False, "video_condition": True, "audio_condition": False,
        },
        "args_namespace": {"text_projection": "single_refiner", "text_states_dim": 40, "text_states_dim_2": 20, "use_attention_mask": True},
        "rope": {"rope_theta": 128},
    }
    kwargs = config_from_upstream_json(cfg)
    assert kwargs["attention_head_dim"] == 32 and kwargs["num_attention_heads"] == 3
    assert (kwargs["num_layers"], kwargs["num_single_layers"]) == (3, 5)
    assert kwargs["rope_theta"] == 128.0 and kwargs["video_condition"] and kwargs["text_embed_dim"] == 40
    HunyuanCustomTransformer3DModel(**kwargs)  # builds
    bad = json.loads(json.dumps(cfg))
    bad["constructor_kwargs"]["guidance_embed"] = True
    with pytest.raises(ValueError, match="guidance_embed"):
        config_from_upstream_json(bad)
    with pytest.raises(ValueError, match="constructor_kwargs"):
        config_from_upstream_json({"hidden_size": 3072})


def test_full_size_config_is_hyvideo_t2():
    assert FULL_SIZE_CONFIG["num_attention_heads"] * FULL_SIZE_CONFIG["attention_head_dim"] == 3072
    assert (FULL_SIZE_CONFIG["num_layers"], FULL_SIZE_CONFIG["num_single_layers"]) == (20, 40)
    assert tuple(FULL_SIZE_CONFIG["rope_axes_dim"]) == (16, 56, 56) and FULL_SIZE_CONFIG["rope_theta"] == 256.0
    assert full_size_config("editing")["video_condition"] and full_size_config("audio")["audio_condition"]
    with pytest.raises(ValueError):
        full_size_config("multi_subject")


# ------------------------------------------------------------------ audio windows


def test_whisper_windows_take_rows_2f_to_2f_plus_10_after_4_zero_rows():
    states = [torch.arange(30, dtype=torch.float32).view(1, 30, 1).expand(1, 30, 2) + 100 * layer for layer in range(5)]
    windows = window_whisper_states(states, num_frames=3)
    assert windows.shape == (1, 3, 10, 5, 2)
    assert torch.equal(windows[0, 0, :4], torch.zeros(4, 5, 2))
    assert torch.equal(windows[0, 0, 4:, 0, 0], torch.arange(6, dtype=torch.float32))
    assert torch.equal(windows[0, 2, :, 3, 1], torch.arange(10, dtype=torch.float32) + 300)
    stacked = window_whisper_states(torch.stack(states, dim=2), num_frames=3)
    assert torch.equal(stacked, windows)


def test_whisper_windows_past_the_features_are_zero_padded():
    states = [torch.ones(1, 8, 3) for _ in range(5)]
    windows = window_whisper_states(states, num_frames=6)  # needs rows up to 2*5+10 = 20 > 4 + 8
    assert windows.shape == (1, 6, 10, 5, 3)
    assert torch.equal(windows[0, 5, :2], torch.ones(2, 5, 3))
    assert torch.equal(windows[0, 5, 2:], torch.zeros(8, 5, 3))


def test_module_targets_and_prefixes_for_loaders():
    from hunyuan_custom.pipelines.diffusion_models.keys import strip_checkpoint_prefix, upstream_module_targets

    assert upstream_module_targets("single_blocks.3.linear1", (3 * 64 + 256, 64), 64) == (
        "single_transformer_blocks.3.attn.to_q",
        "single_transformer_blocks.3.attn.to_k",
        "single_transformer_blocks.3.attn.to_v",
        "single_transformer_blocks.3.proj_mlp",
    )
    assert upstream_module_targets("double_blocks.0.txt_mlp.fc2", (64, 256), 64) == ("transformer_blocks.0.ff_context.net.2",)
    assert upstream_module_targets("nonsense", (1, 1), 64) == ()
    assert strip_checkpoint_prefix("model.diffusion_model.img_in.proj.weight") == "img_in.proj.weight"
    assert strip_checkpoint_prefix("img_in.proj.weight") == "img_in.proj.weight"


def test_scalar_timestep_and_missing_mask_are_accepted():
    model = _tiny()
    inputs = _inputs()
    expected = _run(model, **inputs)
    inputs.update(timestep=inputs["timestep"][0], encoder_attention_mask=None)
    torch.testing.assert_close(_run(model, **inputs), expected)
