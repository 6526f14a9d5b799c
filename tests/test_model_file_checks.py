"""Every model file is checked from its headers before the first stage: in the CLI (bad input,
exit 2), when the sampler starts, and in the loader's queue-time check. A VAE given as the
transformer, a truncated checkpoint or an fp8 file without its scale map must never cost the
minutes of an 8 B text encoder first."""

from __future__ import annotations

import shutil
import time

import pytest
import torch
from safetensors.torch import save_file

from _tiny_model_set import build_tiny_model_set
from hunyuan_custom import NODE_CLASS_MAPPINGS
from hunyuan_custom.pipelines import cli, weights_io
from hunyuan_custom.pipelines.conditioning.prompt_spec import PromptSpec
from hunyuan_custom.pipelines.generate import GenerationError, LocalGenerator, ModelFiles, RuntimeOptions
from hunyuan_custom.pipelines.job import Job
from hunyuan_custom.pipelines.text_encoders import cache as text_cache


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return root, build_tiny_model_set(root)


@pytest.fixture
def no_text_encoding(monkeypatch):
    """Fail the test if anything gets as far as running the text encoders."""
    def never(*_, **__):
        raise AssertionError("the text encoders ran before the model files were checked")

    monkeypatch.setattr(text_cache, "encode_text_conditioning", never)


def files(tiny, **over) -> ModelFiles:
    paths = dict(transformer=str(tiny.transformer), vae=str(tiny.vae), text_encoder=str(tiny.text_encoder),
                 text_encoder_2=str(tiny.text_encoder_2))
    return ModelFiles(**{**paths, **{k: str(v) for k, v in over.items()}})


def truncated(source, target):
    data = source.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    return target


def test_good_files_have_no_problems(models):
    _, tiny = models
    assert files(tiny).problems() == []


def test_each_wrong_or_broken_file_is_named_with_its_input(models, tmp_path):
    _, tiny = models
    vae_file = tiny.vae / "pytorch_model.pt"
    problems = files(tiny, transformer=vae_file, vae=tiny.transformer, text_encoder=tiny.text_encoder_2,
                     text_encoder_2=tiny.vae).problems()
    assert [p.split(":")[0] for p in problems] == ["transformer", "vae", "text_encoder", "text_encoder_2"]
    assert "looks like a VAE" in problems[0] and "give it as the VAE" in problems[0]
    assert "transformer (DiT)" in problems[1]
    assert "CLIP folder" in problems[2] and "describes the VAE" in problems[3]

    broken_pt = truncated(tiny.transformer, tmp_path / "broken.pt")
    (problem,) = files(tiny, transformer=broken_pt).problems()
    assert problem.startswith(f"transformer: {broken_pt}: cannot read this file; it looks truncated or corrupt")

    (tmp_path / "vae").mkdir()
    shutil.copy(tiny.vae / "config.json", tmp_path / "vae" / "config.json")
    whole = tmp_path / "vae" / "vae.safetensors"
    save_file(torch.load(vae_file, weights_only=True), str(whole))
    assert files(tiny, vae=whole).problems() == []  # the same VAE as one safetensors file is fine ...
    broken_st = truncated(whole, tmp_path / "vae" / "vae_cut.safetensors")
    (problem,) = files(tiny, vae=broken_st).problems()  # ... and its header no longer covers a cut copy
    assert problem.startswith(f"vae: {broken_st}: cannot read this file") and "not fully covered" in problem


def test_an_fp8_checkpoint_without_its_scale_map_is_refused_before_loading(models, tmp_path):
    _, tiny = models
    state = torch.load(tiny.transformer, weights_only=True)["module"]
    name = next(k for k, v in state.items() if k.startswith("double_blocks.") and k.endswith(".weight") and v.ndim == 2)
    state[name] = state[name].to(torch.float8_e4m3fn)
    folder = tmp_path / "hunyuancustom_720P"
    folder.mkdir()
    shutil.copy(tiny.transformer.parent / "config.json", folder / "config.json")
    torch.save({"module": state}, folder / "mp_rank_00_model_states_fp8.pt")
    (problem,) = files(tiny, transformer=folder / "mp_rank_00_model_states_fp8.pt").problems()
    assert "its scale map file is missing" in problem and "mp_rank_00_model_states_fp8_map.pt" in problem


def test_a_vae_folder_given_as_transformer_is_told_to_pick_a_transformer(models):
    _, tiny = models
    (problem,) = files(tiny, transformer=tiny.vae).problems()
    assert "this is a VAE folder" in problem and "give it as the VAE" in problem
    assert "pytorch_model.pt" not in problem  # the old advice named the VAE file again
    assert "mp_rank_00_model_states.pt" in problem


def test_the_cli_refuses_a_wrong_file_as_bad_input_before_anything_loads(models, ref_png, tmp_path, capsys,
                                                                          no_text_encoding):
    _, tiny = models
    out = tmp_path / "out.mp4"
    code = cli.main(["generate", "--image", str(ref_png), "--prompt", "a block", "--size", "64*48",
                     "--num-frames", "5", "--steps", "1", "--transformer", str(tiny.vae / "pytorch_model.pt"),
                     "--vae", str(tiny.vae), "--text-encoder", str(tiny.text_encoder),
                     "--text-encoder-2", str(tiny.text_encoder_2), "--device", "cpu", "--output", str(out)])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: --transformer: ") and "VAE" in lines[0]
    assert not out.exists()


def test_the_cli_names_its_flags_where_the_nodes_name_their_inputs():
    message = ("text_encoder: /m/text_encoders/clip is a CLIP folder; choose it as text_encoder_2. text_encoder "
               "takes models/text_encoders/llava_llama3_fp16.safetensors. vae: /m/vae/x.pt: truncated.")
    assert cli._flag_names(message) == (
        "--text-encoder: /m/text_encoders/clip is a CLIP folder; choose it as --text-encoder-2. --text-encoder "
        "takes models/text_encoders/llava_llama3_fp16.safetensors. --vae: /m/vae/x.pt: truncated.")


def test_the_sampler_start_sees_a_file_that_changed_since_the_loader_ran(models, tmp_path, no_text_encoding):
    _, tiny = models
    vae = tmp_path / "vae"
    shutil.copytree(tiny.vae, vae)
    generator = LocalGenerator(files(tiny, vae=vae), RuntimeOptions(device="cpu", dtype="float32"))
    time.sleep(0.01)  # a new mtime even on coarse clocks
    truncated(vae / "pytorch_model.pt", vae / "pytorch_model.pt")
    job = Job.from_params(PromptSpec.create("a cat", "", "cat", torch.rand(1, 8, 8, 3)),
                          {"size": "32*32", "num_frames": 5, "steps": 1, "seed": 1})
    with pytest.raises(GenerationError, match=r"^vae: .*pytorch_model.pt: cannot read this file"):
        generator.generate(job)
    assert generator._transformer is None and generator._vae is None


def test_a_check_reads_each_header_once_until_the_file_changes(tmp_path):
    calls = []
    target = tmp_path / "model.safetensors"
    target.write_bytes(b"x")
    for _ in range(3):
        assert weights_io.remembered_problem("probe", [target], lambda: calls.append(1)) is None
    assert len(calls) == 1
    time.sleep(0.01)
    target.write_bytes(b"xy")

    def broken():
        calls.append(1)
        raise ValueError("now it is broken")

    assert weights_io.remembered_problem("probe", [target], broken) == "now it is broken"
    assert weights_io.remembered_problem("probe", [target], broken) == "now it is broken"
    assert len(calls) == 2


def test_the_loader_refuses_a_wrong_file_at_queue_time_once(models, monkeypatch, tmp_path):
    root, tiny = models
    monkeypatch.setenv("HYC_MODELS_DIR", str(root))
    (root / "diffusion_models" / "a_vae_by_mistake.pt").write_bytes((tiny.vae / "pytorch_model.pt").read_bytes())
    loader = NODE_CLASS_MAPPINGS["HunyuanCustomModelLoader"]
    names = dict(transformer="hunyuancustom_720P/mp_rank_00_model_states.pt", vae="hyvae_v1_0801/",
                 text_encoder="llava-llama-3-8b-v1_1/", text_encoder_2="openai_clip-vit-large-patch14/")
    assert loader.VALIDATE_INPUTS(**names) is True
    with pytest.raises(ValueError) as info:
        loader.VALIDATE_INPUTS(**dict(names, transformer="a_vae_by_mistake.pt"))
    assert str(info.value).startswith("transformer: ") and "looks like a VAE" in str(info.value)
    with pytest.raises(RuntimeError, match="looks like a VAE"):  # and when the node runs, before loading
        loader().load(**dict(names, transformer="a_vae_by_mistake.pt"), dtype="float32")


# ------------------------------------------------------------------ the text encoders (LLaVA, CLIP)


def _copy_folder(folder, tmp_path):
    copy = tmp_path / folder.name
    shutil.copytree(folder, copy)
    return copy


def _corrupt_header(path):
    """The first bytes of the JSON header overwritten (a disk error, a bad copy): still a safetensors
    file by its first 9 bytes, but its header no longer parses."""
    data = bytearray(path.read_bytes())
    data[9:40] = b"#" * 31
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("which", ["text_encoder", "text_encoder_2"])
@pytest.mark.parametrize("damage", ["cut", "header"])
def test_a_cut_or_corrupt_text_encoder_download_is_refused_from_its_header(models, tmp_path, which, damage):
    """A half-finished 16 GB LLaVA download is the likeliest broken file of all: it is found before
    any stage loads, with the advice to download it again."""
    _, tiny = models
    folder = _copy_folder(getattr(tiny, which), tmp_path)
    weights = folder / "model.safetensors"
    truncated(weights, weights) if damage == "cut" else _corrupt_header(weights)
    (problem,) = files(tiny, **{which: folder}).problems()
    assert problem.startswith(f"{which}: {weights}: cannot read this file; it looks truncated or corrupt"), problem
    assert "Download it again" in problem


@pytest.mark.parametrize("which, drop, named", [
    ("text_encoder", "tokenizer.json", "tokenizer.json or tokenizer.model"),
    ("text_encoder", "model.safetensors", "model.safetensors or model.safetensors.index.json"),
    ("text_encoder_2", "tokenizer.json", "tokenizer.json or vocab.json + merges.txt"),
    ("text_encoder_2", "config.json", "config.json"),
])
def test_a_text_encoder_folder_missing_a_file_is_named_before_loading(models, tmp_path, which, drop, named):
    _, tiny = models
    folder = _copy_folder(getattr(tiny, which), tmp_path)
    (folder / drop).unlink()
    (problem,) = files(tiny, **{which: folder}).problems()
    assert problem.startswith(f"{which}: ") and f"is incomplete, missing: {named}" in problem, problem
    assert "Download" in problem


def test_the_weights_file_inside_the_llava_folder_is_told_to_give_the_folder(models):
    _, tiny = models
    (problem,) = files(tiny, text_encoder=tiny.text_encoder / "model.safetensors").problems()
    assert problem.startswith("text_encoder: ") and f"give the folder itself: {tiny.text_encoder}" in problem
    assert "not a text encoder this pack knows" not in problem
    message = cli._flag_names(problem)
    assert message.startswith("--text-encoder: ")


def test_the_cli_refuses_a_cut_llava_download_before_anything_loads(models, ref_png, tmp_path, capsys,
                                                                    no_text_encoding):
    _, tiny = models
    folder = _copy_folder(tiny.text_encoder, tmp_path)
    truncated(folder / "model.safetensors", folder / "model.safetensors")
    out = tmp_path / "out.mp4"
    code = cli.main(["generate", "--image", str(ref_png), "--prompt", "a block", "--size", "64*48",
                     "--num-frames", "5", "--steps", "1", "--transformer", str(tiny.transformer),
                     "--vae", str(tiny.vae), "--text-encoder", str(folder),
                     "--text-encoder-2", str(tiny.text_encoder_2), "--device", "cpu", "--output", str(out)])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("error: --text-encoder: ") and "Download it again" in lines[0]
    assert not out.exists()


def test_the_loader_refuses_a_cut_clip_download_at_queue_time(models, monkeypatch, tmp_path):
    root, tiny = models
    monkeypatch.setenv("HYC_MODELS_DIR", str(root))
    cut = root / "text_encoders" / "clip-cut"
    shutil.copytree(tiny.text_encoder_2, cut)
    truncated(cut / "model.safetensors", cut / "model.safetensors")
    loader = NODE_CLASS_MAPPINGS["HunyuanCustomModelLoader"]
    names = dict(transformer="hunyuancustom_720P/mp_rank_00_model_states.pt", vae="hyvae_v1_0801/",
                 text_encoder="llava-llama-3-8b-v1_1/", text_encoder_2="clip-cut/")
    try:
        with pytest.raises(ValueError) as info:
            loader.VALIDATE_INPUTS(**names)
    finally:
        shutil.rmtree(cut)  # the model set is the module's
    assert str(info.value).startswith("text_encoder_2: ") and "Download it again" in str(info.value)
