"""F_pair at ci's 64 FZ steps (issue 27; docs/ci.md): ``rsi validate --regression`` measures the
pair discordance at 8 channels per block and 32 steps; this checks it at ci's steps on every
block. resnet18 ``random:0`` (FZ seed 0) against its continued-training update (seed 0) and
against itself under FZ seed 1, K evenly spaced channels per block: per class the share of
channels whose class differs, per block and pooled, and the paired check's power at 15 points at
ci's sizes from these rates (the claims' parts as ``benchmarks/regression_oc.json`` records them;
a class this does not read, a list claim's found channels, keeps its rate there), and where a
class moved, the channels in it under the blessed run, gained and lost.

    RSI_CACHE=... OMP_NUM_THREADS=1 python benchmarks/f_pair_ci.py 12
"""
import json
import sys
from pathlib import Path

import numpy as np

from rsi_core.cache import Cache
from rsi_core.fz.bank import FZBank
from rsi_core.fz.render import FZSettings
from rsi_core.measure.study import block_from_fzs
from rsi_core.model.anatomy import block_roles, find_block
from rsi_core.model.anatomy import tap as tap_name
from rsi_core.model.load import load_model
from rsi_core.planted import regression as PRg
from rsi_core.planted import updates as U
from rsi_core.verdicts import claims as C

K = int(sys.argv[1]) if len(sys.argv) > 1 else 12
cache = Cache(None)   # $RSI_CACHE
r18 = load_model("resnet18", "random:0")
blocks = block_roles(r18)["studied"]
CLASSES = {"overwrite": lambda r: r.m < C.OVERWRITE_BELOW, "inhibit": lambda r: r.b_xi < 0,
           "lowest_bin": lambda r: (r.m >= C.LOWEST_BIN[0]) & (r.m < C.LOWEST_BIN[1]), "nonzero": lambda r: r.m > 0,
           "criteria": lambda r: r.scale_invariant(), "criteria_without_mix": lambda r: r.scale_invariant(False)}


def classes(model, seed):
    bank = FZBank(model, cache, FZSettings(steps=64, seed=seed), progress=False)
    out = {}
    for b in blocks:
        n = find_block(model, b).channels
        chans = sorted({int(i * n / K) for i in range(K)})
        fz = {t: bank.get(tap_name(b, t), chans) for t in "IB"}
        r = block_from_fzs(model, b, chans, fz["I"], fz["B"])
        out[b] = {q: np.asarray(f(r), bool) for q, f in CLASSES.items()}
    return out


base = classes(r18, 0)
shipped = json.loads(Path(__file__).with_name("regression_oc.json").read_text())
parts, sizes = shipped["simulated_at"]["claim_parts"], shipped["simulated_at"]["claim_part_sizes"]
for name, other in ((PRg.CONTINUED, classes(U.continued(r18, cache), 0)), (PRg.NOISE, classes(r18, 1))):
    by_block = {b: {q: float(np.mean(other[b][q] != base[b][q])) for q in CLASSES} for b in blocks}
    moves = {b: {q: [int(base[b][q].sum()), int((~base[b][q] & other[b][q]).sum()), int((base[b][q] & ~other[b][q]).sum())]
                 for q in CLASSES if (base[b][q] != other[b][q]).any()} for b in blocks}
    pooled = {}
    for q in CLASSES:
        read = {b for p in parts.values() for b, c in p["class"] if c == q} or set(blocks)
        pooled[q] = float(np.mean([by_block[b][q] for b in sorted(read)]))
    shipped_rates = shipped["updates"][[u["name"] for u in shipped["updates"]].index(name)]["f_pair_by_class"]
    rates = {c: [pooled.get(q, shipped_rates.get(q, 0.0)) for _, q in p["class"]] for c, p in parts.items()}
    power = PRg.oc({c: s for c, s in sizes.items() if s}, None, rates, PRg.SHIFT_TARGET / 100)["changed"]
    print(json.dumps({"update": name, "channels_per_block": K, "steps": 64, "f_pair_by_class": pooled,
                      "f_pair_by_class_at_32_steps_8_channels": shipped_rates, "by_block": by_block,
                      "in_class_gained_lost": moves,
                      f"power_at_{PRg.SHIFT_TARGET}_points_ci_sizes": round(power, 3)}), flush=True)
