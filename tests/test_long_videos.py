"""Long videos end to end on CPU with the tiny models: a 12-second song gives a 12-second mp4 with its
sound, a 300-frame source gives a 297-frame edit (CLI, `--num-frames 0`), num_frames 0 on the
planning side, the refusal beyond the longest video, and the edit's per-window head latents."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from _cli_run import error_line, local_argv, run_cli, write_reference_png
from _tiny_model_set import build_tiny_model_set
from _wav_files import write_pcm16_wav
from hunyuan_custom.pipelines import schema
from hunyuan_custom.pipelines.conditioning.audio import AudioCondition
from hunyuan_custom.pipelines.conditioning.edit import head_latents
from hunyuan_custom.pipelines.conditioning.edit_pixels import prepare_edit_pixels, to_model_range
from hunyuan_custom.pipelines.media import video_io
from hunyuan_custom.pipelines.media.audio_io import load_audio_file

RATE = 16000


def _song(seconds: float, rate: int = RATE) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (0.4 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2)[None].astype(np.float32)


def _source(frames: int, h: int = 48, w: int = 64) -> torch.Tensor:
    t = torch.arange(frames, dtype=torch.float32).view(-1, 1, 1) / frames
    x = torch.linspace(0, 1, w).view(1, 1, -1)
    y = torch.linspace(0, 1, h).view(1, -1, 1)
    shape = (frames, h, w)
    return torch.stack([((x + t) % 1).expand(shape), y.expand(shape), ((x * y + 3 * t) % 1).expand(shape)], dim=-1)


def _mask(frames: int, h: int = 48, w: int = 64) -> torch.Tensor:
    out = torch.zeros(frames, h, w, 3)
    out[:, 12:36, 16:48] = 1.0
    return out


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return build_tiny_model_set(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def ref_png(tmp_path_factory):
    return write_reference_png(tmp_path_factory.mktemp("ref") / "ref.png")


# ------------------------------------------------------------------ num_frames 0 and the limit
def test_num_frames_0_follows_the_audio_as_avatar_trims_it():
    condition = AudioCondition(torch.from_numpy(_song(12.0)), RATE)
    assert condition.frames_of_track() == 301  # A = 300 frames -> A // 4 * 4 + 1
    assert AudioCondition(torch.from_numpy(_song(5.2)), RATE).frames_of_track() == 129  # 130 frames -> 129
    assert AudioCondition(torch.from_numpy(_song(0.1)), RATE).frames_of_track() == 1
    assert AudioCondition(torch.from_numpy(_song(75.0)), RATE).frames_of_track() == schema.MAX_FRAMES


def test_num_frames_limits_and_0():
    assert schema.check_value("num_frames", 0) == 0
    assert schema.check_value("num_frames", 1501) == 1501
    with pytest.raises(schema.ParameterError, match="1505 is not valid: a number from 0 to 1501"):
        schema.check_value("num_frames", 1505)
    with pytest.raises(schema.ParameterError, match="4n\\+1"):
        schema.check_value("num_frames", 130)


# ------------------------------------------------------------------ the edit's head latents
def test_each_window_start_gets_its_frame_encoded_alone(models):
    from hunyuan_custom.pipelines.vae.loading import load_vae

    vae = load_vae(models.vae, dtype=torch.float32, device="cpu")
    pixels = prepare_edit_pixels(_source(21, 32, 32), _mask(21, 32, 32))

    def mean(video):  # the posterior mean: deterministic, enough to compare encodes
        return vae.encode(video).mean.float() * vae.scaling_factor

    with torch.no_grad():
        heads = head_latents(pixels, mean)
        assert heads.shape[:3] == (1, 32, 6)
        whole = mean(pixels.bg_for_vae())
        assert torch.allclose(heads[:, :16, 0], mean(pixels.bg_for_vae()[:, :, :1])[:, :, 0], atol=1e-5)
        for s in (2, 5):
            alone = mean(pixels.bg_for_vae()[:, :, 4 * s:4 * s + 1])
            assert torch.allclose(heads[:, :16, s:s + 1], alone, atol=1e-5)
            # A window encoded on its own: its first latent is nearer the head than the long encode's
            # latent s (which stands for 4 frames); not equal: the VAE's GroupNorm and mid-block
            # attention see every frame of the clip (the docstring of conditioning/edit.py).
            window = mean(pixels.bg_for_vae()[:, :, 4 * s:])[:, :, 0]
            head_error = (heads[:, :16, s] - window).norm() / window.norm()
            slice_error = (whole[:, :, s] - window).norm() / window.norm()
            assert head_error < 0.8 * slice_error
    masks = to_model_range(pixels.mask[..., None].expand(*pixels.mask.shape, 3))
    with torch.no_grad():
        assert torch.allclose(heads[:, 16:, 1:2], mean(masks[:, :, 4:5]), atol=1e-5)


# ------------------------------------------------------------------ the CLI, end to end
def test_cli_a_12_second_song_gives_a_12_second_mp4_with_its_sound(models, ref_png, tmp_path):
    wav = write_pcm16_wav(tmp_path / "song.wav", _song(12.0, 44100), 44100)
    out = tmp_path / "song.mp4"
    run = run_cli(local_argv(models, ref_png, out, "--size", "32*32", "--num-frames", "0", "--steps", "2", "--seed", "3",
                             "--audio", wav, "--audio-encoder", models.audio_encoder,
                             transformer=models.audio_transformer, prompt="a man sings", subject="man"))
    assert run.returncode == 0, run.stderr
    assert "num_frames 0: 301 frames (12.04 s), as long as the 12.00 s of audio" in run.stderr
    assert "in 3 windows of 129 frames" in run.stderr
    info = video_io.video_info(out)
    assert (info["frames"], info["width"], info["height"]) == (301, 32, 32)
    track = load_audio_file(out)
    assert abs(track.seconds - 12.0) < 0.1


def test_cli_a_300_frame_source_gives_a_297_frame_edit(models, ref_png, tmp_path):
    source = video_io.write_video(tmp_path / "source.mp4", _source(300, 32, 32), 25)  # small: 300 frames run quickly
    mask = video_io.write_video(tmp_path / "mask.mp4", _mask(300, 32, 32), 25)
    out = tmp_path / "edit.mp4"
    run = run_cli(local_argv(models, ref_png, out, "--video", source, "--mask", mask, "--num-frames", "0",
                             "--steps", "2", "--seed", "3", transformer=models.editing_transformer))
    assert run.returncode == 0, run.stderr
    assert "num_frames 0: as long as the source; source 32x32, 300 frames -> 32x32, 297 frames" in run.stderr
    assert "in 3 windows" in run.stderr
    info = video_io.video_info(out)
    assert (info["frames"], info["width"], info["height"]) == (297, 32, 32)


def test_cli_num_frames_0_without_audio_or_video_and_beyond_the_limit(models, ref_png, tmp_path):
    out = tmp_path / "x.mp4"
    line = error_line(run_cli(local_argv(models, ref_png, out, "--num-frames", "0", "--size", "64*48")))
    assert "num_frames = 0 is not valid: 0 means as long as the audio or the source video" in line
    line = error_line(run_cli(local_argv(models, ref_png, out, "--num-frames", "1505", "--size", "64*48")))
    assert "1505" in line and "1501" in line
    assert not out.exists()


def test_the_decode_in_parts_is_the_whole_decode_bit_for_bit(models):
    from hunyuan_custom.pipelines.vae.loading import load_vae

    vae = load_vae(models.vae, dtype=torch.float32, device="cpu")
    latents = torch.randn(1, 16, 14, 4, 4, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        whole = vae.decode(latents, tiled=True)
        parts = list(vae.decode_parts(latents, tiled=True))
    assert len(parts) > 2  # the tiny VAE's temporal tile is 16 frames: several parts
    assert torch.equal(torch.cat(parts, dim=2), whole)


def test_a_uint8_video_encodes_as_its_float_copy_bit_for_bit(models):
    """The editing mode hands the VAE 8-bit frames (no float copy of a long source in RAM); each tile
    is mapped to [-1, 1] on its own, which gives the numbers of mapping the whole video first."""
    from hunyuan_custom.pipelines.vae.loading import load_vae

    vae = load_vae(models.vae, dtype=torch.float32, device="cpu")
    pixels = prepare_edit_pixels(_source(37, 48, 64), _mask(37, 48, 64))
    with torch.no_grad():
        for tiled in (True, False):
            assert torch.equal(vae.encode_moments(pixels.bg_uint8(), tiled=tiled),
                               vae.encode_moments(pixels.bg_for_vae(), tiled=tiled))
        assert torch.equal(vae.encode_moments(pixels.mask_uint8(), tiled=True),
                           vae.encode_moments(pixels.mask_for_vae(), tiled=True))


def test_the_stream_writes_parts_as_they_come_and_leaves_nothing_on_an_error(tmp_path):
    from hunyuan_custom.pipelines.media.video_stream import VideoStream

    parts = [(torch.rand(n, 32, 48, 3) * 255).to(torch.uint8) for n in (7, 16, 2)]
    out = tmp_path / "s.mp4"
    with VideoStream(out, 48, 32, 25) as stream:
        for part in parts:
            stream.write(part)
    assert video_io.video_info(out)["frames"] == 25
    with pytest.raises(video_io.VideoError, match="already exists"):
        VideoStream(out, 48, 32, 25)
    broken = tmp_path / "broken.mp4"
    with pytest.raises(InterruptedError):
        with VideoStream(broken, 48, 32, 25) as stream:
            stream.write(parts[0])
            raise InterruptedError("cancelled")  # a Cancel between decode parts
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.mp4"]
