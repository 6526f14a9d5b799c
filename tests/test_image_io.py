"""Reference-image loading: modes, EXIF, alpha -> white + MASK, caps, and URLs from a local server."""

from __future__ import annotations

import io
import struct
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from hunyuan_custom.pipelines.media import image_io
from hunyuan_custom.pipelines.media.image_io import ImageLoadError, decode_image, load_image, load_image_file, load_image_url


def _png(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", **kw)
    return buf.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height but whose pixel data is a few bytes."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def _check_shapes(loaded, h, w):
    assert loaded.image.shape == (1, h, w, 3) and loaded.image.dtype == torch.float32
    assert loaded.mask.shape == (1, h, w) and loaded.mask.dtype == torch.float32
    assert 0.0 <= loaded.image.min() and loaded.image.max() <= 1.0


# --------------------------------------------------------------------------------------- modes


def test_rgb_png_roundtrips_exactly_with_zero_mask(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    path = tmp_path / "rgb.png"
    Image.fromarray(pixels).save(path)
    loaded = load_image_file(path)
    _check_shapes(loaded, 5, 7)
    assert torch.equal(torch.round(loaded.image[0] * 255).to(torch.uint8), torch.from_numpy(pixels))
    assert not loaded.has_alpha and loaded.mask.abs().max() == 0


def test_rgba_is_composited_on_white_and_mask_is_one_minus_alpha():
    rgba = np.zeros((2, 3, 4), dtype=np.uint8)
    rgba[..., 0] = 255  # pure red everywhere ...
    rgba[..., 3] = [[255, 0, 128], [64, 255, 0]]  # ... with varying opacity
    loaded = decode_image(_png(Image.fromarray(rgba, "RGBA")), "rgba.png")
    _check_shapes(loaded, 2, 3)
    alpha = rgba[..., 3].astype(np.float64) / 255
    # red channel stays 1; green/blue become white where transparent: 1 - alpha
    np.testing.assert_allclose(loaded.image[0, ..., 0].numpy(), 1.0, atol=1e-6)
    np.testing.assert_allclose(loaded.image[0, ..., 1].numpy(), 1 - alpha, atol=1e-6)
    np.testing.assert_allclose(loaded.image[0, ..., 2].numpy(), 1 - alpha, atol=1e-6)
    np.testing.assert_allclose(loaded.mask[0].numpy(), 1 - alpha, atol=1e-6)
    assert loaded.has_alpha
    assert loaded.mask[0, 0, 1] == 1.0 and loaded.image[0, 0, 1].tolist() == [1.0, 1.0, 1.0]  # fully transparent -> white


def test_grey_and_grey_alpha():
    grey = np.array([[0, 128, 255]], dtype=np.uint8)
    loaded = decode_image(_png(Image.fromarray(grey, "L")), "grey.png")
    _check_shapes(loaded, 1, 3)
    for c in range(3):
        np.testing.assert_allclose(loaded.image[0, 0, :, c].numpy(), grey[0] / 255, atol=1e-6)
    la = Image.fromarray(np.stack([grey, np.array([[255, 0, 255]], np.uint8)], axis=-1), "LA")
    loaded = decode_image(_png(la), "la.png")
    assert loaded.has_alpha
    assert loaded.image[0, 0, 1].tolist() == [1.0, 1.0, 1.0]  # transparent -> white
    assert loaded.mask[0, 0].tolist() == [0.0, 1.0, 0.0]


def test_palette_with_transparency():
    pal = Image.new("P", (4, 1))
    pal.putpalette([0, 0, 255, 255, 0, 0] + [0] * (256 * 3 - 6))  # 0 = blue, 1 = red
    pal.putdata([0, 1, 0, 1])
    loaded = decode_image(_png(pal, transparency=1), "palette.png")  # red is transparent
    assert loaded.has_alpha
    assert loaded.mask[0, 0].tolist() == [0.0, 1.0, 0.0, 1.0]
    assert loaded.image[0, 0, 0].tolist() == [0.0, 0.0, 1.0]
    assert loaded.image[0, 0, 1].tolist() == [1.0, 1.0, 1.0]
    # the same palette image without transparency keeps its colours and has no mask
    plain = decode_image(_png(pal), "palette-plain.png")
    assert not plain.has_alpha and plain.image[0, 0, 1].tolist() == [1.0, 0.0, 0.0]


def test_16bit_grey_png_keeps_its_range():
    values = np.array([[0, 1000, 32768, 65535]], dtype=np.uint16)
    img = Image.fromarray(values)  # mode I;16
    data = _png(img)
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    loaded = decode_image(data, "deep.png")
    _check_shapes(loaded, 1, 4)
    np.testing.assert_allclose(loaded.image[0, 0, :, 1].numpy(), values[0] / 65535, atol=1e-6)


def test_exif_orientation_is_applied():
    # 4 wide x 2 high, left half black, right half white; tag 6 = "rotate 90 CW to display".
    pixels = np.zeros((2, 4, 3), dtype=np.uint8)
    pixels[:, 2:] = 255
    img = Image.fromarray(pixels)
    exif = Image.Exif()
    exif[0x0112] = 6
    for fmt in ("PNG", "JPEG"):
        buf = io.BytesIO()
        img.save(buf, format=fmt, exif=exif, **({"quality": 100} if fmt == "JPEG" else {}))
        loaded = decode_image(buf.getvalue(), f"rotated.{fmt.lower()}")
        _check_shapes(loaded, 4, 2)  # now 2 wide x 4 high
        grey = loaded.image[0, :, :, 0]
        assert grey[:2].mean() < 0.2 and grey[2:].mean() > 0.8, fmt  # left half ended on top


def test_animated_gif_uses_first_frame():
    frames = [Image.new("RGB", (3, 3), c) for c in ((255, 0, 0), (0, 255, 0))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    loaded = decode_image(buf.getvalue(), "anim.gif")
    assert loaded.image[0, 1, 1].tolist() == [1.0, 0.0, 0.0]


# ------------------------------------------------------------------------------- refusals


def test_not_an_image_names_the_file(tmp_path):
    path = tmp_path / "holiday.png"  # the extension lies
    path.write_bytes(b"this is just text, not a PNG at all")
    with pytest.raises(ImageLoadError, match="holiday.png.*not an image"):
        load_image_file(path)


def test_truncated_image_is_refused(tmp_path):
    data = _png(Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)))
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageLoadError, match="cut.png"):
        load_image_file(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ImageLoadError, match="nothere.png.*not found"):
        load_image_file(tmp_path / "nothere.png")


def test_pixel_cap_is_checked_before_decoding(monkeypatch):
    data = _png(Image.new("RGB", (400, 300), "white"))

    def no_decoding(self, *a, **k):  # decoding would be the bomb going off
        raise AssertionError("pixels were decoded before the size check")

    monkeypatch.setattr(Image.Image, "load", no_decoding)
    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(ImageLoadError, match=r"big.png.*too large.*400x300"):
        decode_image(data, "big.png", max_pixels=100_000)


def test_pixel_cap_default_refuses_a_huge_header():
    # A tiny file whose header claims 10000 x 10000 pixels (100 MP) -- never decoded.
    data = _png_header_only(10000, 10000)
    assert len(data) < 200
    with pytest.raises(ImageLoadError, match="bomb.png.*too large.*10000x10000"):
        decode_image(data, "bomb.png")


def test_byte_cap_for_files_and_bytes(tmp_path):
    data = _png(Image.new("RGB", (8, 8), "white"))
    path = tmp_path / "small.png"
    path.write_bytes(data)
    with pytest.raises(ImageLoadError, match="small.png.*too large"):
        load_image_file(path, max_bytes=len(data) - 1)
    with pytest.raises(ImageLoadError, match="too large"):
        load_image(data, name="upload", max_bytes=10)
    assert load_image(data, name="upload").image.shape == (1, 8, 8, 3)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/a.png", "data:image/png;base64,AAAA",
                                 "gopher://x/y", "javascript:alert(1)", "//example.com/a.png", "http://"])
def test_non_http_urls_are_refused_before_any_request(url, monkeypatch):
    import requests

    def no_network(*a, **k):
        raise AssertionError("a request was made")

    monkeypatch.setattr(requests.Session, "request", no_network)
    with pytest.raises(ImageLoadError, match="http"):
        load_image_url(url)


def test_urls_with_credentials_are_refused(monkeypatch):
    with pytest.raises(ImageLoadError, match="password") as info:
        load_image_url("https://me:secret@example.com/a.png")
    assert "secret" not in str(info.value)


def test_load_image_dispatches_urls_and_paths(tmp_path):
    assert image_io.looks_like_url("https://x/y.png") and image_io.looks_like_url("file:///x")
    assert not image_io.looks_like_url(str(tmp_path / "a.png")) and not image_io.looks_like_url("C:\\img\\a.png")
    with pytest.raises(ImageLoadError, match="http"):
        load_image("file:///etc/hostname")


# ----------------------------------------------------------------------------------- URLs

RED_PNG = _png(Image.new("RGB", (6, 4), (255, 0, 0)))


class _Handler(BaseHTTPRequestHandler):
    seen_headers: list = []

    def log_message(self, *args):  # keep test output clean
        pass

    def _send(self, code, body=b"", ctype="image/png", extra=None):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        type(self).seen_headers.append(dict(self.headers))
        path = self.path
        try:
            if path == "/red.png":
                self._send(200, RED_PNG)
            elif path == "/missing.png":
                self._send(404, b"nope", "text/plain")
            elif path == "/error.png":
                self._send(500, b"boom", "text/plain")
            elif path == "/slow.png":
                time.sleep(1.0)
                self._send(200, RED_PNG)
            elif path == "/page.html":
                self._send(200, b"<html>not an image</html>", "text/html")
            elif path == "/declared-huge.png":
                self.send_response(200)
                self.send_header("Content-Length", str(10**9))
                self.end_headers()
                self.wfile.write(b"\x89PNG" + b"\0" * 1000)
            elif path == "/endless.png":  # no Content-Length: only the streamed cap can stop it
                self.send_response(200)
                self.end_headers()
                for _ in range(2000):
                    self.wfile.write(b"\0" * 4096)
            elif path == "/redirect":
                self._send(302, b"", extra={"Location": "/red.png", "Set-Cookie": "session=abc"})
            elif path == "/redirect-file":
                self._send(302, b"", extra={"Location": "file:///etc/passwd"})
            else:
                self._send(404, b"", "text/plain")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up on purpose (timeout, size cap)


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("HYC_ALLOW_PRIVATE_URLS", "1")  # the test server is on 127.0.0.1 (test_web_fetch.py checks the refusal)
    _Handler.seen_headers = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


FAST = (0.3, 0.3)


def test_url_ok_without_credentials_or_cookies(server):
    loaded = load_image_url(server + "/red.png", timeout=FAST)
    _check_shapes(loaded, 4, 6)
    assert loaded.image[0, 0, 0].tolist() == [1.0, 0.0, 0.0]
    loaded = load_image_url(server + "/redirect", timeout=FAST)  # follows the redirect ...
    assert loaded.image.shape == (1, 4, 6, 3)
    for headers in _Handler.seen_headers:  # ... but sends no credentials or cookies anywhere
        lowered = {k.lower() for k in headers}
        assert "authorization" not in lowered and "cookie" not in lowered


def test_url_404_and_other_status(server):
    with pytest.raises(ImageLoadError, match="missing.png.*404"):
        load_image_url(server + "/missing.png", timeout=FAST)
    with pytest.raises(ImageLoadError, match="error.png.*HTTP 500"):
        load_image_url(server + "/error.png", timeout=FAST)


def test_url_timeout_fires(server):
    start = time.monotonic()
    with pytest.raises(ImageLoadError, match="slow.png.*timed out"):
        load_image_url(server + "/slow.png", timeout=FAST)
    assert time.monotonic() - start < 0.9


def test_url_too_big_declared_and_streamed(server):
    with pytest.raises(ImageLoadError, match="declared-huge.png.*too large"):
        load_image_url(server + "/declared-huge.png", timeout=FAST)
    with pytest.raises(ImageLoadError, match="endless.png.*too large"):
        load_image_url(server + "/endless.png", timeout=FAST, max_bytes=100_000)


def test_url_not_an_image(server):
    with pytest.raises(ImageLoadError, match="page.html.*not an image"):
        load_image_url(server + "/page.html", timeout=FAST)


def test_url_redirect_to_file_scheme_is_refused(server):
    with pytest.raises(ImageLoadError, match="only http"):
        load_image_url(server + "/redirect-file", timeout=FAST)
