"""Figure 2: where channels fall on the skip-overwrite spectrum (mix ratio M histograms)."""
import numpy as np
import pytest
from scipy import stats

from rsi_core import plots
from rsi_core.verdicts import ALPHA, Verdict, binomial_bounds, complete, valid, verdict


def mix_histograms(study, path, measured, controls):
    """Figure 2 for every studied block; control models' histograms as outlines."""
    controls = {f"{kind} {w}": {b: s.block(b) for b in s.blocks} for w, kind, s in controls}
    return [plots.fig2_mix_histograms({b: study.block(b) for b in study.blocks}, study.describe(), path,
                                      controls=controls or None)]


def downsample_overwrite(study) -> Verdict:
    """In every downsample block (2.0, 3.0, 4.0) overwrite channels (M < 1) dominate."""
    blocks = study.roles["downsample"]
    per = {}
    for b in blocks:
        r = study.block(b)
        m = r.m[valid(r)]
        k, n = int((m < 1).sum()), len(m)
        lo, hi = binomial_bounds(k, n)
        per[b] = {"overwrite": k, "n": n, "share": k / n if n else float("nan"), "lower95": lo, "upper95": hi,
                  "failed_fzs": int(r.failed.sum())}
    return verdict(
        "per block, one-sided 95% Clopper-Pearson bound on the share of M < 1: lower > 0.5 supports; "
        "upper < 0.5 refutes",
        per, {"downsample": blocks},
        "; ".join(f"{b}: {v['overwrite']}/{v['n']} overwrite (lower bound {v['lower95']:.2f})" for b, v in per.items()),
        supported=all(v["lower95"] > 0.5 for v in per.values()),
        refuted=any(v["upper95"] < 0.5 for v in per.values()), complete=complete(study, blocks),
        value=min(v["share"] for v in per.values()), direction="greater")


@pytest.mark.claim("fig2-downsample-overwrite")
def test_downsample_overwrite(rsi_claims):
    rsi_claims.check(downsample_overwrite, figure=mix_histograms)


def simple_less_skewed(study) -> Verdict:
    """Simple blocks 1.1, 2.1, 3.1 are less overwrite-skewed than the downsample blocks."""
    simple_b, down_b = study.roles["simple"], study.roles["downsample"]
    pooled = lambda bs: np.concatenate([study.block(b).m[valid(study.block(b))] for b in bs])  # noqa: E731
    simple, down = pooled(simple_b), pooled(down_b)
    p_more = stats.mannwhitneyu(simple, down, alternative="greater").pvalue
    p_less = stats.mannwhitneyu(simple, down, alternative="less").pvalue
    share = {"simple_overwrite_share": float((simple < 1).mean()),
             "downsample_overwrite_share": float((down < 1).mean())}
    return verdict(
        "one-sided Mann-Whitney U of M, simple blocks pooled > downsample blocks pooled, p < 0.05",
        {**share, "p_simple_greater": float(p_more), "p_simple_less": float(p_less), "n_simple": len(simple),
         "n_downsample": len(down)},
        {"simple": simple_b, "downsample": down_b},
        f"overwrite share simple {share['simple_overwrite_share']:.2f} vs downsample "
        f"{share['downsample_overwrite_share']:.2f}, Mann-Whitney p = {p_more:.3g}",
        supported=p_more < ALPHA, refuted=p_less < ALPHA, complete=complete(study, simple_b + down_b),
        value=share["downsample_overwrite_share"] - share["simple_overwrite_share"], direction="greater")


def fig1_examples(study, path, measured, controls):
    """Figure 1: the paper's example channels (resnet18's lists only), beside Figure 2."""
    out = mix_histograms(study, path, measured, controls)
    if study.lists:
        shown = {b: [c for c in chans if c in study.channels(b)] for b, chans in study.lists["fig1"].items()}
        rows = [row for b, chans in shown.items() if chans
                for row in plots.channel_grid_rows(study, b, chans, channel_fzs=study.profile.name == "paper")]
        if rows:
            out.append(plots.channel_grids(rows, study.describe(), path.with_name("fig1-examples.png"),
                                           "Figure 1: the paper's example channels"))
    return out


@pytest.mark.claim("fig2-simple-less-skewed")
def test_simple_less_skewed(rsi_claims):
    rsi_claims.check(simple_less_skewed, figure=fig1_examples)


def final_block(study) -> Verdict:
    """In the final block (4.1) nearly all channels fall in the lowest bin [0, 0.25), and nearly
    all M are non-zero."""
    (b,) = study.roles["final"]
    r = study.block(b)
    m = r.m[valid(r)]
    n = len(m)
    low, nonzero = int((m < 0.25).sum()), int((m > 0).sum())
    (low_lo, low_hi), (nz_lo, nz_hi) = binomial_bounds(low, n), binomial_bounds(nonzero, n)
    return verdict(
        "one-sided 95% Clopper-Pearson bounds with 'nearly all' = 90%: lower bound of the share in [0, 0.25) "
        "> 0.9 and lower bound of the share M > 0 > 0.9 support; an upper bound < 0.9 refutes",
        {"n": n, "lowest_bin": low, "nonzero": nonzero, "lowest_bin_lower95": low_lo, "nonzero_lower95": nz_lo,
         "lowest_bin_share": low / n if n else float("nan")},
        {"final": [b]}, f"{b}: {low}/{n} in [0, 0.25), {nonzero}/{n} non-zero",
        supported=low_lo > 0.9 and nz_lo > 0.9, refuted=low_hi < 0.9 or nz_hi < 0.9, complete=complete(study, [b]),
        value=low / n if n else None, direction="greater")


@pytest.mark.claim("fig2-final-block")
def test_final_block(rsi_claims):
    rsi_claims.check(final_block, figure=mix_histograms)
