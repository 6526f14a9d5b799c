"""The pack's example subject pictures: what they are, how the Load Reference Image node lists and
reads them, and how /view previews them without anything written into ComfyUI's input folder."""

from __future__ import annotations

import asyncio
import sys
import tomllib
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hunyuan_custom.nodes import example_images, routes
from hunyuan_custom.nodes.load_image import HunyuanCustomLoadImage

ROOT = Path(__file__).resolve().parents[1]
MAN, DOG = "hunyuan_custom_examples/man.png", "hunyuan_custom_examples/dog.png"


@pytest.fixture
def input_dir(tmp_path, monkeypatch):
    folder = tmp_path / "input"
    folder.mkdir()
    Image.new("RGB", (20, 20), (200, 10, 10)).save(folder / "mine.png")
    monkeypatch.setenv("HYC_INPUT_DIR", str(folder))
    return folder


@pytest.mark.parametrize("name", [MAN, DOG])
def test_each_picture_is_a_small_cut_out_on_transparent_background(name):
    path = Path(example_images.path_of(name))
    assert 5_000 < path.stat().st_size < 64_000  # a few tens of KB
    with Image.open(path) as image:
        assert image.format == "PNG" and image.mode == "RGBA"
        alpha = np.asarray(image)[..., 3]
    assert alpha[0].max() == 0 and alpha[:, 0].max() == 0 and alpha[:, -1].max() == 0  # free border
    assert 0.2 < (alpha > 0).mean() < 0.8  # a subject, not a speck and not a full frame


def test_the_pictures_are_what_the_drawing_script_draws():
    """Provenance: our own drawings, reproducible from tools/draw_example_subjects.py (within
    what Pillow versions may differ by when scaling down)."""
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import draw_example_subjects as drawing
    finally:
        sys.path.remove(str(ROOT / "tools"))
    for file, draw in drawing.DRAWINGS.items():
        with Image.open(ROOT / "assets" / "example_subjects" / file) as committed:
            diff = np.abs(np.asarray(draw(), np.int16) - np.asarray(committed, np.int16))
        assert diff.mean() < 0.5, file


def test_listed_after_the_input_folders_images(input_dir):
    choices = HunyuanCustomLoadImage.INPUT_TYPES()["required"]["image"][0]
    assert choices[-2:] == [DOG, MAN]
    assert "mine.png" in choices and choices.index("mine.png") < choices.index(DOG)
    assert example_images.names() == [DOG, MAN]


def test_loaded_from_the_pack_and_validated_without_a_file_in_the_input_folder(input_dir):
    assert HunyuanCustomLoadImage.VALIDATE_INPUTS(image=MAN, url="") is True
    image, mask = HunyuanCustomLoadImage().load(MAN)
    assert tuple(image.shape[:3]) == (1, 600, 360)
    assert float(image[0, 0, 0].min()) == 1.0  # transparent corner -> white, as upstream expects
    assert HunyuanCustomLoadImage.IS_CHANGED(image=MAN) == HunyuanCustomLoadImage.IS_CHANGED(image=MAN)
    assert sorted(p.name for p in input_dir.iterdir()) == ["mine.png"]  # nothing written


def test_a_file_of_the_users_at_the_same_place_wins(input_dir):
    (input_dir / "hunyuan_custom_examples").mkdir()
    Image.new("RGB", (30, 10), (0, 0, 255)).save(input_dir / "hunyuan_custom_examples" / "man.png")
    image, _ = HunyuanCustomLoadImage().load(MAN)
    assert tuple(image.shape[1:3]) == (10, 30)
    assert example_images.for_view({"type": "input", "subfolder": "hunyuan_custom_examples", "filename": "man.png"},
                                   str(input_dir)) is None  # ComfyUI's /view serves the user's file


def test_names_that_are_not_ours_are_left_alone(input_dir):
    for name in ("man.png", "hunyuan_custom_examples/cat.png", "hunyuan_custom_examples/../man.png", "", None):
        assert example_images.path_of(name) is None
    assert example_images.path_of(MAN + " [input]") == example_images.path_of(MAN)
    with pytest.raises(ValueError, match="not found"):  # raised once for the node (nodes/validation.py)
        HunyuanCustomLoadImage.VALIDATE_INPUTS(image="hunyuan_custom_examples/cat.png", url="")


@pytest.mark.parametrize("query, ours", [
    ({"type": "input", "subfolder": "hunyuan_custom_examples", "filename": "dog.png"}, True),
    ({"type": "input", "subfolder": "hunyuan_custom_examples/", "filename": "dog.png", "rand": "0.3"}, True),
    ({"subfolder": "hunyuan_custom_examples", "filename": "dog.png"}, False),  # /view's default type is output
    ({"type": "output", "subfolder": "hunyuan_custom_examples", "filename": "dog.png"}, False),
    ({"type": "input", "filename": "dog.png"}, False),
    ({"type": "input", "subfolder": "hunyuan_custom_examples", "filename": "../README.md"}, False),
])
def test_view_requests_answered_from_the_pack(input_dir, query, ours):
    path = example_images.for_view(query, str(input_dir))
    assert (path == example_images.path_of(DOG)) if ours else path is None


def test_a_trimmed_install_without_the_pictures_still_loads(monkeypatch, tmp_path, input_dir):
    monkeypatch.setattr(example_images, "ASSETS", tmp_path / "gone")
    assert example_images.names() == [] and example_images.path_of(MAN) is None
    assert HunyuanCustomLoadImage.INPUT_TYPES()["required"]["image"][0] == ["mine.png"]


def test_the_pictures_travel_with_a_package_install():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "assets/example_subjects/*.png" in data["hunyuan_custom"]


# ---------------------------------------------------------------- the /view middleware


class FakeRoutes:
    def __init__(self):
        self.handlers = {}

    def get(self, path):
        return lambda handler: self.handlers.setdefault(path, handler)


class FakeRequest:
    def __init__(self, path, query, method="GET"):
        self.path, self.method = path, method
        self.rel_url = types.SimpleNamespace(query=query)


@pytest.fixture
def fake_web(monkeypatch):
    web = types.ModuleType("aiohttp.web")
    web.middleware = lambda f: f
    web.FileResponse = lambda path, headers=None: ("file", str(path), headers)
    aiohttp = types.ModuleType("aiohttp")
    aiohttp.web = web
    monkeypatch.setitem(sys.modules, "aiohttp", aiohttp)
    monkeypatch.setitem(sys.modules, "aiohttp.web", web)
    return web


def test_middleware_added_to_the_server_answers_only_our_pictures(fake_web, input_dir):
    server = types.SimpleNamespace(routes=FakeRoutes(), app=types.SimpleNamespace(middlewares=[]))
    assert routes.register(server) is True
    (middleware,) = server.app.middlewares

    async def core_handler(request):
        return ("core", request.path)

    def call(path, query, method="GET"):
        return asyncio.run(middleware(FakeRequest(path, query, method), core_handler))

    ours = {"type": "input", "subfolder": "hunyuan_custom_examples", "filename": "man.png"}
    for path in ("/view", "/api/view"):
        kind, file, headers = call(path, ours)
        assert (kind, file) == ("file", example_images.path_of(MAN)) and headers["Cache-Control"] == "no-cache"
    assert call("/view", {"type": "input", "filename": "mine.png"}) == ("core", "/view")
    assert call("/upload/image", ours) == ("core", "/upload/image")
    assert call("/view", ours, method="POST") == ("core", "/view")


def test_a_frozen_server_keeps_the_routes_and_only_loses_the_previews(fake_web, caplog):
    class Frozen(list):
        def append(self, item):
            raise RuntimeError("Cannot modify frozen list.")

    server = types.SimpleNamespace(routes=FakeRoutes(), app=types.SimpleNamespace(middlewares=Frozen()))
    assert routes.register(server) is True
    assert routes.KEY_STATUS_PATH in server.routes.handlers
    assert "preview" in caplog.text
