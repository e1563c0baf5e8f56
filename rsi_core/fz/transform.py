"""The paper's FZ transforms, drawn per batch element, and its per-tap jitter table (SPEC, A.2).

lucent draws every transform parameter with numpy's global RNG, once per step for the whole
batch. Here each element has its own ``numpy.random.Generator`` and draws its own parameters in
lucent's order (jitter dx, dy; scale; angle; second jitter dx, dy) with lucent's calls
(``choice``); the operations are lucent's own (reflect pad, kornia ``translate`` and
``warp_affine`` with per-element matrices, ``Upsample`` + lucent's padding for the scale, centre
crop). Element n is then exactly what a lucent ``render_vis`` run of its own computes with the
same draws (``lucent_draws`` drives lucent with such a generator). Scale changes the image size,
so elements are grouped by drawn scale: ``apply`` returns groups of (indices, images).
"""
from __future__ import annotations

import contextlib
import types

import kornia
import numpy as np
import torch
import torch.nn.functional as F
from kornia.geometry.transform import translate
from lucent.optvis import transform as lucent_transform
from torchvision.transforms.functional import center_crop

SCALES = [1, 0.975, 1.025, 0.95, 1.05]
ANGLES = list(range(-5, 6))
DEFAULT_JITTER = 16

# Jitter per canonical tap (a simple block's I is the previous block's O: fz.render.canonical_tap);
# taps not listed use DEFAULT_JITTER. The simple blocks' I entries repeat the O they stand for.
_PAPER = {**{f"{b}.{t}": 0 for b in ("1.1", "2.0") for t in "IBO"}, "1.0.O": 0, "2.1.I": 0,
          "2.1.B": 4, **{f"3.0.{t}": 4 for t in "IBO"}, "3.1.I": 4}
JITTER_TABLES = {
    # appendix A.2: none for 1.1 and 2.0, 4 for 2.1's B and all of 3.0, 16 elsewhere
    "paper": _PAPER,
    # the authors' batch script (commit 4995852): the paper's table except 2.1.O at 4
    "authors-script": {**_PAPER, "2.1.O": 4},
    "none": {},
}


def jitter_for(tap: str, table: str = "paper") -> int:
    """Jitter of ``tap`` (give the canonical tap: a simple block's I is the previous block's O)."""
    try:
        entries = JITTER_TABLES[table]
    except KeyError:
        raise ValueError(f"unknown jitter table {table!r}: use one of {', '.join(JITTER_TABLES)}") from None
    return entries.get(tap, DEFAULT_JITTER if table != "none" else 0)


def draw(rngs, jitter: int) -> list[dict]:
    """One step's parameters for each element, drawn from its own generator in lucent's order."""
    out = []
    for rng in rngs:
        d = {}
        if jitter >= 4:
            d["shift"] = (rng.choice(jitter), rng.choice(jitter))
        d["scale"] = rng.choice(SCALES)
        d["angle"] = rng.choice(ANGLES)
        if jitter >= 4:
            d["shift2"] = (rng.choice(jitter // 2), rng.choice(jitter // 2))
        out.append(d)
    return out


def _translate(x: torch.Tensor, shifts) -> torch.Tensor:
    return translate(x, torch.tensor(shifts, dtype=torch.float32, device=x.device))


def _scale(x: torch.Tensor, scale) -> torch.Tensor:
    """lucent's ``random_scale`` body for a drawn scale (its padding order included)."""
    shp = x.shape[2:]
    scale_shape = [int(np.ceil(scale * d)) for d in shp]
    pad_x = max(0, int(np.ceil((shp[1] - scale_shape[1]) / 2)))
    pad_y = max(0, int(np.ceil((shp[0] - scale_shape[0]) / 2)))
    up = torch.nn.Upsample(size=scale_shape, mode="bilinear", align_corners=True)
    return F.pad(up(x), [pad_y, pad_x] * 2)


def _rotate(x: torch.Tensor, angles) -> torch.Tensor:
    """lucent's ``random_rotate`` body with one angle per element."""
    b, _, h, w = x.shape
    angle = torch.ones(b) * torch.tensor([float(a) for a in angles])
    center = torch.ones(b, 2)
    center[..., 0] = (w - 1) / 2
    center[..., 1] = (h - 1) / 2
    m = kornia.get_rotation_matrix2d(center, angle, torch.ones(b, 2)).to(x.device)
    return kornia.warp_affine(x.float(), m, dsize=(h, w))


def apply(x: torch.Tensor, params: list[dict], jitter: int, size: int = 224) -> list:
    """SPEC's transform chain with each element's own parameters: [(indices, images), ...], one
    group per drawn scale (images of one group share a size; with jitter >= 4 all are ``size``)."""
    if jitter >= 4:
        x = F.pad(x, [jitter] * 4, mode="reflect")
        x = _translate(x, [p["shift"] for p in params])
    groups = []
    for s in dict.fromkeys(p["scale"] for p in params):
        idx = [n for n, p in enumerate(params) if p["scale"] == s]
        g = _rotate(_scale(x[idx], s), [params[n]["angle"] for n in idx])
        if jitter >= 4:
            g = center_crop(_translate(g, [params[n]["shift2"] for n in idx]), [size, size])
        groups.append((idx, g))
    return groups


def transforms_for(jitter: int, device: torch.device | str = "cpu", size: int = 224) -> list:
    """SPEC's transform list for a jitter value, as lucent's own transforms (for ``render_vis``;
    normalization is applied after these)."""
    lucent_transform.device = torch.device(device)  # lucent builds its warp matrices there
    scale_rotate = [lucent_transform.random_scale(SCALES), lucent_transform.random_rotate(ANGLES)]
    if jitter < 4:
        return scale_rotate
    return [lucent_transform.pad(jitter), lucent_transform.jitter(jitter), *scale_rotate,
            lucent_transform.jitter(jitter // 2), lambda x: center_crop(x, [size, size])]


@contextlib.contextmanager
def lucent_draws(rng: np.random.Generator):
    """lucent's transforms draw from ``rng`` (instead of numpy's global RNG) inside this block."""
    shim = types.SimpleNamespace(**{k: getattr(np, k) for k in ("ceil", "pi")},
                                 random=types.SimpleNamespace(choice=rng.choice))
    saved = lucent_transform.np
    lucent_transform.np = shim
    try:
        yield
    finally:
        lucent_transform.np = saved
