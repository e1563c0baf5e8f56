"""The paired regression check: did this model's channels move beyond FZ noise?

A run with the same profile as its baseline studies the same channels with the same FZ seeds, so
each claim's per-channel values (``record``: the quantities its test names, over the kept
channels of the blocks it read) pair up with the baseline's, channel by channel. Per block and
class the claim reads (``compare_part``):

* the share change delta = (gained - lost) / n and its standard error from the discordant pairs,
  SE = sqrt(d - (gained - lost)^2 / n) / n (d = gained + lost: the paired-proportions variance);
* **unchanged** when |delta| + Z SE <= ``TOL_SHARE`` (one-sided 95%: the move is bounded within
  10 points of the block; every part must be, an intersection-union test, so no correction);
* **changed** when McNemar's exact test (gained of d at 1/2, two-sided) rejects at ALPHA
  Bonferroni-corrected over the claim's deciding parts and |delta| > ``MIN_SHIFT``;
* else **inconclusive**.

A continuous value FZs produce (M, B(X_I)) is not a decider: its seed spread is about as large as
any effect (M's TOST within 0.2 sd decided about 8% of the time at n = 37). It is reported
(median shift), and its class decides in its place (``CLASS_OF``: M < 1, B(X_I) < 0) when the
claim names no class of its own. A continuous value of the weights and natural images alone (the
weight magnitudes, the input-block correlation) has no FZ noise: it decides by Wilcoxon's
signed-rank test against a tolerance of ``TOL_SD`` baseline sd or ``TOL_REL`` of the values'
scale, the larger (``continuous_change``; a baseline whose values are all equal, as BatchNorm's
weights at init, has sd 0 and still a material tolerance).

A claim is changed when any deciding part is, unchanged when every deciding part is, else
inconclusive; ``n/a`` where either run could not ask it. ``simulate`` gives the check's
operating characteristic at any size and pair-discordance F (``rsi validate --regression``).
"""
from __future__ import annotations

import numpy as np
from scipy import stats

from rsi_core.measure import metrics
from rsi_core.model.anatomy import find_block
from rsi_core.verdicts import claims as C
from rsi_core.verdicts import registry
from rsi_core.verdicts.verdict import ALPHA, Z, applies_if

TOL_SHARE = 0.10   # a class share that moved by less than 10 points of the block is unchanged
MIN_SHIFT = 0.05   # ... and one that moved by 5 points or less is never "changed", however significant
TOL_SD = 0.2       # a continuous value whose median moved by less than 0.2 baseline sd is unchanged (Cohen's small)
TOL_REL = 0.05     # ... or by less than 5% of its scale (SCALE): immaterial, whatever the baseline's spread
#: a continuous value's scale, where not its baseline mean magnitude (a weight's): a correlation's bound, 1
#: (so 0.05 in correlation units: a quarter of the smallest difference fig4 calls an effect, ABSENT_MARGIN 0.2)
SCALE = {"input_corr": 1.0}
MIN_PAIRS = 6      # Wilcoxon's exact test cannot reach p < 0.05 two-sided with fewer

#: quantity -> (kind, per-channel values of a block result); "fz": a continuous value FZs produce
#: (reported; its class decides), "continuous": one of the weights and natural images alone
QUANTITIES = {
    "m": ("fz", lambda s, b, r: r.m),
    "overwrite": ("class", lambda s, b, r: r.m < C.OVERWRITE_BELOW),
    "lowest_bin": ("class", lambda s, b, r: (r.m >= C.LOWEST_BIN[0]) & (r.m < C.LOWEST_BIN[1])),
    "nonzero": ("class", lambda s, b, r: r.m > 0),
    "b_xi": ("fz", lambda s, b, r: r.b_xi),
    "inhibit": ("class", lambda s, b, r: r.b_xi < 0),
    "input_corr": ("continuous", lambda s, b, r: s.input_block_correlation(b)),
    "bn_weight": ("continuous", lambda s, b, r: metrics.weight_magnitudes(find_block(s.model, b).module)[0][r.channels]),
    "conv_weight": ("continuous", lambda s, b, r: metrics.weight_magnitudes(find_block(s.model, b).module)[1][r.channels]),
    "criteria": ("class", lambda s, b, r: r.scale_invariant()),
    "criteria_without_mix": ("class", lambda s, b, r: r.scale_invariant(False)),
    "found": ("class", None),   # a list claim's found channels (Figures 6-8): membership
}
#: an FZ value's class, deciding in its place: (class quantity, the class from the values)
CLASS_OF = {"m": ("overwrite", lambda v: v < C.OVERWRITE_BELOW), "b_xi": ("inhibit", lambda v: v < 0)}


def reads(*names):
    """Decorator of a claim function: the per-channel quantities (``QUANTITIES``) its verdict
    reads, recorded in its report entry for the paired check (``pytest claims`` and the planted pairs)."""
    unknown = sorted(set(names) - set(QUANTITIES))
    if unknown:
        raise ValueError(f"unknown paired quantities {unknown}: use {', '.join(QUANTITIES)}")

    def mark(fn):
        fn.paired = names
        return fn
    return mark


def claim(claim_id: str):
    """Decorator of a claim function from its record (``registry.CLAIMS``): the quantities it
    reads (``reads``) and the premises without which it is "n/a" (``verdict.applies_if``)."""
    if claim_id not in registry.CLAIMS:
        raise ValueError(f"claim {claim_id!r} is not registered: add it to rsi_core.verdicts.registry")
    rec = registry.CLAIMS[claim_id]

    def wrap(fn):
        fn = reads(*rec.reads)(applies_if(*rec.applies_if)(fn) if rec.applies_if else fn)
        fn.claim_id = claim_id
        return fn
    return wrap


def record(study, blocks, names, found: dict | None = None) -> dict:
    """{block: {"channels": kept channel ids, quantity: values}}: what the paired check reads of
    one claim. ``found``: a list claim's found channels per block (its verdict's ``measured["found"]``)."""
    out = {}
    for b in blocks:
        r = study.block(b)
        keep = study.kept(b, r)
        rec = {"channels": r.channels[keep].tolist()}
        for q in names:
            kind, fn = QUANTITIES[q]
            if q == "found":
                if b not in (found or {}):
                    continue
                values = np.isin(r.channels, found[b])
            else:
                values = np.asarray(fn(study, b, r))
            rec[q] = ([bool(v) for v in values[keep]] if kind == "class"
                      else [float(v) if np.isfinite(v) else None for v in values[keep]])  # JSON has no NaN
        out[b] = rec
    return out


def _paired(old: dict, new: dict, q: str) -> tuple[np.ndarray, np.ndarray]:
    """The two runs' values of ``q`` on the channels both kept (the channels pair by id)."""
    a = dict(zip(old["channels"], old[q]))
    b = dict(zip(new["channels"], new[q]))
    common = sorted(a.keys() & b.keys())
    return np.array([a[c] for c in common], dtype=float), np.array([b[c] for c in common], dtype=float)


def class_change(old, new, alpha: float = ALPHA) -> dict:
    """Paired classes (bool arrays) of one block under the baseline and this run: see the module."""
    old, new = np.asarray(old, bool), np.asarray(new, bool)
    n = len(old)
    lost, gained = int((old & ~new).sum()), int((~old & new).sum())
    d = lost + gained
    out = {"kind": "class", "n": n, "old_share": old.mean() if n else None, "new_share": new.mean() if n else None,
           "discordant": d, "lost": lost, "gained": gained}
    if n == 0:
        return {**out, "verdict": "inconclusive"}
    v, delta, se, p = _decide(np.array([gained]), np.array([lost]), n, alpha)
    return {**out, "shift": float(delta[0]), "se": float(se[0]), "shift_bound95": float(abs(delta[0]) + Z * se[0]),
            "p_mcnemar": float(p[0]), "verdict": str(v[0])}


def _decide(gained, lost, n: int, alpha: float):
    """Vectorized rule of one part: verdicts, delta, SE and McNemar's exact p over arrays of counts."""
    gained, lost = np.asarray(gained), np.asarray(lost)
    d = gained + lost
    delta = (gained - lost) / n
    se = np.sqrt(np.maximum(d - (gained - lost) ** 2 / n, 0)) / n
    # exact two-sided McNemar: 2 P(X <= min(gained, lost)), X ~ Bin(d, 1/2), capped at 1
    p = np.where(d > 0, np.minimum(1.0, 2 * stats.binom.cdf(np.minimum(gained, lost), np.maximum(d, 1), 0.5)), 1.0)
    changed = (p < alpha) & (np.abs(delta) > MIN_SHIFT)
    unchanged = np.abs(delta) + Z * se <= TOL_SHARE + 1e-12
    v = np.where(changed, "changed", np.where(unchanged, "unchanged", "inconclusive"))
    return v, delta, se, p


def simulate(sizes: list[int], f, shift: float = 0.0, draws: int = 4000, seed: int = 0,
             alpha: float = ALPHA) -> dict:
    """The claim verdict's shares over ``draws`` simulated comparisons of a claim whose deciding
    parts have ``sizes`` channels: in every part each channel is discordant with probability ``f``
    (one number, or one per part; half of them each way: symmetric churn), and the first part's
    share also moves by ``shift`` (a channel gained with probability f / 2 + shift).
    {"changed", "unchanged", "inconclusive"}."""
    rng = np.random.default_rng(seed)
    each = alpha / len(sizes)
    rates = np.broadcast_to(np.asarray(f, float), (len(sizes),))
    verdicts = []
    for i, (n, f) in enumerate(zip(sizes, rates)):
        s = shift if i == 0 else 0.0
        counts = rng.multinomial(n, [f / 2, f / 2 + s, 1 - f - s], size=draws)
        verdicts.append(_decide(counts[:, 1], counts[:, 0], n, each)[0])
    v = np.array(verdicts)
    changed = (v == "changed").any(0)
    unchanged = (v == "unchanged").all(0)
    return {"changed": float(changed.mean()), "unchanged": float(unchanged.mean()),
            "inconclusive": float((~changed & ~unchanged).mean())}


def continuous_change(old, new, alpha: float = ALPHA, scale: float | None = None) -> dict:
    """Paired continuous values of one block: Wilcoxon signed-rank against +- the tolerance,
    max(``TOL_SD`` baseline sd, ``TOL_REL`` ``scale``): a move small beside both the channels'
    spread and the values' own size is immaterial (``scale`` None: the baseline's mean magnitude)."""
    old, new = np.asarray(old, float), np.asarray(new, float)
    ok = np.isfinite(old) & np.isfinite(new)
    old, new = old[ok], new[ok]
    n = len(old)
    out = {"kind": "continuous", "n": n, "old_median": float(np.median(old)) if n else None,
           "new_median": float(np.median(new)) if n else None}
    if n and np.array_equal(old, new):  # the very same values (same weights there, same seed): no test needed
        return {**out, "median_shift": 0.0, "verdict": "unchanged"}
    if n < MIN_PAIRS:
        return {**out, "verdict": "inconclusive"}
    scale = float(np.abs(old).mean()) if scale is None else scale
    tol = max(TOL_SD * float(old.std(ddof=1)), TOL_REL * scale, 1e-12)
    x = new - old

    def p(shifted, side):
        return float(stats.wilcoxon(shifted, alternative=side).pvalue) if np.any(shifted) else 1.0
    up, down = p(x - tol, "greater"), p(x + tol, "less")        # beyond the tolerance, either side
    within = max(p(x - tol, "less"), p(x + tol, "greater"))     # inside it (TOST)
    v = "changed" if min(up, down) < alpha / 2 else "unchanged" if within < alpha else "inconclusive"
    return {**out, "median_shift": float(np.median(x)), "tolerance": tol, "p_above": up, "p_below": down,
            "p_within": within, "verdict": v}


def simulate_continuous(blocks: dict, draws: int = 200, seed: int = 0, alpha: float = ALPHA) -> dict:
    """The verdict shares of a claim's continuous parts over ``draws`` samples of the channels:
    ``blocks`` {block: (n, [(old, new, scale) of each part there: the block's census values])};
    each draw takes n channels of each block at random, its parts share them; the claim's parts
    are changed when any is, unchanged when all are. Their OC at a sample of n channels per block.
    {"changed", "unchanged", "inconclusive"}."""
    rng = np.random.default_rng(seed)
    count = {"changed": 0, "unchanged": 0, "inconclusive": 0}
    for _ in range(draws):
        vs = []
        for n, parts in blocks.values():
            size = len(np.asarray(parts[0][0]))
            i = rng.choice(size, min(n, size), replace=False)
            vs += [continuous_change(np.asarray(o, float)[i], np.asarray(c, float)[i], alpha, sc)["verdict"]
                   for o, c, sc in parts]
        count["changed" if "changed" in vs else "unchanged" if all(v == "unchanged" for v in vs) else "inconclusive"] += 1
    return {k: v / draws for k, v in count.items()}


def is_na(entry: dict | None) -> bool:
    """A claim the run could not ask: missing, errored, n/a, or with no per-channel values."""
    return (not entry or entry.get("verdict") in ("error", "n/a") or str(entry.get("reason", "")).startswith("n/a")
            or not entry.get("paired"))


def _parts(old: dict, new: dict) -> list[tuple[str, str, str | None]]:
    """(block, quantity, the FZ value it is the class of or None) of every part both runs recorded:
    an FZ value's class is added where the claim names no class of its own."""
    out = []
    for b in new:
        if b not in old:
            continue
        names = [q for q in new[b] if q != "channels" and q in old[b]]
        out += [(b, q, None) for q in names]
        out += [(b, CLASS_OF[q][0], q) for q in names if q in CLASS_OF and CLASS_OF[q][0] not in names]
    return out


def compare(old_entry: dict | None, new_entry: dict | None, alpha: float = ALPHA) -> dict:
    """The paired check of one claim: per block and quantity a part (``class_change``,
    ``continuous_change``; an FZ value's part is reported and does not decide), Bonferroni over
    the deciding parts, and the claim's change beside both runs' own verdicts and values."""
    out = {"old": {k: (old_entry or {}).get(k) for k in ("verdict", "value")},
           "new": {k: (new_entry or {}).get(k) for k in ("verdict", "value")}}
    if is_na(old_entry) or is_na(new_entry):
        return {**out, "verdict": "n/a", "parts": {}}
    old, new = old_entry["paired"], new_entry["paired"]
    keys = _parts(old, new)
    deciding = [k for k in keys if QUANTITIES[k[1]][0] != "fz"]
    if not deciding:
        return {**out, "verdict": "n/a", "parts": {}}
    each = alpha / len(deciding)
    parts = {}
    for b, q, source in keys:
        a, c = _paired(old[b], new[b], source or q)
        kind = QUANTITIES[q][0]
        if kind == "class":
            ok = np.isfinite(a) & np.isfinite(c)
            a, c = (CLASS_OF[source][1](a[ok]), CLASS_OF[source][1](c[ok])) if source else (a[ok] > 0.5, c[ok] > 0.5)
            parts[f"{b} {q}"] = {**class_change(a, c, each), **({"from": source} if source else {})}
        else:
            parts[f"{b} {q}"] = {**continuous_change(a, c, each, SCALE.get(q)), "decides": kind == "continuous"}
    vs = [p["verdict"] for p in parts.values() if p.get("decides", True)]
    v = "changed" if "changed" in vs else "unchanged" if all(x == "unchanged" for x in vs) else "inconclusive"
    return {**out, "verdict": v, "parts": parts}


def changed_parts(result: dict) -> list[str]:
    """One line per changed deciding part, for the test's failure message and the report."""
    lines = []
    for name, p in result.get("parts", {}).items():
        if p["verdict"] != "changed" or not p.get("decides", True):
            continue
        if p["kind"] == "class":
            lines.append(f"{name}: share {p['old_share']:.3g} -> {p['new_share']:.3g} ({p['gained']} gained, "
                         f"{p['lost']} lost of {p['n']} channels; McNemar p {p['p_mcnemar']:.2g})")
        else:
            lines.append(f"{name}: median {p['old_median']:.3g} -> {p['new_median']:.3g} "
                         f"(shift {p['median_shift']:.3g}, tolerance {p['tolerance']:.3g})")
    return lines
