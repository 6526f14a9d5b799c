"""Audio front end beyond the upstream fixture: file decoding, AUDIO checks (each message names
the value), the 16 kHz rule, chunks beyond 30 s, the zero tail, and Whisper's files."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from _wav_files import write_pcm16_wav
from hunyuan_custom.pipelines.audio_encoders.encode import input_features, stacked_states
from hunyuan_custom.pipelines.audio_encoders.whisper import WhisperFilesError, inspect_whisper, load_whisper
from hunyuan_custom.pipelines.audio_encoders.windows import frames_with_audio, window_whisper_states
from hunyuan_custom.pipelines.media.audio_io import (AudioInputError, checked_clip, clip_from_comfy, load_audio_file,
                                                     whisper_waveform)


def _tone(rate: int, seconds: float, channels: int = 1, freq: float = 440.0) -> np.ndarray:
    t = np.arange(round(rate * seconds)) / rate
    return np.stack([0.5 * np.sin(2 * np.pi * freq * (c + 1) * t) for c in range(channels)]).astype(np.float32)


# ------------------------------------------------------------------ files


def test_wav_file_keeps_its_rate_and_channels(tmp_path):
    samples = _tone(48000, 0.25, channels=2)
    path = tmp_path / "song.wav"
    write_pcm16_wav(path, samples, 48000)
    clip = load_audio_file(path)
    assert (clip.sample_rate, clip.channels, clip.num_samples) == (48000, 2, samples.shape[1])
    expected = (np.clip(samples, -1, 1) * 32767).round() / 32768  # int16 -> float as libsndfile does it
    np.testing.assert_array_equal(clip.samples, expected.astype(np.float32))


@pytest.mark.parametrize("content, message", [(None, "no such file"), (b"not audio at all", "cannot be decoded")])
def test_bad_files_name_the_file(tmp_path, content, message):
    path = tmp_path / "voice.wav"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(AudioInputError) as err:
        load_audio_file(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_a_silent_file_is_refused(tmp_path):
    path = tmp_path / "quiet.wav"
    write_pcm16_wav(path, np.zeros((1, 1600), np.float32), 16000)
    with pytest.raises(AudioInputError, match="silent"):
        load_audio_file(path)


# ------------------------------------------------------------------ ComfyUI AUDIO


def test_comfy_audio_is_read_as_is():
    waveform = torch.from_numpy(_tone(44100, 0.1, channels=2)).unsqueeze(0)
    clip = clip_from_comfy({"waveform": waveform, "sample_rate": 44100})
    assert clip.sample_rate == 44100 and np.array_equal(clip.samples, waveform[0].numpy())
    back = clip.to_comfy()
    assert torch.equal(back["waveform"], waveform) and back["sample_rate"] == 44100


@pytest.mark.parametrize("audio, named", [
    ({"waveform": torch.zeros(1, 2, 0), "sample_rate": 44100}, "no audio samples"),
    ({"waveform": torch.zeros(1, 2, 4410), "sample_rate": 44100}, "silent (4410 samples"),
    ({"waveform": torch.ones(1, 1, 100) * 0.1, "sample_rate": 0}, "sample_rate = 0"),
    ({"waveform": torch.ones(1, 1, 100) * 0.1, "sample_rate": 22050.5}, "sample_rate = 22050.5"),
    ({"waveform": torch.ones(2, 4410) * 0.1, "sample_rate": 44100}, "shape [2, 4410]"),  # no batch axis
    ({"waveform": torch.ones(1, 4410, 2) * 0.1, "sample_rate": 44100}, "[batch, samples, channels]"),
    ({"waveform": torch.ones(3, 2, 4410) * 0.1, "sample_rate": 44100}, "batch of 3 clips"),
    ({"waveform": torch.full((1, 1, 10), float("nan")), "sample_rate": 16000}, "NaN"),
    ({"waveform": [0.1, 0.2], "sample_rate": 16000}, "waveform is a list"),
    ("song.wav", "expected ComfyUI AUDIO"),
])
def test_bad_comfy_audio_names_the_value(audio, named):
    with pytest.raises(AudioInputError) as err:
        clip_from_comfy(audio, what="audio")
    assert named in str(err.value) and str(err.value).startswith("audio:")


# ------------------------------------------------------------------ 16 kHz, fitting


def test_16k_mono_is_not_resampled_and_stereo_is_mixed_first():
    mono = _tone(16000, 0.3)
    assert np.array_equal(whisper_waveform(checked_clip(mono, 16000, "x")), mono[0])
    stereo = _tone(16000, 0.3, channels=2)
    assert np.array_equal(whisper_waveform(checked_clip(stereo, 16000, "x")), stereo.mean(axis=0))


@pytest.mark.parametrize("rate, samples", [(44100, 29000), (48000, 12345), (22050, 1001), (8000, 999)])
def test_resampled_length_is_ceil_n_times_16000_over_rate(rate, samples):
    clip = checked_clip(_tone(rate, samples / rate), rate, "x")
    assert clip.num_samples == samples
    assert len(whisper_waveform(clip)) == math.ceil(samples * 16000 / rate)


def test_fitted_cuts_or_pads_with_silence():
    clip = checked_clip(_tone(1000, 2.0, channels=2), 1000, "x")
    cut = clip.fitted(1.5)
    assert cut.num_samples == 1500 and np.array_equal(cut.samples, clip.samples[:, :1500])
    padded = clip.fitted(2.5)
    assert padded.num_samples == 2500 and not padded.samples[:, 2000:].any()


# ------------------------------------------------------------------ windows, chunks


def test_frames_after_the_audio_end_are_exact_zeros():
    states = torch.randn(1, 40, 5, 3) + 5.0
    assert frames_with_audio(13, 7 * 640 + 639) == 7 and frames_with_audio(13, 10**6) == 13
    windows = window_whisper_states(states, 13, audio_frames=7)
    assert torch.equal(windows[:, 7:], torch.zeros(1, 6, 10, 5, 3))
    assert torch.equal(windows[:, :7], window_whisper_states(states, 13)[:, :7])


@pytest.fixture(scope="module")
def tiny_whisper(reference_dir):
    return load_whisper(reference_dir / "audio_frontend" / "whisper_tiny_random")


def test_clips_over_30_s_give_one_feature_chunk_per_30_s_and_only_the_first_is_encoded(tiny_whisper):
    extractor = tiny_whisper.feature_extractor
    rng = np.random.default_rng(0)
    clip = (rng.standard_normal(int(16000 * 30.5)) * 0.1).astype(np.float32)
    features = input_features(clip, extractor)
    assert features.shape == (1, 80, 6000)
    alone = extractor(clip[:480000], sampling_rate=16000, return_tensors="pt").input_features
    assert torch.equal(features[:, :, :3000], alone)
    assert stacked_states(tiny_whisper, features).shape == (1, 1500, 5, 8)


def test_later_30_s_chunks_are_encoded_on_their_own_and_follow_the_first(tiny_whisper):
    """Beyond 30 s (where upstream and Avatar stop hearing): chunk k's 1500 rows, encoded alone, are
    rows 1500k.. of the states; the first chunk's rows stay upstream's."""
    from hunyuan_custom.pipelines.audio_encoders.encode import audio_windows, chunks_needed

    rng = np.random.default_rng(1)
    clip = (rng.standard_normal(int(16000 * 61)) * 0.1).astype(np.float32)
    features = input_features(clip, tiny_whisper.feature_extractor)
    assert features.shape[-1] == 9000
    both = stacked_states(tiny_whisper, features, chunks=2)
    assert both.shape == (1, 3000, 5, 8)
    assert torch.equal(both[:, :1500], stacked_states(tiny_whisper, features))
    assert torch.equal(both[:, 1500:], stacked_states(tiny_whisper, features[:, :, 3000:6000]))
    assert chunks_needed(129) == 1 and chunks_needed(748) == 1 and chunks_needed(749) == 2
    assert chunks_needed(1501) == 3
    windows = audio_windows(clip, tiny_whisper, 1501)  # 60 s of video hears 60 s of audio
    assert windows.shape[1] == 1501 and windows[:, 760:1490].abs().amax(dim=(0, 2, 3, 4)).min() > 0
    states = stacked_states(tiny_whisper, features, chunks=3)
    assert torch.equal(windows[0, 1000, 0], states[0, 2 * 1000 - 4])  # frame f starts at row 2f - 4


# ------------------------------------------------------------------ Whisper files


def _small_whisper(folder):
    """A random Whisper with released-size heads (64 wide), saved as upstream's HF folder."""
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

    torch.manual_seed(0)
    config = WhisperConfig(d_model=64, encoder_layers=2, encoder_attention_heads=1, encoder_ffn_dim=32,
                           decoder_layers=1, decoder_attention_heads=1, decoder_ffn_dim=32, vocab_size=80,
                           pad_token_id=1, bos_token_id=2, eos_token_id=3, decoder_start_token_id=2,
                           max_target_positions=16, num_mel_bins=80, max_source_positions=1500)
    model = WhisperForConditionalGeneration(config).eval()
    model.save_pretrained(folder)
    WhisperFeatureExtractor().save_pretrained(folder)
    return model


def test_folder_and_single_file_of_the_same_weights_give_the_same_states(tmp_path):
    model = _small_whisper(tmp_path / "whisper-tiny")
    single = tmp_path / "audio_encoders" / "renamed.safetensors"
    single.parent.mkdir()
    save_file({k: v.contiguous() for k, v in model.state_dict().items() if k != "proj_out.weight"}, str(single))
    from_folder, from_file = load_whisper(tmp_path / "whisper-tiny"), load_whisper(single)
    assert from_file.source.config["encoder_attention_heads"] == 1 and from_file.source.states == 3
    features = torch.randn(1, 80, 3000, generator=torch.Generator().manual_seed(1))
    a, b = stacked_states(from_folder, features), stacked_states(from_file, features)
    assert a.shape == (1, 1500, 3, 64) and torch.equal(a, b)
    with torch.no_grad():
        reference = model.model.encoder(features, output_hidden_states=True).hidden_states
    assert torch.equal(a, torch.stack(reference, dim=2))


def test_wrong_files_give_an_error_naming_them(tmp_path, reference_dir):
    not_whisper = reference_dir / "audio" / "transformer_audio_weights.safetensors"
    with pytest.raises(WhisperFilesError) as err:
        inspect_whisper(not_whisper)
    assert str(not_whisper) in str(err.value) and "not a Whisper" in str(err.value)

    clip_folder = tmp_path / "clip"
    clip_folder.mkdir()
    (clip_folder / "config.json").write_text(json.dumps({"model_type": "clip"}))
    with pytest.raises(WhisperFilesError, match="'clip' model"):
        inspect_whisper(clip_folder)

    empty_whisper = tmp_path / "whisper-tiny"
    empty_whisper.mkdir()
    (empty_whisper / "config.json").write_text(json.dumps({"model_type": "whisper"}))
    with pytest.raises(WhisperFilesError, match="no file with its encoder weights"):
        inspect_whisper(empty_whisper)

    with pytest.raises(WhisperFilesError, match="does not exist"):
        inspect_whisper(tmp_path / "missing")
    text = tmp_path / "notes.safetensors"
    text.write_text("hello")
    with pytest.raises(WhisperFilesError) as err:
        inspect_whisper(text)
    assert str(text) in str(err.value)
