"""Figures 3 and 4: mechanisms of the spectrum (weight magnitudes, inhibition)."""
import numpy as np
import pytest

from rsi_core import metrics, plots
from rsi_core.anatomy import find_block
from rsi_core.verdicts import ALPHA, Verdict, compare_groups, complete, groups, verdict


def weight_magnitude(study) -> Verdict:
    """In 1.1, 2.1, 3.1 Spearman(M, |BN2 weight|) and Spearman(M, mean |conv2 weight|) are
    negative, p < 0.05."""
    blocks = study.roles["simple"]
    measured, ok, against = {}, [], []
    for b in blocks:
        r = study.block(b)
        bn, conv = metrics.weight_magnitudes(find_block(study.model, b).module)
        (rho_bn, p_bn), (rho_conv, p_conv) = metrics.spearman(r.m, bn[r.channels]), metrics.spearman(r.m, conv[r.channels])
        measured[b] = {"rho_bn": rho_bn, "p_bn": p_bn, "rho_conv": rho_conv, "p_conv": p_conv}
        for rho, p in ((rho_bn, p_bn), (rho_conv, p_conv)):
            ok.append(rho < 0 and p < ALPHA)
            against.append(rho > 0 and p < ALPHA)
    rhos = [v for d in measured.values() for v in (d["rho_bn"], d["rho_conv"])]
    return verdict(
        "Spearman rho < 0 with p < 0.05 for both weights in all three blocks; rho > 0 with p < 0.05 refutes",
        measured, {"simple": blocks},
        "; ".join(f"{b}: rho_bn {v['rho_bn']:.2f} (p {v['p_bn']:.2g}), rho_conv {v['rho_conv']:.2f} "
                  f"(p {v['p_conv']:.2g})" for b, v in measured.items()),
        supported=all(ok), refuted=any(against), complete=complete(study, blocks),
        value=max(rhos) if all(np.isfinite(rhos)) else None, direction="less")


def weight_scatter(study, path, measured, controls):
    points = {}
    for b in study.roles["simple"]:
        r = study.block(b)
        bn, conv = metrics.weight_magnitudes(find_block(study.model, b).module)
        bn, conv = bn[r.channels], conv[r.channels]
        (rho_bn, p_bn), (rho_conv, p_conv) = metrics.spearman(r.m, bn), metrics.spearman(r.m, conv)
        points[b] = {"m": r.m, "bn": bn, "conv": conv, "rho_bn": rho_bn, "p_bn": p_bn, "rho_conv": rho_conv,
                     "p_conv": p_conv}
    return [plots.fig3_weight_scatter(points, study.describe(), path)]


@pytest.mark.claim("fig3-weight-magnitude")
def test_weight_magnitude(rsi_claims):
    rsi_claims.check(weight_magnitude, figure=weight_scatter)


def inhibition(study) -> Verdict:
    """B_c(X_I) < 0 for many overwrite channels; the overwrite mean is below the skip mean,
    significantly in 2.1 and 3.1."""
    blocks = study.roles["simple"]
    tested = blocks[1:]  # 2.1 and 3.1
    measured, ok, against = {}, [], []
    for b in blocks:
        r = study.block(b)
        over, skip = groups(r, r.b_xi)
        neg = float((over < 0).mean()) if len(over) else float("nan")
        v = measured[b] = {**compare_groups(over, skip), "overwrite_negative_share": neg}
        if b in tested:
            ok.append(v["p"] < ALPHA and v["below"] and neg >= 0.25)
            against.append(v["p"] < ALPHA and not v["below"])
    ps = [measured[b]["p"] for b in tested]
    return verdict(
        "in 2.1 and 3.1: one-way ANOVA of B_c(X_I), overwrite (M < 1) vs skip (M > 1), p < 0.05 with the "
        "overwrite mean lower, and at least 25% of overwrite channels with B_c(X_I) < 0",
        measured, {"simple": blocks},
        "; ".join(f"{b}: overwrite mean {v['overwrite_mean']:.2f} vs skip {v['skip_mean']:.2f}, F {v['F']:.2f}, "
                  f"p {v['p']:.2g}, {v['overwrite_negative_share']:.0%} negative" for b, v in measured.items()),
        supported=all(ok), refuted=any(against), complete=complete(study, tested),
        value=max(ps) if all(np.isfinite(ps)) else None, direction="less")


def inhibition_figure(study, path, measured, controls):
    points = {}
    for b in study.roles["simple"]:
        r = study.block(b)
        corr = study.input_block_correlation(b)
        top, bottom = compare_groups(*groups(r, r.b_xi)), compare_groups(*groups(r, corr))
        points[b] = {"m": r.m, "b_xi": r.b_xi, "corr": corr, "top_F": top["F"], "top_p": top["p"],
                     "bottom_F": bottom["F"], "bottom_p": bottom["p"]}
    return [plots.fig4_inhibition(points, study.describe(), path)]


@pytest.mark.claim("fig4-inhibition")
def test_inhibition(rsi_claims):
    rsi_claims.check(inhibition, figure=inhibition_figure)


def input_block_correlation(study) -> Verdict:
    """Overwrite channels have more negative input-block correlations than skip channels in 3.1
    (significant), not in 1.1 or 2.1."""
    blocks = study.roles["simple"]
    last, early = blocks[-1], blocks[:-1]
    measured = {}
    for b in blocks:
        measured[b] = compare_groups(*groups(study.block(b), study.input_block_correlation(b)))
    sig = {b: v["p"] < ALPHA for b, v in measured.items()}
    return verdict(
        "per channel Spearman(B_c, I_c) over natural images with I_c > 0; one-way ANOVA overwrite vs skip: "
        "3.1 p < 0.05 with the overwrite mean lower, 1.1 and 2.1 p >= 0.05",
        measured, {"simple": blocks},
        "; ".join(f"{b}: overwrite {v['overwrite_mean']:.2f} vs skip {v['skip_mean']:.2f}, p {v['p']:.2g}"
                  for b, v in measured.items()),
        supported=sig[last] and measured[last]["below"] and not any(sig[b] for b in early),
        refuted=any(sig[b] for b in early) or (sig[last] and not measured[last]["below"]),
        complete=complete(study, blocks), value=measured[last]["p"], direction="less")


@pytest.mark.claim("fig4-input-block-correlation")
def test_input_block_correlation(rsi_claims):
    rsi_claims.check(input_block_correlation, figure=inhibition_figure)
