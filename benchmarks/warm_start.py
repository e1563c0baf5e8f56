"""Does warm-starting a check's FZs from the blessed images, or leaving out seed-unstable channels,
lower F_pair on continued training? (issue 27; docs/ci.md "Lowering F_pair")

One block of resnet18 at random init (``random:0``) and its continued-training update
(``rsi_core.planted.updates.continued``), evenly spaced channels, ``--steps`` FZ steps (ci's 64).
Per class the paired checks read (overwrite M < 1, lowest bin, M > 0, B(X_I) < 0, the scale
criteria), F_pair is the share of channels whose class differs from the blessed run's
(seed 0, cold), for:

* ``continued, cold``: the check as ``--baseline`` runs it (same FZ seed, new weights);
* ``continued, warm k``: each FZ starts from the blessed FZ image (its decorrelated Fourier
  parameter inverted exactly from the PNG pixels) and takes the last k of the steps under the new
  weights (fresh Adam, the same transform draws); ``same weights, warm k``: the control, what the
  warm steps alone move;
* ``new weights on the blessed images (k = 0)``: no FZ at all, the new weights re-measured on the
  blessed images;
* ``blessed, seed 1``: the FZ-seed noise (``m_correlation``: Pearson's r of M, in [0, 5], with the
  blessed run's); ``f_seed_stable`` is F_pair over the channels whose
  class agrees between the blessed run's two seeds only (a blessed run's second seed would leave
  the others out).

    OMP_NUM_THREADS=1 python benchmarks/warm_start.py 2.0 --channels 48 --warm 8,16
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from rsi_core.cache import Cache
from rsi_core.fz.bank import FZBank
from rsi_core.fz.image import COLOUR, DIVISOR, spectrum_scale
from rsi_core.fz.render import FZSettings, measure, render
from rsi_core.measure.study import block_from_fzs
from rsi_core.model.anatomy import find_block
from rsi_core.model.anatomy import tap as tap_name
from rsi_core.model.load import load_model
from rsi_core.planted import updates as U


def invert(u8: np.ndarray, size: int = 224) -> torch.Tensor:
    """The Fourier parameter [N, 3, size, size//2+1, 2] whose image quantizes back to ``u8``
    [N, size, size, 3] (``rsi_core.fz.image``: sigmoid, colour mix, / DIVISOR, irfft, scale)."""
    x = np.clip((u8.astype(np.float64) + 0.5) / 255, 1e-4, 1 - 1e-4)   # the PNG truncates: its bin's centre
    lin = np.log(x / (1 - x)) @ np.linalg.inv(COLOUR.T.astype(np.float64))
    spectrum = torch.fft.rfftn(torch.tensor(lin).permute(0, 3, 1, 2) * DIVISOR, dim=(-2, -1), norm="ortho")
    return torch.view_as_real(spectrum / torch.tensor(spectrum_scale(size, size))[None, None]).float()


class WarmStart:
    """A batch start for ``render(checkpoint=...)`` (its resume interface): the given spectra at
    step ``start``, Adam fresh."""

    def __init__(self, spectra: torch.Tensor, start: int):
        self.spectra, self.start = spectra, start

    def load(self) -> dict:
        return {"warm": True}

    def due(self) -> bool:
        return False

    def restore(self, state, params, optimizer, reached, draws) -> int:
        with torch.no_grad():
            for p, v in zip(params, self.spectra, strict=True):
                p.copy_(v[None])
        return self.start


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("block")
    ap.add_argument("--channels", type=int, default=48)
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--warm", default="8,16", help="warm steps k, comma-separated")
    ap.add_argument("--cache-dir", default=None)
    args = ap.parse_args()
    block, steps, t0 = args.block, args.steps, time.time()
    cache = Cache(args.cache_dir)
    r18 = load_model("resnet18", "random:0")
    cont = U.continued(r18, cache)
    n = find_block(r18, block).channels
    chans = sorted({int(i * n / args.channels) for i in range(args.channels)})

    def cold(model, seed):
        bank = FZBank(model, cache, FZSettings(steps=steps, seed=seed), progress=False)
        return {t: bank.get(tap_name(block, t), chans) for t in "IB"}

    def on_images(model, images):
        return {t: {"image": images[t], **measure(model, images[t], block)} for t in "IB"}

    def warm(model, blessed, k):
        return on_images(model, {t: render(model, tap_name(block, t), chans, FZSettings(steps=steps), progress=False,
                                           checkpoint=WarmStart(invert(blessed[t]["image"]), steps - k))["images"]
                                 for t in "IB"})

    def classes(model, fz):
        r = block_from_fzs(model, block, chans, fz["I"], fz["B"])
        return {"overwrite": r.m < 1, "lowest_bin": (r.m >= 0) & (r.m < 0.25), "nonzero": r.m > 0,
                "inhibit": r.b_xi < 0, "criteria": r.scale_invariant(), "m": r.m}

    blessed = cold(r18, 0)
    base = classes(r18, blessed)
    m = base.pop("m")
    runs = {"continued, cold": classes(cont, cold(cont, 0)), "blessed, seed 1": classes(r18, cold(r18, 1)),
            "new weights on the blessed images (k = 0)": classes(cont, on_images(cont, {t: blessed[t]["image"]
                                                                                       for t in "IB"}))}
    for k in (int(x) for x in args.warm.split(",") if x):
        runs[f"continued, warm k = {k}"] = classes(cont, warm(cont, blessed, k))
        runs[f"same weights, warm k = {k}"] = classes(r18, warm(r18, blessed, k))
    stable = {q: base[q] == runs["blessed, seed 1"][q] for q in base}
    out = {name: {**{q: {"f_pair": round(float(np.mean(c[q] != base[q])), 3),
                         "f_seed_stable": round(float(np.mean((c[q] != base[q])[stable[q]])), 3),
                         "seed_stable": int(stable[q].sum())} for q in base},
                  "m_correlation": round(float(np.corrcoef(m, c["m"])[0, 1]), 3)} for name, c in runs.items()}
    print(json.dumps({"block": block, "channels": len(chans), "steps": steps, "runs": out,
                      "seconds": round(time.time() - t0)}, indent=1))


if __name__ == "__main__":
    main()
