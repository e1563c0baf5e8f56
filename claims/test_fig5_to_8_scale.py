"""Figures 5-8: scale-invariant channels and the channels the paper names.

The channel lists (Figures 1, 6-8) are resnet18's: on another model these claims are
"n/a: lists are resnet18's" (inconclusive, never failing). A planted network brings its own.
"""
from dataclasses import replace

import numpy as np
import pytest

from rsi_core.measure import metrics
from rsi_core.model.anatomy import find_block
from rsi_core.report import plots
from rsi_core.verdicts import claims as C
from rsi_core.verdicts import verdict as V
from rsi_core.verdicts.verdict import Verdict, not_applicable, valid


def scale_counts_of(study, robust=()) -> dict:
    """Per studied block: valid channels of the unbiased sample, those meeting the three criteria with
    and without the mix one, and in the ``robust`` blocks those also passing the natural-image version."""
    counts = {}
    for b in study.blocks:
        r = study.block(b)
        k = study.kept(b, r)
        counts[b] = {"n": int(k.sum()), "with_mix": int((r.scale_invariant() & k).sum()),
                     "without_mix": int((r.scale_invariant(False) & k).sum())}
        if b in robust:
            counts[b]["both"] = int((r.scale_invariant() & study.robust(b).scale_invariant() & k).sum())
    return counts


def scale_counts(study) -> Verdict:
    """"Many" channels meet the criteria in 1.1, 2.0, 2.1, 3.1 (Figures 6 and 7: at least 3 per
    block, and 1, 4, 9, 9 that also pass the natural-image version); zero in 3.0, 4.0, 4.1;
    without criterion 1, only a few in 4.0 and 4.1 and an appreciable share in 3.0 (less than
    its neighbours)."""
    simple, down, final = study.roles["simple"], study.roles["downsample"], study.roles["final"]
    many_b = simple[:1] + down[:1] + simple[1:]
    counts = scale_counts_of(study, robust=many_b)
    fig7 = (study.lists or {}).get("fig7", {})  # "1, 4, 9, 9 passing both": the lengths of Figure 7's lists
    return replace(C.scale_counts(
        counts, study.census_map(list(counts)),
        {b: find_block(study.model, b).channels for b in counts},
        many={b: 3 for b in many_b}, both={b: len(fig7[b]) for b in many_b if fig7.get(b)},
        none=tuple(down[1:] + final), few_without_mix=tuple(down[2:] + final),
        appreciable=down[1] if len(down) > 1 else None, neighbours=tuple(simple[1:]), noise_source=V.noise_for(study)),
        blocks={"many": many_b, "none": down[1:] + final, "few without mix": down[2:] + final})


def scale_figure(study, path, measured, controls):
    controls = {f"{kind} {w}": scale_counts_of(s) for w, kind, s in controls}
    return [plots.fig5_scale_counts(scale_counts_of(study), study.describe(), path, controls=controls or None)]


@pytest.mark.claim("fig5-scale-counts")
def test_scale_counts(rsi_claims):
    rsi_claims.check(scale_counts, figure=scale_figure)


def _overlap(study, reference: dict, found: dict, listed: list) -> Verdict:
    """The found lists against the reference lists, over each block's valid studied channels."""
    per = {b: (study.block(b).channels[valid(study.block(b))], ref, found.get(b, [])) for b, ref in reference.items()}
    v = C.overlap(per, census=all(study.census_map(list(reference)).values()))
    v.measured["found"] = found
    return replace(v, blocks={"listed": listed})


def _lists_na(statistic):
    return not_applicable(statistic, {}, "lists are resnet18's")


def _ranked(r, ok) -> list:
    """Channels passing ``ok``, by scale metric SM, largest first."""
    order = np.argsort(-np.where(ok, r.sm, -np.inf), kind="stable")[: int(ok.sum())]
    return [int(r.channels[i]) for i in order]


def _grid_figure(found_key, title):
    def figure(study, path, measured, controls):
        rows = [row for b, chans in measured.get(found_key, {}).items() if chans
                for row in plots.channel_grid_rows(study, b, chans[:9], channel_fzs=study.profile.name == "paper")]
        return [plots.channel_grids(rows, study.describe(), path, title)] if rows else []
    return figure


TOP_SCALE = ("overlap of each block's top 3 criteria-passing channels by SM with the paper's examples; "
             "Fisher-combined hypergeometric p < 0.05")


def top_scale(study) -> Verdict:
    """Top-3 channels per block by SM include 2.0 ch 15, 2.1 ch 108, 3.1 ch 113 and 178."""
    if not study.lists:
        return _lists_na(TOP_SCALE)
    paper = study.lists["fig6"]
    found = {b: _ranked(study.block(b), study.block(b).scale_invariant() & valid(study.block(b)))[:3] for b in paper}
    return _overlap(study, paper, found, list(paper))


@pytest.mark.claim("fig6-top-scale")
def test_top_scale(rsi_claims):
    rsi_claims.check(top_scale, figure=_grid_figure("found", "Figure 6: top-3 by scale metric"))


ROBUST = ("overlap of the channels passing both versions of the criteria with the paper's list; "
          "Fisher-combined hypergeometric p < 0.05")


def robust(study) -> Verdict:
    """Channels passing both FZ and natural-image criteria: 1.1: 19; 2.0: 7, 15, 53, 3; 2.1: 108,
    36, 13, 21, 60, 52, 93, 5, 58; 3.1: 113, 178, 22, 215, 204, 25, 29, 154, 200."""
    if not study.lists:
        return _lists_na(ROBUST)
    paper = {b: c for b, c in study.lists["fig7"].items() if c}
    both = {}
    for b in study.lists["fig7"]:
        r, rr = study.block(b), study.robust(b)
        both[b] = _ranked(r, r.scale_invariant() & rr.scale_invariant() & valid(r))
    return _overlap(study, paper, both, list(study.lists["fig7"]))


@pytest.mark.claim("fig7-robust")
def test_robust(rsi_claims):
    rsi_claims.check(robust, figure=_grid_figure("found", "Figure 7: FZ and natural-image criteria"))


TOP_MIXES = "overlap of each block's 3 channels with the smallest |M - 1| with the paper's; Fisher-combined " \
            "hypergeometric p < 0.05"


def top_mixes(study) -> Verdict:
    """Smallest |M - 1|: 1.1: 44, 27, 55; 2.0: 42, 9, 78; 2.1: 22, 116, 72; 3.0: 105, 250, 204;
    3.1: 128, 246, 41; 4.0: 163, 3, 51; 4.1: 154, 68, 496."""
    if not study.lists:
        return _lists_na(TOP_MIXES)
    paper = study.lists["fig8"]
    found = {}
    for b in paper:
        r = study.block(b)
        v = valid(r)
        found[b] = metrics.top_mixes(r.m[v], r.channels[v].tolist(), k=3)
    return _overlap(study, paper, found, list(paper))


@pytest.mark.claim("fig8-top-mixes")
def test_top_mixes(rsi_claims):
    rsi_claims.check(top_mixes, figure=_grid_figure("found", "Figure 8: top mixes"))
