"""HunyuanCustom's causal 3D VAE on diffusers' `AutoencoderKLHunyuanVideo`.

diffusers' modules are used as they are (same parameter names as upstream's
AutoencoderKLCausal3D, so checkpoints load without renaming). Two things are ours:

* mid-block attention: diffusers always applies a causal frame mask there; upstream HunyuanCustom
  reads `mid_block_causal_attn` from its config (default False = no mask). A non-causal mid-block
  is the diffusers block with one method overridden (`_NonCausalMidBlock`), nothing else copied.
* tiling: upstream's tiling scheme (pipelines/vae/tiling.py), tile sizes from sample_size /
  sample_tsize, instead of diffusers' different one.

encode/decode do NOT apply the scaling factor (as upstream): multiply latents by
`vae.scaling_factor` after encode and divide before decode.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch

from ..weights_io import check_config_bounds, read_json_file
from .tiling import OVERLAP, TileCallback, TileSizes, iter_tiled, run_tiled


class VAEConfigError(ValueError):
    """A VAE config that cannot describe the HunyuanVideo/HunyuanCustom causal 3D VAE."""


UPSTREAM_DOWN_BLOCK = "DownEncoderBlockCausal3D"
UPSTREAM_UP_BLOCK = "UpDecoderBlockCausal3D"
DIFFUSERS_DOWN_BLOCK = "HunyuanVideoDownBlock3D"
DIFFUSERS_UP_BLOCK = "HunyuanVideoUpBlock3D"
DIFFUSERS_CLASS = "AutoencoderKLHunyuanVideo"
UPSTREAM_CLASS = "AutoencoderKLCausal3D"

# Keys of upstream's config that have no effect on the numbers (deployment switches).
_IGNORED_UPSTREAM_KEYS = {"force_upcast", "use_trt_engine", "nccl_gather", "engine_path", "_class_name",
                          "_diffusers_version", "_name_or_path"}


@dataclass(frozen=True)
class VAEConfig:
    """Everything that shapes the VAE's numbers. Defaults = the full-size HunyuanVideo 884-16c VAE."""

    in_channels: int = 3
    out_channels: int = 3
    latent_channels: int = 16
    block_out_channels: tuple[int, ...] = (128, 256, 512, 512)
    layers_per_block: int = 2
    act_fn: str = "silu"
    norm_num_groups: int = 32
    scaling_factor: float = 0.476986
    spatial_compression_ratio: int = 8
    time_compression_ratio: int = 4
    mid_block_add_attention: bool = True
    # Causal frame mask in the encoder/decoder mid-block attention (see module docstring).
    mid_block_causal_attn: bool = False
    sample_size: int = 256  # spatial tile, pixels
    sample_tsize: int = 64  # temporal tile, frames
    notes: tuple[str, ...] = field(default=(), compare=False)

    @property
    def tile_latent_size(self) -> int:
        # Upstream: sample_size / 2**(number of blocks - 1), i.e. the VAE's spatial downscale.
        return int(self.sample_size / (2 ** (len(self.block_out_channels) - 1)))

    @property
    def tile_latent_tsize(self) -> int:
        return self.sample_tsize // self.time_compression_ratio

    def encode_tiles(self) -> TileSizes:
        return TileSizes(self.sample_size, self.tile_latent_size, self.sample_tsize, self.tile_latent_tsize)

    def decode_tiles(self, tile_frames: int | None = None) -> TileSizes:
        """Decode tile sizes; `tile_frames` (video frames per temporal tile, see check_tile_frames)
        replaces sample_tsize for this call, None keeps upstream's."""
        frames = self.sample_tsize if tile_frames is None else check_tile_frames(tile_frames, self.time_compression_ratio)
        return TileSizes(self.tile_latent_size, self.sample_size, frames // self.time_compression_ratio, frames)

    def diffusers_kwargs(self) -> dict[str, Any]:
        blocks = len(self.block_out_channels)
        return dict(
            in_channels=self.in_channels,
            out_channels=self.out_channels,
            latent_channels=self.latent_channels,
            down_block_types=(DIFFUSERS_DOWN_BLOCK,) * blocks,
            up_block_types=(DIFFUSERS_UP_BLOCK,) * blocks,
            block_out_channels=tuple(self.block_out_channels),
            layers_per_block=self.layers_per_block,
            act_fn=self.act_fn,
            norm_num_groups=self.norm_num_groups,
            scaling_factor=self.scaling_factor,
            spatial_compression_ratio=self.spatial_compression_ratio,
            temporal_compression_ratio=self.time_compression_ratio,
            mid_block_add_attention=self.mid_block_add_attention,
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["block_out_channels"] = list(self.block_out_channels)
        data.pop("notes")
        return data


FULL_SIZE_CONFIG = VAEConfig()
# The largest sizes a config.json may ask for (the released VAE: 4 blocks up to 512 channels, 2 layers
# each, 16 latent channels): a few times more, so a stray config is refused before anything is built.
CONFIG_BOUNDS = {"block_out_channels": 4096, "layers_per_block": 16, "latent_channels": 256, "in_channels": 16,
                 "out_channels": 16, "norm_num_groups": 512, "sample_size": 8192, "sample_tsize": 2048}


def tile_frames_step(time_compression_ratio: int = 4) -> int:
    """Temporal decode tiles must be a multiple of this many video frames (16 for the 884 VAE)."""
    # The latent tile (frames / ratio) times 1 - OVERLAP = 3/4 must be a whole number of latent frames.
    return time_compression_ratio * round(1 / OVERLAP)


def check_tile_frames(tile_frames: Any, time_compression_ratio: int = 4) -> int:
    """`tile_frames` if it is a valid temporal decode tile (video frames), else a ValueError that says why.

    A tile of N frames decodes N/4 latent frames plus one causal-context latent into N+1 video frames
    (the 4n+1 structure). Tiles start every 3/4 of a tile (overlap 1/4) and each keeps 3/4 of N
    frames, blended over N/4: the start step of int(N/4 * 3/4) latent frames (x4 video frames) equals
    the kept 3N/4 video frames only when N/4 is a multiple of 4. Any other N (8, 24, 40, ...) gives a
    video of the wrong length with misplaced blends, so the allowed values are the multiples of 16:
    16, 32, 48, 64, ... (above upstream's 64 only costs more memory).
    """
    step = tile_frames_step(time_compression_ratio)
    if isinstance(tile_frames, bool) or not isinstance(tile_frames, int) or tile_frames < step or tile_frames % step:
        raise ValueError(f"VAE decode tile of {tile_frames!r} frames is not allowed: use a multiple of {step} "
                         f"({step}, {2 * step}, {4 * step}, ...; upstream uses 64). Other lengths break the overlap of the "
                         f"{time_compression_ratio}x time-compressed tiles and give a video of the wrong length.")
    return tile_frames


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, (list, tuple)) else value


def _check_block_types(types: Any, allowed: set[str], what: str, source: str) -> None:
    if types is None:
        return
    bad = sorted({t for t in types if t not in allowed})
    if bad:
        raise VAEConfigError(f"{source}: {what} {bad} are not the causal 3D VAE's blocks (expected one of {sorted(allowed)})")


def config_from_dict(data: Mapping[str, Any], source: str = "VAE config",
                     causal_default: bool | None = None) -> VAEConfig:
    """VAEConfig from upstream's AutoencoderKLCausal3D config.json, a diffusers
    AutoencoderKLHunyuanVideo config.json, or our fixture format ({"constructor_kwargs": {...}}).

    `mid_block_causal_attn`: taken from the config when present. Otherwise upstream's configs get
    False (HunyuanCustom's class default) and diffusers configs True (diffusers always masks),
    unless `causal_default` says otherwise.
    """
    if "constructor_kwargs" in data:
        data = data["constructor_kwargs"]
    data = dict(data)
    class_name = data.get("_class_name")
    is_diffusers = class_name == DIFFUSERS_CLASS or "temporal_compression_ratio" in data
    if class_name not in (None, DIFFUSERS_CLASS, UPSTREAM_CLASS):
        raise VAEConfigError(f"{source} describes a {class_name}, not the HunyuanVideo causal 3D VAE "
                             f"({UPSTREAM_CLASS} or diffusers {DIFFUSERS_CLASS})")
    if not ("block_out_channels" in data and "latent_channels" in data):
        raise VAEConfigError(f"{source} has no block_out_channels/latent_channels: not a VAE config")
    check_config_bounds(data, CONFIG_BOUNDS, source, VAEConfigError)
    _check_block_types(data.get("down_block_types"), {UPSTREAM_DOWN_BLOCK, DIFFUSERS_DOWN_BLOCK}, "down_block_types", source)
    _check_block_types(data.get("up_block_types"), {UPSTREAM_UP_BLOCK, DIFFUSERS_UP_BLOCK}, "up_block_types", source)
    if data.get("disable_causal_conv"):
        raise VAEConfigError(f"{source}: disable_causal_conv=true is not supported (the released VAE uses causal convolutions)")
    time_ratio = int(data.get("temporal_compression_ratio", data.get("time_compression_ratio", 4)))
    if time_ratio != 4:
        raise VAEConfigError(f"{source}: time compression {time_ratio} is not supported (the 884 VAE compresses time 4x)")
    blocks = tuple(int(c) for c in data["block_out_channels"])
    for key in ("down_block_types", "up_block_types"):
        if data.get(key) is not None and len(data[key]) != len(blocks):
            raise VAEConfigError(f"{source}: {len(data[key])} {key} for {len(blocks)} block_out_channels")
    if "mid_block_causal_attn" in data:
        causal = bool(data["mid_block_causal_attn"])
        notes: tuple[str, ...] = ()
    else:
        causal = causal_default if causal_default is not None else is_diffusers
        notes = (f"mid_block_causal_attn not in {source}; using {causal}",)
    defaults = FULL_SIZE_CONFIG
    return VAEConfig(
        in_channels=int(data.get("in_channels", defaults.in_channels)),
        out_channels=int(data.get("out_channels", defaults.out_channels)),
        latent_channels=int(data["latent_channels"]),
        block_out_channels=blocks,
        layers_per_block=int(data.get("layers_per_block", defaults.layers_per_block)),
        act_fn=str(data.get("act_fn", defaults.act_fn)),
        norm_num_groups=int(data.get("norm_num_groups", defaults.norm_num_groups)),
        scaling_factor=float(data.get("scaling_factor", defaults.scaling_factor)),
        spatial_compression_ratio=int(data.get("spatial_compression_ratio", defaults.spatial_compression_ratio)),
        time_compression_ratio=time_ratio,
        mid_block_add_attention=bool(data.get("mid_block_add_attention", True)),
        mid_block_causal_attn=causal,
        sample_size=int(_first(data.get("sample_size", defaults.sample_size))),
        sample_tsize=int(data.get("sample_tsize", defaults.sample_tsize)),
        notes=notes,
    )


def read_config(path: str | os.PathLike, causal_default: bool | None = None) -> VAEConfig:
    path = Path(path)
    data = read_json_file(path, VAEConfigError)
    if not isinstance(data, dict):
        raise VAEConfigError(f"VAE config {path} is not a JSON object")
    return config_from_dict(data, source=str(path), causal_default=causal_default)


@lru_cache(maxsize=None)
def _non_causal_mid_block_class():
    from diffusers.models.autoencoders.autoencoder_kl_hunyuan_video import HunyuanVideoMidBlock3D

    class _NonCausalMidBlock(HunyuanVideoMidBlock3D):
        """diffusers' mid-block with attention over all frames (no causal mask), as upstream
        HunyuanCustom does with mid_block_causal_attn=False. Also skips building the
        (frames*h*w)^2 mask that diffusers would allocate."""

        def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
            hidden_states = self.resnets[0](hidden_states)
            for attn, resnet in zip(self.attentions, self.resnets[1:]):
                if attn is not None:
                    b, c, f, h, w = hidden_states.shape
                    tokens = hidden_states.permute(0, 2, 3, 4, 1).flatten(1, 3)
                    tokens = attn(tokens, attention_mask=None)
                    hidden_states = tokens.unflatten(1, (f, h, w)).permute(0, 4, 1, 2, 3)
                hidden_states = resnet(hidden_states)
            return hidden_states

    return _NonCausalMidBlock


def set_mid_block_causal(model: torch.nn.Module, causal: bool) -> None:
    """Switch the encoder's and decoder's mid-block attention between causal (diffusers' own
    forward) and non-causal (our override). Parameters and state-dict keys are unchanged."""
    from diffusers.models.autoencoders.autoencoder_kl_hunyuan_video import HunyuanVideoMidBlock3D

    non_causal = _non_causal_mid_block_class()
    for part in (model.encoder, model.decoder):
        block = part.mid_block
        block.__class__ = HunyuanVideoMidBlock3D if causal else non_causal


def build_diffusers_vae(config: VAEConfig, device: torch.device | str = "cpu",
                        dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    """An AutoencoderKLHunyuanVideo for `config` (random init; device "meta" allocates nothing)."""
    from diffusers import AutoencoderKLHunyuanVideo

    with torch.device(device):
        model = AutoencoderKLHunyuanVideo(**config.diffusers_kwargs())
    set_mid_block_causal(model, config.mid_block_causal_attn)
    if torch.device(device).type != "meta" and dtype != torch.float32:
        # nn.Module.to: ModelMixin.to warns about fp32-pinned modules, and this VAE has none.
        torch.nn.Module.to(model, dtype=dtype)
    return model.eval().requires_grad_(False)


class HunyuanVideoVAE:
    """The VAE with upstream's encode/decode semantics (and tiling) around a diffusers model."""

    def __init__(self, model: torch.nn.Module, config: VAEConfig, source: str = "") -> None:
        self.model = model
        self.config = config
        self.source = source

    @classmethod
    def from_config(cls, config: VAEConfig, device: torch.device | str = "cpu",
                    dtype: torch.dtype = torch.float32) -> "HunyuanVideoVAE":
        return cls(build_diffusers_vae(config, device=device, dtype=dtype), config)

    @property
    def scaling_factor(self) -> float:
        return self.config.scaling_factor

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "HunyuanVideoVAE":
        torch.nn.Module.to(self.model, device=device, dtype=dtype)
        return self

    def set_causal_attention(self, causal: bool) -> None:
        set_mid_block_causal(self.model, causal)
        self.config = replace(self.config, mid_block_causal_attn=causal)

    def _to_model_input(self, video: torch.Tensor) -> torch.Tensor:
        if video.dtype == torch.uint8:
            video = (video.to(torch.float32) / 255.0) * 2 - 1
        return video.to(device=self.device, dtype=self.dtype)

    def _encode_tile(self, video: torch.Tensor) -> torch.Tensor:
        return self.model.quant_conv(self.model.encoder(video))

    def _decode_tile(self, latent: torch.Tensor) -> torch.Tensor:
        return self.model.decoder(self.model.post_quant_conv(latent))

    @torch.no_grad()
    def encode_moments(self, video: torch.Tensor, tiled: bool = False, on_tile: TileCallback | None = None) -> torch.Tensor:
        """quant_conv output [B, 2*latent, T', H/8, W/8] = cat(mean, raw logvar).

        A uint8 video (0..255) is mapped to [-1, 1] as x / 255 * 2 - 1 in float32 (upstream's order),
        and a tiled encode moves each tile to the device on its own: the same numbers as mapping and
        moving the whole video first, but neither a float copy of a long video in RAM nor the whole
        video on the device."""
        _check_5d(video, "video")
        if tiled:
            def encode_tile(tile: torch.Tensor) -> torch.Tensor:
                return self._encode_tile(self._to_model_input(tile))

            return run_tiled(video, encode_tile, self.config.encode_tiles(), on_tile)
        out = self._encode_tile(self._to_model_input(video))
        if on_tile is not None:
            on_tile(1, 1)
        return out

    def encode(self, video: torch.Tensor, tiled: bool = False, on_tile: TileCallback | None = None):
        """Latent distribution (diffusers' DiagonalGaussianDistribution: .mean, .logvar clamped to
        [-30, 20], .sample(generator) draws randn(mean.shape) like upstream). Video in [-1, 1],
        [B, 3, F, H, W]. No scaling factor applied."""
        from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

        return DiagonalGaussianDistribution(self.encode_moments(video, tiled=tiled, on_tile=on_tile))

    @torch.no_grad()
    def decode(self, latent: torch.Tensor, tiled: bool = False, on_tile: TileCallback | None = None,
               tile_frames: int | None = None) -> torch.Tensor:
        """Video [B, 3, F, H, W] (about [-1, 1]) from UNSCALED latents [B, C, T, h, w].

        `tile_frames`: video frames per temporal tile (a multiple of 16, see check_tile_frames) instead
        of upstream's sample_tsize (64), for this call. Shorter tiles lower the decode's VRAM peak
        about in proportion; the result differs slightly from upstream's, as each tile's GroupNorm
        statistics and mid-block attention see fewer frames (bit-identical for tile_frames=None)."""
        _check_5d(latent, "latent")
        if latent.shape[1] != self.config.latent_channels:
            raise ValueError(f"latent has {latent.shape[1]} channels, this VAE expects {self.config.latent_channels}")
        if tile_frames is not None and not tiled:
            raise ValueError(f"tile_frames={tile_frames} only applies to a tiled decode (tiled=True)")
        tiles = self.config.decode_tiles(tile_frames)  # validates tile_frames before any work
        latent = latent.to(device=self.device, dtype=self.dtype)
        if tiled:
            return run_tiled(latent, self._decode_tile, tiles, on_tile)
        out = self._decode_tile(latent)
        if on_tile is not None:
            on_tile(1, 1)
        return out


    @torch.no_grad()
    def decode_parts(self, latent: torch.Tensor, tiled: bool = False, on_tile: TileCallback | None = None,
                     tile_frames: int | None = None) -> Iterator[torch.Tensor]:
        """`decode`'s video in parts along time, as each is final (tiling.iter_tiled): concatenated on
        dim 2 they are `decode`'s output bit for bit; a long video is never whole on the device."""
        _check_5d(latent, "latent")
        if latent.shape[1] != self.config.latent_channels:
            raise ValueError(f"latent has {latent.shape[1]} channels, this VAE expects {self.config.latent_channels}")
        if tile_frames is not None and not tiled:
            raise ValueError(f"tile_frames={tile_frames} only applies to a tiled decode (tiled=True)")
        tiles = self.config.decode_tiles(tile_frames)
        latent = latent.to(device=self.device, dtype=self.dtype)
        if not tiled:
            out = self._decode_tile(latent)
            if on_tile is not None:
                on_tile(1, 1)
            yield out
            return
        yield from iter_tiled(latent, self._decode_tile, tiles, on_tile)


def _check_5d(x: torch.Tensor, name: str) -> None:
    if x.ndim != 5:
        raise ValueError(f"{name} must be [batch, channels, frames, height, width], got shape {tuple(x.shape)}")
