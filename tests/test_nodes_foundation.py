"""HunyuanCustomLoadImage and HunyuanCustomPrompt called as plain classes (no ComfyUI)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from hunyuan_custom import NODE_CLASS_MAPPINGS
from hunyuan_custom.nodes.load_image import HunyuanCustomLoadImage
from hunyuan_custom.nodes.prompt import HunyuanCustomPrompt
from hunyuan_custom.nodes.validation import NodeInputProblem
from hunyuan_custom.pipelines.conditioning.prompt_spec import PromptSpec

OUR_NODES = (HunyuanCustomLoadImage, HunyuanCustomPrompt)


@pytest.fixture
def input_dir(tmp_path, monkeypatch):
    folder = tmp_path / "input"
    folder.mkdir()
    monkeypatch.setenv("HYC_INPUT_DIR", str(folder))
    return folder


def _save(path, rgba: np.ndarray) -> None:
    Image.fromarray(rgba, "RGBA" if rgba.shape[-1] == 4 else "RGB").save(path)


def _comfy_image(h: int, w: int, value: float, batch: int = 1) -> torch.Tensor:
    return torch.full((batch, h, w, 3), value, dtype=torch.float32)


# ------------------------------------------------------------------------------ registration


def test_nodes_are_registered_with_category_description_and_tooltips():
    for cls in OUR_NODES:
        assert NODE_CLASS_MAPPINGS[cls.__name__] is cls
        assert cls.CATEGORY.startswith("HunyuanCustom") and cls.DESCRIPTION
        assert len(cls.RETURN_TYPES) == len(cls.RETURN_NAMES)
        assert callable(getattr(cls(), cls.FUNCTION))
        for section in cls.INPUT_TYPES().values():
            for name, spec in section.items():
                assert isinstance(spec[1], dict) and spec[1].get("tooltip"), f"{cls.__name__}.{name} has no tooltip"


def test_prompt_node_output_type_and_multi_subject_tooltip():
    assert HunyuanCustomPrompt.RETURN_TYPES == ("HYC_PROMPT",) and HunyuanCustomPrompt.RETURN_NAMES == ("prompt",)
    spec = HunyuanCustomPrompt.INPUT_TYPES()
    assert spec["required"]["image"][0] == "IMAGE"
    assert set(spec["optional"]) == {"image_2", "image_3"}
    tip = spec["optional"]["image_2"][1]["tooltip"].lower()
    assert "side by side" in tip and "one reference" in tip and "first frame" in tip
    assert "first frame" in spec["required"]["image"][1]["tooltip"]


# ---------------------------------------------------------------------------------- loader


def test_load_image_lists_input_files_and_uploads(input_dir):
    _save(input_dir / "cat.png", np.zeros((4, 4, 3), np.uint8))
    image_spec = HunyuanCustomLoadImage.INPUT_TYPES()["required"]["image"]
    assert "cat.png" in image_spec[0] and image_spec[1]["image_upload"] is True


def test_load_image_offers_only_images_outside_comfyui_too(input_dir):
    # Outside ComfyUI the input folder defaults to the working directory (README.md, pyproject.toml, ...).
    for name in ("cat.png", "dog.JPG", "fox.webp", "README.md", "pyproject.toml", "clip.mp4", "weights.pt"):
        (input_dir / name).write_bytes(b"")
    choices = HunyuanCustomLoadImage.INPUT_TYPES()["required"]["image"][0]
    ours = [c for c in choices if c.startswith("hunyuan_custom_examples/")]  # the pack's example subjects
    assert [c for c in choices if c not in ours] == ["cat.png", "dog.JPG", "fox.webp"]


def test_load_image_from_input_folder(input_dir):
    rgba = np.zeros((3, 5, 4), np.uint8)
    rgba[..., 2] = 255  # blue ...
    rgba[..., 3] = 255
    rgba[0, 0, 3] = 0  # ... with one transparent pixel
    _save(input_dir / "subject.png", rgba)
    image, mask = HunyuanCustomLoadImage().load("subject.png")
    assert image.shape == (1, 3, 5, 3) and mask.shape == (1, 3, 5)
    assert image[0, 0, 0].tolist() == [1.0, 1.0, 1.0] and image[0, 1, 1].tolist() == [0.0, 0.0, 1.0]
    assert mask[0, 0, 0] == 1.0 and mask.sum() == 1.0


def test_is_changed_follows_file_content(input_dir):
    path = input_dir / "ref.png"
    _save(path, np.zeros((4, 4, 3), np.uint8))
    first = HunyuanCustomLoadImage.IS_CHANGED("ref.png")
    assert first == HunyuanCustomLoadImage.IS_CHANGED("ref.png")
    _save(path, np.full((4, 4, 3), 9, np.uint8))
    assert HunyuanCustomLoadImage.IS_CHANGED("ref.png") != first
    # a URL wins over the file and is its own fingerprint
    assert HunyuanCustomLoadImage.IS_CHANGED("ref.png", url=" https://x/a.png ") == "url:https://x/a.png"


def test_validate_inputs_reports_missing_file_and_bad_url(input_dir):
    def problem(*args, **kwargs) -> str:
        with pytest.raises(NodeInputProblem) as info:  # raised, so ComfyUI reports it once
            HunyuanCustomLoadImage.VALIDATE_INPUTS(*args, **kwargs)
        return str(info.value)

    _save(input_dir / "there.png", np.zeros((2, 2, 3), np.uint8))
    assert HunyuanCustomLoadImage.VALIDATE_INPUTS("there.png") is True
    message = problem("gone.png")
    assert "gone.png" in message and "not found" in message
    assert problem("../secret.png").startswith("image")
    assert problem("/etc/passwd").startswith("image")
    assert HunyuanCustomLoadImage.VALIDATE_INPUTS("gone.png", url=None) is True  # url fed by a link
    # a URL replaces the file (even a missing one) but must be http(s)
    assert HunyuanCustomLoadImage.VALIDATE_INPUTS("gone.png", url="https://example.com/a.png") is True
    for bad in ("file:///etc/passwd", "ftp://example.com/a.png"):
        message = problem("there.png", url=bad)
        assert message.startswith("url") and "http" in message


def test_load_missing_or_non_image_file_errors_name_it(input_dir):
    (input_dir / "fake.png").write_text("not an image")
    with pytest.raises(ValueError, match="fake.png"):
        HunyuanCustomLoadImage().load("fake.png")
    with pytest.raises(ValueError, match="absent.png"):
        HunyuanCustomLoadImage().load("absent.png")


def test_load_refuses_non_http_url_without_touching_files(input_dir):
    with pytest.raises(ValueError, match="http"):
        HunyuanCustomLoadImage().load("", url="file:///etc/passwd")


# ---------------------------------------------------------------------------------- prompt


def test_prompt_node_outputs_a_prompt_spec():
    image = torch.rand(2, 36, 48, 3)  # a batch: only the first frame is used
    (spec,) = HunyuanCustomPrompt().build("A man walks on the beach.", "blurry", "man", image)
    assert isinstance(spec, PromptSpec)
    assert (spec.prompt, spec.negative_prompt, spec.subject, spec.num_references) == \
        ("A man walks on the beach.", "blurry", "man", 1)
    assert spec.reference.shape == (1, 36, 48, 3) and spec.reference.dtype == torch.float32
    assert torch.equal(spec.reference[0], image[0])  # a single reference is kept as it is


def test_multi_subject_composite_shape_and_white_background():
    tall = _comfy_image(160, 80, 0.0)  # black 80x160 (w x h)
    wide = _comfy_image(40, 120, 0.5)  # grey 120x40
    (spec,) = HunyuanCustomPrompt().build("two friends", "", "people", tall, image_2=wide)
    ref = spec.reference
    # canvas height = tallest (160); cell width = widest once scaled to height 160 (120*4 = 480)
    assert ref.shape == (1, 160, 960, 3) and spec.num_references == 2
    left, right = ref[0, :, :480], ref[0, :, 480:]
    # the tall image (80x160) sits centred in its cell between white bars
    assert (left[:, 200:280] == 0).all() and (left[:, :200] == 1).all() and (left[:, 280:] == 1).all()
    # the widest image defines the cell, so it fills it exactly (0.5 -> uint8 128)
    assert torch.allclose(right, torch.tensor(128 / 255), atol=1e-6)
    (three,) = HunyuanCustomPrompt().build("trio", "", "people", tall, wide, _comfy_image(160, 80, 1.0))
    assert three.reference.shape == (1, 160, 1440, 3) and three.num_references == 3


@pytest.mark.parametrize("which", ["image", "image_3"])
def test_a_tiny_reference_picture_is_refused_naming_its_input(which):
    good, dot = _comfy_image(64, 48, 0.5), _comfy_image(1, 1, 0.5)
    images = {"image": good, "image_2": good, "image_3": good, which: dot}
    with pytest.raises(ValueError, match=rf"^{which}: the picture is 1x1 pixels; a reference needs at least 32 "):
        HunyuanCustomPrompt().build("ok", "", "man", **images)


def test_empty_prompt_error_names_the_field():
    image = _comfy_image(4, 4, 0.5)
    with pytest.raises(ValueError, match=r"^prompt\b"):
        HunyuanCustomPrompt().build("   ", "", "man", image)
    message = HunyuanCustomPrompt.VALIDATE_INPUTS(prompt="")
    # ComfyUI shows it after the input's name: "prompt - '' is not valid: ..." (not "prompt - prompt = ...")
    assert isinstance(message, str) and message.startswith("'' is not valid: a non-empty description")
    assert HunyuanCustomPrompt.VALIDATE_INPUTS(prompt="ok") is True
    assert HunyuanCustomPrompt.VALIDATE_INPUTS(prompt=None) is True  # linked input
    with pytest.raises(ValueError, match="subject"):  # checked when the node runs
        HunyuanCustomPrompt().build("ok", "", "", image)


def test_prompt_node_refuses_a_non_image():
    with pytest.raises(ValueError, match="image"):
        HunyuanCustomPrompt().build("ok", "", "man", torch.zeros(4, 4))


def test_model_names_from_a_prompt_stay_inside_the_model_folder(tmp_path, monkeypatch):
    """Inside ComfyUI a /prompt request names the model: no absolute path or '..' may reach other files."""
    import sys
    import types

    from hunyuan_custom.nodes import comfy

    models = tmp_path / "models" / "vae"
    (models / "sub").mkdir(parents=True)
    (models / "sub" / "vae.safetensors").write_bytes(b"x")
    secret = tmp_path / "secret.safetensors"
    secret.write_bytes(b"x")
    fake = types.ModuleType("folder_paths")
    fake.get_folder_paths = lambda folder: [str(tmp_path / "models" / folder)]
    monkeypatch.setitem(sys.modules, "folder_paths", fake)
    assert comfy.resolve_model_path("vae", "sub/vae.safetensors") == str(models / "sub" / "vae.safetensors")
    for name in (str(secret), "../secret.safetensors", "sub/../../secret.safetensors", "..\\secret.safetensors"):
        with pytest.raises(FileNotFoundError, match="pick a model from the vae list"):
            comfy.resolve_model_path("vae", name)
    monkeypatch.delitem(sys.modules, "folder_paths")
    assert comfy.resolve_model_path("vae", str(secret)) == str(secret)  # scripts and tests outside ComfyUI
