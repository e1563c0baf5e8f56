"""Adversarially trained ResNet checkpoints in their own formats, loaded as they are.

- MadryLab ``robustness``: ``{"model": state}`` whose keys are ``module.model.*`` (the network),
  a ``module.attacker.model.*`` copy of it, and the normalization inside the model
  (``module.normalizer.new_mean`` / ``new_std``, [3, 1, 1]).
- RobustBench: ``Sequential(normalize, model)``: ``model.*`` and ``normalize.mean`` / ``std``.

Either way the network's own keys are returned with the checkpoint's normalization as the model's
``Preprocess`` (rsi normalizes once, outside the network; both take 224-pixel centre crops of
images resized to 256).
"""
from __future__ import annotations

import torch

from rsi_core.model.images import Preprocess

FORMATS = {
    # name: (prefix of the network's keys, mean key, std key, keys dropped)
    "MadryLab robustness": ("module.model.", "module.normalizer.new_mean", "module.normalizer.new_std",
                            ("module.attacker.",)),
    "RobustBench": ("model.", "normalize.mean", "normalize.std", ()),
}


def _stats(t: torch.Tensor) -> tuple:
    return tuple(float(v) for v in t.detach().flatten().tolist())


def read_robust(state: dict) -> tuple[dict, Preprocess] | None:
    """(the network's state dict, the checkpoint's preprocessing) when ``state`` is in one of the
    robust formats, else None. ``state`` is the checkpoint's state dict (``["model"]`` unwrapped)."""
    for name, (prefix, mean, std, dropped) in FORMATS.items():
        if mean in state and std in state and any(k.startswith(prefix) for k in state):
            net = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            left = sorted(k for k in state if not k.startswith(prefix) and k not in (mean, std)
                          and not k.startswith(dropped))
            if left:
                raise ValueError(f"a {name} checkpoint with keys rsi does not know: {left[:4]}")
            return net, Preprocess(mean=_stats(state[mean]), std=_stats(state[std]),
                                   source=f"the checkpoint's own ({name} format: normalization inside the model)")
    return None
