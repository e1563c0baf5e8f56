"""``rsi bench fz``: seconds per FZ, the paper's way (lucent) against the engine, on one model.

The paper's way: torch-lucent's ``render_vis`` on the full model, one neuron per call, with the
paper's parameterization (``param.image(224, decorrelate=True)``), transforms (SPEC, by tap) and
Adam (lr 0.05). Lucent's own module hooks cannot read our taps (torchvision adds the identity
into bn2's output in place), so its objective reads ``TapCapture`` hooks filled during lucent's
own full forward pass. The engine's way: ``rsi_core.fz.render.render`` with a batch of channels
(one optimization, each element its own channel), divided by the batch size.

Both run on ``resnet18`` with ``random:0`` weights (speed does not depend on the weights), for
the I and B taps of the seven studied blocks, the same number of steps, each warmed up first.
The last line printed is one JSON object; ``speedup`` = total lucent time / total engine time,
per FZ, summed over the taps.

The paper's way needs torch-lucent 0.1.8 and kornia 0.4.1 (``pip install 'rsi[reference]'``); the
engine needs neither. ``lucent_render`` is also the reference of ``tests/test_reference.py``.

On the CPU both sides run on one thread (``fz.render.one_thread``: torch's CPU kernels round by
thread count, so an FZ is only reproducible on one). Timings on a busy machine vary by about
+-30 %; ``--repeats`` keeps the best of several alternating runs.
"""
from __future__ import annotations

import contextlib
import copy
import importlib
import json
import platform
import sys
import time
import types
import warnings

import numpy as np
import torch

from rsi_core.fz.bank import default_batch_size
from rsi_core.fz.render import FZSettings, element_streams, one_thread, optimized_tap, render
from rsi_core.fz.transform import ANGLES, SCALES, jitter_for
from rsi_core.model.anatomy import TapCapture, block_of, canonical_tap, centre_crop_window, find_block
from rsi_core.model.anatomy import tap as tap_name
from rsi_core.model.load import load_model
from rsi_core.paper import PAPER_BLOCKS, PAPER_STEPS

PAPER_FZS = "I and B of every channel of the seven studied blocks"
WARMUP_STEPS = 2


REFERENCE_HINT = "the paper's lucent loop needs torch-lucent 0.1.8 and kornia 0.4.1: pip install 'rsi[reference]'"


def lucent(module: str = "lucent.optvis.transform"):
    """A torch-lucent module (the ``[reference]`` extra); without it, one line that says how to get it."""
    with warnings.catch_warnings():  # kornia 0.4.1 calls torch.jit.script at import: torch's FutureWarning
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
        try:
            return importlib.import_module(module)
        except ImportError as e:
            raise SystemExit(f"rsi: {REFERENCE_HINT} ({e})") from None


def lucent_image_parameter(device, init: torch.Tensor, size: int = 224):
    """lucent's own decorrelated Fourier image parameter (``fft_image`` + its colour matrix), with
    the spectrum ``init``: the reference of ``rsi_core.fz.image``. lucent's colour step moves its
    matrix to cuda:0 whenever CUDA is available and its Fourier parameter reads a module-level
    device, so the matrix is applied here and lucent's device is set only while it builds."""
    spatial, color = lucent("lucent.optvis.param.spatial"), lucent("lucent.optvis.param.color")
    device = torch.device(device)
    saved, spatial.device = spatial.device, device
    try:
        params, fourier = spatial.fft_image([len(init), 3, size, size])
    finally:
        spatial.device = saved
    with torch.no_grad():
        params[0].copy_(init)
    colour = torch.tensor(color.color_correlation_normalized.T).to(device)
    return params, lambda: torch.sigmoid(torch.matmul(fourier().permute(0, 2, 3, 1), colour).permute(0, 3, 1, 2))


def transforms_for(jitter: int, device: torch.device | str = "cpu", size: int = 224) -> list:
    """SPEC's transform list for a jitter value, as lucent's own transforms (for ``render_vis``;
    normalization is applied after these)."""
    from torchvision.transforms.functional import center_crop
    lt = lucent()
    lt.device = torch.device(device)  # lucent builds its warp matrices there
    scale_rotate = [lt.random_scale(SCALES), lt.random_rotate(ANGLES)]
    if jitter < 4:
        return scale_rotate
    return [lt.pad(jitter), lt.jitter(jitter), *scale_rotate, lt.jitter(jitter // 2), lambda x: center_crop(x, [size, size])]


@contextlib.contextmanager
def lucent_draws(rng: np.random.Generator):
    """lucent's transforms draw from ``rng`` (instead of numpy's global RNG) inside this block."""
    lt = lucent()
    shim = types.SimpleNamespace(**{k: getattr(np, k) for k in ("ceil", "pi")},
                                 random=types.SimpleNamespace(choice=rng.choice))
    saved, lt.np = lt.np, shim
    try:
        yield
    finally:
        lt.np = saved


def default_steps(device) -> int:
    return 128 if torch.device(device).type == "cuda" else 16


def lucent_render(model, tap: str, channel: int, steps: int, seed: int = 0, device="cpu",
                  lr: float = 0.05, jitter_table: str = "paper", target: str = "as-written",
                  objective=None) -> np.ndarray:
    """One FZ the paper's way: lucent's ``render_vis`` on the full model, driven by the channel's
    own random stream (``element_streams``: initial spectrum and transform draws), so it is the
    engine's element for that channel. ``objective``: a lucent objective (e.g. the authors'
    literal ``objectives.neuron("layer2_1_bn2", c)``); by default the centre neuron of what
    ``target`` optimizes, read with ``TapCapture``. Returns lucent's final image
    [1, 224, 224, 3] as floats in [0, 1] (quantize with ``(x * 255).astype(uint8)``)."""
    lucent_objectives, render_vis = lucent("lucent.optvis.objectives"), lucent("lucent.optvis.render").render_vis
    device = torch.device(device)
    lmodel = copy.deepcopy(model)  # render_vis leaves its hooks (and their tensors) on the model
    tap = canonical_tap(model, tap)
    read, relu = optimized_tap(model, tap, target)
    init, (rng,) = element_streams(seed, tap, [channel], device)
    transforms = transforms_for(jitter_for(tap, jitter_table), device)
    with TapCapture(lmodel, [read], stop=False) as cap:
        def centre(_hook):
            a = torch.relu(cap.acts[read]) if relu else cap.acts[read]
            return -a[:, channel, a.shape[2] // 2, a.shape[3] // 2].mean()

        with lucent_draws(rng), one_thread(device):  # as the engine: CPU kernels round by thread count
            images = render_vis(lmodel, objective or lucent_objectives.Objective(centre),
                                lambda: lucent_image_parameter(device, init),
                                optimizer=lambda params: torch.optim.Adam(params, lr=lr),
                                transforms=transforms, thresholds=(steps,), show_image=False,
                                progress=False)
    return images[-1]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def measure_tap(model, tap: str, steps: int, batch: int, device, repeats: int = 1) -> dict:
    """Seconds per FZ for one tap, lucent (1 neuron) and engine (``batch`` channels); with
    ``repeats`` > 1 the two sides alternate and each keeps its fastest time."""
    channels = list(range(min(batch, find_block(model, block_of(tap)).channels)))
    settings, warm = FZSettings(steps=steps), FZSettings(steps=WARMUP_STEPS)
    lucent_render(model, tap, 0, WARMUP_STEPS, device=device)
    render(model, tap, channels, warm, device=device, progress=False)
    lucent_s = engine_s = float("inf")
    for _ in range(max(1, repeats)):
        lucent_s = min(lucent_s, _timed(lambda: lucent_render(model, tap, 0, steps, device=device), device))
        engine_s = min(engine_s, _timed(
            lambda: render(model, tap, channels, settings, device=device, progress=False), device))
    window = centre_crop_window(model, tap, 224, 224)
    crop = 1.0 if window is None else (window[0][1] - window[0][0]) * (window[0][3] - window[0][2]) / 224 ** 2
    return {"tap": tap, "jitter": jitter_for(canonical_tap(model, tap)), "crop_area": round(crop, 3), "batch": len(channels),
            "lucent_s_per_fz": lucent_s, "engine_s_per_fz": engine_s / len(channels),
            "ratio": lucent_s / (engine_s / len(channels))}


def run(steps: int | None = None, device: str | None = None, batch: int | None = None,
        blocks=PAPER_BLOCKS, kinds="IB", repeats: int = 1,
        out=sys.stdout) -> dict:
    lucent()  # the [reference] extra, before any work
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    steps = steps or default_steps(device)
    batch = batch or default_batch_size(device)
    model = load_model("resnet18", "random:0", device)

    def say(line=""):
        print(line, file=out, flush=True)

    say(f"FZ speed on {device} ({_device_name(device)}{', one CPU thread' if device.type == 'cpu' else ''}), "
        f"{steps} steps, engine batch {batch}, best of {max(1, repeats)}, resnet18 random:0")
    say(f"{'block':5} {'tap':3} {'jit':>3} {'crop':>5} {'lucent s/FZ':>12} {'engine s/FZ':>12} {'ratio':>7}")
    rows = []
    for b in blocks:
        for k in kinds:
            r = measure_tap(model, tap_name(b, k), steps, batch, device, repeats)
            rows.append(r)
            say(f"{b:5} {k:3} {r['jitter']:>3} {r['crop_area']:>5.2f} {r['lucent_s_per_fz']:>12.3f} "
                f"{r['engine_s_per_fz']:>12.4f} {r['ratio']:>6.1f}x")
    per_block = {}
    for b in blocks:
        mine = [r for r in rows if r["tap"].startswith(b + ".")]
        per_block[b] = sum(r["lucent_s_per_fz"] for r in mine) / sum(r["engine_s_per_fz"] for r in mine)
    lucent_total = sum(r["lucent_s_per_fz"] for r in rows)
    engine_total = sum(r["engine_s_per_fz"] for r in rows)
    speedup = lucent_total / engine_total
    say("per block (I + B): " + ", ".join(f"{b} {v:.1f}x" for b, v in per_block.items()))
    say(f"total over {len(rows)} taps, one FZ each: lucent {lucent_total:.2f} s, engine {engine_total:.3f} s, "
        f"speedup {speedup:.2f}x")

    # extrapolation: per-step cost x paper steps x channels of each tap (not measured)
    def bank_s(key):
        return sum(r[key] / steps * PAPER_STEPS * find_block(model, block_of(r["tap"])).channels
                   for r in rows)

    extrapolated = {"engine_s": bank_s("engine_s_per_fz"), "lucent_s": bank_s("lucent_s_per_fz"),
                    "fzs": sum(find_block(model, block_of(r["tap"])).channels for r in rows),
                    "steps": PAPER_STEPS}
    full = set(blocks) == set(PAPER_BLOCKS) and kinds == "IB"
    say(f"EXTRAPOLATION (not measured): the {'full paper bank, ' + PAPER_FZS if full else 'bank of these taps'}"
        f" ({extrapolated['fzs']:,} FZs) at {PAPER_STEPS:,} steps on this device would take about "
        f"{extrapolated['engine_s'] / 3600:.1f} h with the engine and {extrapolated['lucent_s'] / 3600:.1f} h "
        f"the paper's way (per-step costs measured over {steps} steps, scaled linearly)")
    result = {
        "speedup": round(speedup, 3),
        "per_block": {b: round(v, 3) for b, v in per_block.items()},
        "per_tap": {r["tap"]: {"lucent_s_per_fz": round(r["lucent_s_per_fz"], 4),
                               "engine_s_per_fz": round(r["engine_s_per_fz"], 5),
                               "ratio": round(r["ratio"], 3)} for r in rows},
        "lucent_total_s_per_fz": round(lucent_total, 4), "engine_total_s_per_fz": round(engine_total, 5),
        "device": str(device), "device_name": _device_name(device), "threads": 1 if device.type == "cpu" else None,
        "steps": steps, "batch": batch, "repeats": max(1, repeats), "torch": torch.__version__,
        "extrapolated_paper_bank": {**{k: round(v, 1) if isinstance(v, float) else v
                                       for k, v in extrapolated.items()}, "note": "extrapolation, not measured"},
    }
    return result


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


def main(args) -> int:
    """``rsi bench fz`` and ``benchmarks/fz_speed.py``. With ``--json`` the table goes to
    stderr and only the JSON line to stdout."""
    table = sys.stderr if getattr(args, "json", False) else sys.stdout
    result = run(steps=args.steps, device=args.device, batch=getattr(args, "batch_size", None),
                 blocks=getattr(args, "blocks", None) or PAPER_BLOCKS,
                 kinds=getattr(args, "taps", None) or "IB",
                 repeats=getattr(args, "repeats", None) or 1,
                 out=table)
    print(json.dumps(result), flush=True)
    return 0
