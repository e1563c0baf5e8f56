"""The FZ image parameter: a decorrelated Fourier image (Olah et al., "Feature Visualization",
Distill 2017), as the paper's tool (torch-lucent 0.1.8's ``param.image(224, decorrelate=True)``)
computes it, step for step, so FZs are lucent's bit for bit (``tests/test_reference.py``).

The image is the inverse real FFT ("ortho") of a learned spectrum [B, 3, H, W//2+1, 2] scaled
by 1/max(frequency, 1/side), divided by 4 (Lucid's constant); its three channels are then mixed
by a fixed 3 x 3 colour matrix and squashed by a sigmoid. The colour matrix is data from the
literature: the square root (by SVD) of the colour covariance of ImageNet images, as published
with Lucid (tensorflow/lucid, ``optvis/param/color.py``, ``color_correlation_svd_sqrt``),
normalized by its largest column norm.
"""
from __future__ import annotations

import numpy as np
import torch

_COLOUR_SVD_SQRT = np.array([[0.26, 0.09, 0.02],
                             [0.27, 0.00, -0.05],
                             [0.27, -0.09, 0.03]], dtype=np.float32)
COLOUR = _COLOUR_SVD_SQRT / np.linalg.norm(_COLOUR_SVD_SQRT, axis=0).max()  # float32, as Lucid's
DIVISOR = 4.0  # Lucid's constant: a smaller image reduces saturation


def spectrum_scale(h: int, w: int) -> np.ndarray:
    """[h, w//2+1] weights of the rfft bins: 1 / max(|frequency|, 1/max(h, w)) (decay power 1)."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[: w // 2 + 1 + (w % 2)]  # an odd side keeps one more bin, cut after the FFT
    return 1.0 / np.maximum(np.sqrt(fx * fx + fy * fy), 1.0 / max(w, h))


def image_parameter(device: torch.device, init: torch.Tensor, size: int = 224):
    """The decorrelated Fourier image parameter with spectrum ``init`` [B, 3, size, size//2+1, 2]:
    (params, image_f), ``image_f()`` the [B, 3, size, size] RGB images in (0, 1). One image per
    parameter never depends on its neighbours; a batch rounds by its size (the batched colour
    matmul). Every tensor lives on ``device``."""
    device = torch.device(device)
    spectrum = init.detach().to(device, torch.float32).clone().requires_grad_(True)
    scale = torch.tensor(spectrum_scale(size, size)).float()[None, None, ..., None].to(device)
    colour = torch.tensor(COLOUR.T).to(device)
    b = len(init)

    def image_f():
        image = torch.fft.irfftn(torch.view_as_complex(scale * spectrum), s=(size, size), norm="ortho")
        image = image[:b, :3, :size, :size] / DIVISOR
        return torch.sigmoid(torch.matmul(image.permute(0, 2, 3, 1), colour).permute(0, 3, 1, 2))
    return [spectrum], image_f
