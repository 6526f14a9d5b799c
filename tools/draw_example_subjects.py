"""Draws the pack's two example subject pictures (assets/examples/*.png).

The templates name these pictures so that they open without a "missing file" and run once the
models are in place. They are our own drawings, made here with Pillow's shape primitives (drawn
at 4x and scaled down for smooth edges): cut-out subjects on a transparent background, the kind of
reference image HunyuanCustom expects (transparency becomes white when the image is loaded).

    python tools/draw_example_subjects.py      # rewrites assets/examples/{man,dog}.png
"""

from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageDraw

OUT = Path(__file__).resolve().parents[1] / "assets" / "examples"
SCALE = 4  # supersampling factor

SKIN, SKIN_SHADE = (241, 194, 150, 255), (222, 168, 124, 255)
HAIR = (74, 52, 38, 255)
COAT, COAT_SHADE, COAT_LIGHT = (118, 124, 133, 255), (92, 97, 105, 255), (146, 152, 160, 255)
TROUSERS, SHOES = (44, 52, 72, 255), (58, 40, 30, 255)
SCARF, SCARF_SHADE = (196, 58, 52, 255), (160, 42, 40, 255)
INK, WHITE = (34, 30, 30, 255), (255, 255, 255, 255)
FUR, FUR_LIGHT, FUR_DARK = (214, 156, 74, 255), (236, 190, 114, 255), (176, 118, 48, 255)
NOSE, TONGUE = (40, 30, 28, 255), (226, 110, 120, 255)
COLLAR, TAG = (40, 96, 176, 255), (232, 196, 64, 255)


class Canvas:
    """An RGBA drawing surface in final-image coordinates, drawn SCALE times larger."""

    def __init__(self, width: int, height: int):
        self.size = (width, height)
        self.image = Image.new("RGBA", (width * SCALE, height * SCALE), (0, 0, 0, 0))
        self.draw = ImageDraw.Draw(self.image)

    def _p(self, points):
        return [(x * SCALE, y * SCALE) for x, y in points]

    def ellipse(self, cx, cy, rx, ry, fill, angle: float = 0.0) -> None:
        if angle == 0.0:
            self.draw.ellipse([(cx - rx) * SCALE, (cy - ry) * SCALE, (cx + rx) * SCALE, (cy + ry) * SCALE], fill=fill)
            return
        a = math.radians(angle)
        points = []
        for i in range(72):
            t = 2 * math.pi * i / 72
            x, y = rx * math.cos(t), ry * math.sin(t)
            points.append((cx + x * math.cos(a) - y * math.sin(a), cy + x * math.sin(a) + y * math.cos(a)))
        self.polygon(points, fill)

    def polygon(self, points, fill) -> None:
        self.draw.polygon(self._p(points), fill=fill)

    def rounded(self, x0, y0, x1, y1, radius, fill) -> None:
        self.draw.rounded_rectangle([x0 * SCALE, y0 * SCALE, x1 * SCALE, y1 * SCALE], radius=radius * SCALE, fill=fill)

    def line(self, points, fill, width) -> None:
        self.draw.line(self._p(points), fill=fill, width=int(width * SCALE), joint="curve")
        for x, y in (points[0], points[-1]):  # round caps
            self.ellipse(x, y, width / 2, width / 2, fill)

    def arc(self, cx, cy, rx, ry, start, end, fill, width) -> None:
        box = [(cx - rx) * SCALE, (cy - ry) * SCALE, (cx + rx) * SCALE, (cy + ry) * SCALE]
        self.draw.arc(box, start, end, fill=fill, width=int(width * SCALE))

    def result(self) -> Image.Image:
        return self.image.resize(self.size, Image.LANCZOS)


def draw_man() -> Image.Image:
    """A smiling man in a long grey coat and a red scarf, standing, front view."""
    c = Canvas(360, 600)
    # shoes and trousers
    c.ellipse(146, 580, 30, 12, SHOES)
    c.ellipse(214, 580, 30, 12, SHOES)
    c.rounded(128, 440, 168, 578, 12, TROUSERS)
    c.rounded(192, 440, 232, 578, 12, TROUSERS)
    # sleeves behind the coat, hands
    c.polygon([(92, 196), (120, 190), (112, 400), (80, 396)], COAT_SHADE)
    c.polygon([(240, 190), (268, 196), (280, 396), (248, 400)], COAT_SHADE)
    c.ellipse(96, 410, 17, 20, SKIN)
    c.ellipse(264, 410, 17, 20, SKIN)
    # the coat: body, shaded right half, lapels, belt, buttons, pockets
    c.polygon([(112, 180), (248, 180), (262, 470), (98, 470)], COAT)
    c.polygon([(180, 180), (248, 180), (262, 470), (180, 470)], COAT_SHADE)
    c.rounded(92, 176, 268, 214, 22, COAT)
    c.polygon([(150, 184), (180, 184), (180, 300)], COAT_LIGHT)
    c.polygon([(180, 184), (210, 184), (180, 300)], COAT_LIGHT)
    c.rounded(100, 322, 260, 338, 4, COAT_SHADE)
    for y in (236, 276, 364, 404):
        c.ellipse(192, y, 5, 5, INK)
    c.rounded(116, 380, 158, 386, 2, COAT_SHADE)
    c.rounded(204, 380, 246, 386, 2, COAT_SHADE)
    # neck, scarf (with a hanging end)
    c.rounded(162, 140, 198, 184, 10, SKIN_SHADE)
    c.rounded(140, 164, 220, 196, 14, SCARF)
    c.polygon([(196, 186), (220, 188), (214, 268), (192, 264)], SCARF_SHADE)
    c.line([(196, 262), (196, 276)], SCARF, 3)
    c.line([(206, 264), (206, 278)], SCARF, 3)
    # head: ears, face, hair, eyes, brows, nose, smile
    c.ellipse(128, 100, 12, 17, SKIN_SHADE)
    c.ellipse(232, 100, 12, 17, SKIN_SHADE)
    c.ellipse(180, 96, 52, 62, SKIN)
    c.polygon([(126, 84), (132, 50), (160, 30), (200, 30), (228, 50), (234, 84), (222, 66), (190, 58), (150, 60),
               (136, 70)], HAIR)
    for x in (160, 200):
        c.ellipse(x, 96, 9, 7, WHITE)
        c.ellipse(x + 1, 97, 5, 5, INK)
        c.line([(x - 12, 80), (x + 10, 78)], HAIR, 4)
    c.arc(180, 106, 7, 12, 20, 160, SKIN_SHADE, 3)
    c.arc(180, 118, 22, 16, 20, 160, INK, 4)
    return c.result()


def draw_dog() -> Image.Image:
    """A golden retriever sitting, looking at the viewer, with a blue collar."""
    c = Canvas(440, 460)
    # tail, body, hind leg
    c.line([(300, 404), (350, 380), (392, 330), (404, 282)], FUR_DARK, 26)
    c.ellipse(220, 330, 104, 110, FUR)
    c.ellipse(290, 380, 62, 56, FUR_DARK)
    c.ellipse(300, 428, 44, 16, FUR)
    # chest and front legs with paws
    c.ellipse(196, 300, 70, 96, FUR_LIGHT)
    c.rounded(150, 330, 186, 438, 16, FUR)
    c.rounded(206, 330, 242, 438, 16, FUR)
    c.ellipse(166, 438, 26, 14, FUR_LIGHT)
    c.ellipse(226, 438, 26, 14, FUR_LIGHT)
    for x in (156, 166, 176, 216, 226, 236):
        c.line([(x, 434), (x, 446)], FUR_DARK, 2)
    # collar and tag
    c.ellipse(196, 214, 66, 18, COLLAR)
    c.ellipse(196, 240, 11, 12, TAG)
    # head: ears behind, face, muzzle, nose, eyes, mouth, tongue
    c.ellipse(128, 150, 30, 62, FUR_DARK, angle=18)
    c.ellipse(264, 150, 30, 62, FUR_DARK, angle=-18)
    c.ellipse(196, 130, 74, 80, FUR)
    c.ellipse(196, 88, 50, 36, FUR_LIGHT)
    c.ellipse(196, 178, 46, 36, FUR_LIGHT)
    c.ellipse(196, 160, 17, 12, NOSE)
    c.ellipse(192, 156, 5, 3, (110, 100, 96, 255))
    for x in (166, 226):
        c.ellipse(x, 122, 10, 11, INK)
        c.ellipse(x + 3, 118, 3, 3, WHITE)
        c.arc(x, 108, 14, 8, 200, 340, FUR_DARK, 3)
    c.ellipse(196, 204, 14, 16, TONGUE)
    c.line([(196, 196), (196, 212)], (200, 86, 98, 255), 2)
    c.arc(180, 176, 16, 16, 10, 120, NOSE, 3)
    c.arc(212, 176, 16, 16, 60, 170, NOSE, 3)
    return c.result()


DRAWINGS = {"man.png": draw_man, "dog.png": draw_dog}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, draw in DRAWINGS.items():
        path = OUT / name
        draw().save(path, optimize=True)
        print(f"wrote {path.relative_to(OUT.parents[1])} ({path.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
