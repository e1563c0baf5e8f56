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

from rsi_core.measure import metrics
from rsi_core.model.sources import kind_of

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


# ============================================================================ statistical model
# (stats helper, issue 13.) How a number becomes a verdict, census and sample alike.
#
# * Census (every channel of a block measured): a share is the share, with no sampling error. Its
#   remaining uncertainty is the FZ optimization's: a channel's class can change from FZ seed to
#   FZ seed. The measured seed-to-seed flip rate of a per-channel class (``seed_noise()``, shipped
#   in ``rsi_core/verdicts/seed_noise.json`` with the command that measured it) bounds how far a share
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

NOISE_FILE = Path(__file__).parent / "seed_noise.json"
NOISE_KEYS = ("overwrite", "lowest_bin", "nonzero", "inhibit", "criteria", "criteria_without_mix")


@functools.cache
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
    return PLANTED_SOURCE if kind_of(getattr(study.model, "rsi_weights", "")) == "planted" else None


MAX_SOURCES = "max over sources"       # what ``measured`` records for source None


def noise_label(source: str | None) -> str:
    """The noise source as a statistic's sentence states it."""
    if source is not None:
        return f"the {source} source's rates"
    return "the larger rate of the sources " + " and ".join(_noise_table(str(NOISE_FILE))["sources"])


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
