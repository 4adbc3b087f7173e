"""The add-in's icons, drawn in code so that they can be regenerated and checked without an image library.

Office wants PNG icons at fixed sizes: 16, 32 and 80 px for ribbon buttons, 64 and 128 px for the add-in
lists (Outlook shows the 64/128 pair, Word the 32/64 pair). They are checked in under `assets/` and
served by our own server, so an installation never fetches an image from anywhere else. Run
`python -m deskpilot.addin_manifest._icons` to regenerate them after changing the drawing below; a test
decodes the checked-in files and compares their pixels with what this module draws, so the two cannot
drift apart.

The drawing: a Fluent-blue rounded square with a white "D"; from 32 px up a small yellow sparkle (at 16 px
it would only be a smudge). Every pixel is supersampled so that edges are anti-aliased.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

__all__ = ["ICON_SIZES", "draw_icon", "encode_png", "write_icons"]

ICON_SIZES = (16, 32, 64, 80, 128)
ASSETS_DIR = Path(__file__).with_name("assets")

_SUPERSAMPLE = 4
_TOP = (0x29, 0x8A, 0xE3)  # gradient top, a lighter Fluent brand blue
_BOTTOM = (0x0F, 0x5C, 0xAB)  # gradient bottom, close to Fluent's #0F6CBD
_WHITE = (0xFF, 0xFF, 0xFF)
_SPARKLE = (0xFF, 0xD6, 0x5C)


def _in_background(x: float, y: float) -> bool:
    """A rounded square inset a little from the canvas edge (coordinates are in [0, 1], y down)."""
    inset, radius = 0.03, 0.2
    lo, hi = inset + radius, 1 - inset - radius
    cx, cy = min(max(x, lo), hi), min(max(y, lo), hi)
    return (x - cx) ** 2 + (y - cy) ** 2 <= radius**2 and inset <= x <= 1 - inset and inset <= y <= 1 - inset


def _in_letter_d(x: float, y: float) -> bool:
    """A "D": a stem, two bars and a half ring, all with the same stroke width (0.14)."""
    left, joint, top, bottom = 0.29, 0.47, 0.24, 0.76
    if left <= x <= left + 0.14 and top <= y <= bottom:
        return True
    if left <= x <= joint and (top <= y <= top + 0.14 or bottom - 0.14 <= y <= bottom):
        return True
    distance_sq = (x - joint) ** 2 + (y - 0.5) ** 2
    return x >= joint and 0.12**2 <= distance_sq <= 0.26**2


def _in_sparkle(x: float, y: float) -> bool:
    """A four-pointed star (an astroid) in the top right corner."""
    cx, cy, radius = 0.78, 0.22, 0.12
    return bool(abs(x - cx) ** 0.5 + abs(y - cy) ** 0.5 <= radius**0.5)  # float ** float is typed Any


def _sample(x: float, y: float, sparkle: bool) -> tuple[int, int, int] | None:
    if not _in_background(x, y):
        return None
    if _in_letter_d(x, y):
        return _WHITE
    if sparkle and _in_sparkle(x, y):
        return _SPARKLE
    red, green, blue = (round(a + (b - a) * y) for a, b in zip(_TOP, _BOTTOM, strict=True))
    return red, green, blue


def draw_icon(size: int) -> bytes:
    """The icon as straight (not premultiplied) RGBA bytes, row by row, top row first."""
    sparkle = size >= 32
    n = _SUPERSAMPLE
    pixels = bytearray()
    for row in range(size):
        for col in range(size):
            covered, red, green, blue = 0, 0, 0, 0
            for sy in range(n):
                for sx in range(n):
                    colour = _sample((col + (sx + 0.5) / n) / size, (row + (sy + 0.5) / n) / size, sparkle)
                    if colour is not None:
                        covered += 1
                        red, green, blue = red + colour[0], green + colour[1], blue + colour[2]
            if covered:
                pixels += bytes((red // covered, green // covered, blue // covered, 255 * covered // (n * n)))
            else:
                pixels += b"\0\0\0\0"
    return bytes(pixels)


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def encode_png(size: int, rgba: bytes) -> bytes:
    """A square 8-bit RGBA PNG, no filtering (filter type 0 on every row), one IDAT chunk."""
    stride = size * 4
    raw = b"".join(b"\0" + rgba[row * stride : (row + 1) * stride] for row in range(size))
    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw, 9))
        + _chunk(b"IEND", b"")
    )


def write_icons(out_dir: Path = ASSETS_DIR) -> list[Path]:
    """Write `icon-<size>.png` for every size in ICON_SIZES and return the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for size in ICON_SIZES:
        path = out_dir / f"icon-{size}.png"
        path.write_bytes(encode_png(size, draw_icon(size)))
        paths.append(path)
    return paths


if __name__ == "__main__":
    for written in write_icons():
        print(written)
