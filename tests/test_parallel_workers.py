"""The loader's `gpus` option: refused without several GPUs, and (HYC_CPU_WORKERS=1, gloo) worker
processes driven through the nodes: the same frames as one process, warm between jobs, Cancel, and a
worker's failure ending every worker with its message."""

from __future__ import annotations

import os
import signal
import threading

import pytest
import torch
from safetensors.torch import load_file

from _lora_files import make_lora, write_lora
from _tiny_model_set import FIXTURES, LOADER_PICKS, blue_square_spec, build_tiny_model_set
from hunyuan_custom import NODE_CLASS_MAPPINGS

Loader = NODE_CLASS_MAPPINGS["HunyuanCustomModelLoader"]
Sampler = NODE_CLASS_MAPPINGS["HunyuanCustomSampler"]
LoRA = NODE_CLASS_MAPPINGS["HunyuanCustomLoRA"]
FILES = LOADER_PICKS


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    build_tiny_model_set(root)
    sd = load_file(str(FIXTURES / "transformer_ref2v" / "weights.safetensors"))
    (root / "loras").mkdir()
    write_lora(make_lora(sd, seed=5), root / "loras" / "style.safetensors", "musubi", 64)
    return root


@pytest.fixture
def comfy_models(models_dir, monkeypatch):
    monkeypatch.setenv("HYC_MODELS_DIR", str(models_dir))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return models_dir


def _frames(model, steps: int = 2):
    return Sampler().sample(model, blue_square_spec(), size="64*48", guidance_scale=7.5, flow_shift=13.0, seed=3,
                            num_frames=9, steps=steps)["result"][0]


def test_gpus_is_offered_last_and_refused_without_several_gpus(comfy_models, monkeypatch):
    optional = list(Loader.INPUT_TYPES()["optional"])
    assert optional[-1] == "gpus" and Loader.INPUT_TYPES()["optional"]["gpus"][0] == ["1", "2", "4", "8", "all"]
    monkeypatch.delenv("HYC_CPU_WORKERS", raising=False)
    with pytest.raises(RuntimeError, match="gpus 2: ComfyUI runs on the CPU here.*set gpus to 1"):
        Loader().load(*FILES, dtype="float32", gpus="2")


def test_two_cpu_workers_through_the_nodes(comfy_models, monkeypatch):
    from hunyuan_custom.nodes import comfy

    (single,) = Loader().load(*FILES, dtype="float32")
    expected = _frames(single)
    expected_lora = _frames(LoRA().apply(single, "style.safetensors", 0.7)[0])
    assert not torch.equal(expected_lora, expected)  # the LoRA changes the video
    monkeypatch.setenv("HYC_CPU_WORKERS", "1")
    (model,) = Loader().load(*FILES, dtype="float32", gpus="2")
    try:
        assert torch.equal(_frames(model), expected)  # CFG parallel on two workers: bit for bit
        pids = [p.pid for p in model.pool.procs]
        assert len(pids) == 2
        # A LoRA node in front: every worker puts the job's LoRAs on its transformer (and takes them off after).
        assert torch.equal(_frames(LoRA().apply(model, "style.safetensors", 0.7)[0]), expected_lora)
        assert torch.equal(_frames(model), expected)
        assert [p.pid for p in model.pool.procs] == pids  # warm: the same workers ran the next jobs

        # Cancel after the first step reaches both workers; they stay warm for the next job.
        steps = []

        class Interrupted(Exception):
            pass

        def cancel():
            if steps:
                raise Interrupted()
        monkeypatch.setattr(comfy, "throw_if_cancelled", cancel)
        monkeypatch.setattr(comfy.Progress, "update", lambda self, value, preview=None: steps.append(value))
        with pytest.raises(Interrupted):
            _frames(model, steps=20)
        assert len(steps) < 20 and model.pool.running and [p.pid for p in model.pool.procs] == pids
        monkeypatch.undo()
        monkeypatch.setenv("HYC_MODELS_DIR", str(comfy_models))
        monkeypatch.setenv("HYC_CPU_WORKERS", "1")

        # A worker that dies during a job fails it, and no worker is left running.
        killer = threading.Timer(0.5, lambda: os.kill(pids[1], signal.SIGKILL))
        killer.start()
        with pytest.raises(RuntimeError, match=r"worker rank 1 ended \(exit code -9\)"):
            _frames(model, steps=200)
        assert model.pool.procs == [] and all(_gone(pid) for pid in pids)
    finally:
        model.unload()


def test_a_worker_error_fails_the_job_with_its_message(comfy_models, monkeypatch):
    monkeypatch.setenv("HYC_CPU_WORKERS", "1")
    # flash attention is not installed here: the workers fail when they load the transformer
    # (ComfyUI's process never loads it, so only a worker can say so)
    (model,) = Loader().load(*FILES, dtype="float32", gpus="2", attention="flash")
    try:
        with pytest.raises(RuntimeError, match=r"worker rank \d: .*flash") as caught:
            _frames(model)
        assert model.pool.procs == []
        assert "Traceback" not in str(caught.value)
    finally:
        model.unload()


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False
