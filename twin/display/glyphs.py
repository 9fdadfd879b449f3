"""Drawing primitives for a 1-bit 128x64 panel: fonts, flag boxes and the two symbols.

Text uses PIL's built-in bitmap font (6x11 cells, no font file, identical on every machine, so
pixel tests are exact); flag labels use a 3x5 font defined here, because ten labelled flags
must share 128 pixels.
"""

from __future__ import annotations

from functools import cache

from PIL import Image, ImageDraw, ImageFont

from twin.display.layout import ANTENNA, SIGNAL_BARS, Rect

ON, OFF = 1, 0

# The bitmap font leaves two blank rows above capitals; drawing at top - 2 puts them on `top`.
FONT_TOP_PAD = 2
CHAR_W = 6
GLYPH_ROWS = 9  # capitals and digits in rows 0..6, descenders down to row 8

# 3x5 glyphs for the flag labels (DSMR-M 4.3.35), rows top to bottom.
TINY: dict[str, tuple[str, ...]] = {
    "O": ("###", "#.#", "#.#", "#.#", "###"),
    "F": ("###", "#..", "##.", "#..", "#.."),
    "N": ("##.", "#.#", "#.#", "#.#", "#.#"),
    "C": ("###", "#..", "#..", "#..", "###"),
    "M": ("#.#", "###", "###", "#.#", "#.#"),
    "L": ("#..", "#..", "#..", "#..", "###"),
    "S": ("###", "#..", "###", "..#", "###"),
    "R": ("##.", "#.#", "##.", "#.#", "#.#"),
    "1": (".#.", "##.", ".#.", ".#.", "###"),
    "2": ("##.", "..#", ".#.", "#..", "###"),
    "3": ("##.", "..#", ".#.", "..#", "##."),
}


@cache
def font() -> ImageFont.ImageFont:
    """PIL's bitmap font; `load_default()` returns a FreeType font since Pillow 10.1."""
    loader = getattr(ImageFont, "load_default_imagefont", None)
    loaded = loader() if loader is not None else ImageFont.load_default()
    assert isinstance(loaded, ImageFont.ImageFont)
    return loaded


def text_width(text: str) -> int:
    return CHAR_W * len(text)


def text(draw: ImageDraw.ImageDraw, x: int, top: int, content: str, fill: int = ON) -> None:
    """`content` with its capitals starting on row `top`."""
    draw.text((x, top - FONT_TOP_PAD), content, font=font(), fill=fill)


def text_right(draw: ImageDraw.ImageDraw, rect: Rect, content: str) -> None:
    text(draw, rect[2] + 1 - text_width(content), rect[1], content)


def big_text(image: Image.Image, rect: Rect, content: str) -> None:
    """`content` at double size, right-aligned in `rect` (the register value)."""
    small = Image.new("1", (text_width(content), GLYPH_ROWS), OFF)
    text(ImageDraw.Draw(small), 0, 0, content)
    big = small.resize((small.width * 2, small.height * 2), Image.Resampling.NEAREST)
    image.paste(big, (rect[2] + 1 - big.width, rect[1] + 1))


def tiny_text(draw: ImageDraw.ImageDraw, x: int, y: int, content: str, fill: int) -> None:
    for i, char in enumerate(content):
        for row, bits in enumerate(TINY[char]):
            for col, bit in enumerate(bits):
                if bit == "#":
                    draw.point((x + 4 * i + col, y + row), fill=fill)


def flag(draw: ImageDraw.ImageDraw, rect: Rect, label: str, on: bool) -> None:
    """A flag box: filled with the label cut out when on, an outline with the label when off.

    The pixel just inside the top-left corner is never part of the label, so it alone tells
    on from off.
    """
    draw.rectangle(rect, fill=ON if on else OFF, outline=ON)
    left, top = rect[0], rect[1]
    tiny_text(draw, left + 2, top + 2, label, OFF if on else ON)


def signal(draw: ImageDraw.ImageDraw, level: int) -> None:
    """DSMR-M 4.3.36 GPRS signal strength: an antenna and 4 bars; `level` bars are filled.

    An unfilled bar keeps only its bottom row, so the empty scale stays visible.
    """
    left, top, right, bottom = ANTENNA
    mid = (left + right) // 2
    draw.line((mid, top + 2, mid, bottom), fill=ON)
    draw.line((left, top, mid, top + 2), fill=ON)
    draw.line((right, top, mid, top + 2), fill=ON)
    for i, bar in enumerate(SIGNAL_BARS):
        if i < level:
            draw.rectangle(bar, fill=ON)
        else:
            draw.line((bar[0], bar[3], bar[2], bar[3]), fill=ON)


def arrow(draw: ImageDraw.ImageDraw, rect: Rect, pointing_right: bool) -> None:
    """DSMR-M 4.3.36 actual energy direction: a 2-pixel shaft with a triangular head."""
    left, top, right, bottom = rect
    mid = (top + bottom) // 2
    head = 5
    if pointing_right:
        draw.rectangle((left + 1, mid, right - head, mid + 1), fill=ON)
        draw.polygon(
            [(right - head, top), (right, mid), (right, mid + 1), (right - head, bottom)],
            fill=ON,
            outline=ON,
        )
    else:
        draw.rectangle((left + head, mid, right - 1, mid + 1), fill=ON)
        draw.polygon(
            [(left + head, top), (left, mid), (left, mid + 1), (left + head, bottom)],
            fill=ON,
            outline=ON,
        )
