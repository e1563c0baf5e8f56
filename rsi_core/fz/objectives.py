"""Batched objectives: element n of the batch maximizes its own channel ``channels[n]``."""
from __future__ import annotations

import torch


def centre_neuron(acts: torch.Tensor, channels: torch.Tensor, position=None) -> torch.Tensor:
    """[N] activation of each element's channel at ``position`` (default: lucent's centre,
    (H // 2, W // 2))."""
    y, x = position if position is not None else (acts.shape[2] // 2, acts.shape[3] // 2)
    return acts[torch.arange(acts.shape[0], device=acts.device), channels, y, x]


def channel_mean(acts: torch.Tensor, channels: torch.Tensor, position=None) -> torch.Tensor:
    """[N] whole-map mean of each element's channel (the channel FZ, for figures only)."""
    return acts[torch.arange(acts.shape[0], device=acts.device), channels].mean(dim=(1, 2))


OBJECTIVES = {"neuron": centre_neuron, "channel": channel_mean}
