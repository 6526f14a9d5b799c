"""Estimate peak accelerator memory of each local stage WITHOUT a GPU (shape-only runs on "meta").

    python benchmarks/vram_estimate.py --size 1280*720 --frames 129 --offload group --fp8 keep
    python benchmarks/vram_estimate.py --size 960*544 --frames 129 --offload none --budget-gib 24
    python benchmarks/vram_estimate.py --stages vae --vae-tile-frames 32   # shorter VAE decode tiles
    python benchmarks/vram_estimate.py --tiny        # smoke run of the script itself (seconds)

What runs is our real code on tensors without data: the full-size transformer built as
benchmarks/gpu_memory.py builds it (FULL_SIZE_CONFIG, fp8 block Linears for --fp8 keep), two
denoising steps through pipelines/sampling.denoise (two batch-1 CFG passes each, deepcache as the
runtime runs it); LLaVA-Llama-3-8B +
CLIP-L as load_text_encoders puts them on the device (with --offload group: LLaVA's decoder layers
streamed, text_encoder_offload.py), one 926-token LLaVA forward; the VAE decode
with pipelines/vae/tiling's tiles (generate.py converts the video to frames on the CPU). vram_counter.py counts
the bytes of live tensors op by op (= what torch.cuda.max_memory_allocated() reports); group
offloading is diffusers' own hook schedule, recorded by offload_residency.py.

Attention is modelled, not run: a fused kernel (flash / cuDNN / memory-efficient SDPA, as CUDA
picks for bf16 without a mask) allocates only its output and a float32 logsumexp; `--attention
math` shows the unfused path (N x N scores) instead. NOT in the figures, printed as a margin: the
CUDA context, cuBLAS/attention workspaces and caching-allocator fragmentation.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from dataclasses import dataclass, field
from typing import Callable
from unittest import mock

import torch
from torch import nn

try:
    from . import _pack  # imported as hunyuan_custom.benchmarks.<name> (the tests)
except ImportError:
    import _pack  # run as a script: benchmarks/ is sys.path[0]

GIB = 2**30
# Printed beside the figures, not inside them (typical values on recent NVIDIA drivers / torch).
CUDA_CONTEXT_GIB = (0.5, 1.0)
WORKSPACE_GIB = 0.1  # cuBLAS workspace per stream plus attention kernels' small scratch
FRAGMENTATION = (0.05, 0.10)  # caching allocator: reserved - allocated, with expandable_segments on / off

TINY_TRANSFORMER = dict(num_attention_heads=2, attention_head_dim=32, num_layers=2, num_single_layers=2,
                        text_embed_dim=32, pooled_projection_dim=24, rope_axes_dim=(8, 12, 12))


def tensor_bytes(module: nn.Module) -> int:
    from hunyuan_custom.pipelines.offload_policy import module_bytes

    return module_bytes(module)


@dataclass
class StageEstimate:
    """One stage's peak: resident weights + live activations at the same moment."""

    name: str
    weights_total: int  # all weights of the stage's models (what sits in CPU RAM at least)
    peak_total: int
    peak_weights: int
    peak_activations: int
    peak_module: str
    peak_event: str
    largest: list = field(default_factory=list)
    weights_detail: str = ""
    sub_peaks: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @classmethod
    def from_counter(cls, name: str, weights_total: int, counter, notes: list[str] | None = None) -> "StageEstimate":
        peak = counter.peak
        return cls(name, weights_total, peak.total, peak.weights, peak.activations, peak.module, peak.event,
                   list(peak.largest), peak.weights_detail, dict(counter.stage_peaks), list(notes or []))


# ---------------------------------------------------------------------------------------------
# transformer


def build_shape_only_transformer(config: dict, dtype: torch.dtype, fp8: bool) -> nn.Module:
    """The transformer on the meta device, dtypes as loaded: gpu_memory.build_model without the data.

    fp8=True: every block Linear is an Fp8ScaledLinear with a float8 weight (fp8_mode='keep'), the
    bias in `dtype` and a float32 scale, as transformer_loading stores them.
    """
    from accelerate import init_empty_weights

    from hunyuan_custom.pipelines.diffusion_models.fp8_linear import Fp8ScaledLinear
    from hunyuan_custom.pipelines.diffusion_models.transformer import HunyuanCustomTransformer3DModel

    with init_empty_weights():
        model = HunyuanCustomTransformer3DModel(**config)
    if fp8:
        for blocks in (model.transformer_blocks, model.single_transformer_blocks):
            for name, module in list(blocks.named_modules()):
                if type(module) is nn.Linear:
                    parent_name, _, child = name.rpartition(".")
                    parent = blocks.get_submodule(parent_name) if parent_name else blocks
                    setattr(parent, child, Fp8ScaledLinear.like(module))
    with torch.no_grad():
        for module in model.modules():
            for name, param in list(module.named_parameters(recurse=False)):
                if isinstance(module, Fp8ScaledLinear) and name == "weight":
                    target = torch.float8_e4m3fn
                else:
                    target = dtype
                module._parameters[name] = nn.Parameter(param.data.to(device="meta", dtype=target), requires_grad=False)
            for name, buf in list(module.named_buffers(recurse=False)):
                keep = torch.float32 if name == "weight_scale" else (dtype if buf.is_floating_point() else buf.dtype)
                module._buffers[name] = buf.to(device="meta", dtype=keep)
    return model.eval().requires_grad_(False)


def shape_only_transformer(tiny: bool, dtype: torch.dtype, fp8: bool) -> nn.Module:
    """The full-size transformer (or the tiny one) on meta, as build_shape_only_transformer makes it."""
    from hunyuan_custom.pipelines.diffusion_models.keys import FULL_SIZE_CONFIG

    return build_shape_only_transformer({**FULL_SIZE_CONFIG, **(TINY_TRANSFORMER if tiny else {})}, dtype, fp8)


def text_offload_of(offload: str) -> str:
    """The text stage under the loader's offload option, as generate.py runs it on a GPU that 'auto'
    judged too small: 'group' streams LLaVA's layers, 'none'/'model' load both encoders whole."""
    return "group" if offload == "group" else "model"


def sampling_offload_of(offload: str) -> str:
    """generate.py samples with the whole transformer on the device unless offload is 'group'."""
    return "group" if offload == "group" else "none"


def _transformer_stage(name: str) -> str:
    """Stage key of a module name: blocks by list index, everything else by its top-level child."""
    parts = name.split(".")
    if not name:
        return "(between modules)"
    if parts[0] in ("transformer_blocks", "single_transformer_blocks", "audio_models") and len(parts) > 1:
        return ".".join(parts[:2])
    return parts[0]


def transformer_inputs(config, width: int, height: int, frames: int, text_tokens: int, dtype: torch.dtype,
                       device: torch.device):
    """Noise, reference latent and CFG text rows [uncond, cond] on `device`, as the sampler gets them."""
    from hunyuan_custom.pipelines.sampling import initial_noise, latent_shape
    from hunyuan_custom.pipelines.text_encoders.encodings import TextConditioning

    shape = latent_shape(frames, height, width, channels=config.in_channels)
    latents = initial_noise(0, shape).to(device)
    ref = torch.zeros(1, config.in_channels, 1, shape[3], shape[4], device=device)
    # Every text position valid: the longest prompt (the sampler trims to the valid length).
    text = TextConditioning(states=torch.zeros(2, text_tokens, config.text_embed_dim, dtype=dtype, device=device),
                            mask=torch.ones(2, text_tokens, dtype=torch.int64, device=device),
                            pooled=torch.zeros(2, config.pooled_projection_dim, dtype=dtype, device=device))
    return shape, latents, ref, text


def estimate_transformer(
    model: nn.Module,
    width: int,
    height: int,
    frames: int,
    *,
    offload: str = "none",
    attention: str | None = "flash",
    text_tokens: int = 831,
    cfg_batched: bool = False,
    deep_cache: bool = True,
    stage_of: Callable[[str], str] | None = None,
) -> StageEstimate:
    """Peak of denoising (pipelines/sampling.denoise with CFG) on the model's device.

    Two steps are run. deep_cache=True (RuntimeOptions' default) makes both of them "store" steps:
    that is the worst moment of a 30-step run (e.g. step 13: one pass stores anew while the other
    pass's input stored at step 10 is still alive); other step counts never store.

    attention=None runs the real SDPA kernel (for real-tensor checks); "flash"/"math" model it.
    offload="group" applies generate.py's group offloading with its schedule recorded (meta only);
    its hooks stay on the model, so build a fresh model for each group estimate.
    stage_of maps module names to the parts whose peaks are reported (default: per block / embedder).
    """
    from hunyuan_custom.pipelines.sampling import DenoiseRequest, denoise

    from .offload_residency import ResidencyRecorder, apply_recorded_group_offloading, recorded_group_offloading
    from .vram_counter import AttentionModel, LiveBytesCounter, ModuleScope

    device = model.x_embedder.proj.weight.device
    dtype = model.x_embedder.proj.weight.dtype
    all_weights = tensor_bytes(model)
    shape, latents, ref, text = transformer_inputs(model.config, width, height, frames, text_tokens, dtype, device)
    request = DenoiseRequest(latents=latents, ref_latents=ref, text=text, steps=2, flow_shift=13.0,
                             guidance_scale=7.5, cfg_batched=cfg_batched, deep_cache=deep_cache)

    scope = ModuleScope.of(("", model))
    recorder = ResidencyRecorder(model=model)
    weights: Callable[[], int] = recorder.bytes if offload == "group" else (lambda: all_weights)
    detail = (lambda: "onloaded groups: " + ", ".join(recorder.onloaded())) if offload == "group" else (lambda: "all")
    counter = LiveBytesCounter(device.type, resident_weights=weights, scope=scope,
                               stage_of=stage_of or _transformer_stage, weights_detail=detail)
    recorder.on_change = counter.observe
    counter.track(latents, ref, text.states, text.mask, text.pooled)

    with contextlib.ExitStack() as stack:
        if device.type == "meta":
            # _text_and_mask reads the mask's values (how many tokens are valid) to trim the text;
            # meta tensors have none. With every token valid its answer is known: the text as it
            # is (a view, no copy) and no attention mask, which is what this stand-in returns.
            model._text_and_mask = lambda text_states, _mask, _image_len, _trim: (text_states, None)
            stack.callback(model.__dict__.pop, "_text_and_mask", None)
        if offload == "group":
            stack.enter_context(recorded_group_offloading(recorder))
            apply_recorded_group_offloading(model, device)
        elif offload != "none":
            raise ValueError(f"offload must be 'none' or 'group' here, got {offload!r}")
        stack.enter_context(torch.no_grad())
        if offload == "group":
            # diffusers learns the block order (for the stream prefetch) in the first forward: run one
            # uncounted pass first, as every real run's first pass is.
            denoise(model, DenoiseRequest(**{**request.__dict__, "text": text.cond_only(), "guidance_scale": 1.0,
                                                   "steps": 1, "deep_cache": False}))
        model._rope_cache = None  # RoPE tables are made (and counted) in the measured step, as in a first real step
        stack.enter_context(scope)
        if attention is not None:
            stack.enter_context(AttentionModel(attention, counter))
        if deep_cache:
            from hunyuan_custom.pipelines import sampling

            worst = mock.patch.object(sampling, "upstream_deep_cache_mode", lambda _step, _steps: "store")
            stack.enter_context(worst)
        stack.enter_context(counter)
        counter.observe("start")
        denoise(model, request)

    tokens = (shape[2] + 1) * (shape[3] // model.config.patch_size) * (shape[4] // model.config.patch_size)
    notes = [f"latent {list(shape)}: {tokens:,} image tokens (reference frame included) + {text_tokens} text "
             f"tokens per pass; {'one batch-2 pass' if cfg_batched else 'two batch-1 CFG passes'}",
             f"attention: {'real SDPA kernel' if attention is None else attention + ' kernel modelled'}",
             "deepcache on (the default): 2 storing steps counted, the worst moment of a 30-step run (one "
             "pass stores anew while the other pass's stored block input is alive; other step counts never "
             "store)" if deep_cache else "deepcache off (or a step count other than 30): 2 steps counted"]
    if offload == "group":
        notes.append(f"group offload (diffusers' schedule, streams): at most {recorder.max_groups_onloaded} groups on "
                     f"the device at once, {gib(recorder.max_bytes).strip()} of {gib(all_weights).strip()} weights")
    return StageEstimate.from_counter("transformer, denoising", all_weights, counter, notes)


# ---------------------------------------------------------------------------------------------
# text encoders


def llava_llama3_config(tiny: bool = False):
    """xtuner/llava-llama-3-8b-v1_1-transformers' shapes (written out: no download here).

    Llama-3-8B (4096 hidden, 32 layers, 32 heads / 8 KV heads, 14336 MLP, 128320 vocab incl. the
    added <image>/pad tokens) + CLIP ViT-L/14-336 vision tower (1024, 24 layers) + 2-layer projector.
    """
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig

    if tiny:
        text = LlamaConfig(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                           num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048)
        vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                  image_size=56, patch_size=14, projection_dim=32)
        return LlavaConfig(text_config=text, vision_config=vision, image_token_index=255,
                           vision_feature_layer=-2, vision_feature_select_strategy="default")
    text = LlamaConfig(vocab_size=128320, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                       num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=8192,
                       rope_theta=500000.0, rms_norm_eps=1e-5)
    vision = CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                              image_size=336, patch_size=14, projection_dim=768)
    return LlavaConfig(text_config=text, vision_config=vision, image_token_index=128257,
                       vision_feature_layer=-2, vision_feature_select_strategy="default")


def clip_text_config(tiny: bool = False):
    from transformers import CLIPTextConfig

    if tiny:
        return CLIPTextConfig(vocab_size=256, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                              num_attention_heads=2, max_position_embeddings=77, bos_token_id=0, eos_token_id=1,
                              pad_token_id=1)
    return CLIPTextConfig()  # openai/clip-vit-large-patch14's text half: 768 hidden, 12 layers


def text_estimate_supported() -> bool:
    """transformers 4.x's Llama rotary embedding opens an autocast region on the device of its inputs,
    which torch refuses for meta tensors: the shape-only text stage needs transformers 5."""
    import transformers

    return int(transformers.__version__.split(".")[0]) >= 5


def estimate_text_encoders(dtype: torch.dtype, tiny: bool = False, attention: str = "flash",
                           offload: str = "model") -> StageEstimate:
    """LLaVA + CLIP-L as load_text_encoders places them, one LLaVA forward of the real length.

    The LLaVA call is text_encoders/encoding.TextEncoders.encode_llava's: 95 template + 256 text tokens with the
    <image> token expanded to 576 features = 926 positions, all hidden states returned
    (output_hidden_states), logits for the last position only.
    offload "model": both encoders whole on the device. "group": load_text_encoders' group offloading
    (text_encoder_offload.apply_text_group_offloading, streams as on CUDA) with diffusers' schedule
    recorded by offload_residency.py: the decoder layers onloaded at that moment plus everything else.
    """
    from transformers import CLIPTextModel, LlavaForConditionalGeneration

    from hunyuan_custom.pipelines.text_encoders import prompt_template as pt
    from hunyuan_custom.pipelines.text_encoders.offload import apply_text_group_offloading, offload_groups

    from .offload_residency import ResidencyRecorder, recorded_group_offloading
    from .vram_counter import AttentionModel, LiveBytesCounter, ModuleScope

    if offload not in ("model", "group"):
        raise ValueError(f"text encoder offload must be 'model' or 'group' here, got {offload!r}")

    config = llava_llama3_config(tiny)
    with torch.device("meta"):
        llava = LlavaForConditionalGeneration(config).to(dtype).eval()
        clip = CLIPTextModel(clip_text_config(tiny)).to(dtype).eval()
    weights = tensor_bytes(llava) + tensor_bytes(clip)
    size = config.vision_config.image_size
    features = (size // config.vision_config.patch_size) ** 2
    positions = (8 if tiny else pt.LLAVA_CROP_START + pt.LLAVA_TEXT_LEN) + features - 1
    ids = torch.zeros(1, positions, dtype=torch.int64)
    ids[0, 5: 5 + features] = config.image_token_index
    pixels = torch.zeros(1, 3, size, size, dtype=dtype)

    scope = ModuleScope.of(("llava", llava), ("clip", clip))
    recorder = ResidencyRecorder(model=llava)
    resident: Callable[[], int] = lambda: weights  # noqa: E731
    detail = ""
    if offload == "group":
        with recorded_group_offloading(recorder):
            apply_text_group_offloading(llava, torch.device("meta"), use_stream=True)
        always = weights - sum(ResidencyRecorder.group_bytes(g) for g in offload_groups(llava))
        resident = lambda: always + recorder.bytes()  # noqa: E731
        detail = (f"{always / GIB:.2f} GiB always (vision tower, projector, embed_tokens, lm_head, CLIP-L) + "
                  "onloaded groups")
    counter = LiveBytesCounter("meta", resident_weights=resident, scope=scope,
                               stage_of=lambda n: ".".join(n.split(".")[:3]) if n else "(between modules)",
                               weights_detail=lambda: detail and detail + ": " + ", ".join(recorder.onloaded()))
    recorder.on_change = counter.observe
    notes = [f"LLaVA forward over {positions} positions ({features} image features), hidden states of every layer "
             "kept (output_hidden_states=True), CLIP-L text (77 tokens) resident too",
             "LLaVA config written from the released model's shapes (not read from its files)",
             "left out (they read tensor values, which meta tensors lack): transformers' image-token count check "
             f"and the {positions}x{positions} padding mask (bool, {positions * positions / 2**20:.1f} MiB)"]

    def placeholder_mask(input_ids, inputs_embeds, image_features):
        # transformers' own minus its `n_image_tokens == features` check (a value check)
        return (input_ids == llava.config.image_token_id).unsqueeze(-1).to(inputs_embeds.device)

    llava.model.get_placeholder_mask = placeholder_mask
    meta_ids, meta_pixels = ids.to("meta"), pixels.to("meta")
    positions_ids = torch.arange(positions).unsqueeze(0).to("meta")
    counter.track(meta_ids, meta_pixels, positions_ids)

    def llava_forward():
        return llava(input_ids=meta_ids, pixel_values=meta_pixels, attention_mask=None, position_ids=positions_ids,
                     output_hidden_states=True, logits_to_keep=1)

    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.no_grad())
        if offload == "group":
            stack.enter_context(recorded_group_offloading(recorder))
            llava_forward()  # uncounted: diffusers learns the layer order (for the prefetch) in the first call
            recorder.max_groups_onloaded = recorder.max_bytes = 0
        stack.enter_context(scope)
        stack.enter_context(AttentionModel(attention, counter))
        stack.enter_context(counter)
        counter.observe("start")
        out = llava_forward()
        del out
        clip(input_ids=torch.zeros(1, 77, dtype=torch.int64, device="meta"))
    if offload == "group":
        notes.append(f"group offload (diffusers' schedule, streams): at most {recorder.max_groups_onloaded} groups on "
                     f"the device at once, {gib(recorder.max_bytes).strip()} of the streamed "
                     f"{gib(weights - always).strip()}; {gib(always).strip()} stay on the device")
    name = "text encoders (LLaVA-Llama-3-8B + CLIP-L" + (", LLaVA layers streamed)" if offload == "group" else ")")
    return StageEstimate.from_counter(name, weights, counter, notes)


# ---------------------------------------------------------------------------------------------
# VAE decode


TINY_VAE = dict(block_out_channels=(32, 32, 32, 32), norm_num_groups=8, sample_size=64, sample_tsize=8)


def shape_only_vae(dtype: torch.dtype, tiny: bool = False):
    """HunyuanVideoVAE with the full-size (or tiny) config on the meta device."""
    from hunyuan_custom.pipelines.vae.model import FULL_SIZE_CONFIG, HunyuanVideoVAE, VAEConfig

    vae = HunyuanVideoVAE.from_config(VAEConfig(**TINY_VAE) if tiny else FULL_SIZE_CONFIG, device="meta")
    nn.Module.to(vae.model, dtype=dtype)  # ModelMixin.to would warn about fp32 modules it does not have
    return vae


def estimate_vae_decode(width: int, height: int, frames: int, vae=None, *, attention: str | None = "flash",
                        resident_extra: int = 0, extra_note: str = "", tile_frames: int | None = None) -> StageEstimate:
    """Tiled decode of the whole latent (HunyuanVideoVAE.decode(tiled=True), every tile) on the VAE's
    device, until the decoded video leaves it (generate.py makes float frames on the CPU).

    tile_frames: temporal tile length in video frames (HunyuanVideoVAE.decode's option), None =
    upstream's (the config's sample_tsize, 64).

    vae: a HunyuanVideoVAE (shape_only_vae() for estimates, a real one for checks); attention=None
    runs the real SDPA kernel. `resident_extra` = other weights still on the device then (the
    transformer, with offload 'none')."""
    from hunyuan_custom.pipelines.sampling import latent_shape

    from .vram_counter import AttentionModel, LiveBytesCounter, ModuleScope

    config = vae.config
    device = vae.device
    weights = tensor_bytes(vae.model)
    shape = latent_shape(frames, height, width, channels=config.latent_channels)
    latents = torch.zeros(shape, dtype=torch.float32, device=device)
    tiles = config.decode_tiles(tile_frames)
    scope = ModuleScope.of(("vae", vae.model))
    counter = LiveBytesCounter(device.type, resident_weights=lambda: weights + resident_extra, scope=scope,
                               stage_of=lambda n: ".".join(n.split(".")[:3]) if n else "tiling / reassembly")
    counter.track(latents, op="final latents")
    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.no_grad())
        stack.enter_context(scope)
        if attention is not None:
            stack.enter_context(AttentionModel(attention, counter))
        stack.enter_context(counter)
        counter.observe("start")
        for video in vae.decode_parts((latents / vae.scaling_factor).to(vae.dtype), tiled=True,
                                      tile_frames=tile_frames):
            del video  # generate.py copies each finished part to the CPU before converting it to frames
    notes = [f"{tiles.count(shape)} tiles of latent {tiles.size_in}x{tiles.size_in}x{tiles.frames_in + 1} -> "
             f"{tiles.size_out}px x {tiles.frames_out + 1} frames, each part leaves once blended with the next",
             "each finished part goes to the CPU, where generate.py makes its frames"]
    if extra_note:
        notes.append(extra_note)
    return StageEstimate.from_counter("VAE decode (tiled)", weights, counter, notes)


# ---------------------------------------------------------------------------------------------
# report


@dataclass
class SplitEstimate:
    gpus: int
    split: str
    per_gpu: int  # bytes
    how: str


def split_estimates(stage: StageEstimate, config, width: int, height: int, frames: int, itemsize: int,
                    counts: list[int]) -> list[SplitEstimate]:
    """The per-GPU peak of the sampling stage when one job runs on N GPUs (pipelines/parallel/).

    Every rank holds the whole transformer (no weight sharding). CFG parallel: a rank runs one batch-1
    pass, which is what one GPU runs at a time already: the same activation peak, plus the gathered
    velocity. Ulysses over u ranks: every per-token tensor and attention's q/k/v (all tokens x 1/u of
    the heads after the all-to-all) are 1/u of one GPU's, so the measured activation peak is divided
    by u, plus the full-size tokens each rank still holds (the patch embedding before the split and
    the gathered tokens before the output layers). A scaled estimate, not a shape-only run."""
    from hunyuan_custom.pipelines.sampling import latent_shape

    shape = latent_shape(frames, height, width, channels=config.in_channels)
    latent_bytes = 4 * int(torch.Size(shape).numel())
    tokens = (shape[2] + 1) * (shape[3] // config.patch_size) * (shape[4] // config.patch_size)
    full_tokens = 2 * tokens * config.num_attention_heads * config.attention_head_dim * itemsize
    weights, activations = stage.peak_weights, stage.peak_activations
    rows = [SplitEstimate(1, "one GPU", stage.peak_total, "measured above")]
    for n in counts:
        if n == 2:
            rows.append(SplitEstimate(2, "cfg 2", weights + activations + 2 * latent_bytes,
                                      "one pass per GPU: the single-GPU peak + the gathered velocity"))
        for cfg in (1, 2):
            ulysses = n // cfg
            if n % cfg or ulysses < 2 or config.num_attention_heads % ulysses or tokens % ulysses:
                continue
            name = f"ulysses {ulysses}" if cfg == 1 else f"cfg 2 x ulysses {ulysses}"
            rows.append(SplitEstimate(n, name, weights + activations // ulysses + full_tokens,
                                      f"activations / {ulysses} + full-size token buffers (scaled estimate)"))
    return rows


def format_splits(rows: list[SplitEstimate]) -> list[str]:
    lines = ["", "== sampling on several GPUs (per GPU; every GPU holds the whole transformer)"]
    base = rows[0].per_gpu
    for r in rows:
        lines.append(f"   {r.gpus} GPU{'s' if r.gpus > 1 else ' '}  {r.split:<22} {gib(r.per_gpu):>10}  "
                     f"({100 * r.per_gpu / base:.0f} % of one GPU)  {r.how}")
    return lines


def gib(n: int) -> str:
    """GiB, or MiB for small (tiny-model) figures."""
    return f"{n / GIB:6.2f} GiB" if n >= GIB / 10 or n == 0 else f"{n / 2**20:6.2f} MiB"


def format_stage(stage: StageEstimate, top_stages: int = 6) -> list[str]:
    lines = [f"== {stage.name}",
             f"   peak (live tensors)      {gib(stage.peak_total)}  = weights on device {gib(stage.peak_weights).strip()}"
             f" + activations {gib(stage.peak_activations).strip()}",
             f"   all weights of the stage {gib(stage.weights_total)}",
             f"   peak happens in          {stage.peak_module or '-'} (at {stage.peak_event})"]
    if stage.weights_detail:
        lines.append(f"   weights on device then   {stage.weights_detail}")
    for note in stage.notes:
        lines.append(f"   - {note}")
    if stage.largest:
        lines.append("   largest live tensors at the peak:")
        lines += [f"     {a.describe()}" for a in stage.largest]
    if stage.sub_peaks:
        grouped: dict[str, tuple[int, str]] = {}
        for key, value in stage.sub_peaks.items():
            head, _, index = key.rpartition(".")
            group = head if index.isdigit() else key
            if value > grouped.get(group, (-1, ""))[0]:
                grouped[group] = (value, key)
        lines.append("   peak total per part (max over its blocks):")
        for group, (value, key) in sorted(grouped.items(), key=lambda kv: -kv[1][0])[:top_stages]:
            where = f" (in {key})" if key != group else ""
            lines.append(f"     {gib(value)}  {group}{where}")
    return lines


def verdict(stages: list[StageEstimate], budget_gib: float) -> list[str]:
    worst = max(stages, key=lambda s: s.peak_total)
    low = worst.peak_total / GIB * (1 + FRAGMENTATION[0]) + CUDA_CONTEXT_GIB[0] + WORKSPACE_GIB
    high = worst.peak_total / GIB * (1 + FRAGMENTATION[1]) + CUDA_CONTEXT_GIB[1] + WORKSPACE_GIB
    lines = [f"== verdict for a {budget_gib:g} GiB card",
             f"   highest stage: {worst.name}: {worst.peak_total / GIB:.2f} GiB of live tensors",
             f"   margin NOT in that figure: CUDA context {CUDA_CONTEXT_GIB[0]}-{CUDA_CONTEXT_GIB[1]} GiB, workspaces "
             f"~{WORKSPACE_GIB} GiB, allocator fragmentation {FRAGMENTATION[0]:.0%}-{FRAGMENTATION[1]:.0%}",
             f"   with margin: {low:.1f}-{high:.1f} GiB of the card"]
    if high <= budget_gib:
        lines.append(f"   FITS: even the high estimate stays under {budget_gib:g} GiB")
    elif low <= budget_gib:
        lines.append(f"   TIGHT: the live tensors fit, the margin decides (measure with benchmarks/gpu_memory.py)")
    else:
        lines.append(f"   DOES NOT FIT: over {budget_gib:g} GiB even with the low margin")
    return lines


def main(argv: list[str] | None = None) -> list[StageEstimate]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="1280*720", help="width*height, as the sampler's size widget")
    parser.add_argument("--frames", type=int, default=129)
    parser.add_argument("--dtype", choices=("bfloat16", "float16", "float32"), default="bfloat16")
    parser.add_argument("--offload", choices=("none", "model", "group"), default="group",
                        help="none: the whole transformer on the device throughout; model (the loader's default): "
                             "the same while sampling, moved off before the decode; group: generate.py's block offload")
    parser.add_argument("--fp8", choices=("dequantize", "none", "keep"), default="dequantize",
                        help="keep: block Linears stay float8 on the device (fp8 checkpoints with fp8_mode=keep); "
                             "dequantize (= none, as gpu_memory.py calls it): everything in --dtype")
    parser.add_argument("--attention", choices=("flash", "math"), default="flash",
                        help="kernel modelled: flash = any fused SDPA (flash/cuDNN/mem-efficient/sage), math = unfused")
    parser.add_argument("--text-tokens", type=int, default=831, help="LLaVA tokens after the template crop (max 831)")
    parser.add_argument("--cfg-batched", action="store_true", help="CFG as one batch of 2 (upstream) instead of 2 passes")
    parser.add_argument("--deep-cache", choices=("on", "off"), default="on",
                        help="upstream's deepcache (RuntimeOptions.deep_cache, on by default)")
    parser.add_argument("--stages", default="text,transformer,vae", help="comma list of text, transformer, vae")
    parser.add_argument("--vae-tile-frames", type=int, default=None, metavar="N",
                        help="VAE decode: temporal tile of N video frames (a multiple of 16; default: upstream's 64, "
                             "or the tiny config's 8 with --tiny)")
    parser.add_argument("--budget-gib", type=float, default=24.0)
    parser.add_argument("--tiny", action="store_true", help="tiny shapes: a quick check of the script itself")
    parser.add_argument("--gpus", default=None, metavar="N,N",
                        help="also the per-GPU transformer peak when one job runs on N GPUs, for each split "
                             "(CFG parallel, Ulysses, both); e.g. 2,4,8 (README, Several GPUs)")
    args = parser.parse_args(argv)

    _pack.import_pack()
    from hunyuan_custom.pipelines import schema

    width, height = schema.parse_size(args.size) if not args.tiny else (64, 48)
    frames = args.frames if not args.tiny else 9
    dtype = getattr(torch, args.dtype)
    stages = {s.strip() for s in args.stages.split(",") if s.strip()}
    unknown = stages - {"text", "transformer", "vae"}
    if unknown:
        parser.error(f"--stages: unknown {sorted(unknown)}; use text, transformer, vae")
    if args.vae_tile_frames is not None:
        from hunyuan_custom.pipelines.vae.model import check_tile_frames

        try:
            check_tile_frames(args.vae_tile_frames)
        except ValueError as exc:
            parser.error(f"--vae-tile-frames: {exc}")
    print(f"HunyuanCustom peak accelerator memory estimate: {width}x{height} x {frames} frames, {args.dtype}, "
          f"offload {args.offload}, fp8 {args.fp8}, attention {args.attention}, deepcache {args.deep_cache}"
          + (f", VAE tiles of {args.vae_tile_frames} frames" if args.vae_tile_frames else "")
          + (" (TINY shapes)" if args.tiny else ""))
    print("(shape-only run on the meta device; figures = live tensor bytes, like torch.cuda.max_memory_allocated)")

    results: list[StageEstimate] = []
    transformer_weights = 0
    if "text" in stages:
        started = time.perf_counter()
        results.append(estimate_text_encoders(dtype, tiny=args.tiny, attention=args.attention,
                                              offload=text_offload_of(args.offload)))
        print("\n".join(format_stage(results[-1])) + f"\n   ({time.perf_counter() - started:.0f} s)")
    if "transformer" in stages or ("vae" in stages and args.offload == "none"):
        started = time.perf_counter()
        model = shape_only_transformer(args.tiny, dtype, fp8=args.fp8 == "keep")
        transformer_weights = tensor_bytes(model)
        if "transformer" in stages:
            text_tokens = min(args.text_tokens, 40) if args.tiny else args.text_tokens
            results.append(estimate_transformer(model, width, height, frames, offload=sampling_offload_of(args.offload),
                                                attention=args.attention, text_tokens=text_tokens,
                                                cfg_batched=args.cfg_batched, deep_cache=args.deep_cache == "on"))
            print("\n".join(format_stage(results[-1])) + f"\n   ({time.perf_counter() - started:.0f} s)")
            if args.gpus:
                counts = [int(n) for n in args.gpus.split(",") if n.strip()]
                print("\n".join(format_splits(split_estimates(results[-1], model.config, width, height, frames,
                                                               dtype.itemsize, counts))))
        del model
    if "vae" in stages:
        started = time.perf_counter()
        extra = transformer_weights if args.offload == "none" else 0
        note = (f"offload 'none': the transformer's {transformer_weights / GIB:.2f} GiB stay on the device during the "
                "decode (generate.py moves it off only for 'model')") if extra else ""
        results.append(estimate_vae_decode(width, height, frames, shape_only_vae(dtype, tiny=args.tiny),
                                           attention=args.attention, resident_extra=extra, extra_note=note,
                                           tile_frames=args.vae_tile_frames))
        print("\n".join(format_stage(results[-1])) + f"\n   ({time.perf_counter() - started:.0f} s)")
    if results:
        print("\n".join(verdict(results, args.budget_gib)))
    return results


if __name__ == "__main__":
    # Run as a script: make `from .vram_counter import ...` work by importing this file as part of the pack.
    _pack.import_pack()
    import importlib

    module = importlib.import_module("hunyuan_custom.benchmarks.vram_estimate")
    module.main()
