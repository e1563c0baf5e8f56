"""The paired regression check: did this model's channels move beyond FZ seed noise?

A run with the same profile as its baseline studies the same channels with the same FZ seeds, so
each claim's per-channel values (``record``: the quantities its test names, over the kept
channels of the blocks it read) pair up with the baseline's, channel by channel. Per block and
quantity (``compare_part``):

* a class (M < 1, passes the criteria, ...): the discordant pairs. ``changed`` when the channels
  that flipped are more than seed noise makes (exact binomial, P(X >= flips) at the one-sided 95%
  upper bound of the seed-flip rate F: the run's own second seed where it has one, else the
  shipped table), or when the share moved by more than ``TOL_SHARE`` and McNemar's exact test on
  the discordant pairs says the move is not the symmetric churn of two seeds. ``unchanged`` when
  neither, and the share's move is bounded within ``TOL_SHARE`` (|shift| + Z sqrt(flips) / n).
* a continuous value (M, B(X_I), a correlation, a weight): the paired differences. ``changed``
  when Wilcoxon's signed-rank test puts the shift beyond ``TOL_SD`` baseline standard deviations
  (either side); ``unchanged`` when both one-sided tests put it within (TOST), or when the values
  are the very same (fewer than ``MIN_PAIRS`` channels can show nothing else).
* else ``inconclusive``. Tests are Bonferroni-corrected over the claim's parts, so a claim's
  false-alarm rate under pure seed noise is at most ALPHA.

A claim is changed when any part is, unchanged when every part is, else inconclusive; ``n/a``
where either run could not ask it (an n/a verdict, an error, or nothing recorded).
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats

from rsi_core.measure import metrics
from rsi_core.model.anatomy import find_block
from rsi_core.verdicts import claims as C
from rsi_core.verdicts import registry
from rsi_core.verdicts.verdict import ALPHA, Flips, Z, applies_if, table_flips

TOL_SHARE = 0.10   # a class share that moved by less than 10 points of the block is unchanged
TOL_SD = 0.2       # a continuous value whose median moved by less than 0.2 baseline sd is unchanged (Cohen's small)
MIN_PAIRS = 6      # Wilcoxon's exact test cannot reach p < 0.05 two-sided with fewer

#: quantity -> (kind, seed-noise key of the shipped table, per-channel values of a block result)
QUANTITIES = {
    "m": ("continuous", None, lambda s, b, r: r.m),
    "overwrite": ("class", "overwrite", lambda s, b, r: r.m < C.OVERWRITE_BELOW),
    "lowest_bin": ("class", "lowest_bin", lambda s, b, r: (r.m >= C.LOWEST_BIN[0]) & (r.m < C.LOWEST_BIN[1])),
    "nonzero": ("class", "nonzero", lambda s, b, r: r.m > 0),
    "b_xi": ("continuous", None, lambda s, b, r: r.b_xi),
    "inhibit": ("class", "inhibit", lambda s, b, r: r.b_xi < 0),
    "input_corr": ("continuous", None, lambda s, b, r: s.input_block_correlation(b)),
    "bn_weight": ("continuous", None, lambda s, b, r: metrics.weight_magnitudes(find_block(s.model, b).module)[0][r.channels]),
    "conv_weight": ("continuous", None,
                    lambda s, b, r: metrics.weight_magnitudes(find_block(s.model, b).module)[1][r.channels]),
    "criteria": ("class", "criteria", lambda s, b, r: r.scale_invariant()),
    "criteria_without_mix": ("class", "criteria_without_mix", lambda s, b, r: r.scale_invariant(False)),
    # a list claim's found channels (Figures 6-8): membership churns like the noisiest class (M < 1)
    "found": ("class", "overwrite", None),
}


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
    """{block: {"channels": kept channel ids, quantity: values, "flips": {class: {flips, pairs}}}}:
    what the paired check reads of one claim. ``found``: a list claim's found channels per block
    (its verdict's ``measured["found"]``); "flips" only where the block has a second seed."""
    out = {}
    for b in blocks:
        r = study.block(b)
        keep = study.kept(b, r)
        rec = {"channels": r.channels[keep].tolist(), "flips": {}}
        for q in names:
            kind, _, fn = QUANTITIES[q]
            if q == "found":
                if b not in (found or {}):
                    continue
                values = np.isin(r.channels, found[b])
            else:
                values = np.asarray(fn(study, b, r))
                pair = study.pair_values(b, lambda x, fn=fn, b=b: fn(study, b, x)) if kind == "class" else None
                if pair is not None:
                    rec["flips"][q] = {"flips": int((np.asarray(pair[0]) != np.asarray(pair[1])).sum()),
                                       "pairs": len(pair[0])}
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


def seed_flips(new: dict, q: str) -> Flips:
    """The seed-flip rate of class ``q``: the run's own second seed where it has one, else the table."""
    got = new.get("flips", {}).get(q)
    return Flips(got["flips"], got["pairs"]) if got else table_flips(QUANTITIES[q][1])


def class_change(old, new, flips: Flips, alpha: float = ALPHA) -> dict:
    """Paired classes (bool arrays) of one block under the baseline and this run: see the module."""
    old, new = np.asarray(old, bool), np.asarray(new, bool)
    n = len(old)
    lost, gained = int((old & ~new).sum()), int((~old & new).sum())
    d = lost + gained
    out = {"kind": "class", "n": n, "old_share": old.mean() if n else None, "new_share": new.mean() if n else None,
           "discordant": d, "lost": lost, "gained": gained, "seed_flip_upper95": flips.upper, "noise": flips.to_json()}
    if n == 0:
        return {**out, "verdict": "inconclusive"}
    shift = (gained - lost) / n
    p_churn = float(stats.binom.sf(d - 1, n, flips.upper)) if d else 1.0
    p_shift = float(stats.binomtest(gained, d, 0.5).pvalue) if d else 1.0
    bound = abs(shift) + Z * math.sqrt(d) / n
    changed = p_churn < alpha / 2 or (p_shift < alpha / 2 and abs(shift) > TOL_SHARE)
    v = "changed" if changed else "unchanged" if bound <= TOL_SHARE else "inconclusive"
    return {**out, "shift": shift, "shift_bound95": bound, "p_churn": p_churn, "p_mcnemar": p_shift, "verdict": v}


def continuous_change(old, new, alpha: float = ALPHA) -> dict:
    """Paired continuous values of one block: Wilcoxon signed-rank against +-``TOL_SD`` baseline sd."""
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
    sd = float(old.std(ddof=1))
    tol = TOL_SD * sd if sd > 0 else 1e-9 * (1 + float(np.abs(old).max()))
    x = new - old

    def p(shifted, side):
        return float(stats.wilcoxon(shifted, alternative=side).pvalue) if np.any(shifted) else 1.0
    up, down = p(x - tol, "greater"), p(x + tol, "less")        # beyond the tolerance, either side
    within = max(p(x - tol, "less"), p(x + tol, "greater"))     # inside it (TOST)
    v = "changed" if min(up, down) < alpha / 2 else "unchanged" if within < alpha else "inconclusive"
    return {**out, "median_shift": float(np.median(x)), "tolerance": tol, "p_above": up, "p_below": down,
            "p_within": within, "verdict": v}


def is_na(entry: dict | None) -> bool:
    """A claim the run could not ask: missing, errored, n/a, or with no per-channel values."""
    return (not entry or entry.get("verdict") in ("error", "n/a") or str(entry.get("reason", "")).startswith("n/a")
            or not entry.get("paired"))


def compare(old_entry: dict | None, new_entry: dict | None, alpha: float = ALPHA) -> dict:
    """The paired check of one claim: per block and quantity a part (``class_change`` or
    ``continuous_change``, Bonferroni over the parts), and the claim's change beside both runs'
    own verdicts and values."""
    out = {"old": {k: (old_entry or {}).get(k) for k in ("verdict", "value")},
           "new": {k: (new_entry or {}).get(k) for k in ("verdict", "value")}}
    if is_na(old_entry) or is_na(new_entry):
        return {**out, "verdict": "n/a", "parts": {}}
    old, new = old_entry["paired"], new_entry["paired"]
    keys = [(b, q) for b in new if b in old for q in new[b] if q not in ("channels", "flips") and q in old[b]]
    if not keys:
        return {**out, "verdict": "n/a", "parts": {}}
    each = alpha / len(keys)
    parts = {}
    for b, q in keys:
        a, c = _paired(old[b], new[b], q)
        parts[f"{b} {q}"] = (class_change(a > 0.5, c > 0.5, seed_flips(new[b], q), each)
                             if QUANTITIES[q][0] == "class" else continuous_change(a, c, each))
    vs = [p["verdict"] for p in parts.values()]
    v = "changed" if "changed" in vs else "unchanged" if all(x == "unchanged" for x in vs) else "inconclusive"
    return {**out, "verdict": v, "parts": parts}


def changed_parts(result: dict) -> list[str]:
    """One line per changed part, for the test's failure message and the report."""
    lines = []
    for name, p in result.get("parts", {}).items():
        if p["verdict"] != "changed":
            continue
        if p["kind"] == "class":
            lines.append(f"{name}: share {p['old_share']:.3g} -> {p['new_share']:.3g}, {p['discordant']} of {p['n']} "
                         f"channels flipped (seed-flip rate at most {p['seed_flip_upper95']:.2g})")
        else:
            lines.append(f"{name}: median {p['old_median']:.3g} -> {p['new_median']:.3g} "
                         f"(shift {p['median_shift']:.3g}, tolerance {p['tolerance']:.3g})")
    return lines
