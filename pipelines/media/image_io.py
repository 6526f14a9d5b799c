"""Load a reference image (file, bytes or http(s) URL) as a ComfyUI IMAGE plus MASK.

IMAGE: float32 [1, H, W, 3] in 0..1. Transparent pixels are composited onto WHITE, because
upstream expects a cut-out subject on a white background.
MASK:  float32 [1, H, W] = 1 - alpha (ComfyUI's LoadImage convention); zeros without alpha.

Safety: the content is really decoded (the file extension is not trusted), the pixel count is
checked from the header before any pixel is decoded (decompression bombs), files and downloads
are capped in bytes, URLs must be http(s) and reach only public addresses (web_fetch.py), and no
credentials or cookies are ever sent. urllib3 is imported only when a URL is loaded.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from typing import Callable, NamedTuple, Union
from urllib.parse import urlsplit

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from . import web_fetch
from .limits import MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS, URL_TOTAL_SECONDS

MAX_PIXELS = MAX_IMAGE_PIXELS  # far above any video size, far below a decompression bomb (limits.py)
MAX_BYTES = MAX_IMAGE_BYTES
URL_TIMEOUT = (5.0, 30.0)  # seconds: (connect, longest pause between two packets)

PathOrBytes = Union[str, "os.PathLike[str]", bytes, bytearray]


class ImageLoadError(ValueError):
    """A reference image could not be used; the message names the file or URL and what to do."""


class LoadedImage(NamedTuple):
    image: torch.Tensor  # [1, H, W, 3] float32 0..1, alpha composited onto white
    mask: torch.Tensor  # [1, H, W] float32, 1 - alpha (zeros when the image has no alpha)
    has_alpha: bool


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"


# ---------------------------------------------------------------------------------------------
# decoding


def decode_image(data: bytes, name: str, max_pixels: int = MAX_PIXELS) -> LoadedImage:
    """Decode image bytes; `name` (file name or URL) is used in error messages."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # we apply our own, lower cap
            img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise ImageLoadError(f"{name}: the image is too large (more than {max_pixels:,} pixels); "
                             "use a smaller image (the video is at most 1280x720).") from None
    except UnidentifiedImageError:  # PIL's message only names its in-memory buffer
        raise ImageLoadError(f"{name}: not an image that can be read (PNG, JPEG, WebP, ... expected); "
                             "its content is no known image format.") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageLoadError(f"{name}: not an image that can be read (PNG, JPEG, WebP, ... expected): "
                             f"{_plain(exc)}") from None
    with img:
        width, height = img.size
        if width * height > max_pixels:  # checked from the header, before decoding pixels
            raise ImageLoadError(f"{name}: the image is too large ({width}x{height} = {width * height:,} "
                                 f"pixels, the limit is {max_pixels:,}); use a smaller image.")
        if width <= 0 or height <= 0:
            raise ImageLoadError(f"{name}: the image is empty ({width}x{height}).")
        try:
            img.seek(0)  # animated GIF/WebP/APNG: the first frame
            img.load()
            img = _exif_upright(img)
            return _to_tensors(img)
        except ImageLoadError:
            raise
        except Exception as exc:  # PIL raises many types for broken/truncated data
            raise ImageLoadError(f"{name}: the image data is broken or truncated and cannot be decoded: "
                                 f"{_plain(exc)}") from None


def _plain(exc: BaseException) -> str:
    """A decoder's message without Python object reprs such as '<_io.BytesIO object at 0x...>'."""
    text = re.sub(r"\s*<[\w.]+ object at 0x[0-9a-fA-F]+>", "", str(exc)).strip()
    return text or "the decoder gave no reason"


def _exif_upright(img: Image.Image) -> Image.Image:
    """Apply the EXIF orientation tag (phones store photos sideways plus a tag). Without a tag the
    image itself is returned: exif_transpose would return a full copy."""
    try:
        orientation = img.getexif().get(0x0112, 1)
        if orientation in (None, 1):
            return img
        return ImageOps.exif_transpose(img) or img
    except Exception:  # a broken EXIF block must not make a good image unusable
        return img


def _scaled(pixels: np.ndarray) -> torch.Tensor:
    """8-bit pixels / 255 as one new float32 tensor, written directly (PIL's arrays are read-only)."""
    out = torch.empty(pixels.shape, dtype=torch.float32)
    np.divide(pixels, np.float32(255.0), out=out.numpy(), dtype=np.float32)
    return out


def _to_tensors(img: Image.Image) -> LoadedImage:
    """float32 tensors, converted in place (no float64, no second full-size float copy): the peak is
    under 30 bytes a pixel (8-bit pixels twice, float RGB, alpha and mask), 1.4 GB at 50 megapixels."""
    mode = img.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        # 16-bit (or 32-bit) grey: keep the precision instead of PIL's clipping 8-bit convert.
        grey = torch.from_numpy(np.asarray(img, dtype=np.float32).copy())
        grey.div_(1.0 if mode == "F" else 65535.0).clamp_(0.0, 1.0)
        height, width = grey.shape
        image = grey.unsqueeze(-1).expand(height, width, 3).contiguous().unsqueeze(0)
        return LoadedImage(image=image, mask=torch.zeros((1, height, width), dtype=torch.float32), has_alpha=False)
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info
    target = "RGBA" if has_alpha else "RGB"
    pixels = np.asarray(img if img.mode == target else img.convert(target))  # convert() would copy anyway
    height, width = pixels.shape[:2]
    image = _scaled(pixels[:, :, :3])
    if not has_alpha:
        return LoadedImage(image=image.unsqueeze(0), mask=torch.zeros((1, height, width), dtype=torch.float32),
                           has_alpha=False)
    alpha = _scaled(pixels[:, :, 3])
    del pixels
    mask = torch.sub(1.0, alpha)
    # Composite onto white: a cut-out subject on white is what upstream was trained with.
    image.mul_(alpha.unsqueeze(-1)).add_(mask.unsqueeze(-1))
    del alpha
    return LoadedImage(image=image.unsqueeze(0), mask=mask.unsqueeze(0), has_alpha=True)


# ---------------------------------------------------------------------------------------------
# files


def load_image_file(path: "str | os.PathLike[str]", max_pixels: int = MAX_PIXELS,
                    max_bytes: int = MAX_BYTES) -> LoadedImage:
    """Load an image file (any format PIL decodes; the first frame of animations)."""
    name = os.fspath(path)
    if not os.path.exists(name):
        raise ImageLoadError(f"{name}: file not found.")
    if not os.path.isfile(name):
        raise ImageLoadError(f"{name}: is not a file.")
    size = os.path.getsize(name)
    if size > max_bytes:
        raise ImageLoadError(f"{name}: the file is too large ({_mb(size)}, the limit is {_mb(max_bytes)}); "
                             "use a smaller image.")
    with open(name, "rb") as fh:
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:  # the file grew while we read it
        raise ImageLoadError(f"{name}: the file is too large (over {_mb(max_bytes)}).")
    return decode_image(data, name, max_pixels=max_pixels)


def load_image(source: PathOrBytes, name: str | None = None, max_pixels: int = MAX_PIXELS,
               max_bytes: int = MAX_BYTES, timeout: tuple[float, float] = URL_TIMEOUT) -> LoadedImage:
    """Load from bytes, an http(s) URL (a string with a scheme) or a file path."""
    if isinstance(source, (bytes, bytearray)):
        label = name or "image data"
        if len(source) > max_bytes:
            raise ImageLoadError(f"{label}: too large ({_mb(len(source))}, the limit is {_mb(max_bytes)}).")
        return decode_image(bytes(source), label, max_pixels=max_pixels)
    text = os.fspath(source)
    if looks_like_url(text):
        return load_image_url(text, timeout=timeout, max_bytes=max_bytes, max_pixels=max_pixels)
    return load_image_file(text, max_pixels=max_pixels, max_bytes=max_bytes)


# ---------------------------------------------------------------------------------------------
# URLs


def looks_like_url(text: str) -> bool:
    """True for 'scheme:...' strings other than Windows drive letters (C:\\...)."""
    scheme = urlsplit(text.strip()).scheme
    return len(scheme) > 1


def check_url(url: str) -> str:
    """The URL, stripped, if it is an http(s) URL we may fetch; ImageLoadError otherwise.

    Called before any request (and at queue time): file://, ftp://, data: and every other scheme
    are refused, and so are URLs carrying a user name or password (they would be sent as an
    Authorization header) and hosts written as a non-public address (web_fetch.check_url_syntax).
    Names are resolved and checked when the URL is fetched."""
    try:
        return web_fetch.check_url_syntax(url)
    except web_fetch.FetchError as exc:
        raise ImageLoadError(str(exc)) from None


def load_image_url(url: str, timeout: tuple[float, float] = URL_TIMEOUT, max_bytes: int = MAX_BYTES,
                   max_pixels: int = MAX_PIXELS, total_seconds: float = URL_TOTAL_SECONDS,
                   should_cancel: Callable[[], None] | None = None,
                   resolver: web_fetch.Resolver | None = None) -> LoadedImage:
    """Download (capped at max_bytes, public addresses only, see web_fetch) and decode an image
    from an http(s) URL. `should_cancel` raises to stop (ComfyUI's Cancel)."""
    url = check_url(url)
    data = download(url, timeout=timeout, max_bytes=max_bytes, total_seconds=total_seconds,
                    should_cancel=should_cancel, resolver=resolver)
    return decode_image(data, web_fetch.safe_url(url), max_pixels=max_pixels)


def download(url: str, timeout: tuple[float, float] = URL_TIMEOUT, max_bytes: int = MAX_BYTES,
             total_seconds: float = URL_TOTAL_SECONDS, should_cancel: Callable[[], None] | None = None,
             resolver: web_fetch.Resolver | None = None) -> bytes:
    """GET an http(s) URL into memory with web_fetch.fetch: no auth, no cookies, every redirect hop
    checked, `timeout` = (connect, longest pause between two packets) in seconds."""
    try:
        return web_fetch.fetch(url, max_bytes=max_bytes, total_seconds=total_seconds, connect_seconds=timeout[0],
                               stall_seconds=timeout[1], should_cancel=should_cancel, resolver=resolver,
                               headers={"Accept": "image/*,*/*;q=0.5"})
    except web_fetch.FetchError as exc:
        raise ImageLoadError(str(exc)) from None
