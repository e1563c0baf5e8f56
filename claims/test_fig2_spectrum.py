"""Figure 2: where channels fall on the skip-overwrite spectrum (mix ratio M histograms)."""
from operator import attrgetter

import pytest

from rsi_core.report import plots
from rsi_core.verdicts import claims as C
from rsi_core.verdicts.regression import claim
from rsi_core.verdicts.verdict import Verdict

M = attrgetter("m")


def mix_histograms(study, path, measured, controls):
    """Figure 2 for every studied block; control models' histograms as outlines."""
    controls = {f"{kind} {w}": {b: s.block(b) for b in s.blocks} for w, kind, s in controls}
    return [plots.fig2_mix_histograms({b: study.block(b) for b in study.blocks}, study.describe(), path,
                                      controls=controls or None)]


@claim("fig2-downsample-overwrite")
def downsample_overwrite(study) -> Verdict:
    """In every downsample block (2.0, 3.0, 4.0) overwrite channels (M < 1) dominate."""
    blocks = study.roles["downsample"]
    return C.downsample_overwrite({b: study.sample_m(b) for b in blocks}, study.census_map(blocks),
                                  {b: study.pair_values(b, M) for b in blocks}, {b: study.fz_health(b) for b in blocks})


@pytest.mark.claim("fig2-downsample-overwrite")
def test_downsample_overwrite(rsi_claims):
    rsi_claims.check(downsample_overwrite, figure=mix_histograms)


@claim("fig2-simple-less-skewed")
def simple_less_skewed(study) -> Verdict:
    """Simple blocks 1.1, 2.1, 3.1 are less overwrite-skewed than the downsample blocks."""
    simple, down = study.roles["simple"], study.roles["downsample"]
    return C.simple_less_skewed({b: study.sample_m(b) for b in simple}, {b: study.sample_m(b) for b in down},
                                study.census_map(simple + down), {b: study.fz_health(b) for b in simple + down},
                                {b: study.pair_values(b, M) for b in simple + down})


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


@claim("fig2-final-block")
def final_block(study) -> Verdict:
    """In the final block (4.1) all channels fall in the lowest bin [0, 0.25), and nearly all M
    are non-zero."""
    blocks = study.roles["final"]
    return C.final_block({b: study.sample_m(b) for b in blocks}, study.census_map(blocks),
                         {b: study.pair_values(b, M) for b in blocks}, {b: study.fz_health(b) for b in blocks})


@pytest.mark.claim("fig2-final-block")
def test_final_block(rsi_claims):
    rsi_claims.check(final_block, figure=mix_histograms)
