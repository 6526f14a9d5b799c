"""The workflow tools in tests/_workflows.py, on small hand-made graphs (good and bad)."""

from __future__ import annotations

import copy

import pytest
import torch
from PIL import Image

import _workflows as wf

CORE = wf.load_object_info()


def _node(node_id, kind, widgets=None, inputs=(), outputs=(), mode=0, **extra):
    node = {"id": node_id, "type": kind, "pos": [0, 0], "size": [300, 100], "flags": {}, "order": node_id,
            "mode": mode, "inputs": list(inputs), "outputs": list(outputs), "properties": {"Node name for S&R": kind}}
    if widgets is not None:
        node["widgets_values"] = list(widgets)
    node.update(extra)
    return node


def _good_graph() -> dict:
    """LoadImage -> Reroute -> our save (fps from a PrimitiveNode), LoadImage -> core CreateVideo ->
    SaveVideo, a Note, a muted PreviewImage and a bypassed ImageInvert."""
    nodes = [
        _node(1, "LoadImage", ["ref.png", "image"], outputs=[
            {"name": "IMAGE", "type": "IMAGE", "links": [1, 4, 6, 7], "slot_index": 0},
            {"name": "MASK", "type": "MASK", "links": [], "slot_index": 1}]),
        _node(2, "Reroute", inputs=[{"name": "", "type": "*", "link": 1}],
              outputs=[{"name": "", "type": "IMAGE", "links": [2]}]),
        _node(3, "PrimitiveNode", [12.5, "fixed"],
              outputs=[{"name": "FLOAT", "type": "FLOAT", "links": [3], "widget": {"name": "fps"}}]),
        _node(4, "HunyuanCustomSaveVideo", [25.0, "HunyuanCustom/test", 19], inputs=[
            {"name": "frames", "type": "IMAGE", "link": 2},
            {"name": "audio", "shape": 7, "type": "AUDIO", "link": None},
            {"name": "fps", "type": "FLOAT", "widget": {"name": "fps"}, "link": 3}],
            outputs=[{"name": "path", "type": "STRING", "links": []}]),
        _node(5, "Note", ["Remember: WaveSpeed fixes 129 frames."]),
        _node(6, "CreateVideo", [25.0], inputs=[{"name": "images", "type": "IMAGE", "link": 4},
                                                {"name": "audio", "shape": 7, "type": "AUDIO", "link": None}],
              outputs=[{"name": "VIDEO", "type": "VIDEO", "links": [5]}]),
        _node(7, "SaveVideo", ["video/core", "auto", "auto"], inputs=[{"name": "video", "type": "VIDEO", "link": 5}]),
        _node(8, "PreviewImage", inputs=[{"name": "images", "type": "IMAGE", "link": 6}], mode=wf.MODE_NEVER),
        _node(9, "ImageInvert", inputs=[{"name": "image", "type": "IMAGE", "link": 7}],
              outputs=[{"name": "IMAGE", "type": "IMAGE", "links": [8]}], mode=wf.MODE_BYPASS),
        _node(10, "PreviewImage", inputs=[{"name": "images", "type": "IMAGE", "link": 8}]),
    ]
    links = [[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 0, 4, 0, "IMAGE"], [3, 3, 0, 4, 2, "FLOAT"], [4, 1, 0, 6, 0, "IMAGE"],
             [5, 6, 0, 7, 0, "VIDEO"], [6, 1, 0, 8, 0, "IMAGE"], [7, 1, 0, 9, 0, "IMAGE"], [8, 9, 0, 10, 0, "IMAGE"]]
    return {"last_node_id": 10, "last_link_id": 8, "nodes": nodes, "links": links, "groups": [], "config": {},
            "extra": {}, "version": 0.4}


def _by_id(graph, node_id):
    return next(n for n in graph["nodes"] if n["id"] == node_id)


def test_a_good_graph_has_no_problems():
    assert wf.validate_ui_workflow(_good_graph()) == []


def test_inputs_must_be_in_the_order_and_form_the_frontend_writes():
    # Frontends 1.27 and 1.58 both save (and 1.58 rewrites on load) sockets first, then linked
    # widgets, optional inputs hollow ("shape": 7). Seen in a browser: our saver saved as
    # [frames, fps, audio] came back from 1.58 as [frames, audio, fps], the fps link moved to slot 2.
    graph = _good_graph()
    save = _by_id(graph, 4)
    save["inputs"] = [save["inputs"][0], save["inputs"][2], save["inputs"][1]]
    graph["links"][2][4] = 1
    problems = wf.validate_ui_workflow(graph)
    assert len(problems) == 1 and "['frames', 'fps', 'audio']" in problems[0], problems
    assert "['frames', 'audio', 'fps']" in problems[0] and "target slots" in problems[0]

    graph = _good_graph()
    del _by_id(graph, 6)["inputs"][1]["shape"]
    _by_id(graph, 7)["inputs"][0]["shape"] = 7
    problems = wf.validate_ui_workflow(graph)
    assert any("'audio' is optional" in p and "node 6" in p for p in problems), problems
    assert any("'video' is required" in p and "node 7" in p for p in problems), problems
    assert len(problems) == 2


def test_frontend_input_order_follows_the_declarations():
    ours = wf.our_object_info()
    save = ours["HunyuanCustomSaveVideo"]
    assert [n for n, _, _ in wf.frontend_inputs(save)] == ["frames", "audio"]
    assert [(n, req) for n, _, req in wf.frontend_inputs(save, {"fps", "crf"})] == [
        ("frames", True), ("audio", False), ("fps", True), ("crf", True)]
    assert [n for n, _, _ in wf.frontend_inputs(ours["HunyuanCustomPrompt"])] == ["image", "image_2", "image_3"]
    assert [n for n, _, _ in wf.frontend_inputs(CORE["CreateVideo"], {"fps"})] == ["images", "audio", "fps"]


def test_widget_slot_rules_follow_the_frontend():
    slots = [(s.name, s.kind) for s in wf.widget_slots(CORE["KSampler"])]
    assert slots[:3] == [("seed", "value"), ("seed", "control"), ("steps", "value")]
    assert [(s.name, s.kind) for s in wf.widget_slots(CORE["LoadImage"])] == [("image", "value"), ("image", "upload")]
    # No control_after_generate key + named seed: the frontend still adds the control (legacy rule).
    assert ("seed", "control") in [(s.name, s.kind) for s in wf.widget_slots(CORE["TrainLoraNode"])]
    # An explicit False turns it off.
    assert ("seed", "control") not in [(s.name, s.kind) for s in wf.widget_slots(CORE["MoonvalleyVideo2VideoNode"])]
    # Ours: fps is a widget (connectable), frames/audio are sockets.
    ours = wf.our_object_info()["HunyuanCustomSaveVideo"]
    assert [s.name for s in wf.widget_slots(ours)] == ["fps", "filename_prefix", "crf"]
    assert ours["output"] == ["STRING"] and ours["output_node"] is True
    # The upload button comes after the optional url widget (checked in frontend 1.27 in a browser:
    # a fresh node saves [image, url, "image"]).
    load = wf.our_object_info()["HunyuanCustomLoadImage"]
    assert [(s.name, s.kind) for s in wf.widget_slots(load)] == [
        ("image", "value"), ("url", "value"), ("image", "upload")]


@pytest.mark.parametrize("mutate, expected", [
    (lambda g: _by_id(g, 4).__setitem__("widgets_values", [25.0, "x"]), "widgets_values has 2 values"),
    (lambda g: _by_id(g, 4)["widgets_values"].__setitem__(2, 60), "crf = 60 is above its maximum 51"),
    (lambda g: _by_id(g, 4)["widgets_values"].__setitem__(2, 19.5), "crf = 19.5 is not a whole number"),
    (lambda g: _by_id(g, 4)["widgets_values"].__setitem__(1, 7), "filename_prefix = 7 is not text"),
    (lambda g: _by_id(g, 7)["widgets_values"].__setitem__(1, "avi"), "format = 'avi' is not one of"),
    (lambda g: _by_id(g, 3)["widgets_values"].__setitem__(0, 500.0), "fps = 500.0 is above its maximum"),
    (lambda g: _by_id(g, 3)["widgets_values"].__setitem__(1, "sometimes"), "control value 'sometimes'"),
    (lambda g: _by_id(g, 1)["widgets_values"].pop(), "widgets_values has 1 values"),
    (lambda g: _by_id(g, 5).__setitem__("type", "NoSuchNode"), "unknown node type"),
    (lambda g: _by_id(g, 4)["inputs"][0].__setitem__("link", None), "required input 'frames' (IMAGE,HYC_FRAMES) is not connected"),
    (lambda g: g.__setitem__("last_link_id", 3), "last_link_id 3 is below"),
])
def test_bad_graphs_are_rejected_with_a_clear_reason(mutate, expected):
    graph = _good_graph()
    mutate(graph)
    problems = wf.validate_ui_workflow(graph)
    assert any(expected in p for p in problems), problems


def test_mismatched_link_type_is_rejected():
    graph = _good_graph()
    # Feed the MASK output into our frames input instead of the IMAGE.
    _by_id(graph, 1)["outputs"][0]["links"].remove(1)
    _by_id(graph, 1)["outputs"][1]["links"].append(1)
    graph["links"][0] = [1, 1, 1, 2, 0, "MASK"]
    _by_id(graph, 2)["outputs"][0]["type"] = "MASK"
    graph["links"][1] = [2, 2, 0, 4, 0, "MASK"]
    problems = wf.validate_ui_workflow(graph)
    assert any("cannot feed input 'frames'" in p for p in problems), problems


def test_ksampler_control_values():
    info = {"KSampler": CORE["KSampler"]}
    node = _node(1, "KSampler", [0, "randomize", 20, 8.0, "euler", "normal", 1.0])
    assert wf._check_widgets(node, info["KSampler"]) == []
    node["widgets_values"][1] = "sometimes"
    assert "control after seed" in wf._check_widgets(node, info["KSampler"])[0]
    node["widgets_values"] = [0, 20, 8.0, "euler", "normal", 1.0]  # control slot left out
    assert "widgets_values has 6 values" in wf._check_widgets(node, info["KSampler"])[0]


def test_ui_to_api_resolves_reroutes_primitives_mutes_and_bypasses():
    api = wf.ui_to_api(_good_graph())
    assert set(api) == {"1", "4", "6", "7", "10"}  # Reroute/Primitive/Note dropped, muted and bypassed gone
    assert api["1"] == {"class_type": "LoadImage", "inputs": {"image": "ref.png"}, "_meta": {"title": "Load Image"}}
    assert api["4"]["_meta"] == {"title": "HunyuanCustom Save Video"}
    assert api["4"]["inputs"] == {"frames": ["1", 0], "fps": 12.5, "filename_prefix": "HunyuanCustom/test", "crf": 19}
    assert api["6"]["inputs"] == {"images": ["1", 0], "fps": 25.0}
    assert api["7"]["inputs"] == {"video": ["6", 0], "filename_prefix": "video/core", "format": "auto", "codec": "auto"}
    assert api["10"]["inputs"] == {"images": ["1", 0]}  # through the bypassed ImageInvert


def test_ui_to_api_drops_links_from_muted_nodes():
    graph = _good_graph()
    _by_id(graph, 1)["mode"] = wf.MODE_NEVER
    api = wf.ui_to_api(graph)
    assert "1" not in api and "frames" not in api["4"]["inputs"]


@pytest.fixture
def dirs(tmp_path, monkeypatch):
    input_dir, output_dir = tmp_path / "input", tmp_path / "output"
    input_dir.mkdir()
    Image.new("RGB", (33, 21), (200, 30, 30)).save(input_dir / "ref.png")
    monkeypatch.setenv("HYC_OUTPUT_DIR", str(output_dir))
    monkeypatch.setenv("WAVESPEED_CONFIG_FILE", str(tmp_path / "none.json"))
    monkeypatch.delenv("WAVESPEED_API_KEY", raising=False)
    return input_dir, output_dir


def test_run_api_graph_runs_our_save_node_and_emulated_core_nodes(dirs):
    input_dir, output_dir = dirs
    graph = _good_graph()
    results = wf.run_api_graph(wf.ui_to_api(graph), input_dir=input_dir, extra_pnginfo={"workflow": graph})
    path = results["4"].outputs[0]
    assert path.startswith(str(output_dir)) and path.endswith("test_00001_.mp4")
    assert results["4"].ui["images"][0]["subfolder"] == "HunyuanCustom"
    assert results["7"].ui["videos"][0] == {"filename_prefix": "video/core", "frames": 1, "fps": 25.0, "audio": False}
    assert results["1"].outputs[0].shape == (1, 21, 33, 3)
    assert results["10"].ui == {"images": [{"frames": 1}]}


@pytest.mark.parametrize("mutate, expected", [
    (lambda api: api["4"]["inputs"].__setitem__("filename_prefix", "../outside"), "VALIDATE_INPUTS said"),
    (lambda api: api["4"]["inputs"].__setitem__("frames", ["1", 1]), "is linked to output 'MASK'"),
    (lambda api: api["4"]["inputs"].pop("frames"), "required input 'frames' is missing"),
    (lambda api: api["4"]["inputs"].__setitem__("crf", 99), "crf = 99 is above its maximum"),  # ComfyUI checks crf
    (lambda api: api["4"]["inputs"].__setitem__("frames", "not a link"), "needs a link"),
    (lambda api: api["4"]["inputs"].__setitem__("colour", "red"), "unknown input 'colour'"),
    (lambda api: api["6"].__setitem__("class_type", "KSampler"), "neither ours nor an emulated core node"),
])
def test_run_api_graph_rejects_what_comfyui_would(dirs, mutate, expected):
    input_dir, _ = dirs
    api = wf.ui_to_api(_good_graph())
    mutate(api)
    with pytest.raises(wf.WorkflowRunError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        wf.run_api_graph(api, input_dir=input_dir)


def test_run_api_graph_checks_runtime_types_of_outputs(dirs):
    input_dir, _ = dirs

    class BrokenLoader:
        FUNCTION = "go"
        RETURN_TYPES = ("IMAGE",)

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {}}

        def go(self):
            return (torch.zeros(4, 4),)  # not [B,H,W,3]

    classes = {**wf.our_node_classes(), "BrokenLoader": BrokenLoader}
    api = {"1": {"class_type": "BrokenLoader", "inputs": {}},
           "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}
    with pytest.raises(wf.WorkflowRunError, match=r"output 0: IMAGE must be a float tensor"):
        wf.run_api_graph(api, classes, input_dir=input_dir)


def test_only_what_output_nodes_need_runs(dirs):
    input_dir, _ = dirs
    api = {"1": {"class_type": "LoadImage", "inputs": {"image": "missing.png"}},
           "2": {"class_type": "LoadImage", "inputs": {"image": "ref.png"}},
           "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}}
    results = wf.run_api_graph(api, input_dir=input_dir)
    assert set(results) == {"2", "3"}  # node 1 (a missing file) is never loaded
    api["3"]["inputs"]["images"] = ["1", 0]
    with pytest.raises(wf.WorkflowRunError, match="missing.png"):
        wf.run_api_graph(api, input_dir=input_dir)


def test_object_info_copy_is_the_shared_one():
    assert "KSampler" in CORE and "SaveVideo" in CORE and "CreateVideo" in CORE
    merged = wf.all_object_info()
    assert "HunyuanCustomSaveVideo" in merged and "KSampler" in merged
    assert copy.deepcopy(merged) == merged
