"""--lora FILE[:STRENGTH] on the command line: repeatable, the video of a hand-merged checkpoint, and
bad files refused in the CLI's words before any model loads."""

from __future__ import annotations

import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from _checkpoint_writers import write_upstream_pt
from _cli_run import error_line, local_argv, run_cli, write_reference_png
from _lora_files import make_lora, merged, write_lora
from _tiny_model_set import FIXTURES, build_tiny_model_set
from hunyuan_custom.pipelines import cli
from hunyuan_custom.pipelines.diffusion_models import loading


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("lora_cli")
    models = build_tiny_model_set(root / "models")
    sd = load_file(str(FIXTURES / "transformer_ref2v" / "weights.safetensors"))
    first, second = make_lora(sd, seed=21), make_lora(sd, modules=("double_blocks.1.txt_mlp.fc2",), rank=3,
                                                        alpha=None, seed=22)
    paths = (write_lora(first, root / "first.safetensors", "musubi", 64),
             write_lora(second, root / "second.safetensors", "peft", 64))
    folder = root / "merged"
    folder.mkdir()
    shutil.copy(FIXTURES / "transformer_ref2v" / "config.json", folder / "config.json")
    merged_ckpt = write_upstream_pt(merged(sd, [(first, 0.7), (second, -1.0)]), folder / "mp_rank_00_model_states.pt")
    return models, write_reference_png(root / "ref.png"), paths, merged_ckpt, root


def _frames(monkeypatch, argv) -> tuple[torch.Tensor, str]:
    got = {}
    def generate(generator, job, output, progress, loras=()):  # the frames, not an mp4
        result = generator.generate(job, status=cli._status, progress=progress, loras=loras)
        got["frames"] = result.frames
        return result

    monkeypatch.setattr(cli, "_generate_mp4", generate)
    run = run_cli(argv)
    assert run.returncode == 0, run.stderr
    return got["frames"], run.stderr


def test_two_loras_give_the_video_of_the_hand_merged_checkpoint(setup, monkeypatch, tmp_path):
    models, ref, (first, second), merged_ckpt, _root = setup
    flags = ("--size", "64*48", "--num-frames", "5", "--steps", "2", "--seed", "5")
    got, err = _frames(monkeypatch, local_argv(models, ref, tmp_path / "a.mp4", *flags, "--lora", f"{first}:0.7",
                                               "--lora", f"{second}:-1"))
    assert "LoRA: first.safetensors (musubi-tuner/kohya, 12 layers, strength 0.7); second.safetensors" in err
    want, _ = _frames(monkeypatch, local_argv(models, ref, tmp_path / "b.mp4", *flags, transformer=merged_ckpt))
    torch.testing.assert_close(got, want, rtol=0, atol=2e-4)


@pytest.mark.parametrize("make,value,message", [
    (lambda root: root / "gone.safetensors", "{}", "no such LoRA file"),
    (lambda root: root / "first.safetensors", "{}:5", "strength 5 is outside -2..2"),
    (lambda root: _wan(root), "{}:0.5", "looks like a Wan 2.1/2.2 LoRA"),
])
def test_bad_loras_are_refused_before_any_model_loads(setup, monkeypatch, tmp_path, make, value, message):
    models, ref, _paths, _merged, root = setup
    monkeypatch.setattr(loading, "load_transformer", lambda *a, **k: pytest.fail("a model was loaded"))
    lora = value.format(make(root))
    line = error_line(run_cli(local_argv(models, ref, tmp_path / "x.mp4", "--lora", lora)))
    assert line.startswith(f"error: --lora {lora}: ") and message in line


def _wan(root):
    path = root / "wan.safetensors"
    save_file({"diffusion_model.blocks.0.self_attn.q.lora_A.weight": torch.zeros(2, 8),
               "diffusion_model.blocks.0.self_attn.q.lora_B.weight": torch.zeros(8, 2)}, str(path))
    return path


def test_a_colon_belongs_to_the_path_unless_a_number_follows(monkeypatch):
    monkeypatch.setattr("hunyuan_custom.pipelines.diffusion_models.lora_files.check_lora", lambda path: None)
    choices = cli._loras(["C:\\loras\\a.safetensors", "C:\\loras\\b.safetensors:-0.5", "x/c:d.safetensors"])
    assert [(c.path, c.strength) for c in choices] == [("C:\\loras\\a.safetensors", 1.0),
                                                        ("C:\\loras\\b.safetensors", -0.5), ("x/c:d.safetensors", 1.0)]
