"""A claim's verdict and the small rules that produce one.

A claim function (``claims/test_*.py``) reads a ``Study`` and returns a ``Verdict``: holds,
fails, inconclusive, n/a (the model lacks the claim's role or premise), or error, with the numbers it measured, the one-sentence statistic, the
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

ALPHA = 0.05
VERDICTS = ("holds", "fails", "inconclusive", "n/a", "error")


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


def not_applicable(statistic: str, blocks: dict, reason: str) -> Verdict:
    """A claim this model cannot be asked (the paper's channel numbers on another model, a role
    or premise its family lacks): verdict "n/a" with the reason, never a silent pass or fail."""
    return Verdict("", "n/a", statistic, {}, blocks, f"n/a: {reason}")


def applies_if(*premises: str):
    """Decorator of a claim function: on a study whose model lacks one of ``premises`` (a role
    such as "downsample", or a family premise such as "bn-branch"; ``Study.missing``) the claim
    is "n/a" with the reason, and is not evaluated."""
    def wrap(fn):
        @functools.wraps(fn)
        def claim(study):
            for premise in premises:
                reason = study.missing(premise)
                if reason:
                    return not_applicable("", {}, reason)
            return fn(study)
        return claim
    return wrap


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


# ============================================================================ statistical model
# How a number becomes a verdict (docs/verdicts.md says it in prose).
#
# * A claim is about the model under the FZ procedure: the share (count, difference) expected over
#   FZ seeds. On a census (every channel of a block) the only uncertainty is the FZ seed's. A
#   channel c is in a class (e.g. M < 1) with probability q_c over seeds, so a census share of n
#   channels has Var = sum q_c (1 - q_c) / n^2. Two independent seeds of one channel disagree with
#   probability 2 q_c (1 - q_c), so with F the block's mean flip rate, Var = F / (2 n). F is
#   measured in the run: a second FZ seed for a random subsample of the block (``Flips``, its
#   one-sided 95% Clopper-Pearson upper bound enters), or, where no second seed exists, read from
#   the shipped table (``table_flips``, the fallback). The share's one-sided 95% bounds are
#   share -/+ Z sqrt(F_upper / (2 n)); a count's are n times that; a difference of two blocks'
#   shares adds the variances.
# * Sample (quick, smoke): exact one-sided 95% Clopper-Pearson bounds (scipy's binomtest).
# * Either way: the lower bound above the threshold holds, the upper bound below it fails, else
#   inconclusive. "All" and "none" are shares against a stated tolerance (``ALL_TOLERANCE``,
#   ``NONE_TOLERANCE``), so more seed noise widens the bounds and can only turn a decided part
#   inconclusive, never make one hold.
# * A claim that asks every block to show an effect is an intersection-union test: no correction
#   across blocks. On a sample, a p-value test (Spearman, ANOVA) decides; not significant is
#   inconclusive. On a census, the effect's interval with its own seed noise decides
#   (``sign_test``): fails only where it excludes the claimed effect. An absence holds only where
#   the test could see the effect (``absent_test``).
# * FZs that never moved (their M is 0 or 5 by default) bound a share both ways (``unknown``).
# * Parts combine as: any part fails -> fails; every part holds -> holds; else inconclusive
#   (an errored part -> error).
# * FZ seeds (``--fz-seeds K``): every seed's verdict agrees -> that verdict, else inconclusive;
#   the values' range is reported (``seed_verdict``).

Z = float(_stats.norm.ppf(1 - ALPHA))      # one-sided 95% normal quantile
# "All" and "zero" as the paper's figures can show them, against the claim's own scale: Section 3.2
# calls at most 5% of a block "a few", so "all" leaves out fewer than that (at least 95%); "zero" is
# stricter than "a few": under 2%. The paper saw 0 of 1,024 channels of 3.0, 4.0 and 4.1 pass under
# one FZ seed (at most 0.3%, one-sided 95%); 2% leaves room for chance passes (a channel near a
# criterion's threshold passes under some seeds) and stays well below "a few".
ALL_TOLERANCE = 0.05
NONE_TOLERANCE = 0.02
IN_RUN = "in-run second seed"
NOISE_FILE = Path(__file__).parent / "seed_noise.json"
NOISE_KEYS = ("overwrite", "lowest_bin", "nonzero", "inhibit", "criteria", "criteria_without_mix")


@functools.lru_cache(maxsize=65536)
def exact_bounds(k: int, n: int, alpha: float = ALPHA) -> tuple[float, float]:
    """One-sided (1 - alpha) Clopper-Pearson (lower, upper) bounds of k/n: the two ends of scipy's
    exact two-sided (1 - 2 alpha) interval. (0, 1) with no data."""
    if n == 0:
        return 0.0, 1.0
    ci = _stats.binomtest(int(k), int(n)).proportion_ci(confidence_level=1 - 2 * alpha, method="exact")
    return float(ci.low), float(ci.high)


@dataclass(frozen=True)
class Flips:
    """How often a channel class changed between two FZ seeds: ``flips`` of ``pairs`` channels
    (valid under both seeds), where the pairs come from (``IN_RUN`` or the shipped table), and how
    many of the census's channels were counted as the mean of their two seeds (``paired``)."""
    flips: int
    pairs: int
    source: str = IN_RUN
    paired: int = 0

    @property
    def upper(self) -> float:
        """One-sided 95% upper bound of the flip rate (1 without pairs: nothing is known)."""
        return exact_bounds(self.flips, self.pairs)[1]

    def to_json(self) -> dict:
        return {"flips": self.flips, "pairs": self.pairs, "rate": self.flips / self.pairs if self.pairs else None,
                "upper95": self.upper, "source": self.source, "paired": self.paired}


@functools.cache
def _noise_table(path: str) -> dict:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"seed-noise table {p} is missing: run benchmarks/seed_noise.py --out {p}")
    return json.loads(p.read_text())


def table_flips(key: str) -> Flips:
    """The fallback where a census has no second seed: the shipped table's flips of class ``key``
    (``NOISE_KEYS``) from the source with the largest rate (no model family gets a friendlier one)."""
    if key not in NOISE_KEYS:
        raise ValueError(f"no seed noise for {key!r}: use one of {', '.join(NOISE_KEYS)}")
    sources = _noise_table(str(NOISE_FILE))["sources"]
    name = max(sources, key=lambda s: sources[s]["pooled"][key]["flips"] / sources[s]["pooled"]["n"])
    pooled = sources[name]["pooled"]
    return Flips(int(pooled[key]["flips"]), int(pooled["n"]), f"fallback: shipped table ({name})")


def census_class(cls, values, pairs, key: str, census: bool) -> tuple[float, Flips | None]:
    """A class's count over a block and the noise to judge it with. ``cls`` maps values to a
    mask; ``values`` are the block's kept channels'; ``pairs`` = (values under the run's seed,
    values under the second seed) of the paired channels valid under both, or None. A sample: the
    count, no noise. A census with pairs: each paired channel counts as the mean of its two seeds
    (half the variance), and the pairs' flips are the noise; without: the count and the shipped
    table's flips of ``key`` (``table_flips``)."""
    k = int(np.asarray(cls(values), bool).sum())
    if not census:
        return k, None
    if pairs is None:
        return k, table_flips(key)
    a, b = np.asarray(cls(pairs[0]), bool), np.asarray(cls(pairs[1]), bool)
    return k + (int(b.sum()) - int(a.sum())) / 2, Flips(int((a != b).sum()), len(a), IN_RUN, len(a))


def census_sd(n: int, flips: Flips, at: float | None = None) -> float:
    """Seed-to-seed standard deviation of a census share of ``n`` channels: sqrt(F / (2 n)) with F
    the flip rate's upper bound; tested against a threshold ``at``, also at most sqrt(at (1 - at) / n),
    the largest a share whose expectation is ``at`` can have (sum q_c (1 - q_c) <= n mu (1 - mu)).
    The ``flips.paired`` channels counted as the mean of two seeds contribute half their variance."""
    var = flips.upper / (2 * n)
    if at is not None:
        var = min(var, at * (1 - at) / n)
    return float(np.sqrt(var * (1 - min(flips.paired, n) / (2 * n))))


def _side(lo: float, hi: float, threshold: float, direction: str) -> str:
    if direction == "greater":
        return "holds" if lo > threshold else "fails" if hi < threshold else "inconclusive"
    return "holds" if hi < threshold else "fails" if lo > threshold else "inconclusive"


def share_test(k: int, n: int, threshold: float, *, census: bool, flips: Flips | None = None,
               direction: str = "greater", unknown: tuple = (0, 0)) -> dict:
    """Is the share k/n above (``direction`` "greater") or below ("less") ``threshold``? One-sided
    95% bounds: on a census share -/+ Z ``census_sd`` (``flips`` required), on a sample exact
    Clopper-Pearson. No channel: inconclusive. Returns the verdict and the numbers behind it. (The
    census sd is taken at the threshold, ``census_sd``: the bounds test the share against it.)
    ``unknown`` = (in, out): channels whose class is not known (FZs that never moved: their M is 0
    or 5 by default, not by measurement), counted in the class and out of it: the lower bound
    drops by in / n, the upper rises by out / n, so they can only make a part inconclusive."""
    if direction not in ("greater", "less"):
        raise ValueError(f"direction must be 'greater' or 'less', got {direction!r}")
    out = {"k": k, "n": int(n), "share": k / n if n else float("nan"), "threshold": threshold,
           "model": "census" if census else "sample"}
    if census:
        if flips is None:
            raise ValueError("a census share needs its seed-to-seed flips (Flips)")
        out["noise"] = flips.to_json()
    if n == 0:
        return {**out, "verdict": "inconclusive"}
    if census:
        sd = census_sd(n, flips, threshold)
        lo, hi = k / n - Z * sd, k / n + Z * sd
        out["sd"] = sd
    else:
        lo, hi = exact_bounds(k, n)
    if any(unknown):
        lo, hi = lo - min(unknown[0], n) / n, hi + min(unknown[1], n) / n
        out["unknown"] = [int(u) for u in unknown]
    return {**out, "lower95": lo, "upper95": hi, "verdict": _side(lo, hi, threshold, direction)}


def all_test(k: int, n: int, tolerance: float = ALL_TOLERANCE, **kw) -> dict:
    """"All n channels" (k meet the condition): the share is at least 1 - ``tolerance``."""
    return {**share_test(k, n, 1 - tolerance, **kw), "tolerance": tolerance}


def none_test(k: int, n: int, tolerance: float = NONE_TOLERANCE, **kw) -> dict:
    """"No channel" (k of n meet the condition): the share is below ``tolerance``."""
    return {**share_test(k, n, tolerance, direction="less", **kw), "tolerance": tolerance}


def count_test(k: int, n: int, at_least: int, *, census: bool, flips: Flips | None = None,
               population: int | None = None) -> dict:
    """"At least ``at_least`` channels" in a block (k of the n studied meet the condition). Census:
    k -/+ Z n ``census_sd``: the lower bound at least ``at_least`` holds, the upper below it fails.
    Sample: k >= at_least holds (the sampled ones are channels of the block); the upper bound of
    the share times the block's ``population`` below at_least fails; else inconclusive."""
    out = {"k": k, "n": int(n), "at_least": int(at_least), "model": "census" if census else "sample"}
    if census:
        if flips is None:
            raise ValueError("a census count needs its seed-to-seed flips (Flips)")
        sd = n * census_sd(n, flips, min(1.0, at_least / n)) if n else float("inf")
        lo, hi = k - Z * sd, k + Z * sd
        v = "holds" if lo >= at_least else "fails" if hi < at_least else "inconclusive"
        return {**out, "noise": flips.to_json(), "sd": sd, "lower95": lo, "upper95": hi, "verdict": v}
    if k >= at_least:
        return {**out, "verdict": "holds"}
    hi = exact_bounds(k, n)[1] * (population or n) if n else float("inf")
    return {**out, "upper95": hi, "verdict": "fails" if hi < at_least else "inconclusive"}


def joint_count_test(tests: dict) -> dict:
    """"At least a_b channels in every block b" as one part, from each block's ``count_test``: every
    block holds -> holds; any block fails, or on a census the total's upper bound (sum k_b + Z
    sqrt(sum sd_b^2)) below sum a_b -> fails (some block must then miss); else inconclusive. The
    total can refute what no single block can (a census cannot show fewer than 1 expected channel)."""
    vs = [t["verdict"] for t in tests.values()]
    out = {"blocks": tests}
    total_fails = False
    if tests and all(t["model"] == "census" for t in tests.values()):
        k, a = sum(t["k"] for t in tests.values()), sum(t["at_least"] for t in tests.values())
        hi = k + Z * float(np.sqrt(sum(t["sd"] ** 2 for t in tests.values())))
        out.update(k=k, at_least=a, upper95=hi)
        total_fails = hi < a
    v = "fails" if "fails" in vs or total_fails else "holds" if vs and all(x == "holds" for x in vs) else \
        "inconclusive"
    return {**out, "verdict": v}


def compare_shares(k1: int, n1: int, k2: int, n2: int, *, census: bool, flips1: Flips | None = None,
                   flips2: Flips | None = None, unknown: tuple = ((0, 0), (0, 0))) -> dict:
    """Is share 1 below share 2? Census: the difference share 2 - share 1 -/+ Z sqrt(sd1^2 + sd2^2)
    (the blocks' FZs are independent): above 0 holds, below 0 fails. Sample: exact bounds (share
    1's upper below share 2's lower holds; its lower above share 2's upper fails). ``unknown``:
    per side, (in, out) channels whose class is not known (``share_test``), widening the bounds."""
    s1, s2 = (k1 / n1 if n1 else float("nan")), (k2 / n2 if n2 else float("nan"))
    out = {"share": s1, "other": s2, "model": "census" if census else "sample"}
    if census:
        if flips1 is None or flips2 is None:
            raise ValueError("a census difference needs both blocks' seed-to-seed flips (Flips)")
        out["noise"] = [flips1.to_json(), flips2.to_json()]
    if not n1 or not n2:
        return {**out, "verdict": "inconclusive"}
    (in1, out1), (in2, out2) = unknown
    if census:
        sd = float(np.hypot(census_sd(n1, flips1), census_sd(n2, flips2)))
        d = s2 - s1
        lo, hi = d - Z * sd - out1 / n1 - in2 / n2, d + Z * sd + in1 / n1 + out2 / n2
        return {**out, "lower95": lo, "upper95": hi, "verdict": _side(lo, hi, 0.0, "greater")}
    (lo1, hi1), (lo2, hi2) = exact_bounds(k1, n1), exact_bounds(k2, n2)
    lo1, hi1, lo2, hi2 = lo1 - in1 / n1, hi1 + out1 / n1, lo2 - in2 / n2, hi2 + out2 / n2
    return {**out, "verdict": "holds" if hi1 < lo2 else "fails" if lo1 > hi2 else "inconclusive"}


def significant_test(effect: float, p: float, want: str, alpha: float = ALPHA) -> str:
    """A sample's claimed significant effect of sign ``want`` ("negative"/"positive"): significant
    in that sign holds, in the other fails, not significant is inconclusive (too few channels);
    NaN is inconclusive. Every block of a claim must hold (an intersection-union test: no
    correction across blocks)."""
    if effect != effect or p != p:
        return "inconclusive"
    if p < alpha:
        return "holds" if (effect < 0) == (want == "negative") else "fails"
    return "inconclusive"


def sign_test(lo: float, hi: float, want: str) -> str:
    """A census effect's one-sided 95% bounds (its seed noise in them) against a claimed sign
    ``want``: the whole interval on that side holds, on the other side fails (the claimed effect
    excluded), else inconclusive; NaN is inconclusive."""
    if lo != lo or hi != hi:
        return "inconclusive"
    if want == "negative":
        return "holds" if hi < 0 else "fails" if lo > 0 else "inconclusive"
    return "holds" if lo > 0 else "fails" if hi < 0 else "inconclusive"


def welch_bounds(over, skip, alpha: float = ALPHA, extra_var: float = 0.0) -> tuple[float, float, float]:
    """(difference, lower, upper): overwrite mean - skip mean with one-sided (1 - alpha) Welch
    bounds, ``extra_var`` (the difference's seed-to-seed variance) added to its variance (NaN
    with fewer than 2 channels in a group)."""
    over, skip = np.asarray(over, dtype=float), np.asarray(skip, dtype=float)
    if len(over) < 2 or len(skip) < 2:
        return float("nan"), float("nan"), float("nan")
    diff = float(over.mean() - skip.mean())
    v1, v2 = over.var(ddof=1) / len(over), skip.var(ddof=1) / len(skip)
    se = float(np.sqrt(v1 + v2 + extra_var))
    if v1 + v2 == 0:
        return diff, diff - Z * se, diff + Z * se
    df = (v1 + v2) ** 2 / (v1 ** 2 / (len(over) - 1) + v2 ** 2 / (len(skip) - 1))
    t = float(_stats.t.ppf(1 - alpha, df))
    return diff, diff - t * se, diff + t * se


def absent_test(over, skip, margin: float, alpha: float = ALPHA) -> dict:
    """A claimed ABSENCE of "the overwrite mean is lower than the skip mean" (values in the
    claim's own unit), read as an equivalence: the one-sided 95% Welch lower bound of the
    difference above -``margin`` holds (the test could see an effect of that size, and it is not
    there); the upper bound below -``margin`` fails (an effect of at least that size shown);
    otherwise inconclusive. A significant OPPOSITE effect is not the claimed one. Too few
    channels in a group: inconclusive."""
    over, skip = np.asarray(over, dtype=float), np.asarray(skip, dtype=float)
    f, p = metrics.anova_two_groups(over, skip)
    out = {"p": p, "margin": margin}
    diff, lower, upper = welch_bounds(over, skip, alpha)
    if diff != diff:
        return {**out, "verdict": "inconclusive"}
    v = "fails" if upper < -margin else "holds" if lower > -margin else "inconclusive"
    return {**out, "effect": diff, "lower95": lower, "upper95": upper, "verdict": v}


def combine(verdicts) -> str:
    """Blocks or parts of one claim: any error -> error; any fails -> fails; all hold -> holds;
    otherwise inconclusive."""
    vs = list(verdicts.values() if isinstance(verdicts, dict) else verdicts)
    if "error" in vs:
        return "error"
    if "fails" in vs:
        return "fails"
    return "holds" if vs and all(v == "holds" for v in vs) else "inconclusive"
