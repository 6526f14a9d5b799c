"""offload 'group' with the audio checkpoint: the six audio cross-attention modules are streamed
like the blocks, and the audio still reaches the result (upstream's own low-VRAM path drops it).

Both devices are the CPU here, which still runs every diffusers hook with the real module tree.
"""

from __future__ import annotations

import copy

import pytest
import torch

from _transformer_parity import build_from_fixture
from hunyuan_custom.pipelines.offload_policy import stream_transformer_blocks
from hunyuan_custom.pipelines.sampling import DenoiseRequest, denoise, initial_noise, latent_shape
from hunyuan_custom.pipelines.text_encoders.encoding import TextConditioning


@pytest.fixture(scope="module")
def audio_model(reference_dir):
    return build_from_fixture(reference_dir / "audio", "transformer_audio_weights.safetensors")


def _request(model, **over) -> DenoiseRequest:
    g = torch.Generator().manual_seed(3)
    mask = torch.ones(2, 10, dtype=torch.int64)
    mask[0, 6:] = 0
    text = TextConditioning(torch.randn(2, 10, model.config.text_embed_dim, generator=g), mask,
                            torch.randn(2, model.config.pooled_projection_dim, generator=g))
    frames = 5
    proj = model.audio_proj
    windows = torch.randn(1, frames, proj.seq_len, proj.blocks, proj.channels, generator=g)
    args = dict(latents=initial_noise(2, latent_shape(frames, 32, 32)),
                ref_latents=torch.randn(1, 16, 1, 4, 4, generator=g), text=text, steps=30, flow_shift=13.0, guidance_scale=7.5, deep_cache=True, audio_prompts=windows,
                audio_strength=0.8, cfg_batched=True)
    return DenoiseRequest(**{**args, **over})


def test_group_offload_streams_every_audio_module_and_keeps_the_audio(audio_model):
    offloaded = copy.deepcopy(audio_model)
    stream_transformer_blocks(offloaded, "cpu", use_stream=False)
    streamed = [i for i, m in enumerate(offloaded.audio_models)
                if getattr(m, "_diffusers_hook", None) is not None and m._diffusers_hook.get_hook("group_offloading")]
    assert streamed == list(range(len(offloaded.audio_models))) and len(streamed) == 6

    request = _request(audio_model)  # 30 steps: deepcache's reuse steps skip the audio insertions too
    with torch.no_grad():
        expected = denoise(audio_model, request)
        got = denoise(offloaded, request)
        short = denoise(offloaded, _request(audio_model, steps=2))
        without_audio = denoise(offloaded, _request(audio_model, steps=2, audio_prompts=None))
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    assert (short - without_audio).abs().max() > 1e-3  # the audio is not dropped
