"""``rsi validate --regression``: the paired regression check (``rsi_core.verdicts.regression``)
measured on the weight updates CI sees, through the real pipeline (FZ bank, re-measure, metrics,
every claim function with its ``@reads`` quantities), and its operating characteristic at the
``ci`` profile's sizes from what was measured.

Updates of resnet18 at random init (``random:0``), each studied at the same FZ seed as the blessed
run unless said (``UPDATES``; ``rsi_core.planted.updates``): the same weights; a new classifier
head (a 10-class fine-tune loaded from a ``model_state_dict`` checkpoint); the backbone trained on
(continued training); the same weights under another FZ seed (the worst case of noise). Each
update's F_pair is the share of channel-class pairs that differ between the blessed and the new
run (every class part of every claim, each block and class once).

Planted changes of known size (``PLANTED``): fig5's narrow scale network with ``WIDTH4`` - 1
channels in stage 4 (and the carrier: ``WIDTH4``, the ci profile's sample of 4.1 plus one), whose
4.1 branch is 16x their input (M about 0.03: the lowest bin, as in ``final-block-holds``); 9 or 15
of them at 0.5x (M about 0.5: out of the lowest bin) move fig2-final-block's 4.1 lowest-bin share
by 15 or 25 points, and nothing else any claim reads. Expected: fig2-final-block "changed",
every other claim "unchanged". (McNemar's exact test needs at least 6 discordant channels to
reach p < 0.05 at all: a 15-point move is invisible in a block of fewer than 40 channels.)

The measurement is reduced (``MEASURE``: few channels per block; the cores are shared); the
per-channel rate F_pair does not depend on the sample's size, so ``simulate`` carries it to the
``ci`` sizes: per claim its deciding class parts at ci's channels per block; the continuous parts
(no FZ) are read on each block's census and sampled at ci's sizes (``continuous_at``). Power (a
class part moved) is given at continued training's and at another FZ seed's rates, with the
channels per part it would take (``channels_needed``) and what a ci check of that size costs.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from rsi_core.measure.profiles import Profile, get_profile
from rsi_core.measure.study import Study
from rsi_core.model.anatomy import block_roles, find_block, provenance_of
from rsi_core.model.load import load_model
from rsi_core.planted import resnet as PR
from rsi_core.planted import updates as U
from rsi_core.planted.validate_claims import census_profile
from rsi_core.verdicts import regression
from rsi_core.verdicts.verdict import ALPHA

#: the reduced measurement of the resnet18 updates (2 CPU cores shared by six sessions): 8 evenly spaced
#: channels per block at 32 FZ steps (ci renders 64: benchmarks/f_pair_ci.py measured the rates there, about the same)
MEASURE = Profile("regression-measure", 32, 8, False, 250, strict_section=False)
PLANTED_STEPS = 16
CONTINUED, NOISE = "continued training", "other FZ seed"
NULL = ("same weights, same seed", "new classifier head", CONTINUED, NOISE)
SHIFTS = (5, 10, 15, 20, 25, 30)   # points, for the power curve

MOVED_41 = PR.Chan(1, 0, 0.5, -0.5)  # 4.1: M about 0.5 (out of the lowest bin), 4.0 as ``PR.LOWEST41``
_LISTS = {"fig6": {"1.1": [1, 2, 3]}, "fig7": PR._FIG5_LISTS["fig7"], "fig8": {"1.1": [1, 2, 3]}}
WIDTH4 = 60


def planted_case(moved: int, width: int = WIDTH4) -> PR.Case:
    """fig5's narrow scale network with ``width`` - 1 channels in stage 4 and ``moved`` of them out of 4.1's lowest bin."""
    return PR.Case(f"regression-{moved}-of-{width}", "all", "n/a",
                   {**{s: PR._FIG5_STAGES[s] for s in (1, 2, 3)}, 4: [MOVED_41] * moved + [PR.LOWEST41] * (width - 1 - moved)},
                   carrier41=64, lists=_LISTS, why=f"{moved} of 4.1's {width} channels out of the lowest bin")


PLANTED = {15: planted_case(9), 25: planted_case(15)}   # points: 9 and 15 of 60
PLANTED_CLAIM = "fig2-final-block"


def evaluate(study, fns: dict) -> dict:
    """{claim id: entry} with verdict, value and the paired values of every claim function."""
    out = {}
    for cid, fn in sorted(fns.items()):
        try:
            v = fn(study)
        except Exception as exc:  # an error is n/a for the paired check, and said
            out[cid] = {"verdict": "error", "value": None, "reason": f"{type(exc).__name__}: {exc}"}
            continue
        blocks = list(dict.fromkeys(b for role in v.blocks.values() for b in role))
        paired = regression.record(study, blocks, getattr(fn, "paired", ()), v.measured.get("found")) \
            if v.verdict != "n/a" and not v.reason.startswith("n/a") else None
        out[cid] = {"verdict": v.verdict, "value": v.value, "reason": v.reason, "paired": paired}
    return out


def summary(name: str, base: dict, entries: dict, expect_changed: tuple = ()) -> dict:
    """One update against the blessed run: per claim the paired verdict, F_pair and the net share
    move (pooled over the class parts, each block and class once), the shares decided, and whether
    it is as expected."""
    got = {cid: regression.compare(base[cid], entries[cid]) for cid in base}
    pairs = {}
    for g in got.values():
        for part, p in g["parts"].items():
            if p["kind"] == "class":
                pairs[part] = (p["discordant"], p["n"], p["gained"], p["lost"])
    by_class = {}
    for part, counts in pairs.items():
        q = part.split(" ", 1)[1]
        by_class[q] = [a + b for a, b in zip(by_class.get(q, (0, 0, 0, 0)), counts)]
    d = sum(counts[0] for counts in pairs.values())   # discordant pairs
    n = sum(counts[1] for counts in pairs.values())   # pairs
    compared = {c: g["verdict"] for c, g in got.items() if g["verdict"] != "n/a"}
    count = {v: sum(x == v for x in compared.values()) for v in ("changed", "unchanged", "inconclusive")}
    want = {c: "changed" if c in expect_changed else "unchanged" for c in compared}
    return {"name": name, "f_pair": d / n if n else None, "pairs": n, "discordant": d,
            "f_pair_by_class": {q: round(a / b, 4) for q, (a, b, _, _) in sorted(by_class.items()) if b},
            # the net move of each class's share (gained - lost) / n: symmetric churn leaves it near 0
            "shift_by_class": {q: round((g - lo) / b, 4) for q, (_, b, g, lo) in sorted(by_class.items()) if b},
            "verdicts": count, "compared": len(compared),
            "decided": (count["changed"] + count["unchanged"]) / len(compared) if compared else None,
            "unchanged": count["unchanged"] / len(compared) if compared else None,
            "as_expected": compared == want, "mismatches": {c: v for c, v in compared.items() if want[c] != v},
            "claims": {c: {"verdict": g["verdict"], "changed_parts": regression.changed_parts(g),
                           "old": g["old"], "new": g["new"]} for c, g in got.items()},
            "_parts": {c: g["parts"] for c, g in got.items() if g["verdict"] != "n/a"}}


def claim_parts(parts: dict) -> dict:
    """{claim: {"class": [(block, class)], "continuous": [(block, quantity)]}}: its deciding parts."""
    out = {}
    for cid, ps in parts.items():
        out[cid] = {"class": [], "continuous": []}
        for name, p in ps.items():
            if p.get("decides", True):
                out[cid][p["kind"]].append(tuple(name.split(" ", 1)))
    return out


def sizes_at(parts: dict, model, profile: Profile) -> dict:
    """{claim: [channels of each deciding class part]} at ``profile``'s sample (a census: the block's)."""
    return {cid: [profile.sample_size(b) or find_block(model, b).channels for b, _ in p["class"]]
            for cid, p in parts.items()}


def continuous_verdicts(parts: dict) -> dict:
    """{claim: verdict of its deciding continuous parts (weights, natural images: no FZ noise)} as
    measured; at the measurement's few channels Wilcoxon decides less often than at ci's, so
    carrying these to ci's sizes can only understate the decided share."""
    out = {}
    for cid, ps in parts.items():
        vs = [p["verdict"] for p in ps.values() if p["kind"] == "continuous" and p.get("decides")]
        out[cid] = "changed" if "changed" in vs else "unchanged" if all(v == "unchanged" for v in vs) else "inconclusive"
    return out


def continuous_at(parts: dict, blessed, models: dict, cache, profile: Profile, draws: int = 200) -> dict:
    """{update: {claim: shares of its deciding continuous parts' verdict}} at ``profile``'s channels
    per block (``models``: {update: model}): the weights and natural images need no FZ, so each
    block's census is read (cheap) and ``regression.simulate_continuous`` samples ``profile``'s
    number of its channels ``draws`` times: the OC at ci's sizes on the update's own values."""
    census = replace(profile, channels_per_block=None, per_block=())

    def reader(model):
        s = Study(model, census, cache, progress=False)
        return lambda b, q: np.asarray(regression.QUANTITIES[q][1](s, b, SimpleNamespace(channels=np.asarray(s.channels(b)))),
                                       float)
    old = reader(blessed)
    out = {}
    for name, model in models.items():
        new = reader(model)
        out[name] = {}
        for cid, p in parts.items():
            blocks = {}
            for b, q in p["continuous"]:
                blocks.setdefault(b, (profile.sample_size(b) or find_block(blessed, b).channels, []))[1].append(
                    (old(b, q), new(b, q), regression.SCALE.get(q)))
            each = ALPHA / (len(p["class"]) + len(p["continuous"]))
            out[name][cid] = regression.simulate_continuous(blocks, draws, alpha=each) if blocks \
                else {"changed": 0.0, "unchanged": 1.0, "inconclusive": 0.0}
    return out


def part_rates(parts: dict, update: dict) -> dict:
    """{claim: F_pair of each deciding class part}: the update's rate of that class (pooled over
    its blocks), the update's pooled rate where the class was never compared."""
    by = update["f_pair_by_class"]
    return {cid: [by.get(q, update["f_pair"]) for _, q in p["class"]] for cid, p in parts.items()}


def oc(sizes: dict, fixed: dict | None, f, shift: float = 0.0, draws: int = 2000) -> dict:
    """The claims' simulated verdict shares (mean over claims) at pair discordance ``f`` (a number,
    or {claim: one per part}) and ``shift`` (of the first part); ``fixed``: each claim's continuous
    parts' verdict, or its shares ({"changed", "unchanged"}: ``continuous_at``), taken as independent
    of the class parts; None: the class parts alone, over the claims that have one (power: what a
    move of a class part is caught by, not what else the update changed)."""
    out = {"changed": [], "unchanged": []}
    for cid, s in sizes.items():
        if fixed is None and not s:
            continue
        rate = f[cid] if isinstance(f, dict) else f
        sim = regression.simulate(s, rate, shift, draws) if s else {"changed": 0.0, "unchanged": 1.0}
        c = fixed[cid] if fixed is not None else "unchanged"
        c = {"changed": float(c == "changed"), "unchanged": float(c == "unchanged")} if isinstance(c, str) else c
        out["changed"].append(1 - (1 - c["changed"]) * (1 - sim["changed"]))
        out["unchanged"].append(c["unchanged"] * sim["unchanged"])
    return {k: float(np.mean(v)) for k, v in out.items()}


#: core-seconds of one FZ at ci's 64 steps: ci's cold run rendered 598 FZs in 12 min 30 s on an idle
#: 2-core machine (docs/ci.md); a studied channel costs 2 FZs (taps I and B)
FZ_CORE_SECONDS = 2.5
#: the issue's targets (also benchmarks/power.py's): power at SHIFT_TARGET points, claim comparisons decided
POWER, DECIDED, SHIFT_TARGET = 0.8, 0.9, 15


def channels_needed(rates: dict, shift: float, target: float, key: str, draws: int = 1000,
                    n_max: int = 4096) -> int | None:
    """Fewest channels n, the same in every class part (``rates``: {claim: F of each}), at which
    the parts' mean ``key`` share (``oc`` with ``fixed`` None) at ``shift`` reaches ``target``;
    None beyond ``n_max``. Doubling, then bisection (the share grows with n)."""
    def ok(n):
        return oc({c: [n] * len(r) for c, r in rates.items()}, None, rates, shift, draws)[key] >= target
    lo, hi = 4, 8
    while not ok(hi):
        if hi >= n_max:
            return None
        lo, hi = hi, min(2 * hi, n_max)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    return hi


def check_cost(n: int, block_channels: dict) -> dict:
    """A ci check studying ``n`` channels of every block (a block's census where it has fewer):
    its channels, FZs and their CPU time (``FZ_CORE_SECONDS``)."""
    channels = sum(min(n, c) for c in block_channels.values())
    return {"channels": channels, "fzs": 2 * channels, "fz_core_minutes": round(2 * channels * FZ_CORE_SECONDS / 60, 1),
            "census_blocks": [b for b, c in block_channels.items() if c <= n]}


def _study(model, cache, profile, seed=0, device="cpu"):
    return Study(model, profile, cache, device=device, progress=False, fz_seed=seed,
                 lists=provenance_of(model).lists)


def planted_pairs(cache, fns: dict, steps: int, draws: int = 1, device="cpu", cases: dict | None = None,
                  say=lambda s: None) -> list[dict]:
    """The planted network (``planted_case(0)`` of the cases' width) against its moved copies
    (``cases``: {points: case}, default ``PLANTED``) and ``draws`` FZ-seed copies of itself."""
    cases = cases or PLANTED
    census = replace(census_profile(steps), second_seed=False)
    base_case = planted_case(0, len(next(iter(cases.values())).stages[4]) + 1)
    base = evaluate(_study(PR.build(base_case), cache, census, 0, device), fns)
    out = [summary(f"planted {pts} points", base, evaluate(_study(PR.build(case), cache, census, 0, device), fns),
                   (PLANTED_CLAIM,)) for pts, case in cases.items()]
    out += [summary(f"planted network, FZ seed {k}", base, evaluate(_study(PR.build(base_case), cache, census, k, device),
                                                                    fns)) for k in range(1, draws + 1)]
    for s in out:
        say(f"{s['name']}: F_pair {s['f_pair']}, {s['verdicts']}, as expected {s['as_expected']}")
    return out


def run(cache, fns: dict, draws: int = 1, steps: int | None = None, device="cpu", progress: bool = True,
        measure: Profile = MEASURE, ci: str = "ci") -> dict:
    """Every update against its blessed run, measured; the OC at ``ci``'s sizes from the F_pair measured."""
    steps = steps or PLANTED_STEPS
    t = time.time()
    say = (lambda s: print(f"{s} ({time.time() - t:.0f} s)", file=sys.stderr, flush=True)) if progress \
        else (lambda s: None)  # noqa: E731
    r18 = load_model("resnet18", "random:0")
    blessed = evaluate(_study(r18, cache, measure, 0, device), fns)
    with tempfile.TemporaryDirectory() as tmp:
        head = U.head_update(r18, cache, Path(tmp) / "fine-tune.pt")
    cont = U.continued(r18, cache)
    entries = {name: evaluate(_study(model, cache, measure, seed, device), fns)
               for name, model, seed in zip(NULL, (r18, head, cont, r18), (0, 0, 0, 1))}
    models = dict(zip(NULL, (r18, head, cont, r18)))
    parts = claim_parts(summary(CONTINUED, blessed, entries[CONTINUED])["_parts"])
    out = assemble(blessed, entries, planted_pairs(cache, fns, steps, draws, device, say=say), r18,
                   {NULL[1]: U.relative_change(r18, head), NULL[2]: U.relative_change(r18, cont)}, ci,
                   continuous_at(parts, r18, models, cache, get_profile(ci)))
    out["measured"]["sizes"] = {"resnet18": measure.definition(), "planted_census_steps": steps}
    return {**out, "seconds": round(time.time() - t, 1)}


def assemble(blessed: dict, entries: dict, planted: list[dict], r18, weight_change: dict, ci: str = "ci",
             continuous: dict | None = None) -> dict:
    """The report of ``run``: each null update (``entries``: {name: claim entries}) against the
    blessed run, the planted pairs, and the OC at ``ci``'s sizes from the F_pair measured;
    ``continuous``: the continuous parts' verdicts at ci's sizes (``continuous_at``), else as measured."""
    updates = [summary(name, blessed, e) for name, e in entries.items()] + planted
    by = {u["name"]: u for u in updates}
    parts = claim_parts(by[CONTINUED]["_parts"])
    nulls = [name for name in NULL if name in by]
    fixed = continuous or {name: continuous_verdicts(by[name]["_parts"]) for name in nulls}
    for u in updates:
        u.pop("_parts", None)
    sizes = sizes_at(parts, r18, get_profile(ci))
    rates = {name: part_rates(parts, by[name]) for name in nulls}
    sim = {name: oc(sizes, fixed[name], rates[name]) for name in nulls}
    null_updates = [u for u in updates if u["name"] in NULL or "FZ seed" in u["name"]]
    alarms = sum(u["verdicts"]["changed"] for u in null_updates)
    compared = sum(u["compared"] for u in null_updates)
    noisy = [name for name in (CONTINUED, NOISE) if name in rates]
    power = {name: {str(p): oc(sizes, None, rates[name], p / 100)["changed"] for p in SHIFTS} for name in noisy}
    block_channels = {b: find_block(r18, b).channels for b in block_roles(r18)["studied"]} if r18 is not None else {}
    classes = {name: {c: r for c, r in rates[name].items() if r} for name in noisy}
    census = {c: [block_channels.get(b, n) for (b, _), n in zip(parts[c]["class"], s)] for c, s in sizes.items() if s}

    def needed(name, shift, target, key):
        n = channels_needed(classes[name], shift, target, key)
        return {"channels_per_part": n, **(check_cost(n, block_channels) if n and block_channels else {})}
    need = {name: {f"power {POWER:g} at {SHIFT_TARGET} points": needed(name, SHIFT_TARGET / 100, POWER, "changed"),
                   f"unchanged {DECIDED:g} (class parts)": needed(name, 0.0, DECIDED, "unchanged")} for name in noisy}
    return {"f_pair": {u["name"]: u["f_pair"] for u in updates},
            "false_alarm_rate": max(s["changed"] for s in sim.values()),
            "false_alarms_by_update": {name: s["changed"] for name, s in sim.items()},
            "unchanged_decided": {name: s["unchanged"] for name, s in sim.items()},
            "power": power.get(CONTINUED, {}),
            "power_by_update": power,
            "channels_needed": need,
            "power_on_census": {name: oc(census, None, rates[name], SHIFT_TARGET / 100)["changed"] for name in noisy},
            "simulated_at": {"profile": ci, "claim_parts": parts, "claim_part_sizes": sizes, "part_rates": rates,
                             "continuous_parts": fixed},
            "measured": {"false_alarms": alarms, "compared": compared,
                         "false_alarm_rate": alarms / compared if compared else None,
                         "unchanged_decided": {u["name"]: u["unchanged"] for u in updates},
                         "as_expected": {u["name"]: u["as_expected"] for u in updates},
                         "relative_weight_change": weight_change},
            "updates": updates}


def main(args, claim_functions) -> int:
    """``rsi validate --regression``: per update F_pair and verdicts, and the OC at ci's sizes."""
    from rsi_core.cache import Cache
    out = run(Cache(getattr(args, "cache_dir", None)), claim_functions(), draws=args.draws or 1,
              device=getattr(args, "device", None) or "cpu")
    lines = [f"{u['name']}: F_pair {u['f_pair']:.3f} ({u['discordant']} of {u['pairs']}), claims {u['verdicts']}"
             f"{'' if u['as_expected'] else ' NOT AS EXPECTED ' + json.dumps(u['mismatches'])}" for u in out["updates"]]
    lines.append(f"at ci's sizes: false_alarm_rate {out['false_alarm_rate']:.3f}, unchanged_decided "
                 + ", ".join(f"{k} {v:.2f}" for k, v in out["unchanged_decided"].items())
                 + f"; {out['seconds']:.0f} s")
    for name, power in out["power_by_update"].items():
        need = out["channels_needed"][name]
        lines.append(f"power at {name}'s rates: " + ", ".join(f"{k} pts {v:.2f}" for k, v in power.items())
                     + "; channels per part for " + "; ".join(
                         f"{k}: {v['channels_per_part']} ({v.get('fzs')} FZs, {v.get('fz_core_minutes')} core-min)"
                         if v["channels_per_part"] else f"{k}: over 4096" for k, v in need.items())
                     + f"; power at {SHIFT_TARGET} points on every block's census {out['power_on_census'][name]:.2f}")
    print("\n".join(lines), file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(out))
    ok = (all(u["as_expected"] for u in out["updates"]) and out["false_alarm_rate"] <= 0.05
          and out["unchanged_decided"][CONTINUED] >= 0.9 and out["power"]["15"] >= 0.8)
    return 0 if ok else 1
