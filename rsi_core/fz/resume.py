"""A rendering batch that survives preemption: checkpointed on SIGTERM/SIGINT and periodically.

A batch's whole state is its image parameters, Adam's state, the next step, each element's
objective so far and each element's random stream (``Draws``: every transform draw, drawn up
front from the element's own generator, so the stream's position is the step). ``Checkpoint``
saves that atomically beside the cache and ``render`` restores it, so a resumed batch continues
exactly where it stopped: its FZs are byte-identical to an uninterrupted batch's on the CPU.

``stop_on_signals`` turns SIGTERM (a scheduler's preemption) and SIGINT (Ctrl-C) into a request
that the render loop honours at the next step boundary: it saves the checkpoint and raises
``Interrupted``; the command prints one line and exits 128 + the signal. A second signal stops at
once. A periodic checkpoint (every ``CHECKPOINT_SECONDS`` of rendering, ``RSI_CHECKPOINT_SECONDS``
overrides) bounds what SIGKILL loses.
"""
from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import numpy as np
import torch

from rsi_core.cache import atomic_write

#: seconds of rendering between two periodic checkpoints of a batch (what a SIGKILL can lose)
CHECKPOINT_SECONDS = 300.0

_stop: dict = {"signal": None}


class Interrupted(Exception):
    """A batch stopped on a signal after saving its checkpoint (``path``)."""

    def __init__(self, signum: int, path: Path | None):
        self.signum, self.path = signum, path
        super().__init__(f"stopped by {self.signal_name}")

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def request_stop(signum: int = signal.SIGTERM) -> None:
    """Ask the render loop to checkpoint and stop at its next step (what the signal handler does)."""
    _stop["signal"] = signum


def stop_requested() -> int | None:
    return _stop["signal"]


@contextlib.contextmanager
def stop_on_signals(signals=(signal.SIGTERM, signal.SIGINT)):
    """Within: the first of ``signals`` asks for a checkpoint and a stop at the next step; a second
    one raises ``Interrupted`` at once (nothing more saved)."""
    def handler(signum, _frame):
        if _stop["signal"] is not None:
            raise Interrupted(signum, None)
        request_stop(signum)
    saved = {s: signal.signal(s, handler) for s in signals}
    _stop["signal"] = None
    try:
        yield
    finally:
        for s, h in saved.items():
            signal.signal(s, h)
        _stop["signal"] = None


def _every() -> float:
    return float(os.environ.get("RSI_CHECKPOINT_SECONDS") or CHECKPOINT_SECONDS)


class Checkpoint:
    """One batch's checkpoint file; ``identity`` (the batch's cache key) guards against another
    batch's state."""

    def __init__(self, path, identity: str, every: float | None = None):
        self.path, self.identity = Path(path), identity
        self.every = _every() if every is None else every
        self.saved_at = time.monotonic()

    def load(self) -> dict | None:
        """The saved state, or None (none, unreadable or another batch's: then removed)."""
        if not self.path.exists():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
            if state.get("identity") != self.identity:
                raise ValueError("another batch's checkpoint")
            return state
        except Exception:  # a torn or foreign file is only lost work: render from the start
            self.path.unlink(missing_ok=True)
            return None

    def save(self, step: int, params, optimizer, reached: torch.Tensor, draws) -> None:
        state = {"identity": self.identity, "step": step, "params": [p.detach().cpu() for p in params],
                 "optimizer": optimizer.state_dict(), "reached": reached.detach().cpu(),
                 "draws": {k: torch.from_numpy(np.asarray(v)) for k, v in vars(draws).items() if isinstance(v, np.ndarray)}}
        atomic_write(self.path, lambda f: torch.save(state, f))
        self.saved_at = time.monotonic()

    def restore(self, state: dict, params, optimizer, reached: torch.Tensor, draws) -> int:
        """Put ``state`` into the batch; the step to continue from."""
        for k, v in state["draws"].items():
            if not np.array_equal(getattr(draws, k), v.numpy()):
                raise ValueError(f"checkpoint {self.path}: its random streams differ from this batch's")
        with torch.no_grad():
            for p, v in zip(params, state["params"], strict=True):
                p.copy_(v)
            reached.copy_(state["reached"])
        optimizer.load_state_dict(state["optimizer"])
        return int(state["step"])

    def due(self) -> bool:
        """A periodic checkpoint is due."""
        return time.monotonic() - self.saved_at >= self.every

    def done(self) -> None:
        """The batch's FZs are saved: its checkpoint goes."""
        self.path.unlink(missing_ok=True)
