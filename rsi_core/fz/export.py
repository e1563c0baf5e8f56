"""PNG export of FZs from the bank: one file per channel and a labelled grid per tap.

The grid names each panel's channel and ends with a footer saying what made it (model, weights,
tap, FZ settings, device), as every figure of the report does: a grid passed around alone still
says where it came from.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from rsi_core.model.load import describe

LABEL = 14    # pixels under each panel for its channel label
LINE = 13     # pixels per footer line


def grid(images: np.ndarray, columns: int = 8, pad: int = 4, labels=None, footer: str = "") -> np.ndarray:
    """[N, H, W, 3] uint8 -> one white-padded grid image; ``labels`` (one per image) under the
    panels, ``footer`` (wrapped) below the grid."""
    n, h, w, _ = images.shape
    rows = -(-n // columns)
    cols = min(columns, n)
    cell = h + pad + (LABEL if labels is not None else 0)
    width = cols * (w + pad) + pad
    wrapped = textwrap.wrap(footer, max(20, width // 6)) if footer else []
    out = np.full((rows * cell + pad + LINE * len(wrapped) + (pad if wrapped else 0), width, 3), 255, np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, columns)
        out[pad + r * cell:pad + r * cell + h, pad + c * (w + pad):pad + c * (w + pad) + w] = im
    if labels is None and not wrapped:
        return out
    page = Image.fromarray(out)
    draw, font = ImageDraw.Draw(page), ImageFont.load_default()
    for i, label in enumerate(labels if labels is not None else []):
        r, c = divmod(i, columns)
        draw.text((pad + c * (w + pad), pad + r * cell + h + 1), str(label), fill=(0, 0, 0), font=font)
    for k, text in enumerate(wrapped):
        draw.text((pad, rows * cell + pad + k * LINE), text, fill=(77, 77, 77), font=font)
    return np.asarray(page)


def provenance_footer(bank, tap: str) -> str:
    """What made ``bank``'s FZs of ``tap``: model, weights, the tap, every FZ setting, device."""
    d = describe(bank.model)
    settings = ", ".join(f"{k} {v}" for k, v in bank.settings.describe().items())
    return (f"{d.get('model', '?')} | weights {d.get('weights', '?')} (id {d.get('weights_id', '?')}) | "
            f"tap {tap} | FZ {settings} | device {bank.device}")


def export_pngs(bank, tap: str, channels, folder) -> Path:
    """Write ``TAP/chNNN.png`` per channel and ``TAP-grid.png`` (labelled, with its provenance
    footer); return the grid's path."""
    folder = Path(folder)
    (folder / tap).mkdir(parents=True, exist_ok=True)
    images = bank.get(tap, channels)["image"]
    for c, im in zip(channels, images):
        Image.fromarray(im).save(folder / tap / f"ch{c:03d}.png")
    path = folder / f"{tap}-grid.png"
    Image.fromarray(grid(images, labels=[f"{tap} ch {c}" for c in channels],
                        footer=provenance_footer(bank, tap))).save(path)
    return path
