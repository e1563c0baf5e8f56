"""``rsi validate --regression``: the paired regression check (``rsi_core.verdicts.regression``)
proven on planted pairs, through the real pipeline (FZ bank, re-measure, metrics, every claim
function with its ``@reads`` quantities) on a census of few steps (``validate_claims.census_profile``).

* ``BASE``: the narrow scale network of the fig5 cases in stages 1-3, and 16 channels in stage 4
  whose 4.1 branch is 16x their input with a small negative centre term (4.1's M about 0.03: the
  lowest bin, as in ``final-block-holds``); the carrier's 4.1 branch 64x.
* ``MOVED``: the same with 8 of the 16 stage-4 channels' 4.1 branch at 0.5x (M about 0.5: out of
  the lowest bin, still overwrite, no scale criterion): fig2-final-block's lowest-bin share of 4.1
  moves by 8 of its 17 channels, and nothing else any claim reads moves (4.0's branch, the
  earlier stages and the lists' block 1.1 are untouched). Expected: fig2-final-block "changed",
  every other claim "unchanged".
* False alarms: the base network under FZ seeds 1..K against seed 0 (each a run whose only
  difference is the seed), and a copy whose every weight is jittered by 1e-3 relative (a
  perturbation below seed noise). No claim may come out "changed": the measured false-alarm rate
  is changed claims over compared ones.

The studies render no second FZ seed (half the FZs): the seed-flip rate is the shipped table's
(``verdict.table_flips``, random:0 at 32 steps), higher than a planted network's own, so the
check is, if anything, slower to say "changed" here than on a census with its own second seed.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import replace

import torch

from rsi_core.measure.study import Study
from rsi_core.model.anatomy import amend, provenance_of
from rsi_core.model.load import weights_identity
from rsi_core.planted import resnet as PR
from rsi_core.planted.validate_claims import census_profile
from rsi_core.verdicts import regression

FINAL = PR.Chan(1, 0, 16, -0.5)     # 4.1: M about 0.03 (lowest bin), 4.0: skip
MOVED_41 = PR.Chan(1, 0, 0.5, -0.5)  # 4.1: M about 0.5 (out of the lowest bin), 4.0 as FINAL
_LISTS = {"fig6": {"1.1": [1, 2, 3]}, "fig7": PR._FIG5_LISTS["fig7"], "fig8": {"1.1": [1, 2, 3]}}
BASE = PR.Case("regression-base", "all", "n/a", {**{s: PR._FIG5_STAGES[s] for s in (1, 2, 3)}, 4: [FINAL] * 16},
               carrier41=64, lists=_LISTS, why="fig5's narrow scale network, 4.1 in the lowest bin")
MOVED = replace(BASE, name="regression-moved", stages={**BASE.stages, 4: [MOVED_41] * 8 + [FINAL] * 8},
                why="8 of 4.1's 16 planted channels out of the lowest bin")
PLANTED_CLAIM = "fig2-final-block"
JITTER = 1e-3


def jittered(model, scale: float = JITTER, seed: int = 0):
    """``model`` with every weight times (1 + scale N(0, 1)): another weights identity, values
    moved far less than an FZ seed moves them."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1 + scale * torch.randn(p.shape, generator=g))
    amend(model, weights=f"{provenance_of(model).weights}+jitter{scale:g}", weights_id=weights_identity(model))
    return model


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


def _study(model, cache, steps, seed=0, device="cpu"):
    return Study(model, replace(census_profile(steps), second_seed=False), cache, device=device, progress=False, fz_seed=seed,
                 lists=provenance_of(model).lists)


def run(cache, fns: dict, draws: int = 5, steps: int | None = None, device="cpu", progress: bool = True) -> dict:
    """The planted pair, ``draws`` seed-only copies and the jittered copy against the base at seed 0."""
    steps = steps or census_profile().steps
    t = time.time()
    say = (lambda s: print(s, file=sys.stderr, flush=True)) if progress else (lambda s: None)  # noqa: E731
    base = evaluate(_study(PR.build(BASE), cache, steps, 0, device), fns)
    say("base: " + ", ".join(f"{c} {e['verdict']}" for c, e in base.items()) + f" ({time.time() - t:.0f} s)")

    def against(name, entries):
        got = {cid: regression.compare(base[cid], entries[cid]) for cid in base}
        say(f"{name}: " + ", ".join(f"{c} {g['verdict']}" for c, g in got.items()) + f" ({time.time() - t:.0f} s)")
        return {"name": name, "claims": {c: {"verdict": g["verdict"], "changed_parts": regression.changed_parts(g),
                                             "old": g["old"], "new": g["new"]} for c, g in got.items()}}

    moved = against("planted: " + MOVED.why, evaluate(_study(PR.build(MOVED), cache, steps, 0, device), fns))
    nulls = [against(f"FZ seed {k} vs 0", evaluate(_study(PR.build(BASE), cache, steps, k, device), fns))
             for k in range(1, draws + 1)]
    nulls.append(against(f"weights x (1 + {JITTER:g} N(0, 1))",
                         evaluate(_study(jittered(PR.build(BASE)), cache, steps, 0, device), fns)))
    compared = [c["verdict"] for n in nulls for c in n["claims"].values() if c["verdict"] != "n/a"]
    alarms = sum(v == "changed" for v in compared)
    want = {c: "changed" if c == PLANTED_CLAIM else "unchanged" for c in base}
    got = {c: v["verdict"] for c, v in moved["claims"].items()}
    return {"planted": moved, "planted_claim": PLANTED_CLAIM, "planted_as_expected": got == want,
            "planted_mismatches": {c: got[c] for c in want if got[c] != want[c]},
            "nulls": nulls, "false_alarms": alarms, "compared": len(compared),
            "false_alarm_rate": alarms / len(compared) if compared else None,
            "null_verdicts": {v: compared.count(v) for v in sorted(set(compared))},
            "steps": steps, "draws": draws, "seconds": round(time.time() - t, 1)}


def main(args, claim_functions) -> int:
    """``rsi validate --regression``: prints the planted pair's verdicts and the false-alarm rate."""
    from rsi_core.cache import Cache
    out = run(Cache(getattr(args, "cache_dir", None)), claim_functions(), draws=args.draws,
              device=getattr(args, "device", None) or "cpu")
    summary = (f"planted pair: {out['planted_claim']} changed, others unchanged: "
               f"{'yes' if out['planted_as_expected'] else 'NO ' + json.dumps(out['planted_mismatches'])}; "
               f"false alarms {out['false_alarms']} of {out['compared']} claim comparisons "
               f"({out['draws']} FZ-seed copies and a 1e-3 weight jitter): rate {out['false_alarm_rate']:.3f} "
               f"(null verdicts {out['null_verdicts']}); {out['seconds']:.0f} s")
    print(summary, file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(out))
    ok = out["planted_as_expected"] and out["false_alarm_rate"] is not None and out["false_alarm_rate"] <= 0.05
    return 0 if ok else 1

