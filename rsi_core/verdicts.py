"""A claim's verdict and the small rules that produce one.

A claim function (``claims/test_*.py``) reads a ``Study`` and returns a ``Verdict``: holds,
fails, inconclusive, or error, with the numbers it measured, the one-sentence statistic, the
blocks it read and its headline ``value`` (compared against controls in ``direction``).
"""
from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy import stats as _stats

from . import metrics

ALPHA = 0.05
VERDICTS = ("holds", "fails", "inconclusive", "error")


@dataclass
class Verdict:
    claim_id: str
    verdict: str
    statistic: str
    measured: dict
    blocks: dict                  # role -> [block names read]
    reason: str
    value: float | None = None    # the headline statistic
    direction: str | None = None  # "greater" | "less": which way supports the claim
    artifacts: list = field(default_factory=list)

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict {self.verdict!r} is not one of {VERDICTS}")
        self.measured = jsonable(self.measured)
        self.value = jsonable(self.value)

    def to_json(self) -> dict:
        return asdict(self)


def decide(supported: bool, refuted: bool, complete: bool) -> str:
    """Refuted beats supported; a miss on a sample (not every channel) is inconclusive."""
    if refuted:
        return "fails"
    if supported:
        return "holds"
    return "fails" if complete else "inconclusive"


def verdict(statistic: str, measured: dict, blocks: dict, reason: str, *, supported: bool, refuted: bool,
            complete: bool, value=None, direction=None) -> Verdict:
    """The usual path: a statistic's support/refutation on a census or a sample."""
    return Verdict("", decide(bool(supported), bool(refuted), bool(complete)), statistic, measured, blocks,
                   reason, value, direction)


def not_applicable(statistic: str, blocks: dict, reason: str) -> Verdict:
    """A claim this model cannot be asked (e.g. the paper's channel numbers on another model)."""
    return Verdict("", "inconclusive", statistic, {}, blocks, f"n/a: {reason}")


def binomial_bounds(k: int, n: int) -> tuple[float, float]:
    """One-sided 95% Clopper-Pearson (lower, upper) bounds of k/n; (0, 1) with no data."""
    return exact_bounds(k, n)


def seed_verdict(per_seed: list) -> tuple[str, list]:
    """Verdict over FZ seeds: the common verdict when every seed agrees, else inconclusive; and
    the (min, max) range of the seeds' values."""
    verdicts = {v.verdict for v in per_seed}
    values = [v.value for v in per_seed if v.value is not None]
    rng = [min(values), max(values)] if values else None
    if "error" in verdicts:
        return "error", rng
    return (verdicts.pop() if len(verdicts) == 1 else "inconclusive"), rng


def jsonable(x):
    """Numbers and containers as plain JSON (NaN/inf -> None)."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, np.ndarray)):
        return [jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return None if not np.isfinite(x) else float(x)
    if isinstance(x, (np.integer, np.bool_)):
        return x.item()
    return x


# helpers the claim functions share ------------------------------------------------------------
def complete(study, blocks) -> bool:
    """Every channel of every block studied (a census), so a miss is a miss, not sampling."""
    from .anatomy import find_block
    return all(len(study.channels(b)) == find_block(study.model, b).channels for b in blocks)


def valid(r) -> np.ndarray:
    """Channels whose two FZs did not both fail (SPEC: report them, leave them out)."""
    return ~r.failed


def groups(r, values) -> tuple[np.ndarray, np.ndarray]:
    """``values`` of the valid overwrite (M < 1) and skip (``r.skip``: M > 1, or M >= 1 as run)
    channels of block result ``r``."""
    ok = valid(r) & np.isfinite(values)
    return values[ok & (r.m < 1)], values[ok & r.skip]


def compare_groups(over, skip) -> dict:
    """One-way ANOVA of overwrite vs skip values, the group means and sizes, and whether the
    overwrite mean is the lower one."""
    f, p = metrics.anova_two_groups(over, skip)
    mean = lambda v: float(v.mean()) if len(v) else float("nan")  # noqa: E731
    return {"F": f, "p": p, "overwrite_mean": mean(over), "skip_mean": mean(skip),
            "below": bool(len(over) and len(skip) and over.mean() < skip.mean()),
            "n_overwrite": len(over), "n_skip": len(skip)}


def list_overlap(study, paper_lists: dict, found: dict, statistic: str, role_blocks: dict) -> Verdict:
    """Overlap of found channel lists with the reference lists, per block, and Fisher's combined
    p of the per-block hypergeometric p-values (blocks where the list names studied channels):
    p < 0.05 holds; otherwise fails on a census, inconclusive on a sample."""
    from scipy import stats
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
    reason = "; ".join(f"{b}: {len(v['overlap'])}/{len(v['paper_studied'])} of the listed studied channels "
                       f"recovered {v['overlap']}" for b, v in per.items()) + f"; combined p = {combined:.3g}"
    testable = bool(ps)
    return verdict(statistic, {"blocks": per, "combined_p": combined}, role_blocks, reason,
                   supported=testable and combined < ALPHA, refuted=False,
                   complete=testable and complete(study, paper_lists), value=combined, direction="less")


# ============================================================================ statistical model
# (stats helper, issue 13.) How a number becomes a verdict, census and sample alike.
#
# * Census (every channel of a block measured): a share is the share, with no sampling error. Its
#   remaining uncertainty is the FZ optimization's: a channel's class can change from FZ seed to
#   FZ seed. The measured seed-to-seed flip rate of a per-channel class (``seed_noise()``, shipped
#   in ``rsi_core/data/seed_noise.json`` with the command that measured it) bounds how far a share
#   can move, so it is the noise margin: clear the threshold by more -> holds, miss by more ->
#   fails, within it -> inconclusive.
# * Sample (quick, smoke): exact one-sided 95% Clopper-Pearson bounds (scipy's binomtest): the
#   lower bound above the threshold -> holds, the upper bound below -> fails, else inconclusive.
# * Per-block p-value tests (Spearman, ANOVA) are Holm-corrected over the blocks where the claim
#   says "significant"; a block whose part of the claim is "not significant" uses its raw p
#   (the stricter reading for an absence).
# * Blocks combine as: any block fails -> fails; every block holds -> holds; else inconclusive
#   (an errored block -> error).
# * FZ seeds (``--fz-seeds K``): every seed's verdict agrees -> that verdict, else inconclusive;
#   the values' range is reported (``seed_verdict``).

NOISE_FILE = Path(__file__).parent / "data" / "seed_noise.json"
NOISE_KEYS = ("overwrite", "lowest_bin", "nonzero", "inhibit", "criteria", "criteria_without_mix")


@functools.lru_cache(maxsize=None)
def _noise_table(path: str) -> dict:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"seed-noise table {p} is missing: run benchmarks/seed_noise.py --out {p}")
    return json.loads(p.read_text())


PLANTED_SOURCE = "planted benchmark"   # the table's source measured on planted networks


def seed_noise(key: str, source: str | None = None) -> float:
    """Measured seed-to-seed flip rate of a per-channel class (``NOISE_KEYS``): the census margin.
    ``source`` None: the larger rate over the table's sources (any model); a source name (a key of
    the table's ``sources``): that source's pooled rate (``noise_for``)."""
    if key not in NOISE_KEYS:
        raise ValueError(f"no seed noise for {key!r}: use one of {', '.join(NOISE_KEYS)}")
    table = _noise_table(str(NOISE_FILE))
    if source is None:
        return float(table["margin"][key])
    if source not in table["sources"]:
        raise ValueError(f"no seed-noise source {source!r} in {NOISE_FILE}: use one of {', '.join(table['sources'])}")
    return float(table["sources"][source]["pooled"][key]["rate"])


def noise_for(study) -> str | None:
    """Which measured seed noise a census verdict on ``study`` uses: a planted network (weights
    ``planted:...``, the family the "planted benchmark" source measured) its source's rates; any
    other model None, the larger rate over all sources (its family was not measured)."""
    return PLANTED_SOURCE if str(getattr(study.model, "rsi_weights", "")).startswith("planted:") else None


MAX_SOURCES = "max over sources"       # what ``measured`` records for source None


def noise_label(source: str | None) -> str:
    """The noise source as a statistic's sentence states it."""
    if source is not None:
        return f"the {source} source's rates"
    return "the larger rate of the sources " + " and ".join(_noise_table(str(NOISE_FILE))["sources"])


def noise_command() -> str:
    """The command that measured the shipped seed-noise table (for the report)."""
    return _noise_table(str(NOISE_FILE))["command"]


def exact_bounds(k: int, n: int, alpha: float = ALPHA) -> tuple[float, float]:
    """One-sided (1 - alpha) Clopper-Pearson (lower, upper) bounds of k/n: the two ends of scipy's
    exact two-sided (1 - 2 alpha) interval. (0, 1) with no data."""
    if n == 0:
        return 0.0, 1.0
    ci = _stats.binomtest(int(k), int(n)).proportion_ci(confidence_level=1 - 2 * alpha, method="exact")
    return float(ci.low), float(ci.high)


def _noise(noise_key: str | None, noise: float | None, source: str | None = None) -> float:
    if noise is not None:
        return float(noise)
    return seed_noise(noise_key) if source is None else seed_noise(noise_key, source)


def _source(noise: float | None, source: str | None) -> str:
    """What a census part records as its noise source: the table's source name, ``MAX_SOURCES``,
    or "given" (the caller passed ``noise``)."""
    return "given" if noise is not None else source or MAX_SOURCES


def share_test(k: int, n: int, threshold: float, *, census: bool, noise_key: str | None = None,
               noise: float | None = None, direction: str = "greater", noise_source: str | None = None) -> dict:
    """Is the share k/n above (``direction`` "greater") or below ("less") ``threshold``?

    Census: the margin (share - threshold, sign by direction) against the seed noise of
    ``noise_key`` (or ``noise``; ``noise_source``: which measured source, ``seed_noise``): > noise holds,
    < -noise fails, else inconclusive. Sample: exact bounds. No channel: inconclusive. Returns the
    verdict and the numbers behind it (on a census the noise and its source)."""
    if direction not in ("greater", "less"):
        raise ValueError(f"direction must be 'greater' or 'less', got {direction!r}")
    out = {"k": int(k), "n": int(n), "share": k / n if n else float("nan"), "threshold": threshold,
           "model": "census" if census else "sample"}
    sign = 1 if direction == "greater" else -1
    if n == 0:
        return {**out, "verdict": "inconclusive"}
    if census:
        eps = _noise(noise_key, noise, noise_source)
        margin = sign * (k / n - threshold)
        v = "holds" if margin > eps else "fails" if margin < -eps else "inconclusive"
        return {**out, "noise": eps, "noise_source": _source(noise, noise_source), "margin": margin, "verdict": v}
    lo, hi = exact_bounds(k, n)
    above, below = lo > threshold, hi < threshold
    v = ("holds" if above else "fails" if below else "inconclusive") if sign > 0 else \
        ("holds" if below else "fails" if above else "inconclusive")
    return {**out, "lower95": lo, "upper95": hi, "verdict": v}


def all_test(k: int, n: int, *, census: bool, noise_key: str | None = None, noise: float | None = None,
             noise_source: str | None = None) -> dict:
    """"All n channels" (k of them meet the condition). Census: a tolerance equal to the seed noise
    eps: share >= 1 - eps holds, share < 1 - 2 eps (missing the tolerance by more than the noise)
    fails, between inconclusive. A sample cannot show "all": its upper bound below 1 - eps fails,
    otherwise inconclusive."""
    eps = _noise(noise_key, noise, noise_source)
    out = {"k": int(k), "n": int(n), "share": k / n if n else float("nan"), "tolerance": eps,
           "noise_source": _source(noise, noise_source), "model": "census" if census else "sample"}
    if n == 0:
        return {**out, "verdict": "inconclusive"}
    if census:
        s = k / n
        return {**out, "verdict": "holds" if s >= 1 - eps else "fails" if s < 1 - 2 * eps else "inconclusive"}
    lo, hi = exact_bounds(k, n)
    return {**out, "lower95": lo, "upper95": hi, "verdict": "fails" if hi < 1 - eps else "inconclusive"}


def none_test(k: int, n: int, *, census: bool, noise_key: str | None = None, noise: float | None = None,
              noise_source: str | None = None) -> dict:
    """"No channel" (k of n meet the condition): "all" of the n - k others, same tolerance."""
    return {**all_test(n - k, n, census=census, noise_key=noise_key, noise=noise, noise_source=noise_source),
            "k": int(k), "share": k / n if n else float("nan")}


def count_test(k: int, n: int, at_least: int, *, census: bool, population: int | None = None,
               noise_key: str | None = None, noise: float | None = None, noise_source: str | None = None) -> dict:
    """"At least ``at_least`` channels" in a block (k of the n studied meet the condition). Census:
    the count's seed noise is eps * n channels: k - eps n >= at_least holds, k + eps n < at_least
    fails, else inconclusive. Sample: k >= at_least holds (the sampled ones are channels of the
    block); the upper bound of the share times the block's ``population`` below at_least fails;
    else inconclusive."""
    out = {"k": int(k), "n": int(n), "at_least": int(at_least), "model": "census" if census else "sample"}
    if census:
        eps = _noise(noise_key, noise, noise_source)
        slack = eps * n
        v = "holds" if k - slack >= at_least else "fails" if k + slack < at_least else "inconclusive"
        return {**out, "noise": eps, "noise_source": _source(noise, noise_source), "noise_channels": slack,
                "verdict": v}
    if k >= at_least:
        return {**out, "verdict": "holds"}
    hi = exact_bounds(k, n)[1] * (population or n) if n else float("inf")
    return {**out, "upper_count95": hi, "verdict": "fails" if hi < at_least else "inconclusive"}


def compare_shares(k1: int, n1: int, k2: int, n2: int, *, census: bool, noise_key: str | None = None,
                   noise: float | None = None, noise_source: str | None = None) -> dict:
    """Is share 1 below share 2? Census: the difference against the seed noise of both shares
    (2 eps). Sample: exact bounds (share 1's upper below share 2's lower holds; its lower above
    share 2's upper fails)."""
    s1, s2 = (k1 / n1 if n1 else float("nan")), (k2 / n2 if n2 else float("nan"))
    out = {"share": s1, "other": s2, "model": "census" if census else "sample"}
    if not n1 or not n2:
        return {**out, "verdict": "inconclusive"}
    if census:
        eps = 2 * _noise(noise_key, noise, noise_source)
        d = s2 - s1
        return {**out, "noise": eps, "noise_source": _source(noise, noise_source),
                "verdict": "holds" if d > eps else "fails" if d < -eps else "inconclusive"}
    (lo1, hi1), (lo2, hi2) = exact_bounds(k1, n1), exact_bounds(k2, n2)
    return {**out, "verdict": "holds" if hi1 < lo2 else "fails" if lo1 > hi2 else "inconclusive"}


def holm(pvalues: dict) -> dict:
    """Holm-Bonferroni adjusted p-values (same keys); NaN stays NaN and does not count."""
    keys = [k for k, p in pvalues.items() if p == p]
    order = sorted(keys, key=lambda k: pvalues[k])
    out, running = {k: float("nan") for k in pvalues}, 0.0
    for i, k in enumerate(order):
        running = max(running, min(1.0, (len(order) - i) * pvalues[k]))
        out[k] = running
    return out


def significant_test(effect: float, p: float, want: str, *, census: bool, alpha: float = ALPHA) -> str:
    """A claimed significant effect of sign ``want`` ("negative"/"positive"; ``p`` already
    Holm-adjusted): significant in that sign holds, significant in the other fails; not
    significant fails on a census and is inconclusive on a sample (too few channels); NaN
    (too few channels in a group) is inconclusive."""
    if effect != effect or p != p:
        return "inconclusive"
    if p < alpha:
        return "holds" if (effect < 0) == (want == "negative") else "fails"
    return "fails" if census else "inconclusive"


def absent_test(effect: float, p: float, want: str, alpha: float = ALPHA) -> str:
    """A claimed ABSENCE of a significant effect of sign ``want`` (raw ``p``): that effect
    significant fails; not significant, or significant in the OPPOSITE sign (which is not the
    claimed effect), holds; NaN inconclusive."""
    if effect != effect or p != p:
        return "inconclusive"
    same_sign = (effect < 0) == (want == "negative")
    return "fails" if (p < alpha and same_sign) else "holds"


def combine(verdicts) -> str:
    """Blocks or parts of one claim: any error -> error; any fails -> fails; all hold -> holds;
    otherwise inconclusive."""
    vs = list(verdicts.values() if isinstance(verdicts, dict) else verdicts)
    if "error" in vs:
        return "error"
    if "fails" in vs:
        return "fails"
    return "holds" if vs and all(v == "holds" for v in vs) else "inconclusive"


# ---------------------------------------------------------------------------- one helper per claim
# Inputs are plain numbers of the VALID channels (failed FZs dropped: ``valid(r)``) of the
# unbiased sample (or the census), so each is testable on constructed data. ``census`` maps a
# block to whether every channel of it was measured (``profiles.is_census``).

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
          f"rsi_core/data/seed_noise.json; census; a sample can refute 'all', never show it), and the "
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


# ---------------------------------------------------------------------------- reading a Study
# What the claim functions pass to the helpers above: the VALID channels of the UNBIASED sample
# (``profiles.sample_channels``; the paper's named channels that ``quick`` renders in addition
# never enter a share, rank or group statistic), and whether each block is a census.

def is_census(study, block: str) -> bool:
    from .anatomy import find_block
    from .profiles import is_census as census_
    return census_(study.profile, block, find_block(study.model, block).channels)


def census_map(study, blocks) -> dict:
    return {b: is_census(study, b) for b in blocks}


def kept(study, block: str, r=None) -> np.ndarray:
    """Mask over ``study.block(block).channels`` (or ``r.channels``): in the sample and FZs valid."""
    from .anatomy import find_block
    from .profiles import sample_channels
    r = r if r is not None else study.block(block)
    sample = sample_channels(study.profile, block, find_block(study.model, block).channels)
    return np.isin(r.channels, sample) & valid(r)


def sample_m(study, block: str) -> np.ndarray:
    """M of the kept channels (``kept``)."""
    r = study.block(block)
    return r.m[kept(study, block, r)]


def sample_groups(study, block: str, values) -> tuple[np.ndarray, np.ndarray]:
    """``values`` (one per studied channel) of the kept overwrite (M < 1) and skip (``skip``: M > 1,
    or M >= 1 as run) channels."""
    r = study.block(block)
    values = np.asarray(values, dtype=float)
    ok = kept(study, block, r) & np.isfinite(values)
    return values[ok & (r.m < 1)], values[ok & r.skip]
