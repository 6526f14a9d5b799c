"""pipelines/conditioning/reference.py beyond the upstream fixture: any size, any input type, the composite."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hunyuan_custom.pipelines.conditioning import reference


@settings(max_examples=60, deadline=None)
@given(src_w=st.integers(1, 300), src_h=st.integers(1, 300), dst_w=st.integers(1, 200), dst_h=st.integers(1, 200))
def test_pad_image_fits_centres_and_pads_white(src_w, src_h, dst_w, dst_h):
    img = np.zeros((src_h, src_w, 3), dtype=np.uint8)  # black subject
    out = reference.pad_image(img, (dst_w, dst_h))
    assert out.shape == (dst_h, dst_w, 3) and out.dtype == np.uint8
    fit_w, fit_h = reference.fit_size(src_w, src_h, dst_w, dst_h)
    assert 1 <= fit_w <= dst_w and 1 <= fit_h <= dst_h
    assert fit_w == dst_w or fit_h == dst_h  # one side always fills the target
    left, top = (dst_w - fit_w) // 2, (dst_h - fit_h) // 2
    inside = np.zeros((dst_h, dst_w), dtype=bool)
    inside[top:top + fit_h, left:left + fit_w] = True
    assert (out[inside] == 0).all() and (out[~inside] == 255).all()


def test_comfy_image_float_input_rounds_to_the_same_uint8():
    pixels = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    as_image = torch.from_numpy(pixels).float().div(255).unsqueeze(0)
    assert np.array_equal(reference.to_uint8_hwc(as_image), pixels)
    assert np.array_equal(reference.pad_image(as_image, (64, 48)), reference.pad_image(pixels, (64, 48)))
    batch = torch.cat([as_image, torch.zeros_like(as_image)])  # batch: first frame only
    assert np.array_equal(reference.to_uint8_hwc(batch), pixels)
    grey = reference.to_uint8_hwc(np.full((2, 2), 7, np.uint8))
    assert grey.shape == (2, 2, 3) and (grey == 7).all()


def test_tensor_shapes_ranges_and_sizes():
    img = np.full((50, 40, 3), 255, dtype=np.uint8)
    llava = reference.llava_pixel_values(img, size=32)
    assert llava.shape == (1, 3, 32, 32) and llava.dtype == torch.float32
    assert torch.allclose(llava, reference.uncond_llava_pixel_values(size=32))  # white stays white
    vae = reference.reference_for_vae(np.zeros((50, 40, 3), np.uint8), width=64, height=48)
    assert vae.shape == (1, 3, 1, 48, 64) and vae.min() == -1 and vae.max() == 1


def test_compose_references_layout():
    a = np.zeros((40, 20, 3), np.uint8)
    b = np.full((10, 30, 3), 100, np.uint8)
    out = reference.compose_references([a, b])
    assert out.shape == (40, 240, 3)  # H = 40, cell = 30 * 40/10 = 120, two cells
    assert np.array_equal(reference.compose_references([a]), a)
    assert np.array_equal(out, reference.compose_references([a, b]))  # deterministic
    with pytest.raises(ValueError):
        reference.compose_references([])


def test_bad_inputs_are_explained():
    with pytest.raises(ValueError, match="shape"):
        reference.pad_image(np.zeros((2, 2, 2), np.uint8), (4, 4))
    with pytest.raises(ValueError, match="positive"):
        reference.pad_image(np.zeros((2, 2, 3), np.uint8), (0, 4))
