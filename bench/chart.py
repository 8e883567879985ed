"""The cost chart as a PNG, drawn without third-party packages (matplotlib is not installed).

A tiny raster: lines, markers and a 5x7 bitmap font (upper case), written as an RGB PNG with zlib
and struct. Dollars per action run against build length, log scale.
"""

from __future__ import annotations

import itertools
import math
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

Color = tuple[int, int, int]
WIDTH, HEIGHT = 900, 560
LEFT, RIGHT, TOP, BOTTOM = 110, 250, 60, 80  # margins
WHITE: Color = (255, 255, 255)
BLACK: Color = (0, 0, 0)
GREY: Color = (210, 210, 210)
SERIES_COLORS: dict[str, Color] = {
    "polling": (31, 119, 180),
    "push": (44, 160, 44),
    "daemon": (214, 39, 40),
    "codebuild": (148, 103, 189),
}

# 5x7 glyphs, one string of 7 rows of 5 bits each.
_FONT_ROWS = {
    "0": "01110 10001 10011 10101 11001 10001 01110",
    "1": "00100 01100 00100 00100 00100 00100 01110",
    "2": "01110 10001 00001 00010 00100 01000 11111",
    "3": "11110 00001 00001 01110 00001 00001 11110",
    "4": "00010 00110 01010 10010 11111 00010 00010",
    "5": "11111 10000 11110 00001 00001 10001 01110",
    "6": "00110 01000 10000 11110 10001 10001 01110",
    "7": "11111 00001 00010 00100 01000 01000 01000",
    "8": "01110 10001 10001 01110 10001 10001 01110",
    "9": "01110 10001 10001 01111 00001 00010 01100",
    "A": "01110 10001 10001 11111 10001 10001 10001",
    "B": "11110 10001 10001 11110 10001 10001 11110",
    "C": "01110 10001 10000 10000 10000 10001 01110",
    "D": "11100 10010 10001 10001 10001 10010 11100",
    "E": "11111 10000 10000 11110 10000 10000 11111",
    "F": "11111 10000 10000 11110 10000 10000 10000",
    "G": "01110 10001 10000 10111 10001 10001 01111",
    "H": "10001 10001 10001 11111 10001 10001 10001",
    "I": "01110 00100 00100 00100 00100 00100 01110",
    "J": "00111 00010 00010 00010 00010 10010 01100",
    "K": "10001 10010 10100 11000 10100 10010 10001",
    "L": "10000 10000 10000 10000 10000 10000 11111",
    "M": "10001 11011 10101 10101 10001 10001 10001",
    "N": "10001 10001 11001 10101 10011 10001 10001",
    "O": "01110 10001 10001 10001 10001 10001 01110",
    "P": "11110 10001 10001 11110 10000 10000 10000",
    "Q": "01110 10001 10001 10001 10101 10010 01101",
    "R": "11110 10001 10001 11110 10100 10010 10001",
    "S": "01111 10000 10000 01110 00001 00001 11110",
    "T": "11111 00100 00100 00100 00100 00100 00100",
    "U": "10001 10001 10001 10001 10001 10001 01110",
    "V": "10001 10001 10001 10001 10001 01010 00100",
    "W": "10001 10001 10001 10101 10101 10101 01010",
    "X": "10001 10001 01010 00100 01010 10001 10001",
    "Y": "10001 10001 01010 00100 00100 00100 00100",
    "Z": "11111 00001 00010 00100 01000 10000 11111",
    " ": "00000 00000 00000 00000 00000 00000 00000",
    ".": "00000 00000 00000 00000 00000 01100 01100",
    ",": "00000 00000 00000 00000 01100 00100 01000",
    "-": "00000 00000 00000 11111 00000 00000 00000",
    "+": "00000 00100 00100 11111 00100 00100 00000",
    "=": "00000 00000 11111 00000 11111 00000 00000",
    "/": "00001 00010 00010 00100 01000 01000 10000",
    "(": "00010 00100 01000 01000 01000 00100 00010",
    ")": "01000 00100 00010 00010 00010 00100 01000",
    ":": "00000 01100 01100 00000 01100 01100 00000",
    "$": "00100 01111 10100 01110 00101 11110 00100",
    "%": "11001 11010 00010 00100 01000 01011 10011",
    "'": "00100 00100 01000 00000 00000 00000 00000",
}
FONT: dict[str, list[str]] = {ch: rows.split() for ch, rows in _FONT_ROWS.items()}


class Canvas:
    """An RGB raster with just enough drawing for a line chart."""

    def __init__(self, width: int, height: int, background: Color = WHITE) -> None:
        self.width, self.height = width, height
        self.pixels = bytearray(bytes(background) * (width * height))

    def set(self, x: int, y: int, color: Color) -> None:
        if 0 <= x < self.width and 0 <= y < self.height:
            offset = (y * self.width + x) * 3
            self.pixels[offset : offset + 3] = bytes(color)

    def rect(self, x0: int, y0: int, x1: int, y1: int, color: Color) -> None:
        for y in range(min(y0, y1), max(y0, y1) + 1):
            for x in range(min(x0, x1), max(x0, x1) + 1):
                self.set(x, y, color)

    def line(self, x0: int, y0: int, x1: int, y1: int, color: Color, *, width: int = 1) -> None:
        """Bresenham, thickened by a square pen."""
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
        error = dx + dy
        half = width // 2
        while True:
            self.rect(x0 - half, y0 - half, x0 + half, y0 + half, color)
            if x0 == x1 and y0 == y1:
                return
            doubled = 2 * error
            if doubled >= dy:
                error += dy
                x0 += sx
            if doubled <= dx:
                error += dx
                y0 += sy

    def text(self, x: int, y: int, text: str, color: Color = BLACK, size: int = 2) -> int:
        """Draw upper-cased `text` with its top-left at (x, y); returns its width."""
        cursor = x
        for char in text.upper():
            rows = FONT.get(char, FONT[" "])
            for row, bits in enumerate(rows):
                for column, bit in enumerate(bits):
                    if bit == "1":
                        self.rect(
                            cursor + column * size,
                            y + row * size,
                            cursor + column * size + size - 1,
                            y + row * size + size - 1,
                            color,
                        )
            cursor += 6 * size
        return cursor - x

    def png(self) -> bytes:
        raw = b"".join(
            b"\x00" + bytes(self.pixels[y * self.width * 3 : (y + 1) * self.width * 3])
            for y in range(self.height)
        )
        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n"
            + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(raw, 9))
            + _chunk(b"IEND", b"")
        )


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def text_width(text: str, size: int = 2) -> int:
    return len(text) * 6 * size


def log_ticks(low: float, high: float) -> list[float]:
    """Powers of ten covering [low, high]."""
    return [10.0**e for e in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)]


def series_from_report(report: dict[str, Any]) -> dict[str, list[tuple[float, float]]]:
    """(build minutes, dollars per action run) for each line of the chart."""
    usd = report.get("usd_per_build_at_schedule") or report["usd_per_build"]
    alternatives = report["alternatives_usd_per_build"]
    daemon_key = next(k for k in alternatives if k.startswith("daemon_per_build"))
    minutes = sorted(float(m) for m in usd["polling"])
    return {
        "polling": [(m, usd["polling"][_key(m)]) for m in minutes],
        "push": [(m, usd["push"][_key(m)]) for m in minutes],
        "daemon": [(m, alternatives[daemon_key]) for m in (minutes[0], minutes[-1])],
        "codebuild": [(m, alternatives["codebuild_wrapper"][_key(m)]) for m in minutes],
    }


def _key(minutes: float) -> str:
    return str(int(minutes)) if minutes == int(minutes) else str(minutes)


LABELS = {
    "polling": "POLLING",
    "push": "PUSH (WEBHOOK)",
    "daemon": "DAEMON, 1000 RUNS/MO",
    "codebuild": "CODEBUILD + SLEEP",
}


def draw(series: dict[str, list[tuple[float, float]]], title: str, footnote: str) -> Canvas:
    canvas = Canvas(WIDTH, HEIGHT)
    x0, x1 = LEFT, WIDTH - RIGHT
    y0, y1 = HEIGHT - BOTTOM, TOP
    points = [p for line in series.values() for p in line]
    x_max = max(p[0] for p in points)
    ticks = log_ticks(min(p[1] for p in points), max(p[1] for p in points))
    low, high = math.log10(ticks[0]), math.log10(ticks[-1])

    def px(minutes: float) -> int:
        return round(x0 + (x1 - x0) * minutes / x_max)

    def py(usd: float) -> int:
        return round(y0 - (y0 - y1) * (math.log10(usd) - low) / (high - low))

    for tick in ticks:
        y = py(tick)
        canvas.line(x0, y, x1, y, GREY)
        label = f"${tick:g}"
        canvas.text(x0 - 10 - text_width(label), y - 7, label)
    for minute in _minute_ticks(x_max):
        x = px(minute)
        canvas.line(x, y0, x, y1, GREY)
        label = f"{minute:g}"
        canvas.text(x - text_width(label) // 2, y0 + 10, label)
    canvas.line(x0, y0, x1, y0, BLACK, width=2)
    canvas.line(x0, y0, x0, y1, BLACK, width=2)
    for name, line in series.items():
        color = SERIES_COLORS[name]
        for (ma, ua), (mb, ub) in itertools.pairwise(line):
            canvas.line(px(ma), py(ua), px(mb), py(ub), color, width=3)
        for minutes, usd in line:
            canvas.rect(px(minutes) - 4, py(usd) - 4, px(minutes) + 4, py(usd) + 4, color)
    legend_y = TOP + 10
    for name in series:
        canvas.rect(x1 + 20, legend_y, x1 + 40, legend_y + 12, SERIES_COLORS[name])
        canvas.text(x1 + 48, legend_y, LABELS[name], size=1)
        legend_y += 28
    canvas.text(LEFT, 20, title)
    axis = "BUILD LENGTH (MINUTES)"
    canvas.text((x0 + x1 - text_width(axis)) // 2, HEIGHT - 45, axis)
    canvas.text(10, TOP - 30, "$ PER ACTION RUN (LOG)", size=1)
    canvas.text(LEFT, HEIGHT - 18, footnote, size=1)
    return canvas


def _minute_ticks(x_max: float) -> Sequence[float]:
    step = 10 if x_max > 30 else 2
    return [float(m) for m in range(0, int(x_max) + 1, step)]


def write_cost_chart(path: Path, report: dict[str, Any]) -> None:
    prices = report.get("prices", {})
    footnote = (
        f"MEASURED LOCALLY AT 2, 10, 60 MIN; US-EAST-1 LIST PRICES {prices.get('as_of', '')}; "
        "FREE TIERS IGNORED"
    )
    canvas = draw(series_from_report(report), "COST PER ACTION RUN", footnote)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(canvas.png())
