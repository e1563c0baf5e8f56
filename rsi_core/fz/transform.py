"""The paper's FZ transforms (lucent's, per batch) and its per-tap jitter table (SPEC, A.2).

Random draws (scale, angle, jitter offsets) are lucent's own: one draw per step for the whole
batch. Each batch element therefore sees exactly the distribution of transforms that a lucent
run of its own would see, step by step.
"""
from __future__ import annotations

import torch
from lucent.optvis import transform as lucent_transform
from torchvision.transforms.functional import center_crop

SCALES = [1, 0.975, 1.025, 0.95, 1.05]
ANGLES = list(range(-5, 6))
DEFAULT_JITTER = 16

# tap -> jitter; taps not listed use DEFAULT_JITTER
JITTER_TABLES = {
    # appendix A.2: none for 1.1 and 2.0, 4 for 2.1's B and all of 3.0, 16 elsewhere
    "paper": {**{f"{b}.{t}": 0 for b in ("1.1", "2.0") for t in "IBO"},
              "2.1.B": 4, **{f"3.0.{t}": 4 for t in "IBO"}},
    # the authors' batch script leaves 2.0 at the default
    "authors-script": {**{f"1.1.{t}": 0 for t in "IBO"}, "2.1.B": 4,
                       **{f"3.0.{t}": 4 for t in "IBO"}},
    "none": {},
}


def jitter_for(tap: str, table: str = "paper") -> int:
    try:
        entries = JITTER_TABLES[table]
    except KeyError:
        raise ValueError(f"unknown jitter table {table!r}: use one of {', '.join(JITTER_TABLES)}") from None
    return entries.get(tap, DEFAULT_JITTER if table != "none" else 0)


def transforms_for(jitter: int, device: torch.device | str = "cpu", size: int = 224) -> list:
    """SPEC's transform list for a jitter value (normalization is applied after these)."""
    lucent_transform.device = torch.device(device)  # lucent builds its warp matrices there
    scale_rotate = [lucent_transform.random_scale(SCALES), lucent_transform.random_rotate(ANGLES)]
    if jitter < 4:
        return scale_rotate
    return [lucent_transform.pad(jitter), lucent_transform.jitter(jitter), *scale_rotate,
            lucent_transform.jitter(jitter // 2), lambda x: center_crop(x, [size, size])]
