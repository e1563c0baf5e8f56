"""Figures 5-8: scale-invariant channels and the channels the paper names.

The channel lists (Figures 1, 6-8) are resnet18's: on another model these claims are
"n/a: lists are resnet18's" (inconclusive, never failing). A planted network brings its own.
Every statistic reads the unbiased sample's valid channels (``study.kept``).
"""
import numpy as np
import pytest

from rsi_core.measure import metrics
from rsi_core.model.anatomy import find_block
from rsi_core.report import plots
from rsi_core.verdicts import claims as C
from rsi_core.verdicts.regression import claim
from rsi_core.verdicts.verdict import Verdict, not_applicable


def _criteria(study, b, robust: bool) -> dict:
    """Per-channel class masks of a block result: the three criteria, criteria 2 and 3, and (for
    ``robust``) the FZ and natural-image versions both."""
    out = {"with_mix": lambda r: r.scale_invariant(), "without_mix": lambda r: r.scale_invariant(False)}
    if robust:
        rr = study.robust(b)
        out["both"] = lambda r: r.scale_invariant() & rr.scale_invariant()[np.searchsorted(rr.channels, r.channels)]
    return out


def scale_classes(study, b, robust: bool = False) -> dict:
    """The kept channels' class masks of block ``b`` (``_criteria``)."""
    r = study.block(b)
    k = study.kept(b, r)
    return {name: fn(r)[k] for name, fn in _criteria(study, b, robust).items()}


def scale_pairs(study, b, robust: bool = False):
    """The same masks for the block's paired channels under both FZ seeds; None without a second seed."""
    got = {name: study.pair_values(b, fn) for name, fn in _criteria(study, b, robust).items()}
    if any(v is None for v in got.values()):
        return None
    return {n: v[0] for n, v in got.items()}, {n: v[1] for n, v in got.items()}


def scale_counts_of(study) -> dict:
    """Per studied block: kept channels and those meeting the criteria with and without the mix
    one (Figure 5's bars: the channels the verdict counts)."""
    return {b: {"n": len(c["with_mix"]), "with_mix": int(c["with_mix"].sum()), "without_mix": int(c["without_mix"].sum())}
            for b, c in ((b, scale_classes(study, b)) for b in study.blocks)}


@claim("fig5-scale-counts")
def scale_counts(study) -> Verdict:
    """"Many" channels meet the criteria in 1.1, 2.0, 2.1, 3.1 (Figures 6 and 7: at least 3 per
    block, and 1, 4, 9, 9 that also pass the natural-image version); zero in 3.0, 4.0, 4.1;
    without criterion 1, only a few in 4.0 and 4.1 and an appreciable share in 3.0 (less than
    its neighbours)."""
    parts = C.scale_roles(study.roles, (study.lists or {}).get("fig7", {}))
    blocks = study.blocks
    return C.scale_counts(
        {b: scale_classes(study, b, robust=b in parts["many"]) for b in blocks}, study.census_map(blocks),
        {b: find_block(study.model, b).channels for b in blocks}, **parts,
        pairs={b: scale_pairs(study, b, robust=b in parts["many"]) for b in blocks}, natural=C.natural_reason(study))


def scale_figure(study, path, measured, controls):
    controls = {f"{kind} {w}": scale_counts_of(s) for w, kind, s in controls}
    return [plots.fig5_scale_counts(scale_counts_of(study), study.describe(), path, controls=controls or None)]


@pytest.mark.claim("fig5-scale-counts")
def test_scale_counts(rsi_claims):
    rsi_claims.check(scale_counts, figure=scale_figure)


def _pair_scores(study, b, score):
    """``score(result)`` of the block's paired channels under both FZ seeds (the run's own
    reproducibility of its top list), None without a second seed."""
    return study.pair_values(b, score)


def _kept(study, b) -> np.ndarray:
    r = study.block(b)
    return r.channels[study.kept(b, r)]


def _lists_na(statistic):
    return not_applicable(statistic, {}, "lists are resnet18's")


def _ranked(r, ok) -> list:
    """Channels passing ``ok``, by scale metric SM, largest first."""
    order = np.argsort(-np.where(ok, r.sm, -np.inf), kind="stable")[: int(ok.sum())]
    return [int(r.channels[i]) for i in order]


def _grid_figure(title):
    def figure(study, path, measured, controls):
        rows = [row for b, chans in measured.get("found", {}).items() if chans
                for row in plots.channel_grid_rows(study, b, chans[:9], channel_fzs=study.profile.name == "paper")]
        return [plots.channel_grids(rows, study.describe(), path, title)] if rows else []
    return figure


TOP_SCALE = ("rank of the paper's examples in each block's criteria-passing channels by SM (the null drawn from "
             "those channels); Monte Carlo p < 0.05")


@claim("fig6-top-scale")
def top_scale(study) -> Verdict:
    """Top-3 channels per block by SM include 2.0 ch 15, 2.1 ch 108, 3.1 ch 113 and 178."""
    if not study.lists:
        return _lists_na(TOP_SCALE)
    paper = study.lists["fig6"]
    per = {}
    for b in paper:
        r = study.block(b)
        ordered = _ranked(r, r.scale_invariant() & study.kept(b, r))
        per[b] = (ordered, ordered, paper[b])   # the null: the criteria-passing channels only
    sm = lambda r: np.where(r.scale_invariant(), r.sm, -np.inf)  # noqa: E731
    return C.overlap(per, {b: _pair_scores(study, b, sm) for b in paper}, k=3)


@pytest.mark.claim("fig6-top-scale")
def test_top_scale(rsi_claims):
    rsi_claims.check(top_scale, figure=_grid_figure("Figure 6: top-3 by scale metric"))


ROBUST = ("rank of the paper's list among the valid channels, those passing both versions of the criteria first "
          "(by SM); Monte Carlo p < 0.05; natural images needed")


@claim("fig7-robust")
def robust(study) -> Verdict:
    """Channels passing both FZ and natural-image criteria: 1.1: 19; 2.0: 7, 15, 53, 3; 2.1: 108,
    36, 13, 21, 60, 52, 93, 5, 58; 3.1: 113, 178, 22, 215, 204, 25, 29, 154, 200."""
    if not study.lists:
        return _lists_na(ROBUST)
    paper = {b: c for b, c in study.lists["fig7"].items() if c}
    per = {}
    for b in paper:
        r, rr = study.block(b), study.robust(b)
        per[b] = (_kept(study, b), _ranked(r, r.scale_invariant() & rr.scale_invariant() & study.kept(b, r)), paper[b])
    return C.overlap(per, k=None, natural=C.natural_reason(study))


@pytest.mark.claim("fig7-robust")
def test_robust(rsi_claims):
    rsi_claims.check(robust, figure=_grid_figure("Figure 7: FZ and natural-image criteria"))


TOP_MIXES = "rank of the paper's channels in each block's ordering by |M - 1| (smallest first); Monte Carlo p < 0.05"


@claim("fig8-top-mixes")
def top_mixes(study) -> Verdict:
    """Smallest |M - 1|: 1.1: 44, 27, 55; 2.0: 42, 9, 78; 2.1: 22, 116, 72; 3.0: 105, 250, 204;
    3.1: 128, 246, 41; 4.0: 163, 3, 51; 4.1: 154, 68, 496."""
    if not study.lists:
        return _lists_na(TOP_MIXES)
    paper = study.lists["fig8"]
    per = {}
    for b in paper:
        r = study.block(b)
        k = study.kept(b, r)
        per[b] = (r.channels[k], metrics.top_mixes(r.m[k], r.channels[k].tolist(), k=int(k.sum())), paper[b])
    return C.overlap(per, {b: _pair_scores(study, b, lambda r: -np.abs(r.m - 1)) for b in paper}, k=3)


@pytest.mark.claim("fig8-top-mixes")
def test_top_mixes(rsi_claims):
    rsi_claims.check(top_mixes, figure=_grid_figure("Figure 8: top mixes"))
