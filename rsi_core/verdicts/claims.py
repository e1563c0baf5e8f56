"""One helper per paper claim: plain numbers in, a ``Verdict`` out.

Inputs are plain numbers of the VALID channels (failed FZs dropped) of the unbiased sample (or
the census), so each helper is testable on constructed data; ``census`` maps a block to whether
every channel of it was measured (``Study.census_map``). The claim functions in ``claims/`` read
a Study and call these.
"""
from __future__ import annotations

import numpy as np
from scipy import stats as _stats

from rsi_core.measure import metrics
from rsi_core.verdicts.verdict import (
    ALPHA,
    Verdict,
    absent_test,
    all_test,
    combine,
    compare_shares,
    count_test,
    holm,
    noise_label,
    none_test,
    share_test,
    significant_test,
)


def _mk(statistic, measured, blocks, reason, v, value=None, direction=None) -> Verdict:
    return Verdict("", v, statistic, measured, blocks, reason, value, direction)


def downsample_overwrite(m: dict, census: dict, noise_source: str | None = None) -> Verdict:
    """fig2-downsample-overwrite: per downsample block, the share of M < 1 is above 1/2."""
    per = {b: share_test(int((np.asarray(x) < 1).sum()), len(x), 0.5, census=census[b], noise_key="overwrite",
                         noise_source=noise_source) for b, x in m.items()}
    st = ("per downsample block, the share of valid channels with M < 1 must exceed 1/2: on a census by "
          f"more than the measured seed-to-seed flip rate of 'M < 1' ({noise_label(noise_source)}; within it: "
          "inconclusive), on a sample by its one-sided 95% Clopper-Pearson bound; every block holds -> holds, "
          "any fails -> fails")
    reason = "; ".join(f"{b}: {v['k']}/{v['n']} overwrite ({v['verdict']})" for b, v in per.items())
    return _mk(st, per, {"downsample": list(m)}, reason, combine({b: v["verdict"] for b, v in per.items()}),
               min((v["share"] for v in per.values()), default=None), "greater")


def final_block(m, census: bool, nearly_all: float = 0.9, noise_source: str | None = None) -> Verdict:
    """fig2-final-block: ALL valid channels of 4.1 in [0, 0.25) (census tolerance = seed noise)
    and NEARLY ALL (> ``nearly_all``) with M > 0."""
    m = np.asarray(m, dtype=float)
    low = all_test(int(((m >= 0) & (m < 0.25)).sum()), len(m), census=census, noise_key="lowest_bin",
                   noise_source=noise_source)
    nz = share_test(int((m > 0).sum()), len(m), nearly_all, census=census, noise_key="nonzero",
                    noise_source=noise_source)
    st = (f"in 4.1, every valid channel must have M in [0, 0.25) less a tolerance equal to the measured "
          f"seed-to-seed flip rate of that bin ({low['tolerance']:.3f} of the channels, {noise_label(noise_source)}, "
          f"rsi_core/verdicts/seed_noise.json; census; a sample can refute 'all', never show it), and the "
          f"share with M > 0 must exceed {nearly_all:.0%} (by more than its seed noise on a census, by the "
          f"one-sided 95% Clopper-Pearson bound on a sample)")
    reason = f"{low['k']}/{low['n']} in [0, 0.25) ({low['verdict']}), {nz['k']}/{nz['n']} non-zero ({nz['verdict']})"
    return _mk(st, {"lowest_bin": low, "nonzero": nz}, {"final": ["4.1"]}, reason,
               combine([low["verdict"], nz["verdict"]]), low["share"], "greater")


def simple_less_skewed(simple_m, downsample_m, census: bool) -> Verdict:
    """fig2-simple-less-skewed: M of the simple blocks pooled is stochastically larger than the
    downsample blocks' (one-sided Mann-Whitney U)."""
    a, b = np.asarray(simple_m, dtype=float), np.asarray(downsample_m, dtype=float)
    if len(a) == 0 or len(b) == 0:
        v, p_more, p_less = "inconclusive", float("nan"), float("nan")
    else:
        p_more = float(_stats.mannwhitneyu(a, b, alternative="greater").pvalue)
        p_less = float(_stats.mannwhitneyu(a, b, alternative="less").pvalue)
        v = "holds" if p_more < ALPHA else "fails" if (p_less < ALPHA or census) else "inconclusive"
    share = lambda x: float((x < 1).mean()) if len(x) else float("nan")  # noqa: E731
    measured = {"simple_overwrite_share": share(a), "downsample_overwrite_share": share(b),
                "p_simple_greater": p_more, "p_simple_less": p_less, "n_simple": len(a), "n_downsample": len(b)}
    st = ("one-sided Mann-Whitney U of M, simple blocks pooled > downsample blocks pooled: p < 0.05 holds; "
          "the opposite significant fails; neither fails on a census, is inconclusive on a sample")
    reason = (f"overwrite share simple {measured['simple_overwrite_share']:.2f} vs downsample "
              f"{measured['downsample_overwrite_share']:.2f}, p = {p_more:.3g}")
    return _mk(st, measured, {"simple": [], "downsample": []}, reason, v, measured["p_simple_greater"], "less")


def weight_magnitude(per_block: dict, census: dict) -> Verdict:
    """fig3-weight-magnitude: per simple block ``{b: (m, |bn weight|, mean |conv weight|)}`` of
    the valid channels, Spearman(M, each) negative and significant after Holm over all 2 x blocks tests."""
    raw = {}
    for b, (m, bn, conv) in per_block.items():
        for name, w in (("bn", bn), ("conv", conv)):
            raw[(b, name)] = metrics.spearman(m, w)
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


def _group(over, skip) -> dict:
    over, skip = np.asarray(over, dtype=float), np.asarray(skip, dtype=float)
    f, p = metrics.anova_two_groups(over, skip)
    mo = float(over.mean()) if len(over) else float("nan")
    ms = float(skip.mean()) if len(skip) else float("nan")
    return {"F": f, "p": p, "overwrite_mean": mo, "skip_mean": ms, "effect": mo - ms,
            "n_overwrite": len(over), "n_skip": len(skip)}


def inhibition(per_block: dict, census: dict, significant_in=("2.1", "3.1"), many: float = 0.25,
               noise_source: str | None = None) -> Verdict:
    """fig4-inhibition: ``{b: (overwrite B_c(X_I), skip B_c(X_I))}``; in ``significant_in``, ANOVA
    overwrite vs skip significant (Holm over those blocks) with the overwrite mean lower, and
    "many" (> ``many``) overwrite channels with B_c(X_I) < 0."""
    measured = {b: _group(o, s) for b, (o, s) in per_block.items()}
    adj = holm({b: measured[b]["p"] for b in significant_in if b in measured})
    parts = {}
    for b in significant_in:
        v = measured[b]
        over = np.asarray(per_block[b][0], dtype=float)
        v["p_holm"] = adj[b]
        v["anova_verdict"] = significant_test(v["effect"], adj[b], "negative", census=census[b])
        v["negative"] = share_test(int((over < 0).sum()), len(over), many, census=census[b], noise_key="inhibit",
                                   noise_source=noise_source)
        parts[b] = combine([v["anova_verdict"], v["negative"]["verdict"]])
    st = (f"in {', '.join(significant_in)}: one-way ANOVA of B_c(X_I), overwrite (M < 1) vs skip (M > 1) valid "
          f"channels, Holm-corrected over these blocks, p < 0.05 with the overwrite mean lower (opposite: fails), "
          f"and the share of overwrite channels with B_c(X_I) < 0 above {many:.0%} (seed noise on a census: "
          f"{noise_label(noise_source)}; Clopper-Pearson on a sample)")
    reason = "; ".join(f"{b}: overwrite mean {v['overwrite_mean']:.2f} vs skip {v['skip_mean']:.2f}, p {v['p']:.2g}"
                       for b, v in measured.items())
    effects = [measured[b]["effect"] for b in significant_in if measured[b]["effect"] == measured[b]["effect"]]
    return _mk(st, measured, {"simple": list(per_block)}, reason, combine(parts),
               max(effects) if effects else None, "less")


def input_block_correlation(per_block: dict, census: dict, significant_in=("3.1",), absent_in=("1.1", "2.1")) -> Verdict:
    """fig4-input-block-correlation: ``{b: (overwrite corr, skip corr)}``. In ``significant_in``
    overwrite channels' input-block correlations are significantly lower (ANOVA, Holm over those
    blocks); in ``absent_in`` they are NOT significantly lower (raw p). The paper's words are
    "more negative ... not in 1.1 or 2.1": a significant OPPOSITE effect there (overwrite higher)
    is not "more negative", so it does not contradict the claim (it is reported in measured)."""
    measured = {b: _group(o, s) for b, (o, s) in per_block.items()}
    adj = holm({b: measured[b]["p"] for b in significant_in})
    parts = {}
    for b in significant_in:
        measured[b]["p_holm"] = adj[b]
        parts[b] = measured[b]["verdict"] = significant_test(measured[b]["effect"], adj[b], "negative",
                                                             census=census[b])
    for b in absent_in:
        parts[b] = measured[b]["verdict"] = absent_test(measured[b]["effect"], measured[b]["p"], "negative")
        measured[b]["opposite_significant"] = bool(measured[b]["p"] < ALPHA and measured[b]["effect"] > 0)
    st = (f"per-channel Spearman(B_c, I_c) over natural images with I_c > 0, one-way ANOVA overwrite vs skip: "
          f"in {', '.join(significant_in)} p < 0.05 (Holm) with the overwrite mean lower; in {', '.join(absent_in)} "
          f"no significantly lower overwrite mean (raw p; a significant opposite effect is not 'more negative' "
          f"and does not refute)")
    reason = "; ".join(f"{b}: overwrite {v['overwrite_mean']:.2f} vs skip {v['skip_mean']:.2f}, p {v['p']:.2g} "
                       f"({v['verdict']})" for b, v in measured.items())
    return _mk(st, measured, {"simple": list(per_block)}, reason, combine(parts),
               measured[significant_in[0]]["effect"], "less")


FIG5_MANY = {"1.1": 3, "2.0": 3, "2.1": 3, "3.1": 3}        # Figures 6 and 7 show at least 3 per block
FIG5_BOTH = {"1.1": 1, "2.0": 4, "2.1": 9, "3.1": 9}        # Figure 7: passing both versions
FIG5_NONE = ("3.0", "4.0", "4.1")
FIG5_FEW_WITHOUT_MIX = ("4.0", "4.1")
FEW = 0.05                                                  # "a few" <= 5% < "appreciable"


def scale_counts(counts: dict, census: dict, population: dict, many: dict = FIG5_MANY, both: dict = FIG5_BOTH,
                 none=FIG5_NONE, few_without_mix=FIG5_FEW_WITHOUT_MIX, appreciable: str = "3.0",
                 neighbours=("2.1", "3.1"), noise_source: str | None = None) -> Verdict:
    """fig5-scale-counts. ``counts[b]`` = {"n": valid channels, "with_mix": passing the three
    criteria, "without_mix": passing 2 and 3, "both": passing the FZ and natural-image versions};
    ``population[b]``: the block's channel count. Block names default to resnet18's (pass the
    role-mapped ones for other models). ``noise_source``: whose measured seed noise (``noise_for``)."""
    parts = {}
    src = {"noise_source": noise_source}
    for b, t in many.items():
        c = counts[b]
        parts[f"{b} many"] = count_test(c["with_mix"], c["n"], t, census=census[b], population=population[b],
                                        noise_key="criteria", **src)
        if b in both:
            parts[f"{b} both"] = count_test(c["both"], c["n"], both[b], census=census[b],
                                            population=population[b], noise_key="criteria", **src)
    for b in none:
        parts[f"{b} none"] = none_test(counts[b]["with_mix"], counts[b]["n"], census=census[b], noise_key="criteria",
                                       **src)
    for b in few_without_mix:
        parts[f"{b} few without mix"] = share_test(counts[b]["without_mix"], counts[b]["n"], FEW, census=census[b],
                                                   noise_key="criteria_without_mix", direction="less", **src)
    if appreciable:
        c3 = counts[appreciable]
        parts[f"{appreciable} appreciable without mix"] = share_test(
            c3["without_mix"], c3["n"], FEW, census=census[appreciable], noise_key="criteria_without_mix", **src)
        for nb in neighbours:
            parts[f"{appreciable} below {nb} without mix"] = compare_shares(
                c3["without_mix"], c3["n"], counts[nb]["without_mix"], counts[nb]["n"],
                census=census[appreciable] and census[nb], noise_key="criteria_without_mix", **src)
    at_least = lambda d: ", ".join(f"{t} in {b}" for b, t in d.items()) or "none"  # noqa: E731
    st = (f"counts of valid channels meeting the criteria: at least {at_least(many)}, and passing the "
          f"natural-image version too at least {at_least(both)}; none in {', '.join(none)}; without criterion 1, "
          f"at most {FEW:.0%} in {', '.join(few_without_mix)}"
          + (f" and more than {FEW:.0%} in {appreciable} but less than in {' and '.join(neighbours)}"
             if appreciable else "")
          + f"; each part against the measured seed noise on a census ({noise_label(noise_source)}; counts: "
          "noise share x channels) and exact binomial bounds on a sample; all parts hold -> holds, any fails -> fails")
    reason = "; ".join(f"{b}: {c['with_mix']}/{c['n']} ({c['without_mix']} without mix"
                       + (f", {c['both']} both)" if "both" in c else ")")
                       for b, c in counts.items())
    verdict_ = combine({k: v["verdict"] for k, v in parts.items()})
    return _mk(st, {"counts": counts, "parts": parts}, {"all": list(counts)}, reason, verdict_,
               min(counts[b]["with_mix"] for b in many), "greater")


def overlap(per_block: dict, census: bool) -> Verdict:
    """Figures 6-8: ``{b: (population, reference list, found list)}``. Per block, the
    hypergeometric p of recovering at least the observed number of the reference channels
    that were studied; EVERY block whose reference names a studied channel counts (p = 1 when
    nothing was recovered), Fisher-combined: p < 0.05 holds; otherwise fails on a census,
    inconclusive on a sample."""
    per, ps = {}, []
    for b, (population, reference, found) in per_block.items():
        pop = set(int(c) for c in population)
        named, got = set(reference) & pop, set(int(c) for c in found)
        p = metrics.hypergeom_overlap_p(pop, named, got) if named else float("nan")
        per[b] = {"reference": sorted(reference), "reference_studied": sorted(named), "found": sorted(got),
                  "overlap": sorted(named & got), "p": p}
        if named:
            ps.append(p)
    combined = float(_stats.combine_pvalues(ps, method="fisher").pvalue) if ps else float("nan")
    v = "inconclusive" if not ps else "holds" if combined < ALPHA else ("fails" if census else "inconclusive")
    st = ("overlap of the found channels with the reference list per block, hypergeometric p of at least that "
          "overlap by chance (every block whose list names a studied channel counts, p = 1 when none is "
          "recovered), Fisher-combined: p < 0.05 holds; otherwise fails on a census, inconclusive on a sample")
    reason = "; ".join(f"{b}: {len(v_['overlap'])}/{len(v_['reference_studied'])} recovered {v_['overlap']}"
                       for b, v_ in per.items()) + f"; combined p = {combined:.3g}"
    return _mk(st, {"blocks": per, "combined_p": combined}, {"all": list(per_block)}, reason, v, combined, "less")


