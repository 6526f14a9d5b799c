"""The audio-driven mode end to end on CPU: a tiny audio checkpoint and a tiny Whisper in upstream's
layouts, a WAV the test writes, through the node classes (and the CLI) to an mp4 whose video and
audio streams have the right lengths; and every bad input stopped with a message naming it,
before anything loads."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from _cli_run import error_line, local_argv, run_cli
from _tiny_model_set import build_tiny_model_set
from _wav_files import write_pcm16_wav
from hunyuan_custom.nodes.audio import HunyuanCustomAudio
from hunyuan_custom.nodes.model_loader import HunyuanCustomModelLoader
from hunyuan_custom.nodes.prompt import HunyuanCustomPrompt
from hunyuan_custom.nodes.sampler import HunyuanCustomSampler
from hunyuan_custom.nodes.save_video import HunyuanCustomSaveVideo
from hunyuan_custom.nodes.wavespeed import HunyuanCustomWaveSpeed
from hunyuan_custom.pipelines.conditioning.audio import AudioCondition
from hunyuan_custom.pipelines.conditioning.base import ConditionError
from hunyuan_custom.pipelines.job import Job
from hunyuan_custom.pipelines.media import video_io
from hunyuan_custom.pipelines.media.audio_io import load_audio_file

AUDIO_DIT = "hunyuancustom_audio_720P/mp_rank_00_model_states.pt"
REF2V_DIT = "hunyuancustom_720P/mp_rank_00_model_states.pt"
TINY = dict(size="64*48", guidance_scale=7.5, flow_shift=13.0, seed=5, num_frames=9, steps=2)  # 9 frames = 0.36 s
RATE = 44100


def song(seconds: float, rate: int = RATE, channels: int = 2) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return np.stack([0.4 * np.sin(2 * np.pi * (220 + 110 * c) * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2
                     for c in range(channels)]).astype(np.float32)


def write_wav(path: Path, samples: np.ndarray, rate: int = RATE) -> Path:
    return write_pcm16_wav(path, samples, rate)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return build_tiny_model_set(tmp_path_factory.mktemp("models"))


@pytest.fixture
def comfy_dirs(models, tmp_path, monkeypatch):
    root = models.transformer.parents[2]
    monkeypatch.setenv("HYC_MODELS_DIR", str(root))
    monkeypatch.setenv("HYC_OUTPUT_DIR", str(tmp_path / "output"))
    return tmp_path / "output"


def reference() -> torch.Tensor:
    image = torch.ones(1, 40, 32, 3)
    image[:, 8:32, 8:24] = torch.tensor([0.8, 0.3, 0.2])
    return image


def audio_prompt(seconds: float = 0.6, strength: float = 0.8, audio: dict | None = None):
    """Prompt -> Audio node; the track is `audio` (e.g. from Load Audio) or a song of `seconds`."""
    (spec,) = HunyuanCustomPrompt().build("A man sings on a stage, close-up.", "", "man", reference())
    audio = audio or {"waveform": torch.from_numpy(song(seconds)).unsqueeze(0), "sample_rate": RATE}
    return HunyuanCustomAudio().attach(spec, audio, strength)[0]


def loader(transformer: str = AUDIO_DIT, audio_encoder: str = "whisper-tiny/"):
    return HunyuanCustomModelLoader().load(transformer, "hyvae_v1_0801/", "llava-llama-3-8b-v1_1/",
                                           "openai_clip-vit-large-patch14/", dtype="float32",
                                           audio_encoder=audio_encoder)[0]


# ------------------------------------------------------------------ end to end


def test_nodes_make_an_mp4_with_video_and_audio_of_the_right_lengths(comfy_dirs, tmp_path):
    import _workflows

    write_wav(tmp_path / "song.wav", song(0.6))  # longer than the 0.36 s video: cut
    load_audio = type("LoadAudio", (_workflows.EMULATED_CORE["LoadAudio"],), {"input_dir": tmp_path})
    (audio_in,) = load_audio().load("song.wav")  # what core Load Audio gives (same samples)
    assert audio_in["waveform"].shape == (1, 2, round(0.6 * RATE)) and audio_in["sample_rate"] == RATE
    spec = audio_prompt(audio=audio_in)
    model = loader()
    frames, fps, seed, audio, _frames_8bit = HunyuanCustomSampler().sample(model, spec, **TINY)["result"]
    assert frames.shape == (9, 48, 64, 3) and fps == 25.0 and seed == 5
    assert audio["sample_rate"] == RATE and audio["waveform"].shape == (1, 2, round(9 / 25 * RATE))
    saved = HunyuanCustomSaveVideo().save(frames, fps, "HunyuanCustom/singing", 19, audio=audio)
    path = Path(saved["result"][0])
    info = video_io.video_info(path)
    assert (info["frames"], info["width"], info["height"], info["fps"]) == (9, 64, 48, 25.0)
    track = load_audio_file(path)  # the mp4's AAC stream
    assert track.channels == 2 and track.sample_rate == RATE
    assert abs(track.seconds - 0.36) < 0.05, track.seconds
    assert np.abs(track.samples).max() > 0.1  # the song, not silence


def test_the_audio_changes_the_video_and_strength_zero_removes_it(comfy_dirs):
    model = loader()
    runs = {}
    for name, spec in (("song", audio_prompt(0.6, 0.8)), ("muted", audio_prompt(0.6, 0.0)),
                       ("other", audio_prompt(0.2, 0.8))):
        runs[name] = HunyuanCustomSampler().sample(model, spec, **TINY)["result"][0]
    assert (runs["song"] - runs["other"]).abs().max() > 1e-3
    assert (runs["song"] - runs["muted"]).abs().max() > 1e-3


def test_the_status_line_says_when_the_audio_is_shorter_or_longer(comfy_dirs):
    job = Job.from_params(audio_prompt(seconds=3.1), {"size": "64*48", "num_frames": 129, "seed": 1})
    assert job.planned()[1] == ["3.1 s of audio for 5.2 s of video: the last 52 frames are silent"]
    job = Job.from_params(audio_prompt(seconds=7.4), {"size": "64*48", "num_frames": 129, "seed": 1})
    assert job.planned()[1] == ["7.4 s of audio for 5.2 s of video: cut at 5.2 s"]
    job = Job.from_params(audio_prompt(seconds=5.16), {"size": "64*48", "num_frames": 129, "seed": 1})
    assert job.planned()[1] == []


def test_a_short_track_is_padded_with_silence_to_the_video(comfy_dirs):
    condition = audio_prompt(seconds=0.2).condition("audio")
    out = condition.output_audio(9, 25.0)
    waveform = out["waveform"][0]
    assert waveform.shape == (2, round(0.36 * RATE))
    assert torch.equal(waveform[:, round(0.2 * RATE):], torch.zeros(2, waveform.shape[1] - round(0.2 * RATE)))


# ------------------------------------------------------------------ refusals before anything loads


def _refused(model, spec, match: str) -> str:
    with pytest.raises(Exception) as err:
        HunyuanCustomSampler().sample(model, spec, **TINY)
    assert match in str(err.value), str(err.value)
    assert model._transformer is None and model._vae is None  # nothing was loaded
    return str(err.value)


def test_audio_checkpoint_without_whisper(comfy_dirs):
    message = _refused(loader(audio_encoder="none"), audio_prompt(), "needs Whisper")
    assert "audio_encoder" in message and "whisper-tiny" in message


def test_a_wrong_file_given_as_whisper_is_named(comfy_dirs, models):
    vae_weights = models.vae / "pytorch_model.pt"
    message = _refused(loader(audio_encoder=str(vae_weights)), audio_prompt(), "not a Whisper model")
    # named relative to the model folders: the message goes to whoever queued the prompt
    assert "models/vae/hyvae_v1_0801/pytorch_model.pt" in message and str(vae_weights) not in message
    _refused(loader(audio_encoder=str(models.text_encoder_2)), audio_prompt(), "not Whisper")


def test_a_whisper_of_another_size_is_refused_from_the_headers(comfy_dirs, models, tmp_path):
    """A Whisper with fewer layers (as whisper-base has more than tiny, with wider states) gives the
    audio projection inputs of another width: refused before anything loads, naming both."""
    import json

    from safetensors.torch import load_file, save_file

    other = tmp_path / "whisper-other"
    shutil.copytree(models.audio_encoder, other)
    config = json.loads((other / "config.json").read_text())
    config["encoder_layers"] = 2  # 3 states instead of 5: the windows no longer fit the projection
    (other / "config.json").write_text(json.dumps(config))
    weights = load_file(other / "model.safetensors")
    save_file({k: v for k, v in weights.items() if not any(f"layers.{i}." in k for i in (2, 3))},
              other / "model.safetensors")
    message = _refused(loader(audio_encoder=str(other)), audio_prompt(), "does not fit the audio checkpoint")
    assert str(other) in message and "2 layers" in message and "whisper-tiny" in message


def test_a_whisper_of_the_same_depth_but_another_width_is_refused_from_the_headers(comfy_dirs, models, ref_png,
                                                                                   tmp_path):
    """Half the width, the same 4 layers: its windows divide the projection's input width evenly, so a
    divisibility test let it through and the run failed after every model had loaded. The checkpoint
    takes exactly its Whisper's states and width."""
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

    tiny = WhisperConfig.from_pretrained(models.audio_encoder)
    narrow = tmp_path / "whisper-narrow"
    config = WhisperConfig(d_model=tiny.d_model // 2, encoder_layers=tiny.encoder_layers, encoder_attention_heads=1,
                           encoder_ffn_dim=8, decoder_layers=1, decoder_attention_heads=1, decoder_ffn_dim=8,
                           vocab_size=80, pad_token_id=1, bos_token_id=2, eos_token_id=3, decoder_start_token_id=2,
                           max_target_positions=16, num_mel_bins=80, max_source_positions=1500)
    WhisperForConditionalGeneration(config).save_pretrained(narrow)
    WhisperFeatureExtractor().save_pretrained(narrow)
    message = _refused(loader(audio_encoder=str(narrow)), audio_prompt(), "does not fit the audio checkpoint")
    assert f"4 layers of {tiny.d_model // 2} channels" in message and f"4 layers of {tiny.d_model} channels" in message
    assert message.startswith("audio_encoder: ") and "whisper-tiny" in message and "audio windows must be" not in message
    line = error_line(_cli(models, ref_png, tmp_path / "x.mp4", "--audio", write_wav(tmp_path / "v.wav", song(0.5)),
                           "--audio-encoder", narrow))
    assert line.startswith(f"error: --audio-encoder: the Whisper {narrow} (4 layers"), line


def test_audio_checkpoint_without_an_audio_node(comfy_dirs):
    (spec,) = HunyuanCustomPrompt().build("A man sings.", "", "man", reference())
    _refused(loader(), spec, "HunyuanCustom Audio")


def test_audio_node_with_a_non_audio_checkpoint(comfy_dirs):
    _refused(loader(REF2V_DIT), audio_prompt(), "the audio checkpoint")


def test_audio_node_on_the_wavespeed_node_is_refused_before_any_request(comfy_dirs, monkeypatch):
    monkeypatch.setenv("WAVESPEED_BASE_URL", "http://127.0.0.1:9")  # nothing listens: a request would fail otherwise
    monkeypatch.setenv("WAVESPEED_API_KEY", "k")
    with pytest.raises(ValueError, match="no audio input"):
        HunyuanCustomWaveSpeed().generate(audio_prompt(), "1280*720", 7.5, 13.0, 1, True)


@pytest.mark.parametrize("audio, named", [
    ({"waveform": torch.zeros(1, 2, 0), "sample_rate": RATE}, "no audio samples"),
    ({"waveform": torch.zeros(1, 2, 4410), "sample_rate": RATE}, "silent"),
    ({"waveform": torch.ones(1, 1, 4410) * 0.2, "sample_rate": 0}, "sample_rate = 0"),
    ({"waveform": torch.ones(1, 4410, 2) * 0.2, "sample_rate": RATE}, "[batch, samples, channels]"),
    ({"waveform": torch.ones(2, 4410) * 0.2, "sample_rate": RATE}, "shape [2, 4410]"),
    ({"waveform": torch.ones(4, 2, 4410) * 0.2, "sample_rate": RATE}, "batch of 4 clips"),
])
def test_bad_audio_is_refused_at_the_audio_node(audio, named):
    (spec,) = HunyuanCustomPrompt().build("A man sings.", "", "man", reference())
    with pytest.raises(ConditionError) as err:
        HunyuanCustomAudio().attach(spec, audio, 0.8)
    assert named in str(err.value) and str(err.value).startswith("audio:")


def test_audio_strength_outside_0_to_1_is_refused():
    clip = {"waveform": torch.ones(1, 1, 1600) * 0.2, "sample_rate": 16000}
    with pytest.raises(ConditionError, match="audio_strength = 1.5"):
        AudioCondition.from_comfy(clip, 1.5)


def test_node_specs():
    spec = HunyuanCustomAudio.INPUT_TYPES()["required"]
    assert list(spec) == ["prompt", "audio", "audio_strength"]
    kind, opts = spec["audio_strength"]
    assert kind == "FLOAT" and (opts["default"], opts["min"], opts["max"], opts["step"]) == (0.8, 0.0, 1.0, 0.05)
    assert HunyuanCustomAudio.RETURN_TYPES == ("HYC_PROMPT",)
    optional = list(HunyuanCustomModelLoader.INPUT_TYPES()["optional"])
    assert optional[-2:] == ["audio_encoder", "gpus"]  # last: saved workflows keep their widget order


# ------------------------------------------------------------------ CLI


def _cli(models, ref_png, out, *extra):
    return run_cli(local_argv(models, ref_png, out, "--size", "64*48", "--num-frames", "9", "--steps", "2", "--seed",
                              "3", *extra, transformer=models.audio_transformer, prompt="a man sings", subject="man"))


def test_cli_writes_an_mp4_with_the_audio_cut_to_the_video(models, ref_png, tmp_path):
    wav = write_wav(tmp_path / "voice.wav", song(1.0, rate=48000, channels=1), rate=48000)
    out = tmp_path / "singing.mp4"
    run = _cli(models, ref_png, out, "--audio", wav, "--audio-encoder", models.audio_encoder)
    assert run.returncode == 0, run.stderr
    assert "1.0 s of audio for 0.4 s of video: cut at 0.4 s" in run.stderr
    info = video_io.video_info(out)
    assert (info["frames"], info["width"], info["height"]) == (9, 64, 48)
    track = load_audio_file(out)
    assert track.sample_rate == 48000 and track.channels == 1 and abs(track.seconds - 0.36) < 0.05


@pytest.mark.parametrize("extra, message", [
    (("--audio", "{wav}"), "--audio needs --audio-encoder"),
    (("--audio", "{tmp}/missing.wav", "--audio-encoder", "{whisper}"), "missing.wav: no such file"),
    (("--audio", "{silent}", "--audio-encoder", "{whisper}"), "is silent"),
    (("--audio", "{wav}", "--audio-strength", "1.5", "--audio-encoder", "{whisper}"), "audio_strength = 1.5"),
    (("--audio", "{wav}", "--audio-encoder", "{vae}"), "not a Whisper model"),
    (("--audio-strength", "0.5"), "--audio-strength needs --audio"),
    (("--audio", "{wav}", "--audio-encoder", "{whisper}", "--video", "{wav}", "--mask", "{wav}"),
     "--audio cannot be combined with --video/--mask"),
])
def test_cli_bad_audio_input_one_line_no_output(models, ref_png, tmp_path, extra, message):
    paths = {"wav": write_wav(tmp_path / "voice.wav", song(0.5)), "tmp": tmp_path,
             "silent": write_wav(tmp_path / "quiet.wav", np.zeros((1, 4000), np.float32)),
             "whisper": models.audio_encoder, "vae": models.vae / "pytorch_model.pt"}
    out = tmp_path / "bad.mp4"
    line = error_line(_cli(models, ref_png, out, *(a.format(**paths) for a in extra)))
    assert message in line, line
    assert not out.exists()
