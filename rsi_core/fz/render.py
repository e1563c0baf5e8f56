"""The FZ optimization loop: the paper's lucent recipe, batched across channels and truncated.

One optimization carries many channels of one tap; element n of the batch has its own image
parameter (lucent's ``param.image(224, decorrelate=True)``, ``fz.image``) and its own objective. For
centre-neuron objectives the forward (``CentreCone``) stops at the tap and sees only the
stride-aligned cone the centre neuron depends on: the image is cut to its receptive field and
each block's input to what the neuron needs. The activation and the input gradient are those of
the full forward pass up to float rounding (pixels outside the cut have zero gradient either
way). ``crop=False`` keeps the reference path (the model's own forward, read by
``TapCapture``), which follows lucent's ``render_vis`` step for step.

Each element is independent of its batch: its image initialization and every transform draw come
from its own random stream, derived from (seed, canonical tap, channel) (``element_streams``), so
channel c's FZ is the same alone, in any batch and at any position, and equals a lucent
``render_vis`` run driven by the same stream (``rsi_core.fz.bench.lucent_render``). Image
parameters are batch-1 each (lucent's batched colour matmul rounds by batch size). On the CPU:
- everything runs on one thread (``one_thread``: torch's CPU kernels round by thread count);
- each element's transform chain runs alone, with the cone over the cone's window only
  (``transform.cut``: the same values bit for bit);
- the cone runs batched, never as a batch of one: mkldnn rounds a batch of one differently from
  any other, and any batch of two or more alike (values and gradients, on one thread), so the
  result does not depend on the batch; Adam would amplify such rounding into visibly different
  FZs within tens of steps. The reference path (``crop=False``) runs each element alone, as
  lucent does.
On CUDA the transforms and the forward are batched: there the FZ can still differ by rounding
with the batch (cuDNN picks kernels by shape).

Two readings of what an FZ optimizes (``FZSettings.target``, SPEC "What the authors' code
optimized"): "as-written" optimizes the tap itself; "as-run" what the authors' lucent hooks read,
the post-ReLU block output: a B tap's block ReLU(O), a simple block's I the previous block's
ReLU(O) (a downsample block's I is unchanged). ``optimized_tap`` says which.
"""
from __future__ import annotations

import contextlib
import itertools
import zlib
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.utils.fusion import fuse_conv_bn_eval

from rsi_core.fz import resume
from rsi_core.fz.image import image_parameter
from rsi_core.fz.objectives import OBJECTIVES
from rsi_core.fz.transform import SCALES, BatchedChain, Draws, apply, cut, final_side, jitter_of
from rsi_core.model import progress as counters
from rsi_core.model.anatomy import (
    TAP_KINDS,
    TapCapture,
    aligned_window,
    anatomy_of,
    canonical_tap,
    map_size,
    parse_tap,
    preprocess_of,
    taps_of,
)
from rsi_core.model.anatomy import tap as tap_name
from rsi_core.model.device import tf32_flags
from rsi_core.model.images import PAPER_PREPROCESS, Preprocess, normalize
from rsi_core.paper import IMAGE_SIZE, JITTER_TABLES, PAPER_STEPS, READINGS


@dataclass(frozen=True)
class FZSettings:
    """Everything that changes an FZ; it goes into every cache key."""
    steps: int = PAPER_STEPS
    lr: float = 0.05
    objective: str = "neuron"       # "neuron" (centre neuron) or "channel" (whole-map mean)
    jitter_table: str = "paper"     # see transform.JITTER_TABLES
    crop: bool = True               # forward only the receptive-field crop (exact)
    seed: int = 0
    precision: str = "fp32"         # "fp32", or on CUDA "tf32" / "bf16" (autocast)
    target: str = "as-written"      # "as-written" (the tap) or "as-run" (post-ReLU block output)

    def __post_init__(self):  # a library caller's typo is an error too, never a silently other FZ
        if self.target not in READINGS:
            raise ValueError(f"unknown FZ target {self.target!r}: use one of {', '.join(READINGS)}")
        if not (isinstance(self.steps, int) and self.steps >= 1):
            raise ValueError(f"FZ steps {self.steps!r}: use 1 or more (0 steps would cache the unoptimized start)")
        for field, value, known in (("objective", self.objective, tuple(OBJECTIVES)),
                                    ("precision", self.precision, ("fp32", "tf32", "bf16")),
                                    ("jitter table", self.jitter_table, tuple(JITTER_TABLES))):
            if value not in known:
                raise ValueError(f"unknown FZ {field} {value!r}: use one of {', '.join(known)}")

    def describe(self) -> dict:
        return asdict(self)



def optimized_tap(model, tap: str, target: str = "as-written") -> tuple[str, bool]:
    """(tap whose map the objective reads, whether ReLU is applied first) for an FZ of ``tap``.
    "as-run": B and O taps read the block's ReLU(O) (a simple block's I is its previous block's
    O, so it reads that block's ReLU(O)); a downsample block's I and the stem's output are read
    as they are."""
    if target not in READINGS:
        raise ValueError(f"unknown FZ target {target!r}: use one of {', '.join(READINGS)}")
    canonical = canonical_tap(model, tap)
    name, kind = parse_tap(canonical)
    if target == "as-run" and kind in ("B", "O"):
        return tap_name(name, "O"), True
    return canonical, False


def effective_target(model, tap: str, target: str) -> str:
    """``target``, or "as-written" where "as-run" optimizes the same thing (shared cache entries)."""
    return target if optimized_tap(model, tap, target) != optimized_tap(model, tap, "as-written") else "as-written"


def element_streams(seed: int, tap: str, channels, device="cpu", size: int = IMAGE_SIZE) -> tuple[torch.Tensor, list]:
    """Each channel's own random stream, from (seed, tap, channel): its initial Fourier spectrum
    (lucent's ``fft_image`` init, batch 1: ``randn * 0.01``, drawn on the CPU) stacked to
    [N, 3, 224, 113, 2] (for ``size`` 224), and its numpy Generator for the transform draws."""
    inits, rngs = [], []
    for c in channels:
        ss = np.random.SeedSequence([int(seed), zlib.crc32(tap.encode()), int(c)])
        torch_seed, np_seed = ss.spawn(2)
        g = torch.Generator().manual_seed(int(torch_seed.generate_state(1, np.uint64)[0] >> 1))
        inits.append(torch.randn(1, 3, size, size // 2 + 1, 2, generator=g) * 0.01)
        rngs.append(np.random.default_rng(np_seed))
    return torch.cat(inits).to(device), rngs


def quantize(images: torch.Tensor) -> np.ndarray:
    """[N, 3, H, W] in [0, 1] -> [N, H, W, 3] uint8, truncating as the authors' PNG export does."""
    return (images.detach().permute(0, 2, 3, 1).cpu().numpy() * 255).astype(np.uint8)


def dequantize(images: np.ndarray, device="cpu", preprocess: Preprocess = PAPER_PREPROCESS) -> torch.Tensor:
    """uint8 PNG pixels -> normalized model input (ToTensor + the weights' Normalize, no resize)."""
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float() / 255
    return normalize(x, preprocess)


def _autocast(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


class _StemGradient(torch.autograd.Function):
    """The stem convolution on the CPU, its input gradient computed with the arithmetic of torch's
    own kernel (``_stem_input_gradient``): mkldnn's is three times slower for three input channels
    (11.6 against 4.0 ms per 224 x 224 image, one thread; the cone of 2.0.B backpropagates 20 %
    faster), and torch's does not depend on the batch. The forward is mkldnn's."""

    @staticmethod
    def forward(ctx, x, conv):
        ctx.conv, ctx.shape, ctx.dtype = conv, x.shape, x.dtype
        return conv(x)

    @staticmethod
    def backward(ctx, grad):
        conv = ctx.conv
        if grad.dtype == torch.float32 and conv.groups == 1:  # float64's own kernel sums otherwise
            return _stem_input_gradient(grad, conv, ctx.shape), None
        saved = torch.backends.mkldnn.enabled
        torch.backends.mkldnn.enabled = False
        try:  # in the gradient's dtype (bf16 under autocast), returned in the input's
            gx = torch.ops.aten.convolution_backward(
                grad.contiguous(), grad.new_empty(ctx.shape), conv.weight.to(grad.dtype), None, conv.stride,
                conv.padding, conv.dilation, False, [0, 0], conv.groups, [True, False, False])[0]
        finally:
            torch.backends.mkldnn.enabled = saved
        return gx.to(ctx.dtype), None


def _stem_input_gradient(grad: torch.Tensor, conv: torch.nn.Conv2d, shape) -> torch.Tensor:
    """The input gradient of ``conv`` (groups 1) as torch's own CPU kernel (slow_conv2d) computes
    it, bit for bit (``tests/test_fz.py``): per image, weight^T @ gradient, then col2im. The
    gradient is read where it lies: mkldnn's channels-last one needs no copy to NCHW first (16 x
    64 x 112 x 112: 104 against 132 ms of thread time with the copy, one thread)."""
    n, c, h, w = grad.shape
    wt = conv.weight.reshape(c, -1).t()
    rows = grad.permute(0, 2, 3, 1).reshape(n, h * w, c)  # a view of a channels-last gradient
    out = grad.new_empty(shape)
    for i in range(n):
        out[i] = F.fold(torch.mm(wt, rows[i].t()), tuple(shape[2:]), conv.kernel_size, conv.dilation, conv.padding,
                        conv.stride)
    return out


class _Window(torch.autograd.Function):
    """``x[:, :, y0:y1, x0:x1]`` whose gradient keeps ``x``'s memory format: autograd's own
    slice backward makes a contiguous one, which the channels-last max-pool backward before it
    then copies back (80 ms per 16 maps of 109 x 109 on one thread)."""

    @staticmethod
    def forward(ctx, x, window):
        ctx.shape, ctx.window = x.shape, window
        ctx.format = torch.channels_last if x.dim() == 4 and not x.is_contiguous() and \
            x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
        y0, y1, x0, x1 = window
        return x[:, :, y0:y1, x0:x1]

    @staticmethod
    def backward(ctx, grad):
        out = torch.empty(ctx.shape, dtype=grad.dtype, device=grad.device, memory_format=ctx.format).zero_()
        y0, y1, x0, x1 = ctx.window
        out[:, :, y0:y1, x0:x1] = grad
        return out, None


def _fold(conv: torch.nn.Conv2d, bn: torch.nn.BatchNorm2d) -> torch.nn.Conv2d:
    """``bn(conv(x))`` as one convolution (eval-mode statistics folded into its weights: the same
    function to float rounding, one pass over the map instead of two, forward and backward)."""
    folded = fuse_conv_bn_eval(conv, bn)
    folded.requires_grad_(False)
    return folded


def _fold_block(blk) -> tuple[list, torch.nn.Module | None]:
    """A block's branch convolutions (BatchNorms folded; ReLU between them) and its downsample."""
    pairs = [(blk.conv1, blk.bn1), (blk.conv2, blk.bn2)] + ([(blk.conv3, blk.bn3)] if hasattr(blk, "conv3") else [])
    down = blk.downsample
    if isinstance(down, torch.nn.Sequential) and len(down) == 2 and isinstance(down[1], torch.nn.BatchNorm2d):
        down = _fold(down[0], down[1])
    return [_fold(c, b) for c, b in pairs], down


class CentreCone:
    """The forward pass to the centre neuron of ``tap`` with the image, and then every block's
    input, cut to the region that neuron depends on (its receptive-field cone), each cut aligned
    to the stride so every later grid stays the same. The neuron's value and its input gradient
    are those of the full forward pass; the work outside the cone is skipped.
    ``cone(image)`` -> (the tap's map, cut, and the centre neuron's (y, x) in it). The blocks run
    as torchvision's ``BasicBlock`` / ``Bottleneck`` forward does (timm's plain ResNets alike), each BatchNorm folded into its
    convolution (eval mode: the same function to float rounding, half the passes over the maps);
    B is read before the addition and O before the ReLU, as ``TapCapture`` reads them."""

    def __init__(self, model, tap: str):
        record = anatomy_of(model)
        name, self.kind = parse_tap(tap)
        self.model, self.blocks = model, record.blocks
        self.index = record.index(name)
        self.path = record.path(tap)
        # a simple block's I is the previous block's O: the pass ends with that block
        self.simple_input = record.canonical(tap) != tap
        # length of the path from the image to block k's input (stem: conv1, max-pool)
        self.prefix = [len(self.blocks[k - 1].convs) if k else 2 for k in range(len(self.blocks))]
        # each convolution with its BatchNorm folded in (the same function to float rounding)
        self.stem = _fold(model.conv1, model.bn1)
        self.folded = [_fold_block(b.module) for b in self.blocks[:self.index + 1]]  # the blocks it runs

    @staticmethod
    def _cut(path: tuple, position, *maps):
        """``maps`` cut to what output ``position`` of ``path`` depends on, and its new index."""
        (y0, y1, iy), (x0, x1, ix) = (aligned_window(path, maps[0].shape[d], position[d - 2]) for d in (2, 3))
        if (y0, y1, x0, x1) == (0, maps[0].shape[2], 0, maps[0].shape[3]):  # the whole map: nothing to cut
            return list(maps), (iy, ix)
        return [_Window.apply(t, (y0, y1, x0, x1)) for t in maps], (iy, ix)

    def window(self, side: int):
        """The centre neuron's cone in a side x side image, (y0, y1, x0, x1), and that neuron's
        index in the tap's map of the cut (images of different sizes may give cuts that stack)."""
        (y0, y1, iy), (x0, x1, ix) = [aligned_window(self.path, side, map_size(self.path, side) // 2)] * 2
        return (y0, y1, x0, x1), (iy, ix)

    def cut_image(self, image: torch.Tensor):
        """The (square) image cut to the centre neuron's cone, and the neuron's index in the cut."""
        (y0, y1, x0, x1), position = self.window(image.shape[-1])
        return image[:, :, y0:y1, x0:x1], position

    def __call__(self, image: torch.Tensor):
        return self.forward_cut(*self.cut_image(image))

    def forward_cut(self, x: torch.Tensor, position):
        m = self.model
        if x.device.type == "cpu":  # mkldnn's convolutions and max-pool run faster so
            x = _StemGradient.apply(x.contiguous(memory_format=torch.channels_last), self.stem)
        else:
            x = self.stem(x)
        x = m.maxpool((m.relu if hasattr(m, "relu") else m.act1)(x))  # torchvision's stem ReLU, timm's
        prev_o = x
        last = self.index - 1 if self.simple_input else self.index
        for k in range(last + 1):
            rest = self.path[self.prefix[k]:]
            if rest:
                (x, prev_o), position = self._cut(rest, position, x, prev_o)
            convs, downsample = self.folded[k]
            if k == self.index and self.kind == "I":  # here only for a downsample (or first) block
                return (downsample(x) if downsample is not None else prev_o), position
            out = x
            for i, conv in enumerate(convs):
                out = conv(out) if i == len(convs) - 1 else torch.relu(conv(out))
            if k == self.index and self.kind == "B":
                return out, position
            prev_o = out + (x if downsample is None else downsample(x))  # O, pre-ReLU
            if k == self.index:
                return prev_o, position
            x = torch.relu(prev_o)
        return prev_o, position  # the previous block's O: a simple block's I


def tf32(settings: FZSettings) -> tuple[bool, bool]:
    """(matmul, cuDNN convolutions) allowed to use TF32 on CUDA: with ``precision`` "tf32" both;
    "as-run" also lets the convolutions use it, as the authors' torch 2.0 did by default."""
    on = settings.precision == "tf32"
    return on, on or settings.target == "as-run"


def _stack(elements: list) -> list:
    """(indices, image, centre position) per element or group -> one batch per image shape and
    position: cuts of different sizes often stack."""
    buckets = {}
    for idx, x, position in elements:
        buckets.setdefault((tuple(x.shape[2:]), position), []).append((idx, x))
    return [(sum((i for i, _ in b), []), torch.cat([x for _, x in b]), key[1]) for key, b in buckets.items()]


@contextlib.contextmanager
def one_thread(device):
    """On the CPU, run on one thread: torch's CPU kernels round by thread count (the scale's
    bilinear kernel, the convolutions' gradients by batch split), which the optimization amplifies
    into another FZ; parallelism comes from workers (``-n``) and shards instead."""
    saved = torch.get_num_threads()
    if torch.device(device).type == "cpu":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


class ElementImages:
    """One image parameter per element (batch 1 each) and each element's transforms alone, with
    the cone over its window only (``transform.cut``): an element's values do not depend on its
    batch, bit for bit (the CPU's default; a Python loop over the elements in every step)."""

    def __init__(self, init: torch.Tensor, draws: Draws, cone: CentreCone | None = None, size: int = IMAGE_SIZE,
                 preprocess: Preprocess = PAPER_PREPROCESS):
        self.images_f = [image_parameter(init.device, init[k:k + 1], size) for k in range(len(init))]
        self.params = [p for ps, _ in self.images_f for p in ps]
        self.draws, self.cone, self.size, self.preprocess = draws, cone, size, preprocess

    def batches(self, s: int) -> list:
        """Step ``s``: (element indices, normalized images, centre position in them) per batch
        the forward runs on."""
        drawn, jitter, cone, elements = self.draws.step(s), self.draws.jitter, self.cone, []
        for n, (_, image_f) in enumerate(self.images_f):
            if cone is None:
                (_, x), = apply(image_f(), drawn[n:n + 1], jitter, self.size)
                elements.append(([n], normalize(x, self.preprocess), None))
            else:
                window, position = cone.window(final_side(drawn[n], jitter, self.size))
                elements.append(([n], normalize(cut(image_f(), drawn[n], jitter, window, self.size), self.preprocess),
                                 position))
        return _stack(elements) if cone is not None else elements

    def images(self) -> torch.Tensor:
        return torch.cat([f() for _, f in self.images_f])


class BatchedImages:
    """One image parameter for the whole batch and every element's own transform draws applied
    as batched tensor operations (``transform.BatchedChain``): a step's host cost does not grow
    with the batch and nothing in a step waits for the device (CUDA's default). Each element's
    values are ``ElementImages``' to float rounding, not bit for bit: batched kernels round by
    batch size."""

    def __init__(self, init: torch.Tensor, draws: Draws, cone: CentreCone | None = None, size: int = IMAGE_SIZE,
                 preprocess: Preprocess = PAPER_PREPROCESS):
        self.params, self.image_f = image_parameter(init.device, init, size)
        self.cone = cone
        # normalize()'s constants made once: made in every step, each would be a blocking copy to the GPU
        self.mean, self.std = (torch.tensor(v, device=init.device).view(1, 3, 1, 1) for v in (preprocess.mean, preprocess.std))
        sides = [final_side({"scale": s}, draws.jitter, size) for s in SCALES]
        # the scales whose images run through the forward together: same side, or same cut and centre
        if cone is None:
            self.keys = sides
        else:
            self.windows = [cone.window(n) for n in sides]
            self.keys = [((y1 - y0, x1 - x0), position) for (y0, y1, x0, x1), position in self.windows]
        self.chain = BatchedChain(draws, init.device, size, key=self.keys.__getitem__)

    def batches(self, s: int) -> list:
        """Step ``s``: (element indices as a device tensor, normalized images, centre position)."""
        perm, out = self.chain.perm[s], []
        for key, same in itertools.groupby(self.chain(self.image_f(), s), key=lambda group: self.keys[group[0]]):
            run, parts = list(same), []
            for k, _, _, g in run:
                if self.cone is not None:
                    y0, y1, x0, x1 = self.windows[k][0]
                    g = g[..., y0:y1, x0:x1]
                parts.append(g)
            x = torch.cat(parts) if len(parts) > 1 else parts[0]
            position = key[1] if self.cone is not None else None
            out.append((perm[run[0][1]:run[-1][2]], (x - self.mean) / self.std, position))
        return out

    def images(self) -> torch.Tensor:
        return self.image_f()


class Adam(torch.optim.Adam):
    """torch's Adam, without its graph-capture check when every parameter is on the CPU: that
    check asks CUDA for its current stream whenever CUDA is available, which creates a CUDA
    context on the GPU for a CPU render (held memory; refused on busy exclusive-process GPUs)."""

    def _off_cpu(self) -> bool:
        return any(p.device.type != "cpu" for g in self.param_groups for p in g["params"])

    def _accelerator_graph_capture_health_check(self):  # torch >= 2.6
        if self._off_cpu():
            super()._accelerator_graph_capture_health_check()

    def _cuda_graph_capture_health_check(self):  # torch < 2.6
        if self._off_cpu():
            super()._cuda_graph_capture_health_check()


def render(model, tap: str, channels, settings: FZSettings = FZSettings(), device="cpu",
           progress: bool = True, batched: bool | None = None, on_step=None,
           checkpoint=None) -> dict[str, np.ndarray]:
    """Optimize one image per channel of ``tap`` (each element independent of the others);
    return ``images`` ([N, 224, 224, 3] uint8) and ``reached`` (each element's objective at the
    last step, on its transformed image). ``batched``: the batch's transforms as batched tensor
    operations (``BatchedImages``, the default on CUDA) or each element's alone
    (``ElementImages``, the default on the CPU: bit for bit independent of the batch).
    ``on_step(s, params)``, if given, sees each step's gradients (after the backward, before the
    update): the GPU check compares them across devices. ``checkpoint`` (``resume.Checkpoint``):
    the batch starts from its saved state, saves it periodically, and on a stop request
    (``resume.stop_on_signals``) saves it and raises ``resume.Interrupted``."""
    device = torch.device(device)
    tap = canonical_tap(model, tap)
    read, relu = optimized_tap(model, tap, settings.target)
    objective = OBJECTIVES[settings.objective]
    # the cut forward runs torchvision's ResNet blocks; other families take their own forward (the same FZ)
    family = anatomy_of(model).family
    cone = CentreCone(model, read) if settings.crop and settings.objective == "neuron" and family.cone(model) else None
    channels = [int(c) for c in channels]
    chans = torch.as_tensor(channels, dtype=torch.long, device=device)
    init, rngs = element_streams(settings.seed, tap, channels, device)
    draws = Draws.run(rngs, jitter_of(model, tap, settings.jitter_table), settings.steps)
    batched = device.type != "cpu" if batched is None else batched
    source = (BatchedImages if batched else ElementImages)(init, draws, cone, preprocess=preprocess_of(model))
    optimizer = Adam(source.params, lr=settings.lr)
    reached = torch.empty(len(chans), device=device)
    state = checkpoint.load() if checkpoint is not None else None
    start = checkpoint.restore(state, source.params, optimizer, reached, draws) if state else 0
    with contextlib.ExitStack() as stack:
        stack.enter_context(one_thread(device))
        stack.enter_context(tf32_flags(*tf32(settings)))  # restored after: no TF32 leaks into the process
        capture = None if cone else stack.enter_context(TapCapture(model, [read]))
        for s in counters.bar(range(start, settings.steps), desc=f"FZ {tap} x{len(chans)}", unit="step",
                      disable=not progress, leave=False):
            if checkpoint is not None and (resume.stop_requested() or (s > start and checkpoint.due())):
                checkpoint.save(s, source.params, optimizer, reached, draws)
                if resume.stop_requested():
                    raise resume.Interrupted(resume.stop_requested(), checkpoint.path)
            optimizer.zero_grad()
            loss = 0
            for idx, x, position in source.batches(s):
                if len(idx) == 1 and device.type == "cpu" and cone is not None:
                    x = torch.cat([x, x.detach()])  # mkldnn rounds a batch of one unlike any other
                with _autocast(device, settings.precision), torch.profiler.record_function("fz.model"):
                    if cone is not None:
                        acts, position = cone.forward_cut(x, position)
                    else:
                        acts = capture(x)[read]
                acts = torch.relu(acts[:len(idx)].float()) if relu else acts[:len(idx)].float()
                value = objective(acts, chans[idx], position)
                reached[idx] = value.detach()
                loss = loss - value.sum()
            loss.backward()
            if on_step is not None:
                on_step(s, source.params)
            optimizer.step()
    with torch.no_grad():
        images = quantize(source.images())
    return {"images": images, "reached": reached.cpu().numpy()}


@torch.no_grad()
def measure(model, images, block: str, device="cpu") -> dict[str, np.ndarray]:
    """Centre activations of I, B, O of ``block`` ([N, C] each) for uint8 images or a
    normalized batch: the paper re-measures every FZ on its saved PNG."""
    x = images if torch.is_tensor(images) else dequantize(images, device, preprocess_of(model))
    with TapCapture(model, taps_of([block]), centre=True) as capture, tf32_flags():  # measured in strict fp32
        acts = capture(x.to(device))
    return {k: acts[tap_name(block, k)].float().cpu().numpy() for k in TAP_KINDS}
