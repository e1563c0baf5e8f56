"""The paper's claims (SPEC's table), each a statistic with a threshold and a verdict.

A claim returns ``holds``: True, False, or None (inconclusive). A statistic that misses its
threshold on a sample of channels (profiles ``quick``/``smoke``) is inconclusive, not false:
only a run over every channel, or evidence against the claim that a sample already shows, makes
it false. Each claim also saves its figure (``<id>.png``) and numbers when given an artifacts folder.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from scipy import stats

from . import metrics, plots, report
from .anatomy import find_block
from .profiles import PAPER_FIG1, PAPER_FIG6, PAPER_FIG7, PAPER_FIG8

ALPHA = 0.05
SIMPLE, DOWNSAMPLE = ("1.1", "2.1", "3.1"), ("2.0", "3.0", "4.0")


@dataclass
class ClaimResult:
    id: str
    blocks: list
    paper: str
    statistic: str
    measured: dict
    holds: bool | None
    reason: str = ""
    artifacts: list = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return {True: "holds", False: "fails", None: "inconclusive"}[self.holds]

    def message(self) -> str:
        return (f"{self.id}: {self.verdict}. Measured: {self.reason}. Paper: {self.paper}. "
                f"Statistic: {self.statistic}")

    def to_json(self) -> dict:
        return {**asdict(self), "verdict": self.verdict}


@dataclass(frozen=True)
class Claim:
    id: str
    blocks: tuple
    paper: str
    statistic: str
    evaluate: Callable
    expectations: dict  # model name -> "holds" | "fails" | "observe" (pretrained weights)


CLAIMS: dict[str, Claim] = {}


def claim(id: str, blocks, paper: str, statistic: str, expectations=None):
    def register(fn):
        CLAIMS[id] = Claim(id, tuple(blocks), paper, statistic, fn, expectations or {"resnet18": "holds"})
        return fn
    return register


def expectation(claim_id: str, model_name: str, weights: str) -> str:
    """What a run should show: random or shuffled weights are a control and are only observed."""
    from .controls import is_control
    if is_control(weights):
        return "observe"
    return CLAIMS[claim_id].expectations.get(model_name, "observe")


def decide(supported: bool, refuted: bool, complete: bool) -> bool | None:
    """Verdict from a statistic: refuted beats supported; a miss on a sample is inconclusive."""
    if refuted:
        return False
    if supported:
        return True
    return False if complete else None


def _complete(study, blocks) -> bool:
    return all(len(study.channels(b)) == find_block(study.model, b).channels for b in blocks)


def _valid(r):
    """Channels whose two FZs did not both fail (SPEC: report them, leave them out)."""
    return ~r.failed


def _binomial_bounds(k: int, n: int) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    return metrics.binomial_lower_bound(k, n), 1 - metrics.binomial_lower_bound(n - k, n)


# --------------------------------------------------------------------------------------------
def _mix_figure(study, fig):
    """Figure 2 for every studied block, whichever blocks the claim tests."""
    return plots.fig2_mix_histograms({b: study.block(b) for b in study.blocks}, study.describe(), fig)


@claim("fig2-downsample-overwrite", DOWNSAMPLE,
       "in every downsample block (2.0, 3.0, 4.0) overwrite channels (M < 1) dominate",
       "per block, one-sided 95% Clopper-Pearson bound on the share of M < 1: lower > 0.5 "
       "supports; upper < 0.5 refutes")
def _fig2_downsample(study, fig):
    per = {}
    for b in DOWNSAMPLE:
        r = study.block(b)
        m = r.m[_valid(r)]
        k, n = int((m < 1).sum()), len(m)
        lo, hi = _binomial_bounds(k, n)
        per[b] = {"overwrite": k, "n": n, "share": k / n if n else float("nan"), "lower95": lo,
                  "upper95": hi, "failed_fzs": int(r.failed.sum())}
    holds = decide(all(v["lower95"] > 0.5 for v in per.values()),
                   any(v["upper95"] < 0.5 for v in per.values()), _complete(study, DOWNSAMPLE))
    reason = "; ".join(f"{b}: {v['overwrite']}/{v['n']} overwrite (lower bound {v['lower95']:.2f})"
                       for b, v in per.items())
    return per, holds, reason, [_mix_figure(study, fig)] if fig else []


@claim("fig2-simple-less-skewed", SIMPLE + DOWNSAMPLE,
       "simple blocks 1.1, 2.1, 3.1 are less overwrite-skewed than the downsample blocks",
       "one-sided Mann-Whitney U of M, simple blocks pooled > downsample blocks pooled, p < 0.05")
def _fig2_simple(study, fig):
    simple = np.concatenate([study.block(b).m[_valid(study.block(b))] for b in SIMPLE])
    down = np.concatenate([study.block(b).m[_valid(study.block(b))] for b in DOWNSAMPLE])
    p_more = stats.mannwhitneyu(simple, down, alternative="greater").pvalue
    p_less = stats.mannwhitneyu(simple, down, alternative="less").pvalue
    share = {"simple_overwrite_share": float((simple < 1).mean()),
             "downsample_overwrite_share": float((down < 1).mean())}
    measured = {**share, "p_simple_greater": float(p_more), "p_simple_less": float(p_less),
                "n_simple": len(simple), "n_downsample": len(down)}
    holds = decide(p_more < ALPHA, p_less < ALPHA, _complete(study, SIMPLE + DOWNSAMPLE))
    reason = (f"overwrite share simple {share['simple_overwrite_share']:.2f} vs downsample "
              f"{share['downsample_overwrite_share']:.2f}, Mann-Whitney p = {p_more:.3g}")
    examples = {b: [c for c in chans if c in study.channels(b)] for b, chans in PAPER_FIG1.items()}
    arts = [_mix_figure(study, fig)] + _grid(study, examples, "Figure 1: the paper's example channels",
                                             fig.with_name("fig1-examples.png")) if fig else []
    return measured, holds, reason, arts


@claim("fig2-final-block", ("4.1",),
       "in 4.1 nearly all channels fall in the lowest bin [0, 0.25), and nearly all M are non-zero",
       "one-sided 95% Clopper-Pearson bounds with 'nearly all' = 90%: lower bound of the share in "
       "[0, 0.25) > 0.9 and lower bound of the share M > 0 > 0.9 support; an upper bound < 0.9 refutes")
def _fig2_final(study, fig):
    r = study.block("4.1")
    m = r.m[_valid(r)]
    n = len(m)
    low, nonzero = int((m < 0.25).sum()), int((m > 0).sum())
    (low_lo, low_hi), (nz_lo, nz_hi) = _binomial_bounds(low, n), _binomial_bounds(nonzero, n)
    measured = {"n": n, "lowest_bin": low, "nonzero": nonzero, "lowest_bin_lower95": low_lo,
                "nonzero_lower95": nz_lo, "lowest_bin_share": low / n if n else float("nan")}
    holds = decide(low_lo > 0.9 and nz_lo > 0.9, low_hi < 0.9 or nz_hi < 0.9, _complete(study, ["4.1"]))
    reason = f"{low}/{n} in [0, 0.25), {nonzero}/{n} non-zero"
    return measured, holds, reason, [_mix_figure(study, fig)] if fig else []


@claim("fig3-weight-magnitude", SIMPLE,
       "in 1.1, 2.1, 3.1 Spearman(M, |BN2 weight|) and Spearman(M, mean |conv2 weight|) are negative, p < 0.05",
       "Spearman rho < 0 with p < 0.05 for both weights in all three blocks; rho > 0 with p < 0.05 refutes")
def _fig3(study, fig):
    points, ok, against = {}, [], []
    for b in SIMPLE:
        r = study.block(b)
        bn, conv = metrics.weight_magnitudes(find_block(study.model, b).module)
        bn, conv = bn[r.channels], conv[r.channels]
        rho_bn, p_bn = metrics.spearman(r.m, bn)
        rho_conv, p_conv = metrics.spearman(r.m, conv)
        points[b] = {"m": r.m, "bn": bn, "conv": conv, "rho_bn": rho_bn, "p_bn": p_bn,
                     "rho_conv": rho_conv, "p_conv": p_conv}
        for rho, p in ((rho_bn, p_bn), (rho_conv, p_conv)):
            ok.append(rho < 0 and p < ALPHA)
            against.append(rho > 0 and p < ALPHA)
    measured = {b: {k: float(v) for k, v in d.items() if k.startswith(("rho", "p_"))} for b, d in points.items()}
    holds = decide(all(ok), any(against), _complete(study, SIMPLE))
    reason = "; ".join(f"{b}: rho_bn {v['rho_bn']:.2f} (p {v['p_bn']:.2g}), rho_conv {v['rho_conv']:.2f} "
                       f"(p {v['p_conv']:.2g})" for b, v in measured.items())
    arts = [plots.fig3_weight_scatter(points, study.describe(), fig)] if fig else []
    return measured, holds, reason, arts


def _groups(r, values):
    valid = _valid(r) & np.isfinite(values)
    return values[valid & (r.m < 1)], values[valid & (r.m > 1)]


def _compare_groups(over, skip) -> dict:
    """One-way ANOVA of overwrite vs skip values, the group means and sizes, and whether the
    overwrite mean is the lower one."""
    f, p = metrics.anova_two_groups(over, skip)
    mean = lambda v: float(v.mean()) if len(v) else float("nan")  # noqa: E731
    return {"F": f, "p": p, "overwrite_mean": mean(over), "skip_mean": mean(skip),
            "below": bool(len(over) and len(skip) and over.mean() < skip.mean()),
            "n_overwrite": len(over), "n_skip": len(skip)}


def _fig4_points(study):
    points = {}
    for b in SIMPLE:
        r = study.block(b)
        corr = study.input_block_correlation(b)
        top, bottom = _compare_groups(*_groups(r, r.b_xi)), _compare_groups(*_groups(r, corr))
        points[b] = {"m": r.m, "b_xi": r.b_xi, "corr": corr, "top_F": top["F"], "top_p": top["p"],
                     "bottom_F": bottom["F"], "bottom_p": bottom["p"]}
    return points


@claim("fig4-inhibition", SIMPLE,
       "B_c(X_I) < 0 for many overwrite channels; overwrite mean below skip mean, significant in 2.1 and 3.1",
       "in 2.1 and 3.1: one-way ANOVA of B_c(X_I), overwrite (M < 1) vs skip (M > 1), p < 0.05 with the "
       "overwrite mean lower, and at least 25% of overwrite channels with B_c(X_I) < 0")
def _fig4_inhibition(study, fig):
    measured, ok, against = {}, [], []
    for b in SIMPLE:
        r = study.block(b)
        over, skip = _groups(r, r.b_xi)
        neg = float((over < 0).mean()) if len(over) else float("nan")
        v = measured[b] = {**_compare_groups(over, skip), "overwrite_negative_share": neg}
        if b in ("2.1", "3.1"):
            ok.append(v["p"] < ALPHA and v["below"] and neg >= 0.25)
            against.append(v["p"] < ALPHA and not v["below"])
    holds = decide(all(ok), any(against), _complete(study, ("2.1", "3.1")))
    reason = "; ".join(f"{b}: overwrite mean {v['overwrite_mean']:.2f} vs skip {v['skip_mean']:.2f}, "
                       f"F {v['F']:.2f}, p {v['p']:.2g}, {v['overwrite_negative_share']:.0%} negative"
                       for b, v in measured.items())
    arts = [plots.fig4_inhibition(_fig4_points(study), study.describe(), fig)] if fig else []
    return measured, holds, reason, arts


@claim("fig4-input-block-correlation", SIMPLE,
       "overwrite channels have more negative input-block correlations than skip channels in 3.1 "
       "(significant), not in 1.1 or 2.1",
       "per channel Spearman(B_c, I_c) over natural images with I_c > 0; one-way ANOVA overwrite vs skip: "
       "3.1 p < 0.05 with the overwrite mean lower, 1.1 and 2.1 p >= 0.05")
def _fig4_correlation(study, fig):
    measured = {}
    for b in SIMPLE:
        r = study.block(b)
        over, skip = _groups(r, study.input_block_correlation(b))
        measured[b] = _compare_groups(over, skip)
    sig = {b: v["p"] < ALPHA for b, v in measured.items()}
    holds = decide(sig["3.1"] and measured["3.1"]["below"] and not sig["1.1"] and not sig["2.1"],
                   sig["1.1"] or sig["2.1"] or (sig["3.1"] and not measured["3.1"]["below"]),
                   _complete(study, SIMPLE))
    reason = "; ".join(f"{b}: overwrite {v['overwrite_mean']:.2f} vs skip {v['skip_mean']:.2f}, p {v['p']:.2g}"
                       for b, v in measured.items())
    arts = [plots.fig4_inhibition(_fig4_points(study), study.describe(), fig)] if fig else []
    return measured, holds, reason, arts


@claim("fig5-scale-counts", SIMPLE + DOWNSAMPLE + ("4.1",),
       "scale-invariant channels exist in 1.1, 2.0, 2.1, 3.1; none in 3.0, 4.0, 4.1; without criterion 1, "
       "only a few in 4.0 and 4.1",
       "counts of channels meeting the three criteria: >= 1 in 1.1, 2.0, 2.1, 3.1; share in 3.0, 4.0, 4.1 "
       "with, and in 4.0, 4.1 without, the mix criterion: 'none'/'a few' = at most 5%, refuted when the "
       "one-sided 95% lower bound of the share exceeds 5%")
def _fig5(study, fig):
    counts = {}
    for b in ("1.1", "2.0", "2.1", "3.0", "3.1", "4.0", "4.1"):
        r = study.block(b)
        v = _valid(r)
        counts[b] = {"n": int(v.sum()), "with_mix": int((r.scale_invariant() & v).sum()),
                     "without_mix": int((r.scale_invariant(False) & v).sum())}
    exist = [counts[b]["with_mix"] >= 1 for b in ("1.1", "2.0", "2.1", "3.1")]
    few = [(b, key) for b in ("3.0", "4.0", "4.1") for key in ("with_mix",)] + \
          [(b, "without_mix") for b in ("4.0", "4.1")]
    too_many = [_binomial_bounds(counts[b][k], counts[b]["n"])[0] > 0.05 for b, k in few]
    few_ok = [counts[b][k] <= 0.05 * counts[b]["n"] for b, k in few]
    holds = decide(all(exist) and all(few_ok), any(too_many), _complete(study, counts))
    reason = "; ".join(f"{b}: {c['with_mix']}/{c['n']} ({c['without_mix']} without mix)" for b, c in counts.items())
    arts = [plots.fig5_scale_counts(counts, study.describe(), fig)] if fig else []
    return counts, holds, reason, arts


def _overlap_claim(study, paper_lists: dict, found: dict):
    """Overlap of found channel lists with the paper's, per block, and Fisher's combined p of
    the per-block hypergeometric p-values (only blocks where the paper names studied channels)."""
    per, ps = {}, []
    for b, paper in paper_lists.items():
        population = set(study.channels(b))
        named = set(paper) & population
        got = set(found.get(b, []))
        p = metrics.hypergeom_overlap_p(population, named, got) if named and got else float("nan")
        per[b] = {"paper": sorted(paper), "paper_studied": sorted(named), "found": sorted(got),
                  "overlap": sorted(named & got), "p": p}
        if named and got:
            ps.append(p)
    combined = float(stats.combine_pvalues(ps, method="fisher").pvalue) if ps else float("nan")
    testable = bool(ps)
    holds = (combined < ALPHA) if testable else None
    if testable and not holds and not _complete(study, paper_lists):
        holds = None
    reason = "; ".join(f"{b}: {len(v['overlap'])}/{len(v['paper_studied'])} of the paper's studied channels "
                       f"recovered {v['overlap']}" for b, v in per.items()) + f"; combined p = {combined:.3g}"
    return {"blocks": per, "combined_p": combined}, holds, reason


def _grid(study, rows_by_block, title, fig):
    if fig is None:
        return []
    rows = []
    for b, chans in rows_by_block.items():
        if not chans:
            continue
        rows += plots.channel_grid_rows(study, b, chans, channel_fzs=study.profile.name == "paper")
    return [plots.channel_grids(rows, study.describe(), fig, title)] if rows else []


@claim("fig6-top-scale", ("1.1", "2.0", "2.1", "3.1"),
       "top-3 channels per block by SM include 2.0 ch 15, 2.1 ch 108, 3.1 ch 113 and 178",
       "overlap of each block's top 3 criteria-passing channels by SM with the paper's examples; "
       "Fisher-combined hypergeometric p < 0.05")
def _fig6(study, fig):
    top = {}
    for b in ("1.1", "2.0", "2.1", "3.1"):
        r = study.block(b)
        ok = r.scale_invariant() & _valid(r)
        order = np.argsort(-np.where(ok, r.sm, -np.inf), kind="stable")[: min(3, int(ok.sum()))]
        top[b] = [int(r.channels[i]) for i in order]
    measured, holds, reason = _overlap_claim(study, PAPER_FIG6, top)
    return measured, holds, reason, _grid(study, top, "Figure 6: top-3 by scale metric", fig)


@claim("fig7-robust", ("1.1", "2.0", "2.1", "3.1"),
       "channels passing both FZ and natural-image criteria: 1.1: 19; 2.0: 7, 15, 53, 3; 2.1: 108, 36, 13, 21, "
       "60, 52, 93, 5, 58; 3.1: 113, 178, 22, 215, 204, 25, 29, 154, 200",
       "overlap of the channels passing both versions of the criteria with the paper's list; "
       "Fisher-combined hypergeometric p < 0.05")
def _fig7(study, fig):
    both = {}
    for b in ("1.1", "2.0", "2.1", "3.1", "3.0", "4.0", "4.1"):
        r, rr = study.block(b), study.robust(b)
        ok = r.scale_invariant() & rr.scale_invariant() & _valid(r)
        both[b] = [int(c) for c in r.channels[np.argsort(-np.where(ok, r.sm, -np.inf), kind="stable")]
                   [: int(ok.sum())]]
    measured, holds, reason = _overlap_claim(study, {b: v for b, v in PAPER_FIG7.items() if v}, both)
    measured["passing_both"] = both
    return measured, holds, reason, _grid(study, {b: c[:9] for b, c in both.items() if c},
                                          "Figure 7: FZ and natural-image criteria", fig)


@claim("fig8-top-mixes", ("1.1", "2.0", "2.1", "3.0", "3.1", "4.0", "4.1"),
       "smallest |M - 1|: 1.1: 44, 27, 55; 2.0: 42, 9, 78; 2.1: 22, 116, 72; 3.0: 105, 250, 204; "
       "3.1: 128, 246, 41; 4.0: 163, 3, 51; 4.1: 154, 68, 496",
       "overlap of each block's 3 channels with the smallest |M - 1| with the paper's; "
       "Fisher-combined hypergeometric p < 0.05")
def _fig8(study, fig):
    found = {}
    for b in PAPER_FIG8:
        r = study.block(b)
        v = _valid(r)
        found[b] = metrics.top_mixes(r.m[v], r.channels[v].tolist(), k=3)
    measured, holds, reason = _overlap_claim(study, PAPER_FIG8, found)
    return measured, holds, reason, _grid(study, found, "Figure 8: top mixes", fig)


# --------------------------------------------------------------------------------------------
def evaluate(claim_id: str, study, artifacts_dir=None) -> ClaimResult:
    """Run one claim; with ``artifacts_dir``, save its figure(s) there."""
    c = CLAIMS[claim_id]
    fig = None
    if artifacts_dir:
        Path(artifacts_dir).mkdir(parents=True, exist_ok=True)
        fig = Path(artifacts_dir) / f"{claim_id}.png"
    measured, holds, reason, arts = c.evaluate(study, fig)
    return ClaimResult(c.id, list(c.blocks), c.paper, c.statistic, _jsonable(measured), holds, reason,
                       [str(a) for a in arts])


def outcome(holds: bool | None, expect: str) -> str:
    """pass / fail / fails as expected / observed / inconclusive."""
    if holds is None:
        return "inconclusive"
    if expect == "observe":
        return "observed"
    if expect == "fails":
        return "fails as expected" if not holds else "fail (expected to fail, holds)"
    return "pass" if holds else "fail"


def check(claim_id: str, study, artifacts_dir, baseline: dict | None = None) -> dict:
    """Evaluate a claim against its expectation for this model and weights, compare with the
    baseline, and write ``artifacts_dir/claims/<id>.json``; return that entry."""
    result = evaluate(claim_id, study, artifacts_dir)
    prov = study.describe()
    expect = expectation(claim_id, prov["model"], prov["weights"])
    entry = {**result.to_json(), "expectation": expect, "outcome": outcome(result.holds, expect),
             "provenance": prov}
    entry["regressions"] = report.regressions(entry, (baseline or {}).get(claim_id))
    folder = Path(artifacts_dir) / "claims"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{claim_id}.json").write_text(json.dumps(entry, indent=1))
    return entry


def evaluate_all(study, artifacts_dir=None) -> list[ClaimResult]:
    return [evaluate(cid, study, artifacts_dir) for cid in CLAIMS]


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return None if not np.isfinite(x) else float(x)
    if isinstance(x, (np.integer, np.bool_)):
        return x.item()
    return x
