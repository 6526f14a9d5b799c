"""HunyuanCustomLoadImage: the reference image from ComfyUI's input folder or an http(s) URL."""

from __future__ import annotations

import hashlib
import os
from typing import Any

from . import comfy, example_images
from .validation import refuse


def _is_url(url: Any) -> bool:
    return isinstance(url, str) and bool(url.strip())


def _input_path(image: str) -> str:
    """Path of a picked input file. Names climbing out of the input folder are refused, because
    a VALIDATE_INPUTS node skips ComfyUI's own 'value is in the list' check."""
    if not isinstance(image, str) or not image.strip():
        raise ValueError("image: no file picked; upload an image or pick one from ComfyUI's input folder.")
    plain = image.split(" [")[0] if image.endswith("]") else image  # 'x.png [input]' annotations
    if os.path.isabs(plain) or ".." in plain.replace("\\", "/").split("/"):
        raise ValueError(f"image = {image!r}: pick a file inside ComfyUI's input folder (no absolute paths or '..').")
    return example_images.resolve(plain, comfy.annotated_filepath(image))


def image_choices() -> list[str]:
    """The input folder's images, then the pack's example subjects (what the templates name)."""
    files = comfy.input_files(["image"])
    return files + [name for name in example_images.names() if name not in files]


def _missing(image: str) -> str:
    return f"image: file {image!r} not found in ComfyUI's input folder; upload it again or pick another."


class HunyuanCustomLoadImage:
    """Loads the subject's reference image; transparency becomes white (upstream's convention)."""

    DESCRIPTION = (
        "Loads the reference image of the subject. Best is a cut-out subject on white or on a "
        "transparent background: transparent pixels become white, as HunyuanCustom expects, and the "
        "alpha comes out as MASK (1 - alpha). A URL, when given, is used instead of the picked file."
    )
    CATEGORY = "HunyuanCustom"
    RETURN_TYPES = ("IMAGE", "MASK")
    RETURN_NAMES = ("image", "mask")
    OUTPUT_TOOLTIPS = (
        "The reference image, float RGB [1,H,W,3]; transparent areas composited onto white.",
        "1 - alpha [1,H,W] (ComfyUI's convention); all zeros when the image has no transparency.",
    )
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "image": (image_choices(), {
                    "image_upload": True,
                    "tooltip": "A picture of the subject from ComfyUI's input folder (or upload one). "
                               "PNG with transparency works best; EXIF rotation is applied; animated "
                               "files use their first frame. hunyuan_custom_examples/ are the pack's "
                               "example subjects.",
                }),
            },
            "optional": {
                "url": ("STRING", {
                    "default": "",
                    "tooltip": "Optional http(s) URL of the reference image. When not empty it is used "
                               "instead of the picked file (no login or cookies are sent; at most 50 MB).",
                }),
            },
        }

    @classmethod
    def IS_CHANGED(cls, image: str = "", url: str = "") -> str:
        if _is_url(url):
            return "url:" + url.strip()
        try:
            path = _input_path(image)
            digest = hashlib.sha256()
            with open(path, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
            return digest.hexdigest()
        except (OSError, ValueError):
            return "missing:" + str(image)  # VALIDATE_INPUTS / load report the problem

    @classmethod
    def VALIDATE_INPUTS(cls, image: str | None = "", url: str | None = "") -> bool:
        # Needs both inputs, so a problem is raised, not returned: ComfyUI would repeat a returned
        # message under `image` AND `url` (nodes/validation.py).
        if url is None or image is None:  # fed by a link: known only at run time, checked there
            return True
        if _is_url(url):
            from ..pipelines.media.image_io import ImageLoadError, check_url

            try:
                check_url(url)
            except ImageLoadError as exc:
                refuse([f"url: {exc}"])
            return True
        try:
            path = _input_path(image)
        except ValueError as exc:
            refuse([str(exc)])
        if not os.path.isfile(path):
            refuse([_missing(image)])
        return True

    def load(self, image: str = "", url: str = "") -> tuple:
        from ..pipelines.media import image_io

        comfy.throw_if_cancelled()
        if _is_url(url):
            loaded = image_io.load_image_url(url.strip())
        else:
            path = _input_path(image)
            if not os.path.isfile(path):
                raise ValueError(_missing(image))
            loaded = image_io.load_image_file(path)
        return (loaded.image, loaded.mask)


NODE_CLASS_MAPPINGS = {"HunyuanCustomLoadImage": HunyuanCustomLoadImage}
NODE_DISPLAY_NAME_MAPPINGS = {"HunyuanCustomLoadImage": "HunyuanCustom Load Reference Image"}
