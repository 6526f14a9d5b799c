"""offload 'group' with the editing transformer: bg_in / bg_proj are onloaded with the other
top-level modules (upstream's own low-VRAM path drops the editing inputs), and the loop with
bg_latents gives the same latents as without offloading.

On a GPU the groups would move between CPU RAM and VRAM; here both devices are the CPU, so the
movement is checked through diffusers' hook groups: every parameter must belong to a group that
is onloaded before it is used, otherwise it would stay in CPU RAM during a GPU forward.
"""

from __future__ import annotations

import copy
import json

import pytest
import torch
from safetensors.torch import load_file

from _transformer_parity import build_from_fixture
from test_parity_sampling_loop import _conditioning
from hunyuan_custom.pipelines.offload_policy import stream_transformer_blocks
from hunyuan_custom.pipelines.sampling import DenoiseRequest, denoise


def _offloaded(model):
    grouped = copy.deepcopy(model)
    try:
        stream_transformer_blocks(grouped, "cpu", use_stream=False)
    except AttributeError:  # diffusers 0.37 (our oldest supported) insists on an accelerator
        assert not torch.accelerator.is_available()
        pytest.skip("this diffusers version offloads only with an accelerator")
    return grouped


def _grouped_parameters(model) -> dict[str, set[str]]:
    """Parameter names per offload group (keyed by the module that holds the group's hook)."""
    names = {id(p): n for n, p in model.named_parameters()}
    groups: dict[str, set[str]] = {}
    for module_name, module in model.named_modules():
        registry = getattr(module, "_diffusers_hook", None)
        hook = registry.get_hook("group_offloading") if registry is not None else None
        group = getattr(hook, "group", None)
        if group is None:
            continue
        params = {names[id(p)] for m in group.modules for p in m.parameters() if id(p) in names}
        params |= {names[id(p)] for p in (group.parameters or []) if id(p) in names}
        groups.setdefault(module_name or "<top>", set()).update(params)
    if not groups:
        pytest.skip("this diffusers version keeps its group-offload hooks elsewhere")
    return groups


@pytest.fixture(scope="module")
def editing_model(reference_dir):
    return build_from_fixture(reference_dir / "transformer_editing")


def test_group_offload_onloads_bg_in_and_bg_proj_with_the_top_level_modules(editing_model):
    grouped = _offloaded(editing_model)
    groups = _grouped_parameters(grouped)
    covered = set().union(*groups.values())
    every = {n for n, _ in grouped.named_parameters()}
    assert every <= covered, f"parameters no offload group onloads: {sorted(every - covered)[:8]}"
    editing = {n for n in every if n.startswith(("bg_in.", "bg_proj."))}
    assert editing and editing <= groups["<top>"], "bg_in / bg_proj must be onloaded before the forward"


def test_group_offload_gives_the_same_edit(editing_model, reference_dir):
    folder = reference_dir / "sampling_loop_editing"
    config = json.loads((folder / "config.json").read_text())
    inputs = {k: v.clone() for k, v in load_file(str(folder / "inputs.safetensors")).items()}
    request = DenoiseRequest(latents=inputs["initial_latents"], ref_latents=inputs["ref_latents"],
                             text=_conditioning(config, inputs), steps=2, flow_shift=5.0, guidance_scale=7.5,
                             bg_latents=inputs["bg_latents"])
    grouped = _offloaded(editing_model)
    with torch.no_grad():
        expected = denoise(editing_model, request)
        got = denoise(grouped, request)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
