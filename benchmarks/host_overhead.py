"""Host time of one FZ step, the batched path against the element-by-element one, at a tiny
image size: what bounds a CUDA step when the host cannot feed the GPU fast enough.

    python benchmarks/host_overhead.py --json
    {"batch": 256, "host_ms_per_step": ..., "elementwise_ms_per_step": ..., "syncs_per_step": ..., ...}

A step here is all rsi does around the network: the image parameter, every element's own
transforms (jitter 4: pad, shift, scale, rotation, shift, crop), normalization, each element's
centre-neuron objective read on its image (standing in for the network, whose host cost is one
batched forward and backward in both paths, whatever the batch), the backward and Adam's update.
On one CPU thread, as renders run.

- ``host_ms_per_step``: the batched step's cost that does not grow with the batch: the
  intercept of its median step time against the batch size (fitted over batch/8 ... batch). On
  the CPU even a tiny batched step spends time in arithmetic that a GPU does in parallel: that
  is the slope (``batched_cpu_ms_per_element``); ``batched_cpu_ms_per_step`` is the whole time
  at ``batch``. ``ops_per_step`` (torch operations dispatched, backward included) depends on which
  of the five scales a step drew, not on the batch: the same at every batch once all occur.
- ``elementwise_ms_per_step``: the element-by-element step's median time at ``batch``; at this
  size nearly all of it is host work, and its operations grow with the batch.
- ``syncs_per_step``: what makes the host wait for the GPU in one step (on CUDA, torch's
  synchronization warnings; on the CPU, the operations that would: values read back and tensors
  made from host data, ``model.device.host_waits``). Adam's own update is left out of the CPU
  count: its step counter lives on the CPU even on CUDA, so reading it waits for nothing.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # a plain checkout: rsi_core beside benchmarks/

import argparse
import json
import statistics
import time

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from rsi_core.fz.objectives import centre_neuron
from rsi_core.fz.render import BatchedImages, ElementImages, element_streams, one_thread
from rsi_core.fz.transform import Draws
from rsi_core.model.device import host_waits

WARMUP = 2


class _Ops(TorchDispatchMode):
    count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def measure(source_class, batch: int, size: int, jitter: int, steps: int, device) -> dict:
    """Median wall milliseconds per step over ``steps`` steps; the host waits and the torch
    operations of one step."""
    device = torch.device(device)
    init, rngs = element_streams(0, "host-overhead", range(batch), device, size)
    source = source_class(init, Draws.run(rngs, jitter, WARMUP + 2 + steps), size=size)
    channels = torch.arange(batch, device=device) % 3
    optimizer = torch.optim.Adam(source.params, lr=0.05)

    def forward_backward(s):
        optimizer.zero_grad()
        loss = 0
        for idx, x, _ in source.batches(s):
            loss = loss - centre_neuron(x, channels[idx]).sum()
        loss.backward()

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    with one_thread(device):
        for s in range(WARMUP):
            forward_backward(s)
            optimizer.step()
        sync()
        with host_waits(device) as waits:
            forward_backward(WARMUP)
            if device.type == "cuda":
                optimizer.step()
        if device.type != "cuda":
            optimizer.step()
        with _Ops() as ops:
            forward_backward(WARMUP + 1)
            optimizer.step()
        times = []
        for s in range(WARMUP + 2, WARMUP + 2 + steps):
            t0 = time.perf_counter()
            forward_backward(s)
            optimizer.step()
            sync()
            times.append(time.perf_counter() - t0)
    return {"ms_per_step": statistics.median(times) * 1e3, "waits": len(waits), "ops": ops.count}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--size", type=int, default=8, help="image side in pixels, even (default 8)")
    p.add_argument("--jitter", type=int, default=4, help="below --size (default 4: the whole chain)")
    p.add_argument("--steps", type=int, default=20, help="timed steps per batch size (default 20; a quarter element by element)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true", help="print only the JSON line")
    args = p.parse_args(argv)
    if args.batch < 8 or args.steps < 1 or args.size < 4 or args.size % 2 or args.jitter >= args.size:
        p.error("use --batch of at least 8, --steps of at least 1, an even --size of at least 4 and --jitter below it")
    batches = [args.batch // 8, args.batch // 4, args.batch // 2, args.batch]
    batched = {b: measure(BatchedImages, b, args.size, args.jitter, args.steps, args.device) for b in batches}
    per_element, intercept = np.polyfit(batches, [batched[b]["ms_per_step"] for b in batches], 1)
    element = measure(ElementImages, args.batch, args.size, args.jitter, max(1, args.steps // 4), args.device)
    result = {"batch": args.batch, "host_ms_per_step": round(float(intercept), 3),
              "elementwise_ms_per_step": round(element["ms_per_step"], 3),
              "syncs_per_step": batched[args.batch]["waits"], "elementwise_syncs_per_step": element["waits"],
              "batched_cpu_ms_per_step": round(batched[args.batch]["ms_per_step"], 3),
              "batched_cpu_ms_per_element": round(float(per_element), 4),
              "batched_ms_per_step_by_batch": {b: round(r["ms_per_step"], 3) for b, r in batched.items()},
              "ops_per_step": {b: r["ops"] for b, r in batched.items()}, "elementwise_ops_per_step": element["ops"],
              "size": args.size, "jitter": args.jitter, "device": args.device, "torch": torch.__version__}
    if not args.json:
        print(f"batch {args.batch}, {args.size} px, jitter {args.jitter}, {args.device}: batched step "
              f"{result['host_ms_per_step']:.2f} ms of host time ({result['syncs_per_step']} host waits, "
              f"{result['ops_per_step'][args.batch]} ops at any batch); element by element "
              f"{result['elementwise_ms_per_step']:.1f} ms ({result['elementwise_syncs_per_step']} host waits, "
              f"{result['elementwise_ops_per_step']} ops)")
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
