"""Smoke run of this node pack inside a REAL ComfyUI server (CPU), over HTTP only.

The unit tests run without ComfyUI; this script checks what only a real server shows: the pack
imports, /object_info lists our nodes, the web extension and our route are served, /prompt
validation accepts/refuses what it should, graphs run end to end (tiny models, CPU), and the
WaveSpeed node completes and stops on Cancel (/interrupt) against the fake WaveSpeed server.

It contains no ComfyUI code: it starts ComfyUI's main.py as a subprocess and talks HTTP to it.
It builds the tiny model set (tests/_tiny_model_set.py) in a temporary folder and points ComfyUI
at it with an extra_model_paths.yaml. ComfyUI runs with its own base folder inside that work folder
(--base-directory: custom_nodes/, user/ settings, input/, output/, temp/), whose
custom_nodes/ComfyUI-HunyuanCustom links to THIS checkout: the ComfyUI checkout is not touched, and
whatever is in its own custom_nodes/ is not loaded, so several checkouts can be tested side by side.

Setup (once):
    git clone <ComfyUI> /path/to/ComfyUI    # + its requirements, in some Python environment

Run (from this repository's root; needs torch, pillow, requests, imageio-ffmpeg here):
    python tools/comfyui_smoke.py --comfyui /path/to/ComfyUI --python /path/to/comfy-env/bin/python

--front-end-root picks the frontend: a folder holding a frontend build's index.html, e.g.
`pip install --no-deps --target /opt/fe-1.58.1 comfyui-frontend-package==1.58.1` then
--front-end-root /opt/fe-1.58.1/comfyui_frontend_package/static. Without it ComfyUI serves the
comfyui-frontend-package installed in its environment (its requirements.txt pins one).

Exit status 0 when every check passed; each check prints PASS/FAIL with details.

With --serve it runs no checks: it starts the same server (tiny models, fake WaveSpeed) and keeps
it up until Ctrl+C, for a browser (tools/browser_check.mjs). --no-key starts it without a
WaveSpeed key (the WaveSpeed node then shows "key: missing").
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the test helpers: tiny model set, fake WaveSpeed

PACK_FOLDER = "ComfyUI-HunyuanCustom"  # its name under custom_nodes/ (also in /extensions/<name>/ URLs)
OUR_NODES = ("HunyuanCustomLoadImage", "HunyuanCustomPrompt", "HunyuanCustomModelLoader", "HunyuanCustomSampler",
             "HunyuanCustomWaveSpeed", "HunyuanCustomSaveVideo", "HunyuanCustomAudio", "HunyuanCustomEdit",
             "HunyuanCustomLoadAudio", "HunyuanCustomLoadVideo", "HunyuanCustomLoRA")
MEDIA_LOADERS = {"HunyuanCustomLoadImage": "image", "HunyuanCustomLoadAudio": "audio",
                 "HunyuanCustomLoadVideo": "video"}  # node -> its file input
WAVESPEED_KEY = "ws-smoke-key-0123456789abcdef"
TINY_SIZE, TINY_FRAMES, TINY_STEPS = "64*48", 9, 2


class Smoke:
    def __init__(self, url: str):
        self.url = url.rstrip("/")
        self.failures: list[str] = []
        self.client_id = uuid.uuid4().hex

    # -- bookkeeping ------------------------------------------------------------------------
    def check(self, name: str, ok: bool, detail: Any = "") -> bool:
        print(f"{'PASS' if ok else 'FAIL'}  {name}" + (f"  [{detail}]" if detail not in ("", None) else ""),
              flush=True)
        if not ok:
            self.failures.append(name)
        return ok

    # -- HTTP -------------------------------------------------------------------------------
    def get(self, path: str, **kw: Any) -> requests.Response:
        return requests.get(self.url + path, timeout=30, **kw)

    def post_prompt(self, graph: dict) -> requests.Response:
        return requests.post(self.url + "/prompt", json={"prompt": graph, "client_id": self.client_id}, timeout=60)

    def queue(self, graph: dict) -> str:
        resp = self.post_prompt(graph)
        if resp.status_code != 200:
            raise RuntimeError(f"/prompt refused the graph: {resp.status_code} {resp.text[:2000]}")
        return resp.json()["prompt_id"]

    def wait(self, prompt_id: str, timeout_s: float = 600) -> dict:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            entry = self.get(f"/history/{prompt_id}").json().get(prompt_id)
            if entry and entry.get("status", {}).get("completed") is not None and (
                    entry["status"].get("status_str") in ("success", "error")):
                return entry
            time.sleep(0.1)
        raise TimeoutError(f"prompt {prompt_id} did not finish in {timeout_s} s")

    def upload_png(self, name: str, subfolder: str = "") -> str:
        from PIL import Image

        img = Image.new("RGBA", (40, 56), (0, 0, 0, 0))  # transparent background, a coloured subject
        img.paste((30, 120, 220, 255), (8, 10, 32, 46))
        buf = io.BytesIO()
        img.save(buf, "PNG")
        resp = requests.post(self.url + "/upload/image", files={"image": (name, buf.getvalue(), "image/png")},
                             data={"overwrite": "true", "subfolder": subfolder}, timeout=30)
        resp.raise_for_status()
        return resp.json()["name"]


# ------------------------------------------------------------------ graphs (API format)

def prompt_part(image: str) -> dict:
    return {
        "1": {"class_type": "HunyuanCustomLoadImage", "inputs": {"image": image}},
        "2": {"class_type": "HunyuanCustomPrompt", "inputs": {
            "prompt": "a blue box slides across a table", "negative_prompt": "", "subject": "box",
            "image": ["1", 0]}},
    }


def local_graph(image: str, models: dict, size: str = TINY_SIZE, save: str = "ours") -> dict:
    graph = prompt_part(image)
    graph["3"] = {"class_type": "HunyuanCustomModelLoader", "inputs": {
        **models, "dtype": "float32", "fp8_mode": "dequantize", "offload": "model", "attention": "default"}}
    graph["4"] = {"class_type": "HunyuanCustomSampler", "inputs": {
        "model": ["3", 0], "prompt": ["2", 0], "size": size, "guidance_scale": 7.5, "flow_shift": 13.0,
        "seed": 7, "num_frames": TINY_FRAMES, "steps": TINY_STEPS, "cache": "deepcache"}}
    add_savers(graph, "4", save, "smoke/local")
    return graph


def remote_graph(image: str, size: str = "832*480", save: str = "ours", seed: int = 5) -> dict:
    graph = prompt_part(image)
    graph["4"] = {"class_type": "HunyuanCustomWaveSpeed", "inputs": {
        "prompt": ["2", 0], "size": size, "guidance_scale": 7.5, "flow_shift": 13.0, "seed": seed,
        "enable_safety_checker": True}}
    add_savers(graph, "4", save, "smoke/remote")
    return graph


def add_savers(graph: dict, sampler: str, save: str, prefix: str) -> None:
    if save in ("ours", "both"):
        graph["5"] = {"class_type": "HunyuanCustomSaveVideo", "inputs": {
            "frames": [sampler, 0], "fps": [sampler, 1], "filename_prefix": prefix, "crf": 19}}
    if save in ("core", "both"):
        # Core CreateVideo takes fps as FLOAT: our fps output plugs straight in.
        graph["6"] = {"class_type": "CreateVideo", "inputs": {"images": [sampler, 0], "fps": [sampler, 1]}}
        graph["7"] = {"class_type": "SaveVideo", "inputs": {
            "video": ["6", 0], "filename_prefix": prefix + "_core", "format": "auto", "codec": "auto"}}


# ------------------------------------------------------------------ checks

def check_registration(s: Smoke, log_text: Callable[[], str]) -> None:
    # ComfyUI lists each custom node folder under "Import times for custom nodes:", marked
    # "(IMPORT FAILED)" when its import raised, and logs "Cannot import <path> module ...".
    ours = [line for line in log_text().splitlines() if PACK_FOLDER in line]
    s.check("pack imported without error", bool(ours) and not any(
        "IMPORT FAILED" in line or "Cannot import" in line for line in ours), ours)
    info = s.get("/object_info").json()
    missing = [n for n in OUR_NODES if n not in info]
    s.check(f"object_info lists our {len(OUR_NODES)} nodes", not missing, f"missing {missing}" if missing else "")
    for name in OUR_NODES:
        node = info.get(name)
        if not node:
            continue
        problems = []
        if not str(node.get("category", "")).startswith("HunyuanCustom"):
            problems.append(f"category {node.get('category')!r}")
        if not node.get("description"):
            problems.append("no description")
        for section in ("required", "optional"):
            for inp, spec in node["input"].get(section, {}).items():
                if not (len(spec) > 1 and isinstance(spec[1], dict) and spec[1].get("tooltip")):
                    problems.append(f"{inp}: no tooltip")
        if len(node["output"]) != len(node["output_name"]):
            problems.append("outputs/names differ")
        s.check(f"spec of {name}", not problems, "; ".join(problems))
    js = s.get(f"/extensions/{PACK_FOLDER}/hunyuan_custom.js")
    s.check("web extension served", js.status_code == 200 and "registerExtension" in js.text,
            f"{js.status_code} {js.headers.get('content-type')}")
    listed = s.get("/extensions").json()
    s.check("web extension listed in /extensions",
            f"/extensions/{PACK_FOLDER}/hunyuan_custom.js" in listed, [x for x in listed if "Hunyuan" in x])
    for path in ("/hunyuan_custom/wavespeed_key_status", "/api/hunyuan_custom/wavespeed_key_status"):
        r = s.get(path)
        s.check(f"GET {path}", r.status_code == 200 and isinstance(r.json().get("configured"), bool),
                f"{r.status_code} {r.text[:100]}")
    # The example media: listed by our Load nodes and previewed through /view, without a file in the
    # input folder.
    for node, kind, least, magic in (("HunyuanCustomLoadImage", "image", 2, lambda b: b[:8] == b"\x89PNG\r\n\x1a\n"),
                                     ("HunyuanCustomLoadAudio", "audio", 1, lambda b: b[:3] == b"ID3" or b[:2] == b"\xff\xfb"),
                                     ("HunyuanCustomLoadVideo", "video", 2, lambda b: b[4:8] == b"ftyp")):
        listed = info.get(node, {}).get("input", {}).get("required", {}).get(kind, [[]])[0]
        examples = [name for name in listed if name.startswith("hunyuan_custom_examples/")]
        s.check(f"{node} lists the pack's example {kind}s", len(examples) >= least, examples)
        for name in examples:
            folder, file = name.split("/", 1)
            for path in ("/view", "/api/view"):
                r = s.get(path, params={"filename": file, "subfolder": folder, "type": "input"})
                s.check(f"GET {path} previews {name}", r.status_code == 200 and magic(r.content),
                        f"{r.status_code} {r.headers.get('content-type')}")


def check_model_combos(s: Smoke) -> dict:
    req = s.get("/object_info/HunyuanCustomModelLoader").json()["HunyuanCustomModelLoader"]["input"]["required"]
    want = {"transformer": "hunyuancustom_720P/mp_rank_00_model_states.pt", "vae": "hyvae_v1_0801/",
            "text_encoder": "llava-llama-3-8b-v1_1/", "text_encoder_2": "openai_clip-vit-large-patch14/"}
    for key, name in want.items():
        s.check(f"loader combo {key} lists {name}", name in req[key][0], req[key][0])
    return want


def check_history_ok(s: Smoke, name: str, entry: dict) -> bool:
    status = entry.get("status", {})
    ok = status.get("status_str") == "success"
    detail = "" if ok else json.dumps([m for m in status.get("messages", []) if m[0] == "execution_error"])[:3000]
    return s.check(name, ok, detail)


def saved_files(entry: dict, node_id: str) -> list[dict]:
    ui = entry.get("outputs", {}).get(node_id, {})
    return list(ui.get("images", [])) + list(ui.get("videos", []))


def check_saved(s: Smoke, name: str, entry: dict, node_id: str, output_dir: Path) -> None:
    files = saved_files(entry, node_id)
    ok = bool(files)
    for f in files:
        path = output_dir / f.get("subfolder", "") / f["filename"]
        ok = ok and f.get("type") == "output" and path.is_file() and path.stat().st_size > 0
        ok = ok and s.get("/view", params={"filename": f["filename"], "subfolder": f.get("subfolder", ""),
                                           "type": "output"}).status_code == 200
    s.check(name, ok, json.dumps(entry.get("outputs", {}).get(node_id)))


def check_local(s: Smoke, image: str, models: dict, output_dir: Path) -> None:
    pid = s.queue(local_graph(image, models, save="both"))
    entry = s.wait(pid)
    if check_history_ok(s, "local graph (ours + core savers) ran", entry):
        check_saved(s, "our saver wrote an mp4 into output/ and answered ui", entry, "5", output_dir)
        check_saved(s, "core CreateVideo+SaveVideo from our frames/fps", entry, "7", output_dir)
        ui = entry["outputs"]["5"]
        s.check("our saver ui marks the file animated", ui.get("animated") == [True], ui.get("animated"))
        s.check("our saver answers result lines (ui.text) naming the file",
                any(ui["images"][0]["filename"] in line for line in ui.get("text", [])), ui.get("text"))
        lines = entry["outputs"].get("4", {}).get("text", [])
        s.check("the sampler answers result lines (ui.text) with the seed used", "seed 7" in lines, lines)
    r = s.post_prompt(local_graph(image, models, size="48*64"))
    s.check("custom size 48*64 accepted by the local sampler at /prompt", r.status_code == 200, r.text[:500])
    if r.status_code == 200:
        check_history_ok(s, "local graph at 48*64 ran", s.wait(r.json()["prompt_id"]))
    r = s.post_prompt(local_graph(image, models, size="50*64"))
    s.check("size 50*64 refused at /prompt, once, under 'size', with our message",
            node_errors(r, "4") == [("size", True)] and "multiples of 16" in r.text, r.text[:800])
    graph = local_graph(image, models)
    graph["3"]["inputs"]["dtype"] = "float64"
    r = s.post_prompt(graph)
    s.check("loader: dtype float64 refused at /prompt under 'dtype'", node_errors(r, "3") == [("dtype", False)],
            r.text[:800])
    graph = local_graph(image, dict(models, vae="no_such_vae/"))
    r = s.post_prompt(graph)
    details = error_details(r, "3")
    s.check("loader: a missing model file refused at /prompt, once, naming its input", r.status_code == 400
            and len(details) == 1 and details[0].startswith("vae: 'no_such_vae/'"), r.text[:800])
    r = s.post_prompt(local_graph(image, dict(models, transformer="a_vae_by_mistake.pt")))
    details = error_details(r, "3")
    s.check("loader: a VAE picked as the transformer refused at /prompt, once, from its header", r.status_code == 400
            and len(details) == 1 and details[0].startswith("transformer: ") and "looks like a VAE" in details[0],
            r.text[:800])
    r = s.post_prompt(local_graph("no_such_picture.png", models))
    details = error_details(r, "1")
    s.check("a missing reference picture refused at /prompt, once", r.status_code == 400 and len(details) == 1
            and details[0].startswith("image: file 'no_such_picture.png' not found"), r.text[:800])
    graph = local_graph(image, models)
    graph["2"]["inputs"]["prompt"] = ""
    r = s.post_prompt(graph)
    s.check("empty prompt refused at /prompt, once, under 'prompt'", node_errors(r, "2") == [("prompt", True)],
            r.text[:800])


SMOKE_LORA, WAN_LORA = "hyc_smoke_style.safetensors", "wan_by_mistake.safetensors"


def write_loras(folder: Path) -> None:
    """A musubi-format LoRA built on the tiny transformer's real keys, and a Wan LoRA (refused by name)."""
    import torch
    from _lora_files import make_lora, write_lora
    from _tiny_model_set import FIXTURES
    from safetensors.torch import load_file, save_file

    folder.mkdir(parents=True, exist_ok=True)
    sd = load_file(str(FIXTURES / "transformer_ref2v" / "weights.safetensors"))
    write_lora(make_lora(sd), folder / SMOKE_LORA, "musubi", int(sd["img_in.proj.weight"].shape[0]))
    save_file({"lora_unet_blocks_0_self_attn_q.lora_down.weight": torch.zeros(2, 8),
               "lora_unet_blocks_0_self_attn_q.lora_up.weight": torch.zeros(8, 2)}, str(folder / WAN_LORA))


def lora_graph(image: str, models: dict, lora: str = SMOKE_LORA) -> dict:
    """The local graph with two LoRA nodes chained between the loader and the sampler."""
    graph = local_graph(image, models)
    graph["8"] = {"class_type": "HunyuanCustomLoRA", "inputs": {"model": ["3", 0], "lora_name": lora, "strength": 0.8}}
    graph["9"] = {"class_type": "HunyuanCustomLoRA", "inputs": {"model": ["8", 0], "lora_name": SMOKE_LORA,
                                                                 "strength": -0.3}}
    graph["4"]["inputs"]["model"] = ["9", 0]
    return graph


def check_loras(s: Smoke, image: str, models: dict) -> None:
    info = s.get("/object_info/HunyuanCustomLoRA").json()["HunyuanCustomLoRA"]["input"]["required"]
    s.check(f"LoRA node lists {SMOKE_LORA} from models/loras", SMOKE_LORA in info["lora_name"][0], info["lora_name"][0])
    r = s.post_prompt(lora_graph(image, models))
    s.check("two chained LoRA nodes accepted at /prompt", r.status_code == 200, r.text[:500])
    if r.status_code == 200:
        check_history_ok(s, "local graph with two chained LoRAs ran", s.wait(r.json()["prompt_id"]))
    r = s.post_prompt(lora_graph(image, models, WAN_LORA))
    s.check("a Wan LoRA refused at /prompt, once, under 'lora_name', named as such",
            node_errors(r, "8") == [("lora_name", True)] and "Wan 2.1" in r.text, r.text[:800])
    graph = lora_graph(image, models)
    graph["8"]["inputs"]["lora_name"] = "../../secret.safetensors"
    r = s.post_prompt(graph)
    s.check("a LoRA name outside models/loras refused at /prompt", r.status_code == 400 and "lora_name" in r.text,
            r.text[:800])


def error_details(resp: requests.Response, node: str) -> list[str]:
    """The details of each error /prompt reported for a node (none unless it answered 400)."""
    if resp.status_code != 400:
        return []
    return [e.get("details", "") for e in resp.json().get("node_errors", {}).get(node, {}).get("errors", [])]


def node_errors(resp: requests.Response, node: str) -> list[tuple[str, bool]]:
    """(input name, came from our VALIDATE_INPUTS) for each error /prompt reported for a node."""
    if resp.status_code != 400:
        return []
    errors = resp.json().get("node_errors", {}).get(node, {}).get("errors", [])
    return [(e.get("extra_info", {}).get("input_name"), e.get("type") == "custom_validation_failed")
            for e in errors]


def loader_graph(node: str, value: str, url: str | None = None) -> dict:
    """One of our Load nodes feeding a core preview node (so /prompt has an output to validate)."""
    inputs: dict = {MEDIA_LOADERS[node]: value}
    if url is not None:
        inputs["url"] = url
    if node == "HunyuanCustomLoadVideo":
        inputs["frame_load_cap"] = TINY_FRAMES
    # core PreviewAny takes any type (core PreviewAudio needs torchaudio, which a CPU setup may lack)
    return {"1": {"class_type": node, "inputs": inputs},
            "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}


def check_path_guard(s: Smoke, work: Path) -> None:
    """The Load nodes read only files inside ComfyUI's input/output/temp folders (and the pack's
    examples): a folder named 'x [y]' (which an upload's subfolder field makes) must not let a name
    such as 'x [y]/../../secret.png [input]' climb out, and a refused name must get the very words a
    missing one gets, so /prompt tells nothing about files outside the folders."""
    s.upload_png("inside.png", subfolder="x [y]")
    (work / "secret.png").write_bytes((work / "input" / "x [y]" / "inside.png").read_bytes())
    assert (work / "input" / "x [y]").is_dir()
    for node, kind in MEDIA_LOADERS.items():
        answers = {}
        for label, name in (("trick", "x [y]/../../secret.png [input]"), ("missing", "x [y]/../../absent.png [input]"),
                            ("absolute", str(work / "secret.png")), ("backslashes", "x [y]\\..\\..\\secret.png")):
            r = s.post_prompt(loader_graph(node, name))
            details = error_details(r, "1")
            shown = repr(name)[1:-1]  # the message quotes the name with repr()
            answers[label] = details[0].replace(shown, "NAME") if len(details) == 1 else r.text[:600]
        same = len(set(answers.values())) == 1
        s.check(f"{node}: names climbing out of input/ refused at /prompt with the missing file's words",
                same and "not found" in answers["trick"] and str(work) not in answers["trick"], answers)
    r = s.post_prompt(loader_graph("HunyuanCustomLoadImage", "x [y]/inside.png [input]"))
    s.check("a picture in an input sub-folder named 'x [y]' still passes /prompt", r.status_code == 200, r.text[:600])
    for url in ("http://127.0.0.1:1/a.png", "http://127.1/a.png", "http://2130706433/a.png",
                "http://[::ffff:127.0.0.1]/a.png", "http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/a.png"):
        r = s.post_prompt(loader_graph("HunyuanCustomLoadImage", "x [y]/inside.png [input]", url=url))
        details = error_details(r, "1")
        s.check(f"reference URL {url} refused at /prompt, naming HYC_ALLOW_PRIVATE_URLS",
                len(details) == 1 and "HYC_ALLOW_PRIVATE_URLS" in details[0], r.text[:600])


def check_remote_validation(s: Smoke, image: str) -> None:
    r = s.post_prompt(remote_graph(image, size="960*544"))
    s.check("local-only size on WaveSpeed refused at /prompt with our message",
            r.status_code == 400 and "WaveSpeed accepts" in r.text, r.text[:600])


def check_remote(s: Smoke, image: str, fake: Any, output_dir: Path, comfy_pid: int) -> None:
    fake.faults.statuses = ["created", "processing", "completed"]
    pid = s.queue(remote_graph(image, save="both", seed=11))
    entry = s.wait(pid, 120)
    if check_history_ok(s, "WaveSpeed graph (fake server) ran", entry):
        check_saved(s, "WaveSpeed frames saved by our saver", entry, "5", output_dir)
        check_saved(s, "WaveSpeed frames saved by core SaveVideo", entry, "7", output_dir)
    key_status = s.get("/hunyuan_custom/wavespeed_key_status").json()
    s.check("key status says configured when WAVESPEED_API_KEY is set", key_status.get("configured") is True,
            key_status)

    # Cancel while the task never finishes, then while a poll hangs (a stalled connection).
    # A poll blocked on a silent server is only seen to be cancelled when its read times out
    # (the client's poll read timeout, 15 s): the client runs no background threads.
    for label, setup, limit_s in (
            ("task never finishes", lambda f: setattr(f.faults, "statuses", ["processing"]), 2.0),
            ("a poll hangs 30 s", lambda f: f.faults.poll_delays.extend([30.0] * 3), 17.0)):
        setup(fake)
        check_cancel(s, label, image, fake, comfy_pid, limit_s)
        fake.faults.statuses = ["created", "processing", "completed"]
        fake.faults.poll_delays.clear()


def _threads(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return -1


def check_cancel(s: Smoke, label: str, image: str, fake: Any, comfy_pid: int, limit_s: float) -> None:
    threads_before = _threads(comfy_pid)
    submits_before = len(fake.submits())
    pid = s.queue(remote_graph(image, seed=int(time.time()) % 100000))  # a new seed: never a cached result
    end = time.monotonic() + 60
    while len(fake.submits()) == submits_before and time.monotonic() < end:
        time.sleep(0.05)
    time.sleep(0.5)  # well into polling
    t0 = time.monotonic()
    requests.post(s.url + "/interrupt", json={}, timeout=10)
    entry = s.wait(pid, 60)
    took = time.monotonic() - t0
    msgs = [m[0] for m in entry["status"].get("messages", [])]
    s.check(f"Cancel ({label}): job interrupted", "execution_interrupted" in msgs, msgs)
    s.check(f"Cancel ({label}): stopped within {limit_s:g} s", took <= limit_s, f"{took:.2f} s")
    polls = len(fake.polls())
    time.sleep(1.5)
    s.check(f"Cancel ({label}): no polling after the stop", len(fake.polls()) == polls,
            f"{len(fake.polls()) - polls} more polls")
    threads_after = _threads(comfy_pid)
    s.check(f"Cancel ({label}): no thread left behind", threads_after <= threads_before,
            f"threads {threads_before} -> {threads_after}")


def check_failing_branch(s: Smoke, name: str, graph: dict) -> None:
    """With one branch broken (a VAE picked as the transformer), a template must be refused WHOLE:
    ComfyUI 0.3.64 ran the outputs that validated (a WaveSpeed final, billed; a reference preview)
    while frontend 1.27 only outlined the dropped nodes."""
    loaders = [k for k, n in graph.items() if n["class_type"] == "HunyuanCustomModelLoader"]
    if not loaders:
        return
    broken = json.loads(json.dumps(graph))
    broken[loaders[0]]["inputs"]["transformer"] = "a_vae_by_mistake.pt"
    r = s.post_prompt(broken)
    details = error_details(r, loaders[0])
    s.check(f"workflow {name} with a failing branch refused whole, the problem named on the loader",
            r.status_code == 400 and len(details) == 1 and details[0].startswith("transformer: "), r.text[:800])


def check_size_widgets(s: Smoke) -> None:
    info = s.get("/object_info").json()
    local = info["HunyuanCustomSampler"]["input"]["required"]["size"]
    remote = info["HunyuanCustomWaveSpeed"]["input"]["required"]["size"]
    s.check("local sampler's size is a text box (any W*H of 16s typed in)", local[0] == "STRING", local[0])
    s.check("WaveSpeed's size lists its four sizes", remote[0] == ["1280*720", "720*1280", "832*480", "480*832"],
            remote[0])


class _Events:
    """A minimal client of ComfyUI's /ws (JSON text frames only), to act at a given step: the smoke
    runs with requests alone. Server frames are unmasked; binary frames (previews) are skipped."""

    def __init__(self, url: str, client_id: str):
        import base64
        import socket
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=120)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /ws?clientId={client_id} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1)
        self.buffer = b""

    def _read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("websocket closed")
            self.buffer += chunk
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def next(self) -> dict | None:
        first, second = self._read(2)
        length = second & 0x7F
        if length == 126:
            length = int.from_bytes(self._read(2), "big")
        elif length == 127:
            length = int.from_bytes(self._read(8), "big")
        payload = self._read(length)
        return json.loads(payload) if first & 0x0F == 1 else None

    def wait_for(self, match: Callable[[dict], bool], timeout_s: float) -> dict | None:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            event = self.next()
            if event is not None and match(event):
                return event
        return None

    def close(self) -> None:
        self.sock.close()


def check_cancel_in_step(s: Smoke, image: str, models: dict) -> None:
    """Cancel inside a denoising step: at 1280*720 one step of the tiny transformer takes seconds on a
    CPU. Step 2's duration is measured from the /ws progress events; Cancel sent right after step 2
    must stop within half a step (between blocks of step 3), not after the step as a check between
    steps would."""
    events = _Events(s.url, s.client_id)
    try:
        graph = local_graph(image, models, size="1280*720")
        graph["4"]["inputs"].update(steps=3, cache="off", seed=int(time.time()) % 100000)
        pid = s.queue(graph)

        def step_done(n: int) -> bool:
            found = events.wait_for(lambda e: e.get("type") == "progress" and e["data"].get("node") == "4"
                                    and e["data"].get("value") == n and e["data"].get("max") == 3, 600)
            return found is not None

        ok = step_done(1)
        t1 = time.monotonic()
        ok = ok and step_done(2)
        step_s = time.monotonic() - t1
        if not s.check("Cancel inside a step: steps 1 and 2 of 3 done", ok):
            requests.post(s.url + "/interrupt", json={}, timeout=10)
            s.wait(pid, 600)
            return
        t0 = time.monotonic()
        requests.post(s.url + "/interrupt", json={}, timeout=10)
        entry = s.wait(pid, 600)
        took = time.monotonic() - t0
        msgs = [m[0] for m in entry["status"].get("messages", [])]
        s.check("Cancel inside a step: interrupted", "execution_interrupted" in msgs, msgs)
        s.check("Cancel inside a step: stopped within half a step", took <= max(step_s / 2, 1.0),
                f"stopped in {took:.1f} s, a step takes {step_s:.1f} s")
    finally:
        events.close()


def _streams(path: Path) -> str:
    """ffmpeg's stream lines for a file ("Stream #0:0...: Video: h264 ...", "...: Audio: aac ...")."""
    import imageio_ffmpeg

    run = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True,
                         text=True)
    return " | ".join(line.strip() for line in run.stderr.splitlines() if "Stream #" in line)


def check_workflows(s: Smoke, folder: Path, output_dir: Path) -> None:
    """Each API-format example workflow, shrunk to the tiny models (local samplers: 64*48, 9
    frames, 2 steps, float32), passes /prompt and runs AS IT IS: the pictures, songs and videos it
    names must be ones the server offers (the pack's examples), nothing is uploaded for it."""
    info = s.get("/object_info").json()
    offered = {(node, kind): set(info[node]["input"]["required"][kind][0]) for node, kind in MEDIA_LOADERS.items()}
    for path in sorted(folder.glob("*.json")):
        graph = json.loads(path.read_text(encoding="utf-8"))
        named = [(n["class_type"], n["inputs"][MEDIA_LOADERS[n["class_type"]]]) for n in graph.values()
                 if n["class_type"] in MEDIA_LOADERS and isinstance(n["inputs"].get(MEDIA_LOADERS[n["class_type"]]), str)]
        not_offered = [value for node, value in named if value not in offered[(node, MEDIA_LOADERS[node])]]
        s.check(f"workflow {path.name} names only media the server offers", not not_offered, not_offered)
        for node in graph.values():
            inputs = node["inputs"]
            if node["class_type"] == "HunyuanCustomSampler":
                inputs.update(size=TINY_SIZE, num_frames=TINY_FRAMES, steps=TINY_STEPS)
            if node["class_type"] == "HunyuanCustomModelLoader":
                inputs["dtype"] = "float32"
            if node["class_type"] == "HunyuanCustomLoadVideo":
                inputs["frame_load_cap"] = TINY_FRAMES  # what the shrunk sampler uses
        check_failing_branch(s, path.name, graph)
        r = s.post_prompt(graph)
        if not s.check(f"workflow {path.name} passes /prompt", r.status_code == 200, r.text[:800]):
            continue
        entry = s.wait(r.json()["prompt_id"])
        if check_history_ok(s, f"workflow {path.name} ran", entry):
            savers = [k for k, n in graph.items() if n["class_type"] in ("HunyuanCustomSaveVideo", "SaveVideo")]
            missing = [k for k in savers if not saved_files(entry, k)]
            s.check(f"workflow {path.name}: every saver answered a file", not missing, f"missing {missing}")
            for k in savers:
                if "audio" in graph[k]["inputs"] and saved_files(entry, k):
                    f = saved_files(entry, k)[0]
                    streams = _streams(output_dir / f.get("subfolder", "") / f["filename"])
                    s.check(f"workflow {path.name}: the saved mp4 has a video and an AAC audio stream",
                            "Video: h264" in streams and "Audio: aac" in streams, streams)


def _mp4(path: Path, frames: list) -> bytes:
    import imageio_ffmpeg

    height, width = frames[0].shape[:2]
    writer = imageio_ffmpeg.write_frames(str(path), (width, height), fps=25, codec="libx264", pix_fmt_out="yuv420p",
                                         macro_block_size=16)
    writer.send(None)
    for frame in frames:
        writer.send(frame.tobytes())
    writer.close()
    return path.read_bytes()


def _audio_seconds(path: Path) -> float:
    """The decoded length of the file's audio stream (ffmpeg's last time= while decoding it)."""
    import re

    import imageio_ffmpeg

    out = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-i", str(path), "-map", "0:a", "-f", "null", "-"],
                         capture_output=True, text=True).stderr
    times = re.findall(r"time=(\d+):(\d+):([\d.]+)", out)
    h, m, sec = times[-1] if times else ("0", "0", "0")
    return int(h) * 3600 + int(m) * 60 + float(sec)


def _upload(s: Smoke, name: str, data: bytes, mime: str) -> str:
    resp = requests.post(s.url + "/upload/image", files={"image": (name, data, mime)}, data={"overwrite": "true"},
                         timeout=60)
    resp.raise_for_status()
    return resp.json()["name"]


def check_long_videos(s: Smoke, folder: Path, output_dir: Path, work: Path) -> None:
    """The example graphs, as a user sets them for long videos (tiny models, 64*48, 2 steps): the
    singing avatar with num_frames 0 and a 12 s song gives a 301-frame (12 s) mp4 with the song; the
    editing graph with num_frames 0 and a 300-frame source gives a 297-frame edit."""
    import wave

    import numpy as np

    t = np.arange(12 * 16000) / 16000
    with wave.open(str(work / "song12.wav"), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes((0.4 * np.sin(2 * np.pi * 220 * t) * 32767).astype("<i2").tobytes())
    song = _upload(s, "hyc_song_12s.wav", (work / "song12.wav").read_bytes(), "audio/wav")
    rng = np.random.default_rng(0)
    mask = np.zeros((48, 64, 3), np.uint8)
    mask[12:36, 16:48] = 255
    source = _upload(s, "hyc_source_300.mp4", _mp4(work / "source300.mp4", [rng.integers(0, 256, (48, 64, 3), np.uint8)
                                                                            for _ in range(300)]), "video/mp4")
    mask_name = _upload(s, "hyc_mask_300.mp4", _mp4(work / "mask300.mp4", [mask] * 300), "video/mp4")
    cases = (("Singing avatar.json", {"HunyuanCustomLoadAudio": [song]}, 301, 12.0),
             ("Replace the subject in a video.json", {"HunyuanCustomLoadVideo": [source, mask_name]},
              297, None))
    for name, media, want_frames, want_seconds in cases:
        graph = json.loads((folder / name).read_text(encoding="utf-8"))
        for node in graph.values():
            inputs = node["inputs"]
            if node["class_type"] == "HunyuanCustomSampler":
                inputs.update(size=TINY_SIZE, num_frames=0, steps=TINY_STEPS)
            if node["class_type"] == "HunyuanCustomModelLoader":
                inputs["dtype"] = "float32"
            if node["class_type"] in media:
                inputs[MEDIA_LOADERS[node["class_type"]]] = media[node["class_type"]].pop(0)
                if node["class_type"] == "HunyuanCustomLoadVideo":
                    inputs["frame_load_cap"] = 0  # every frame
        r = s.post_prompt(graph)
        if not s.check(f"long video {name} passes /prompt", r.status_code == 200, r.text[:800]):
            continue
        entry = s.wait(r.json()["prompt_id"], timeout_s=1200)
        if not check_history_ok(s, f"long video {name} ran", entry):
            continue
        (saver,) = [k for k, n in graph.items() if n["class_type"] == "HunyuanCustomSaveVideo"]
        files = saved_files(entry, saver)
        if not s.check(f"long video {name}: saved", bool(files)):
            continue
        path = output_dir / files[0].get("subfolder", "") / files[0]["filename"]
        import imageio_ffmpeg

        count, _secs = imageio_ffmpeg.count_frames_and_secs(str(path))
        detail = f"{count} frames"
        ok = count == want_frames
        if want_seconds is not None:
            seconds = _audio_seconds(path)
            detail += f", {seconds:.2f} s of audio"
            ok = ok and abs(seconds - want_seconds) < 0.1
        s.check(f"long video {name}: {want_frames} frames" + (f" and {want_seconds:g} s of sound" if want_seconds else ""),
                ok, detail)


# ------------------------------------------------------------------ setup

def tiny_video_bytes(folder: Path) -> bytes:
    import imageio_ffmpeg
    import numpy as np

    path = folder / "fake_wavespeed.mp4"
    writer = imageio_ffmpeg.write_frames(str(path), (48, 32), fps=25, codec="libx264", pix_fmt_out="yuv420p",
                                         macro_block_size=16)
    writer.send(None)
    for i in range(5):
        writer.send(np.full((32, 48, 3), 40 * i, dtype=np.uint8).tobytes())
    writer.close()
    return path.read_bytes()


def start_comfyui(args: argparse.Namespace, work: Path, extra_env: dict) -> tuple[subprocess.Popen, Path]:
    log_path = work / "comfyui.log"
    try:  # another server on the port would answer our checks instead of the one started here
        requests.get(f"http://127.0.0.1:{args.port}/", timeout=2)
        raise RuntimeError(f"port {args.port} is already in use; stop that server or pass --port")
    except requests.ConnectionError:
        pass
    cmd = [args.python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(args.port),
           "--base-directory", str(work / "base"),
           "--extra-model-paths-config", str(work / "extra_model_paths.yaml"),
           "--output-directory", str(work / "output"), "--input-directory", str(work / "input"),
           "--temp-directory", str(work / "tempdir"), "--disable-auto-launch"]
    if args.front_end_root:
        cmd += ["--front-end-root", str(Path(args.front_end_root).resolve())]
    env = {**os.environ, **extra_env}
    proc = subprocess.Popen(cmd, cwd=args.comfyui, env=env, stdout=open(log_path, "w"), stderr=subprocess.STDOUT)
    end = time.monotonic() + args.start_timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"ComfyUI exited ({proc.returncode}); see {log_path}")
        try:
            if requests.get(f"http://127.0.0.1:{args.port}/system_stats", timeout=2).status_code == 200:
                return proc, log_path
        except requests.RequestException:
            pass
        time.sleep(0.5)
    proc.terminate()
    raise TimeoutError(f"ComfyUI did not answer within {args.start_timeout} s; see {log_path}")


def link_pack(link: Path) -> None:
    """custom_nodes/ComfyUI-HunyuanCustom -> this checkout (replacing a link to another one, e.g.
    when a work folder is reused from another worktree)."""
    if link.is_symlink() and link.resolve() != REPO:
        link.unlink()
    if not link.exists():
        link.symlink_to(REPO, target_is_directory=True)


def _stop_on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # `kill` stops the server like Ctrl+C does (background jobs ignore SIGINT)


def serve(proc: subprocess.Popen, fake: Any, port: int, log_path: Path) -> int:
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    print(f"ComfyUI at http://127.0.0.1:{port} (log {log_path}); Ctrl+C or kill {os.getpid()} stops it", flush=True)
    try:
        proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait(15)
    finally:
        fake.stop()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--comfyui", required=True, help="ComfyUI checkout (main.py); this pack is linked into "
                                                         "a private custom_nodes/ in the work folder")
    parser.add_argument("--front-end-root", help="frontend build to serve (a folder with index.html, e.g. "
                                                 ".../comfyui_frontend_package/static of another "
                                                 "comfyui-frontend-package); default: ComfyUI's own")
    parser.add_argument("--python", default=sys.executable, help="Python of ComfyUI's environment")
    parser.add_argument("--port", type=int, default=8199)
    parser.add_argument("--start-timeout", type=float, default=180)
    parser.add_argument("--work", help="folder for models/input/output/log (default: a new temp folder)")
    parser.add_argument("--skip-local", action="store_true", help="skip the local sampling runs (and workflows)")
    parser.add_argument("--workflows", default=str(REPO / "workflows" / "api"),
                        help="folder of API-format example workflows to run (default: workflows/api)")
    parser.add_argument("--serve", action="store_true", help="run no checks: keep the server up until Ctrl+C")
    parser.add_argument("--no-key", action="store_true",
                        help="with --serve: start without a WaveSpeed key (nor the user's config file)")
    args = parser.parse_args()

    import _fake_wavespeed as fw
    from _tiny_model_set import build_tiny_model_set

    work = Path(args.work or tempfile.mkdtemp(prefix="hyc_comfyui_smoke_")).resolve()
    for sub in ("input", "output", "tempdir", "base/custom_nodes"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    link_pack(work / "base" / "custom_nodes" / PACK_FOLDER)
    if args.front_end_root and not (Path(args.front_end_root) / "index.html").is_file():
        parser.error(f"--front-end-root {args.front_end_root}: no index.html there; give the frontend "
                     "package's static/ folder")
    if not (work / "models" / "audio_encoders").exists():  # (a work folder from before the audio mode: rebuild)
        shutil.rmtree(work / "models", ignore_errors=True)
        build_tiny_model_set(work / "models")
        # A VAE put among the transformers by mistake: the loader must refuse it when the graph is queued.
        (work / "models" / "diffusion_models" / "a_vae_by_mistake.pt").write_bytes(
            (work / "models" / "vae" / "hyvae_v1_0801" / "pytorch_model.pt").read_bytes())
    (work / "extra_model_paths.yaml").write_text(
        "hyc_smoke:\n"
        f"    base_path: {work / 'models'}\n"
        "    diffusion_models: diffusion_models\n    vae: vae\n    text_encoders: text_encoders\n"
        "    audio_encoders: audio_encoders\n    loras: loras\n")
    write_loras(work / "models" / "loras")
    print(f"work folder: {work}", flush=True)

    fake = fw.FakeWaveSpeed(WAVESPEED_KEY, tiny_video_bytes(work)).start()
    env = {"WAVESPEED_API_KEY": WAVESPEED_KEY, "WAVESPEED_BASE_URL": fake.base_url,
           "WAVESPEED_POLL_INTERVAL_S": "0.05"}
    if args.no_key:  # also hide the user's own config file, so that the key is really missing
        env = {k: v for k, v in env.items() if k != "WAVESPEED_API_KEY"}
        env["WAVESPEED_CONFIG_FILE"] = str(work / "no_wavespeed_config.json")
    proc, log_path = start_comfyui(args, work, env)
    if args.serve:
        return serve(proc, fake, args.port, log_path)
    s = Smoke(f"http://127.0.0.1:{args.port}")
    try:
        check_registration(s, lambda: log_path.read_text(errors="replace"))
        models = check_model_combos(s)
        image = s.upload_png("hyc_smoke_ref.png")
        check_remote_validation(s, image)
        check_path_guard(s, work)
        check_size_widgets(s)
        if not args.skip_local:
            check_local(s, image, models, work / "output")
            check_loras(s, image, models)
            check_cancel_in_step(s, image, models)
        check_remote(s, image, fake, work / "output", proc.pid)
        workflows = Path(args.workflows)
        if workflows.is_dir() and not args.skip_local:
            check_workflows(s, workflows, work / "output")
            check_long_videos(s, workflows, work / "output", work)
        log = log_path.read_text(errors="replace")
        s.check("no traceback in ComfyUI's log", "Traceback" not in log.split("Starting server")[-1],
                log_path)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        fake.stop()
    print(f"\n{len(s.failures)} check(s) failed" + (": " + ", ".join(s.failures) if s.failures else ""))
    print(f"ComfyUI log: {log_path}")
    return 1 if s.failures else 0


if __name__ == "__main__":
    sys.exit(main())
