"""The pack's example media (two subject pictures, a song, a video and its mask): what they are, how
our Load nodes list and read them, and how /view previews them without anything written into
ComfyUI's input folder."""

from __future__ import annotations

import asyncio
import sys
import tomllib
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hunyuan_custom.nodes import example_media, routes
from hunyuan_custom.nodes.load_audio import HunyuanCustomLoadAudio
from hunyuan_custom.nodes.load_image import HunyuanCustomLoadImage
from hunyuan_custom.nodes.load_video import HunyuanCustomLoadVideo

ROOT = Path(__file__).resolve().parents[1]
MAN, DOG = "hunyuan_custom_examples/man.png", "hunyuan_custom_examples/dog.png"
SONG = "hunyuan_custom_examples/sung_melody.mp3"
VIDEO, MASK = "hunyuan_custom_examples/park_walk.mp4", "hunyuan_custom_examples/park_walk_mask.mp4"


def tool(name: str):
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        return __import__(name)
    finally:
        sys.path.remove(str(ROOT / "tools"))


@pytest.fixture
def input_dir(tmp_path, monkeypatch):
    folder = tmp_path / "input"
    folder.mkdir()
    Image.new("RGB", (20, 20), (200, 10, 10)).save(folder / "mine.png")
    monkeypatch.setenv("HYC_INPUT_DIR", str(folder))
    return folder


@pytest.mark.parametrize("name", [MAN, DOG])
def test_each_picture_is_a_small_cut_out_on_transparent_background(name):
    path = Path(example_media.path_of(name))
    assert 5_000 < path.stat().st_size < 64_000  # a few tens of KB
    with Image.open(path) as image:
        assert image.format == "PNG" and image.mode == "RGBA"
        alpha = np.asarray(image)[..., 3]
    assert alpha[0].max() == 0 and alpha[:, 0].max() == 0 and alpha[:, -1].max() == 0  # free border
    assert 0.2 < (alpha > 0).mean() < 0.8  # a subject, not a speck and not a full frame


def test_the_pictures_are_what_the_drawing_script_draws():
    """Provenance: our own drawings, reproducible from tools/draw_example_subjects.py (within
    what Pillow versions may differ by when scaling down)."""
    drawing = tool("draw_example_subjects")
    for file, draw in drawing.DRAWINGS.items():
        with Image.open(ROOT / "assets" / "examples" / file) as committed:
            diff = np.abs(np.asarray(draw(), np.int16) - np.asarray(committed, np.int16))
        assert diff.mean() < 0.5, file


def test_listed_after_the_input_folders_images(input_dir):
    choices = HunyuanCustomLoadImage.INPUT_TYPES()["required"]["image"][0]
    assert choices[-2:] == [DOG, MAN]
    assert "mine.png" in choices and choices.index("mine.png") < choices.index(DOG)
    assert example_media.names("image") == [DOG, MAN]


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
    assert example_media.for_view({"type": "input", "subfolder": "hunyuan_custom_examples", "filename": "man.png"},
                                   str(input_dir)) is None  # ComfyUI's /view serves the user's file


def test_names_that_are_not_ours_are_left_alone(input_dir):
    for name in ("man.png", "hunyuan_custom_examples/cat.png", "hunyuan_custom_examples/../man.png", "", None):
        assert example_media.path_of(name) is None
    assert example_media.path_of(MAN + " [input]") == example_media.path_of(MAN)
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
    path = example_media.for_view(query, str(input_dir))
    assert (path == example_media.path_of(DOG)) if ours else path is None


def test_a_trimmed_install_without_the_pictures_still_loads(monkeypatch, tmp_path, input_dir):
    monkeypatch.setattr(example_media, "ASSETS", tmp_path / "gone")
    assert example_media.names() == [] and example_media.path_of(MAN) is None
    assert HunyuanCustomLoadImage.INPUT_TYPES()["required"]["image"][0] == ["mine.png"]
    assert HunyuanCustomLoadAudio.INPUT_TYPES()["required"]["audio"][0] == []
    assert HunyuanCustomLoadVideo.INPUT_TYPES()["required"]["video"][0] == []


# ---------------------------------------------------------------- the song and the videos


@pytest.fixture(scope="module")
def media_tool():
    return tool("make_example_media")


def _rms_envelope(samples: np.ndarray, rate: int) -> np.ndarray:
    hop = rate // 50
    usable = samples[: len(samples) // hop * hop]
    return np.sqrt((usable.reshape(-1, hop) ** 2).mean(axis=1))


def test_the_song_is_a_small_sung_melody_long_enough_for_129_frames(media_tool, input_dir):
    assert 10_000 < Path(example_media.path_of(SONG)).stat().st_size < 64_000
    assert HunyuanCustomLoadAudio.VALIDATE_INPUTS(audio=SONG) is True
    (audio,) = HunyuanCustomLoadAudio().load(SONG)
    waveform, rate = audio["waveform"], audio["sample_rate"]
    assert waveform.dtype == torch.float32 and waveform.shape[:2] == (1, 1) and rate == media_tool.SONG_RATE
    assert waveform.shape[2] / rate >= 129 / 25
    # provenance: what the tool sings, as far as mp3 keeps it (the loudness over time)
    made = _rms_envelope(media_tool.song_samples(), rate)
    heard = _rms_envelope(waveform[0, 0].numpy(), rate)
    n = min(len(made), len(heard))
    assert np.corrcoef(made[:n], heard[:n])[0, 1] > 0.95
    assert sorted(p.name for p in input_dir.iterdir()) == ["mine.png"]  # nothing written


def test_the_video_and_its_mask_are_the_tools_frames_with_the_parks_sound(media_tool, input_dir):
    for name in (VIDEO, MASK):
        assert 5_000 < Path(example_media.path_of(name)).stat().st_size < 100_000
        assert HunyuanCustomLoadVideo.VALIDATE_INPUTS(video=name) is True
    frames, audio, fps = HunyuanCustomLoadVideo().load(VIDEO, frame_load_cap=0)
    mask, no_sound, mask_fps = HunyuanCustomLoadVideo().load(MASK, frame_load_cap=0)
    width, height = media_tool.VIDEO_SIZE
    assert tuple(frames.shape) == tuple(mask.shape) == (media_tool.VIDEO_FRAMES, height, width, 3)
    assert fps == mask_fps == 25.0
    assert audio["waveform"].shape[2] / audio["sample_rate"] >= 5.0 and float(audio["waveform"].abs().max()) > 0.05
    assert no_sound is None
    source_made, mask_made = media_tool.walk_frames()
    for i in (0, 64, 128):  # a few frames: H.264 keeps the drawing, and the mask's edge, within a little
        assert np.abs(frames[i].numpy() * 255 - source_made[i]).mean() < 4.0
        disagree = (mask[i, ..., 0].numpy() > 0.5) != (mask_made[i, ..., 0] > 127)
        assert disagree.mean() < 0.005
        white = mask_made[i, ..., 0] > 127
        assert 0.03 < white.mean() < 0.2  # a person, not the frame
    assert sorted(p.name for p in input_dir.iterdir()) == ["mine.png"]


def test_load_video_says_what_another_frame_rate_does_to_the_edit(input_dir, caplog):
    from hunyuan_custom.pipelines.media import video_io

    frames = torch.zeros(3, 48, 64, 3)
    video_io.write_video(input_dir / "at30.mp4", frames, 30)
    with caplog.at_level("WARNING", logger="hunyuan_custom"):
        _, _, fps = HunyuanCustomLoadVideo().load("at30.mp4", frame_load_cap=0)
        HunyuanCustomLoadVideo().load(MASK, frame_load_cap=0)  # 25 fps: nothing to say
    assert fps == 30.0
    assert [r.getMessage() for r in caplog.records] == [
        "HunyuanCustom: video 'at30.mp4': the source is 30 fps; the edit keeps every frame at 25 fps, so it plays "
        "1.2x slower than the source (its sound is cut, not stretched)."]


def test_load_video_stops_after_the_cap(input_dir):
    frames, _, _ = HunyuanCustomLoadVideo().load(MASK, frame_load_cap=9)
    assert frames.shape[0] == 9


@pytest.mark.parametrize("node, name, kind", [(HunyuanCustomLoadAudio, SONG, "audio"),
                                               (HunyuanCustomLoadVideo, VIDEO, "video")])
def test_audio_and_video_lists_and_checks(node, name, kind, input_dir):
    (input_dir / "clip.mp4").write_bytes(b"\0")
    (input_dir / "voice.wav").write_bytes(b"\0")
    choices = node.INPUT_TYPES()["required"][kind][0]
    mine = ["clip.mp4", "voice.wav"] if kind == "audio" else ["clip.mp4"]  # core lists videos for audio too
    assert choices == mine + example_media.names(kind) and name in choices
    assert node.INPUT_TYPES()["required"][kind][1][f"{kind}_upload"] is True
    assert node.VALIDATE_INPUTS(**{kind: None}) is True  # fed by a link: checked at run time
    assert node.VALIDATE_INPUTS(**{kind: "gone.mp4"}) == \
        f"{kind}: file 'gone.mp4' not found in ComfyUI's input folder; upload it again or pick another."
    assert "not found" in node.VALIDATE_INPUTS(**{kind: "../secret.mp4"})  # the same words as missing
    assert node.IS_CHANGED(**{kind: name}) == node.IS_CHANGED(**{kind: name}) != node.IS_CHANGED(**{kind: "x"})
    (input_dir / "clip.mp4").write_bytes(b"\0\0")
    before = node.IS_CHANGED(**{kind: "clip.mp4"})
    (input_dir / "clip.mp4").write_bytes(b"\1\0")
    assert node.IS_CHANGED(**{kind: "clip.mp4"}) != before


def test_a_broken_file_is_named_in_the_error(input_dir):
    (input_dir / "broken.mp4").write_bytes(b"not a video at all")
    with pytest.raises(ValueError, match="broken.mp4"):
        HunyuanCustomLoadVideo().load("broken.mp4")
    with pytest.raises(ValueError, match="broken.mp4"):
        HunyuanCustomLoadAudio().load("broken.mp4")


@pytest.mark.parametrize("name", [SONG, VIDEO, MASK])
def test_view_answers_the_song_and_videos_too(name, input_dir):
    folder, file = name.split("/")
    assert example_media.for_view({"type": "input", "subfolder": folder, "filename": file}, str(input_dir)) \
        == example_media.path_of(name)


def test_the_examples_travel_with_a_package_install():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    shipped = {p.name for pattern in data["hunyuan_custom"] if pattern.startswith("assets/")
               for p in ROOT.glob(pattern)}
    assert shipped == {p.name for p in (ROOT / "assets" / "examples").iterdir()}


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
    middleware, _queue_checks = server.app.middlewares  # the second: nodes/queue_checks.py's (test_queue_checks)

    async def core_handler(request):
        return ("core", request.path)

    def call(path, query, method="GET"):
        return asyncio.run(middleware(FakeRequest(path, query, method), core_handler))

    ours = {"type": "input", "subfolder": "hunyuan_custom_examples", "filename": "man.png"}
    for path in ("/view", "/api/view"):
        kind, file, headers = call(path, ours)
        assert (kind, file) == ("file", example_media.path_of(MAN)) and headers["Cache-Control"] == "no-cache"
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
