"""Figures 3 and 4: mechanisms of the spectrum (weight magnitudes, inhibition)."""
from operator import attrgetter

import numpy as np
import pytest

from rsi_core.measure import metrics
from rsi_core.model.anatomy import find_block
from rsi_core.report import plots
from rsi_core.verdicts import claims as C
from rsi_core.verdicts.regression import claim
from rsi_core.verdicts.verdict import Verdict

M = attrgetter("m")


def _weights(study, b) -> tuple:
    """M, |BN2 weight| and mean |conv2 weight| of the block's kept channels (what the verdict reads)."""
    r = study.block(b)
    k = study.kept(b, r)
    bn, conv = metrics.weight_magnitudes(find_block(study.model, b).module)
    return r.m[k], bn[r.channels][k], conv[r.channels][k]


@claim("fig3-weight-magnitude")
def weight_magnitude(study) -> Verdict:
    """In 1.1, 2.1, 3.1 Spearman(M, |BN2 weight|) and Spearman(M, mean |conv2 weight|) are
    negative, p < 0.05."""
    blocks = study.roles["simple"]
    return C.weight_magnitude({b: _weights(study, b) for b in blocks}, study.census_map(blocks),
                              {b: study.pair_values(b, M) for b in blocks})


def weight_scatter(study, path, measured, controls):
    points = {}
    for b in study.roles["simple"]:
        m, bn, conv = _weights(study, b)
        (rho_bn, p_bn), (rho_conv, p_conv) = metrics.spearman(m, bn), metrics.spearman(m, conv)
        points[b] = {"m": m, "bn": bn, "conv": conv, "rho_bn": rho_bn, "p_bn": p_bn, "rho_conv": rho_conv,
                     "p_conv": p_conv}
    return [plots.fig3_weight_scatter(points, study.describe(), path)]


@pytest.mark.claim("fig3-weight-magnitude")
def test_weight_magnitude(rsi_claims):
    rsi_claims.check(weight_magnitude, figure=weight_scatter)


@claim("fig4-inhibition")
def inhibition(study) -> Verdict:
    """B_c(X_I) < 0 for many overwrite channels; the overwrite mean is below the skip mean,
    significantly in 2.1 and 3.1."""
    blocks = study.roles["simple"]
    return C.inhibition({b: study.sample_groups(b, study.block(b).b_xi) for b in blocks},
                        study.census_map(blocks), significant_in=tuple(blocks[1:]),
                        pairs={b: _pairs(study, b, lambda r: r.b_xi) for b in blocks})


def _pairs(study, b, values):
    """(M seed a, M seed b, values seed a, values seed b) of the block's paired channels (channels
    that move between the overwrite and skip groups included), or None without a second seed."""
    m, v = study.pair_values(b, M), study.pair_values(b, values)
    return None if m is None else (*m, *v)


def inhibition_figure(study, path, measured, controls):
    """Figure 4 over the channels the verdicts read (the kept ones), ANOVA between their groups."""
    points = {}
    for b in study.roles["simple"]:
        r = study.block(b)
        k = study.kept(b, r)
        corr = study.input_block_correlation(b)
        top = C.compare_groups(*study.sample_groups(b, r.b_xi))
        bottom = C.compare_groups(*study.sample_groups(b, corr))
        points[b] = {"m": r.m[k], "b_xi": r.b_xi[k], "corr": corr[k], "top_F": top["F"], "top_p": top["p"],
                     "bottom_F": bottom["F"], "bottom_p": bottom["p"]}
    return [plots.fig4_inhibition(points, study.describe(), path)]


@pytest.mark.claim("fig4-inhibition")
def test_inhibition(rsi_claims):
    rsi_claims.check(inhibition, figure=inhibition_figure)


@claim("fig4-input-block-correlation")
def input_block_correlation(study) -> Verdict:
    """Overwrite channels have more negative input-block correlations than skip channels in 3.1
    (significant), not in 1.1 or 2.1."""
    blocks = study.roles["simple"]
    return C.input_block_correlation({b: study.sample_groups(b, study.input_block_correlation(b)) for b in blocks},
                                     study.census_map(blocks), significant_in=(blocks[-1],),
                                     absent_in=tuple(blocks[:-1]), pairs={b: _corr_pairs(study, b) for b in blocks},
                                     natural=C.natural_reason(study))


def _corr_pairs(study, b):
    """(M seed a, M seed b, corr, corr) of the paired channels: the correlations are the natural
    images', the same under both seeds; the groups move with M."""
    corr = dict(zip(study.channels(b), study.input_block_correlation(b)))
    return _pairs(study, b, lambda r: np.array([corr.get(int(c), np.nan) for c in r.channels]))


@pytest.mark.claim("fig4-input-block-correlation")
def test_input_block_correlation(rsi_claims):
    rsi_claims.check(input_block_correlation, figure=inhibition_figure)
