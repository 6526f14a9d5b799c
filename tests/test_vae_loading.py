"""load_vae on tiny checkpoints written here in every real layout, and its refusals."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from hunyuan_custom.pipelines.vae import model as vae_module
from hunyuan_custom.pipelines.vae.loading import VAELoadError, check_shapes, expected_shapes, load_vae

TINY = vae_module.VAEConfig(block_out_channels=(8, 8, 16, 16), layers_per_block=1, norm_num_groups=4,
                            latent_channels=4, sample_size=32, sample_tsize=16)
MANIFEST = Path(__file__).resolve().parent / "fixtures" / "manifests" / "vae_full_ASSUMED_config.json"


def _upstream_config(config: vae_module.VAEConfig, causal: bool | None) -> dict:
    """config.json in upstream's AutoencoderKLCausal3D format."""
    data = {
        "_class_name": "AutoencoderKLCausal3D", "_diffusers_version": "0.4.2",
        "in_channels": 3, "out_channels": 3, "act_fn": "silu",
        "down_block_types": ["DownEncoderBlockCausal3D"] * len(config.block_out_channels),
        "up_block_types": ["UpDecoderBlockCausal3D"] * len(config.block_out_channels),
        "block_out_channels": list(config.block_out_channels), "layers_per_block": config.layers_per_block,
        "latent_channels": config.latent_channels, "norm_num_groups": config.norm_num_groups,
        "sample_size": config.sample_size, "sample_tsize": config.sample_tsize,
        "scaling_factor": config.scaling_factor, "time_compression_ratio": 4, "mid_block_add_attention": True,
    }
    if causal is not None:
        data["mid_block_causal_attn"] = causal
    return data


@pytest.fixture(scope="module")
def reference():
    torch.manual_seed(0)
    vae = vae_module.HunyuanVideoVAE.from_config(TINY)
    with torch.no_grad():
        for name, p in vae.model.named_parameters():  # non-trivial weights: layouts cannot agree by accident
            p.copy_(torch.randn_like(p) * 0.2 + (1.0 if p.ndim == 1 and name.endswith("weight") else 0.0))
    latent = torch.randn(1, TINY.latent_channels, 2, 4, 4, generator=torch.Generator().manual_seed(1))
    state = {k: v.clone() for k, v in vae.model.state_dict().items()}
    return state, latent


def _decode(vae, latent, causal: bool) -> torch.Tensor:
    assert vae.config.mid_block_causal_attn is causal
    return vae.decode(latent)


def _expected(reference, causal: bool) -> torch.Tensor:
    state, latent = reference
    vae = vae_module.HunyuanVideoVAE.from_config(replace(TINY, mid_block_causal_attn=causal))
    vae.model.load_state_dict(state)
    return vae.decode(latent)


def test_every_layout_loads_to_identical_outputs(reference, tmp_path):
    state, latent = reference
    expected_plain, expected_causal = _expected(reference, False), _expected(reference, True)

    # upstream: folder with config.json + pytorch_model.pt, keys "vae.*" under "state_dict"
    up = tmp_path / "hyvae_v1_0801"
    up.mkdir()
    (up / "config.json").write_text(json.dumps(_upstream_config(TINY, None)))
    torch.save({"state_dict": {"vae." + k: v for k, v in state.items()}, "step": torch.tensor(3)}, up / "pytorch_model.pt")
    for target in (up, up / "pytorch_model.pt"):
        vae = load_vae(target)
        assert torch.equal(_decode(vae, latent, False), expected_plain), target  # upstream default: non-causal

    # upstream .pt with the prefix at the top level, config asking for causal attention
    up2 = tmp_path / "upstream_causal"
    up2.mkdir()
    (up2 / "config.json").write_text(json.dumps(_upstream_config(TINY, True)))
    torch.save({"vae." + k: v for k, v in state.items()}, up2 / "weights.bin")
    assert torch.equal(_decode(load_vae(up2), latent, True), expected_causal)

    # ComfyUI single safetensors (no prefix), bf16 on disk; with config given explicitly
    comfy = tmp_path / "comfy"
    comfy.mkdir()
    save_file({k: v.to(torch.bfloat16) for k, v in state.items()}, str(comfy / "hunyuan_video_vae_bf16.safetensors"))
    vae = load_vae(comfy / "hunyuan_video_vae_bf16.safetensors", config=TINY)
    assert vae.dtype == torch.float32
    bf16_state = {k: v.to(torch.bfloat16).float() for k, v in state.items()}
    ref_bf16 = vae_module.HunyuanVideoVAE.from_config(TINY)
    ref_bf16.model.load_state_dict(bf16_state)
    assert torch.equal(vae.decode(latent), ref_bf16.decode(latent))
    # Same, with a checkpoint-bundle prefix and a misleading file name
    save_file({"first_stage_model." + k: v for k, v in state.items()}, str(comfy / "model.ckpt"))
    assert torch.equal(_decode(load_vae(comfy / "model.ckpt", config=TINY, causal_attention=False), latent, False),
                       expected_plain)

    # diffusers folder (save_pretrained), also reached through a pipeline root with vae/
    root = tmp_path / "HunyuanVideo"
    diffusers_vae = vae_module.build_diffusers_vae(TINY)
    diffusers_vae.load_state_dict(state)
    diffusers_vae.save_pretrained(str(root / "vae"))
    for target in (root / "vae", root):
        vae = load_vae(target)
        assert vae.config.block_out_channels == TINY.block_out_channels
        assert torch.equal(_decode(vae, latent, True), expected_causal), target  # diffusers: causal


def _to_comfy_internal(state: dict, blocks: int) -> dict:
    """What ComfyUI's VAE loader turns upstream names into (its LDM layout), written out here
    independently of pipelines/vae/key_layouts.py: Comfy-Org's repackaged file looks like this."""
    renames = [("nin_shortcut", "conv_shortcut"), ("norm_out", "conv_norm_out"), ("mid.attn_1.", "mid_block.attentions.0.")]
    for i in range(blocks):
        renames += [(f"encoder.down.{i}.block.{j}.", f"encoder.down_blocks.{i}.resnets.{j}.") for j in range(3)]
        renames += [(f"down.{i}.downsample.", f"down_blocks.{i}.downsamplers.0."),
                    (f"up.{blocks - 1 - i}.upsample.", f"up_blocks.{i}.upsamplers.0.")]
        renames += [(f"decoder.up.{blocks - 1 - i}.block.{j}.", f"decoder.up_blocks.{i}.resnets.{j}.") for j in range(3)]
    renames += [(f"mid.block_{i + 1}.", f"mid_block.resnets.{i}.") for i in range(2)]
    attn = [("norm.", "group_norm."), ("q.", "to_q."), ("k.", "to_k."), ("v.", "to_v."), ("proj_out.", "to_out.0.")]
    out = {}
    for name, tensor in state.items():
        new = name
        for ldm, ours in renames:
            new = new.replace(ours, ldm)
        if "attentions" in name:
            for ldm, ours in attn:
                new = new.replace(ours, ldm)
            if new.endswith(("q.weight", "k.weight", "v.weight", "proj_out.weight")):
                tensor = tensor.reshape(*tensor.shape, 1, 1, 1)
        out[new] = tensor
    assert len(out) == len(state)
    return out


def test_comfy_org_repackaged_layout_loads_without_config(reference, tmp_path):
    """Comfy-Org's hunyuan_video_vae_bf16.safetensors uses ComfyUI's internal names; it must load
    to the same model as upstream names (no config beside it: config given for the tiny model)."""
    state, latent = reference
    internal = _to_comfy_internal(state, len(TINY.block_out_channels))
    assert "decoder.mid.attn_1.q.weight" in internal and "decoder.up.0.block.0.conv1.conv.weight" in internal
    path = tmp_path / "hunyuan_video_vae_bf16.safetensors"
    save_file(internal, str(path))
    vae = load_vae(path, config=replace(TINY, mid_block_causal_attn=True))
    for name, tensor in vae.model.state_dict().items():
        assert torch.equal(tensor, state[name]), name
    assert torch.equal(vae.decode(latent), _expected(reference, True))


def test_dtype_and_weights_are_assigned_not_left_on_meta(reference, tmp_path):
    state, latent = reference
    path = tmp_path / "vae.safetensors"
    save_file(state, str(path))
    vae = load_vae(path, dtype=torch.bfloat16, config=TINY)
    assert vae.dtype == torch.bfloat16
    assert not any(p.is_meta for p in vae.model.parameters())
    for name, tensor in vae.model.state_dict().items():
        assert torch.equal(tensor, state[name].to(torch.bfloat16)), name


@pytest.mark.parametrize("zip_format", [True, False], ids=["torch_zip", "legacy_pickle"])
def test_torch_checkpoint_named_safetensors_loads(reference, tmp_path, zip_format):
    """The file's bytes decide, not its name: torch.load alone would hand "*.safetensors" to safetensors."""
    state, latent = reference
    path = tmp_path / "hunyuan_video_vae_bf16.safetensors"
    torch.save({"state_dict": {"vae." + k: v for k, v in state.items()}}, path,
               _use_new_zipfile_serialization=zip_format)
    vae = load_vae(path, config=TINY)
    for name, tensor in vae.model.state_dict().items():
        assert torch.equal(tensor, state[name]), name
    assert torch.equal(_decode(vae, latent, False), _expected(reference, False))


def test_truncated_files_name_the_file(reference, tmp_path):
    state, _ = reference
    st = tmp_path / "vae.safetensors"
    save_file(state, str(st))
    pt = tmp_path / "pytorch_model.pt"
    torch.save({"vae." + k: v for k, v in state.items()}, pt)
    for path in (st, pt):
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        with pytest.raises(VAELoadError, match="truncated or corrupt") as info:
            load_vae(path, config=TINY)
        assert str(path) in str(info.value)
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    with pytest.raises(VAELoadError, match=str(empty)):
        load_vae(empty)


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_pickle_with_code_is_refused_and_not_run(reference, tmp_path):
    state, _ = reference
    marker = tmp_path / "code_ran"
    path = tmp_path / "pytorch_model.pt"
    torch.save({"state_dict": {"vae." + k: v for k, v in state.items()}, "evil": _Payload(marker)}, path)
    with pytest.raises(VAELoadError, match="refused") as info:
        load_vae(path, config=TINY)
    assert str(path) in str(info.value)
    assert not marker.exists()


def test_wrong_model_says_what_it_looks_like(tmp_path):
    transformer = tmp_path / "hunyuan_custom_720p.safetensors"
    save_file({"double_blocks.0.img_attn_qkv.weight": torch.zeros(6, 2), "img_in.proj.weight": torch.zeros(2, 2)},
              str(transformer))
    with pytest.raises(VAELoadError, match="transformer") as info:
        load_vae(transformer)
    assert str(transformer) in str(info.value) and "decoder.conv_in.conv.weight" in str(info.value)
    sd_vae = tmp_path / "sdxl_vae.safetensors"
    save_file({"decoder.mid.attn_1.q.weight": torch.zeros(2, 2, 1, 1), "encoder.down.0.block.0.conv1.weight": torch.zeros(1)},
              str(sd_vae))
    with pytest.raises(VAELoadError, match="LDM"):
        load_vae(sd_vae)
    not_weights = tmp_path / "notes.safetensors"
    not_weights.write_text("hello")
    with pytest.raises(VAELoadError, match="neither a safetensors file nor a PyTorch checkpoint"):
        load_vae(not_weights)


def test_missing_config_with_other_shapes_is_an_error_naming_file_and_tensor(reference, tmp_path):
    state, _ = reference
    path = tmp_path / "hunyuan_video_vae_bf16.safetensors"
    save_file(state, str(path))
    with pytest.raises(VAELoadError) as info:
        load_vae(path)
    message = str(info.value)
    assert str(path) in message and "full-size" in message and "shape mismatch" in message
    assert "decoder.conv_in.conv.weight" in message or "encoder.conv_in.conv.weight" in message
    # A config.json beside it that disagrees is an error too, not a silent reshape.
    (tmp_path / "config.json").write_text(json.dumps(_upstream_config(replace(TINY, latent_channels=8), None)))
    with pytest.raises(VAELoadError, match="does not match its config"):
        load_vae(path)


def test_full_size_manifest_maps_onto_our_vae_with_nothing_missing():
    manifest = json.loads(MANIFEST.read_text())
    shapes = {k: tuple(v) for k, v in manifest["keys"].items()}
    assert len(shapes) == manifest["n_tensors"]
    full = vae_module.FULL_SIZE_CONFIG
    check_shapes(shapes, full, "manifest", "the full-size config")  # raises on any difference
    ours = expected_shapes(full)
    assert set(ours) == set(shapes)
    assert sum(torch.Size(s).numel() for s in ours.values()) == manifest["n_params"]
    with pytest.raises(VAELoadError, match="shape mismatch"):
        check_shapes({**shapes, "decoder.conv_in.conv.weight": (1, 2, 3, 3, 3)}, full, "manifest", "full")


def test_full_size_comfy_internal_names_map_back_onto_our_vae():
    from hunyuan_custom.pipelines.vae.key_layouts import ldm_to_upstream_names

    shapes = {k: tuple(v) for k, v in json.loads(MANIFEST.read_text())["keys"].items()}
    internal = _to_comfy_internal({k: torch.empty(s, device="meta") for k, s in shapes.items()}, 4)
    back = ldm_to_upstream_names(internal)
    assert set(back) == set(shapes)
    restored = {}
    for ours, (ldm, flatten) in back.items():
        shape = tuple(internal[ldm].shape)
        restored[ours] = shape[:2] if flatten else shape
    check_shapes(restored, vae_module.FULL_SIZE_CONFIG, "internal layout", "the full-size config")


def test_transformer_pt_under_module_key_is_described(tmp_path):
    path = tmp_path / "mp_rank_00_model_states.pt"
    torch.save({"module": {"double_blocks.0.img_mod.linear.weight": torch.zeros(2, 2)}}, path)
    with pytest.raises(VAELoadError, match="transformer") as info:
        load_vae(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("change, message", [
    ({"_class_name": "AutoencoderKL"}, "not the HunyuanVideo causal 3D VAE"),
    ({"disable_causal_conv": True}, "disable_causal_conv"),
    ({"time_compression_ratio": 8}, "time compression 8"),
    ({"down_block_types": ["DownEncoderBlock2D"] * 4}, "down_block_types"),
])
def test_unusable_configs_are_refused_with_the_reason(tmp_path, change, message):
    folder = tmp_path / "vae"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({**_upstream_config(TINY, None), **change}))
    save_file({"vae.decoder.conv_in.conv.weight": torch.zeros(1)}, str(folder / "pytorch_model.safetensors"))
    with pytest.raises(VAELoadError, match=message) as info:
        load_vae(folder)
    assert str(folder / "config.json") in str(info.value)
