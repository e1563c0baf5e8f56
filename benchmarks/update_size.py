"""F_pair against the update's size (issue 27; docs/ci.md): resnet18 ``random:0`` continued for S SGD
steps at learning rate LR (``rsi_core.planted.updates.continued``), block 2.0, 48 evenly spaced
channels, ci's 64 FZ steps, cold, seed 0 both: per class the share of channels whose class differs.

    OMP_NUM_THREADS=1 python benchmarks/update_size.py 10,50,200 10:1e-5,10:1e-4   # S or S:LR, comma-separated
"""
import json
import sys

import numpy as np

from rsi_core.cache import Cache
from rsi_core.fz.bank import FZBank
from rsi_core.fz.render import FZSettings
from rsi_core.measure.study import block_from_fzs
from rsi_core.model.anatomy import find_block
from rsi_core.model.anatomy import tap as tap_name
from rsi_core.model.load import load_model
from rsi_core.planted import updates as U

cache = Cache(None)   # $RSI_CACHE
block = "2.0"
r18 = load_model("resnet18", "random:0")
n = find_block(r18, block).channels
chans = sorted({int(i * n / 48) for i in range(48)})


def cls(model):
    bank = FZBank(model, cache, FZSettings(steps=64, seed=0), progress=False)
    fz = {t: bank.get(tap_name(block, t), chans) for t in "IB"}
    r = block_from_fzs(model, block, chans, fz["I"], fz["B"])
    return {"overwrite": r.m < 1, "inhibit": r.b_xi < 0, "criteria": r.scale_invariant()}


base = cls(r18)
for spec in ",".join(sys.argv[1:]).split(","):
    steps, lr = (int(spec.split(":")[0]), float(spec.split(":")[1]) if ":" in spec else U.CONTINUED_LR)
    m = U.continued(r18, cache, steps=steps, lr=lr)
    c = cls(m)
    print(json.dumps({"steps": steps, "lr": lr, "weights_moved": round(U.relative_change(r18, m), 4),
                      **{q: round(float(np.mean(c[q] != base[q])), 3) for q in c}}), flush=True)
