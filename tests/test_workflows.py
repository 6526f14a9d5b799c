"""The example workflows in workflows/: valid for the frontend and the server, their API twins
up to date, their notes helpful, and each one executed with tiny models and the fake WaveSpeed
server (the API twin, through tests/_workflows.run_api_graph)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import _fake_wavespeed as fw
import _workflows as wf
from _tiny_model_set import build_tiny_model_set
from hunyuan_custom.nodes import comfy
from hunyuan_custom.pipelines import schema
from hunyuan_custom.pipelines.media import video_io
from hunyuan_custom.pipelines.media.audio_io import load_audio_file

WORKFLOWS = Path(__file__).resolve().parents[1] / "workflows"
FILES = sorted(WORKFLOWS.glob("*.json"))
NAMES = [p.stem for p in FILES]
KEY = "ws-workflow-test-key-7777bbbb"
TITLE_BAR = 30  # LiteGraph draws a node's title above its pos
LOCAL, REMOTE, PROMPT = "HunyuanCustomSampler", "HunyuanCustomWaveSpeed", "HunyuanCustomPrompt"
# The file names are the titles of the template browser's cards (ComfyUI shows nothing else).
LOCAL_720P, REMOTE_720P = "Local 720p", "WaveSpeed 720p"
HYBRID, TWO_SUBJECTS = "Local preview and WaveSpeed final", "Two subjects"
SINGING_AVATAR = "Singing avatar"
REPLACE_SUBJECT = "Replace the subject in a video"
EDIT = "HunyuanCustomEdit"
MEDIA_LOADERS = {"HunyuanCustomLoadImage": "image", "HunyuanCustomLoadAudio": "audio",
                 "HunyuanCustomLoadVideo": "video"}  # node -> its file input (and kind)
TINY = {"size": "64*48", "num_frames": 9, "steps": 2}  # what the tiny transformer runs in a second


def load(name: str, api: bool = False) -> dict:
    return json.loads((WORKFLOWS / ("api" if api else "") / f"{name}.json").read_text(encoding="utf-8"))


def nodes_of(graph: dict, kind: str) -> list[dict]:
    return [n for n in graph["nodes"] if n["type"] == kind]


def widget_dict(node: dict, object_info: dict) -> dict:
    slots = wf.widget_slots(object_info[node["type"]])
    values = {}
    for slot, value in zip(slots, node["widgets_values"]):
        values[slot.name + ("/control" if slot.kind == "control" else "/upload" if slot.kind == "upload" else "")] = value
    return values


def for_tiny_models(api: dict) -> dict:
    """The API graph with the local samplers shrunk to what the tiny model set runs quickly
    (remote sizes stay: the fake server answers with a small mp4 anyway), and the video loaders
    stopping after the frames the sampler uses (as a user caps a long clip)."""
    api = copy.deepcopy(api)
    for node in api.values():
        if node["class_type"] == LOCAL:
            node["inputs"].update(TINY)
        if node["class_type"] == "HunyuanCustomLoadVideo":
            node["inputs"]["frame_load_cap"] = TINY["num_frames"]
        if node["class_type"] == "HunyuanCustomModelLoader":
            node["inputs"]["dtype"] = "float32"
    return api


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("models")
    build_tiny_model_set(root)
    return root


@pytest.fixture(scope="module")
def remote_video(tmp_path_factory) -> bytes:
    frames = torch.linspace(0, 1, 5).view(5, 1, 1, 1).expand(5, 32, 48, 3).contiguous()
    return video_io.write_video(tmp_path_factory.mktemp("v") / "remote.mp4", frames, fps=25).read_bytes()


@pytest.fixture
def comfy_dirs(models_dir, tmp_path, monkeypatch):
    """ComfyUI's folders as our nodes see them outside ComfyUI. The input folder stays EMPTY: the
    templates name the pack's own example media, so they run out of the box."""
    input_dir, output_dir = tmp_path / "input", tmp_path / "output"
    input_dir.mkdir()
    monkeypatch.setenv("HYC_MODELS_DIR", str(models_dir))
    monkeypatch.setenv("HYC_INPUT_DIR", str(input_dir))
    monkeypatch.setenv("HYC_OUTPUT_DIR", str(output_dir))
    monkeypatch.setattr(comfy, "temp_directory", lambda: str(tmp_path / "temp"))
    return input_dir, output_dir


@pytest.fixture
def fake_wavespeed(remote_video, tmp_path, monkeypatch):
    with fw.FakeWaveSpeed(KEY, remote_video) as server:
        fw.use_in_env(server, monkeypatch, KEY, tmp_path / "no-config.json")
        yield server


def test_the_five_workflows_and_their_twins_exist():
    assert set(NAMES) == {LOCAL_720P, REMOTE_720P, HYBRID, TWO_SUBJECTS, SINGING_AVATAR, REPLACE_SUBJECT}
    assert sorted(p.stem for p in (WORKFLOWS / "api").glob("*.json")) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_template_card_title_is_readable(name):
    # ComfyUI's template browser titles a custom pack's card with the file name (it offers no other title
    # field for custom packs), under the pack's category: no "HunyuanCustom " in front, and short enough
    # for 1.58's one-line card title (tools/browser_check.mjs checks that none is cut off).
    assert not name.lower().startswith("hunyuancustom") and "_" not in name and len(name) <= 34
    assert all(c.isalnum() or c in " -" for c in name), "characters that need escaping in the template URL"


def test_every_template_card_has_its_own_description():
    # Both frontends describe a custom pack's card with its file name again; the web extension shows
    # these instead (web/template_browser.js), written by tests/_workflow_builder.py.
    import _workflow_builder as builder

    cards = json.loads((WORKFLOWS.parent / "web" / "template_cards.json").read_text(encoding="utf-8"))
    assert cards == {"category": builder.CATEGORY, "descriptions": builder.CARD_DESCRIPTIONS}
    assert sorted(cards["descriptions"]) == sorted(NAMES)
    for name, text in cards["descriptions"].items():
        assert text.lower() != name.lower() and name.lower() not in text.lower()
        assert 20 <= len(text) <= 62, "about two lines of a 16rem card (1.27 cuts the rest off; the browser check measures)"


def test_template_category_is_named_hunyuancustom():
    # The card's category is the install folder's name, unless the frontend has a translation for
    # templateWorkflows.category.<folder> (ComfyUI serves every pack's locales/<lang>/main.json at /i18n).
    import tomllib

    locale = json.loads((WORKFLOWS.parent / "locales" / "en" / "main.json").read_text())
    categories = locale["templateWorkflows"]["category"]
    project = tomllib.loads((WORKFLOWS.parent / "pyproject.toml").read_text())["project"]["name"]
    repository = "comfyui-hunyuancustom"  # README's `git clone .../comfyui-hunyuancustom`
    for folder in (project, repository, repository + "-main"):
        assert categories[folder.replace(".", "_")] == "HunyuanCustom"
    assert set(categories.values()) == {__import__("_workflow_builder").CATEGORY}


@pytest.mark.parametrize("name", NAMES)
def test_template_models_feed_the_missing_models_dialog(name, models_dir):
    # The frontends (1.27 and 1.58) read a workflow's top-level `models` when it opens and offer the
    # download of each one whose `name` is not among the files of `directory`.
    graph = load(name)
    loaders = nodes_of(graph, "HunyuanCustomModelLoader")
    models = graph.get("models", [])
    assert bool(models) == bool(loaders)
    for model in models:
        assert model["url"].startswith("https://huggingface.co/") and model["url"].endswith("/" + model["name"].split("/")[-1])
        assert model["directory"] in ("diffusion_models", "vae", "audio_encoders")
        # Installed as the Note says, the file is there (the tiny model set has the same layout): no dialog.
        assert (models_dir / model["directory"] / model["name"]).is_file(), model
        # Each names a file of one of the loader's picks (a folder pick by a file inside it).
        assert any(model["name"].startswith(v) for n in loaders for v in n["widgets_values"] if isinstance(v, str) and v)
    directories = {m["directory"] for m in models}
    assert {"diffusion_models", "vae"} <= directories or not loaders
    if name == SINGING_AVATAR:
        assert "audio_encoders" in directories


@pytest.mark.parametrize("name", NAMES)
def test_template_card_has_a_thumbnail(name):
    # ComfyUI's template browser shows workflows/<name>.jpg on the card (tools/make_template_thumbnails.py).
    with Image.open(WORKFLOWS / f"{name}.jpg") as thumb:
        assert thumb.format == "JPEG"
        assert thumb.size == (640, 400)


@pytest.mark.parametrize("name", NAMES)
def test_workflow_is_valid_for_frontend_and_server(name, comfy_dirs):
    graph = load(name)
    assert graph["version"] == 0.4
    assert wf.validate_ui_workflow(graph) == []


@pytest.mark.parametrize("name", NAMES)
def test_api_twin_is_the_converted_ui_graph(name):
    assert load(name, api=True) == wf.ui_to_api(load(name))


@pytest.mark.parametrize("name", NAMES)
def test_note_says_where_the_files_and_the_key_go(name):
    graph = load(name)
    notes = [n["widgets_values"][0] for n in nodes_of(graph, "Note")]
    assert notes, "every example workflow carries a Note"
    text = "\n".join(notes)
    for loader in nodes_of(graph, "HunyuanCustomModelLoader"):
        transformer, vae, text_encoder, text_encoder_2 = loader["widgets_values"][:4]
        assert f"diffusion_models/{transformer}" in text
        assert f"vae/{vae}" in text
        assert f"text_encoders/{text_encoder}" in text and f"text_encoders/{text_encoder_2}" in text
        audio_encoder = widget_dict(loader, wf.all_object_info())["audio_encoder"]
        assert audio_encoder == "none" or f"audio_encoders/{audio_encoder}" in text
    if nodes_of(graph, REMOTE):
        assert "WAVESPEED_API_KEY" in text
    for loader in [n for n in graph["nodes"] if n["type"] in MEDIA_LOADERS]:
        assert loader["widgets_values"][0] in text  # the example's name, with "upload" nearby
    assert "upload" in text.lower()


@pytest.mark.parametrize("name", NAMES)
def test_nodes_do_not_overlap(name):
    # Our nodes with the room a problem shown on them takes (tools/browser_check.mjs shows one on each).
    room = __import__("_workflow_builder").PROBLEM_ROOM
    boxes = [(n["id"], n["pos"][0], n["pos"][1] - TITLE_BAR, n["pos"][0] + n["size"][0],
              n["pos"][1] + n["size"][1] + (room if n["type"].startswith("HunyuanCustom") else 0))
             for n in load(name)["nodes"]]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            apart = a[3] <= b[1] or b[3] <= a[1] or a[4] <= b[2] or b[4] <= a[2]
            assert apart, f"nodes {a[0]} and {b[0]} overlap"
    for group in load(name).get("groups") or []:  # a node is wholly inside a group or wholly outside
        gx, gy, gw, gh = group["bounding"]
        for node_id, left, top, right, bottom in boxes:
            inside = gx <= left and gy <= top and right <= gx + gw and bottom <= gy + gh
            outside = right <= gx or gx + gw <= left or bottom <= gy or gy + gh <= top
            assert inside or outside, f"node {node_id} straddles the border of group {group['title']!r}"


@pytest.mark.parametrize("name", NAMES)
def test_seeds_are_random_per_run_and_prompts_use_upstreams_negative(name):
    graph, info = load(name), wf.all_object_info()
    mode = "editing" if nodes_of(graph, EDIT) else None
    for node in nodes_of(graph, LOCAL) + nodes_of(graph, REMOTE):
        values = widget_dict(node, info)
        assert (values["seed"], values["seed/control"]) == (-1, "fixed")
        assert (values["guidance_scale"], values["flow_shift"]) == (7.5, schema.FIELDS["flow_shift"].default_for(mode))
    for node in nodes_of(graph, PROMPT):
        assert widget_dict(node, info)["negative_prompt"] == schema.DEFAULT_NEGATIVE_PROMPT


@pytest.mark.parametrize("name", [LOCAL_720P, TWO_SUBJECTS])
def test_local_720p_uses_upstreams_defaults(name):
    (sampler,) = nodes_of(load(name), LOCAL)
    values = widget_dict(sampler, wf.all_object_info())
    assert {k: values[k] for k in ("size", "num_frames", "steps", "cache")} == {
        "size": "1280*720", "num_frames": 129, "steps": 30, "cache": "deepcache"}
    (save,) = nodes_of(load(name), "HunyuanCustomSaveVideo")
    assert [entry["name"] for entry in save["inputs"] if entry["link"] is not None] == ["frames", "fps"]


def test_singing_avatar_uses_upstreams_audio_settings_and_saves_the_samplers_audio():
    graph, info = load(SINGING_AVATAR), wf.all_object_info()
    (sampler,) = nodes_of(graph, LOCAL)
    values = widget_dict(sampler, info)
    assert {k: values[k] for k in ("num_frames", "steps", "flow_shift", "guidance_scale", "cache")} == {
        "num_frames": 0, "steps": 30, "flow_shift": 13.0, "guidance_scale": 7.5, "cache": "deepcache"}
    (note,) = nodes_of(graph, "Note")
    assert "num_frames 0 makes the video as long as the track" in note["widgets_values"][0]  # the whole song
    (audio,) = nodes_of(graph, "HunyuanCustomAudio")
    assert widget_dict(audio, info)["audio_strength"] == 0.8
    (loader,) = nodes_of(graph, "HunyuanCustomModelLoader")
    loader_values = widget_dict(loader, info)
    assert loader_values["transformer"].startswith("hunyuancustom_audio_720P/")
    assert loader_values["audio_encoder"] == "whisper-tiny/"
    api = load(SINGING_AVATAR, api=True)
    (save_id,) = [i for i, n in api.items() if n["class_type"] == "HunyuanCustomSaveVideo"]
    (sampler_id,) = [i for i, n in api.items() if n["class_type"] == LOCAL]
    (audio_id,) = [i for i, n in api.items() if n["class_type"] == "HunyuanCustomAudio"]
    assert api[save_id]["inputs"]["audio"] == [sampler_id, 3]  # the sampler's audio output (last)
    assert api[sampler_id]["inputs"]["prompt"] == [audio_id, 0]
    song = api[api[audio_id]["inputs"]["audio"][0]]
    assert song["class_type"] == "HunyuanCustomLoadAudio" and song["inputs"]["audio"].startswith("hunyuan_custom_examples/")


def test_replace_subject_wires_source_mask_and_sound_with_upstreams_editing_settings():
    graph, api, info = load(REPLACE_SUBJECT), load(REPLACE_SUBJECT, api=True), \
        wf.all_object_info()
    (sampler,) = nodes_of(graph, LOCAL)
    values = widget_dict(sampler, info)
    assert (values["steps"], values["flow_shift"], values["num_frames"]) == (
        schema.FIELDS["steps"].default_for("editing"), schema.FIELDS["flow_shift"].default_for("editing"), 129)
    (loader,) = nodes_of(graph, "HunyuanCustomModelLoader")
    assert loader["widgets_values"][0] == "hunyuancustom_editing_720P/mp_rank_00_model_states.pt"
    (edit_id,) = [i for i, n in api.items() if n["class_type"] == EDIT]
    edit = api[edit_id]["inputs"]
    source, mask = api[edit["video"][0]], api[edit["mask"][0]]
    assert source["class_type"] == mask["class_type"] == "HunyuanCustomLoadVideo"
    assert edit["video"][1] == edit["mask"][1] == 0 and edit["audio"] == [edit["video"][0], 1]  # the source's sound
    assert (source["inputs"]["video"], mask["inputs"]["video"]) == ("hunyuan_custom_examples/park_walk.mp4",
                                                                    "hunyuan_custom_examples/park_walk_mask.mp4")
    assert (edit["expand"], edit["box"]) == (schema.FIELDS["expand"].default, False)
    (save,) = [n for n in api.values() if n["class_type"] == "HunyuanCustomSaveVideo"]
    (sampler_id,) = [i for i, n in api.items() if n["class_type"] == LOCAL]
    assert api[sampler_id]["inputs"]["prompt"] == [edit_id, 0] and save["inputs"]["audio"] == [sampler_id, 3]


def test_hybrid_feeds_one_prompt_to_a_small_local_preview_and_the_remote_720p_final():
    api = load(HYBRID, api=True)
    (prompt_id,) = [i for i, n in api.items() if n["class_type"] == PROMPT]
    (local,) = [n for n in api.values() if n["class_type"] == LOCAL]
    (remote,) = [n for n in api.values() if n["class_type"] == REMOTE]
    assert local["inputs"]["prompt"] == remote["inputs"]["prompt"] == [prompt_id, 0]
    assert remote["inputs"]["size"] == "1280*720"
    w, h = schema.parse_size(local["inputs"]["size"])
    assert w * h <= 1280 * 720 / 4 and local["inputs"]["num_frames"] < 129 and local["inputs"]["steps"] < 30
    core = {n["class_type"] for n in api.values()}
    assert {"CreateVideo", "SaveVideo"} <= core


def test_multi_subject_has_two_references():
    api = load(TWO_SUBJECTS, api=True)
    (prompt,) = [n for n in api.values() if n["class_type"] == PROMPT]
    sources = [prompt["inputs"][k][0] for k in ("image", "image_2")]
    assert len(set(sources)) == 2
    assert [api[s]["inputs"]["image"] for s in sources] == ["hunyuan_custom_examples/man.png",
                                                            "hunyuan_custom_examples/dog.png"]


@pytest.mark.parametrize("name", NAMES)
def test_templates_name_the_packs_example_media(name, comfy_dirs):
    """No placeholder that no one has: every picture, song and video a template names is one its
    node lists (frontend 1.58 marks a media combo whose value is not among its options as missing)
    and one it can load, with nothing in the input folder and nothing written there."""
    from hunyuan_custom.nodes import NODE_CLASS_MAPPINGS, example_media

    for node in [n for n in load(name)["nodes"] if n["type"] in MEDIA_LOADERS]:
        kind = MEDIA_LOADERS[node["type"]]
        cls, value = NODE_CLASS_MAPPINGS[node["type"]], node["widgets_values"][0]
        assert value in cls.INPUT_TYPES()["required"][kind][0] and value in example_media.names(kind)
        assert cls.VALIDATE_INPUTS(**{kind: value}) is True
        outputs = getattr(cls(), cls.FUNCTION)(value, **({"frame_load_cap": 9} if kind == "video" else {}))
        if kind == "image":  # a cut-out: transparent around the subject
            assert outputs[0].shape[0] == 1 and float(outputs[1].max()) == 1.0
        else:
            assert outputs[0] is not None
    assert list(comfy_dirs[0].iterdir()) == []  # nothing was written into the input folder


@pytest.mark.parametrize("name", NAMES)
def test_api_twin_runs_with_tiny_models_and_the_fake_server(name, comfy_dirs, fake_wavespeed):
    input_dir, output_dir = comfy_dirs
    api = load(name, api=True)
    results = wf.run_api_graph(for_tiny_models(api), input_dir=input_dir, extra_pnginfo={"workflow": load(name)})

    remote_ids = [i for i, n in api.items() if n["class_type"] == REMOTE]
    submits = fake_wavespeed.submits()
    assert len(submits) == len(remote_ids)
    for node_id, submit in zip(remote_ids, submits):
        assert submit.path.endswith("hunyuan-custom-ref2v-720p")
        assert submit.json["size"] == api[node_id]["inputs"]["size"] == "1280*720"
        assert results[node_id].outputs[0].shape == (5, 32, 48, 3)

    for node_id, node in api.items():
        if node["class_type"] == LOCAL:
            frames, fps, seed, _audio, frames_8bit = results[node_id].outputs
            if frames.shape[0] == 0:  # the template takes frames_8bit only: no float32 video was made
                assert frames_8bit.dtype == torch.uint8
                frames = frames_8bit
            assert frames.shape == (9, 48, 64, 3) and fps == 25.0 and 0 <= seed <= schema.SEED_MAX
        if node["class_type"] == "HunyuanCustomSaveVideo":
            path = Path(results[node_id].outputs[0])
            assert path.is_file() and output_dir in path.parents
            source = api[node["inputs"]["frames"][0]]["class_type"]
            info = video_io.video_info(path)
            assert info["frames"] == (9 if source == LOCAL else 5) and info["fps"] == 25.0
            assert KEY not in path.read_bytes().decode("latin-1")
            if "audio" in node["inputs"]:  # the sampler's track, cut to the 0.36 s video
                track = load_audio_file(path)
                assert abs(track.seconds - 9 / 25) < 0.05 and np.abs(track.samples).max() > 0.1
            if "audio" in node["inputs"]:  # the edited source's sound, cut to the video
                audio = results[node["inputs"]["audio"][0]].outputs[node["inputs"]["audio"][1]]
                assert audio["waveform"].shape[-1] == round(9 / 25 * audio["sample_rate"])
        if node["class_type"] == "SaveVideo":
            assert results[node_id].ui["videos"][0]["frames"] == 5
        if node["class_type"] == "PreviewImage":
            assert node_id in results
    saved = sorted(p.relative_to(output_dir).as_posix() for p in output_dir.rglob("*.mp4"))
    expected = [n["inputs"]["filename_prefix"] for n in api.values() if n["class_type"] == "HunyuanCustomSaveVideo"]
    assert [s.rsplit("_", 2)[0] for s in saved] == sorted(expected)


def test_model_names_are_really_checked(comfy_dirs, tmp_path, monkeypatch):
    """The loader's combos list what is on disk: the same workflow fails validation when the
    model folder lacks the files its Note names (so the passing test above means something)."""
    (tmp_path / "empty_models").mkdir()
    monkeypatch.setenv("HYC_MODELS_DIR", str(tmp_path / "empty_models"))
    problems = wf.validate_ui_workflow(load(LOCAL_720P))
    assert any("hunyuancustom_720P/mp_rank_00_model_states.pt" in p for p in problems), problems


def test_hybrid_with_the_remote_group_muted_runs_only_the_local_preview(comfy_dirs, fake_wavespeed):
    """What the hybrid's Note suggests for iterating: mute the WaveSpeed group's nodes."""
    input_dir, output_dir = comfy_dirs
    graph = load(HYBRID)
    remote_group = next(g for g in graph["groups"] if "WaveSpeed" in g["title"])
    x, y, w, h = remote_group["bounding"]
    muted = [n for n in graph["nodes"] if x <= n["pos"][0] < x + w and y <= n["pos"][1] < y + h]
    assert {n["type"] for n in muted} == {REMOTE, "CreateVideo", "SaveVideo"}
    for node in muted:
        node["mode"] = wf.MODE_NEVER
    api = wf.ui_to_api(graph)
    assert {n["class_type"] for n in api.values()} & {REMOTE, "CreateVideo", "SaveVideo"} == set()
    wf.run_api_graph(for_tiny_models(api), input_dir=input_dir)
    assert fake_wavespeed.submits() == []
    assert [p.name for p in output_dir.rglob("*.mp4")] == ["preview_00001_.mp4"]


@pytest.mark.parametrize("form", ["ui", "api"])
@pytest.mark.parametrize("old_value, cache", [(True, "deepcache"), (False, "off")])
def test_a_workflow_saved_with_the_old_deep_cache_widget_loads_and_runs(old_value, cache, form, comfy_dirs,
                                                                      monkeypatch):
    """Saved before the cache widgets existed: the sampler's widgets_values end with deep_cache's
    true/false. ComfyUI fills widgets by position, so that boolean arrives as `cache`; it must run as
    upstream's deepcache (true) or off (false). An API prompt of that time names it `deep_cache`,
    which ComfyUI does not pass to the node (not declared): the sampler reads it from the prompt."""
    from hunyuan_custom.pipelines.generate import LocalGenerator

    input_dir, _ = comfy_dirs
    graph = load(LOCAL_720P)
    info = wf.all_object_info()
    (sampler,) = nodes_of(graph, LOCAL)
    names = [slot.name for slot in wf.widget_slots(info[LOCAL])]
    sampler["widgets_values"] = sampler["widgets_values"][:names.index("cache")] + [old_value]
    api = wf.ui_to_api(graph, info)
    (node,) = [n for n in api.values() if n["class_type"] == LOCAL]
    assert node["inputs"]["cache"] is old_value and "cache_threshold" not in node["inputs"]
    assert "compile" not in node["inputs"]
    if form == "api":
        node["inputs"]["deep_cache"] = node["inputs"].pop("cache")

    used = []
    original = LocalGenerator.generate

    def spy(self, job, **kwargs):
        used.append(job.cache)
        return original(self, job, **kwargs)

    monkeypatch.setattr(LocalGenerator, "generate", spy)
    results = wf.run_api_graph(for_tiny_models(api), input_dir=input_dir, ignore_unknown_inputs=True)
    assert [c.name for c in used] == [cache] and used[0].threshold is None
    assert results[[i for i, n in api.items() if n["class_type"] == LOCAL][0]].outputs[0].shape == (9, 48, 64, 3)


@pytest.mark.parametrize("name", sorted(__import__("_workflow_builder").BUILDERS))
def test_committed_workflow_is_what_the_builder_makes(name):
    """The JSON files are generated by tests/_workflow_builder.py: keep the two in step."""
    import _workflow_builder as builder

    info = wf.all_object_info()
    committed = json.loads((builder.WORKFLOWS / f"{name}.json").read_text(encoding="utf-8"))
    assert builder.BUILDERS[name](info) == committed
