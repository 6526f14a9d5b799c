"""Test helpers: build our transformer from a reference fixture folder, capture intermediates, compare."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from hunyuan_custom.pipelines.diffusion_models.transformer import HunyuanCustomTransformer3DModel
from hunyuan_custom.pipelines.vae import model as vae_module
from hunyuan_custom.pipelines.diffusion_models.keys import config_from_upstream_json, convert_upstream_state_dict

ATOL = RTOL = 1e-4  # reference README: single transformer forward, float32


def mismatch(actual: torch.Tensor, expected: torch.Tensor, atol: float = ATOL, rtol: float = RTOL) -> str | None:
    """None when close (torch.allclose rule), else a message with the worst difference."""
    if tuple(actual.shape) != tuple(expected.shape):
        return f"shape {list(actual.shape)} != expected {list(expected.shape)}"
    actual, expected = actual.detach().float().cpu(), expected.detach().float().cpu()
    if not torch.isfinite(expected).all():
        return "expected tensor has non-finite values"
    diff = (actual - expected).abs()
    excess = diff - (atol + rtol * expected.abs())
    if bool((excess > 0).any()) or not torch.isfinite(actual).all():
        return f"max |diff| {diff.max().item():.3e} (atol {atol}, rtol {rtol})"
    return None


def assert_all_close(pairs: dict[str, tuple[torch.Tensor, torch.Tensor]], atol: float = ATOL, rtol: float = RTOL) -> None:
    problems = {name: mismatch(a, e, atol, rtol) for name, (a, e) in pairs.items()}
    problems = {name: why for name, why in problems.items() if why}
    assert not problems, "parity failures:\n" + "\n".join(f"  {n}: {w}" for n, w in sorted(problems.items()))


def build_from_fixture(folder: Path, weights_file: str = "weights.safetensors") -> HunyuanCustomTransformer3DModel:
    cfg = json.loads((folder / "config.json").read_text())
    model = HunyuanCustomTransformer3DModel(**config_from_upstream_json(cfg)).eval()
    state = convert_upstream_state_dict(load_file(str(folder / weights_file)))
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not missing and not unexpected, f"missing {missing}, unexpected {unexpected}"
    return model


def rope_grid(model: HunyuanCustomTransformer3DModel, latent: torch.Tensor) -> tuple[int, int, int]:
    p, p_t = model.config.patch_size, model.config.patch_size_t
    return latent.shape[2] // p_t, latent.shape[3] // p, latent.shape[4] // p


class Intermediates:
    """Forward hooks naming our modules' outputs like the fixtures' `inter.*` tensors."""

    def __init__(self, model: HunyuanCustomTransformer3DModel) -> None:
        self.values: dict[str, list] = {}
        named = {
            "time_in": model.time_text_embed.timestep_embedder,
            "vector_in": model.time_text_embed.text_embedder,
            "img_in": model.x_embedder,  # called for the video first, then the reference
            "txt_in": model.context_embedder,
            "final_layer": model.proj_out,
        }
        if model.config.video_condition:
            named.update(bg_in=model.bg_in, bg_proj=model.bg_proj)
        if model.config.audio_condition:
            named["audio_proj"] = model.audio_proj
            named.update({f"audio_models.{i}.out": m for i, m in enumerate(model.audio_models)})
        named.update({f"double_blocks.{i}": b for i, b in enumerate(model.transformer_blocks)})
        named.update({f"single_blocks.{i}": b for i, b in enumerate(model.single_transformer_blocks)})
        self.handles = [module.register_forward_hook(self._hook(name)) for name, module in named.items()]

    def _hook(self, name):
        def record(_module, _inputs, output):
            self.values.setdefault(name, []).append(output)

        return record

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()

    def as_fixture_names(self) -> dict[str, torch.Tensor]:
        """Our captures under the fixture's names (text parts possibly trimmed: compare valid rows)."""
        out: dict[str, torch.Tensor] = {}
        for name, outputs in self.values.items():
            first = outputs[0]
            if name == "img_in":
                out["inter.img_in"] = first
                if len(outputs) > 1:
                    out["inter.img_in.ref"] = outputs[1]
            elif name.startswith("double_blocks."):
                out[f"inter.{name}.img"], out[f"inter.{name}.txt"] = first
            elif name.startswith("single_blocks."):
                out[f"inter.{name}"] = torch.cat(first, dim=1)
            else:
                out[f"inter.{name}"] = first
        return out


def valid_text_rows(name: str, tensor: torch.Tensor, text_mask: torch.Tensor, image_tokens: int) -> list[torch.Tensor]:
    """Per batch row, the part of an intermediate upstream defines for valid tokens.

    Joint attention treats the first `sum(mask)` text tokens as valid (upstream's varlen segments),
    so double-block text outputs and single-block outputs are compared on those rows only; the
    refiner output (`inter.txt_in`) is positional and compared in full.
    """
    valid = text_mask.sum(dim=1).tolist()
    if name.startswith("inter.double_blocks.") and name.endswith(".txt"):
        return [tensor[b, : int(n)] for b, n in enumerate(valid)]
    if name.startswith("inter.single_blocks."):
        return [tensor[b, : image_tokens + int(n)] for b, n in enumerate(valid)]
    return [tensor]


def intermediate_pairs(
    ours: dict[str, torch.Tensor], io: dict[str, torch.Tensor], image_tokens: int
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """(ours, expected) for EVERY inter.* tensor of the fixture; a name we do not produce fails."""
    pairs = {}
    for name in sorted(k for k in io if k.startswith("inter.")):
        assert name in ours, f"fixture has {name} but the model produced no such intermediate"
        mine = valid_text_rows(name, ours[name], io["text_mask"], image_tokens)
        theirs = valid_text_rows(name, io[name], io["text_mask"], image_tokens)
        for row, (a, e) in enumerate(zip(mine, theirs)):
            pairs[f"{name}[{row}]"] = (a, e)
    return pairs


def forward_fixture(model, io: dict[str, torch.Tensor], **kwargs) -> torch.Tensor:
    with torch.no_grad():
        return model(
            io["x"],
            io["t"],
            io["text_states"],
            io["text_mask"],
            io["text_states_2"],
            ref_latents=io["ref_latents"],
            bg_latents=io.get("bg_latents"),
            **kwargs,
        ).sample


def decode_with_set_vae(folder: Path, config: dict, latents: torch.Tensor) -> torch.Tensor:
    """A sampling-loop set's `decoded_video`: its VAE (config["vae"]) decodes the final latents, tiled
    as upstream, mapped to [0, 1]."""
    vae_cfg = vae_module.config_from_dict({"constructor_kwargs": config["vae"]["constructor_kwargs"]})
    vae = vae_module.HunyuanVideoVAE.from_config(vae_cfg)
    vae.model.load_state_dict(load_file(str(folder / config["vae"]["weights"])), strict=True)
    return (vae.decode(latents / vae.scaling_factor, tiled=True) / 2 + 0.5).clamp(0, 1)
