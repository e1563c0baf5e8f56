"""The one GPU check: every CUDA question rsi has, in one script for one H100/H200 in under
8 minutes, runnable from a plain checkout after the README's install.

    python benchmarks/gpu_check.py                 # on the GPU machine
    python benchmarks/gpu_check.py --tiny          # every section on the CPU, tiny sizes (CI runs it)

It prints one JSON line per section, most important first, each with a "section" key; a
section that fails prints {"section": ..., "error": ...} and the next one runs. Weights are
random:0: device, precision and speed effects need no trained weights.
1. ``environment``: torch, CUDA, driver, device, lucent and kornia.
2. ``smoke``: a 2-step render of every variant (readings x crop on/off x precisions, and the
   element-by-element path) and the natural-image pass.
3. ``correctness``: the device against the CPU for a few channels of 1.1.B, 2.1.B, 3.1.B and 4.0.I
   (pixels, reached objective, M class with every image re-measured in fp32 on the CPU; the
   input gradient at steps 1 and 2), and lucent's own ``render_vis`` on the same channels.
4. ``speed``: every studied tap at the paper batch in fp32/tf32/bf16: FZ steps per second, the
   paper bank (3,712 FZs at 2,560 steps) extrapolated with and without the paper profile's
   controls, peak memory, achieved TFLOP/s.
5. ``host_overhead``: ``host_overhead.py``'s step at a tiny image size on the device: the host
   time of a batched step and its synchronizations (torch's sync debug mode on CUDA).
6. ``precision_flips``: how often M's class changes with tf32/bf16 against fp32.
7. ``determinism``: run-to-run and alone-vs-in-a-batch differences on the device.
8. ``natural``: the natural-image pass in images per second.
9. ``processes``: one process against two on the same device (does ``-n 2`` per GPU help?).

Renders on the device take CUDA's path (``render(batched=True)``) on the CPU too (``--tiny``), so
that path has run before the GPU does; the CPU references take the CPU's (element by element).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # a plain checkout: rsi_core beside benchmarks/

import argparse
import copy
import json
import os
import subprocess
import time

import host_overhead  # beside this script
import numpy as np
import torch

from rsi_core.fz import bench
from rsi_core.fz.render import FZSettings, measure, render
from rsi_core.harness.controls import default_controls
from rsi_core.measure.metrics import mix_ratio
from rsi_core.model.activations import block_taps, stream_centre
from rsi_core.model.anatomy import find_block, provenance_of, register, taps_of
from rsi_core.model.anatomy import tap as tap_name
from rsi_core.model.images import ImageSet
from rsi_core.model.load import load_model
from rsi_core.paper import PAPER_BLOCKS, PAPER_STEPS

M_EDGES = (0.5, 2.0)  # overwrite | mix | skip


def m_class(m: np.ndarray) -> np.ndarray:
    return np.digitize(m, M_EDGES)


def sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def device_render(model, tap, channels, settings, device, batched=True, **kw):
    """A render on the device under test, by CUDA's path (batched) unless asked, on the CPU too."""
    return render(model, tap, channels, settings, device=device, progress=False, batched=batched, **kw)


def cpu_render(model, tap, channels, settings, **kw):
    """The CPU reference: the CPU's own path (element by element)."""
    return render(model, tap, channels, settings, device="cpu", progress=False, batched=False, **kw)


def _channels(model, tap, batch) -> list[int]:
    return list(range(min(batch, find_block(model, tap.rsplit(".", 1)[0]).channels)))


def precision_speed(model, device, taps, batch, steps, precisions) -> dict:
    out = {}
    for p in precisions:
        per_tap, rendered, seconds, bank_s = {}, 0, 0.0, 0.0
        for tap in taps:
            n = find_block(model, tap.rsplit(".", 1)[0]).channels
            chans = _channels(model, tap, batch)
            device_render(model, tap, chans, FZSettings(steps=2, precision=p), device)  # warm-up
            sync(device)
            t0 = time.perf_counter()
            device_render(model, tap, chans, FZSettings(steps=steps, precision=p), device)
            sync(device)
            dt = time.perf_counter() - t0
            per_tap[tap] = {"ms_per_step": round(dt / steps * 1e3, 2),
                            "fzs_per_second_at_paper_steps": round(len(chans) / dt * steps / PAPER_STEPS, 3)}
            rendered, seconds = rendered + len(chans), seconds + dt
            bank_s += dt / len(chans) / steps * PAPER_STEPS * n
        controls = default_controls("paper")
        out[p] = {"fzs_per_second_at_paper_steps": round(rendered / seconds * steps / PAPER_STEPS, 3),
                  "fz_steps_per_second": round(rendered * steps / seconds, 1),
                  "per_tap": per_tap,
                  "extrapolated_paper_bank_minutes": round(bank_s / 60, 1),
                  f"extrapolated_paper_bank_minutes_with_{controls}_controls": round(bank_s * (1 + controls) / 60, 1)}
    return out


def m_agreement(model, device, blocks, channels, steps, precisions) -> dict:
    def m_of(block, p):
        o = {}
        for kind in "IB":
            out = device_render(model, tap_name(block, kind), channels, FZSettings(steps=steps, precision=p), device)
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


def environment(device) -> dict:
    import kornia
    import lucent
    d = torch.device(device)
    out = {"torch": torch.__version__, "cuda_available": torch.cuda.is_available(), "device": str(d),
           "device_name": bench._device_name(d), "kornia": kornia.__version__,
           "lucent": getattr(lucent, "__version__", "0.1.8"), "cuda": torch.version.cuda,
           "cudnn": torch.backends.cudnn.version() if d.type == "cuda" else None}
    if d.type == "cuda":
        props = torch.cuda.get_device_properties(d)
        out["memory_gib"] = round(props.total_memory / 2 ** 30, 1)
        out["capability"] = f"{props.major}.{props.minor}"
        try:
            out["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                           capture_output=True, text=True, timeout=30).stdout.strip()
        except OSError as exc:
            out["driver"] = f"nvidia-smi not run: {exc}"
    return out


def smoke(model, device, images) -> dict:
    out = {}
    for target in ("as-written", "as-run"):
        for crop in (True, False):
            for p in ("fp32", "tf32", "bf16"):
                r = device_render(model, "2.1.B", [0, 1], FZSettings(steps=2, crop=crop, precision=p, target=target), device)
                out[f"{target}/crop={crop}/{p}"] = bool(np.isfinite(r["reached"]).all())
    r = device_render(model, "2.1.B", [0, 1], FZSettings(steps=2), device, batched=False)
    out["as-written/crop=True/fp32/element-by-element"] = bool(np.isfinite(r["reached"]).all())
    acts = stream_centre(model, images, block_taps(["1.1"]), device=device, batch_size=4, progress=False)
    out["natural"] = bool(all(np.isfinite(a).all() for a in acts.values()))
    return {"all_finite": all(out.values()), "variants": out}


_CPU = {}


def _cpu_copy(model):
    if id(model) not in _CPU:
        cpu = _CPU[id(model)] = copy.deepcopy(model).to("cpu")
        register(cpu, provenance_of(model))  # a copy keeps the original's name, weights and lists (cache keys)
    return _CPU[id(model)]


def _m_and_images(render_fn, cpu_model, block, channels, steps):
    """M of ``channels`` of ``block`` from FZs made by ``render_fn(tap, settings)``, every image
    re-measured on the CPU in fp32."""
    o, images, reached = {}, {}, {}
    for kind in "IB":
        r = render_fn(tap_name(block, kind), FZSettings(steps=steps))
        images[kind], reached[kind] = r["images"], r["reached"]
        o[kind] = measure(cpu_model, images[kind], block, device="cpu")["O"][np.arange(len(channels)), channels]
    return mix_ratio(o["I"], o["B"]), images, reached


def _gradients(render_fn, steps=2) -> list[torch.Tensor]:
    """The image parameters' gradient [N, ...] at each of the first ``steps`` steps."""
    seen = []
    render_fn(FZSettings(steps=steps), lambda s, params: seen.append(torch.cat([p.grad.detach().cpu() for p in params])))
    return seen


def correctness(model, device, taps, channels, steps) -> dict:
    cpu_model = _cpu_copy(model)
    out = {}
    for tap in taps:
        block, kind = tap.rsplit(".", 1)
        m_dev, img_dev, r_dev = _m_and_images(lambda t, st: device_render(model, t, channels, st, device),
                                              cpu_model, block, channels, steps)
        m_cpu, img_cpu, r_cpu = _m_and_images(lambda t, st: cpu_render(cpu_model, t, channels, st),
                                              cpu_model, block, channels, steps)
        g_dev = _gradients(lambda st, hook, t=tap: device_render(model, t, channels, st, device, on_step=hook))
        g_cpu = _gradients(lambda st, hook, t=tap: cpu_render(cpu_model, t, channels, st, on_step=hook))
        lucent = np.concatenate([(bench.lucent_render(cpu_model, tap, c, steps) * 255).astype(np.uint8)
                                 for c in channels])
        pixels = np.abs(img_dev[kind].astype(int) - img_cpu[kind].astype(int))
        out[tap] = {"max_pixel_diff": int(pixels.max()), "mean_pixel_diff": float(pixels.mean()),
                    "reached_rel_diff": float(np.max(np.abs(r_dev[kind] - r_cpu[kind]) / (np.abs(r_cpu[kind]) + 1e-6))),
                    "gradient_rel_diff_steps_1_2": [float(((d - c).flatten(1).norm(dim=1) / c.flatten(1).norm(dim=1)).max())
                                                    for d, c in zip(g_dev, g_cpu)],
                    "m_class_agrees": float(np.mean(m_class(m_dev) == m_class(m_cpu))),
                    "m_crosses_1": float(np.mean((m_dev < 1) != (m_cpu < 1))),
                    "lucent_vs_cpu_engine_max_pixel_diff": int(np.abs(lucent.astype(int) - img_cpu[kind].astype(int)).max())}
    return {"channels": channels, "steps": steps, "per_tap": out}


def flops_per_step(model, tap, channels, device) -> float:
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as counter:
        device_render(model, tap, channels, FZSettings(steps=1), device)
    return counter.get_total_flops()


def speed(model, device, taps, batch, steps) -> dict:
    if torch.device(device).type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    out = precision_speed(model, device, taps, batch, steps, ["fp32", "tf32", "bf16"])
    flops = sum(flops_per_step(model, t, _channels(model, t, batch), device) for t in taps)
    sync(device)
    t0 = time.perf_counter()
    for t in taps:
        device_render(model, t, _channels(model, t, batch), FZSettings(steps=steps), device)
    sync(device)
    dt = time.perf_counter() - t0
    out["fp32"]["achieved_tflops"] = float(f"{flops * steps / dt / 1e12:.3g}")  # 3 significant digits: a CPU reaches milli-TFLOP/s
    if torch.device(device).type == "cuda":
        out["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2 ** 30, 2)
    out["extrapolated_paper_bank_minutes_fp32"] = out["fp32"]["extrapolated_paper_bank_minutes"]
    out["batch"], out["steps"] = batch, steps
    return out


def host(device, batch, steps) -> dict:
    batched = host_overhead.measure(host_overhead.BatchedImages, batch, 8, 4, steps, device)
    return {"batch": batch, "size": 8, "jitter": 4, "ms_per_step": round(batched["ms_per_step"], 3),
            "syncs_per_step": batched["waits"], "ops_per_step": batched["ops"]}


def determinism(model, device, steps) -> dict:
    chans = [0, 1, 2, 3]
    a = device_render(model, "2.1.B", chans, FZSettings(steps=steps), device)["images"]
    b = device_render(model, "2.1.B", chans, FZSettings(steps=steps), device)["images"]
    alone = device_render(model, "2.1.B", [2], FZSettings(steps=steps), device)["images"]
    return {"run_to_run_max_pixel_diff": int(np.abs(a.astype(int) - b.astype(int)).max()),
            "run_to_run_images_equal": float(np.mean([np.array_equal(x, y) for x, y in zip(a, b)])),
            "alone_vs_batch_max_pixel_diff": int(np.abs(alone[0].astype(int) - a[2].astype(int)).max()),
            "alone_vs_batch_pixels_equal": float(np.mean(alone[0] == a[2])), "steps": steps}


def processes(device, batch, steps) -> dict:
    root = str(Path(__file__).resolve().parents[1])
    code = (f"import sys; sys.path.insert(0, {root!r}); from rsi_core.model.load import load_model; "
            f"from rsi_core.fz.render import FZSettings, render; m = load_model('resnet18', 'random:0', {device!r}); "
            f"render(m, '2.1.B', list(range({batch})), FZSettings(steps={steps}), device={device!r}, progress=False, "
            f"batched=True)")

    def wall(n):
        t0 = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(n)]
        codes = [p.wait() for p in procs]
        if any(codes):
            raise RuntimeError(f"a render process exited with {codes}")
        return time.perf_counter() - t0
    one, two = wall(1), wall(2)
    return {"one_process_s": round(one, 1), "two_processes_s": round(two, 1),
            "throughput_ratio_two_vs_one": round(2 * one / two, 2), "note": "process start and model load included"}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tiny", action="store_true", help="every section on the CPU at tiny sizes (under 2 minutes)")
    p.add_argument("--device", default=None, help="default: cuda (cpu with --tiny)")
    args = p.parse_args(argv)
    device = args.device or ("cpu" if args.tiny else "cuda")
    if args.tiny:
        cfg = dict(taps=["1.1.B", "4.0.I"], correct_channels=[0], correct_steps=3, batch=2, speed_steps=2,
                   host_batch=32, host_steps=3, m_blocks=["1.1"], m_channels=2, m_steps=3, det_steps=2, images=8,
                   image_batch=4, proc_batch=2, proc_steps=2)
    else:
        cfg = dict(taps=["1.1.B", "2.1.B", "3.1.B", "4.0.I"], correct_channels=[0, 1, 2, 3], correct_steps=256,
                   batch=256, speed_steps=16, host_batch=256, host_steps=20, m_blocks=["1.1", "2.1", "3.1", "4.0"],
                   m_channels=32, m_steps=256, det_steps=64, images=2000, image_batch=256, proc_batch=128, proc_steps=64)
    speed_taps = taps_of(PAPER_BLOCKS[:1] if args.tiny else PAPER_BLOCKS, "IB")
    model = load_model("resnet18", "random:0", device)
    found = ImageSet.from_dir(None)
    few = ImageSet(found.root, found.files[:cfg["image_batch"]])
    sections = [
        ("environment", lambda: environment(device)),
        ("smoke", lambda: smoke(model, device, few)),
        ("correctness", lambda: correctness(model, device, cfg["taps"], cfg["correct_channels"], cfg["correct_steps"])),
        ("speed", lambda: speed(model, device, speed_taps, cfg["batch"], cfg["speed_steps"])),
        ("host_overhead", lambda: host(device, cfg["host_batch"], cfg["host_steps"])),
        ("precision_flips", lambda: m_agreement(model, device, cfg["m_blocks"], list(range(cfg["m_channels"])),
                                                cfg["m_steps"], ["tf32", "bf16"])),
        ("determinism", lambda: determinism(model, device, cfg["det_steps"])),
        ("natural", lambda: natural_speed(model, device, cfg["images"], cfg["image_batch"])),
        ("processes", lambda: processes(device, cfg["proc_batch"], cfg["proc_steps"])),
    ]
    failed = 0
    for name, run in sections:
        t0 = time.monotonic()
        try:
            line = {"section": name, **run()}
        except Exception as exc:  # one failing section must not hide the others
            failed += 1
            line = {"section": name, "error": f"{type(exc).__name__}: {exc}"}
        line["seconds"] = round(time.monotonic() - t0, 1)
        print(json.dumps(line), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
