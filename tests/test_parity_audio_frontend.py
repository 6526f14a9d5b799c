"""Audio front end parity with upstream (fixtures: audio_frontend/): file decoding, 16 kHz mono
waveform (mono mix, soxr HQ, length), Whisper input features, stacked encoder states from the
fixture's Whisper folder, and the per-frame windows with their zero tail or truncation.

Cases are discovered from the tensors present (`<case>.input.waveform`), the Whisper folder from
its config.json, and WAV files by their case name, so another fixture set with other lengths,
rates and sizes runs unchanged.
"""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from conftest import reference_root
from _transformer_parity import mismatch
from hunyuan_custom.pipelines.audio_encoders.encode import audio_windows, input_features, stacked_states
from hunyuan_custom.pipelines.audio_encoders.whisper import WhisperFilesError, inspect_whisper, load_whisper
from hunyuan_custom.pipelines.audio_encoders.windows import frames_with_audio, window_whisper_states
from hunyuan_custom.pipelines.media.audio_io import checked_clip, load_audio_file, whisper_waveform

WAVEFORM_ATOL = 1e-6  # soxr HQ itself: same algorithm, float rounding only
FEATURES_ATOL = 1e-5  # the fixture README's tolerance for input_features
STATES_ATOL = 1e-4  # Whisper hidden states / windows


def _folder():
    return reference_root() / "audio_frontend"


def _cases() -> list[str]:
    path = _folder() / "audio_frontend.safetensors"
    if not path.is_file():
        return []
    from safetensors import safe_open

    with safe_open(str(path), "pt") as handle:
        return sorted(k[: -len(".input.waveform")] for k in handle.keys() if k.endswith(".input.waveform"))


@pytest.fixture(scope="module")
def frontend(reference_dir):
    folder = reference_dir / "audio_frontend"
    tensors = {k: v.clone() for k, v in load_file(str(folder / "audio_frontend.safetensors")).items()}
    whisper_dirs = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        try:
            whisper_dirs.append(inspect_whisper(sub))
        except WhisperFilesError:
            continue
    assert len(whisper_dirs) == 1, f"{folder} should hold one Whisper folder, found {[w.path for w in whisper_dirs]}"
    return folder, tensors, load_whisper(whisper_dirs[0])


def _clip(tensors, case):
    return checked_clip(tensors[f"{case}.input.waveform"].numpy(), int(tensors[f"{case}.input.sample_rate"]), case)


def test_parity_fixture_has_cases():
    assert _cases(), f"{_folder()} has no <case>.input.waveform tensors"


@pytest.mark.parametrize("case", _cases())
def test_parity_audio_file_decodes_to_the_recorded_samples(frontend, case):
    folder, tensors, _ = frontend
    files = [p for p in folder.iterdir() if p.is_file() and p.stem == case and p.suffix != ".json"]
    if not files:
        pytest.skip(f"case {case} has no audio file in the fixture set (only its tensors)")
    clip = load_audio_file(files[0])
    assert clip.sample_rate == int(tensors[f"{case}.input.sample_rate"])
    assert torch.equal(torch.from_numpy(clip.samples), tensors[f"{case}.input.waveform"])


@pytest.mark.parametrize("case", _cases())
def test_parity_waveform_16k_mono(frontend, case):
    _, tensors, _ = frontend
    ours = torch.from_numpy(whisper_waveform(_clip(tensors, case)))
    problem = mismatch(ours, tensors[f"{case}.waveform_16k"], atol=WAVEFORM_ATOL, rtol=0)
    assert problem is None, problem


@pytest.mark.parametrize("case", _cases())
def test_parity_input_features(frontend, case):
    _, tensors, whisper = frontend
    expected = tensors[f"{case}.input_features"]
    from_recorded = input_features(tensors[f"{case}.waveform_16k"].numpy(), whisper.feature_extractor)
    from_ours = input_features(whisper_waveform(_clip(tensors, case)), whisper.feature_extractor)
    problems = {name: mismatch(x, expected, atol=FEATURES_ATOL, rtol=0)
                for name, x in (("from the recorded 16 kHz waveform", from_recorded), ("end to end", from_ours))}
    assert not any(problems.values()), problems


@pytest.mark.parametrize("case", _cases())
def test_parity_stacked_hidden_states(frontend, case):
    _, tensors, whisper = frontend
    ours = stacked_states(whisper, tensors[f"{case}.input_features"])
    assert ours.shape[2] == whisper.source.states
    problem = mismatch(ours, tensors[f"{case}.hidden_states_stacked"], atol=STATES_ATOL, rtol=0)
    assert problem is None, problem


@pytest.mark.parametrize("case", _cases())
def test_parity_windows_with_zero_tail_or_truncation(frontend, case):
    _, tensors, whisper = frontend
    expected = tensors[f"{case}.audio_prompts"]
    num_frames = expected.shape[1]
    samples_16k = tensors[f"{case}.waveform_16k"].shape[-1]
    n = frames_with_audio(num_frames, samples_16k)
    assert [samples_16k // 640, n] == tensors[f"{case}.n_audio_frames"].tolist()

    from_states = window_whisper_states(tensors[f"{case}.hidden_states_stacked"], num_frames, n)
    end_to_end = audio_windows(whisper_waveform(_clip(tensors, case)), whisper, num_frames)
    problems = {"from the recorded states": mismatch(from_states, expected, atol=1e-6, rtol=0),
                "end to end": mismatch(end_to_end, expected, atol=STATES_ATOL, rtol=0)}
    assert not any(problems.values()), problems
    # Frames after the audio's end are EXACT zeros (not windows of Whisper's padding).
    for windows in (from_states, end_to_end):
        assert torch.equal(windows[:, n:], torch.zeros_like(windows[:, n:]))
        assert bool((windows[:, :n].abs().sum(dim=(2, 3, 4)) > 0).all())
