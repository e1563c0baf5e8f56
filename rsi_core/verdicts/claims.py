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
from scipy import stats as _stats

from rsi_core.measure.metrics import anova_two_groups, hypergeom_overlap_p, spearman
from rsi_core.verdicts.verdict import (
    ALL_TOLERANCE,
    ALPHA,
    NONE_TOLERANCE,
    Verdict,
    absent_test,
    all_test,
    census_class,
    combine,
    compare_shares,
    count_test,
    holm,
    joint_count_test,
    none_test,
    share_test,
    significant_test,
)

OVERWRITE_BELOW = 1.0        # an overwrite channel: M below this
LOWEST_BIN = (0.0, 0.25)     # Figure 2's lowest bin
NEARLY_ALL = 0.9             # "nearly all non-zero": more than this share
MANY_INHIBIT = 0.25          # "many overwrite channels" with B_c(X_I) < 0: more than this share
ABSENT_MARGIN = 0.2          # "not in 1.1 or 2.1": the overwrite mean not lower by 0.2 (Spearman units) or more
FEW = 0.05                   # "a few" <= 5% < "appreciable"
CENSUS_RULE = ("on a census by the run's own seed-to-seed noise (share -/+ 1.645 sqrt(F / 2n), F the one-sided "
               "95% upper bound of the class's flip rate between the two FZ seeds of the block's paired channels; "
               "the shipped table where no second seed exists), on a sample by exact one-sided 95% "
               "Clopper-Pearson bounds")


def _mk(statistic, measured, blocks, reason, v, value=None, direction=None) -> Verdict:
    return Verdict("", v, statistic, measured, blocks, reason, value, direction)


def _share(cls, values, pairs, key: str, census: bool, threshold: float, direction: str = "greater") -> dict:
    """``share_test`` of the class ``cls`` over a block's values (``census_class``: its count and noise)."""
    k, flips = census_class(cls, values, pairs, key, census)
    return share_test(k, len(values), threshold, census=census, flips=flips, direction=direction)


def _overwrite(m):
    return np.asarray(m, dtype=float) < OVERWRITE_BELOW


def downsample_overwrite(m: dict, census: dict, pairs: dict | None = None, fz_health: dict | None = None) -> Verdict:
    """fig2-downsample-overwrite: per downsample block ``{b: M}``, the share of M < 1 is above 1/2.
    ``fz_health`` (``Study.fz_health`` per block: FZs that never moved, failed, re-rendered) is
    recorded beside the numbers, as for every Figure 2 claim."""
    pairs = pairs or {}
    per = {b: _share(_overwrite, x, pairs.get(b), "overwrite", census[b], 0.5) for b, x in m.items()}
    st = (f"per downsample block, the share of valid channels with M < {OVERWRITE_BELOW:g} must exceed 1/2, "
          f"{CENSUS_RULE}; every block holds -> holds, any fails -> fails")
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
    low = all_test(k, len(x), census=census[b], flips=flips)
    nz = _share(_nonzero, x, pair, "nonzero", census[b], NEARLY_ALL)
    lo, hi = LOWEST_BIN
    st = (f"in {b}, 'all' valid channels have M in [{lo:g}, {hi:g}): at least {1 - ALL_TOLERANCE:.0%} of them (fewer than a "
          f"block's 'a few' left out, as 'zero' is fewer than 'a few'), and 'nearly all' have M > 0: more "
          f"than {NEARLY_ALL:.0%}; each {CENSUS_RULE}")
    reason = f"{low['k']:g}/{low['n']} in [{lo:g}, {hi:g}) ({low['verdict']}), {nz['k']:g}/{nz['n']} non-zero " \
             f"({nz['verdict']})"
    return _mk(st, {"parts": {f"{b} lowest bin": low, f"{b} non-zero": nz}, **_health(fz_health)}, {"final": [b]}, reason,
               combine([low["verdict"], nz["verdict"]]), low["share"], "greater")


def simple_less_skewed(simple: dict, downsample: dict, census: dict, fz_health: dict | None = None) -> Verdict:
    """fig2-simple-less-skewed: per simple block ``{b: M}``, its M is stochastically larger than
    the downsample blocks' pooled M (one-sided Mann-Whitney U, Holm over the simple blocks)."""
    down = np.concatenate([np.asarray(x, dtype=float) for x in downsample.values()]) if downsample else np.zeros(0)
    p_more, p_less = {}, {}
    for b, x in simple.items():
        a = np.asarray(x, dtype=float)
        ok = len(a) and len(down)
        p_more[b] = float(_stats.mannwhitneyu(a, down, alternative="greater").pvalue) if ok else float("nan")
        p_less[b] = float(_stats.mannwhitneyu(a, down, alternative="less").pvalue) if ok else float("nan")
    adj_more, adj_less = holm(p_more), holm(p_less)
    whole = all(census[b] for b in [*simple, *downsample])
    share = lambda x: float(_overwrite(x).mean()) if len(x) else float("nan")  # noqa: E731
    per = {}
    for b, x in simple.items():
        more, less = adj_more[b], adj_less[b]
        v = ("inconclusive" if more != more else "holds" if more < ALPHA
             else "fails" if (less < ALPHA or whole) else "inconclusive")
        per[b] = {"overwrite_share": share(x), "n": len(x), "p_greater": p_more[b], "p_holm_greater": more,
                  "p_less": p_less[b], "p_holm_less": less, "verdict": v}
    measured = {"parts": per, "downsample_overwrite_share": share(down), "n_downsample": len(down),
                **_health(fz_health)}
    st = (f"per simple block ({', '.join(simple)}), one-sided Mann-Whitney U of its M > the downsample blocks' "
          f"({', '.join(downsample)}) pooled M, Holm over the simple blocks: p < 0.05 holds; the opposite "
          "significant fails; neither fails on a census and is inconclusive on a sample; every block holds -> holds")
    reason = (f"overwrite share downsample {measured['downsample_overwrite_share']:.2f}; "
              + "; ".join(f"{b} {v['overwrite_share']:.2f} (Holm p {v['p_holm_greater']:.3g}, {v['verdict']})"
                          for b, v in per.items()))
    ps = [v["p_holm_greater"] for v in per.values() if v["p_holm_greater"] == v["p_holm_greater"]]
    return _mk(st, measured, {"simple": list(simple), "downsample": list(downsample)}, reason,
               combine({b: v["verdict"] for b, v in per.items()}), max(ps) if ps else None, "less")


def weight_magnitude(per_block: dict, census: dict) -> Verdict:
    """fig3-weight-magnitude: per simple block ``{b: (m, |bn weight|, mean |conv weight|)}`` of
    the valid channels, Spearman(M, each) negative and significant after Holm over all 2 x blocks tests."""
    raw = {}
    for b, (m, bn, conv) in per_block.items():
        for name, w in (("bn", bn), ("conv", conv)):
            raw[(b, name)] = spearman(m, w)
    adj = holm({k: p for k, (_, p) in raw.items()})
    parts, measured = {}, {}
    for (b, name), (rho, p) in raw.items():
        parts[(b, name)] = significant_test(rho, adj[(b, name)], "negative", census=census[b])
        measured.setdefault(b, {}).update({f"rho_{name}": rho, f"p_{name}": p, f"p_holm_{name}": adj[(b, name)],
                                           f"verdict_{name}": parts[(b, name)]})
    st = ("per simple block, Spearman(M, |BN2 weight|) and Spearman(M, mean |conv2 weight|) over the valid "
          "channels (failed FZs dropped), Holm-corrected over all these tests: negative with p < 0.05 holds, "
          "positive with p < 0.05 fails, not significant fails on a census and is inconclusive on a sample")
    reason = "; ".join(f"{b}: rho_bn {v['rho_bn']:.2f} (Holm p {v['p_holm_bn']:.2g}), rho_conv "
                       f"{v['rho_conv']:.2f} (Holm p {v['p_holm_conv']:.2g})" for b, v in measured.items())
    rhos = [r for r, _ in raw.values() if r == r]
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


def _negative(x):
    return np.asarray(x, dtype=float) < 0


def inhibition(per_block: dict, census: dict, significant_in=("2.1", "3.1"), pairs: dict | None = None) -> Verdict:
    """fig4-inhibition: ``{b: (overwrite B_c(X_I), skip B_c(X_I))}``; in ``significant_in``, ANOVA
    overwrite vs skip significant (Holm over those blocks) with the overwrite mean lower, and
    "many" (> ``MANY_INHIBIT``) overwrite channels with B_c(X_I) < 0 (``pairs``: B_c(X_I) of the
    paired channels overwrite under both seeds)."""
    measured = {b: compare_groups(o, s) for b, (o, s) in per_block.items()}
    adj = holm({b: measured[b]["p"] for b in significant_in if b in measured})
    parts = {}
    for b in significant_in:
        v = measured[b]
        over = np.asarray(per_block[b][0], dtype=float)
        v["p_holm"] = adj[b]
        v["anova_verdict"] = significant_test(v["effect"], adj[b], "negative", census=census[b])
        v["negative"] = _share(_negative, over, (pairs or {}).get(b), "inhibit", census[b], MANY_INHIBIT)
        parts[b] = combine([v["anova_verdict"], v["negative"]["verdict"]])
    st = (f"in {', '.join(significant_in)}: one-way ANOVA of B_c(X_I), overwrite (M < 1) vs skip (M > 1) valid "
          f"channels, Holm-corrected over these blocks, p < 0.05 with the overwrite mean lower (opposite: fails), "
          f"and the share of overwrite channels with B_c(X_I) < 0 above {MANY_INHIBIT:.0%}, {CENSUS_RULE}; the "
          "value is the overwrite - skip difference in pooled standard deviations")
    reason = "; ".join(f"{b}: overwrite mean {v['overwrite_mean']:.2f} vs skip {v['skip_mean']:.2f}, p {v['p']:.2g}"
                       for b, v in measured.items())
    effects = [e for e in (measured[b]["standardized"] for b in significant_in) if e == e]
    return _mk(st, measured, {"simple": list(per_block)}, reason, combine(parts),
               max(effects) if effects else None, "less")


def input_block_correlation(per_block: dict, census: dict, significant_in=("3.1",), absent_in=("1.1", "2.1")) \
        -> Verdict:
    """fig4-input-block-correlation: ``{b: (overwrite corr, skip corr)}``. In ``significant_in``
    overwrite channels' input-block correlations are significantly lower (ANOVA, Holm over those
    blocks); in ``absent_in`` they are NOT lower, shown with power (``absent_test``: an effect of
    ``ABSENT_MARGIN`` excluded). The paper's words are "more negative ... not in 1.1 or 2.1": a
    significant OPPOSITE effect there (overwrite higher) is not "more negative"."""
    measured = {b: compare_groups(o, s) for b, (o, s) in per_block.items()}
    adj = holm({b: measured[b]["p"] for b in significant_in})
    parts = {}
    for b in significant_in:
        measured[b]["p_holm"] = adj[b]
        parts[b] = measured[b]["verdict"] = significant_test(measured[b]["effect"], adj[b], "negative",
                                                             census=census[b])
    for b in absent_in:
        measured[b]["absence"] = absent_test(*per_block[b], ABSENT_MARGIN)
        parts[b] = measured[b]["verdict"] = measured[b]["absence"]["verdict"]
        measured[b]["opposite_significant"] = bool(measured[b]["p"] < ALPHA and measured[b]["effect"] > 0)
    st = (f"per-channel Spearman(B_c, I_c) over natural images with I_c > 0, overwrite vs skip: in "
          f"{', '.join(significant_in)} one-way ANOVA p < 0.05 (Holm) with the overwrite mean lower; in "
          f"{', '.join(absent_in)} not lower: the one-sided 95% lower bound of (overwrite mean - skip mean) above "
          f"-{ABSENT_MARGIN:g} holds, a significantly lower mean fails, else inconclusive (underpowered; a "
          "significant opposite effect is not 'more negative')")
    reason = "; ".join(f"{b}: overwrite {v['overwrite_mean']:.2f} vs skip {v['skip_mean']:.2f}, p {v['p']:.2g} "
                       f"({v['verdict']})" for b, v in measured.items())
    return _mk(st, measured, {"significant": list(significant_in), "absent": list(absent_in)}, reason,
               combine(parts), measured[significant_in[0]]["effect"], "less")


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
                 appreciable: str | None, neighbours=(), pairs: dict | None = None) -> Verdict:
    """fig5-scale-counts. ``classes[b]`` = per valid channel {"with_mix": passes the three
    criteria, "without_mix": passes 2 and 3, "both": passes the FZ and natural-image versions
    (where ``both`` names the block)}; ``pairs[b]``: the same for the paired channels under both
    seeds; ``population[b]``: the block's channel count. ``many``/``both``: block -> "at least"
    count; ``none``: blocks with "zero"; ``few_without_mix``: blocks with "a few" without
    criterion 1; ``appreciable``: the block with an appreciable share without it, below ``neighbours``'."""
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
    if both:
        parts["both"] = joint_count_test({b: counted(b, _both, "criteria", t) for b, t in both.items()})
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
          f"natural-image version too at least {at_least(both)} (one part: any block below, or the total below "
          f"the total, fails); 'zero' in {', '.join(none)}: under "
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


def overlap(per_block: dict, census: bool) -> Verdict:
    """Figures 6-8: ``{b: (population, reference list, found list)}``, the population being the
    unbiased sample's valid channels (the named channels ``quick`` adds were chosen for the very
    property the list claims, so they never enter the null). Per block, the hypergeometric p of
    recovering at least the observed number of the reference channels in the population; EVERY
    block whose reference names a studied channel counts (p = 1 when nothing was recovered),
    Fisher-combined: p < 0.05 holds; otherwise fails on a census, inconclusive on a sample."""
    per, ps = {}, []
    for b, (population, reference, found) in per_block.items():
        pop = set(int(c) for c in population)
        named, got = set(reference) & pop, set(int(c) for c in found)
        p = hypergeom_overlap_p(pop, named, got) if named else float("nan")
        per[b] = {"reference": sorted(reference), "reference_studied": sorted(named), "found": sorted(got),
                  "overlap": sorted(named & got), "population": len(pop), "p": p}
        if named:
            ps.append(p)
    combined = float(_stats.combine_pvalues(ps, method="fisher").pvalue) if ps else float("nan")
    v = "inconclusive" if not ps else "holds" if combined < ALPHA else ("fails" if census else "inconclusive")
    st = ("overlap of the found channels with the reference list per block, hypergeometric p of at least that "
          "overlap by chance among the unbiased sample's valid channels (every block whose list names one of them "
          "counts, p = 1 when none is recovered), Fisher-combined: p < 0.05 holds; otherwise fails on a census, "
          "inconclusive on a sample")
    reason = "; ".join(f"{b}: {len(v_['overlap'])}/{len(v_['reference_studied'])} recovered {v_['overlap']}"
                       for b, v_ in per.items()) + f"; combined p = {combined:.3g}"
    measured = {"blocks": per, "combined_p": combined, "found": {b: [int(c) for c in f] for b, (_, _, f) in per_block.items()}}
    return _mk(st, measured, {"listed": list(per_block)}, reason, v, combined, "less")
