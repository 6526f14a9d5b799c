"""HunyuanCustomLoadImage: the reference image from ComfyUI's input folder or an http(s) URL."""

from __future__ import annotations

from typing import Any

from . import comfy, picked_files
from .validation import refuse


def _is_url(url: Any) -> bool:
    return isinstance(url, str) and bool(url.strip())


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
                "image": (picked_files.choices("image"), {
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
                               "instead of the picked file (no login or cookies are sent; at most 50 MB). Only public "
                               "internet addresses: local ones need HYC_ALLOW_PRIVATE_URLS=1 where ComfyUI runs.",
                }),
            },
        }

    @classmethod
    def IS_CHANGED(cls, image: str = "", url: str = "") -> str:
        if _is_url(url):
            return "url:" + url.strip()
        return picked_files.fingerprint(image, "image", "image")

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
            picked_files.path_of(image, "image", "image")
        except ValueError as exc:
            refuse([str(exc)])
        return True

    def load(self, image: str = "", url: str = "") -> tuple:
        from ..pipelines.media import image_io

        comfy.throw_if_cancelled()
        if _is_url(url):
            loaded = image_io.load_image_url(url.strip(), should_cancel=comfy.throw_if_cancelled)
        else:
            loaded = image_io.load_image_file(picked_files.path_of(image, "image", "image"))
        return (loaded.image, loaded.mask)


NODE_CLASS_MAPPINGS = {"HunyuanCustomLoadImage": HunyuanCustomLoadImage}
NODE_DISPLAY_NAME_MAPPINGS = {"HunyuanCustomLoadImage": "HunyuanCustom Load Reference Image"}
