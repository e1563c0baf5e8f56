"""GPU measurements for issue 9, in one script that fits in 10 minutes on one H100.

    bash benchmarks/gpu.sh                 # on the GPU machine; JSON on stdout and in $OUT/gpu.json
    python benchmarks/gpu.py --tiny        # the same code paths on a CPU in about a minute

Sections (each adds to the JSON as soon as it is done; a section that would start after
``--budget`` seconds is skipped and says so):
1. ``lucent_vs_engine``: rsi_core.fz.bench: seconds per FZ, lucent's render_vis loop (one neuron) against
   the engine (batch of channels), for I and B of the seven studied blocks, and their ratio.
2. ``precision``: engine FZs per second at batch 256 (every channel up to 256 of each tap) in fp32,
   tf32 and bf16, and the paper bank (3,712 FZs, 2,560 steps) extrapolated from it.
3. ``m_agreement``: the mix ratio M of 64 channels per block with FZs rendered in fp32 and in each
   faster precision (same seeds; PNGs re-measured in fp32): share of channels whose M class
   (overwrite M < 0.5, mix 0.5 <= M < 2, skip M >= 2) changes, and share that crosses M = 1 (the
   claims' overwrite/skip split).
4. ``natural``: the natural-image pass (centre activations of the 21 taps) in images per second,
   over the bundled sample's JPEGs repeated (decode included).
Weights are random:0: speed and precision effects do not need the trained weights; the M
agreement is a property of the numerics, measured here on an untrained network.
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from rsi_core.fz import bench
from rsi_core.fz.render import FZSettings, measure, render
from rsi_core.measure.metrics import mix_ratio
from rsi_core.model.activations import block_taps, stream_centre
from rsi_core.model.anatomy import find_block
from rsi_core.model.images import ImageSet
from rsi_core.model.load import load_model
from rsi_core.paper import PAPER_BLOCKS, PAPER_STEPS

M_EDGES = (0.5, 2.0)  # overwrite | mix | skip


def m_class(m: np.ndarray) -> np.ndarray:
    return np.digitize(m, M_EDGES)


def sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def precision_speed(model, device, taps, batch, steps, precisions) -> dict:
    out = {}
    for p in precisions:
        per_tap, rendered, seconds, bank_s = {}, 0, 0.0, 0.0
        for tap in taps:
            n = find_block(model, tap.rsplit(".", 1)[0]).channels
            chans = list(range(min(batch, n)))
            render(model, tap, chans, FZSettings(steps=2, precision=p), device=device, progress=False)  # warm-up
            sync(device)
            t0 = time.perf_counter()
            render(model, tap, chans, FZSettings(steps=steps, precision=p), device=device, progress=False)
            sync(device)
            dt = time.perf_counter() - t0
            per_tap[tap] = round(len(chans) / dt * steps / PAPER_STEPS, 3)  # FZs/s at the paper's steps
            rendered, seconds = rendered + len(chans), seconds + dt
            bank_s += dt / len(chans) / steps * PAPER_STEPS * n
        out[p] = {"fzs_per_second_at_paper_steps": round(rendered / seconds * steps / PAPER_STEPS, 3),
                  "fz_steps_per_second": round(rendered * steps / seconds, 1),
                  "per_tap_fzs_per_second_at_paper_steps": per_tap,
                  "extrapolated_paper_bank_minutes": round(bank_s / 60, 1)}
    return out


def m_agreement(model, device, blocks, channels, steps, precisions) -> dict:
    def m_of(block, p):
        o = {}
        for kind in "IB":
            out = render(model, f"{block}.{kind}", channels, FZSettings(steps=steps, precision=p),
                         device=device, progress=False)
            acts = measure(model, out["images"], block, device=device)  # fp32 re-measure of the PNGs
            o[kind] = acts["O"][np.arange(len(channels)), channels]
        return mix_ratio(o["I"], o["B"])

    out = {"channels_per_block": len(channels), "steps": steps, "classes": "overwrite M<0.5, mix 0.5<=M<2, skip M>=2"}
    ref = {b: m_of(b, "fp32") for b in blocks}
    for p in precisions:
        per_block = {}
        for b in blocks:
            m = m_of(b, p)
            per_block[b] = {"class_changed": float(np.mean(m_class(m) != m_class(ref[b]))),
                            "crosses_m_1": float(np.mean((m < 1) != (ref[b] < 1))),
                            "median_abs_dm": float(np.median(np.abs(m - ref[b])))}
        out[p] = {"class_changed": float(np.mean([v["class_changed"] for v in per_block.values()])),
                  "crosses_m_1": float(np.mean([v["crosses_m_1"] for v in per_block.values()])),
                  "per_block": per_block}
    return out


def natural_speed(model, device, count, batch) -> dict:
    found = ImageSet.from_dir(None)
    images = ImageSet(found.root, [found.files[i % len(found)] for i in range(count)])
    taps = block_taps(PAPER_BLOCKS)
    stream_centre(model, ImageSet(found.root, found.files[:batch]), taps, device=device, batch_size=batch,
                  progress=False)
    sync(device)
    t0 = time.perf_counter()
    stream_centre(model, images, taps, device=device, batch_size=batch, progress=False)
    sync(device)
    dt = time.perf_counter() - t0
    return {"images": count, "batch": batch, "images_per_second": round(count / dt, 1),
            "dataloader_workers": min(4, max(0, (os.cpu_count() or 1) - 1)),
            "note": "bundled sample JPEGs repeated; decode and preprocessing included"}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tiny", action="store_true", help="CPU-sized: 2 blocks, few steps and channels")
    p.add_argument("--device", default=None)
    p.add_argument("--budget", type=float, default=540, help="seconds; later sections are skipped past it")
    p.add_argument("--out", default=None, help="JSON file, rewritten after every section")
    args = p.parse_args(argv)
    t_start = time.monotonic()
    device = args.device or ("cpu" if args.tiny else "cuda")
    if args.tiny:
        cfg = dict(blocks=["1.1", "4.0"], bench_steps=2, batch=4, speed_steps=2, m_channels=4, m_steps=4,
                   images=12, image_batch=6)
    else:
        cfg = dict(blocks=list(PAPER_BLOCKS), bench_steps=64, batch=256, speed_steps=32, m_channels=64,
                   m_steps=256, images=3000, image_batch=256)
    precisions = ["tf32", "bf16"]
    model = load_model("resnet18", "random:0", device)
    taps = [f"{b}.{k}" for b in cfg["blocks"] for k in "IB"]
    result = {"device": str(device), "device_name": bench._device_name(torch.device(device)),
              "torch": torch.__version__, "weights": "random:0", "config": cfg, "sections": {}}

    def save():
        result["elapsed_s"] = round(time.monotonic() - t_start, 1)
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(args.out).with_suffix(".tmp")
            tmp.write_text(json.dumps(result, indent=1))
            os.replace(tmp, args.out)

    sections = [
        ("lucent_vs_engine", lambda: bench.run(steps=cfg["bench_steps"], device=device, batch=cfg["batch"],
                                               blocks=cfg["blocks"], out=sys.stderr)),
        ("precision", lambda: precision_speed(model, device, taps, cfg["batch"], cfg["speed_steps"],
                                              ["fp32"] + precisions)),
        ("m_agreement", lambda: m_agreement(model, device, cfg["blocks"], list(range(cfg["m_channels"])),
                                            cfg["m_steps"], precisions)),
        ("natural", lambda: natural_speed(model, device, cfg["images"], cfg["image_batch"])),
    ]
    for name, run in sections:
        if time.monotonic() - t_start > args.budget:
            result["sections"][name] = f"skipped: the {args.budget:.0f} s budget was spent"
        else:
            t0 = time.monotonic()
            result["sections"][name] = run()
            result["sections"][name + "_seconds"] = round(time.monotonic() - t0, 1)
            print(f"[gpu.py] {name} done in {time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)
        save()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
