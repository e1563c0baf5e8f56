"""The FZ engine against its own compute floor, per tap: how much of a step is the model.

    python benchmarks/floor.py                     # the 14 I and B taps, batch 16, 2 steps (10 min at load 15)
    python benchmarks/floor.py --json --taps 1.1.B,4.1.B --steps 2

Per tap, ``render`` (the CPU's default path, one thread, resnet18 random:0; speed does not depend
on the weights) runs ``--steps`` + 1 steps twice after a warm-up render, and one step for the
convolution shapes; ``--steps`` steps are measured (the first step and the render's setup are not):
- timed: CPU milliseconds of the rendering thread per step (``step_ms``, median of the steps;
  ``fz_ms``: per FZ; ``wall_ms`` beside it): on a shared machine the wall clock counts the time
  other processes held the core, the thread's CPU time much less so; ``batched_step_ms``: the
  same with the batch's transforms batched (the CUDA path, not bit for bit the CPU's FZs);
- profiled (``torch.profiler``): the op time of a step split into the model's own operations,
  its convolutions, ReLUs, max-pool and residual additions, forward and backward (BatchNorm is
  folded into the convolutions), against everything else (image parameter, FFTs, colour,
  transforms, normalization, the objective, Adam, copies and fills). A model op is counted
  inclusive of its kernel's own allocations; a copy or fill around it is not. ``model_share`` =
  model op time / all op time (the profiler's overhead inflates the many small non-model ops
  a little, so the share is a lower bound);
- the model's convolutions alone, at the same shapes, each a plain module forward + backward to
  its input (as the step needs: the weights take no gradient), CPU time: ``peak_gflops``, this
  CPU's conv rate at these shapes in the same run, against ``achieved_gflops`` (the step's
  convolution FLOPs, forward and input gradient, per CPU second of the whole step).
``bank_model_share``: the model's share of the paper bank's op time, each tap weighted by its
FZs in the bank (I and B of every channel of the seven studied blocks, ``rsi bench fz``'s
bank): sum(FZs x model ms per FZ) / sum(FZs x op ms per FZ).

The load average is printed before and after: the machine may be shared. The last line with
``--json`` is one JSON object (the table goes to stderr).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # a plain checkout: rsi_core beside benchmarks/

import argparse
import json
import os
import statistics
import time

import torch
from torch.profiler import ProfilerActivity, profile

from rsi_core.fz.render import FZSettings, one_thread, render
from rsi_core.model.anatomy import block_of, canonical_tap, find_block
from rsi_core.model.anatomy import tap as tap_name
from rsi_core.model.load import load_model
from rsi_core.paper import PAPER_BLOCKS

TAPS = [tap_name(b, k) for b in PAPER_BLOCKS for k in "IB"]
# the model's own operations (outermost call counted, inclusive); aten::add only inside the model's forward
MODEL_OPS = {"aten::convolution", "aten::convolution_backward", "aten::relu", "aten::threshold_backward",
             "aten::max_pool2d_with_indices", "aten::max_pool2d_with_indices_backward"}
MODEL_SCOPE = "fz.model"  # render's record_function around the model's forward
# the stem's input gradient, computed with torch's own kernel's arithmetic (render._StemGradient)
STEM_GRADIENT, STEM_OPS = "_StemGradientBackward", {"aten::mm", "aten::col2im"}


def _loadavg() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def _split(events) -> tuple[float, float, dict]:
    """(model op µs, all op µs, other µs by op name) of a profile: all = the self time of every
    op; model = the inclusive time of the outermost model op calls (a residual add counts inside
    MODEL_SCOPE, the stem gradient's product and col2im inside STEM_GRADIENT); other = the self
    time of every op outside them."""
    total = model = 0.0
    other = {}
    for e in events:
        if e.name == MODEL_SCOPE:
            continue
        total += e.self_cpu_time_total
        ancestors, p = [], e.cpu_parent
        while p is not None:
            ancestors.append(p.name)
            p = p.cpu_parent
        if any(a in MODEL_OPS for a in ancestors):
            continue  # counted with its outermost model op
        if any(a in STEM_OPS for a in ancestors) and STEM_GRADIENT in ancestors:
            continue
        if e.name in MODEL_OPS or (e.name == "aten::add" and MODEL_SCOPE in ancestors) or \
                (e.name in STEM_OPS and STEM_GRADIENT in ancestors):
            model += e.cpu_time_total
        else:
            other[e.name] = other.get(e.name, 0.0) + e.self_cpu_time_total
    return model, total, other


def _conv_calls(model, tap: str, channels: list[int]) -> list[tuple[torch.nn.Conv2d, torch.Size, bool]]:
    """Each convolution one step runs: (module, input shape, channels-last input)."""
    calls = []

    def hook(module, args, _out):
        if isinstance(module, torch.nn.Conv2d):
            x = args[0]
            calls.append((module, x.shape, not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)))
    with torch.nn.modules.module.register_module_forward_hook(hook):
        render(model, tap, channels, FZSettings(steps=1), progress=False)
    return calls


def _flops(conv: torch.nn.Conv2d, shape) -> float:
    """Forward FLOPs of ``conv`` on an input of ``shape`` (a multiply-add is 2)."""
    n, _, h, w = shape
    kh, kw = conv.kernel_size
    oh = (h + 2 * conv.padding[0] - conv.dilation[0] * (kh - 1) - 1) // conv.stride[0] + 1
    ow = (w + 2 * conv.padding[1] - conv.dilation[1] * (kw - 1) - 1) // conv.stride[1] + 1
    return 2.0 * n * oh * ow * conv.out_channels * conv.in_channels // conv.groups * kh * kw


def _conv_peak_ms(calls, repeats: int) -> float:
    """Milliseconds for the step's convolutions alone, each a plain forward + backward to its
    input on one thread, the faster of torch's two CPU kernels (mkldnn's and its own; best of
    ``repeats``), summed."""
    g, total = torch.Generator().manual_seed(0), 0.0
    saved = torch.backends.mkldnn.enabled
    try:
        for conv, shape, last in calls:
            x = torch.randn(shape, generator=g)
            x = (x.contiguous(memory_format=torch.channels_last) if last else x).requires_grad_(True)
            best = float("inf")
            for mkldnn in (True, False):
                torch.backends.mkldnn.enabled = mkldnn
                for k in range(repeats + 1):  # the first call builds the kernel
                    t0 = time.thread_time()
                    y = conv(x)
                    torch.autograd.grad(y, x, y)
                    if k:
                        best = min(best, time.thread_time() - t0)
            total += best
    finally:
        torch.backends.mkldnn.enabled = saved
    return total * 1e3


def _step_ms(model, tap: str, channels: list[int], settings: FZSettings, batched: bool) -> tuple[float, float]:
    """(wall ms, thread CPU ms) of a median step, from one step's gradients to the next's (update,
    zero_grad, transforms, forward, backward), after a warm-up render. ``batched``: the batch's
    transforms as batched tensor operations (CUDA's default path; on the CPU not bit for bit the
    element-by-element FZs, so never the CPU's default): what giving up that would buy."""
    render(model, tap, channels, FZSettings(steps=1), progress=False, batched=batched)  # warm-up
    stamps = []
    render(model, tap, channels, settings, progress=False, batched=batched,
           on_step=lambda s, p: stamps.append((time.perf_counter(), time.thread_time())))
    return tuple(statistics.median(b[k] - a[k] for a, b in zip(stamps, stamps[1:])) * 1e3 for k in (0, 1))


def measure_tap(model, tap: str, batch: int, steps: int, top: int = 5) -> dict:
    channels = list(range(min(batch, find_block(model, block_of(tap)).channels)))
    settings = FZSettings(steps=steps + 1)
    wall_ms, step_ms = _step_ms(model, tap, channels, settings, batched=False)
    _, batched_ms = _step_ms(model, tap, channels, settings, batched=True)
    prof = profile(activities=[ProfilerActivity.CPU])

    def window(s, _params):  # the profile covers steps 1 ... steps, not the render's setup
        (prof.start if s == 0 else prof.stop if s == steps else lambda: None)()
    render(model, tap, channels, settings, progress=False, on_step=window)
    model_us, total_us, other = _split(prof.events())
    calls = _conv_calls(model, tap, channels)
    flops = 2 * sum(_flops(conv, shape) for conv, shape, _ in calls)  # forward and input gradient
    with one_thread("cpu"):
        peak_ms = _conv_peak_ms(calls, repeats=2)
    n = len(channels)
    return {"tap": tap, "batch": n, "step_ms": round(step_ms, 2), "fz_ms": round(step_ms / n, 3), "wall_ms": round(wall_ms, 2),
            "batched_step_ms": round(batched_ms, 2),
            "model_op_ms": round(model_us / 1e3 / steps, 2), "op_ms": round(total_us / 1e3 / steps, 2),
            "model_share": round(model_us / total_us, 4),
            "conv_gflop_per_step": round(flops / 1e9, 3), "conv_peak_ms": round(peak_ms, 2),
            "achieved_gflops": round(flops / 1e9 / (step_ms / 1e3), 2),
            "peak_gflops": round(flops / 1e9 / (peak_ms / 1e3), 2),
            "top_other_ms": {k: round(v / 1e3 / steps, 2) for k, v in sorted(other.items(), key=lambda kv: -kv[1])[:top]}}


def run(taps, batch: int, steps: int, out, top: int = 5) -> dict:
    model = load_model("resnet18", "random:0")
    for tap in taps:  # a bad tap: one line, before any work
        try:
            canonical_tap(model, tap)
        except (KeyError, ValueError) as e:
            raise SystemExit(f"floor.py: --taps {tap}: {e.args[0]}") from None
    say = lambda line="": print(line, file=out, flush=True)  # noqa: E731
    start_load = _loadavg()
    say(f"FZ engine floor, resnet18 random:0, CPU one thread, batch {batch}, {steps} steps; load average {start_load}")
    say(f"{'tap':6} {'step ms':>8} {'batched':>8} {'ms/FZ':>7} {'model ms':>9} {'op ms':>8} {'model':>6} "
        f"{'GFLOP':>6} {'conv ms':>8} {'GFLOP/s':>8} {'peak':>6}")
    rows = []
    with one_thread("cpu"):
        for tap in taps:
            r = measure_tap(model, tap, batch, steps, top)
            rows.append(r)
            say(f"{tap:6} {r['step_ms']:>8.1f} {r['batched_step_ms']:>8.1f} {r['fz_ms']:>7.2f} {r['model_op_ms']:>9.1f} {r['op_ms']:>8.1f} "
                f"{r['model_share']:>6.1%} {r['conv_gflop_per_step']:>6.2f} {r['conv_peak_ms']:>8.1f} "
                f"{r['achieved_gflops']:>8.1f} {r['peak_gflops']:>6.1f}")
            say("       largest other ops, ms per step: " + ", ".join(f"{k} {v:.1f}" for k, v in r["top_other_ms"].items()))
    # the paper bank: I and B of every channel of the seven blocks; per FZ: per step / batch
    fzs = {r["tap"]: find_block(model, block_of(r["tap"])).channels for r in rows}
    bank_model = sum(fzs[r["tap"]] * r["model_op_ms"] / r["batch"] for r in rows)
    bank_ops = sum(fzs[r["tap"]] * r["op_ms"] / r["batch"] for r in rows)
    end_load = _loadavg()
    say(f"bank model share (weighted by the paper bank's FZs per tap): {bank_model / bank_ops:.1%}; "
        f"load average {end_load}")
    return {"taps": {r["tap"]: r for r in rows},
            "model_share": {r["tap"]: r["model_share"] for r in rows},
            "bank_model_share": round(bank_model / bank_ops, 4), "bank_fzs": fzs,
            "batch": batch, "steps": steps, "threads": 1, "torch": torch.__version__,
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "loadavg_start": start_load, "loadavg_end": end_load}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--taps", default=",".join(TAPS), help="comma list (default: I and B of the seven studied blocks)")
    p.add_argument("--batch", type=int, default=16, help="channels per render (default 16, the CPU's bank batch)")
    p.add_argument("--steps", type=int, default=2, help="steps measured per timed and per profiled render (default 2)")
    p.add_argument("--top", type=int, default=5, help="list the N largest non-model ops per tap (default 5)")
    p.add_argument("--json", action="store_true", help="table to stderr, only the JSON line to stdout")
    args = p.parse_args(argv)
    if args.batch < 1 or args.steps < 1:
        p.error("--batch and --steps must be 1 or more")
    result = run(args.taps.split(","), args.batch, args.steps, sys.stderr if args.json else sys.stdout, args.top)
    if args.json:
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
