"""Power analysis behind the ``ci`` profile: per claim part, the channels per block a SAMPLE needs
for >= 80% power to reach the paper's verdict (holds) at the effect the paper reports, under the
rules the verdicts apply (``rsi_core.verdicts``: exact one-sided 95% Clopper-Pearson bounds of a
sampled share, Holm-corrected p-values), and the smallest profile that serves all claims.

The paper's text (``/work/shared/paper``) gives its effects in words and lists, its figures'
numbers (Figure 2's bars, Figure 3's rho, Figure 4's F, Figure 5's percentages) only as images.
So each effect is the paper's word read as a number (the table says which line), and where the
paper says "significant", the smallest effect its own census could have called significant (its
significance implies at least that). A claim part that needs more channels than the block has,
or more than ``BUDGET`` allows, is "census only": ``ci`` leaves it inconclusive and the paired
regression check (``rsi_core.verdicts.regression``) is what CI reads for it.

The paired regression check (``--baseline``) sets a floor under every block (``regression_floor``):
the fewest channels at which, on the continued-training update's measured pair discordance
F_pair (``benchmarks/regression_oc.json``, written by ``rsi validate --regression --json``), at
least ``DECIDED`` of the claim comparisons are decided, false alarms stay within ``ALPHA`` and a
15-point move of one block is flagged with power ``POWER`` (``rsi_core.planted.regression.oc``).
``--regression`` prints the rule's needs alone (``regression_table``): per pair discordance F and
channels n, one part's P(unchanged) on a null update and a three-part claim's power at 15 points.

    python benchmarks/power.py [--json | --regression]
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
from scipy import stats

from rsi_core.planted.regression import CONTINUED, DECIDED, oc
from rsi_core.planted.regression import SHIFT_TARGET as SHIFT

POWER = 0.80
ALPHA = 0.05
Z = stats.norm.ppf
BLOCKS = {"1.1": 64, "2.0": 128, "2.1": 128, "3.0": 256, "3.1": 256, "4.0": 512, "4.1": 512}
#: the channels per block the ci profile can afford: 15 minutes cold with -n 2 on a 2-core CPU (measured, docs/ci.md)
BUDGET = 64


def share_n(p: float, t: float, power: float, direction: str = "greater", n_max: int = 4096) -> int | None:
    """Fewest n whose exact one-sided 95% Clopper-Pearson bound clears ``t`` with probability
    ``power`` when the true share is ``p`` (the bound is monotone in k: one cut per n)."""
    for n in range(1, n_max + 1):
        k = np.arange(n + 1)
        if direction == "greater":   # lower bound of k/n above t
            lo = np.where(k > 0, stats.beta.ppf(ALPHA, k, n - k + 1), 0.0)
            ok = lo > t
        else:                        # upper bound below t
            hi = np.where(k < n, stats.beta.ppf(1 - ALPHA, k + 1, n - k), 1.0)
            ok = hi < t
        if stats.binom.pmf(k, n, p)[ok].sum() >= power:
            return n
    return None


def spearman_n(rho: float, alpha: float, power: float) -> int:
    """Fisher-z sample size for a one-sided test of rho at level alpha."""
    return math.ceil(((Z(1 - alpha) + Z(power)) / math.atanh(abs(rho))) ** 2 + 3)


def spearman_min(n: int, alpha: float) -> float:
    """The smallest |rho| a two-sided test at ``alpha`` calls significant with n channels."""
    return math.tanh(Z(1 - alpha / 2) / math.sqrt(n - 3))


def groups_n(d: float, alpha: float, power: float, share: float) -> int:
    """Total channels for a one-sided two-group test of a standardized difference d, a share
    ``share`` of them in the first group."""
    return math.ceil((Z(1 - alpha) + Z(power)) ** 2 / (d ** 2 * share * (1 - share)))


def groups_min(n: int, alpha: float, share: float) -> float:
    """The smallest standardized difference a two-sided test calls significant with n channels."""
    return Z(1 - alpha / 2) / math.sqrt(n * share * (1 - share))


def mann_whitney_n(auc: float, alpha: float, power: float, share: float) -> int:
    """Noether's total sample size for a one-sided Mann-Whitney test at P(X > Y) = auc."""
    return math.ceil((Z(1 - alpha) + Z(power)) ** 2 / (12 * share * (1 - share) * (auc - 0.5) ** 2))


def rows() -> list[dict]:
    """One row per claim part: effect, source, channels per block for 80% power."""
    out = []

    def add(claim, part, blocks, effect, source, n):
        out.append({"claim": claim, "part": part, "blocks": blocks, "effect": effect, "source": source,
                    "n": n, "census_only": n is None or any(n > min(BUDGET, BLOCKS[b]) for b in blocks)})

    # fig2-downsample-overwrite: 3 blocks must all hold
    per3 = POWER ** (1 / 3)
    add("fig2-downsample-overwrite", "share M < 1 > 1/2", ["2.0", "3.0", "4.0"], "share 0.75",
        "l.110 'All downsample blocks are dominated by overwrite channels': 0.75, half way from the threshold "
        "1/2 to all", share_n(0.75, 0.5, per3))
    # fig2-final-block: two parts
    per2 = POWER ** 0.5
    add("fig2-final-block", "at least 95% in [0, 0.25)", ["4.1"], "share 1.0",
        "l.110 'all of its channels in the lowest bin'", share_n(1.0, 0.95, per2))
    add("fig2-final-block", "more than 90% M > 0", ["4.1"], "share 0.99",
        "l.110 'nearly all of them are non-zero'", share_n(0.99, 0.9, per2))
    # fig2-simple-less-skewed: Mann-Whitney per simple block vs the pooled downsample blocks, Holm over 3
    mu = lambda p: -stats.norm.ppf(p)  # noqa: E731  M = exp(N(mu, 1)), P(M < 1) = p
    auc = float(stats.norm.cdf((mu(0.5) - mu(0.75)) / math.sqrt(2)))
    n_total = mann_whitney_n(auc, ALPHA / 3, per3, 0.25)  # a simple block beside 3 downsample blocks
    add("fig2-simple-less-skewed", "Mann-Whitney simple > downsample", ["1.1", "2.1", "3.1"],
        f"overwrite share 0.5 vs 0.75 (AUC {auc:.2f})",
        "l.110 'simple blocks exhibit less skewed distributions': half overwrite vs the 0.75 above", math.ceil(n_total / 4))
    # fig3: Spearman negative, Holm over 6 tests; the paper's census significance implies |rho| >= rho_min
    for b in ("1.1", "2.1", "3.1"):
        rho = spearman_min(BLOCKS[b], ALPHA)
        n = spearman_n(rho, ALPHA / 6, POWER ** (1 / 6))
        add("fig3-weight-magnitude", "Spearman(M, |w|) < 0", [b], f"rho -{rho:.2f}",
            f"l.114/l.116 'significantly smaller weight magnitudes' on the census of {BLOCKS[b]}: |rho| >= {rho:.2f}",
            n if n <= BLOCKS[b] else None)
    # fig4-inhibition: ANOVA (Holm over 2) and share of overwrite with B < 0 above 25%
    for b in ("2.1", "3.1"):
        d = groups_min(BLOCKS[b], ALPHA, 0.5)
        n = groups_n(d, ALPHA / 2, POWER ** 0.25, 0.5)
        add("fig4-inhibition", "ANOVA overwrite < skip", [b], f"d {d:.2f}",
            f"l.118 'significantly lower ... in blocks 2.1 and 3.1' on the census of {BLOCKS[b]}: d >= {d:.2f}",
            n if n <= BLOCKS[b] else None)
        n_over = share_n(0.5, 0.25, POWER ** 0.25)
        add("fig4-inhibition", "share B(X_I) < 0 among overwrite > 25%", [b], "share 0.5 of overwrite (half the block)",
            "l.118 'an abundance of such negative activations amongst overwrite channels': 0.5", 2 * n_over)
    # fig4-input-block-correlation: significant in 3.1, absent (bound above -0.2) in 1.1, 2.1
    d = groups_min(BLOCKS["3.1"], ALPHA, 0.5)
    n = groups_n(d, ALPHA, POWER ** (1 / 3), 0.5)
    add("fig4-input-block-correlation", "ANOVA overwrite < skip", ["3.1"], f"d {d:.2f}",
        "l.120 'This is the case for block 3.1' on its census of 256", n if n <= 256 else None)
    sd = 0.25  # spread of per-channel Spearman values (planning: correlations span about -0.5..0.5)
    n_abs = math.ceil(4 * ((Z(1 - ALPHA) + Z(POWER ** (1 / 3))) * sd / 0.2) ** 2)
    add("fig4-input-block-correlation", "absent: Welch bound > -0.2", ["1.1", "2.1"], "difference 0 (sd 0.25)",
        "l.120 'but not 1.1 nor 2.1': no difference", n_abs)
    # fig5: "many" >= 3, "zero", "a few", "appreciable"
    for b, listed in (("1.1", 1), ("2.0", 4), ("2.1", 9), ("3.1", 9)):
        p = max(3, listed) / BLOCKS[b]
        n = share_n(2 * p, 3 / BLOCKS[b], POWER ** (1 / 8))
        add("fig5-scale-counts", "at least 3 (and the Figure 7 count)", [b], f"share {2 * p:.3f}",
            f"l.130 'many channels fulfill the criteria', l.195 Figure 7 lists {listed}: twice max(3, {listed}) "
            f"of {BLOCKS[b]}", n if n <= BLOCKS[b] else None)
    for b in ("3.0", "4.0", "4.1"):
        add("fig5-scale-counts", "zero: under 5%", [b], "share 0", "l.130 'Zero scale invariant channels'",
            share_n(0.0, 0.05, POWER ** (1 / 8), "less"))
    # lists (Figures 6-8): a listed channel can only be recovered if sampled; hypergeometric p < 0.05
    for claim, fig in (("fig6-top-scale", "l.136 / Figure 6"), ("fig7-robust", "l.195 / Figure 7"),
                       ("fig8-top-mixes", "l.199 / Figure 8")):
        add(claim, "overlap with the paper's list", list(BLOCKS), "the listed channels", fig + ": named channels; "
            "an evenly spaced sample holds a listed channel by chance only", None)
    return out


def served(table: list[dict]) -> list[str]:
    """Claims whose every part a sample within ``BUDGET`` serves."""
    return sorted({r["claim"] for r in table} - {r["claim"] for r in table if r["census_only"]})


def verdict_needs(table: list[dict]) -> dict:
    """Per block: the largest n any part of a served claim needs to reach its verdict."""
    need = {b: 0 for b in BLOCKS}
    ok = served(table)
    for r in table:
        if r["claim"] in ok:
            for b in r["blocks"]:
                need[b] = max(need[b], r["n"])
    return need


#: what ``rsi validate --regression --json`` measured (docs/ci.md says how)
MEASURED = Path(__file__).with_name("regression_oc.json")


def _at(floor: int, need: dict) -> dict:
    return {b: min(BLOCKS[b], max(need[b], floor)) for b in BLOCKS}


def regression_check(floor: int, need: dict, measured: dict) -> dict:
    """The paired check on continued training at channels ``_at(floor, need)``: decided share,
    false alarms, power at ``SHIFT`` points (mean over claims; ``rsi_core.planted.regression.oc``)."""
    sim = measured["simulated_at"]
    n = _at(floor, need)
    sizes = {c: [n[b] for b, _ in p["class"]] for c, p in sim["claim_parts"].items()}
    fixed, rates = sim["continuous_parts"][CONTINUED], sim["part_rates"][CONTINUED]
    null, moved = oc(sizes, fixed, rates), oc(sizes, None, rates, SHIFT / 100)
    return {"decided": null["changed"] + null["unchanged"], "false_alarms": null["changed"], "power": moved["changed"]}


def regression_floor(need: dict, measured: dict) -> int | None:
    """The fewest channels per block (a floor under the verdicts' needs) at which the paired check
    meets ``DECIDED``, ``ALPHA`` and ``POWER`` on the measured continued-training update; None
    where not even every block's census does (then ``ci`` stays at the verdicts' needs)."""
    for floor in range(0, max(BLOCKS.values()) + 1, 8):
        got = regression_check(floor, need, measured)
        if got["decided"] >= DECIDED and got["false_alarms"] <= ALPHA and got["power"] >= POWER:
            return floor
    return None


def regression_table(fs=(0.3, 0.2, 0.13, 0.1, 0.05, 0.02, 0.0), ns=(37, 43, 59, 64, 96, 128, 192, 256, 512),
                     draws: int = 4000) -> dict:
    """{F: {n: (one part's P(unchanged) at no move, a 3-part claim's P(changed) at a SHIFT-point move
    of one part)}} under the paired rule (``rsi_core.verdicts.regression.simulate``): what n a
    part needs at the F_pair an update shows."""
    from rsi_core.verdicts.regression import simulate
    return {f: {n: (simulate([n], f, 0.0, draws)["unchanged"], simulate([n] * 3, f, SHIFT / 100, draws)["changed"])
                for n in ns} for f in fs}


def profile(table: list[dict], measured: dict | None = None) -> dict:
    """Per block the ``ci`` profile's sizes: the verdicts' needs, raised to the paired check's floor."""
    need = verdict_needs(table)
    floor = regression_floor(need, measured or json.loads(MEASURED.read_text()))
    return need if floor is None else _at(floor, need)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--regression", action="store_true", help="the paired rule's needs by F_pair and channels")
    args = ap.parse_args()
    if args.regression:
        got = regression_table()
        ns = list(next(iter(got.values())))
        print("| F_pair | " + " | ".join(f"n = {n}" for n in ns) + " |")
        print("|---|" + "---|" * len(ns))
        for f, row in got.items():
            print(f"| {f} | " + " | ".join(f"{u:.2f} / {p:.2f}" for u, p in row.values()) + " |")
        return
    table = rows()
    need = profile(table)
    if args.json:
        print(json.dumps({"rows": table, "profile": need, "served": served(table), "budget": BUDGET}))
        return
    print("| claim | part | blocks | effect | channels for 80% power | source |")
    print("|---|---|---|---|---|---|")
    for r in table:
        n = "census only" if r["census_only"] else r["n"]
        if r["census_only"] and r["n"] is not None:
            n = f"{r['n']} (census only)"
        print(f"| {r['claim']} | {r['part']} | {', '.join(r['blocks'])} | {r['effect']} | {n} | {r['source']} |")
    print()
    print("claims a sample of at most", BUDGET, "per block serves:", ", ".join(served(table)) or "none")
    print("channels per block they need:", ", ".join(f"{b}: {n}" for b, n in verdict_needs(table).items()))
    print("the ci profile (raised to the paired regression check's floor):", ", ".join(f"{b}: {n}" for b, n in need.items()))


if __name__ == "__main__":
    main()
