"""``rsi validate --claims``: every paper claim run end to end on planted networks whose verdict
is known by construction (``rsi_core.planted.resnet.CASES``): one network where the claim holds,
one where it fails. Each case is a real ``Study`` (FZ bank, re-measure on the saved PNG, metrics,
the claim's own code) on a census of the claim's blocks. List claims (Figures 6-8) compare
against the case's own lists instead of the paper's.

The last line of ``--json`` output is one JSON object: per case the expected and obtained
verdict, and ``verdict_accuracy`` (share of cases whose verdict is the expected one).
"""
from __future__ import annotations

import json
import os
import sys
import time

from rsi_core.measure.profiles import Profile
from rsi_core.planted import resnet as PR

#: FZ steps: the planted detectors are linear, 32 steps reach the ratios the cases rely on (64 gave the same M).
STEPS = int(os.environ.get("RSI_CLAIMS_STEPS", 32))
#: Natural images for Figure 4 bottom and Figure 7 (the bundled set has 250).
NATURAL = int(os.environ.get("RSI_CLAIMS_IMAGES", 250))


def census_profile(steps: int = STEPS, natural: int | None = NATURAL) -> Profile:
    """Every channel, few FZ steps: the planted networks' census."""
    return Profile("census-planted", steps, None, False, natural)


def run_case(case: PR.Case, cache, fns: dict, steps: int = STEPS, device="cpu", progress: bool = False) -> dict:
    """Build the case's network and evaluate its claim on a census (blocks are computed lazily,
    so only the blocks the claim reads are rendered)."""
    from rsi_core.measure.study import Study
    model = PR.build(case)
    study = Study(model, census_profile(steps), cache, device=device, progress=progress, lists=case.lists or None)
    t = time.time()
    blocks = {}
    try:
        if case.claim not in fns:
            raise LookupError(f"no claim function for {case.claim} in the claims tests")
        v = fns[case.claim](study)
        verdict, reason, blocks = v.verdict, v.reason, v.blocks
    except Exception as exc:  # an error is a verdict too, never a silent skip
        verdict, reason = "error", f"{type(exc).__name__}: {exc}"
    return {"case": case.name, "claim": case.claim, "expected": case.expect, "obtained": verdict,
            "correct": verdict == case.expect, "reason": reason, "construction": case.why,
            "blocks": blocks, "seconds": round(time.time() - t, 1)}


def run(cache, fns: dict, steps: int = STEPS, device="cpu", cases=None, progress: bool = True) -> dict:
    """Every planted case (or ``cases``) through ``fns`` ({claim id: claim function}, the very
    functions ``pytest claims`` runs)."""
    from tqdm import tqdm
    rows = []
    t = time.time()
    for case in tqdm(cases or PR.CASES, desc="planted claims", unit="case", disable=not progress):
        rows.append(run_case(case, cache, fns, steps, device))
        tqdm.write(line(rows[-1]), file=sys.stderr)
    claimed = sorted({c.claim for c in PR.CASES})
    return {"cases": rows, "verdict_accuracy": sum(r["correct"] for r in rows) / len(rows) if rows else None,
            "inconclusive": sum(r["obtained"] == "inconclusive" for r in rows),
            "claims_covered": claimed, "claims_not_covered": sorted(set(fns) - set(claimed)),
            "steps": steps, "seconds": round(time.time() - t, 1)}


def line(r: dict) -> str:
    mark = "ok " if r["correct"] else "BAD"
    return (f"{mark} {r['claim']:30s} {r['case']:32s} expected {r['expected']:6s} obtained {r['obtained']:12s} "
            f"{r['seconds']:6.1f}s  {r['reason']}")


def main(args, claim_functions) -> int:
    """``rsi validate --claims``; ``claim_functions() -> {claim id: fn}`` loads the claims tests' functions."""
    from rsi_core.cache import Cache
    cache = Cache(getattr(args, "cache_dir", None))  # $RSI_CACHE or ~/.cache/rsi
    names = getattr(args, "case", None)
    cases = [PR.get_case(n) for n in names] if names else None
    out = run(cache, claim_functions(), device=getattr(args, "device", None) or "cpu", cases=cases)
    if not args.json:
        for r in out["cases"]:
            print(line(r))
    summary = (f"verdict accuracy {out['verdict_accuracy']:.3f} over {len(out['cases'])} cases, "
               f"{out['inconclusive']} inconclusive, {out['seconds']:.0f} s; not covered: "
               f"{', '.join(out['claims_not_covered']) or 'none'}")
    print(summary, file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(out))
    return 0 if out["verdict_accuracy"] == 1.0 else 1
