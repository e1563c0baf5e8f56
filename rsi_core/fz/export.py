"""PNG export of FZs from the bank: one file per channel and a grid per tap."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def grid(images: np.ndarray, columns: int = 8, pad: int = 4) -> np.ndarray:
    """[N, H, W, 3] uint8 -> one white-padded grid image."""
    n, h, w, _ = images.shape
    rows = -(-n // columns)
    cols = min(columns, n)
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), 255, np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, columns)
        out[pad + r * (h + pad):pad + r * (h + pad) + h, pad + c * (w + pad):pad + c * (w + pad) + w] = im
    return out


def export_pngs(bank, tap: str, channels, folder) -> Path:
    """Write ``TAP/chNNN.png`` per channel and ``TAP-grid.png``; return the grid's path."""
    folder = Path(folder)
    (folder / tap).mkdir(parents=True, exist_ok=True)
    images = bank.get(tap, channels)["image"]
    for c, im in zip(channels, images):
        Image.fromarray(im).save(folder / tap / f"ch{c:03d}.png")
    path = folder / f"{tap}-grid.png"
    Image.fromarray(grid(images)).save(path)
    return path
