"""Makes the pack's example song and example videos (assets/examples/), so that the singing-avatar
and replace-the-subject templates open without a "missing media" mark and run once the models are
in place.

Everything is our own, made here from numbers (no recordings, no footage):
- `sung_melody.mp3`: 5.2 s of a synthetic voice singing "la-la" on a short melody of ours (additive
  synthesis: harmonics of a vibrato pitch shaped by vowel formants), enough for the 129 frames (5.16 s)
  the template makes.
- `park_walk.mp4`: 129 frames at 25 fps, 640*360: the example man (tools/draw_example_subjects.py)
  strolls along a path in a drawn park, with birdsong and a little wind as its sound.
- `park_walk_mask.mp4`: the same 129 frames, white where the man is (grown by a few pixels), black
  elsewhere: what the editing mode replaces.

    python tools/make_example_media.py      # rewrites the three files in assets/examples/

The frame and sample generators are importable (tests compare the committed files with them).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import wave
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parent))
import draw_example_subjects  # noqa: E402  (the man who walks in the video)

OUT = Path(__file__).resolve().parents[1] / "assets" / "examples"
SONG, VIDEO, MASK = "sung_melody.mp3", "park_walk.mp4", "park_walk_mask.mp4"

SONG_RATE, SONG_SECONDS = 24000, 5.2
VIDEO_SIZE, VIDEO_FPS, VIDEO_FRAMES = (640, 360), 25, 129
MASK_GROW = 4  # pixels the mask reaches beyond the man, so his anti-aliased edge is inside it

# (MIDI note, beats) of the melody at 120 bpm; 0 is a rest. Our own little tune in D major.
MELODY = [(62, 1), (66, 1), (69, 1.5), (67, 0.5), (66, 1), (64, 1), (62, 0.5), (64, 0.5), (66, 1), (0, 0.4), (62, 1.5)]
VOWELS = {  # formant (Hz, bandwidth Hz, gain) of a sung "a" and "i"
    "a": ((800, 80, 1.0), (1150, 90, 0.5), (2900, 120, 0.25)),
    "i": ((300, 60, 1.0), (2300, 100, 0.35), (3000, 120, 0.3)),
}


# ------------------------------------------------------------------ the song

def _formant_gain(freq: np.ndarray, formants) -> np.ndarray:
    gain = np.zeros_like(freq)
    for centre, width, level in formants:
        gain += level / (1.0 + ((freq - centre) / width) ** 2)
    return gain


def song_samples(rate: int = SONG_RATE, seconds: float = SONG_SECONDS) -> np.ndarray:
    """The sung melody, float32 mono in [-1, 1]."""
    n = int(round(rate * seconds))
    t = np.arange(n) / rate
    beat = 60.0 / 120.0
    f0 = np.full(n, 1.0)
    loud = np.zeros(n)
    vowel_mix = np.zeros(n)  # 0 = "a", 1 = "i"
    start = 0.1  # a short breath before the first note
    for index, (note, beats) in enumerate(MELODY):
        end = start + beats * beat
        inside = (t >= start) & (t < end)
        if note:
            f0[inside] = 440.0 * 2 ** ((note - 69) / 12)
            local = t[inside] - start
            length = end - start
            loud[inside] = np.minimum(1.0, local / 0.04) * np.minimum(1.0, (length - local) / 0.08).clip(0)
            vowel_mix[inside] = index % 2
        start = end
    # glide between notes (a singer does not jump) and a gentle vibrato that starts after the onset
    kernel = np.hanning(int(0.06 * rate))
    voiced = f0 > 1.0
    f0 = np.where(voiced, f0, np.interp(t, t[voiced], f0[voiced]))
    f0 = np.convolve(f0, kernel / kernel.sum(), mode="same")
    f0 *= 2 ** (0.35 / 12 * np.sin(2 * np.pi * 5.5 * t) * np.clip((t % 1.0) * 2, 0, 1))
    vowel_mix = np.convolve(vowel_mix, np.ones(int(0.05 * rate)) / int(0.05 * rate), mode="same")
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voice = np.zeros(n)
    for k in range(1, 40):
        freq = k * f0
        audible = freq < rate / 2 - 500
        weight = ((1 - vowel_mix) * _formant_gain(freq, VOWELS["a"]) + vowel_mix * _formant_gain(freq, VOWELS["i"]))
        voice += np.where(audible, weight / k ** 0.7, 0.0) * np.sin(k * phase)
    rng = np.random.default_rng(7)
    breath = np.convolve(rng.standard_normal(n), np.ones(6) / 6, mode="same") * 0.02
    out = (voice * loud + breath * loud) / np.abs(voice * loud).max() * 0.8
    return out.astype(np.float32)


# ------------------------------------------------------------------ the video

def _park(size: tuple[int, int]) -> Image.Image:
    """The still background: sky, hills, trees, lawn and a stone path across it."""
    width, height = size
    sky = np.linspace([150, 196, 236], [214, 232, 246], int(height * 0.55)).astype(np.uint8)
    image = Image.new("RGB", size, (112, 168, 84))
    image.paste(Image.fromarray(np.repeat(sky[:, None, :], width, axis=1)), (0, 0))
    draw = ImageDraw.Draw(image)
    draw.ellipse([-120, 150, 330, 290], fill=(126, 170, 110))
    draw.ellipse([260, 160, 780, 300], fill=(116, 160, 100))
    draw.rectangle([0, 198, width, height], fill=(112, 168, 84))
    for x, y, r in ((70, 150, 46), (560, 140, 58), (470, 168, 34)):  # trees
        draw.rectangle([x - 7, y + r - 10, x + 7, y + r + 40], fill=(104, 76, 52))
        draw.ellipse([x - r, y - r, x + r, y + r], fill=(64, 120, 60))
    draw.polygon([(0, 300), (width, 276), (width, 330), (0, 356)], fill=(186, 176, 160))  # the path
    rng = np.random.default_rng(3)
    for _ in range(90):  # its stones
        x, y = rng.uniform(0, width), rng.uniform(0, 1)
        top = 300 - 24 * x / width
        y = top + 6 + y * 40
        draw.ellipse([x - 9, y - 4, x + 9, y + 4], fill=(166, 156, 142))
    return image.filter(ImageFilter.SMOOTH)


def walk_frames(frames: int = VIDEO_FRAMES, size: tuple[int, int] = VIDEO_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """(source frames, mask frames), uint8 [F, H, W, 3]: the man strolls from left to right along
    the path, bobbing with his steps; the mask is white where he is, grown by MASK_GROW pixels."""
    background = _park(size)
    man = draw_example_subjects.draw_man()
    man = man.resize((man.width * 250 // man.height, 250), Image.LANCZOS)
    alpha = man.getchannel("A")
    grown = alpha.point(lambda a: 255 if a > 16 else 0).filter(ImageFilter.MaxFilter(2 * MASK_GROW + 1))
    source = np.empty((frames, size[1], size[0], 3), dtype=np.uint8)
    mask = np.zeros_like(source)
    for i in range(frames):
        progress = i / max(frames - 1, 1)
        x = int(round(60 + progress * 360))
        y = int(round(78 - 5 * abs(np.sin(np.pi * progress * 9))))  # one bob per step
        frame = background.copy()
        frame.paste(man, (x, y), man)
        source[i] = np.asarray(frame)
        plane = Image.new("L", size, 0)
        plane.paste(grown, (x, y), grown)
        mask[i] = np.asarray(plane)[..., None]
    return source, mask


def park_sound(rate: int = SONG_RATE, seconds: float = VIDEO_FRAMES / VIDEO_FPS) -> np.ndarray:
    """Soft wind and a few bird calls, float32 mono: the source video's own sound, which the
    editing template carries into the edited video."""
    rng = np.random.default_rng(11)
    n = int(round(rate * seconds))
    t = np.arange(n) / rate
    wind = np.convolve(rng.standard_normal(n), np.ones(48) / 48, mode="same") * 0.25
    wind *= 0.6 + 0.4 * np.sin(2 * np.pi * 0.3 * t)
    birds = np.zeros(n)
    for start in (0.1, 0.3, 1.9, 2.1, 2.3, 3.6, 4.4, 4.58):
        length = 0.12
        inside = (t >= start) & (t < start + length)
        local = t[inside] - start
        sweep = 3200 + 1800 * np.sin(np.pi * local / length)
        envelope = np.sin(np.pi * local / length) ** 2
        birds[inside] += 0.3 * envelope * np.sin(2 * np.pi * np.cumsum(sweep) / rate)
    return (wind + birds).astype(np.float32)


# ------------------------------------------------------------------ files

def _write_wav(path: Path, samples: np.ndarray, rate: int) -> None:
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())


def _ffmpeg(*args: str) -> None:
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-v", "error", "-y", *args], check=True)


def _write_video(path: Path, frames: np.ndarray, sound: Path | None) -> None:
    height, width = frames.shape[1:3]
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "frames.rgb"
        raw.write_bytes(frames.tobytes())
        audio = ["-i", str(sound), "-c:a", "aac", "-b:a", "40k"] if sound else []
        _ffmpeg("-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(VIDEO_FPS),
                "-i", str(raw), *audio, "-c:v", "libx264", "-preset", "veryslow", "-crf", "26",
                "-pix_fmt", "yuv420p", "-movflags", "+faststart", "-map_metadata", "-1", "-shortest", str(path))


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        song_wav, park_wav = Path(tmp) / "song.wav", Path(tmp) / "park.wav"
        _write_wav(song_wav, song_samples(), SONG_RATE)
        _ffmpeg("-i", str(song_wav), "-c:a", "libmp3lame", "-b:a", "64k", "-map_metadata", "-1", str(OUT / SONG))
        _write_wav(park_wav, park_sound(), SONG_RATE)
        source, mask = walk_frames()
        _write_video(OUT / VIDEO, source, park_wav)
        _write_video(OUT / MASK, mask, None)
    for name in (SONG, VIDEO, MASK):
        print(f"wrote assets/examples/{name} ({(OUT / name).stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
