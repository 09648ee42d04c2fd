"""Loss curves as a small PNG, drawn without a plotting library (matplotlib is not a dependency).

Two panels side by side: SoVITS (the mel reconstruction loss, the KL loss and the generator's
adversarial loss, each scaled to its own range) and GPT (the summed cross-entropy per batch).
Each curve is a moving average over 5 steps; the panel says nothing about absolute values:
the CSV files beside the PNG hold them.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from synth.files import atomic_write_bytes

WIDTH, HEIGHT, MARGIN = 320, 200, 10
COLOURS = ((200, 40, 40), (40, 120, 200), (40, 160, 60))


def _png(pixels: np.ndarray) -> bytes:
    """[H, W, 3] uint8 -> PNG bytes."""
    h, w, _ = pixels.shape
    raw = b"".join(b"\x00" + pixels[y].tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def _draw(panel: np.ndarray, values: list[float], colour: tuple[int, int, int]) -> None:
    if len(values) < 2:
        return
    v = (
        np.convolve(np.asarray(values, dtype=np.float64), np.ones(5) / 5, mode="valid")
        if len(values) >= 5
        else np.asarray(values)
    )
    lo, hi = float(v.min()), float(v.max())
    span = hi - lo or 1.0
    h, w, _ = panel.shape
    xs = np.linspace(MARGIN, w - MARGIN - 1, len(v))
    ys = (h - MARGIN - 1) - (v - lo) / span * (h - 2 * MARGIN - 1)
    for (x0, y0), (x1, y1) in zip(zip(xs, ys, strict=True), zip(xs[1:], ys[1:], strict=True), strict=False):
        n = int(max(abs(x1 - x0), abs(y1 - y0))) + 1
        for t in np.linspace(0, 1, n + 1):
            panel[round(float(y0 + (y1 - y0) * t)), round(float(x0 + (x1 - x0) * t))] = colour


def loss_curves(path: Path, s2_rows: list[dict], s1_rows: list[dict]) -> Path:
    """Write the two panels to ``path`` (PNG)."""
    image = np.full((HEIGHT, 2 * WIDTH, 3), 255, dtype=np.uint8)
    image[:, WIDTH - 1] = 160
    left, right = image[:, : WIDTH - 1], image[:, WIDTH:]
    for column, colour in zip(("loss_mel", "loss_kl", "loss_gen"), COLOURS, strict=True):
        _draw(left, [float(r[column]) for r in s2_rows], colour)
    _draw(right, [float(r["loss"]) for r in s1_rows], COLOURS[0])
    return atomic_write_bytes(path, _png(image))
