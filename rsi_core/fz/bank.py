"""The FZ bank: every FZ the analysis needs, computed in batches and kept in the cache.

Each (tap, channel) FZ is its own cache entry holding the 8-bit image and the I, B, O centre
activations re-measured on it, so a run that is interrupted loses at most the batch in flight
and a later run (or another pytest-xdist worker) picks up where it stopped. Workers that ask for
the same tap wait on one lock per tap instead of computing the same FZs twice; while waiting,
they compute other taps that nobody holds.

Entries are keyed by the canonical tap (``Anatomy.canonical``: a simple block's I is the previous
block's O, one FZ for both names), the reading actually optimized (``effective_target``: a
downsample block's I is shared by both readings), the jitter used and every setting. A channel's
FZ depends on nothing else: not the batch, its neighbours or the cache's history (render).
An entry holds the image and the true I, B, O centre activations re-measured on it for every
block the FZ serves (``anatomy.entry_field``: ``2.0:O`` and ``2.1:O`` for 2.0.O = 2.1.I).
"""
from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import torch

from rsi_core.cache import LOCK_WAIT_SECONDS, Cache, LockBusy
from rsi_core.fz.render import FZSettings, effective_target, measure, render
from rsi_core.fz.resume import Checkpoint, Interrupted, stop_requested
from rsi_core.fz.transform import jitter_of
from rsi_core.model import progress
from rsi_core.model.anatomy import TAP_KINDS, anatomy_of, block_of, entry_field

#: steps of the calibration render that estimates a plan's time (``FZBank.estimate``)
CALIBRATION_STEPS = 2


def default_batch_size(device) -> int:
    return 256 if torch.device(device).type == "cuda" else 16


class NotCached(LookupError):
    """An FZ a ``cached_only`` bank was asked for is not in the cache."""


class _Unlocked:
    def acquire(self, timeout=None):
        return self

    def release(self):
        pass


class FZBank:
    # realjob (issue 9): shards of one bank (rsi fz --shard) own disjoint channels, so each takes
    # its own tap locks instead of waiting on the other shards' (rsi_core/shard.py)
    lock_tag = ""
    # issue 31: a claims job run with --require-cached renders nothing: a missing FZ is an error
    # (``NotCached``), and a figure's FZ that is not cached is drawn blank (``get(..., figure=True)``)
    cached_only = False
    # issue 31: the device kind whose FZs every bank reads (None: each bank's own); set with --fz-device
    key_device: str | None = None

    def __init__(self, model, cache: Cache, settings: FZSettings = FZSettings(), device="cpu",
                 batch_size: int | None = None, progress: bool = True):
        self.model, self.cache, self.settings, self.device = model, cache, settings, device
        self.batch_size = batch_size or default_batch_size(device)
        self.progress = progress

    @property
    def read_only(self) -> bool:
        """Renders nothing: --require-cached, or another device's bank (--fz-device)."""
        return self.cached_only or bool(self.key_device and self.key_device != torch.device(self.device).type)

    @property
    def anatomy(self):
        """The model's record (its anatomy and provenance, registered at load)."""
        return anatomy_of(self.model)

    def _key(self, tap: str, channel: int) -> str:
        tap = self.anatomy.canonical(tap)
        fields = {**self.settings.describe(), "target": effective_target(self.model, tap, self.settings.target)}
        kind = self.key_device or torch.device(self.device).type
        if kind != "cpu":  # CUDA FZs are not CPU FZs bit for bit: their own entries (CPU keys as before)
            fields["device"] = kind
        origin = self.anatomy.origin
        return Cache.key("fz", model=origin.model, weights_id=origin.weights_id,
                         tap=tap, channel=int(channel), jitter=jitter_of(self.model, tap, self.settings.jitter_table),
                         **fields)

    def _served(self, tap: str) -> list[str]:
        """Blocks whose I, B, O an FZ of canonical ``tap`` is re-measured for."""
        return [block_of(t) for t in self.anatomy.aliases(tap)]

    def _missing(self, tap: str, channels) -> list[int]:
        return [c for c in channels if not self.cache.path(self._key(tap, c)).exists()]

    def _compute(self, tap: str, channels: list[int], bar) -> None:
        """Render ``channels`` batch by batch; the bar and the process's progress counters move
        with every optimization step."""
        tap = self.anatomy.canonical(tap)
        steps = self.settings.steps
        for start in range(0, len(channels), self.batch_size):
            chunk = channels[start:start + self.batch_size]
            base = bar.n

            def step(s, _params, n=len(chunk), base=base):
                progress.advance(fz_steps=n)
                bar.update(base + n * (s + 1) / steps - bar.n)
            out = render(self.model, tap, chunk, self.settings, device=self.device, progress=False, on_step=step,
                         checkpoint=(checkpoint := self.checkpoint(tap, chunk)))
            acts = {entry_field(b, k): v for b in self._served(tap)
                    for k, v in measure(self.model, out["images"], b, device=self.device).items()}
            for n, c in enumerate(chunk):
                self.cache.save(self._key(tap, c), {"image": out["images"][n],
                                                    **{k: v[n] for k, v in acts.items()}})
            checkpoint.done()
            bar.update(base + len(chunk) - bar.n)
            progress.advance(fzs=len(chunk))

    def checkpoint(self, tap: str, chunk: list[int]) -> Checkpoint:
        """The resume file of the batch rendering ``chunk`` of canonical ``tap`` (``resume``)."""
        key = Cache.key("fz-batch", entries=[self._key(tap, c) for c in chunk])
        return Checkpoint(self.cache.path(key).with_suffix(".pt"), key)

    def pending(self, requests: dict[str, list[int]], missing_only: bool = True) -> dict[str, list[int]]:
        """``{canonical tap: channels not in the cache}`` of ``{tap: channels}`` (every channel
        asked with ``missing_only`` False): taps are merged by their canonical name (2.1.I and
        2.0.O are one request), taps with nothing left out."""
        merged = {}
        for t, chans in requests.items():
            merged.setdefault(self.anatomy.canonical(t), []).extend(int(c) for c in chans)
        pending = {t: list(dict.fromkeys(c)) for t, c in merged.items()}
        if missing_only:
            pending = {t: self._missing(t, c) for t, c in pending.items()}
        return {t: c for t, c in pending.items() if c}

    def costs(self, taps) -> dict[str, float]:
        """Seconds to render one FZ of each tap here, from a calibration: ``CALIBRATION_STEPS``
        steps of one batch (of 4 channels on the CPU, whose cost grows with the batch; a full
        batch on CUDA, whose cost barely does), scaled to the bank's steps."""
        size = self.batch_size if torch.device(self.device).type == "cuda" else min(4, self.batch_size)
        calibration = replace(self.settings, steps=CALIBRATION_STEPS)
        out = {}
        for tap in dict.fromkeys(self.anatomy.canonical(t) for t in taps):
            probe = list(range(min(size, self.anatomy.find(block_of(tap)).channels)))
            t0 = time.perf_counter()
            render(self.model, tap, probe, calibration, device=self.device, progress=False)
            out[tap] = (time.perf_counter() - t0) / CALIBRATION_STEPS * self.settings.steps / len(probe)
        if torch.device(self.device).type == "cuda":
            torch.cuda.empty_cache()  # the controller keeps no calibration memory on the workers' GPU
        return out

    def estimate(self, pending: dict[str, list[int]]) -> float:
        """Seconds to render ``pending`` (``{canonical tap: channels}``) here (``costs``)."""
        costs = self.costs(pending)
        return sum(costs[t] * len(c) for t, c in pending.items())

    def _lock(self, tap: str):
        """The lock of ``tap``'s FZs (``Cache.lock``), or a no-op one where this bank's work is its
        own (``lock_tag`` None: a static unit, disjoint from every other by construction)."""
        if self.lock_tag is None:
            return _Unlocked()
        return self.cache.lock(self._key(tap, -1) + self.lock_tag)

    @staticmethod
    def _wait(lock):
        """``lock`` acquired, waiting at most ``LOCK_WAIT_SECONDS`` (then ``LockBusy`` names the
        holder); a stop request (``resume.stop_on_signals``) ends the wait."""
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while True:
            try:
                return lock.acquire(timeout=min(5.0, max(0.0, deadline - time.monotonic())))
            except LockBusy:
                if stop_requested():
                    raise Interrupted(stop_requested(), None) from None
                if time.monotonic() >= deadline:
                    raise

    def ensure(self, requests: dict[str, list[int]]) -> None:
        """Compute every missing FZ of ``{tap: channels}`` (``pending``); taps locked by another
        process are left for later, and waited for only when nothing else is left to do."""
        pending = self.pending(requests)
        total = sum(len(c) for c in pending.values())
        if not total:
            return
        if self.read_only:
            raise NotCached(f"{total} FZs of {', '.join(pending)} are not in the cache {self.cache.root} and this "
                            "run renders none (--require-cached): render them with rsi fz --unit (rsi plan lists them)")
        with progress.bar(total=total, desc="FZ bank", unit="FZ", disable=not self.progress,
                  bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.0f} FZ [{elapsed}<{remaining}, "
                             "{rate_fmt}{postfix}]") as bar:
            while pending:
                progressed = False
                for tap in list(pending):
                    lock = self._lock(tap)
                    try:
                        lock.acquire(timeout=0)
                    except LockBusy:
                        if len(pending) > 1:
                            continue
                        self._wait(lock)
                    try:
                        missing = self._missing(tap, pending.pop(tap))
                        bar.set_postfix_str(tap)
                        self._compute(tap, missing, bar)
                        progressed = True
                    finally:
                        lock.release()
                if not progressed and pending:  # everything left is held elsewhere: wait for one
                    tap = next(iter(pending))
                    lock = self._wait(self._lock(tap))
                    try:
                        pending[tap] = self._missing(tap, pending[tap])
                        if not pending[tap]:
                            del pending[tap]
                    finally:
                        lock.release()
        progress.flush()

    def get(self, tap: str, channels, figure: bool = False) -> dict[str, np.ndarray]:
        """``image`` [N, 224, 224, 3] uint8 and ``I``, ``B``, ``O`` [N, C] of ``tap``'s block for
        ``channels`` in order. ``figure``: for a figure, which reads the images only; with
        ``cached_only`` a missing FZ is a blank image there instead of an error."""
        channels = [int(c) for c in channels]
        block = block_of(tap)
        if figure and self.read_only and self._missing(tap, channels):
            return self._figure_only(tap, channels)
        self.ensure({tap: channels})
        entries = []
        for c in channels:
            found = self.cache.load(self._key(tap, c))
            if found is None:  # corrupt entry: it was removed, compute it again
                self.ensure({tap: [c]})
                found = self.cache.load(self._key(tap, c))
            entries.append(found)
        return {"image": np.stack([e["image"] for e in entries]),
                **{k: np.stack([e[entry_field(block, k)] for e in entries]) for k in TAP_KINDS}}

    def _figure_only(self, tap: str, channels: list[int]) -> dict[str, np.ndarray]:
        """The images of ``channels``, blank where not cached (a figure under --require-cached)."""
        found = [self.cache.load(self._key(tap, c)) for c in channels]
        return {"image": np.stack([e["image"] if e is not None else np.zeros((224, 224, 3), np.uint8) for e in found])}
