"""Named mutations of the claim code, one per claim: each breaks the one step that makes the claim
that claim (its threshold, its ranking, its groups, its blocks). ``rsi validate --claims`` reruns
each claim's planted cases with its mutation applied to the same studies: a planted pair that
isolates its claim's distinctive statistic sees at least one verdict flip (``mutation_score``).

A mutation patches a name the claim code reads at call time (a module constant or function of
``rsi_core.verdicts.claims``, a Study reader, a function of the claim's own module), for the
duration of a ``with`` block.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from unittest import mock

import numpy as np

from rsi_core.measure import metrics
from rsi_core.measure.study import SampleReaders, Study
from rsi_core.verdicts import claims as C


@dataclass(frozen=True)
class Mutation:
    claim: str
    name: str
    patches: Callable    # the claim function -> [(object, attribute, replacement)]

    @contextlib.contextmanager
    def applied(self, fn):
        """The claim code mutated while the block runs."""
        with contextlib.ExitStack() as stack:
            for target, attr, new in self.patches(fn):
                if isinstance(target, dict):
                    stack.enter_context(mock.patch.dict(target, {attr: new}))
                else:
                    stack.enter_context(mock.patch.object(target, attr, new))
            yield


def _swapped_groups():
    def swapped(self, block, values):
        over, skip = original(self, block, values)
        return skip, over
    original = SampleReaders.sample_groups
    return [(SampleReaders, "sample_groups", swapped)]


def _simple_swapped():
    original = C.simple_less_skewed

    def swapped(simple, downsample, census, *args, **kw):
        return original(downsample, simple, census, *args, **kw)
    return [(C, "simple_less_skewed", swapped)]


def _sign_flipped():
    original = C.spearman

    def flipped(x, y):
        rho, p = original(x, y)
        return -rho, p
    return [(C, "spearman", flipped)]


def _next_block():
    """Each block's counts read as the next studied block's."""
    original = C.scale_counts

    def misread(classes, census, population, *args, pairs=None, **kw):
        names = list(classes)
        nxt = {b: names[(i + 1) % len(names)] for i, b in enumerate(names)}
        fill = lambda c: {"both": c["with_mix"], **c}  # noqa: E731
        moved = {b: fill(classes[nxt[b]]) for b in names}
        moved_pairs = {b: None if (pairs or {}).get(nxt[b]) is None else tuple(fill(x) for x in pairs[nxt[b]])
                       for b in names}
        return original(moved, census, population, *args, pairs=moved_pairs, **kw)
    return [(C, "scale_counts", misread)]


def _reversed_sm(fn):
    def ranked(r, ok) -> list:
        order = np.argsort(np.where(ok, r.sm, np.inf), kind="stable")[: int(ok.sum())]
        return [int(r.channels[i]) for i in order]
    return [(fn.__globals__, "_ranked", ranked)]


def _natural_always_pass():
    original = Study.robust

    def passing(self, name):
        r = original(self, name)
        return SimpleNamespace(channels=r.channels, scale_invariant=lambda use_mix=True: np.ones(len(r.channels), bool))
    return [(Study, "robust", passing)]


def _farthest_mixes():
    def farthest(m, channels, k=3):
        m, ch = np.asarray(m, dtype=float), np.asarray(channels)
        order = np.lexsort((ch, -np.abs(np.nan_to_num(m - 1.0, nan=-np.inf))))
        return [int(c) for c in ch[order[:k]]]
    return [(metrics, "top_mixes", farthest)]


MUTATIONS = [
    Mutation("fig2-downsample-overwrite", "the overwrite threshold moved: M < 0.1 instead of M < 1",
             lambda fn: [(C, "OVERWRITE_BELOW", 0.1)]),
    Mutation("fig2-simple-less-skewed", "simple and downsample blocks swapped", lambda fn: _simple_swapped()),
    Mutation("fig2-final-block", "the lowest bin moved to [0.25, 0.5)", lambda fn: [(C, "LOWEST_BIN", (0.25, 0.5))]),
    Mutation("fig3-weight-magnitude", "correlation sign flipped", lambda fn: _sign_flipped()),
    Mutation("fig4-inhibition", "overwrite and skip groups swapped", lambda fn: _swapped_groups()),
    Mutation("fig4-input-block-correlation", "overwrite and skip groups swapped", lambda fn: _swapped_groups()),
    Mutation("fig5-scale-counts", "per-block counts misread: each block read as the next one's",
             lambda fn: _next_block()),
    Mutation("fig6-top-scale", "SM ranking reversed (smallest first)", _reversed_sm),
    Mutation("fig7-robust", "the natural-image criteria always pass", lambda fn: _natural_always_pass()),
    Mutation("fig8-top-mixes", "|M - 1| ranking reversed (farthest from 1 first)", lambda fn: _farthest_mixes()),
]


def mutation_for(claim: str) -> Mutation:
    for m in MUTATIONS:
        if m.claim == claim:
            return m
    raise LookupError(f"no mutation for claim {claim!r}: add one to rsi_core.planted.mutations.MUTATIONS")
