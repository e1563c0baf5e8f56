"""The paper's FZ transforms, drawn per batch element, and its per-tap jitter table (SPEC, A.2).

lucent draws every transform parameter with numpy's global RNG, once per step for the whole
batch. Here each element has its own ``numpy.random.Generator`` and draws its own parameters in
lucent's order (jitter dx, dy; scale; angle; second jitter dx, dy) with lucent's calls
(``choice``); the operations are those lucent 0.1.8 runs (reflect pad, kornia 0.4.1's
``translate`` and ``warp_affine`` with per-element matrices, ``Upsample`` + lucent's padding for
the scale, centre crop), re-implemented here with kornia 0.4.1's conventions (``_warp_theta``:
pixel matrices normalized with align_corners=True corners, sampled with align_corners=False), so
neither package is needed to render. Element n is then exactly what a lucent ``render_vis`` run
of its own computes with the same draws (``rsi_core.fz.bench.lucent_draws`` drives lucent with
such a generator; ``tests/test_reference.py`` checks it bit for bit where the ``[reference]``
extra is installed). Scale changes the image size, so elements are grouped by drawn scale:
``apply`` returns groups of (indices, images).

``cut`` computes the same chain for one element over a window of its output only (the centre
neuron's receptive field): from the scale on, each step is evaluated only where the next one
reads it, with the same sampling coordinates (kornia's grids), so the values are ``apply``'s bit
for bit, and the backward runs over the window's reach only.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import cache, lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.transforms.functional import center_crop

from rsi_core.model.anatomy import anatomy_of
from rsi_core.paper import DEFAULT_JITTER, IMAGE_SIZE, JITTER_BY_RF, JITTER_TABLES, TABLE_MODELS

SCALES = [1, 0.975, 1.025, 0.95, 1.05]
ANGLES = list(range(-5, 6))
_SCALE_VALUES, _ANGLE_VALUES = np.array(SCALES), np.array(ANGLES)  # what rng.choice returns


def jitter_for(tap: str, table: str = "paper") -> int:
    """Jitter of ``tap`` (give the canonical tap: a simple block's I is the previous block's O)."""
    try:
        entries = JITTER_TABLES[table]
    except KeyError:
        raise ValueError(f"unknown jitter table {table!r}: use one of {', '.join(JITTER_TABLES)}") from None
    return entries.get(tap, DEFAULT_JITTER if table != "none" else 0)


def jitter_of(model, tap: str, table: str = "paper") -> int:
    """Jitter of canonical ``tap`` of ``model``: the table for resnet18 (and the planted
    networks), for any other model the rule of receptive field (``paper.JITTER_BY_RF``);
    table "none" is no jitter for every model. A family that takes one image side only (a
    ViT) has jitter 4 at least: below 4 the transforms change the image's side (SPEC, A.2)."""
    record = anatomy_of(model)
    if table == "none" or record.origin.model in TABLE_MODELS:
        return jitter_for(tap, table)
    jitter_for(tap, table)  # an unknown table is an error here too
    rf = record.receptive_field(tap, IMAGE_SIZE)
    jitter = next((j for limit, j in JITTER_BY_RF if rf <= limit), DEFAULT_JITTER)
    return max(jitter, 4) if record.family.input_side else jitter


def _ranges(jitter: int) -> list[int]:
    """The range of each draw of one step, in lucent's order (jitter dx, dy; scale; angle; second
    jitter dx, dy)."""
    if jitter >= 4:
        return [jitter, jitter, len(SCALES), len(ANGLES), jitter // 2, jitter // 2]
    return [len(SCALES), len(ANGLES)]


_LOW = np.uint64(0xFFFFFFFF)


def _choices(rngs, highs: np.ndarray) -> np.ndarray:
    """[len(rngs), len(highs)]: ``rng.choice(h)`` for each ``h`` in turn, for each generator,
    computed from its raw stream in one go. numpy's bounded draw is Lemire's multiply-shift on the
    generator's next 32 bits (PCG64 hands out each 64-bit output as two halves, low first); where
    numpy would reject a draw and draw again (a low product under (2^32 - h) mod h: about once in
    10^9 draws here), that generator's draws are made by numpy itself, one by one."""
    h = highs.astype(np.uint64)
    out = np.empty((len(rngs), len(h)), dtype=np.int64)
    for i, rng in enumerate(rngs):
        state = rng.bit_generator.state
        carry = np.array([state["uinteger"]] if state["has_uint32"] else [], dtype=np.uint64)
        raw = rng.bit_generator.random_raw((len(h) - len(carry) + 1) // 2)
        bits = np.concatenate([carry, np.stack([raw & _LOW, raw >> np.uint64(32)], 1).ravel()])[:len(h)]
        product = bits * h
        if ((product & _LOW) < (np.uint64(2 ** 32) - h) % h).any():
            rng.bit_generator.state = state
            out[i] = [rng.choice(int(v)) for v in highs]
        else:
            out[i] = product >> np.uint64(32)
    return out


@dataclass(frozen=True)
class Draws:
    """Every transform parameter of a run, drawn up front: each element's own generator makes
    lucent's draws in lucent's order, step after step, exactly as ``rng.choice`` would one at a
    time. Arrays are [steps, N] (shifts [steps, N, 2]); scale and angle are indices into
    ``SCALES`` and ``ANGLES``; shifts are None below jitter 4."""
    jitter: int
    scale: np.ndarray
    angle: np.ndarray
    shift: np.ndarray | None = None
    shift2: np.ndarray | None = None

    @classmethod
    def run(cls, rngs, jitter: int, steps: int) -> Draws:
        """The draws of ``steps`` steps; the generators are used up."""
        per_step = _ranges(jitter)
        drawn = _choices(rngs, np.tile(per_step, steps)).reshape(len(rngs), steps, len(per_step)).transpose(1, 0, 2)
        if jitter >= 4:
            return cls(jitter, drawn[..., 2], drawn[..., 3], drawn[..., 0:2], drawn[..., 4:6])
        return cls(jitter, drawn[..., 0], drawn[..., 1])

    def step(self, s: int) -> list[dict]:
        """Step ``s``'s parameters, one dict per element (``apply``'s and ``cut``'s input)."""
        out = []
        for n in range(self.scale.shape[1]):
            d = {"scale": _SCALE_VALUES[self.scale[s, n]], "angle": _ANGLE_VALUES[self.angle[s, n]]}
            if self.shift is not None:
                d["shift"], d["shift2"] = tuple(self.shift[s, n]), tuple(self.shift2[s, n])
            out.append(d)
        return out


# ------------------------------------------------------------ affine warps (kornia 0.4.1's conventions)
_PI = torch.tensor(3.14159265358979323846)  # float32 pi: degrees -> radians as kornia 0.4.1 converts them


def _rotation(angles, n: int) -> torch.Tensor:
    """[B, 3, 3] pixel matrices of rotations by ``angles`` degrees (counter-clockwise on screen)
    about the centre ((n - 1) / 2, (n - 1) / 2) of a side-``n`` image; float32, with kornia
    0.4.1's ``get_rotation_matrix2d`` arithmetic (unit scale): [[a, b, (1 - a) x - b y],
    [-b, a, b x + (1 - a) y]] with a = cos, b = sin, so rotated pixels round as lucent's."""
    rad = torch.ones(len(angles)) * torch.tensor([float(a) for a in angles]) * _PI / 180.0
    a, b = torch.cos(rad), torch.sin(rad)
    centre = torch.full((len(angles),), (n - 1) / 2)
    one = torch.tensor(1.0)
    m = torch.zeros(len(angles), 3, 3)
    m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1], m[:, 2, 2] = a, b, -b, a, 1.0
    m[:, 0, 2] = (one - a) * centre - b * centre
    m[:, 1, 2] = b * centre + (one - a) * centre
    return m


def _translation(shifts) -> torch.Tensor:
    """[B, 3, 3] pixel matrices of translations by (dx, dy) per element."""
    m = torch.eye(3).repeat(len(shifts), 1, 1)
    m[:, :2, 2] += torch.tensor([[float(v) for v in s] for s in shifts])
    return m


def _pixels_to_unit(n: int) -> torch.Tensor:
    """[1, 3, 3]: pixel coordinates of a side-``n`` image to [-1, 1], pixel centres 0 and n - 1 at
    the ends (kornia 0.4.1's normalization, whatever the sampling's align_corners)."""
    m = torch.tensor([[1.0, 0.0, -1.0], [0.0, 1.0, -1.0], [0.0, 0.0, 1.0]])
    m[0, 0] = m[0, 0] * 2.0 / (n - 1.0)
    m[1, 1] = m[1, 1] * 2.0 / (n - 1.0)
    return m[None]


def _warp_theta(m: torch.Tensor, n: int) -> torch.Tensor:
    """[B, 2, 3] sampling matrices (output -> input, in [-1, 1]) of the pixel matrices ``m``
    [B, 3, 3] (input -> output) on a side-``n`` image: kornia 0.4.1's ``warp_affine`` chain
    (normalize, then invert; the same products and inversions in the same order)."""
    unit = _pixels_to_unit(n)
    return torch.inverse(unit @ (m @ torch.inverse(unit)))[:, :2, :]


def _translate(x: torch.Tensor, shifts) -> torch.Tensor:
    """kornia 0.4.1's ``translate`` of each element of ``x`` by its (dx, dy) in pixels."""
    return _sample(x, _warp_theta(_translation(shifts), x.shape[-1]).to(x.device))


def _scaled(n: int, scale) -> tuple[int, int]:
    """lucent's ``random_scale`` of a side-``n`` image: (the resized side, the zero padding on
    each end, none when it grew)."""
    size = int(np.ceil(scale * n))
    return size, max(0, int(np.ceil((n - size) / 2)))


def _scale(x: torch.Tensor, scale) -> torch.Tensor:
    """lucent's ``random_scale`` body for a drawn scale (its ``Upsample``, its padding order)."""
    (size_y, pad_y), (size_x, pad_x) = (_scaled(d, scale) for d in x.shape[2:])
    x = F.interpolate(x, size=[size_y, size_x], mode="bilinear", align_corners=True)
    return F.pad(x, [pad_y, pad_x] * 2) if pad_y or pad_x else x


def _rotate(x: torch.Tensor, angles) -> torch.Tensor:
    """lucent's ``random_rotate`` body with one angle per element."""
    return _sample(x.float(), _warp_theta(_rotation(angles, x.shape[-1]), x.shape[-1]).to(x.device))


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


def _sample(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """kornia 0.4.1's ``warp_affine`` of ``x`` with its sampling matrices ``theta`` [B, 2, 3]
    (``_warp_theta``): bilinear, zeros outside, align_corners=False (kornia >= 0.5 changed
    that default, which would move every rotated pixel)."""
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


class BatchedChain:
    """``apply`` for every element of a batch at every step of a run, as batched tensor
    operations with no host data inside a step: each element's warp matrices for every step
    (``_warp_matrix``, as ``cut`` computes them) and the order that groups the batch by drawn
    scale go to the device once, so a step's host cost does not grow with the batch. Scales
    whose images come out the same size are rotated and shifted together. ``key(k)``: how the
    caller groups scale ``k``'s images (runs with equal keys come out adjacent). Values are
    ``apply``'s to float rounding."""

    def __init__(self, draws: Draws, device, size: int = 224, key=lambda k: 0):
        j = self.jitter = draws.jitter
        self.size = size
        padded = size + 2 * j if j >= 4 else size
        self.sides = [final_side({"scale": s}, 0, padded) for s in SCALES]  # after the scale
        self.crops = [_Crop(n, size).offset for n in self.sides]
        order = sorted(range(len(SCALES)), key=lambda k: (key(k), self.sides[k]))
        rank = np.empty(len(SCALES), dtype=np.int64)
        rank[order] = np.arange(len(SCALES))
        perm = np.argsort(rank[draws.scale], axis=1, kind="stable")  # [steps, N]: grouped by scale
        self.perm = torch.as_tensor(perm, device=device)
        self.runs = []  # per step: (lo, hi, [(scale index, lo, hi), ...]) per run of one image side
        for count in (draws.scale[..., None] == np.arange(len(SCALES))).sum(1).tolist():
            ends = np.cumsum([count[k] for k in order]).tolist()
            groups = [(k, e - count[k], e) for k, e in zip(order, ends) if count[k]]
            self.runs.append([(run[0][1], run[-1][2], run) for run in
                              (list(r) for _, r in itertools.groupby(groups, key=lambda g: self.sides[g[0]]))])

        def grouped(a):
            return torch.as_tensor(np.take_along_axis(a, perm.reshape(perm.shape + (1,) * (a.ndim - 2)), axis=1))

        def table(kind, values, n):
            return torch.cat([_warp_matrix(kind, tuple(int(x) for x in v), n) for v in values])

        scale, angle = grouped(draws.scale), grouped(draws.angle)
        rotations = torch.stack([table("rotate", [(a,) for a in ANGLES], n) for n in self.sides])
        self.rotate = rotations[scale, angle].to(device)  # [steps, N, 2, 3]
        if j >= 4:
            shift, shift2 = grouped(draws.shift), grouped(draws.shift2)
            grid = [(dx, dy) for dx in range(j) for dy in range(j)]
            self.shift = table("translate", grid, padded)[shift[..., 0] * j + shift[..., 1]].to(device)
            grid2 = [(dx, dy) for dx in range(j // 2) for dy in range(j // 2)]
            second = torch.stack([table("translate", grid2, n) for n in self.sides])
            self.shift2 = second[scale, shift2[..., 0] * (j // 2) + shift2[..., 1]].to(device)

    def __call__(self, x: torch.Tensor, s: int) -> list[tuple[int, int, int, torch.Tensor]]:
        """Step ``s`` of ``x`` [N, 3, size, size]: (a scale index, lo, hi, images) per run of
        one side, its elements ``self.perm[s][lo:hi]``."""
        x = x.index_select(0, self.perm[s])
        if self.jitter >= 4:
            x = _sample(F.pad(x, [self.jitter] * 4, mode="reflect"), self.shift[s])
            shift2 = self.shift2[s]
        rotate, out = self.rotate[s], []
        for lo, hi, run in self.runs[s]:
            parts = [_scale(x[a:b], SCALES[k]) for k, a, b in run]
            g = _sample(torch.cat(parts) if len(parts) > 1 else parts[0], rotate[lo:hi])
            if self.jitter >= 4:
                o = self.crops[run[0][0]]
                g = _sample(g, shift2[lo:hi])[..., o:o + self.size, o:o + self.size]
            out.append((run[0][0], lo, hi, g))
        return out


# ------------------------------------------------------------ the chain over a window of its output
# A window is (y0, y1, x0, x1), stop exclusive, in a step's own (square) image coordinates: a
# step's ``need`` says which window of its input a window of its output reads, its ``run``
# computes that output window (the one ``need`` was last asked for) from that input window. The
# forward values are those of the whole image bit for bit (downstream, ReLUs and max-pools would
# turn any rounding difference into another gradient); the gradient is the same to float
# rounding (sums in another order), as the cone's own is. Up to the scale, the steps run on the
# whole image: torch's bilinear kernel rounds by thread count and would round differently again
# on a part of the image.

class _Warp:
    """kornia 0.4.1's ``warp_affine`` (as ``translate`` and lucent's ``random_rotate`` call it) of a
    side-``n`` image (``matrix``: ``_warp_matrix``'s kind and value), its sampling grid computed
    over the window only (``F.affine_grid``'s own steps: the same base coordinates and matrix)."""

    def __init__(self, matrix: tuple, n: int):
        self.matrix, self.n = matrix, n
        self.grid = None  # the sampling grid of the output window ``need`` was asked for

    def need(self, w):
        self.grid, window = _reach(self.matrix, self.n, tuple(w))
        return window

    def run(self, x, w_in, w):
        canvas = F.pad(x, [w_in[2], self.n - w_in[3], w_in[0], self.n - w_in[1]])  # zeros are never read
        return F.grid_sample(canvas, self.grid.to(x.device), mode="bilinear", padding_mode="zeros",
                             align_corners=False)


def _grid(matrix: tuple, n: int, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """[1, len(ys), len(xs), 2]: ``F.affine_grid``'s sampling grid of ``_warp_matrix(*matrix, n)``
    at the base coordinates ``xs`` (columns) and ``ys`` (rows), bit for bit. A translation's
    (``_shift_only``) is x + c and y + d: the products by 1 and 0 in affine_grid's matrix product
    are exact, so its sum rounds as that addition whatever the order, at a fraction of the cost."""
    theta = _warp_matrix(*matrix, n)
    if _shift_only(matrix, n):
        gx = (xs + theta[0, 0, 2]).view(1, -1).expand(len(ys), -1)
        gy = (ys + theta[0, 1, 2]).view(-1, 1).expand(-1, len(xs))
        return torch.stack([gx, gy], -1)[None]
    base = torch.stack(torch.broadcast_tensors(xs.view(1, -1), ys.view(-1, 1), torch.ones(1, 1)), -1)
    return base.view(1, -1, 3).bmm(theta.transpose(1, 2)).view(1, len(ys), len(xs), 2)


@lru_cache(maxsize=4096)
def _shift_only(matrix: tuple, n: int) -> bool:
    """Whether the sampling matrix's linear part is exactly the identity (a translation's is at
    most sides; at a few, kornia's normalization rounds its diagonal to 1 + 2^-23)."""
    return torch.equal(_warp_matrix(*matrix, n)[0, :, :2], torch.eye(2))


def _reach(matrix: tuple, n: int, w: tuple) -> tuple[torch.Tensor, tuple]:
    """(the sampling grid of output window ``w`` of ``_Warp(matrix, n)``, the window of its input
    that grid reads: every bilinear tap, one pixel of margin). A rotation's is computed once
    (``_rotation_reach``: few distinct angles, sides and windows)."""
    if matrix[0] == "rotate":
        return _rotation_reach(matrix, n, w)
    return _compute_reach(matrix, n, w)


def _compute_reach(matrix: tuple, n: int, w: tuple) -> tuple[torch.Tensor, tuple]:
    base = _base_coordinates(n)
    grid = _grid(matrix, n, base[w[2]:w[3]], base[w[0]:w[1]])
    # a translation's x depends on the column only, its y on the row: one row and one column hold every value
    xy = (grid[0, 0, :, 0], grid[0, :, 0, 1]) if _shift_only(matrix, n) else (grid[0, ..., 0], grid[0, ..., 1])
    lo, hi = [], []
    for g in xy:
        pixels = ((g + 1) * n - 1) / 2  # grid_sample's coordinate in pixels
        lo.append(int((pixels.amin().floor().long() - 1).clamp(0, n - 1)))
        hi.append(max(int((pixels.amax().floor().long() + 3).clamp(1, n)), lo[-1] + 1))
    return grid, (lo[1], hi[1], lo[0], hi[0])


_rotation_reach = lru_cache(maxsize=128)(_compute_reach)  # 11 angles x 5 sides per window: under 75 MB


@lru_cache(maxsize=4096)
def _warp_matrix(kind: str, value: tuple, n: int) -> torch.Tensor:
    """[1, 2, 3] sampling matrix of a translation by ``value`` or a rotation by ``value[0]``
    degrees about the centre of a side-``n`` image (``_warp_theta``; few distinct draws: cached)."""
    return _warp_theta(_translation([value]) if kind == "translate" else _rotation([value[0]], n), n)


@cache
def _base_coordinates(n: int) -> torch.Tensor:
    """``F.affine_grid``'s base coordinates of a side-n grid (align_corners=False)."""
    return torch.linspace(-1, 1, n) * (n - 1) / n


class _Crop:
    """torchvision's ``center_crop`` of a side-``n`` image to ``size`` (n >= size)."""

    def __init__(self, n: int, size: int):
        self.offset = int(round((n - size) / 2.0))

    def need(self, w):
        return tuple(v + self.offset for v in w)

    def run(self, x, w_in, w):
        return x


class _ScaledWindow(torch.autograd.Function):
    """A window of ``_scale(x, scale)`` (the whole image, torch's own kernel), whose backward
    scatters the window's gradient with the same bilinear weights into the pixels it read only,
    instead of running torch's backward over the whole scaled image."""

    @staticmethod
    def forward(ctx, x, scale: float, w):
        with torch.no_grad():
            out = _scale(x, scale)
        ctx.shape, ctx.scale, ctx.window = x.shape, scale, w
        return out[:, :, w[0]:w[1], w[2]:w[3]].contiguous()

    @staticmethod
    def backward(ctx, grad):
        n = ctx.shape[-1]
        size, pad = _scaled(n, ctx.scale)
        y0, y1, x0, x1 = (min(max(v - pad, 0), size) for v in ctx.window)
        g = grad[:, :, y0 + pad - ctx.window[0]:y1 + pad - ctx.window[0],
                 x0 + pad - ctx.window[2]:x1 + pad - ctx.window[2]]  # the padding has no source
        out = grad.new_zeros(ctx.shape)
        if g.numel():
            (r0, r1, wy0, wy1), (c0, c1, wx0, wx1) = (_bilinear_taps(n, size, a, b, grad.device)
                                                      for a, b in ((y0, y1), (x0, x1)))
            rows = grad.new_zeros(*g.shape[:3], n)
            rows.index_add_(3, c0, g * wx0).index_add_(3, c1, g * wx1)
            out.index_add_(2, r0, rows * wy0.view(-1, 1)).index_add_(2, r1, rows * wy1.view(-1, 1))
        return out, None, None


def _bilinear_taps(n: int, size: int, a: int, b: int, device):
    """torch's bilinear (align_corners) source indices and weights of outputs a..b-1 of an
    n -> size resize (float32, as its CPU kernel computes them)."""
    src = np.float32(n - 1) / np.float32(size - 1) * np.arange(a, b, dtype=np.float32)
    i0 = np.minimum(np.floor(src).astype(np.int64), n - 1)
    lam = torch.as_tensor(np.clip(src - i0.astype(np.float32), 0, 1).astype(np.float32), device=device)
    return (torch.as_tensor(i0, device=device), torch.as_tensor(i0 + (i0 < n - 1), device=device), 1 - lam, lam)


def final_side(p: dict, jitter: int, size: int = 224) -> int:
    """Side of one element's transformed image: ``size`` after the centre crop (jitter >= 4),
    else the scaled side (``_scale``'s)."""
    scaled, pad = _scaled(size, p["scale"])
    return size if jitter >= 4 else scaled + 2 * pad


def cut(x: torch.Tensor, p: dict, jitter: int, window, size: int = 224) -> torch.Tensor:
    """``apply`` of one element ``x`` [1, 3, 224, 224] with draws ``p``, only over ``window``
    (y0, y1, x0, x1) of its output: ``apply(x, [p], jitter)[0][1][..., y0:y1, x0:x1]`` bit for
    bit, its input gradient to float rounding."""
    if jitter >= 4:
        x = F.pad(x, [jitter] * 4, mode="reflect")
        base = _base_coordinates(x.shape[-1])
        grid = _grid(("translate", tuple(int(v) for v in p["shift"])), x.shape[-1], base, base)
        x = F.grid_sample(x, grid.to(x.device), mode="bilinear", padding_mode="zeros", align_corners=False)
    n = final_side(p, 0, x.shape[-1])
    stages = [_Warp(("rotate", (p["angle"],)), n)]
    if jitter >= 4:
        stages += [_Warp(("translate", tuple(p["shift2"])), n), _Crop(n, size)]
    windows = [tuple(int(v) for v in window)]
    for stage in reversed(stages):
        windows.insert(0, stage.need(windows[0]))
    region = _ScaledWindow.apply(x, float(p["scale"]), windows[0])
    for stage, w_in, w in zip(stages, windows, windows[1:]):
        region = stage.run(region, w_in, w)
    return region
