"""Run profiles: how many FZ steps and which channels a run studies.

``paper`` is the paper's setting (every channel, 2,560 steps: a census). ``quick``, ``ci`` and
``smoke`` study an unbiased sample: evenly spaced channels (``sample_channels``), never chosen by
what the paper found. ``ci`` is sized by power (``benchmarks/power.py``, docs/ci.md): per block
the channels that the claims a sample can decide need for 80% power, at 64 steps, for CI on a
CPU runner. ``quick`` also renders the channels the paper names (``named_channels``) IN ADDITION,
for the figures only: they were picked for M near 1 or for passing the criteria, so a
proportion, rank, ANOVA or a list claim's null over them would be biased; no statistic reads them.

A census block also renders a random subsample of its channels under a second FZ seed
(``second_seed_channels``, sized by ``second_seed_size``): the verdicts measure the census's own
seed-to-seed noise from those pairs.
"""
from __future__ import annotations

import functools
import math
import os
import zlib
from dataclasses import dataclass, replace

import numpy as np

from rsi_core.paper import PAPER_LISTS


@dataclass(frozen=True)
class Profile:
    name: str
    steps: int
    channels_per_block: int | None  # None: all
    paper_channels: bool            # also render the channels the paper names (list claims only)
    natural_images: int | None      # None: every image of the set
    second_seed: bool = True        # census blocks: a subsample under a second FZ seed (the census noise)
    per_block: tuple = ()           # ((block, channels), ...): a block's own sample size, else channels_per_block
    strict_section: bool = True     # write the strict scale test's report section (no claim reads it)
    fz_target: str = "as-written"   # --fz-target's default: the FZ readings decided ("both" on a census)

    def sample_size(self, block: str) -> int | None:
        return dict(self.per_block).get(block, self.channels_per_block)

    def definition(self) -> dict:
        """What decides the channels, steps and images a run of this profile studies (in every
        run's provenance: a baseline of another definition is refused)."""
        return {"steps": self.steps, "channels_per_block": self.channels_per_block,
                "per_block": [list(x) for x in self.per_block], "paper_channels": self.paper_channels,
                "natural_images": self.natural_images, "second_seed": self.second_seed}


PROFILES = {
    "paper": Profile("paper", 2560, None, False, None, fz_target="both"),
    "quick": Profile("quick", 256, 16, True, None),
    # no strict scale section (not a claim): it was two thirds of a smoke run (issue 28); quick and paper write it
    "smoke": Profile("smoke", 24, 6, False, 500, strict_section=False),
    # benchmarks/power.py: 37 per downsample block (fig2-downsample-overwrite), 59 in 4.1 (fig2-final-block's
    # "all"), 43 in the simple blocks (fig2-simple-less-skewed); 64 steps (docs/ci.md: why)
    # no strict scale section: CI checks claims, and its 8 image passes per block cost ~3 of ci's 18 minutes
    "ci": Profile("ci", 64, 43, False, 500, per_block=(("2.0", 37), ("3.0", 37), ("4.0", 37), ("4.1", 59)),
                  strict_section=False),
    # planted-claims helper: planted networks (--weights planted:CASE), every channel, few steps
    "census-planted": Profile("census-planted", 32, None, False, 250),
}



def default_profile(device: str) -> str:
    return "paper" if str(device).startswith("cuda") else "quick"


def get_profile(name: str) -> Profile:
    """The profile ``name``; ``RSI_PROFILE_STEPS`` (tests of the machinery, e.g. the fault test:
    in every cache key and the run's provenance) sets its FZ steps."""
    try:
        profile = PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}: use one of {', '.join(PROFILES)}") from None
    steps = os.environ.get("RSI_PROFILE_STEPS")
    return replace(profile, steps=int(steps)) if steps else profile


def evenly_spaced(n_channels: int, n: int | None) -> list[int]:
    """``n`` channel ids spread evenly over ``0..n_channels-1`` (both ends included); all for None."""
    if n is None or n >= n_channels:
        return list(range(n_channels))
    return sorted(set(np.linspace(0, n_channels - 1, n).round().astype(int).tolist()))


def sample_channels(profile: Profile, block: str, n_channels: int) -> list[int]:
    """The channels every share, rank and group statistic reads: all (census) or evenly spaced."""
    return evenly_spaced(n_channels, profile.sample_size(block))


def named_channels(profile: Profile, block: str, n_channels: int, lists: dict | None = PAPER_LISTS) -> list[int]:
    """The paper's named channels of ``block`` that the profile studies beyond its sample (list
    claims only); empty for a census (they are in the sample), for profiles without named channels
    and for models without lists (``lists`` None)."""
    if not profile.paper_channels or not lists or profile.sample_size(block) is None:
        return []
    sample = set(sample_channels(profile, block, n_channels))
    named = {c for fig in lists.values() for c in fig.get(block, []) if c < n_channels}
    return sorted(named - sample)


def is_census(profile: Profile, block: str, n_channels: int) -> bool:
    return len(sample_channels(profile, block, n_channels)) == n_channels


#: the census share's one-sided 95% half-width that the second seed's pairs must allow when no flip is seen
SECOND_SEED_HALF_WIDTH = 0.02


@functools.cache
def second_seed_size(n_channels: int, half_width: float = SECOND_SEED_HALF_WIDTH, alpha: float = 0.05) -> int:
    """How many channels of a census block get a second FZ seed: the fewest whose pairs, with no
    flip seen, bound the block's share to +-``half_width`` (one-sided 1 - alpha). A share of N
    channels has sd sqrt(F / (2 N)) (``rsi_core.verdicts.verdict.census_sd``) and n flip-free pairs
    bound F by 1 - alpha^(1/n), so n >= ln(alpha) / ln(1 - 2 N (half_width / z)^2); every channel
    where no n is enough. resnet18's 64, 128, 256, 512 channels: 64, 78, 39, 19."""
    from scipy import stats  # here: the profile table (rsi --help) needs no scipy

    u = 2 * n_channels * (half_width / stats.norm.ppf(1 - alpha)) ** 2
    if u >= 1:
        return min(n_channels, 1)
    return min(n_channels, math.ceil(math.log(alpha) / math.log1p(-u) - 1e-9))


def second_seed_channels(profile: Profile, block: str, n_channels: int) -> list[int]:
    """The channels of ``block`` rendered under a second FZ seed: a random subsample (drawn from
    the block's name, so every run and worker draws the same) of a census block; none for a
    sample or a profile without the second seed."""
    if not profile.second_seed or not is_census(profile, block, n_channels):
        return []
    rng = np.random.default_rng([zlib.crc32(block.encode()), n_channels])
    return sorted(rng.choice(n_channels, second_seed_size(n_channels), replace=False).tolist())


def channels_for(profile: Profile, block: str, n_channels: int, lists: dict | None = PAPER_LISTS) -> list[int]:
    """Every channel of ``block`` that ``profile`` renders, sorted: the sample and the named ones."""
    return sorted(set(sample_channels(profile, block, n_channels)) | set(named_channels(profile, block, n_channels,
                                                                                         lists)))
