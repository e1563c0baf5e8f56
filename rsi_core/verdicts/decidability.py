"""Which true values each part of each claim can decide, at resnet18's census sizes.

Every part of every claim helper (``rsi_core.verdicts.claims``) is run, through the helper
itself, on constructed census numbers at resnet18's block sizes (64, 128, 128, 256, 256, 512,
512 channels), sweeping the one number the part reads (a share, a count, a difference, a rank
correlation, recovered channels) while every other part is held where it holds. The seed noise
is the one a resnet18 census would use: ``second_seed_size`` pairs per block, in which the class
flips at rate min(F_table, 2 mu (1 - mu)) (F_table: the shipped table's rate of the class; a
flip rate can never exceed 2 mu (1 - mu) at a true share mu). The result says, per part, which
swept values give holds, inconclusive and fails; every part must be able to hold and to fail.
"""
from __future__ import annotations

import numpy as np
from scipy import stats

from rsi_core.measure.profiles import second_seed_size
from rsi_core.model.anatomy import block_roles, blocks
from rsi_core.paper import PAPER_LISTS
from rsi_core.verdicts import claims as C
from rsi_core.verdicts.verdict import table_flips

NOISE = ("second_seed_size(N) pairs per block, the class flipping at min(table rate, 2 mu (1 - mu)) of them "
         "(mu: the swept true share)")
SD = 0.3     # assumed spread of the per-channel values of an ANOVA / absence part (Spearman units)


def resnet18_layout() -> tuple[dict, dict]:
    """resnet18's block roles and channels per studied block (torchvision's architecture, no weights)."""
    import torchvision
    model = torchvision.models.resnet18()
    return block_roles(model), {b.name: b.channels for b in blocks(model)}


def _grid(n: int) -> list[int]:
    """Counts 0..n: every one up to 64, then 129 evenly spaced."""
    return sorted(set(range(min(n, 64) + 1)) | set(np.linspace(0, n, 129).round().astype(int).tolist()))


def _flips(key: str, k: int, n: int) -> int:
    """Flips among ``second_seed_size(n)`` pairs of a class held by k of n channels."""
    mu = k / n
    rate = table_flips(key)
    return int(round(min(rate.flips / rate.pairs, 2 * mu * (1 - mu)) * second_seed_size(n)))


def _toggle(first: np.ndarray, flips: int) -> np.ndarray:
    """``first`` with ``flips`` channels on the other side, half of them leaving the class and half
    joining it (as far as each side has channels): the count's expectation stays."""
    second = first.copy()
    inside, outside = np.flatnonzero(first), np.flatnonzero(~first)
    leave = min(len(inside), flips // 2)
    join = min(len(outside), flips - leave)
    leave = min(len(inside), flips - join)
    second[inside[:leave]] = False
    second[outside[:join]] = True
    return second


def _pairs(inside, outside, k: int, n: int, flips: int) -> tuple[np.ndarray, np.ndarray]:
    """Paired values under two seeds: k / n of them ``inside`` the class under the first, ``flips``
    of them on the other side under the second (``_toggle``)."""
    first = np.arange(second_seed_size(n)) < round(k / n * second_seed_size(n))
    return np.where(first, inside, outside), np.where(_toggle(first, flips), inside, outside)


def _values(inside, outside, k: int, n: int) -> np.ndarray:
    return np.where(np.arange(n) < k, inside, outside)


def _ranges(values, verdicts) -> dict:
    """Runs of the swept values per verdict, as [first, last] pairs."""
    out = {"holds": [], "inconclusive": [], "fails": []}
    start = 0
    for i in range(1, len(values) + 1):
        if i == len(values) or verdicts[i] != verdicts[start]:
            out[verdicts[start]].append([values[start], values[i - 1]])
            start = i
    return out


def _row(claim: str, part: str, variable: str, channels, values, verdicts, noise: str = NOISE) -> dict:
    r = _ranges([float(v) for v in values], verdicts)
    return {"claim": claim, "part": part, "variable": variable, "channels": channels, "noise": noise, **r,
            "can_hold": bool(r["holds"]), "can_fail": bool(r["fails"])}


# ------------------------------------------------------------------------ one sweep per claim

def _downsample(roles, size) -> list:
    down = roles["downsample"]
    base = {b: _values(0.4, 2.0, int(0.9 * size[b]), size[b]) for b in down}
    quiet = {b: _pairs(0.4, 2.0, int(0.9 * size[b]), size[b], 0) for b in down}
    rows = []
    for b in down:
        n, out = size[b], []
        for k in _grid(n):
            v = C.downsample_overwrite({**base, b: _values(0.4, 2.0, k, n)}, dict.fromkeys(down, True),
                                       {**quiet, b: _pairs(0.4, 2.0, k, n, _flips("overwrite", k, n))})
            out.append(v.measured[b]["verdict"])
        rows.append(_row("fig2-downsample-overwrite", b, "share of channels with M < 1", n,
                         [k / n for k in _grid(n)], out))
    return rows


def _final(roles, size) -> list:
    (b,) = roles["final"]
    n, rows = size[b], []
    for part, key, inside, outside in (("lowest bin", "lowest_bin", 0.1, 0.6), ("non-zero", "nonzero", 0.1, 0.0)):
        out = []
        for k in _grid(n):
            v = C.final_block({b: _values(inside, outside, k, n)}, {b: True},
                              {b: _pairs(inside, outside, k, n, _flips(key, k, n))})
            out.append(v.measured["parts"][f"{b} {part}"]["verdict"])
        rows.append(_row("fig2-final-block", f"{b} {part}", f"share of channels in the class ({part})", n,
                         [k / n for k in _grid(n)], out))
    return rows


def _simple(roles, size) -> list:
    simple, down = roles["simple"], roles["downsample"]
    downsample = {b: _values(0.4, 2.0, int(0.8 * size[b]), size[b]) for b in down}
    census = dict.fromkeys(simple + down, True)
    rows = []
    for b in simple:
        n, out = size[b], []
        for k in _grid(n):
            others = {s: _values(0.4, 2.0, 0, size[s]) for s in simple}
            v = C.simple_less_skewed({**others, b: _values(0.4, 2.0, k, n)}, downsample, census)
            out.append(v.measured["parts"][b]["verdict"])
        rows.append(_row("fig2-simple-less-skewed", b, "the simple block's share with M < 1 (downsample blocks: "
                         "80%)", n, [k / n for k in _grid(n)], out, "Mann-Whitney U on the census (no seed noise)"))
    return rows


def _correlated(rho: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """x and y of n channels whose Spearman correlation is about ``rho`` (fixed draws)."""
    x = stats.norm.ppf((np.arange(n) + 0.5) / n)
    noise = np.random.default_rng(n).permutation(x)
    return x, rho * x + np.sqrt(max(0.0, 1 - rho ** 2)) * noise


def _weights(roles, size) -> list:
    simple = roles["simple"]
    strong = {b: (lambda x: (x, -x, -x))(_correlated(0.0, size[b])[0]) for b in simple}
    rows = []
    for b in simple:
        for name in ("bn", "conv"):
            values, out = [], []
            for target in np.linspace(-1, 1, 81):
                x, y = _correlated(target, size[b])
                per = {**strong, b: (x, y, -x) if name == "bn" else (x, -x, y)}
                v = C.weight_magnitude(per, dict.fromkeys(simple, True))
                values.append(stats.spearmanr(x, y).statistic)
                out.append(v.measured[b][f"verdict_{name}"])
            order = np.argsort(values)
            rows.append(_row("fig3-weight-magnitude", f"{b} {name}", f"Spearman(M, {name} weight)", size[b],
                             np.asarray(values)[order], [out[i] for i in order], "p-value test (no seed noise)"))
    return rows


def _groups(d: float, n_over: int, n_skip: int, sd: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Overwrite and skip values with exactly mean difference ``d`` and spread ``sd``."""
    q = lambda n: sd * stats.norm.ppf((np.arange(n) + 0.5) / n)  # noqa: E731
    return d + q(n_over), q(n_skip)


def _inhibition(roles, size) -> list:
    simple = roles["simple"]
    sig = tuple(simple[1:])
    base = {b: _groups(-3.0, size[b] // 2, size[b] - size[b] // 2) for b in simple}
    rows = []
    for b in sig:
        n_over = size[b] // 2
        ds = np.linspace(-1.5, 1.5, 61)
        out = []
        for d in ds:
            over, skip = _groups(d, n_over, size[b] - n_over)
            v = C.inhibition({**base, b: (over, skip)}, dict.fromkeys(simple, True), sig)
            out.append(v.measured[b]["anova_verdict"])
        rows.append(_row("fig4-inhibition", f"{b} overwrite below skip", "overwrite - skip mean of B_c(X_I), in "
                         "standard deviations", size[b], ds, out, "ANOVA on the census (no seed noise)"))
        out = []
        for k in _grid(n_over):
            over = _values(-1.0, 1.0, k, n_over) - 3.0 * (np.arange(n_over) < k)
            skip = np.full(size[b] - n_over, 2.0) + stats.norm.ppf((np.arange(size[b] - n_over) + 0.5)
                                                                   / (size[b] - n_over))
            va, vb = _pairs(-1.0, 1.0, k, n_over, _flips("inhibit", k, n_over))
            m = np.full(len(va), 0.5)   # the paired channels overwrite under both seeds
            v = C.inhibition({**base, b: (over, skip)}, dict.fromkeys(simple, True), sig, {b: (m, m, va, vb)})
            out.append(v.measured[b]["negative"]["verdict"])
        rows.append(_row("fig4-inhibition", f"{b} many negative", "share of overwrite channels with B_c(X_I) < 0 "
                         "(half the block overwrite)", n_over, [k / n_over for k in _grid(n_over)], out))
    return rows


def _correlation(roles, size) -> list:
    simple = roles["simple"]
    sig, absent = (simple[-1],), tuple(simple[:-1])
    base = {b: _groups(0.0, size[b] // 2, size[b] - size[b] // 2, SD) for b in absent}
    base[sig[0]] = _groups(-0.5, size[sig[0]] // 2, size[sig[0]] - size[sig[0]] // 2, SD)
    rows = []
    for b in simple:
        ds = np.linspace(-0.6, 0.6, 121)
        out = []
        for d in ds:
            v = C.input_block_correlation({**base, b: _groups(d, size[b] // 2, size[b] - size[b] // 2, SD)},
                                          dict.fromkeys(simple, True), sig, absent)
            out.append(v.measured[b]["verdict"])
        what = "significantly lower" if b in sig else "not lower"
        rows.append(_row("fig4-input-block-correlation", f"{b} {what}", f"overwrite - skip mean correlation (per-"
                         f"channel spread {SD}, half the block overwrite)", size[b], ds, out,
                         "ANOVA / Welch bound on the census (no seed noise)"))
    return rows


def _scale(roles, size) -> list:
    parts = C.scale_roles(roles, PAPER_LISTS["fig7"])
    studied = [b for b in roles["studied"]]
    share = {b: (0.2, 0.3) for b in parts["many"]}
    share.update({b: (0.0, 0.0) for b in parts["none"]})
    if parts["appreciable"]:
        share[parts["appreciable"]] = (0.0, 0.1)

    def classes(b, with_mix, without_mix, both):
        n = size[b]
        c = {"with_mix": np.arange(n) < with_mix, "without_mix": np.arange(n) < without_mix}
        if b in parts["many"]:
            c["both"] = np.arange(n) < both
        return c

    def pair(b, c, flipped=None, flips=0):
        m = second_seed_size(size[b])
        first = {k: np.arange(m) < round(v.sum() / size[b] * m) for k, v in c.items()}
        second = {k: _toggle(v, flips) if k == flipped else v.copy() for k, v in first.items()}
        return first, second

    base = {b: classes(b, int(share[b][0] * size[b]), int(share[b][1] * size[b]), int(share[b][0] * size[b]))
            for b in studied}
    census, population = dict.fromkeys(studied, True), dict(size)

    def run(b, c, flipped, key, part, k_class):
        cls = {**base, b: c}
        pairs = {s: pair(s, cls[s]) for s in studied}
        pairs[b] = pair(b, c, flipped, _flips(key, k_class, size[b]))
        v = C.scale_counts(cls, census, population, **parts, pairs=pairs)
        return v.measured["parts"][part]["verdict"]

    rows = []
    for b in parts["many"]:
        n, out = size[b], []
        for k in _grid(n):
            c = classes(b, k, int(share[b][1] * n), min(k, int(share[b][0] * n)))
            out.append(run(b, c, "with_mix", "criteria", f"{b} many", k))
        rows.append(_row("fig5-scale-counts", f"{b} many", "channels passing the three criteria (at least 3)", n,
                         _grid(n), out))
    if parts["both"]:
        fractions, out = np.linspace(0, 3, 61), []
        for f in fractions:
            cls, pairs = dict(base), {}
            for b, a in parts["both"].items():
                k = int(round(f * a))
                cls[b] = classes(b, max(k, int(share[b][0] * size[b])), int(share[b][1] * size[b]), k)
            for s_ in studied:
                pairs[s_] = pair(s_, cls[s_])
            for b, a in parts["both"].items():
                k = int(round(f * a))
                pairs[b] = pair(b, cls[b], "both", _flips("criteria", k, size[b]))
            out.append(C.scale_counts(cls, census, population, **parts, pairs=pairs).measured["parts"]["both"]
                       ["verdict"])
        rows.append(_row("fig5-scale-counts", "both", "channels passing both versions, as a multiple of the listed "
                         f"counts ({', '.join(f'{a} in {b}' for b, a in parts['both'].items())}) in every block",
                         [size[b] for b in parts["both"]], fractions, out))
    for b in parts["none"]:
        n = size[b]
        out = [run(b, classes(b, k, max(k, int(share[b][1] * n)), 0), "with_mix", "criteria", f"{b} none", k)
               for k in _grid(n)]
        rows.append(_row("fig5-scale-counts", f"{b} none", "share passing the three criteria", n,
                         [k / n for k in _grid(n)], out))
    for b in parts["few_without_mix"]:
        n = size[b]
        out = [run(b, classes(b, 0, k, 0), "without_mix", "criteria_without_mix", f"{b} few without mix", k)
               for k in _grid(n)]
        rows.append(_row("fig5-scale-counts", f"{b} few without mix", "share passing criteria 2 and 3", n,
                         [k / n for k in _grid(n)], out))
    a = parts["appreciable"]
    if a:
        n = size[a]
        out = [run(a, classes(a, 0, k, 0), "without_mix", "criteria_without_mix", f"{a} appreciable without mix",
                   k) for k in _grid(n)]
        rows.append(_row("fig5-scale-counts", f"{a} appreciable without mix", "share passing criteria 2 and 3", n,
                         [k / n for k in _grid(n)], out))
        own = int(share[a][1] * n)
        for nb in parts["neighbours"]:
            m, out = size[nb], []
            for k in _grid(m):
                cls = {**base, nb: classes(nb, int(share[nb][0] * m), k, int(share[nb][0] * m))}
                pairs = {s: pair(s, cls[s]) for s in studied}
                pairs[nb] = pair(nb, cls[nb], "without_mix", _flips("criteria_without_mix", k, m))
                pairs[a] = pair(a, cls[a], "without_mix", _flips("criteria_without_mix", own, n))
                v = C.scale_counts(cls, census, population, **parts, pairs=pairs)
                out.append(v.measured["parts"][f"{a} below {nb} without mix"]["verdict"])
            rows.append(_row("fig5-scale-counts", f"{a} below {nb} without mix",
                             f"{nb}'s share minus {a}'s ({own / n:.2f}), criteria 2 and 3", [n, m],
                             [k / m - own / n for k in _grid(m)], out))
    return rows


def _lists(size) -> list:
    rows = []
    for claim, fig, found_size in (("fig6-top-scale", "fig6", 3), ("fig7-robust", "fig7", None),
                                   ("fig8-top-mixes", "fig8", 3)):
        ref = {b: c for b, c in PAPER_LISTS[fig].items() if c}
        longest = max(len(c) for c in ref.values())
        values, out = range(longest + 1), []
        for r in values:
            per = {}
            for b, c in ref.items():
                want = found_size or len(c)
                found = (c[:r] + [x for x in range(size[b]) if x not in c])[:want]
                rest = [x for x in range(size[b]) if x not in found]
                ordered = found + [x for x in rest if x not in c] + [x for x in rest if x in c]  # missed ones last
                per[b] = (ordered if fig == "fig6" else range(size[b]), ordered, c)
            out.append(C.overlap(per, k=found_size).verdict)
        rows.append(_row(claim, "combined overlap", "listed channels recovered per block (up to the list's length; the others ranked last)",
                         [size[b] for b in ref], list(values), out, "rank p on the census (no seed noise)"))
    return rows


def decidability() -> list[dict]:
    """Every part of every claim at resnet18's census sizes: the swept values that hold, are
    inconclusive and fail (``[first, last]`` runs), and whether it can hold and can fail."""
    roles, size = resnet18_layout()
    return [*_downsample(roles, size), *_simple(roles, size), *_final(roles, size), *_weights(roles, size),
            *_inhibition(roles, size), *_correlation(roles, size), *_scale(roles, size), *_lists(size)]
