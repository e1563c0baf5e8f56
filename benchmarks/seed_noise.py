"""Seed-to-seed noise of the per-channel statistics the claims count: the fallback table.

A census has no sampling error; what remains is the FZ optimization's own: render every channel
twice, with FZ seeds 0 and 1 (``FZSettings(seed=s)``, everything else equal), and count how often
a channel's class changes between the two renderings:

* ``overwrite``: M < 1,
* ``lowest_bin``: M in [0, 0.25),
* ``nonzero``: M > 0,
* ``inhibit``: B_c(X_hat_{I_c}) < 0 (Figure 4's "inhibition"),
* ``criteria``: passes the three scale criteria (``BlockResult.scale_invariant()``),
* ``criteria_without_mix``: passes criteria 2 and 3 (Figure 5's variant).

A census share of n channels with flip rate F has seed-to-seed variance F / (2n)
(``rsi_core.verdicts.verdict.census_sd``). A census measures its own F from a second FZ seed on a
subsample of each block (``rsi_core.measure.profiles.second_seed_channels``); this table is only
the fallback where a run has no second seed (``verdict.table_flips``: the largest source's flips),
and the planning value of ``rsi_core.verdicts.decidability``. Channels whose FZs failed under
either seed are left out, as every claim leaves them out.

Sources: random-init ResNet18 (``random:0``; evenly spaced channels of each studied block) and the
planted benchmark networks (``rsi_core.planted.networks.benchmark_spec``; every planted channel).

    OMP_NUM_THREADS=1 python benchmarks/seed_noise.py --out rsi_core/verdicts/seed_noise.json

writes the table ``rsi_core.verdicts.verdict`` ships (``--quick`` for a seconds-long check).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

STATISTICS = ("overwrite", "lowest_bin", "nonzero", "inhibit", "criteria", "criteria_without_mix")


def classes(r) -> dict[str, np.ndarray]:
    m = r.m
    return {"overwrite": m < 1, "lowest_bin": (m >= 0) & (m < 0.25), "nonzero": m > 0,
            "inhibit": r.b_xi < 0, "criteria": r.scale_invariant(), "criteria_without_mix": r.scale_invariant(False)}


def block_results(model, blocks: dict, steps: int, seed: int, cache, progress: bool) -> dict:
    from rsi_core.fz.bank import FZBank
    from rsi_core.fz.render import FZSettings
    from rsi_core.measure.study import block_from_fzs
    from rsi_core.model.anatomy import block_of, taps_of

    bank = FZBank(model, cache, FZSettings(steps=steps, seed=seed), progress=progress)
    bank.ensure({t: blocks[block_of(t)] for t in taps_of(blocks, "IB")})
    return {b: block_from_fzs(model, b, ch, *(bank.get(t, ch) for t in taps_of([b], "IB")))
            for b, ch in blocks.items()}


def flips(model, blocks: dict, steps: int, cache, progress: bool) -> dict:
    """Per block and statistic: channels compared (valid under both seeds) and channels that flip."""
    r0, r1 = (block_results(model, blocks, steps, s, cache, progress) for s in (0, 1))
    out = {}
    for b in blocks:
        valid = ~r0[b].failed & ~r1[b].failed
        c0, c1 = classes(r0[b]), classes(r1[b])
        out[b] = {"n": int(valid.sum()), "failed_either": int((~valid).sum()),
                  **{s: int((c0[s] != c1[s])[valid].sum()) for s in STATISTICS},
                  "m_seed0": r0[b].m.tolist(), "m_seed1": r1[b].m.tolist()}
    return out


def pooled(per_block: dict) -> dict:
    n = sum(v["n"] for v in per_block.values())
    return {"n": n, **{s: {"flips": sum(v[s] for v in per_block.values()),
                           "rate": sum(v[s] for v in per_block.values()) / n if n else None}
                       for s in STATISTICS}}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=32, help="FZ steps (both sources)")
    ap.add_argument("--channels", type=int, default=6, help="evenly spaced channels per random-init block")
    ap.add_argument("--planted", type=int, default=2, help="planted benchmark networks (seeds 0..N-1)")
    ap.add_argument("--quick", action="store_true", help="2 steps, 1 channel, 1 planted net: a smoke check")
    ap.add_argument("--out", default=None, help="write the table here (JSON)")
    ap.add_argument("--cache-dir", default=None, help="FZ cache (default: a temporary folder)")
    args = ap.parse_args(argv)
    if args.quick:
        args.steps, args.channels, args.planted = 2, 1, 1

    import torch

    from rsi_core.cache import Cache
    from rsi_core.measure.profiles import evenly_spaced
    from rsi_core.model.anatomy import find_block
    from rsi_core.model.load import load_model
    from rsi_core.planted import networks as P

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", 1)))
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        cache = Cache(args.cache_dir or tmp)
        model = load_model("resnet18", "random:0")
        blocks = ["1.1", "2.0", "2.1", "3.0", "3.1", "4.0", "4.1"]
        rand = flips(model, {b: evenly_spaced(find_block(model, b).channels, args.channels) for b in blocks},
                     args.steps, cache, progress=True)
        planted = {}
        for s in range(args.planted):
            spec = P.benchmark_spec(s)
            net = P.build(spec)
            per = flips(net, {b: spec.channels(b) for b in P.STUDIED_BLOCKS if spec.roles(b)}, args.steps,
                        cache, progress=True)
            planted.update({f"{spec.name}/{b}": v for b, v in per.items()})
    sources = {"random-init resnet18 random:0": rand, "planted benchmark": planted}
    table = {
        "what": "share of channels (valid under both FZ seeds) whose class flips between FZ seeds 0 and 1",
        "command": "OMP_NUM_THREADS=1 python benchmarks/seed_noise.py " + shlex.join(sys.argv[1:] if argv is None
                                                                                    else argv),
        "steps": args.steps, "channels_per_random_block": args.channels, "planted_nets": args.planted,
        "seconds": round(time.time() - t0, 1),
        "sources": {k: {"pooled": pooled(v), "blocks": v} for k, v in sources.items()},
        # the census margin per statistic: the larger of the two sources' rates
        "margin": {s: max(pooled(v)[s]["rate"] or 0.0 for v in sources.values()) for s in STATISTICS},
    }
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        tmp_out = Path(str(args.out) + ".tmp")
        tmp_out.write_text(json.dumps(table, indent=1))
        tmp_out.replace(args.out)
    print(json.dumps({k: table[k] for k in ("margin", "seconds", "command")}
                     | {"pooled": {k: v["pooled"] for k, v in table["sources"].items()}}, indent=1))
    return table


if __name__ == "__main__":
    main()
