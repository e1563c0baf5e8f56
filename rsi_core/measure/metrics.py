"""The paper's per-channel metrics (SPEC: "Mix ratio", "Scale invariance", "Mechanism analyses").

Everything here is a pure function of already measured centre-neuron activations (numpy
arrays of shape [C], one entry per channel of a block) or of a torchvision block's weights.
Measuring activations and making feature visualizations (FZs) happens elsewhere.

Naming used throughout: ``b_xi`` = B_c(X_hat_{I_c}) (block tap on the input tap's FZ),
``b_s_xi`` = B_c(S(X_hat_{I_c})), ``b_xb`` = B_c(X_hat_{B_c}), ``i_xb`` = I_c(X_hat_{B_c}),
``i_sinv_xb`` = I_c(S_inv(X_hat_{B_c})), ``i_xi`` = I_c(X_hat_{I_c}).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence

import numpy as np
import scipy.stats
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from torchvision.transforms import InterpolationMode

from rsi_core.paper import MIX_BAND, READINGS

__all__ = [
    "MIX_BINS",
    "mix_ratio",
    "failed_fzs",
    "top_mixes",
    "scale_up",
    "scale_down",
    "scale_criteria",
    "scale_metric",
    "scale_criteria_parts",
    "scale_metric_terms",
    "weight_magnitudes",
    "spearman",
    "anova_two_groups",
    "rowwise_spearman",
    "binomial_lower_bound",
    "hypergeom_overlap_p",
    "tracking_test",
]

#: Figure 2 histogram bin edges: 0 to 5 in steps of 0.25 (21 edges, 20 bins).
MIX_BINS = np.arange(0, 5.25, 0.25)


def _f64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def _reading(reading: str) -> str:
    if reading not in READINGS:
        raise ValueError(f"unknown reading {reading!r}: use one of {', '.join(READINGS)}")
    return reading


# --------------------------------------------------------------------------- mix ratio


def mix_ratio(o_on_input_fz, o_on_block_fz, clamp: float = 5.0) -> np.ndarray:
    """M_c = O_c(X_hat_{I_c}) / O_c(X_hat_{B_c}), the skip (high) / overwrite (low) spectrum.

    Sign rules from the paper: a denominator <= 0 means the block FZ does not drive the
    output, so the channel is a skip: M = ``clamp``. A numerator <= 0 (denominator > 0)
    means the input FZ does not reach the output: overwrite, M = 0. Otherwise the ratio,
    clamped to at most ``clamp``. Both <= 0 falls under the denominator rule (M = clamp);
    :func:`failed_fzs` flags those channels. NaN inputs give NaN.
    """
    num, den = np.broadcast_arrays(_f64(o_on_input_fz), _f64(o_on_block_fz))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratio = num / den
    m = np.minimum(ratio, clamp)
    m = np.where((num <= 0) & (den > 0), 0.0, m)
    m = np.where(den <= 0, float(clamp), m)
    return m


def failed_fzs(o_on_input_fz, o_on_block_fz) -> np.ndarray:
    """Channels where neither FZ gives a positive output (both <= 0): the FZs failed."""
    num, den = _f64(o_on_input_fz), _f64(o_on_block_fz)
    return (num <= 0) & (den <= 0)


def top_mixes(m, channels: Sequence[int], k: int = 3) -> list[int]:
    """The ``k`` channel ids whose M is closest to 1 (Figure 8), ties broken by channel id.

    ``channels[i]`` is the channel id of ``m[i]``. NaN M values sort last.
    """
    m = _f64(m)
    ch = np.asarray(channels)
    if m.shape != ch.shape or m.ndim != 1:
        raise ValueError(f"m and channels must be 1-D of equal length, got {m.shape}, {ch.shape}")
    dist = np.abs(m - 1.0)
    dist = np.where(np.isnan(dist), np.inf, dist)
    # np.lexsort's last key is primary: |M - 1|, then NaN-ness (NaN after +inf), then id
    order = np.lexsort((ch, np.isnan(m).astype(int), dist))
    return [int(c) for c in ch[order[:k]]]


# --------------------------------------------------------------------------- scaling


def scale_up(x: torch.Tensor) -> torch.Tensor:
    """S: zoom in 2x. Centre-crop to half size, then bilinear resize back ([N,C,H,W] -> same).

    Works on normalized tensors (the authors applied it after normalization). Antialiasing
    does nothing when enlarging; ``antialias=False`` is passed for reproducibility.
    """
    h, w = x.shape[-2:]
    crop = TF.center_crop(x, [h // 2, w // 2])
    return TF.resize(crop, [h, w], interpolation=InterpolationMode.BILINEAR, antialias=False)


def scale_down(x: torch.Tensor, antialias: bool = False) -> torch.Tensor:
    """S_inv: zoom out 2x. Bilinear resize to half size, then reflection-pad back to full size.

    ``antialias=False`` (default) is torchvision 0.15's tensor ``Resize`` behaviour, which the
    authors used; newer torchvision antialiases when shrinking. Record the setting with results.
    """
    h, w = x.shape[-2:]
    hs, ws = h // 2, w // 2
    small = TF.resize(x, [hs, ws], interpolation=InterpolationMode.BILINEAR, antialias=antialias)
    top, left = h // 4, w // 4
    pad = (left, w - ws - left, top, h - hs - top)  # (left, right, top, bottom)
    if small.dim() == 3:
        return F.pad(small.unsqueeze(0), pad, mode="reflect").squeeze(0)
    return F.pad(small, pad, mode="reflect")


def scale_criteria(
    m,
    b_xi,
    b_s_xi,
    i_xb,
    i_sinv_xb,
    use_mix: bool = True,
    mix_low: float = MIX_BAND[0],
    mix_high: float = MIX_BAND[1],
) -> np.ndarray:
    """Scale-invariant channels: all three strict criteria of the paper hold.

    1. ``mix_low < M < mix_high`` (skipped when ``use_mix`` is False: Figure 5's variant;
       ``m`` may then be None),
    2. ReLU(B_c(X_hat_{I_c})) < B_c(S(X_hat_{I_c})): the block responds more to the zoomed-in
       input feature than to the feature itself,
    3. ReLU(I_c(X_hat_{B_c})) < I_c(S_inv(X_hat_{B_c})): the input responds more to the
       zoomed-out block feature than to the feature itself.
    """
    c1, c2, c3 = scale_criteria_parts(m if use_mix else None, b_xi, b_s_xi, i_xb, i_sinv_xb, mix_low, mix_high)
    return c2 & c3 & c1 if use_mix else c2 & c3


def scale_criteria_parts(m, b_xi, b_s_xi, i_xb, i_sinv_xb, mix_low: float = MIX_BAND[0],
                         mix_high: float = MIX_BAND[1], *, reading: str = "as-written", b_xb=None,
                         i_xi=None) -> tuple:
    """Each of the three criteria on its own (criterion 1 is None when ``m`` is None): which one
    a channel fails. "as-written": :func:`scale_criteria`'s. "as-run" (the authors'
    ``stream_inspect.py``): criteria 2 and 3 are the clipped deltas of :func:`scale_deltas`
    divided by ``b_xb`` = B_c(X_hat_B) and ``i_xi`` = I_c(X_hat_I), > 0 (a negative denominator
    flips the criterion; a zero one gives +-inf or NaN, as numpy does)."""
    c1 = None if m is None else (mix_low < _f64(m)) & (_f64(m) < mix_high)
    d2, d3 = scale_deltas(b_xi, b_s_xi, i_xb, i_sinv_xb, reading)
    if reading == "as-written":
        return c1, d2 > 0, d3 > 0
    if b_xb is None or i_xi is None:
        raise ValueError("the as-run criteria need b_xb = B_c(X_hat_B) and i_xi = I_c(X_hat_I)")
    with np.errstate(divide="ignore", invalid="ignore"):
        return c1, d2 / _f64(b_xb) > 0, d3 / _f64(i_xi) > 0


def scale_deltas(b_xi, b_s_xi, i_xb, i_sinv_xb, reading: str = "as-written") -> tuple[np.ndarray, np.ndarray]:
    """Criteria 2's and 3's deltas: the scaled response minus the unscaled one. "as-written"
    (the text): ``B_c(S(X_I)) - ReLU(B_c(X_I))`` and ``I_c(S_inv(X_B)) - ReLU(I_c(X_B))``.
    "as-run" (SPEC: both versions of the authors' ``measure_invariance``) clips the scaled
    response too, ``ReLU(variant) - ReLU(base)``: a negative response to the zoomed (or shrunk)
    image counts as 0, so the delta is never negative where the base response is."""
    b_xi, b_s_xi, i_xb, i_sinv_xb = map(_f64, (b_xi, b_s_xi, i_xb, i_sinv_xb))
    variant = (lambda v: v) if _reading(reading) == "as-written" else (lambda v: np.maximum(v, 0.0))
    return variant(b_s_xi) - np.maximum(b_xi, 0.0), variant(i_sinv_xb) - np.maximum(i_xb, 0.0)


def scale_metric(b_xi, b_s_xi, b_xb, i_xb, i_sinv_xb, i_xi, reading: str = "as-written") -> np.ndarray:
    """SM_c = (B(S(X_I)) - ReLU(B(X_I))) / B(X_B) + (I(S_inv(X_B)) - ReLU(I(X_B))) / I(X_I).

    Each term is the criterion-2/3 delta (:func:`scale_deltas`, clipped on both sides as run)
    normalized by the tap's own FZ activation (its best response), so channels of different
    magnitude compare. Zero denominators give +-inf/NaN, without warnings.
    """
    zoom, shrink = scale_metric_terms(b_xi, b_s_xi, b_xb, i_xb, i_sinv_xb, i_xi, reading)
    return zoom + shrink


def scale_metric_terms(b_xi, b_s_xi, b_xb, i_xb, i_sinv_xb, i_xi,
                       reading: str = "as-written") -> tuple[np.ndarray, np.ndarray]:
    """SM's two terms: criterion 2's and criterion 3's deltas, each normalized by its tap's
    own FZ activation."""
    d2, d3 = scale_deltas(b_xi, b_s_xi, i_xb, i_sinv_xb, reading)
    with np.errstate(divide="ignore", invalid="ignore"):
        return d2 / _f64(b_xb), d3 / _f64(i_xi)


# --------------------------------------------------------------------------- mechanisms


def weight_magnitudes(block: torch.nn.Module) -> tuple[np.ndarray, np.ndarray]:
    """Per output channel of the block's last conv/BN (Figure 3).

    Returns (|last BN weight_c|, mean |last conv weight[c]|): ``bn2``/``conv2`` for a
    BasicBlock, ``bn3``/``conv3`` for a Bottleneck; the conv mean is over in-channels and
    kernel positions.
    """
    if hasattr(block, "bn3") and hasattr(block, "conv3"):
        bn, conv = block.bn3, block.conv3
    elif hasattr(block, "bn2") and hasattr(block, "conv2"):
        bn, conv = block.bn2, block.conv2
    else:
        raise TypeError(f"not a BasicBlock/Bottleneck: {type(block).__name__}")
    with torch.no_grad():
        bn_mag = bn.weight.detach().abs().double().cpu().numpy()
        w = conv.weight.detach().abs().double()
        conv_mag = w.reshape(w.shape[0], -1).mean(dim=1).cpu().numpy()
    return bn_mag, conv_mag


def _degenerate(v: np.ndarray) -> bool:
    return v.size < 2 or bool(np.all(v == v.flat[0]))


def spearman(x, y) -> tuple[float, float]:
    """Spearman (rho, p) via scipy, but (nan, nan) for < 2 values or a constant input.

    scipy would warn and return NaN there; analyses run over many blocks should not warn.
    """
    x, y = _f64(x).ravel(), _f64(y).ravel()
    if x.size != y.size:
        raise ValueError(f"x and y differ in length: {x.size} vs {y.size}")
    if _degenerate(x) or _degenerate(y):
        return float("nan"), float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = scipy.stats.spearmanr(x, y)
    return float(res.statistic), float(res.pvalue)


def anova_two_groups(a, b) -> tuple[float, float]:
    """One-way ANOVA (F, p) between two groups (e.g. skip vs overwrite channels).

    (nan, nan) when a group has < 2 values or all values are identical. When each group
    is constant but the groups differ, scipy's answer (inf, 0.0) is returned.
    """
    a, b = _f64(a).ravel(), _f64(b).ravel()
    if a.size < 2 or b.size < 2 or _degenerate(np.concatenate([a, b])):
        return float("nan"), float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = scipy.stats.f_oneway(a, b)
    return float(res.statistic), float(res.pvalue)


def rowwise_spearman(b_acts, i_acts) -> np.ndarray:
    """Per channel c, Spearman between b_acts[:, c] and i_acts[:, c] over rows with I > 0.

    Inputs are [N images, C channels] centre-neuron activations (Figure 4 bottom): does the
    block write against (negative) or along (positive) its active input? Rows where either
    value is not finite are also dropped. NaN where fewer than 3 rows remain or either
    column is constant on them. Computed as Pearson correlation of average ranks, which is
    exactly scipy's Spearman rho.
    """
    b, i = _f64(b_acts), _f64(i_acts)
    if b.shape != i.shape or b.ndim != 2:
        raise ValueError(f"need two [N, C] arrays of equal shape, got {b.shape}, {i.shape}")
    mask = (i > 0) & np.isfinite(i) & np.isfinite(b)
    n = mask.sum(axis=0)
    rb = scipy.stats.rankdata(np.where(mask, b, np.nan), axis=0, nan_policy="omit")
    ri = scipy.stats.rankdata(np.where(mask, i, np.nan), axis=0, nan_policy="omit")
    rb, ri = np.where(mask, rb, 0.0), np.where(mask, ri, 0.0)  # masked ranks are NaN
    with np.errstate(divide="ignore", invalid="ignore"):
        db = np.where(mask, rb - rb.sum(0) / n, 0.0)  # centre over the kept rows only
        di = np.where(mask, ri - ri.sum(0) / n, 0.0)
        sbb, sii, sbi = (db * db).sum(0), (di * di).sum(0), (db * di).sum(0)
        rho = sbi / np.sqrt(sbb * sii)
    bad = (n < 3) | (sbb == 0) | (sii == 0)  # constant columns have all-equal ranks
    rho = np.clip(rho, -1.0, 1.0)
    return np.where(bad, np.nan, rho)


# --------------------------------------------------------------------------- claim statistics


def binomial_lower_bound(successes: int, n: int, confidence: float = 0.95) -> float:
    """One-sided Clopper-Pearson lower bound on a proportion (for "X dominate" claims).

    A claim like "overwrite channels dominate" holds with confidence when this bound on
    their share exceeds 1/2. 0 when ``successes`` is 0.
    """
    if not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got {successes}, {n}")
    if successes == 0:
        return 0.0
    return float(scipy.stats.beta.ppf(1.0 - confidence, successes, n - successes + 1))


def hypergeom_overlap_p(population: Iterable[int], paper_set: Iterable[int], found_set: Iterable[int]) -> float:
    """P(overlap >= observed) when |found_set| ids are drawn at random from ``population``.

    Answers "is recovering this many of the paper's channels better than chance?" for FZ
    based channel lists. Only paper channels inside the population count. 1.0 for no overlap.
    """
    pop = set(population)
    paper = set(paper_set) & pop
    found = set(found_set)
    if not found <= pop:
        raise ValueError(f"found_set has ids outside the population: {sorted(found - pop)[:5]}")
    k = len(paper & found)
    if k == 0:
        return 1.0
    return float(scipy.stats.hypergeom.sf(k - 1, len(pop), len(paper), len(found)))


# --------------------------------------------------------------------------- strict scale test


def _rank_columns(a: np.ndarray) -> np.ndarray:
    return scipy.stats.rankdata(_f64(a), axis=0)


def _pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation along the last axis; NaN where either side is constant."""
    dx, dy = x - x.mean(-1, keepdims=True), y - y.mean(-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (dx * dy).sum(-1) / np.sqrt((dx * dx).sum(-1) * (dy * dy).sum(-1))


def tracking_test(i_x, b_x, b_sx, i_sinvx, r_min: float = 0.8, delta_min: float = 0.1,
                  n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """Does B at 2x track I, and I at x/2 track B, better than they track each other unscaled?

    Inputs are [N images, C channels] centre values: I(x), B(x), B(S(x)), I(S_inv(x)).
    Per channel: ``r_zoom`` = Spearman(I(x), B(S(x))), ``r_shrink`` = Spearman(B(x), I(S_inv(x))),
    ``r_same`` = Spearman(I(x), B(x)); a paired bootstrap over images (the same resampled
    images for all three; Pearson of the full-sample ranks on each resample) gives ``level``
    intervals of ``d_zoom`` = r_zoom - r_same and ``d_shrink`` = r_shrink - r_same.
    ``tracks``: r_zoom >= r_min, r_shrink >= r_min, and both intervals' lower ends > delta_min.
    A constant column (a silent tap) gives NaN and does not track. ``balance`` estimates how
    strongly B answers its feature relative to I: the geometric mean of
    sd(B(S(x))) / sd(I(x)) and sd(B(x)) / sd(I(S_inv(x))) (1 when both taps answer their
    feature equally strongly; the planted networks' g_B / g_I).
    """
    arrs = [_f64(a) for a in (i_x, b_x, b_sx, i_sinvx)]
    if len({a.shape for a in arrs}) != 1 or arrs[0].ndim != 2:
        raise ValueError(f"need four [N, C] arrays of one shape, got {[a.shape for a in arrs]}")
    n, c = arrs[0].shape
    if n < 3:
        raise ValueError(f"the tracking test needs at least 3 images, got {n}")
    ri, rb, rbs, ris = (_rank_columns(a).T for a in arrs)  # [C, N]
    r_zoom, r_shrink, r_same = _pearson_rows(ri, rbs), _pearson_rows(rb, ris), _pearson_rows(ri, rb)
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    lo_q, hi_q = (1 - level) / 2, 1 - (1 - level) / 2
    d_zoom, d_shrink = np.full((c, 2), np.nan), np.full((c, 2), np.nan)
    for k in range(c):
        a, b, bs, s = ri[k][idx], rb[k][idx], rbs[k][idx], ris[k][idx]  # [n_boot, N]
        same = _pearson_rows(a, b)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            d_zoom[k] = np.nanquantile(_pearson_rows(a, bs) - same, [lo_q, hi_q]) if np.isfinite(r_zoom[k] - r_same[k]) else np.nan
            d_shrink[k] = np.nanquantile(_pearson_rows(b, s) - same, [lo_q, hi_q]) if np.isfinite(r_shrink[k] - r_same[k]) else np.nan
    with np.errstate(invalid="ignore", divide="ignore"):
        tracks = (r_zoom >= r_min) & (r_shrink >= r_min) & (d_zoom[:, 0] > delta_min) & (d_shrink[:, 0] > delta_min)
        sd = [a.std(axis=0) for a in arrs]
        balance = np.sqrt(sd[2] / sd[0] * sd[1] / sd[3])
    return {"r_zoom": r_zoom, "r_shrink": r_shrink, "r_same": r_same, "d_zoom": d_zoom, "d_shrink": d_shrink,
            "tracks": tracks, "balance": balance}


# ---------------------------------------------------------------- the authors' code as it ran
# fz (issue 8): the "as-run" analysis variants (SPEC, "What the authors' code optimized"),
# beside the paper's text ("as-written"). Pure functions; Study chooses by its FZ reading.



def scale_criteria_read(m, b_xi, b_s_xi, i_xb, i_sinv_xb, reading: str = "as-written",
                        b_xb=None, i_xi=None, use_mix: bool = True, mix_low: float = MIX_BAND[0],
                        mix_high: float = MIX_BAND[1]) -> np.ndarray:
    """:func:`scale_criteria` under a reading (:func:`scale_criteria_parts`): "as-run" tests
    criteria 2 and 3 on the clipped deltas divided by ``b_xb`` and ``i_xi``."""
    if _reading(reading) == "as-written":
        return scale_criteria(m, b_xi, b_s_xi, i_xb, i_sinv_xb, use_mix, mix_low, mix_high)
    c1, c2, c3 = scale_criteria_parts(m if use_mix else None, b_xi, b_s_xi, i_xb, i_sinv_xb, mix_low, mix_high,
                                      reading=reading, b_xb=b_xb, i_xi=i_xi)
    return c2 & c3 & c1 if use_mix else c2 & c3


def robust_relu_term(acts, reading: str = "as-written", axis: int = 0) -> np.ndarray:
    """The natural-image (robustness) version's ReLU'd term from the activations of the top
    images (``axis`` indexes the images). "as-written" returns their mean (the criteria take
    ReLU of it: ReLU(mean)); "as-run" returns mean(ReLU(a)), the authors' ``mean(clip(a, 0))``
    (the criteria's ReLU then changes nothing)."""
    a = _f64(acts)
    return a.mean(axis=axis) if _reading(reading) == "as-written" else np.maximum(a, 0.0).mean(axis=axis)


def is_skip(m, reading: str = "as-written") -> np.ndarray:
    """Figure 4's skip group: M > 1 as written, M >= 1 in the authors' plotting code
    (overwrite is M < 1 under both)."""
    m = _f64(m)
    return m > 1 if _reading(reading) == "as-written" else m >= 1


__all__ += ["scale_criteria_read", "scale_deltas", "robust_relu_term", "is_skip"]
