"""Run profiles: how many FZ steps and which channels a run studies.

``paper`` is the paper's setting (every channel, 2,560 steps: a census). ``quick`` and ``smoke``
study an unbiased sample: evenly spaced channels (``sample_channels``), never chosen by what the
paper found. ``quick`` also renders the channels the paper names (``named_channels``) IN ADDITION,
for the list claims (Figures 1, 6-8) only: they were picked for M near 1 or for passing the
criteria, so a proportion, rank or ANOVA over them would be biased; no other statistic reads them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rsi_core.paper import PAPER_LISTS


@dataclass(frozen=True)
class Profile:
    name: str
    steps: int
    channels_per_block: int | None  # None: all
    paper_channels: bool            # also render the channels the paper names (list claims only)
    natural_images: int | None      # None: every image of the set


PROFILES = {
    "paper": Profile("paper", 2560, None, False, None),
    "quick": Profile("quick", 256, 16, True, None),
    "smoke": Profile("smoke", 24, 6, False, 500),
    # planted-claims helper: planted networks (--weights planted:CASE), every channel, few steps
    "census-planted": Profile("census-planted", 32, None, False, 250),
}



def default_profile(device: str) -> str:
    return "paper" if str(device).startswith("cuda") else "quick"


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}: use one of {', '.join(PROFILES)}") from None


def evenly_spaced(n_channels: int, n: int | None) -> list[int]:
    """``n`` channel ids spread evenly over ``0..n_channels-1`` (both ends included); all for None."""
    if n is None or n >= n_channels:
        return list(range(n_channels))
    return sorted(set(np.linspace(0, n_channels - 1, n).round().astype(int).tolist()))


def sample_channels(profile: Profile, block: str, n_channels: int) -> list[int]:
    """The channels every share, rank and group statistic reads: all (census) or evenly spaced."""
    return evenly_spaced(n_channels, profile.channels_per_block)


def named_channels(profile: Profile, block: str, n_channels: int, lists: dict | None = PAPER_LISTS) -> list[int]:
    """The paper's named channels of ``block`` that the profile studies beyond its sample (list
    claims only); empty for a census (they are in the sample), for profiles without named channels
    and for models without lists (``lists`` None)."""
    if not profile.paper_channels or not lists or profile.channels_per_block is None:
        return []
    sample = set(sample_channels(profile, block, n_channels))
    named = {c for fig in lists.values() for c in fig.get(block, []) if c < n_channels}
    return sorted(named - sample)


def is_census(profile: Profile, block: str, n_channels: int) -> bool:
    return len(sample_channels(profile, block, n_channels)) == n_channels


def channels_for(profile: Profile, block: str, n_channels: int, lists: dict | None = PAPER_LISTS) -> list[int]:
    """Every channel of ``block`` that ``profile`` renders, sorted: the sample and the named ones."""
    return sorted(set(sample_channels(profile, block, n_channels)) | set(named_channels(profile, block, n_channels,
                                                                                         lists)))
