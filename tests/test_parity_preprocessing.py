"""Reference preprocessing against upstream's numbers (reference_dir/preprocessing).

Every size is read from the fixture (config.json video_size_HW, the pad_image.extra_WxH tensor
names, tensor shapes), so a fixture set with other sizes runs the same checks.
uint8 images must be identical; float tensors within atol 1e-6 (the fixture README's tolerance).
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.numpy import load_file

from conftest import FIXTURES
from hunyuan_custom.pipelines.conditioning import reference

FLOAT_ATOL = 1e-6


@pytest.fixture(scope="module")
def fixture(reference_dir):
    folder = reference_dir / "preprocessing"
    config = json.loads((folder / "config.json").read_text())
    tensors = load_file(str(folder / "preprocessing.safetensors"))
    # The pixels upstream worked on (cv2.imread + BGR2RGB) are in the fixture; the checks below
    # start from them, and the first test checks that our PNG decoding gives the same pixels.
    return config, tensors, tensors["ref_image_rgb_uint8"], folder


def _assert_uint8_equal(ours: np.ndarray, expected: np.ndarray, name: str) -> None:
    assert ours.dtype == np.uint8 and expected.dtype == np.uint8, name
    assert ours.shape == expected.shape, f"{name}: shape {ours.shape} != {expected.shape}"
    diff = np.abs(ours.astype(np.int16) - expected.astype(np.int16))
    assert diff.max() == 0, f"{name}: {int((diff > 0).sum())} values differ, max {diff.max()}"


def _assert_close(ours: torch.Tensor, expected: np.ndarray, name: str) -> None:
    exp = torch.from_numpy(expected)
    assert ours.dtype == torch.float32, name
    assert tuple(ours.shape) == tuple(exp.shape), f"{name}: shape {tuple(ours.shape)} != {tuple(exp.shape)}"
    err = (ours - exp).abs().max().item()
    assert err <= FLOAT_ATOL, f"{name}: max |diff| {err:.3g} > {FLOAT_ATOL}"


def _video_size(config) -> tuple[int, int]:
    height, width = config["video_size_HW"]
    return int(width), int(height)


def test_parity_fixture_image_is_the_one_upstream_read(fixture):
    _, tensors, _, folder = fixture
    decoded = np.array(Image.open(folder / "ref_image.png").convert("RGB"))
    _assert_uint8_equal(decoded, tensors["ref_image_rgb_uint8"], "ref_image.png decoded vs ref_image_rgb_uint8")


def test_parity_pad_image_llava(fixture):
    _, tensors, image, _ = fixture
    expected = tensors["pad_image.llava_336"]
    size = (expected.shape[1], expected.shape[0])
    _assert_uint8_equal(reference.pad_image(image, size), expected, "pad_image.llava_336")


def test_parity_pad_image_video_size(fixture):
    config, tensors, image, _ = fixture
    _assert_uint8_equal(reference.pad_image(image, _video_size(config)), tensors["pad_image.ref_video_size"],
                        "pad_image.ref_video_size")


def _extra_sizes(tensors) -> dict[str, tuple[int, int]]:
    extras = {}
    for name in tensors:
        match = re.fullmatch(r"pad_image\.extra_(\d+)x(\d+)", name)
        if match:
            extras[name] = (int(match.group(1)), int(match.group(2)))
    return extras


def test_parity_pad_image_extra_sizes(fixture):
    # Whatever extra sizes a set holds pass on their numbers; our copy must hold some (below).
    _, tensors, image, _ = fixture
    for name, (width, height) in _extra_sizes(tensors).items():
        assert tensors[name].shape == (height, width, 3), f"{name}: name and shape disagree"
        _assert_uint8_equal(reference.pad_image(image, (width, height)), tensors[name], name)


def test_our_fixture_copy_has_extra_pad_sizes():
    tensors = load_file(str(FIXTURES / "reference" / "preprocessing" / "preprocessing.safetensors"))
    assert _extra_sizes(tensors), "tests/fixtures has no pad_image.extra_WxH tensors"


def test_parity_pixel_value_llava(fixture):
    _, tensors, image, _ = fixture
    expected = tensors["pixel_value_llava"]
    _assert_close(reference.llava_pixel_values(image, size=expected.shape[-1]), expected, "pixel_value_llava")


def test_parity_uncond_pixel_value_llava(fixture):
    _, tensors, _, _ = fixture
    expected = tensors["uncond_pixel_value_llava"]
    _assert_close(reference.uncond_llava_pixel_values(size=expected.shape[-1]), expected, "uncond_pixel_value_llava")


def test_parity_pixel_value_ref(fixture):
    config, tensors, image, _ = fixture
    _assert_close(reference.reference_pixels(image, *_video_size(config)), tensors["pixel_value_ref"], "pixel_value_ref")


def test_parity_pixel_value_ref_for_vae(fixture):
    config, tensors, image, _ = fixture
    _assert_close(reference.reference_for_vae(image, *_video_size(config)), tensors["pixel_value_ref_for_vae"],
                  "pixel_value_ref_for_vae")


def test_parity_from_comfy_image_tensor(fixture):
    """The same numbers when the reference arrives as a ComfyUI IMAGE (float 0..1, batch dim)."""
    config, tensors, image, _ = fixture
    comfy_image = torch.from_numpy(image).float().div(255).unsqueeze(0)
    _assert_close(reference.reference_for_vae(comfy_image, *_video_size(config)), tensors["pixel_value_ref_for_vae"],
                  "pixel_value_ref_for_vae (from IMAGE)")
    _assert_close(reference.llava_pixel_values(comfy_image, size=tensors["pixel_value_llava"].shape[-1]),
                  tensors["pixel_value_llava"], "pixel_value_llava (from IMAGE)")
