"""Run profiles: how many FZ steps and which channels a run studies.

``paper`` is the paper's setting (every channel, 2,560 steps). ``quick`` and ``smoke`` sample
channels evenly (``quick`` adds the channels the paper names, so list claims can be checked)
and take fewer steps; a claim whose statistic cannot decide on so few channels is reported
inconclusive, never passed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .anatomy import PAPER_BLOCKS


@dataclass(frozen=True)
class Profile:
    name: str
    steps: int
    channels_per_block: int | None  # None: all
    paper_channels: bool            # add the channels the paper names (Figures 6-8)
    natural_images: int | None      # None: every image of the set


PROFILES = {
    "paper": Profile("paper", 2560, None, False, None),
    "quick": Profile("quick", 256, 16, True, None),
    "smoke": Profile("smoke", 24, 6, False, 500),
}

# Channels the paper names per block: Figure 1 (examples), Figure 7 (robust scale invariance), Figure 8 (top mixes),
# Figure 6's examples. Zero-indexed, as in the paper.
PAPER_FIG7 = {"1.1": [19], "2.0": [7, 15, 53, 3], "2.1": [108, 36, 13, 21, 60, 52, 93, 5, 58],
              "3.1": [113, 178, 22, 215, 204, 25, 29, 154, 200], "3.0": [], "4.0": [], "4.1": []}
PAPER_FIG8 = {"1.1": [44, 27, 55], "2.0": [42, 9, 78], "2.1": [22, 116, 72], "3.0": [105, 250, 204],
              "3.1": [128, 246, 41], "4.0": [163, 3, 51], "4.1": [154, 68, 496]}
PAPER_FIG1 = {"1.1": [38, 19, 25], "3.1": [178, 215, 25]}  # 1.1: overwrite, mix, skip; 3.1: scale invariant
PAPER_FIG6 = {"1.1": [19, 46], "2.0": [15], "2.1": [108], "3.1": [113, 178]}
PAPER_LISTS = {"fig1": PAPER_FIG1, "fig6": PAPER_FIG6, "fig7": PAPER_FIG7, "fig8": PAPER_FIG8}  # resnet18's


def default_profile(device: str) -> str:
    return "paper" if str(device).startswith("cuda") else "quick"


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}: use one of {', '.join(PROFILES)}") from None


def channels_for(profile: Profile, block: str, n_channels: int) -> list[int]:
    """The channels of ``block`` that ``profile`` studies, sorted."""
    if profile.channels_per_block is None or profile.channels_per_block >= n_channels:
        return list(range(n_channels))
    chosen = set(np.linspace(0, n_channels - 1, profile.channels_per_block).round().astype(int).tolist())
    if profile.paper_channels and block in PAPER_BLOCKS:
        named = [c for fig in (PAPER_FIG1, PAPER_FIG6, PAPER_FIG7, PAPER_FIG8) for c in fig.get(block, [])]
        chosen |= {c for c in named if c < n_channels}
    return sorted(chosen)
