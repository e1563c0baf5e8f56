"""The FZ optimization loop: the paper's lucent recipe, batched across channels and truncated.

One optimization carries many channels of one tap; element n of the batch has its own image
parameter (lucent's ``param.image(224, decorrelate=True)``) and its own objective. For
centre-neuron objectives the forward (``CentreCone``) stops at the tap and sees only the
stride-aligned cone the centre neuron depends on: the image is cut to its receptive field and
each block's input to what the neuron needs. The activation and the input gradient are those of
the full forward pass up to float rounding (pixels outside the cut have zero gradient either
way). ``crop=False`` keeps the reference path (the model's own forward, read by
``TapCapture``), which follows lucent's ``render_vis`` step for step.
"""
from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass

import numpy as np
import torch
from lucent.optvis import param as lucent_param
from torchvision.models.resnet import Bottleneck
from tqdm.auto import tqdm

from ..anatomy import TapCapture, aligned_window, blocks, find_block, map_size, parse_tap, tap_path
from ..images import normalize
from .objectives import OBJECTIVES
from .transform import jitter_for, transforms_for

IMAGE_SIZE = 224


@dataclass(frozen=True)
class FZSettings:
    """Everything that changes an FZ; it goes into every cache key."""
    steps: int = 2560
    lr: float = 0.05
    objective: str = "neuron"       # "neuron" (centre neuron) or "channel" (whole-map mean)
    jitter_table: str = "paper"     # see transform.JITTER_TABLES
    crop: bool = True               # forward only the receptive-field crop (exact)
    seed: int = 0
    precision: str = "fp32"         # "fp32", or on CUDA "tf32" / "bf16" (autocast)

    def describe(self) -> dict:
        return asdict(self)


def _set_lucent_device(device: torch.device) -> None:
    lucent_param.spatial.device = device


def image_parameter(n: int, device: torch.device):
    """lucent's decorrelated Fourier image parameter for ``n`` images."""
    _set_lucent_device(device)
    return lucent_param.image(IMAGE_SIZE, decorrelate=True, batch=n)


def quantize(images: torch.Tensor) -> np.ndarray:
    """[N, 3, H, W] in [0, 1] -> [N, H, W, 3] uint8, truncating as the authors' PNG export does."""
    return (images.detach().permute(0, 2, 3, 1).cpu().numpy() * 255).astype(np.uint8)


def dequantize(images: np.ndarray, device="cpu") -> torch.Tensor:
    """uint8 PNG pixels -> normalized model input (ToTensor + Normalize, no resize)."""
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float() / 255
    return normalize(x)


def _autocast(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


class CentreCone:
    """The forward pass to the centre neuron of ``tap`` with the image, and then every block's
    input, cut to the region that neuron depends on (its receptive-field cone), each cut aligned
    to the stride so every later grid stays the same. The neuron's value and its input gradient
    are those of the full forward pass; the work outside the cone is skipped.
    ``cone(image)`` -> (the tap's map, cut, and the centre neuron's (y, x) in it). The blocks run
    as torchvision's ``BasicBlock`` / ``Bottleneck`` forward does; B is read before the addition
    and O before the ReLU, as ``TapCapture`` reads them."""

    def __init__(self, model, tap: str):
        name, self.kind = parse_tap(tap)
        self.model, self.blocks = model, blocks(model)
        self.index = self.blocks.index(find_block(model, name))
        self.path = tap_path(model, tap)
        # a simple block's I is the previous block's O: the pass ends with that block
        self.simple_input = self.kind == "I" and self.blocks[self.index].kind == "simple" and self.index > 0
        # length of the path from the image to block k's input (stem: conv1, max-pool)
        self.prefix = [len(self.blocks[k - 1].convs) if k else 2 for k in range(len(self.blocks))]

    @staticmethod
    def _cut(path: tuple, position, *maps):
        """``maps`` cut to what output ``position`` of ``path`` depends on, and its new index."""
        (y0, y1, iy), (x0, x1, ix) = (aligned_window(path, maps[0].shape[d], position[d - 2]) for d in (2, 3))
        return [t[:, :, y0:y1, x0:x1] for t in maps], (iy, ix)

    def __call__(self, image: torch.Tensor):
        m = self.model
        position = (map_size(self.path, image.shape[2]) // 2, map_size(self.path, image.shape[3]) // 2)
        (x,), position = self._cut(self.path, position, image)
        if x.device.type == "cpu":  # mkldnn's convolutions and max-pool run faster so
            x = x.contiguous(memory_format=torch.channels_last)
        x = m.maxpool(m.relu(m.bn1(m.conv1(x))))
        prev_o = x
        last = self.index - 1 if self.simple_input else self.index
        for k in range(last + 1):
            rest = self.path[self.prefix[k]:]
            if rest:
                (x, prev_o), position = self._cut(rest, position, x, prev_o)
            blk = self.blocks[k].module
            if k == self.index and self.kind == "I":  # here only for a downsample (or first) block
                return (blk.downsample(x) if blk.downsample is not None else prev_o), position
            out = blk.relu(blk.bn1(blk.conv1(x)))
            if isinstance(blk, Bottleneck):
                out = blk.bn3(blk.conv3(blk.relu(blk.bn2(blk.conv2(out)))))
            else:
                out = blk.bn2(blk.conv2(out))
            if k == self.index and self.kind == "B":
                return out, position
            prev_o = out + (x if blk.downsample is None else blk.downsample(x))  # O, pre-ReLU
            if k == self.index:
                return prev_o, position
            x = torch.relu(prev_o)
        return prev_o, position  # the previous block's O: a simple block's I


def render(model, tap: str, channels, settings: FZSettings = FZSettings(), device="cpu",
           progress: bool = True) -> dict[str, np.ndarray]:
    """Optimize one image per channel of ``tap``; return ``images`` ([N, 224, 224, 3] uint8) and
    ``reached`` (each element's objective at the last step, on its transformed image)."""
    device = torch.device(device)
    parse_tap(tap)
    objective = OBJECTIVES[settings.objective]
    cone = CentreCone(model, tap) if settings.crop and settings.objective == "neuron" else None
    chans = torch.as_tensor(list(channels), dtype=torch.long, device=device)
    transforms = transforms_for(jitter_for(tap, settings.jitter_table), device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = settings.precision == "tf32"
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        np_state = np.random.get_state()
        torch.manual_seed(settings.seed)
        np.random.seed(settings.seed)  # lucent draws its transforms with numpy
        try:
            params, image_f = image_parameter(len(chans), device)
            optimizer = torch.optim.Adam(params, lr=settings.lr)
            with contextlib.ExitStack() as stack:
                capture = None if cone else stack.enter_context(TapCapture(model, [tap]))
                for _ in tqdm(range(settings.steps), desc=f"FZ {tap} x{len(chans)}", unit="step",
                              disable=not progress, leave=False):
                    optimizer.zero_grad()
                    x = image_f()
                    for t in transforms:
                        x = t(x)
                    x = normalize(x)
                    position = None
                    with _autocast(device, settings.precision):
                        if cone is not None:
                            acts, position = cone(x)
                        else:
                            acts = capture(x)[tap]
                    reached = objective(acts.float(), chans, position)
                    (-reached.sum()).backward()
                    optimizer.step()
            with torch.no_grad():
                images = quantize(image_f())
        finally:
            np.random.set_state(np_state)
    return {"images": images, "reached": reached.detach().cpu().numpy()}


@torch.no_grad()
def measure(model, images, block: str, device="cpu") -> dict[str, np.ndarray]:
    """Centre activations of I, B, O of ``block`` ([N, C] each) for uint8 images or a
    normalized batch: the paper re-measures every FZ on its saved PNG."""
    x = images if torch.is_tensor(images) else dequantize(images, device)
    taps = [f"{block}.{k}" for k in "IBO"]
    with TapCapture(model, taps, centre=True) as capture:
        acts = capture(x.to(device))
    return {k: acts[f"{block}.{k}"].float().cpu().numpy() for k in "IBO"}
