"""HunyuanCustom's transformer: diffusers' HunyuanVideo transformer plus reference/editing/audio inputs.

The blocks, attention processors and output layers are diffusers' own (so attention backends,
offloading, layerwise casting and cache hooks keep working); this subclass adds what upstream
HunyuanCustom feeds them:
  * reference-image tokens (same patch embed) placed before the video tokens, with their own RoPE
    rows (see rope.py), carried through every block and dropped before the output layers;
  * editing: `bg_in` (patch embed of the 32-channel masked-video condition) + `bg_proj`, added to
    the video tokens;
  * audio: `audio_proj` + cross-attentions after some double blocks (audio_modules.py);
  * upstream's text mask quirk: the token refiner uses the mask by position, the joint attention
    only its sum (the first `img_len + sum` tokens of [image, text] are valid);
  * text trimmed to its valid length after the refiner, so batch-1 runs need no attention mask
    (flash/sage kernels) while giving the same numbers;
  * upstream's deepcache through an explicit `DeepCache` object (deep_cache.py);
  * the other step caches (step_cache.py) are hooks on the blocks; a block they skip hands back its
    input tensor itself, and then no audio update follows it (the reused residual already has it);
  * sequence parallel (Ulysses) through diffusers' context parallelism: `_cp_plan` splits the tokens
    at `sequence_split` and gathers them at `sequence_gather` (see `_split_for_sequence_parallel`).
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers.configuration_utils import register_to_config
from diffusers.models._modeling_parallel import ContextParallelInput, ContextParallelOutput
from diffusers.models.modeling_outputs import Transformer2DModelOutput
from diffusers.models.transformers.transformer_hunyuan_video import (
    HunyuanVideoPatchEmbed,
    HunyuanVideoTransformer3DModel,
)
from torch import nn

from .audio_modules import AudioCrossAttention, AudioProjection
from .deep_cache import DeepCache, StoredBlockInput
from .rope import reference_rope_tables

# Upstream inserts audio cross-attention after these double blocks (only those that exist).
UPSTREAM_AUDIO_INSERT_AFTER = (1, 3, 5, 7, 9, 11)
# Video frames per latent frame: upstream repeats the first audio frame 3 times to fill frame 0.
FRAMES_PER_LATENT_FRAME = 4


class SequenceSplit(nn.Module):
    """Where sequence parallel splits the tokens (an identity: `_cp_plan` hooks its outputs)."""

    def forward(self, image: torch.Tensor, text: torch.Tensor, text_valid: torch.Tensor, rotary_cos: torch.Tensor,
                rotary_sin: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return image, text, text_valid, rotary_cos, rotary_sin


class SequenceGather(nn.Module):
    """Where sequence parallel gathers the image tokens again, before the output layers."""

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return image


class HunyuanCustomTransformer3DModel(HunyuanVideoTransformer3DModel):
    _skip_layerwise_casting_patterns = ["x_embedder", "bg_in", "context_embedder", "norm"]
    _no_split_modules = HunyuanVideoTransformer3DModel._no_split_modules + ["AudioCrossAttention"]
    # Ulysses (diffusers' context parallelism): [reference; video] tokens, the (padded) text, its
    # validity and the RoPE rows are split over the ranks on the token axis; the image tokens are
    # gathered before the output layers. Every per-token layer then runs on 1/N of the tokens, and
    # attention exchanges heads for tokens (all-to-all inside dispatch_attention_fn).
    _cp_plan = {
        "sequence_split": {
            0: ContextParallelInput(split_dim=1, expected_dims=3, split_output=True),
            1: ContextParallelInput(split_dim=1, expected_dims=3, split_output=True),
            2: ContextParallelInput(split_dim=1, expected_dims=2, split_output=True),
            3: ContextParallelInput(split_dim=0, expected_dims=2, split_output=True),
            4: ContextParallelInput(split_dim=0, expected_dims=2, split_output=True),
        },
        "sequence_gather": ContextParallelOutput(gather_dim=1, expected_dims=3),
    }

    @register_to_config
    def __init__(
        self,
        in_channels: int = 16,
        out_channels: int = 16,
        num_attention_heads: int = 24,
        attention_head_dim: int = 128,
        num_layers: int = 20,
        num_single_layers: int = 40,
        num_refiner_layers: int = 2,
        mlp_ratio: float = 4.0,
        patch_size: int = 2,
        patch_size_t: int = 1,
        qk_norm: str = "rms_norm",
        text_embed_dim: int = 4096,
        pooled_projection_dim: int = 768,
        rope_theta: float = 256.0,
        rope_axes_dim: tuple[int, ...] = (16, 56, 56),
        video_condition: bool = False,
        audio_condition: bool = False,
        audio_seq_len: int = 10,
        audio_blocks: int = 5,
        audio_channels: int = 384,
        audio_intermediate_dim: int = 1024,
        audio_context_tokens: int = 4,
        audio_attention_dim: int = 1024,
        audio_attention_head_dim: int = 1024,
        audio_insert_after: tuple[int, ...] = UPSTREAM_AUDIO_INSERT_AFTER,
        guidance_embeds: bool = False,
        image_condition_type: str | None = None,
    ) -> None:
        # Accepted (and recorded by the parent's config) only so from_config round-trips quietly.
        if guidance_embeds or image_condition_type is not None:
            raise ValueError(
                "HunyuanCustom has no guidance embedding and no image-condition tokens; "
                f"got guidance_embeds={guidance_embeds}, image_condition_type={image_condition_type!r}"
            )
        super().__init__(
            in_channels=in_channels,
            out_channels=out_channels,
            num_attention_heads=num_attention_heads,
            attention_head_dim=attention_head_dim,
            num_layers=num_layers,
            num_single_layers=num_single_layers,
            num_refiner_layers=num_refiner_layers,
            mlp_ratio=mlp_ratio,
            patch_size=patch_size,
            patch_size_t=patch_size_t,
            qk_norm=qk_norm,
            guidance_embeds=False,  # HunyuanCustom uses true CFG (two passes), no guidance embedding
            text_embed_dim=text_embed_dim,
            pooled_projection_dim=pooled_projection_dim,
            rope_theta=rope_theta,
            rope_axes_dim=rope_axes_dim,
            image_condition_type=None,
        )
        hidden = num_attention_heads * attention_head_dim
        if sum(rope_axes_dim) != attention_head_dim:
            raise ValueError(f"rope_axes_dim {list(rope_axes_dim)} must sum to attention_head_dim {attention_head_dim}")
        if video_condition:
            self.bg_in = HunyuanVideoPatchEmbed((patch_size_t, patch_size, patch_size), in_channels * 2, hidden)
            self.bg_proj = nn.Linear(hidden, hidden)
        if audio_condition:
            if patch_size_t != 1:
                raise ValueError("audio conditioning assumes patch_size_t == 1 (one token frame per latent frame)")
            self.audio_proj = AudioProjection(
                seq_len=audio_seq_len,
                blocks=audio_blocks,
                channels=audio_channels,
                intermediate_dim=audio_intermediate_dim,
                output_dim=hidden,
                context_tokens=audio_context_tokens,
            )
            # One module per listed insertion, even past the model's depth, as upstream (checkpoint keys).
            self.audio_models = nn.ModuleList(
                AudioCrossAttention(dim=hidden, dim_hidden=audio_attention_dim, dim_head=audio_attention_head_dim)
                for _ in audio_insert_after
            )
        self._rope_cache: tuple[tuple, tuple[torch.Tensor, torch.Tensor]] | None = None
        self.sequence_split = SequenceSplit()
        self.sequence_gather = SequenceGather()

    # ------------------------------------------------------------------ helpers
    def _rotary_tables(
        self, tt: int, th: int, tw: int, with_reference: bool, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor]:
        key = (tt, th, tw, with_reference, str(device))
        if self._rope_cache is None or self._rope_cache[0] != key:
            tables = reference_rope_tables(
                self.config.rope_axes_dim, tt, th, tw, self.config.rope_theta, with_reference, device=device
            )
            self._rope_cache = (key, tables)
        return self._rope_cache[1]

    @staticmethod
    def _text_and_mask(
        text: torch.Tensor, text_mask: torch.Tensor, image_len: int, trim_text: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Apply upstream's joint-attention rule: only the first `sum(mask)` text tokens are valid.

        Trimming the text to the longest valid length changes nothing for valid tokens (padding
        keys are masked anyway) and, when every row has that length (always at batch 1), leaves
        no mask at all. Otherwise a key-padding mask [B, 1, 1, N] keeps the first
        `image_len + sum` keys of each row.
        """
        valid = text_mask.to(device=text.device).sum(dim=1, dtype=torch.int64)  # [B]
        if trim_text:
            keep = max(1, int(valid.max()))  # at least one token so the [image, text] split stays defined
            text = text[:, :keep]
            if bool((valid == keep).all()):
                return text, None
        positions = torch.arange(image_len + text.shape[1], device=text.device)
        mask = positions.unsqueeze(0) < (image_len + valid).unsqueeze(1)
        return text, mask[:, None, None, :]

    def _audio_context(self, audio_prompts: torch.Tensor, latent_frames: int, like: torch.Tensor) -> torch.Tensor:
        """Audio tokens per latent frame [B, T, 4*context_tokens, hidden]."""
        tokens = self.audio_proj(audio_prompts.to(device=like.device, dtype=like.dtype))  # [B, F, ctx, hidden]
        frames = tokens.shape[1]
        if frames + FRAMES_PER_LATENT_FRAME - 1 != FRAMES_PER_LATENT_FRAME * latent_frames:
            raise ValueError(
                f"audio_prompts has {frames} video frames but the latent has {latent_frames} latent frames, "
                f"which need {FRAMES_PER_LATENT_FRAME * latent_frames - FRAMES_PER_LATENT_FRAME + 1} frames"
            )
        # The first latent frame stands for one video frame: repeat its audio to fill 4 slots.
        first = tokens[:, :1].expand(-1, FRAMES_PER_LATENT_FRAME - 1, -1, -1)
        tokens = torch.cat([first, tokens], dim=1)
        return tokens.reshape(tokens.shape[0], latent_frames, -1, tokens.shape[-1])

    def _add_audio(
        self,
        image: torch.Tensor,
        audio_tokens: torch.Tensor,
        model_index: int,
        reference_tokens: int,
        latent_frames: int,
        audio_strength: float | torch.Tensor,
    ) -> torch.Tensor:
        """Add the audio cross-attention update to the video tokens; reference tokens stay as they are."""
        video = image[:, reference_tokens:]
        per_frame = video.unflatten(1, (latent_frames, -1))
        update = self.audio_models[model_index](audio_tokens, per_frame).flatten(1, 2)
        if isinstance(audio_strength, torch.Tensor) and audio_strength.ndim > 0:
            audio_strength = audio_strength.to(update).view(-1, 1, 1)
        return torch.cat([image[:, :reference_tokens], video + update * audio_strength], dim=1)

    def _sequence_degree(self) -> int:
        """Ranks the tokens are split over (1 without sequence parallel)."""
        config = getattr(self, "_parallel_config", None)
        cp = getattr(config, "context_parallel_config", None)
        return 1 if cp is None else int(cp.ulysses_degree) * int(cp.ring_degree)

    def _split_for_sequence_parallel(
        self, image: torch.Tensor, text: torch.Tensor, valid: torch.Tensor, rotary: tuple[torch.Tensor, torch.Tensor],
        degree: int,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, tuple[torch.Tensor, torch.Tensor], int]:
        """This rank's share of the tokens: (image, text, attention mask, RoPE rows, first image token's index).

        The valid-text-length rule: the text is split over the ranks like the image (padded with zero
        tokens to a multiple of the ranks), and each rank's key mask marks its padding invalid;
        diffusers' Ulysses gathers those masks into the same order as the gathered keys. Keeping the
        text whole on every rank (upstream's way) would need an attention of our own: the all-to-all
        would hand every rank N copies of the text keys. Attention does not depend on the order of
        the keys, so the permuted order gives the same result; no mask at all when no padding was
        needed (the common batch-1 case), so flash/sage kernels still apply.
        """
        length = text.shape[1]
        padded = -(-length // degree) * degree
        if padded != length:
            text = torch.nn.functional.pad(text, (0, 0, 0, padded - length))
        text_valid = torch.arange(padded, device=text.device).unsqueeze(0) < valid.to(text.device).unsqueeze(1)
        needs_mask = not bool(text_valid.all())  # decided on the whole text: every rank takes the same path
        image, text, text_valid, cos, sin = self.sequence_split(image, text, text_valid, *rotary)
        mask = None
        if needs_mask:
            image_valid = torch.ones(image.shape[:2], dtype=torch.bool, device=image.device)
            mask = torch.cat([image_valid, text_valid], dim=1)[:, None, None, :]
        cp = self._parallel_config.context_parallel_config
        rank = torch.distributed.get_rank(cp._flattened_mesh.get_group())
        return image, text, mask, (cos, sin), rank * image.shape[1]

    def _add_audio_to_share(
        self, image: torch.Tensor, audio_tokens: torch.Tensor, model_index: int, reference_tokens: int,
        frame_tokens: int, offset: int, audio_strength: float | torch.Tensor,
    ) -> torch.Tensor:
        """`_add_audio` for one rank's tokens (global positions offset..offset+len): each video token's
        update depends only on itself and its latent frame's audio tokens, so the share is cut at the
        frame borders and each piece attends to its frame's audio; no exchange between ranks."""
        pieces, start, end = [], offset, offset + image.shape[1]
        if start < reference_tokens:
            pieces.append(image[:, : min(end, reference_tokens) - start])
            start = min(end, reference_tokens)
        if isinstance(audio_strength, torch.Tensor) and audio_strength.ndim > 0:
            audio_strength = audio_strength.view(-1, 1, 1)
        while start < end:
            frame = (start - reference_tokens) // frame_tokens
            stop = min(end, reference_tokens + (frame + 1) * frame_tokens)
            tokens = image[:, start - offset : stop - offset]
            update = self.audio_models[model_index](audio_tokens[:, frame : frame + 1], tokens.unsqueeze(1)).flatten(1, 2)
            strength = audio_strength.to(update) if isinstance(audio_strength, torch.Tensor) else audio_strength
            pieces.append(tokens + update * strength)
            start = stop
        return torch.cat(pieces, dim=1)

    def _run_block(self, block: nn.Module, *args: Any) -> tuple[torch.Tensor, torch.Tensor]:
        if torch.is_grad_enabled() and self.gradient_checkpointing:
            return self._gradient_checkpointing_func(block, *args)
        return block(*args)

    def _output_layers(
        self, video_tokens: torch.Tensor, temb: torch.Tensor, batch: int, tt: int, th: int, tw: int
    ) -> torch.Tensor:
        """norm_out + proj_out on the video tokens, then tokens -> [B, C, T, H, W]."""
        p, p_t = self.config.patch_size, self.config.patch_size_t
        hidden = self.proj_out(self.norm_out(video_tokens, temb))
        hidden = hidden.reshape(batch, tt, th, tw, -1, p_t, p, p)
        hidden = hidden.permute(0, 4, 1, 5, 2, 6, 3, 7)
        return hidden.flatten(6, 7).flatten(4, 5).flatten(2, 3)

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        hidden_states: torch.Tensor,
        timestep: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        encoder_attention_mask: torch.Tensor | None,
        pooled_projections: torch.Tensor,
        ref_latents: torch.Tensor | None = None,
        bg_latents: torch.Tensor | None = None,
        audio_prompts: torch.Tensor | None = None,
        audio_strength: float | torch.Tensor = 1.0,
        deep_cache: DeepCache | None = None,
        trim_text: bool = True,
        attention_kwargs: dict[str, Any] | None = None,
        return_dict: bool = True,
    ) -> tuple[torch.Tensor] | Transformer2DModelOutput:
        """Predict the flow velocity [B, out_channels, T, H, W] (upstream's `['x']`).

        hidden_states: noisy latent [B, 16, T, H, W]; timestep: sigma*1000, float [B].
        encoder_hidden_states / encoder_attention_mask: LLaVA states [B, L, D] and their int mask
        [B, L] exactly as upstream builds it (may be non-contiguous, see module docstring).
        pooled_projections: CLIP pooled vector [B, 768].
        ref_latents: reference-image latent [B, 16, 1, H, W] (same H, W as the video).
        bg_latents: editing condition [B, 32, T, H, W] (editing checkpoint only).
        audio_prompts: whisper windows [B, 4T-3, 10, 5, 384] (audio checkpoint only), scaled by audio_strength.
        deep_cache: see deep_cache.py. trim_text=False keeps the padded text plus a mask (slower, same result).
        """
        if attention_kwargs:
            raise ValueError("attention_kwargs (LoRA scale) is not supported by HunyuanCustomTransformer3DModel")
        batch, _, frames, height, width = hidden_states.shape
        p, p_t = self.config.patch_size, self.config.patch_size_t
        tt, th, tw = frames // p_t, height // p, width // p
        if timestep.ndim == 0:
            timestep = timestep.expand(batch)
        if encoder_attention_mask is None:
            encoder_attention_mask = torch.ones(encoder_hidden_states.shape[:2], dtype=torch.int64, device=encoder_hidden_states.device)
        temb, _ = self.time_text_embed(timestep, pooled_projections)
        mode = deep_cache.mode if deep_cache is not None else "off"
        if mode not in ("off", "store", "reuse"):
            raise ValueError(f"DeepCache.mode must be 'off', 'store' or 'reuse', got {mode!r}")

        if mode == "reuse":
            stored = deep_cache.stored_for(tuple(hidden_states.shape))
            if len(self.single_transformer_blocks) == 0:
                raise RuntimeError("DeepCache reuse needs at least one single-stream block")
            image, _ = self._run_block(
                self.single_transformer_blocks[-1],
                stored.image_tokens,
                stored.text_tokens,
                temb,
                stored.attention_mask,
                stored.rotary_emb,
            )
            if self._sequence_degree() > 1:
                image = self.sequence_gather(image)
            out = self._output_layers(image[:, stored.reference_tokens :], temb, batch, tt, th, tw)
            return Transformer2DModelOutput(sample=out) if return_dict else (out,)

        video = self.x_embedder(hidden_states)
        if bg_latents is not None:
            if not self.config.video_condition:
                raise ValueError("bg_latents were given but this transformer has no editing inputs (video_condition=False)")
            video = video + self.bg_proj(self.bg_in(bg_latents.to(hidden_states.dtype)))
        if ref_latents is not None:
            if ref_latents.shape[2] != 1 or tuple(ref_latents.shape[3:]) != (height, width):
                raise ValueError(
                    f"ref_latents must be [B, C, 1, {height}, {width}] to match the video latent, got {list(ref_latents.shape)}"
                )
            reference = self.x_embedder(ref_latents.to(hidden_states.dtype))
            image = torch.cat([reference, video], dim=1)
        else:
            reference, image = None, video
        reference_tokens = 0 if reference is None else reference.shape[1]

        text = self.context_embedder(encoder_hidden_states, timestep, encoder_attention_mask)
        text, attention_mask = self._text_and_mask(text, encoder_attention_mask, image.shape[1], trim_text)
        rotary = self._rotary_tables(tt, th, tw, reference is not None, hidden_states.device)
        degree, offset = self._sequence_degree(), 0
        if degree > 1:
            valid = encoder_attention_mask.sum(dim=1, dtype=torch.int64)
            image, text, attention_mask, rotary, offset = self._split_for_sequence_parallel(
                image, text, valid, rotary, degree)

        audio_tokens = None
        if audio_prompts is not None:
            if not self.config.audio_condition:
                raise ValueError("audio_prompts were given but this transformer has no audio inputs (audio_condition=False)")
            audio_tokens = self._audio_context(audio_prompts, frames, like=video)
        insert_after = list(self.config.audio_insert_after) if audio_tokens is not None else []

        for index, block in enumerate(self.transformer_blocks):
            block_input = image
            image, text = self._run_block(block, image, text, temb, attention_mask, rotary)
            if index in insert_after and image is not block_input:
                if degree > 1:
                    image = self._add_audio_to_share(image, audio_tokens, insert_after.index(index),
                                                     reference_tokens, th * tw, offset, audio_strength)
                else:
                    image = self._add_audio(
                        image, audio_tokens, insert_after.index(index), reference_tokens, frames, audio_strength
                    )

        last = len(self.single_transformer_blocks) - 1
        for index, block in enumerate(self.single_transformer_blocks):
            if mode == "store" and index == last:
                deep_cache.stored = StoredBlockInput(
                    image, text, attention_mask, rotary, reference_tokens, tuple(hidden_states.shape)
                )
            image, text = self._run_block(block, image, text, temb, attention_mask, rotary)

        if degree > 1:
            image = self.sequence_gather(image)
        out = self._output_layers(image[:, reference_tokens:], temb, batch, tt, th, tw)
        return Transformer2DModelOutput(sample=out) if return_dict else (out,)
