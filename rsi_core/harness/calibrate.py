"""``rsi validate --calibration``: the operating characteristic of every claim's decision rule
(``rsi_core.verdicts.calibration``): pure simulation, no FZ, a few minutes on one CPU core."""
from __future__ import annotations

import json
import sys
import time

from rsi_core.verdicts import calibration as K


def table(rows: list[dict]) -> str:
    """One line per claim, world, reliability and size: P(holds), P(inconclusive), P(fails)."""
    head = f"{'claim':30s} {'world':12s} {'rel':>4s} {'size':7s} {'holds':>6s} {'incon':>6s} {'fails':>6s} draws"
    return "\n".join([head] + [f"{r['claim']:30s} {r['world']:12s} {r['reliability']:4.1f} {r['size']:7s} "
                               f"{r['p_holds']:6.3f} {r['p_inconclusive']:6.3f} {r['p_fails']:6.3f} {r['draws']}"
                               for r in rows])


def main(args) -> int:
    draws = args.draws or K.DRAWS
    t = time.time()
    rows = K.calibration(draws)
    bounds = K.check_bounds(rows)
    print(table(rows), file=sys.stderr if args.json else sys.stdout)
    summary = (f"calibration: {len(rows)} rows, {draws} draws each, {time.time() - t:.0f} s; bounds at census size: "
               + ("all met" if not bounds else f"{len(bounds)} missed: " + "; ".join(bounds)))
    print(summary, file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps({"calibration": rows, "scenarios": {c: s["source"] for c, s in K.SCENARIOS.items()},
                          "bounds_missed": bounds}))
    return 0 if not bounds else 1
