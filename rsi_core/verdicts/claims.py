"""One helper per paper claim: plain numbers in, a ``Verdict`` out.

Inputs are plain numbers of the VALID channels (failed FZs dropped) of the unbiased sample (or
the census), keyed by block name, so each helper is testable on constructed data and names the
blocks it read. ``census`` maps a block to whether every channel of it was measured
(``Study.census_map``); ``pairs`` maps a census block to its second-seed pairs (the same values
of the paired channels under the run's FZ seed and the second one, ``Study.pair_values``), or
None where it has none (the shipped table is then the noise, ``verdict.table_flips``). The
claim functions in ``claims/`` read a Study and call these.

The thresholds that make a claim that claim are module constants (``OVERWRITE_BELOW``,
``LOWEST_BIN``, ...), read at call time: the planted mutation check moves them.
"""
from __future__ import annotations

import numpy as np

from rsi_core.measure.metrics import anova_two_groups, spearman
from rsi_core.verdicts.verdict import (
    ALL_TOLERANCE,
    ALPHA,
    IN_RUN,
    NONE_TOLERANCE,
    Flips,
    Verdict,
    Z,
    absent_test,
    all_test,
    census_class,
    census_sd,
    combine,
    compare_shares,
    count_test,
    joint_count_test,
    none_test,
    share_test,
    sign_test,
    significant_test,
    table_flips,
    welch_bounds,
)

OVERWRITE_BELOW = 1.0        # an overwrite channel: M below this
LOWEST_BIN = (0.0, 0.25)     # Figure 2's lowest bin
NEARLY_ALL = 0.9             # "nearly all non-zero": more than this share
MANY_INHIBIT = 0.25          # "many overwrite channels" with B_c(X_I) < 0: more than this share
ABSENT_MARGIN = 0.2          # "not in 1.1 or 2.1": the overwrite mean not lower by 0.2 (Spearman units) or more
FEW = 0.05                   # "a few" <= 5% < "appreciable"
BUNDLED = ("natural images are the bundled sample (250 images: its top 9 is its top 3.6%, the paper's the top 0.018% "
           "of the 50,000 ImageNet validation images): pass --images with the validation set to decide")
CENSUS_RULE = ("on a census by the run's own seed-to-seed noise (share -/+ 1.645 sqrt(F / 2n), F the one-sided "
               "95% upper bound of the class's flip rate between the two FZ seeds of the block's paired channels; "
               "the shipped table where no second seed exists), on a sample by exact one-sided 95% "
               "Clopper-Pearson bounds")


def natural_reason(study) -> str | None:
    """Why a part that reads natural images (top-k images, correlations over images) cannot
    decide on ``study``: the bundled sample, on every profile (``BUNDLED``); None with a real
    image set, and for planted networks (built on the bundled images: their verdict is known there)."""
    from rsi_core.model.anatomy import provenance_of
    from rsi_core.model.sources import kind_of
    if kind_of(provenance_of(study.model).weights) == "planted" or not study.image_set.is_bundled:
        return None
    return BUNDLED


def _mk(statistic, measured, blocks, reason, v, value=None, direction=None) -> Verdict:
    return Verdict("", v, statistic, measured, blocks, reason, value, direction)


def _share(cls, values, pairs, key: str, census: bool, threshold: float, direction: str = "greater",
           unknown: tuple = (0, 0)) -> dict:
    """``share_test`` of the class ``cls`` over a block's values (``census_class``: its count and
    noise; ``unknown``: FZs that never moved, bounding the share both ways)."""
    k, flips = census_class(cls, values, pairs, key, census)
    return share_test(k, len(values), threshold, census=census, flips=flips, direction=direction, unknown=unknown)


def _unknown(fz_health: dict | None, block: str, cls) -> tuple[int, int]:
    """FZs of ``block`` that never moved, as (counted in class ``cls``, counted out of it): their M
    is a default, not a measurement (an I FZ that never moved gives M = 0, a B FZ M = 5)."""
    moved = ((fz_health or {}).get(block) or {}).get("never_moved") or {}
    i, b = int(moved.get("I", 0)), int(moved.get("B", 0))
    at0, at5 = (bool(x) for x in cls(np.array([0.0, 5.0])))
    return i * at0 + b * at5, i * (not at0) + b * (not at5)


def _overwrite(m):
    return np.asarray(m, dtype=float) < OVERWRITE_BELOW


def downsample_overwrite(m: dict, census: dict, pairs: dict | None = None, fz_health: dict | None = None) -> Verdict:
    """fig2-downsample-overwrite: per downsample block ``{b: M}``, the share of M < 1 is above 1/2.
    ``fz_health`` (``Study.fz_health`` per block: FZs that never moved, failed, re-rendered) is
    recorded beside the numbers, as for every Figure 2 claim."""
    pairs = pairs or {}
    per = {b: _share(_overwrite, x, pairs.get(b), "overwrite", census[b], 0.5, unknown=_unknown(fz_health, b, _overwrite))
           for b, x in m.items()}
    st = (f"per downsample block, the share of valid channels with M < {OVERWRITE_BELOW:g} must exceed 1/2, "
          f"{CENSUS_RULE}, FZs that never moved widening both bounds; every block holds -> holds, any fails -> fails")
    reason = "; ".join(f"{b}: {v['k']:g}/{v['n']} overwrite ({v['verdict']})" for b, v in per.items())
    verdict = combine({b: v["verdict"] for b, v in per.items()})
    value = min((v["share"] for v in per.values()), default=None)
    return _mk(st, {**per, **_health(fz_health)}, {"downsample": list(m)}, reason, verdict, value, "greater")


def _health(fz_health: dict | None) -> dict:
    return {"fz_health": fz_health} if fz_health else {}


def _lowest(m):
    m = np.asarray(m, dtype=float)
    return (m >= LOWEST_BIN[0]) & (m < LOWEST_BIN[1])


def _nonzero(m):
    return np.asarray(m, dtype=float) > 0


def final_block(m: dict, census: dict, pairs: dict | None = None, fz_health: dict | None = None) -> Verdict:
    """fig2-final-block: in the final block ``{b: M}``, ALL valid channels in the lowest bin (at
    least 1 - ``ALL_TOLERANCE``) and NEARLY ALL (> ``NEARLY_ALL``) with M > 0."""
    ((b, x),) = m.items()
    pair = (pairs or {}).get(b)
    k, flips = census_class(_lowest, x, pair, "lowest_bin", census[b])
    low = all_test(k, len(x), census=census[b], flips=flips, unknown=_unknown(fz_health, b, _lowest))
    nz = _share(_nonzero, x, pair, "nonzero", census[b], NEARLY_ALL, unknown=_unknown(fz_health, b, _nonzero))
    lo, hi = LOWEST_BIN
    st = (f"in {b}, 'all' valid channels have M in [{lo:g}, {hi:g}): at least {1 - ALL_TOLERANCE:.0%} of them (fewer than a "
          f"block's 'a few' left out, as 'zero' is fewer than 'a few'), and 'nearly all' have M > 0: more "
          f"than {NEARLY_ALL:.0%}; each {CENSUS_RULE}, FZs that never moved widening both bounds")
    reason = f"{low['k']:g}/{low['n']} in [{lo:g}, {hi:g}) ({low['verdict']}), {nz['k']:g}/{nz['n']} non-zero " \
             f"({nz['verdict']})"
    return _mk(st, {"parts": {f"{b} lowest bin": low, f"{b} non-zero": nz}, **_health(fz_health)}, {"final": [b]}, reason,
               combine([low["verdict"], nz["verdict"]]), low["share"], "greater")


def _pooled(parts: list) -> tuple[float, Flips | None]:
    """Blocks' (count, flips) pooled: the counts and the flips add (None where any block has none)."""
    k = sum(p[0] for p in parts)
    if any(p[1] is None for p in parts):
        return k, None
    fs = [p[1] for p in parts]
    src = IN_RUN if all(f.source == IN_RUN for f in fs) else fs[0].source
    return k, Flips(sum(f.flips for f in fs), sum(f.pairs for f in fs), src, sum(f.paired for f in fs))


def simple_less_skewed(simple: dict, downsample: dict, census: dict, fz_health: dict | None = None,
                       pairs: dict | None = None) -> Verdict:
    """fig2-simple-less-skewed: per simple block ``{b: M}``, its share of overwrite channels (M <
    1) below the downsample blocks' pooled share ("less skewed" is descriptive: the shares, not a
    rank test), each share to its own seed noise (``pairs``) and FZs that never moved."""
    pairs = pairs or {}
    whole = all(census[b] for b in [*simple, *downsample])
    down = [census_class(_overwrite, x, pairs.get(b), "overwrite", whole) for b, x in downsample.items()]
    k_d, f_d = _pooled(down)
    n_d = sum(len(x) for x in downsample.values())
    u_d = tuple(np.sum([_unknown(fz_health, b, _overwrite) for b in downsample], axis=0).tolist()) \
        if downsample else (0, 0)
    per = {}
    for b, x in simple.items():
        k, f = census_class(_overwrite, x, pairs.get(b), "overwrite", whole)
        c = compare_shares(k, len(x), k_d, n_d, census=whole, flips1=f, flips2=f_d,
                           unknown=(_unknown(fz_health, b, _overwrite), u_d))
        per[b] = {**c, "k": k, "n": len(x)}
    measured = {"parts": per, "downsample_overwrite_share": k_d / n_d if n_d else float("nan"), "n_downsample": n_d,
                **_health(fz_health)}
    st = (f"per simple block ({', '.join(simple)}), its share of valid channels with M < {OVERWRITE_BELOW:g} below "
          f"the downsample blocks' ({', '.join(downsample)}) pooled share: the difference's one-sided 95% bounds "
          f"{CENSUS_RULE} (a sample: each share's), FZs that never moved widening them; above 0 holds, below 0 "
          "fails, else inconclusive; every block holds -> holds")
    reason = (f"overwrite share downsample {measured['downsample_overwrite_share']:.2f}; "
              + "; ".join(f"{b} {v['share']:.2f} ({v['verdict']})" for b, v in per.items()))
    diffs = [v["share"] - v["other"] for v in per.values() if v["share"] == v["share"]]
    return _mk(st, measured, {"simple": list(simple), "downsample": list(downsample)}, reason,
               combine({b: v["verdict"] for b, v in per.items()}), max(diffs) if diffs else None, "less")


def reliability_lower(pair) -> tuple[float, int]:
    """One-sided 95% lower bound of the seed-to-seed Spearman correlation of a block's paired
    values (Fisher z), and the pairs read; 0 without 4 pairs (the seed noise then taken as large
    as it can be)."""
    if pair is None:
        return 0.0, 0
    a, b = np.asarray(pair[0], dtype=float), np.asarray(pair[1], dtype=float)
    if len(a) < 4:
        return 0.0, len(a)
    rho = spearman(a, b)[0]
    if rho != rho:
        return 0.0, len(a)
    return float(np.clip(np.tanh(np.arctanh(min(rho, 0.999999)) - Z / np.sqrt(len(a) - 3)), 0, 1)), len(a)


def weight_magnitude(per_block: dict, census: dict, pairs: dict | None = None) -> Verdict:
    """fig3-weight-magnitude: per simple block ``{b: (m, |bn weight|, mean |conv weight|)}`` of
    the valid channels, Spearman(M, each) negative. Every block must show it (an
    intersection-union test: no correction across blocks). On a census M's own seed noise
    decides: with r the lower bound of M's seed-to-seed reliability from the block's paired
    channels (``pairs[b]`` = their M under both seeds), rho moves by sd sqrt((1 - r) / n) between
    seeds; a sample reads the Spearman p-value."""
    parts, measured = {}, {}
    for b, (m, bn, conv) in per_block.items():
        r_lo, n_pairs = reliability_lower((pairs or {}).get(b))
        measured[b] = {"reliability_lower95": r_lo, "pairs": n_pairs}
        for name, w in (("bn", bn), ("conv", conv)):
            rho, p = spearman(m, w)
            if census[b]:
                sd = float(np.sqrt((1 - r_lo) / max(len(m), 1)))
                v = sign_test(rho - Z * sd, rho + Z * sd, "negative")
                measured[b].update({f"seed_sd_{name}": sd, f"upper95_{name}": rho + Z * sd})
            else:
                v = significant_test(rho, p, "negative")
            parts[(b, name)] = v
            measured[b].update({f"rho_{name}": rho, f"p_{name}": p, f"verdict_{name}": v})
    st = ("per simple block, Spearman(M, |BN2 weight|) and Spearman(M, mean |conv2 weight|) over the valid "
          "channels (failed FZs dropped), every block and weight negative (no correction: every one must hold). "
          "A census: rho -/+ 1.645 sqrt((1 - r) / n), r the one-sided 95% lower bound of M's seed-to-seed Spearman "
          "on the block's second-seed pairs (0 without them): below 0 holds, above 0 fails, else inconclusive. "
          "A sample: p < 0.05 negative holds, positive fails, else inconclusive")
    reason = "; ".join(f"{b}: rho_bn {v['rho_bn']:.2f} ({v['verdict_bn']}), rho_conv {v['rho_conv']:.2f} "
                       f"({v['verdict_conv']}), M reliability >= {v['reliability_lower95']:.2f}"
                       for b, v in measured.items())
    rhos = [v[f"rho_{w}"] for v in measured.values() for w in ("bn", "conv") if v[f"rho_{w}"] == v[f"rho_{w}"]]
    return _mk(st, measured, {"simple": list(per_block)}, reason, combine(parts.values()),
               max(rhos) if rhos else None, "less")


def compare_groups(over, skip) -> dict:
    """ANOVA of overwrite vs skip; the effect (overwrite mean - skip mean) raw and in pooled
    standard deviations (``standardized``: comparable across models whose BatchNorms scale
    differently)."""
    over, skip = np.asarray(over, dtype=float), np.asarray(skip, dtype=float)
    f, p = anova_two_groups(over, skip)
    mo = float(over.mean()) if len(over) else float("nan")
    ms = float(skip.mean()) if len(skip) else float("nan")
    dof = len(over) + len(skip) - 2
    pooled = np.sqrt(((len(over) - 1) * over.var(ddof=1) + (len(skip) - 1) * skip.var(ddof=1)) / dof) \
        if len(over) > 1 and len(skip) > 1 else float("nan")
    return {"F": f, "p": p, "overwrite_mean": mo, "skip_mean": ms, "effect": mo - ms,
            "standardized": (mo - ms) / pooled if pooled > 0 else float("nan"),
            "n_overwrite": len(over), "n_skip": len(skip)}


def seed_var(pair, n: int) -> float:
    """The seed-to-seed variance of a block's overwrite - skip difference over its n channels,
    recomputed on the second seed: ``pair`` = (M seed a, M seed b, values seed a, values seed b)
    of the paired channels (the groups from each seed's own M: channels move between them); half
    the squared difference of the two seeds' effects, scaled from the pairs to the block. 0
    without pairs."""
    if pair is None:
        return 0.0
    ma, mb, va, vb = (np.asarray(x, dtype=float) for x in pair)
    ea, eb = (compare_groups(v[m < OVERWRITE_BELOW], v[m > OVERWRITE_BELOW])["effect"] for m, v in ((ma, va), (mb, vb)))
    if ea != ea or eb != eb:
        return 0.0
    return float((ea - eb) ** 2 / 2 * len(ma) / max(n, 1))


def lower_effect(over, skip, pair, census: bool) -> dict:
    """A claimed 'overwrite mean lower than skip mean': on a sample the ANOVA p (significant and
    lower holds, significant and higher fails, else inconclusive); on a census the difference's
    Welch bounds with its seed-to-seed variance added (``seed_var``): ``sign_test``."""
    g = compare_groups(over, skip)
    if not census:
        return {**g, "verdict": significant_test(g["effect"], g["p"], "negative")}
    extra = seed_var(pair, len(over) + len(skip))
    diff, lo, hi = welch_bounds(over, skip, extra_var=extra)
    return {**g, "seed_var": extra, "lower95": lo, "upper95": hi, "verdict": sign_test(lo, hi, "negative")}


def negative_share(over, skip, pair, census: bool) -> dict:
    """"Many overwrite channels with B_c(X_I) < 0": the share of the overwrite channels, above
    ``MANY_INHIBIT``. On a census the class (overwrite AND negative) is counted over the whole
    block, its noise from the pairs under both seeds, channels that move between the groups
    included; the count's sd over the overwrite count is the share's."""
    over = np.asarray(over, dtype=float)
    n_over, n = len(over), len(over) + len(skip)
    k = int((over < 0).sum())
    if not census or n_over == 0:
        return share_test(k, n_over, MANY_INHIBIT, census=False) if not census else \
            {"k": k, "n": n_over, "verdict": "inconclusive"}
    if pair is None:
        flips = table_flips("inhibit")
    else:
        ma, mb, va, vb = (np.asarray(x, dtype=float) for x in pair)
        a, b = (ma < OVERWRITE_BELOW) & (va < 0), (mb < OVERWRITE_BELOW) & (vb < 0)
        k = k + (int(b.sum()) - int(a.sum())) / 2
        flips = Flips(int((a != b).sum()), len(a), IN_RUN, len(a))
    sd = n * census_sd(n, flips, min(1.0, MANY_INHIBIT * n_over / n)) / n_over
    lo, hi = k / n_over - Z * sd, k / n_over + Z * sd
    v = "holds" if lo > MANY_INHIBIT else "fails" if hi < MANY_INHIBIT else "inconclusive"
    return {"k": k, "n": n_over, "share": k / n_over, "threshold": MANY_INHIBIT, "model": "census",
            "noise": flips.to_json(), "sd": sd, "lower95": lo, "upper95": hi, "verdict": v}


def inhibition(per_block: dict, census: dict, significant_in=("2.1", "3.1"), pairs: dict | None = None) -> Verdict:
    """fig4-inhibition: ``{b: (overwrite B_c(X_I), skip B_c(X_I))}``; in ``significant_in``, the
    overwrite mean lower than the skip mean (``lower_effect``; every block must show it: no
    correction) and "many" (> ``MANY_INHIBIT``) overwrite channels with B_c(X_I) < 0
    (``negative_share``). ``pairs[b]``: (M seed a, M seed b, B_c(X_I) seed a, seed b) of the
    block's paired channels, or None."""
    measured = {b: compare_groups(o, s) for b, (o, s) in per_block.items()}
    parts = {}
    for b in significant_in:
        pair = (pairs or {}).get(b)
        low = lower_effect(*per_block[b], pair, census[b])
        measured[b].update({k: low[k] for k in ("seed_var", "lower95", "upper95") if k in low})
        measured[b]["anova_verdict"] = low["verdict"]
        measured[b]["negative"] = negative_share(*per_block[b], pair, census[b])
        parts[b] = combine([low["verdict"], measured[b]["negative"]["verdict"]])
    st = (f"in {', '.join(significant_in)}: B_c(X_I) of overwrite (M < 1) vs skip (M > 1) valid channels, the "
          f"overwrite mean lower (a sample: one-way ANOVA p < 0.05; a census: the difference's one-sided 95% Welch "
          f"bounds with its seed-to-seed variance from the second seed added, below 0 holds, above 0 fails), and the "
          f"share of overwrite channels with B_c(X_I) < 0 above {MANY_INHIBIT:.0%}, {CENSUS_RULE} (channels that move "
          "between the groups counted); every block must hold (no correction); the value is the overwrite - skip "
          "difference in pooled standard deviations")
    reason = "; ".join(f"{b}: overwrite mean {v['overwrite_mean']:.2f} vs skip {v['skip_mean']:.2f}, p {v['p']:.2g}"
                       for b, v in measured.items())
    effects = [e for e in (measured[b]["standardized"] for b in significant_in) if e == e]
    return _mk(st, measured, {"simple": list(per_block)}, reason, combine(parts),
               max(effects) if effects else None, "less")


def input_block_correlation(per_block: dict, census: dict, significant_in=("3.1",), absent_in=("1.1", "2.1"),
                            pairs: dict | None = None, natural: str | None = None) -> Verdict:
    """fig4-input-block-correlation: ``{b: (overwrite corr, skip corr)}``. In ``significant_in``
    overwrite channels' input-block correlations are lower (``lower_effect``; ``pairs[b]`` = (M
    seed a, M seed b, corr, corr) of the paired channels); in ``absent_in`` they are NOT lower,
    shown with power (``absent_test``: an effect of ``ABSENT_MARGIN`` excluded). The paper's
    words are "more negative ... not in 1.1 or 2.1": a significant OPPOSITE effect there
    (overwrite higher) is not "more negative". ``natural``: why the natural images cannot decide
    (the bundled sample): every part inconclusive with that reason."""
    measured = {b: compare_groups(o, s) for b, (o, s) in per_block.items()}
    parts = {}
    for b in significant_in:
        low = lower_effect(*per_block[b], (pairs or {}).get(b), census[b])
        measured[b].update({k: low[k] for k in ("seed_var", "lower95", "upper95") if k in low})
        parts[b] = measured[b]["verdict"] = low["verdict"]
    for b in absent_in:
        measured[b]["absence"] = absent_test(*per_block[b], ABSENT_MARGIN)
        parts[b] = measured[b]["verdict"] = measured[b]["absence"]["verdict"]
        measured[b]["opposite_significant"] = bool(measured[b]["p"] < ALPHA and measured[b]["effect"] > 0)
    st = (f"per-channel Spearman(B_c, I_c) over natural images with I_c > 0, overwrite vs skip: in "
          f"{', '.join(significant_in)} the overwrite mean lower (a sample: ANOVA p < 0.05; a census: Welch bounds "
          f"with the seed-to-seed variance of the groups added, below 0 holds, above 0 fails); in "
          f"{', '.join(absent_in)} not lower: the one-sided 95% Welch lower bound of (overwrite mean - skip mean) "
          f"above -{ABSENT_MARGIN:g} holds, the upper bound below -{ABSENT_MARGIN:g} fails, else inconclusive (a "
          "significant opposite effect is not 'more negative'); natural images read on the bundled sample are "
          "inconclusive")
    reason = "; ".join(f"{b}: overwrite {v['overwrite_mean']:.2f} vs skip {v['skip_mean']:.2f}, p {v['p']:.2g} "
                       f"({v['verdict']})" for b, v in measured.items())
    verdict = combine(parts)
    if natural:
        verdict, reason = "inconclusive", f"inconclusive: {natural}; " + reason
    return _mk(st, measured, {"significant": list(significant_in), "absent": list(absent_in)}, reason,
               verdict, measured[significant_in[0]]["effect"], "less")


def scale_roles(roles: dict, fig7: dict) -> dict:
    """Which blocks play which part of fig5-scale-counts, from a model's block roles (resnet18:
    "many" in 1.1, 2.0, 2.1, 3.1; zero in 3.0, 4.0, 4.1; a few without criterion 1 in 4.0, 4.1;
    appreciable in 3.0, below 2.1 and 3.1) and the Figure 7 lists (their lengths: "passing both")."""
    simple, down, final = roles["simple"], roles["downsample"], roles["final"]
    many = simple[:1] + down[:1] + simple[1:]
    return {"many": {b: 3 for b in many}, "both": {b: len(fig7[b]) for b in many if fig7.get(b)},
            "none": tuple(down[1:] + final), "few_without_mix": tuple(down[2:] + final),
            "appreciable": down[1] if len(down) > 1 else None, "neighbours": tuple(simple[1:])}


def _with_mix(c):
    return np.asarray(c["with_mix"], bool)


def _without_mix(c):
    return np.asarray(c["without_mix"], bool)


def _both(c):
    return np.asarray(c["both"], bool)


def scale_counts(classes: dict, census: dict, population: dict, many: dict, both: dict, none, few_without_mix,
                 appreciable: str | None, neighbours=(), pairs: dict | None = None, natural: str | None = None) -> Verdict:
    """fig5-scale-counts. ``classes[b]`` = per valid channel {"with_mix": passes the three
    criteria, "without_mix": passes 2 and 3, "both": passes the FZ and natural-image versions
    (where ``both`` names the block)}; ``pairs[b]``: the same for the paired channels under both
    seeds; ``population[b]``: the block's channel count. ``many``/``both``: block -> "at least"
    count; ``none``: blocks with "zero"; ``few_without_mix``: blocks with "a few" without
    criterion 1; ``appreciable``: the block with an appreciable share without it, below ``neighbours``';
    ``natural``: why the natural images cannot decide (``natural_reason``): the "both" part is then
    inconclusive with it."""
    parts, pairs = {}, pairs or {}

    def count(b, cls, key):
        return census_class(cls, classes[b], pairs.get(b), key, census[b])

    k = {}
    for b, c in classes.items():
        k[b] = {"n": len(c["with_mix"]), "with_mix": count(b, _with_mix, "criteria")[0],
                "without_mix": count(b, _without_mix, "criteria_without_mix")[0]}
        if "both" in c:
            k[b]["both"] = count(b, _both, "criteria")[0]

    def counted(b, cls, key, at_least):
        kb, flips = count(b, cls, key)
        return count_test(kb, k[b]["n"], at_least, census=census[b], population=population[b], flips=flips)

    def shared(b, cls, key, threshold, direction="greater"):
        kb, flips = count(b, cls, key)
        return share_test(kb, k[b]["n"], threshold, census=census[b], flips=flips, direction=direction)

    for b, t in many.items():
        parts[f"{b} many"] = counted(b, _with_mix, "criteria", t)
    if both and natural:
        parts["both"] = {"verdict": "inconclusive", "reason": natural}
    elif both:
        tests = {b: counted(b, _both, "criteria", t) for b, t in both.items()}
        parts["both"] = (paper_count_test(tests) if all(census[b] for b in both) else joint_count_test(tests))
    for b in none:
        kb, flips = count(b, _with_mix, "criteria")
        parts[f"{b} none"] = none_test(kb, k[b]["n"], census=census[b], flips=flips)
    for b in few_without_mix:
        parts[f"{b} few without mix"] = shared(b, _without_mix, "criteria_without_mix", FEW, "less")
    if appreciable:
        a = appreciable
        parts[f"{a} appreciable without mix"] = shared(a, _without_mix, "criteria_without_mix", FEW)
        for nb in neighbours:
            whole = census[a] and census[nb]
            (k1, f1), (k2, f2) = count(a, _without_mix, "criteria_without_mix"), count(nb, _without_mix,
                                                                                       "criteria_without_mix")
            parts[f"{a} below {nb} without mix"] = compare_shares(k1, k[a]["n"], k2, k[nb]["n"], census=whole,
                                                                  flips1=f1 if whole else None,
                                                                  flips2=f2 if whole else None)
    at_least = lambda d: ", ".join(f"{t} in {b}" for b, t in d.items()) or "none"  # noqa: E731
    st = (f"counts of valid channels meeting the criteria: at least {at_least(many)}, and passing the "
          f"natural-image version too as many as the paper's {at_least(both)} (one FZ seed's counts: on a census the "
          "total fails only below the paper's by more than two seeds' noise, else holds; on a sample any block "
          f"below fails); 'zero' in {', '.join(none)}: under "
          f"{NONE_TOLERANCE:.0%} of the block (fewer than 'a few'); "
          f"without criterion 1, 'a few' (at most {FEW:.0%}) in {', '.join(few_without_mix)}"
          + (f" and 'appreciable' (more than {FEW:.0%}) in {appreciable} but less than in {' and '.join(neighbours)}"
             if appreciable else "")
          + f"; each part {CENSUS_RULE} (a count: n times the share's); all parts hold -> holds, any fails -> fails")
    reason = "; ".join(f"{b}: {c['with_mix']:g}/{c['n']} ({c['without_mix']:g} without mix"
                       + (f", {c['both']:g} both)" if "both" in c else ")")
                       for b, c in k.items())
    blocks = {"many": list(many), "none": list(none), "few without mix": list(few_without_mix),
              "appreciable": [appreciable] if appreciable else [], "neighbours": list(neighbours)}
    return _mk(st, {"counts": k, "parts": parts}, blocks, reason, combine({n: v["verdict"] for n, v in parts.items()}),
               min(k[b]["with_mix"] for b in many), "greater")


def paper_count_test(tests: dict) -> dict:
    """"As many as the paper found" on a census, from each block's ``count_test``: the paper's
    counts are one FZ seed's, as noisy as the run's, so the run's total minus the paper's has
    twice the variance of the run's: below -2.326 sqrt(2 sum sd_b^2) fails (one-sided 1%: a
    replication of a count that equals the paper's would fail a 5% test 1 run in 20), else holds."""
    k, a = sum(t["k"] for t in tests.values()), sum(t["at_least"] for t in tests.values())
    sd = float(np.sqrt(2 * sum(t["sd"] ** 2 for t in tests.values())))
    v = "fails" if k - a < -Z_PAPER_COUNT * sd else "holds"
    return {"blocks": tests, "k": k, "paper": a, "sd_difference": sd, "lower99": k - a - Z_PAPER_COUNT * sd,
            "verdict": v}


Z_PAPER_COUNT = 2.326   # one-sided 1% normal quantile: the paper-count comparison's level
NULL_DRAWS = 4000   # Monte Carlo draws of the list claims' null (p resolution 1 / 4001)


def percentiles(population, ordered) -> dict:
    """Each population channel's mid-rank percentile in the run's ordering (``ordered``: the
    channels of the list's kind, best first; every other channel tied below them): 1 near the top."""
    pop = np.asarray(list(population), dtype=int)
    ordered = np.asarray(list(ordered), dtype=int)
    n = len(pop)
    if not n:
        return {}
    kept = ordered[np.isin(ordered, pop)]
    pos = np.full(max(pop.max(), ordered.max(initial=0)) + 1, -1)
    pos[kept] = np.arange(len(kept))
    u = np.where(pos[pop] >= 0, 1 - (pos[pop] + 0.5) / n, (n - len(kept)) / (2 * n))
    return dict(zip(pop.tolist(), u.tolist()))


def _draw(rng, n: int, m: int) -> np.ndarray:
    """``NULL_DRAWS`` random sets of m of n channels: without replacement where n is small (<= 64:
    exact, as a list names distinct channels), with replacement above (the same to within 1%, and cheap)."""
    if n <= 64:
        return rng.random((NULL_DRAWS, n)).argsort(axis=1)[:, :min(m, n)]
    return rng.integers(0, n, (NULL_DRAWS, m))


def reproducibility(pair, k: int) -> dict | None:
    """The run's own seed-to-seed reproducibility of an exact top-``k`` list: ``pair`` = the
    paired channels' scores (larger: more the list's kind) under both seeds; how many of the
    top k under one seed are the top k under the other. None without pairs."""
    if pair is None or len(pair[0]) < 2 * k:
        return None
    a, b = (np.asarray(x, dtype=float) for x in pair)
    top = lambda x: set(np.argsort(-x, kind="stable")[:k].tolist())  # noqa: E731
    shared = len(top(a) & top(b))
    return {"pairs": len(a), "k": k, "shared": shared, "reproducible": shared == k}


def overlap(per_block: dict, pairs: dict | None = None, k: int | None = 3, natural: str | None = None) -> Verdict:
    """Figures 6-8, read by rank: ``{b: (population, ordered, reference)}``, the population being
    the channels the null draws from (the unbiased sample's valid channels; for Figure 6 those
    passing the criteria), ``ordered`` the run's channels of the list's kind, best first. An
    exact list of a few of hundreds of channels does not recur under another FZ seed (the
    calibration: the paper's top 3 from one seed and the run's from another of the same census
    share nothing most of the time), so the question is whether the paper's channels rank near
    the top of the run's ordering: S, the sum of their mid-rank percentiles over the blocks,
    against S of random channels of the same blocks (``NULL_DRAWS`` Monte Carlo draws, fixed
    seed). S significantly high holds, significantly low fails; else inconclusive, with "not
    reproducible under FZ seeds" where the run's own top ``k`` changed between its two seeds
    (``pairs[b]``: the paired channels' scores under both seeds, ``reproducibility``). The found
    lists (the top ``k``, or all ordered for None) and their exact overlaps are reported.
    ``natural``: why a list read from natural images cannot decide: inconclusive with it."""
    per, listed = {}, {}
    for b, (population, ordered, reference) in per_block.items():
        u = percentiles(population, ordered)
        named = [c for c in reference if c in u]
        found = [int(c) for c in (ordered if k is None else ordered[:k])]
        listed[b] = (np.array(list(u.values())), [u[c] for c in named])
        per[b] = {"reference": sorted(reference), "reference_studied": sorted(named), "found": found,
                  "overlap": sorted(set(named) & set(found)), "population": len(u),
                  "percentiles": {str(c): u[c] for c in named}}
        rep = reproducibility((pairs or {}).get(b), len(reference) if k is None else k)
        if rep:
            per[b]["reproducibility"] = rep
    stat = sum(sum(x) for _, x in listed.values())
    if any(x for _, x in listed.values()):
        rng = np.random.default_rng(0)
        null = sum(pop[_draw(rng, len(pop), len(x))].sum(axis=1) for pop, x in listed.values() if x)
        p_high = float((1 + (null >= stat - 1e-12).sum()) / (1 + NULL_DRAWS))
        p_low = float((1 + (null <= stat + 1e-12).sum()) / (1 + NULL_DRAWS))
    else:
        p_high = p_low = float("nan")
    v = "inconclusive" if p_high != p_high else "holds" if p_high < ALPHA else "fails" if p_low < ALPHA \
        else "inconclusive"
    reps = [x["reproducibility"] for x in per.values() if "reproducibility" in x]
    not_rep = bool(reps) and not all(r["reproducible"] for r in reps)
    st = ("the paper's listed channels' mid-rank percentiles in the run's ordering (the list's kind first, best "
          "first), summed over the listed blocks, against random channels of the same blocks (Monte Carlo null "
          "from the population: the unbiased sample's valid channels; for Figure 6 those passing the criteria): "
          "p < 0.05 high holds, p < 0.05 low fails, else inconclusive ('not reproducible under FZ seeds' where the "
          "run's own top list changed between its two FZ seeds)")
    reason = "; ".join(f"{b}: {len(x['overlap'])}/{len(x['reference_studied'])} in the top "
                       f"{'list' if k is None else k}" for b, x in per.items()) + \
        f"; rank p high {p_high:.3g}, low {p_low:.3g}"
    if v == "inconclusive" and not_rep:
        reason = "inconclusive: not reproducible under FZ seeds (the run's own top list changed between its two " \
                 "FZ seeds); " + reason
    if natural:
        v, reason = "inconclusive", f"inconclusive: {natural}; " + reason
    measured = {"blocks": per, "p_high": p_high, "p_low": p_low, "not_reproducible": not_rep,
                "found": {b: x["found"] for b, x in per.items()}}
    return _mk(st, measured, {"listed": list(per_block)}, reason, v, p_high, "less")
