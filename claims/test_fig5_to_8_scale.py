"""Figures 5-8: scale-invariant channels and the channels the paper names.

The channel lists (Figures 1, 6-8) are resnet18's: on another model these claims are
"n/a: lists are resnet18's" (inconclusive, never failing). A planted network brings its own.
"""
import numpy as np
import pytest

from rsi_core import metrics, plots
from rsi_core.verdicts import Verdict, binomial_bounds, complete, list_overlap, not_applicable, valid, verdict


def scale_counts_of(study) -> dict:
    """Per studied block: valid channels, and those meeting the three criteria with and without the mix one."""
    counts = {}
    for b in study.blocks:
        r = study.block(b)
        v = valid(r)
        counts[b] = {"n": int(v.sum()), "with_mix": int((r.scale_invariant() & v).sum()),
                     "without_mix": int((r.scale_invariant(False) & v).sum())}
    return counts


def scale_counts(study) -> Verdict:
    """Scale-invariant channels exist in 1.1, 2.0, 2.1, 3.1; none in 3.0, 4.0, 4.1; without
    criterion 1, only a few in 4.0 and 4.1."""
    roles = study.roles
    exist_b = roles["simple"] + roles["downsample"][:1]
    none_b = roles["downsample"][1:] + roles["final"]
    few_b = roles["downsample"][2:] + roles["final"]
    counts = scale_counts_of(study)
    few = [(b, "with_mix") for b in none_b] + [(b, "without_mix") for b in few_b]
    return verdict(
        "counts of channels meeting the three criteria: >= 1 in 1.1, 2.0, 2.1, 3.1; share in 3.0, 4.0, 4.1 "
        "with, and in 4.0, 4.1 without, the mix criterion: 'none'/'a few' = at most 5%, refuted when the "
        "one-sided 95% lower bound of the share exceeds 5%",
        counts, {"exist": exist_b, "none": none_b, "few without mix": few_b},
        "; ".join(f"{b}: {c['with_mix']}/{c['n']} ({c['without_mix']} without mix)" for b, c in counts.items()),
        supported=all(counts[b]["with_mix"] >= 1 for b in exist_b)
        and all(counts[b][k] <= 0.05 * counts[b]["n"] for b, k in few),
        refuted=any(binomial_bounds(counts[b][k], counts[b]["n"])[0] > 0.05 for b, k in few),
        complete=complete(study, list(counts)),
        value=min(counts[b]["with_mix"] for b in exist_b), direction="greater")


def scale_figure(study, path, measured, controls):
    controls = {f"{kind} {w}": scale_counts_of(s) for w, kind, s in controls}
    return [plots.fig5_scale_counts(scale_counts_of(study), study.describe(), path, controls=controls or None)]


@pytest.mark.claim("fig5-scale-counts")
def test_scale_counts(rsi_claims):
    rsi_claims.check(scale_counts, figure=scale_figure)


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
    v = list_overlap(study, paper, found, TOP_SCALE, {"listed": list(paper)})
    v.measured["found"] = found
    return v


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
    v = list_overlap(study, paper, both, ROBUST, {"listed": list(study.lists["fig7"])})
    v.measured["found"] = both
    return v


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
    out = list_overlap(study, paper, found, TOP_MIXES, {"listed": list(paper)})
    out.measured["found"] = found
    return out


@pytest.mark.claim("fig8-top-mixes")
def test_top_mixes(rsi_claims):
    rsi_claims.check(top_mixes, figure=_grid_figure("found", "Figure 8: top mixes"))
