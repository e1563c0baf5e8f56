"""The FZ optimization loop: the paper's lucent recipe, batched across channels and truncated.

One optimization carries many channels of one tap; element n of the batch has its own image
parameter (lucent's ``param.image(224, decorrelate=True)``) and its own objective. The forward
pass stops at the tap and, for centre-neuron objectives, sees only the aligned crop holding the
centre neuron's receptive field: the centre activation is the same as on the full image, and
the pixels outside the crop have zero gradient in both cases.
"""
from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass

import numpy as np
import torch
from lucent.optvis import param as lucent_param
from tqdm.auto import tqdm

from ..anatomy import TapCapture, centre_crop_window, parse_tap
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


def render(model, tap: str, channels, settings: FZSettings = FZSettings(), device="cpu",
           progress: bool = True) -> dict[str, np.ndarray]:
    """Optimize one image per channel of ``tap``; return ``images`` ([N, 224, 224, 3] uint8) and
    ``reached`` (each element's objective at the last step, on its transformed image)."""
    device = torch.device(device)
    parse_tap(tap)
    objective = OBJECTIVES[settings.objective]
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
            with TapCapture(model, [tap]) as capture:
                for _ in tqdm(range(settings.steps), desc=f"FZ {tap} x{len(chans)}", unit="step",
                              disable=not progress, leave=False):
                    optimizer.zero_grad()
                    x = image_f()
                    for t in transforms:
                        x = t(x)
                    x = normalize(x)
                    position = None
                    if settings.crop and settings.objective == "neuron":
                        window = centre_crop_window(model, tap, x.shape[2], x.shape[3])
                        if window is not None:
                            (y0, y1, x0, x1), position = window
                            x = x[:, :, y0:y1, x0:x1]
                    with _autocast(device, settings.precision):
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
