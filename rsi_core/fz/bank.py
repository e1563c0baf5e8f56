"""The FZ bank: every FZ the analysis needs, computed in batches and kept in the cache.

Each (tap, channel) FZ is its own cache entry holding the 8-bit image and the I, B, O centre
activations re-measured on it, so a run that is interrupted loses at most the batch in flight
and a later run (or another pytest-xdist worker) picks up where it stopped. Workers that ask for
the same tap wait on one lock per tap instead of computing the same FZs twice; while waiting,
they compute other taps that nobody holds.
"""
from __future__ import annotations

import numpy as np
import torch
from filelock import Timeout
from tqdm.auto import tqdm

from ..anatomy import parse_tap
from ..cache import Cache
from .render import FZSettings, measure, render

FIELDS = ("image", "I", "B", "O")


def default_batch_size(device) -> int:
    return 256 if torch.device(device).type == "cuda" else 16


class FZBank:
    # realjob (issue 9): shards of one bank (rsi fz --shard) own disjoint channels, so each takes
    # its own tap locks instead of waiting on the other shards' (rsi_core/shard.py)
    lock_tag = ""

    def __init__(self, model, cache: Cache, settings: FZSettings = FZSettings(), device="cpu",
                 batch_size: int | None = None, progress: bool = True):
        self.model, self.cache, self.settings, self.device = model, cache, settings, device
        self.batch_size = batch_size or default_batch_size(device)
        self.progress = progress

    def _key(self, tap: str, channel: int) -> str:
        return Cache.key("fz", model=self.model.rsi_model, weights_id=self.model.rsi_weights_id,
                         tap=tap, channel=int(channel), **self.settings.describe())

    def _missing(self, tap: str, channels) -> list[int]:
        return [c for c in channels if not self.cache.path(self._key(tap, c)).exists()]

    def _compute(self, tap: str, channels: list[int], bar) -> None:
        block = parse_tap(tap)[0]
        for start in range(0, len(channels), self.batch_size):
            chunk = channels[start:start + self.batch_size]
            settings = self.settings
            # a per-chunk seed keeps chunks independent and the whole run reproducible
            chunk_settings = FZSettings(**{**settings.describe(), "seed": settings.seed * 100003 + chunk[0]})
            out = render(self.model, tap, chunk, chunk_settings, device=self.device, progress=False)
            acts = measure(self.model, out["images"], block, device=self.device)
            for n, c in enumerate(chunk):
                self.cache.save(self._key(tap, c), {"image": out["images"][n],
                                                    **{k: acts[k][n] for k in "IBO"}})
            bar.update(len(chunk))

    def ensure(self, requests: dict[str, list[int]]) -> None:
        """Compute every missing FZ of ``{tap: channels}``; taps locked by another process are
        left for later, and waited for only when nothing else is left to do."""
        pending = {t: self._missing(t, chans) for t, chans in requests.items()}
        pending = {t: c for t, c in pending.items() if c}
        total = sum(len(c) for c in pending.values())
        if not total:
            return
        with tqdm(total=total, desc="FZ bank", unit="FZ", disable=not self.progress) as bar:
            while pending:
                progressed = False
                for tap in list(pending):
                    lock = self.cache.lock(self._key(tap, -1) + self.lock_tag)
                    try:
                        lock.acquire(timeout=0 if len(pending) > 1 else -1)
                    except Timeout:
                        continue
                    try:
                        missing = self._missing(tap, pending.pop(tap))
                        bar.set_postfix_str(tap)
                        self._compute(tap, missing, bar)
                        progressed = True
                    finally:
                        lock.release()
                if not progressed and pending:  # everything left is held elsewhere: wait for one
                    tap = next(iter(pending))
                    with self.cache.lock(self._key(tap, -1) + self.lock_tag):
                        pending[tap] = self._missing(tap, pending[tap])
                        if not pending[tap]:
                            del pending[tap]

    def get(self, tap: str, channels) -> dict[str, np.ndarray]:
        """``image`` [N, 224, 224, 3] uint8 and ``I``, ``B``, ``O`` [N, C] for ``channels`` in order."""
        channels = [int(c) for c in channels]
        self.ensure({tap: channels})
        entries = []
        for c in channels:
            found = self.cache.load(self._key(tap, c))
            if found is None:  # corrupt entry: it was removed, compute it again
                self.ensure({tap: [c]})
                found = self.cache.load(self._key(tap, c))
            entries.append(found)
        return {k: np.stack([e[k] for e in entries]) for k in FIELDS}
