"""Writes the example workflows (workflows/*.json) and their API-format twins (workflows/api/).

The committed JSON files are what ships and what tests/test_workflows.py checks; this script is
only how they were made (links, slots and widget order are error-prone by hand). After editing a
workflow in ComfyUI, either save it over the file (then refresh the twin with `--twins-only`) or
change the script and run it again:

    python tests/_workflow_builder.py            # rewrite the UI files and the twins
    python tests/_workflow_builder.py --twins-only

Widget values are given by input name and placed in the node's declared widget order (with the
seed's "control after generate" value and the upload button's value where the frontend puts them).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / "workflows"
CATEGORY = "HunyuanCustom"  # the pack's name in the template browser (locales/en/main.json says so for 1.58)
SEED_CONTROL = "fixed"  # seed -1 stays -1, so every run picks a new random seed itself

# The pack's own example media (nodes/example_media.py): the templates run out of the box.
MAN = "hunyuan_custom_examples/man.png"
DOG = "hunyuan_custom_examples/dog.png"
SOURCE_VIDEO = "hunyuan_custom_examples/park_walk.mp4"
MASK_VIDEO = "hunyuan_custom_examples/park_walk_mask.mp4"
EDITING_TRANSFORMER = "hunyuancustom_editing_720P/mp_rank_00_model_states.pt"

# Node sizes (width, height), large enough for their widgets so the frontend does not grow them.
# Below each of our nodes the layout leaves PROBLEM_ROOM free: a problem shown on the node grows it by
# up to four rows (web/hunyuan_custom.js MAX_ROWS) without covering the node below.
PROBLEM_ROOM = 100
SIZES = {
    "Note": (470, 330),
    "HunyuanCustomLoadImage": (340, 410),
    "PreviewImage": (340, 300),
    "HunyuanCustomModelLoader": (420, 380),  # Nodes 2.0 draws its eleven widgets (gpus last) 374 px tall
    "HunyuanCustomPrompt": (440, 400),
    "HunyuanCustomSampler": (360, 430),
    "HunyuanCustomWaveSpeed": (380, 250),
    "HunyuanCustomSaveVideo": (380, 460),
    "CreateVideo": (280, 130),
    "SaveVideo": (380, 460),
    "HunyuanCustomLoadAudio": (340, 200),
    "HunyuanCustomAudio": (340, 110),
    "HunyuanCustomLoadVideo": (340, 460),
    "HunyuanCustomEdit": (400, 250),
}

# What the frontend's missing-models dialog reads (a workflow's top-level `models`, as ComfyUI's own
# templates carry them): a file the loader's pick stands for, its model folder and where to download it
# (README "Model files"). The dialog compares `name` with the files of `directory`, so a model that is a
# folder is named by one file inside it. Only files with a fixed name and URL: the text encoders are
# whole folders (tokenizer, config, shards) that one link cannot fetch; the Note names them.
HF_HUNYUANCUSTOM = "https://huggingface.co/tencent/HunyuanCustom/resolve/main/models/"
MODEL_DOWNLOADS = {
    "hunyuancustom_720P/mp_rank_00_model_states.pt": (
        "diffusion_models", HF_HUNYUANCUSTOM + "hunyuancustom_720P/mp_rank_00_model_states.pt"),
    "hunyuancustom_audio_720P/mp_rank_00_model_states.pt": (
        "diffusion_models", HF_HUNYUANCUSTOM + "hunyuancustom_audio_720P/mp_rank_00_model_states.pt"),
    "hunyuancustom_editing_720P/mp_rank_00_model_states.pt": (
        "diffusion_models", HF_HUNYUANCUSTOM + "hunyuancustom_editing_720P/mp_rank_00_model_states.pt"),
    "hyvae_v1_0801/": ("vae", HF_HUNYUANCUSTOM + "vae_3d/hyvae_v1_0801/pytorch_model.pt", "pytorch_model.pt"),
    "whisper-tiny/": ("audio_encoders", "https://huggingface.co/openai/whisper-tiny/resolve/main/model.safetensors",
                      "model.safetensors"),
}


def model_downloads(values: list) -> list[dict]:
    """The `models` entries for a Model Loader's widget values."""
    out = []
    for value in values:
        if isinstance(value, str) and value in MODEL_DOWNLOADS:
            directory, url, *inside = MODEL_DOWNLOADS[value]
            out.append({"name": value + inside[0] if inside else value, "url": url, "directory": directory})
    return out


MODEL_FILES = {
    "transformer": "hunyuancustom_720P/mp_rank_00_model_states.pt",
    "vae": "hyvae_v1_0801/",
    "text_encoder": "llava-llama-3-8b-v1_1/",
    "text_encoder_2": "openai_clip-vit-large-patch14/",
    "dtype": "bfloat16",
    "fp8_mode": "dequantize",
    "offload": "auto",
    "attention": "default",
}

MODELS_NOTE = (
    "Model files (ComfyUI/models/...), names as in the downloads:\n"
    "- diffusion_models/hunyuancustom_720P/mp_rank_00_model_states.pt  (tencent/HunyuanCustom; "
    "or mp_rank_00_model_states_fp8.pt with its _fp8_map.pt beside it, or ComfyUI's "
    "hunyuan_video_custom_720p_*.safetensors)\n"
    "- vae/hyvae_v1_0801/  (the folder vae_3d/hyvae_v1_0801 of the download: config.json + pytorch_model.pt)\n"
    "- text_encoders/llava-llama-3-8b-v1_1/  (xtuner/llava-llama-3-8b-v1_1-transformers; or ComfyUI's "
    "llava_llama3_fp16.safetensors / llava_llama3_fp8_scaled.safetensors with "
    "clip_vision/llava_llama3_vision.safetensors)\n"
    "- text_encoders/openai_clip-vit-large-patch14/  (openai/clip-vit-large-patch14; or clip_l.safetensors)\n"
    "Memory (estimated): offload 'auto' keeps each stage whole on the GPU only when it fits (the transformer at 720p "
    "needs about 29 GB with fp8 keep, 41 GB in bf16) and otherwise streams the transformer's blocks and LLaVA's "
    "layers ('group': 720p on 24 GB cards, 960*544 on 16 GB); "
    "the fp8 checkpoint with fp8_mode 'keep' halves the transformer's memory."
)

KEY_NOTE = (
    "WaveSpeed (remote): the API key is read from the environment variable WAVESPEED_API_KEY "
    "(set it before starting ComfyUI) or from the user config file "
    "~/.config/hunyuan-custom/wavespeed.json ({\"api_key\": \"...\"}); never type it into a node, "
    "widget values are saved into workflows and videos. Each run is billed to your WaveSpeed account. "
    "1280*720 / 720*1280 use the 720p model, 832*480 / 480*832 the 480p model; WaveSpeed decides "
    "the length (upstream: 129 frames at 25 fps)."
)

IMAGE_NOTE = (
    "Reference image: \"{name}\" is the pack's example picture, so the template runs as it is; for "
    "your own subject upload a picture in the Load Reference Image node (or pick one from the input "
    "folder) and describe it in the prompt. A cut-out subject on white or on a transparent "
    "background works best."
)
SUBJECT_NOTE_LOCAL = "The subject word goes into upstream's template 'The <subject> looks like <image>'."
SUBJECT_NOTE_REMOTE = ("WaveSpeed's request has no subject word (its API takes none), so the Prompt node's "
                       "subject is not sent: name the subject in the prompt itself.")
SUBJECT_NOTE_HYBRID = ("The subject word goes into upstream's template 'The <subject> looks like <image>' for the "
                       "local preview only; WaveSpeed's request has no subject word, so name the subject in the "
                       "prompt itself too.")

SEED_NOTE = "Seed -1 picks a new random seed every run (the local sampler's seed output reports it)."

REFERENCE_SONG = "hunyuan_custom_examples/sung_melody.mp3"
AUDIO_MODEL_FILES = {**MODEL_FILES, "transformer": "hunyuancustom_audio_720P/mp_rank_00_model_states.pt",
                     "audio_encoder": "whisper-tiny/"}
AUDIO_MODELS_NOTE = (
    "Model files (ComfyUI/models/...), names as in the downloads:\n"
    "- diffusion_models/hunyuancustom_audio_720P/mp_rank_00_model_states.pt  (tencent/HunyuanCustom's AUDIO "
    "checkpoint; or mp_rank_00_model_states_fp8.pt with its _fp8_map.pt beside it). The reference-to-video "
    "checkpoint cannot sing.\n"
    "- audio_encoders/whisper-tiny/  (openai/whisper-tiny from Hugging Face: config.json, "
    "preprocessor_config.json, model.safetensors; or that model.safetensors alone)\n"
    "- vae/hyvae_v1_0801/  (the folder vae_3d/hyvae_v1_0801 of the download: config.json + pytorch_model.pt)\n"
    "- text_encoders/llava-llama-3-8b-v1_1/  (xtuner/llava-llama-3-8b-v1_1-transformers; or ComfyUI's "
    "llava_llama3_fp16.safetensors / llava_llama3_fp8_scaled.safetensors with "
    "clip_vision/llava_llama3_vision.safetensors)\n"
    "- text_encoders/openai_clip-vit-large-patch14/  (openai/clip-vit-large-patch14; or clip_l.safetensors)\n"
    "Memory: as the local 720p workflow (offload 'auto'); the audio modules add 0.2 GB to the transformer, "
    "Whisper (33 MB) is loaded and freed before it."
)


def _schema():
    from hunyuan_custom.pipelines import schema

    return schema


class Graph:
    """A UI-format (frontend 0.4) graph under construction."""

    def __init__(self, object_info: dict[str, dict]):
        import _workflows as wf

        self.wf = wf
        self.info = object_info
        self.nodes: list[dict] = []
        self.links: list[list] = []
        self.groups: list[dict] = []

    def add(self, kind: str, pos: tuple[int, int], values: dict[str, Any] | None = None, title: str | None = None,
            linked_widgets: tuple[str, ...] = (), text: str | None = None) -> dict:
        node_id = len(self.nodes) + 1
        node: dict[str, Any] = {"id": node_id, "type": kind, "pos": list(pos), "size": list(SIZES[kind]),
                                "flags": {}, "order": 0, "mode": 0}
        if kind == "Note":
            node.update(inputs=[], outputs=[], properties={}, widgets_values=[text or ""],
                        color="#432", bgcolor="#653")
        else:
            info = self.info[kind]
            inputs = []  # as the frontend writes them: sockets, then linked widgets; optional ones hollow
            for name, spec, required in self.wf.frontend_inputs(info, set(linked_widgets)):
                entry: dict[str, Any] = {"name": name}
                if not required:
                    entry["shape"] = self.wf.OPTIONAL_SHAPE
                entry["type"] = self.wf.spec_type(spec)
                if self.wf.is_widget(spec):
                    entry["widget"] = {"name": name}
                inputs.append({**entry, "link": None})
            outputs = [{"name": name, "type": kind_, "links": [], "slot_index": slot}
                       for slot, (name, kind_) in enumerate(zip(info.get("output_name") or info["output"],
                                                                 info["output"]))]
            node.update(inputs=inputs, outputs=outputs, properties={"Node name for S&R": kind},
                        widgets_values=self._widget_values(info, values or {}))
        if title:
            node["title"] = title
        self.nodes.append(node)
        return node

    def _widget_values(self, info: dict, values: dict[str, Any]) -> list:
        out = []
        unused = set(values)
        for slot in self.wf.widget_slots(info):
            if slot.kind == "value":
                if slot.name in values:
                    out.append(values[slot.name])
                    unused.discard(slot.name)
                else:
                    out.append(self.wf.spec_options(slot.spec)["default"])
            elif slot.kind == "control":
                out.append(SEED_CONTROL)
            elif slot.kind in ("audio_ui", "audio_upload"):
                out.append(None)  # core LoadAudio's player and upload button save null
            else:
                out.append("image")
        if unused:
            raise KeyError(f"{info['name']} has no widgets {sorted(unused)}")
        return out

    def link(self, src: dict, output: str, dst: dict, input_name: str) -> None:
        src_slot = next(i for i, o in enumerate(src["outputs"]) if o["name"] == output)
        dst_slot = next(i for i, e in enumerate(dst["inputs"]) if e["name"] == input_name)
        link_id = len(self.links) + 1
        kind = src["outputs"][src_slot]["type"]
        self.links.append([link_id, src["id"], src_slot, dst["id"], dst_slot, kind])
        src["outputs"][src_slot]["links"].append(link_id)
        dst["inputs"][dst_slot]["link"] = link_id

    def group(self, title: str, members: list[dict], color: str) -> None:
        """A frame around nodes (their title bars included, 30 px above pos)."""
        pad, title_h = 20, 30
        left = min(n["pos"][0] for n in members) - pad
        top = min(n["pos"][1] for n in members) - title_h - pad - 40  # room for the group's title
        right = max(n["pos"][0] + n["size"][0] for n in members) + pad
        bottom = max(n["pos"][1] + n["size"][1] + (PROBLEM_ROOM if n["type"].startswith("HunyuanCustom") else 0)
                     for n in members) + pad
        self.groups.append({"title": title, "bounding": [left, top, right - left, bottom - top], "color": color,
                            "font_size": 24, "flags": {}})

    def to_json(self) -> dict:
        self._set_order()
        graph = {"last_node_id": len(self.nodes), "last_link_id": len(self.links), "nodes": self.nodes,
                 "links": self.links, "groups": self.groups, "config": {}, "extra": {"ds": {"scale": 0.8,
                 "offset": [0, 0]}}, "version": 0.4}
        models = [m for n in self.nodes if n["type"] == "HunyuanCustomModelLoader"
                  for m in model_downloads(n["widgets_values"])]
        if models:
            graph["models"] = models
        return graph

    def _set_order(self) -> None:
        """`order` = a dependency order (the frontend recomputes it; keep it plausible)."""
        deps = {n["id"]: {link[1] for link in self.links if link[3] == n["id"]} for n in self.nodes}
        done: list[int] = []
        while len(done) < len(self.nodes):
            ready = [nid for nid in sorted(deps) if nid not in done and deps[nid] <= set(done)]
            done += ready[:1]
        for node in self.nodes:
            node["order"] = done.index(node["id"])


def _prompt_values(prompt: str, subject: str) -> dict[str, Any]:
    return {"prompt": prompt, "negative_prompt": _schema().DEFAULT_NEGATIVE_PROMPT, "subject": subject}


def _local_720p_values() -> dict[str, Any]:
    """Upstream's defaults for 720p single-subject generation."""
    return {"size": "1280*720", "guidance_scale": 7.5, "flow_shift": 13.0, "seed": -1, "num_frames": 129,
            "steps": 30, "cache": "deepcache"}


def _remote_720p_values() -> dict[str, Any]:
    return {"size": "1280*720", "guidance_scale": 7.5, "flow_shift": 13.0, "seed": -1,
            "enable_safety_checker": True}


LORA_NOTE = ("LoRA: put HunyuanVideo LoRAs in models/loras and add a HunyuanCustom LoRA node between the "
             "model loader and the sampler (loader -> LoRA -> sampler); chain LoRA nodes for several. Changing a "
             "LoRA or its strength does not reload the model. T2V LoRAs were trained without the reference "
             "image: results on HunyuanCustom vary.")


def local_720p(info: dict) -> dict:
    g = Graph(info)
    note = g.add("Note", (40, 40), text=(
        "HunyuanCustom, local 720p with upstream's defaults: 1280*720, 129 frames at 25 fps (about 5 s), "
        "30 steps, flow shift 13, guidance 7.5, upstream's negative prompt.\n\n" + MODELS_NOTE + "\n\n"
        + IMAGE_NOTE.format(name=MAN) + " " + SUBJECT_NOTE_LOCAL
        + " The preview shows the image as the model gets it (e.g. when loaded from the url).\n\n" + SEED_NOTE
        + "\n\n" + LORA_NOTE))
    image = g.add("HunyuanCustomLoadImage", (40, 440), {"image": MAN, "url": ""})
    preview = g.add("PreviewImage", (40, 980), title="Reference as used")
    loader = g.add("HunyuanCustomModelLoader", (560, 40), MODEL_FILES)
    prompt = g.add("HunyuanCustomPrompt", (560, 550), _prompt_values(
        "A man in a grey coat walks along a rainy city street at night, neon signs reflecting on the wet "
        "pavement; he stops, looks up and smiles. The camera slowly follows him.", "man"))
    sampler = g.add("HunyuanCustomSampler", (1070, 40), _local_720p_values())
    save = g.add("HunyuanCustomSaveVideo", (1500, 40), {"filename_prefix": "HunyuanCustom/local_720p", "crf": 19},
                 linked_widgets=("fps",))
    g.link(image, "image", prompt, "image")
    g.link(image, "image", preview, "images")
    g.link(loader, "model", sampler, "model")
    g.link(prompt, "prompt", sampler, "prompt")
    g.link(sampler, "frames", save, "frames")
    g.link(sampler, "fps", save, "fps")
    del note
    return g.to_json()


def remote_wavespeed_720p(info: dict) -> dict:
    g = Graph(info)
    g.add("Note", (40, 40), text=(
        "HunyuanCustom on WaveSpeed (remote, no local GPU or model files needed), 720p.\n\n" + KEY_NOTE + "\n\n"
        + IMAGE_NOTE.format(name=DOG) + " " + SUBJECT_NOTE_REMOTE + "\n\n" + SEED_NOTE + "\n\n"
        "To render locally instead, use the local workflow: the sampler nodes share these parameters."))
    image = g.add("HunyuanCustomLoadImage", (40, 440), {"image": DOG, "url": ""})
    prompt = g.add("HunyuanCustomPrompt", (560, 40), _prompt_values(
        "A golden retriever runs across a sunny meadow toward the camera, ears flapping, then sits down "
        "and tilts its head. Shallow depth of field, warm afternoon light.", "dog"))
    remote = g.add("HunyuanCustomWaveSpeed", (1070, 40), _remote_720p_values())
    save = g.add("HunyuanCustomSaveVideo", (1500, 40), {"filename_prefix": "HunyuanCustom/wavespeed_720p",
                                                         "crf": 19}, linked_widgets=("fps",))
    g.link(image, "image", prompt, "image")
    g.link(prompt, "prompt", remote, "prompt")
    g.link(remote, "frames", save, "frames")
    g.link(remote, "fps", save, "fps")
    return g.to_json()


def hybrid_preview_local_final_remote(info: dict) -> dict:
    g = Graph(info)
    g.add("Note", (40, 40), text=(
        "One prompt, two renders: a quick local preview (480*272, 33 frames, 20 steps) to check the scene "
        "and the subject, and the final 1280*720 video on WaveSpeed. The preview is not a small copy of "
        "the final video (other size, length and steps); it shows whether prompt and reference work.\n"
        "To iterate on the preview only, select the three nodes of the WaveSpeed group and press Ctrl+M "
        "(mute); press it again for the final.\n\n" + MODELS_NOTE + "\n\n" + KEY_NOTE + "\n\n" + IMAGE_NOTE.format(name=MAN)
        + " " + SUBJECT_NOTE_HYBRID + "\n\n" + SEED_NOTE))
    image = g.add("HunyuanCustomLoadImage", (40, 440), {"image": MAN, "url": ""})
    prompt = g.add("HunyuanCustomPrompt", (560, 440), _prompt_values(
        "A man in a grey coat and a red scarf rides a bicycle along a seaside road, his scarf blowing in "
        "the wind; waves break on the rocks below. Tracking shot from the side.", "man"))
    # The WaveSpeed group on top, the preview group below it: the preview sampler grows downwards after a
    # run (its step preview and result lines), into free space rather than over the other group's title.
    loader = g.add("HunyuanCustomModelLoader", (1080, 950), MODEL_FILES)
    sampler = g.add("HunyuanCustomSampler", (1080, 1460), {**_local_720p_values(), "size": "480*272",
                                                           "num_frames": 33, "steps": 20},
                    title="Quick local preview")
    save_preview = g.add("HunyuanCustomSaveVideo", (1520, 950), {"filename_prefix": "HunyuanCustom/preview",
                                                                  "crf": 23}, linked_widgets=("fps",))
    remote = g.add("HunyuanCustomWaveSpeed", (1080, 110), _remote_720p_values(), title="Final 720p on WaveSpeed")
    create = g.add("CreateVideo", (1520, 110), {"fps": 25.0}, linked_widgets=("fps",))
    save_final = g.add("SaveVideo", (1520, 290), {"filename_prefix": "HunyuanCustom/final_720p", "format": "mp4",
                                                   "codec": "h264"})
    g.link(image, "image", prompt, "image")
    g.link(loader, "model", sampler, "model")
    g.link(prompt, "prompt", sampler, "prompt")
    g.link(sampler, "frames", save_preview, "frames")
    g.link(sampler, "fps", save_preview, "fps")
    g.link(prompt, "prompt", remote, "prompt")
    g.link(remote, "frames", create, "images")
    g.link(remote, "fps", create, "fps")
    g.link(create, "VIDEO", save_final, "video")
    g.group("Quick local preview", [loader, sampler, save_preview], "#3f789e")
    g.group("Final 720p on WaveSpeed (remote, billed)", [remote, create, save_final], "#8A8")
    return g.to_json()


def multi_subject(info: dict) -> dict:
    g = Graph(info)
    g.add("Note", (40, 40), text=(
        "Two subjects, local 720p with upstream's defaults. The Prompt node places the references side "
        "by side on one white image (equal-width cells); the released checkpoint was trained on ONE "
        "reference image, so results with several subjects vary: describe both in the prompt and name "
        "them in the subject word.\n\n" + MODELS_NOTE + f"\n\nReference images: \"{MAN}\" and \"{DOG}\" are the "
        "pack's example pictures, so the template runs as it is; for your own subjects upload one picture per "
        "subject in the Load Reference Image nodes. Cut-out subjects on white work best.\n\n" + SEED_NOTE))
    image = g.add("HunyuanCustomLoadImage", (40, 420), {"image": MAN, "url": ""}, title="Subject 1")
    image_2 = g.add("HunyuanCustomLoadImage", (40, 960), {"image": DOG, "url": ""}, title="Subject 2")
    loader = g.add("HunyuanCustomModelLoader", (560, 40), MODEL_FILES)
    prompt = g.add("HunyuanCustomPrompt", (560, 550), _prompt_values(
        "A man and his dog walk side by side along a beach at sunset; the dog jumps up and the man laughs "
        "and pats its head. Wide shot, the camera slowly pans with them.", "man and dog"))
    sampler = g.add("HunyuanCustomSampler", (1070, 40), _local_720p_values())
    save = g.add("HunyuanCustomSaveVideo", (1500, 40), {"filename_prefix": "HunyuanCustom/multi_subject",
                                                         "crf": 19}, linked_widgets=("fps",))
    g.link(image, "image", prompt, "image")
    g.link(image_2, "image", prompt, "image_2")
    g.link(loader, "model", sampler, "model")
    g.link(prompt, "prompt", sampler, "prompt")
    g.link(sampler, "frames", save, "frames")
    g.link(sampler, "fps", save, "fps")
    return g.to_json()


def singing_avatar(info: dict) -> dict:
    g = Graph(info)
    g.add("Note", (40, 40), text=(
        "HunyuanCustom singing avatar (audio-driven mode), local, with upstream's settings: 1280*720, 25 fps, "
        "30 steps, flow shift 13, guidance 7.5, audio strength 0.8.\n\n"
        "The whole song: num_frames 0 makes the video as long as the track (up to 60 s; 129 frames = 5.16 s is one "
        "pass, as upstream). A longer song is sampled in 129-frame windows that move every step (HunyuanVideo-"
        "Avatar's method): the GPU memory stays one window's, the sampling time grows with the windows (a 60 s "
        "song is 12 windows: about 12x a 5 s video), deepcache does not act on it, and RAM holds the frames "
        "in 8 bits (the Sampler's frames_8bit goes to Save Video: 0.07 GB per second of 720p; its float32 "
        "frames output, 0.28 GB a second, is made only when connected). Quality over many windows is unmeasured on the real "
        "weights: try a short part of the song first (num_frames 129, 257...).\n\n" + AUDIO_MODELS_NOTE
        + "\n\n" + IMAGE_NOTE.format(name=MAN) + " A face or upper body looking at the camera "
        "works best.\n\nSong: \"" + REFERENCE_SONG + "\" is the pack's example (a synthetic voice singing "
        "\"la-la\", 5.2 s: 129 frames); for your own, upload a voice or song in the HunyuanCustom Load Audio node "
        "(or pick a file from the input folder). A clear voice with little background music works best; the video "
        "starts with the track's first second; with a frame count instead of 0, shorter audio leaves the last "
        "frames silent (the sampler says how many) and longer audio is cut. The sampler's audio output carries the track cut to the video into the saved "
        "mp4.\n\n" + SEED_NOTE))
    image = g.add("HunyuanCustomLoadImage", (40, 440), {"image": MAN, "url": ""})
    song = g.add("HunyuanCustomLoadAudio", (40, 980), {"audio": REFERENCE_SONG})
    prompt = g.add("HunyuanCustomPrompt", (560, 330), _prompt_values(
        "A man in a grey coat sings passionately on a small stage, holding a microphone close to his mouth; warm "
        "spotlight, close-up, the camera stays still.", "man"))
    audio = g.add("HunyuanCustomAudio", (560, 860), {"audio_strength": 0.8})
    loader = g.add("HunyuanCustomModelLoader", (1070, 40), AUDIO_MODEL_FILES)
    sampler = g.add("HunyuanCustomSampler", (1070, 550), {**_local_720p_values(), "num_frames": 0})
    save = g.add("HunyuanCustomSaveVideo", (1500, 40), {"filename_prefix": "HunyuanCustom/singing_avatar",
                                                         "crf": 19}, linked_widgets=("fps",))
    g.link(image, "image", prompt, "image")
    g.link(prompt, "prompt", audio, "prompt")
    g.link(song, "audio", audio, "audio")
    g.link(loader, "model", sampler, "model")
    g.link(audio, "prompt", sampler, "prompt")
    g.link(sampler, "frames_8bit", save, "frames")  # a whole song never exists as float32 frames
    g.link(sampler, "fps", save, "fps")
    g.link(sampler, "audio", save, "audio")
    return g.to_json()


def replace_subject(info: dict) -> dict:
    g = Graph(info)
    g.add("Note", (40, 40), text=(
        "Replace the subject of a video (HunyuanCustom's editing mode): the reference subject is put into "
        "the source video where the mask video is white; the rest of the video stays. Upstream's editing "
        "settings: 50 steps, flow shift 5, guidance 7.5; the Sampler's size and num_frames decide the "
        "output (a source of another size is scaled to cover it and centre-cropped; the frames used are "
        "the shortest of num_frames, the source and the mask, rounded down to 4n+1). Save Video keeps the "
        "source's sound (the Sampler's audio output), cut to the edited video.\n\n"
        f"Videos: \"{SOURCE_VIDEO}\" (a man strolling in a park) and its mask \"{MASK_VIDEO}\" are the pack's "
        "examples; for your own, upload the source in the first HunyuanCustom Load Video node and its mask in "
        "the second (or pick files from the input folder). The mask is white where the new subject goes and "
        "black elsewhere, frame by frame: make it with any segmentation pack (SAM 2, GroundingDINO + SAM: "
        "connect their MASK output to the Edit node's mask instead of the second video), paint it in a "
        "video editor, or use one white-on-black picture for every frame. expand grows the mask by a few "
        "pixels (5, upstream's), box fills it out to a rectangle.\n\n"
        "A longer clip (up to 60 s): set the Sampler's num_frames to 0 (the whole source) and both Load Video "
        "nodes' frame_load_cap to 0 (their default, 129 frames, keeps a file of unknown length from filling "
        "the memory; memory_limit_gb still caps it: raise it for long 720p clips, 11 MB a frame). It runs in "
        "windows of 129 frames, each costing what a 129-frame edit costs.\n\n"
        + IMAGE_NOTE.format(name=DOG) + "\n\n"
        + MODELS_NOTE.replace("diffusion_models/hunyuancustom_720P/mp_rank_00_model_states.pt  (tencent/HunyuanCustom; "
                              "or mp_rank_00_model_states_fp8.pt with its _fp8_map.pt beside it, or ComfyUI's "
                              "hunyuan_video_custom_720p_*.safetensors)",
                              f"diffusion_models/{EDITING_TRANSFORMER}  (the editing checkpoint of tencent/"
                              "HunyuanCustom; or its mp_rank_00_model_states_fp8.pt with the _fp8_map.pt beside it)")
        + " Editing costs what generating the same video costs, plus two VAE encodes (the source and the mask)."
        "\n\n" + SEED_NOTE))
    source = g.add("HunyuanCustomLoadVideo", (40, 440), {"video": SOURCE_VIDEO}, title="Source video")
    mask = g.add("HunyuanCustomLoadVideo", (40, 1030), {"video": MASK_VIDEO}, title="Mask video (white = replace)")
    image = g.add("HunyuanCustomLoadImage", (540, 40), {"image": DOG, "url": ""})
    prompt = g.add("HunyuanCustomPrompt", (540, 580), _prompt_values(
        "A golden retriever walks along a stone road in a park, looks around and sniffs the air. Natural "
        "light, the camera follows at a low angle.", "dog"))
    edit = g.add("HunyuanCustomEdit", (540, 1110), {"expand": 5, "box": False})
    loader = g.add("HunyuanCustomModelLoader", (1040, 40), {**MODEL_FILES, "transformer": EDITING_TRANSFORMER})
    sampler = g.add("HunyuanCustomSampler", (1040, 550), {**_local_720p_values(), "steps": 50, "flow_shift": 5.0})
    save = g.add("HunyuanCustomSaveVideo", (1500, 40), {"filename_prefix": "HunyuanCustom/replace_subject",
                                                          "crf": 19}, linked_widgets=("fps",))
    g.link(image, "image", prompt, "image")
    g.link(prompt, "prompt", edit, "prompt")
    g.link(source, "frames", edit, "video")
    g.link(mask, "frames", edit, "mask")
    g.link(source, "audio", edit, "audio")
    g.link(loader, "model", sampler, "model")
    g.link(edit, "prompt", sampler, "prompt")
    g.link(sampler, "frames", save, "frames")
    g.link(sampler, "fps", save, "fps")
    g.link(sampler, "audio", save, "audio")
    return g.to_json()


BUILDERS = {
    "Local 720p": local_720p,
    "WaveSpeed 720p": remote_wavespeed_720p,
    "Local preview and WaveSpeed final": hybrid_preview_local_final_remote,
    "Two subjects": multi_subject,
    "Singing avatar": singing_avatar,
    "Replace the subject in a video": replace_subject,
}

# What each card in ComfyUI's template browser says under its title (the file name). The frontends
# show the file name there too; web/template_browser.js puts these in its place (read from
# web/template_cards.json, which main() writes), and the thumbnails carry them.
CARD_DESCRIPTIONS = {
    "Local 720p": "One subject from one picture, on your own GPU",
    "WaveSpeed 720p": "Rendered on WaveSpeed's servers: no GPU or model files needed",
    "Local preview and WaveSpeed final": "A quick preview on your GPU, then the final on WaveSpeed",
    "Two subjects": "Two reference pictures, one video with both subjects",
    "Singing avatar": "The subject sings or talks along to a whole song",
    "Replace the subject in a video": "Puts the subject into a video where a mask says",
}
CARDS_FILE = ROOT / "web" / "template_cards.json"


def _write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def main(argv: list[str]) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import conftest  # noqa: F401  (registers this checkout as `hunyuan_custom`)
    import _workflows as wf

    info = wf.all_object_info()
    for name, build in BUILDERS.items():
        path = WORKFLOWS / f"{name}.json"
        if "--twins-only" not in argv:
            _write(path, build(info))
        graph = json.loads(path.read_text(encoding="utf-8"))
        _write(WORKFLOWS / "api" / f"{name}.json", wf.ui_to_api(graph, info))
        print("wrote", path.relative_to(ROOT))
    _write(CARDS_FILE, {"category": CATEGORY, "descriptions": CARD_DESCRIPTIONS})
    print("wrote", CARDS_FILE.relative_to(ROOT))


if __name__ == "__main__":
    main(sys.argv[1:])
