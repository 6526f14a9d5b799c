"""Draw the template-browser thumbnails: workflows/<name>.jpg beside each workflows/<name>.json.

ComfyUI's template browser shows `<name>.jpg` on the card of each custom-node template; without one
the card is blank. We have no real renders to show (no GPU, no real weights here), so the thumbnail
is an honest mini-map of the graph itself: the nodes at their saved positions, coloured by role,
with their titles and the links between them, under the pack's name, the card's title and its
description (web/template_cards.json, which 1.58's cards do not show as text).

    python tools/make_template_thumbnails.py          # (re)writes every workflows/*.jpg

Only Pillow is needed. Re-run it after moving nodes in a template.
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / "workflows"
CARDS = ROOT / "web" / "template_cards.json"
SIZE = (640, 400)
MARGIN = 24
BACKGROUND = (32, 33, 38)
TITLE_BAR = (20, 20, 24)
LINK = (150, 160, 175)
ROLE_COLOURS = {  # by node type prefix/suffix: what the node does in the graph
    "Note": (90, 80, 40),
    "LoadImage": (40, 85, 60),
    "LoadVideo": (40, 85, 60),
    "LoadAudio": (40, 85, 60),
    "Edit": (45, 70, 110),
    "Prompt": (45, 70, 110),
    "ModelLoader": (95, 55, 110),
    "Sampler": (120, 60, 45),
    "WaveSpeed": (40, 100, 115),
    "Save": (70, 90, 45),
    "Preview": (70, 90, 45),
    "Audio": (115, 90, 35),
}
DEFAULT_COLOUR = (70, 72, 80)


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def _colour(node_type: str) -> tuple[int, int, int]:
    for key, colour in ROLE_COLOURS.items():
        if key in node_type:
            return colour
    return DEFAULT_COLOUR


def _label(node: dict) -> str:
    title = node.get("title") or node["type"]
    return title.replace("HunyuanCustom", "HYC ").replace("  ", " ").strip()


def _fit(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont, width: float) -> str:
    """The label shortened with an ellipsis so it stays inside its box."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…" if text else ""


def render(workflow: dict, title: str, description: str = "", category: str = "HunyuanCustom") -> Image.Image:
    nodes = workflow["nodes"]
    left = min(n["pos"][0] for n in nodes)
    top = min(n["pos"][1] for n in nodes)
    right = max(n["pos"][0] + n["size"][0] for n in nodes)
    bottom = max(n["pos"][1] + n["size"][1] for n in nodes)
    header = 62
    scale = min((SIZE[0] - 2 * MARGIN) / (right - left), (SIZE[1] - header - 2 * MARGIN) / (bottom - top))

    def box(node: dict) -> tuple[float, float, float, float]:
        x0 = MARGIN + (node["pos"][0] - left) * scale
        y0 = header + MARGIN + (node["pos"][1] - top) * scale
        return x0, y0, x0 + node["size"][0] * scale, y0 + node["size"][1] * scale

    image = Image.new("RGB", SIZE, BACKGROUND)
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, SIZE[0], header), fill=TITLE_BAR)
    draw.text((MARGIN, 20), _fit(draw, f"{category} · {title}", _font(18), SIZE[0] - 2 * MARGIN),
              fill=(235, 235, 240), font=_font(18), anchor="lm")
    draw.text((MARGIN, 45), _fit(draw, description, _font(14), SIZE[0] - 2 * MARGIN), fill=(170, 175, 185),
              font=_font(14), anchor="lm")

    boxes = {n["id"]: box(n) for n in nodes}
    for _link_id, src, _src_slot, dst, _dst_slot, _type in workflow["links"]:
        sx0, sy0, sx1, _ = boxes[src]
        dx0, dy0, _, _ = boxes[dst]
        draw.line((sx1, sy0 + 12, dx0, dy0 + 12), fill=LINK, width=2)
    label_font = _font(12)
    for node in nodes:
        x0, y0, x1, y1 = boxes[node["id"]]
        draw.rounded_rectangle((x0, y0, x1, y1), radius=6, fill=_colour(node["type"]), outline=(15, 15, 18))
        draw.rectangle((x0 + 1, y0 + 1, x1 - 1, y0 + 16), fill=tuple(max(c - 25, 0) for c in _colour(node["type"])))
        draw.text((x0 + 5, y0 + 9), _fit(draw, _label(node), label_font, x1 - x0 - 8), fill=(240, 240, 240), font=label_font, anchor="lm")
    return image


def main() -> int:
    cards = json.loads(CARDS.read_text(encoding="utf-8"))
    for path in sorted(WORKFLOWS.glob("*.json")):
        workflow = json.loads(path.read_text())
        title = path.stem  # the file name is the card's title in ComfyUI's template browser
        target = path.with_suffix(".jpg")
        render(workflow, title, cards["descriptions"].get(title, ""), cards["category"]).save(target, quality=88)
        print(f"wrote {target.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
