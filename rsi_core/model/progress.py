"""Work counters of this process (FZ steps, FZs, natural images), written for a live progress line.

pytest-xdist does not forward a worker's output, so a worker that ``attach``es a file writes its
counters there (atomic JSON, at most every ``EVERY`` seconds and at ``flush``) and the controller
sums the files of every worker (``read_all``). Without a file the counters only count.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

EVERY = 0.5  # seconds between two writes of the same file
KINDS = ("fz_steps", "fzs", "images")

_state = {"path": None, "written": 0.0, "counts": dict.fromkeys(KINDS, 0)}


def attach(path) -> None:
    """Write this process's counters (from zero) to ``path`` from now on."""
    _state.update(path=Path(path), written=0.0, counts=dict.fromkeys(KINDS, 0))
    _state["path"].parent.mkdir(parents=True, exist_ok=True)
    flush()


def detach() -> None:
    """Stop writing a file (the counters still count): at a session's end, so that what the process
    does after an in-process run (``rsi run``, a notebook) writes nowhere stale."""
    _state["path"] = None


def advance(**counts: int) -> None:
    """Add to the counters (``fz_steps``: one per FZ per optimization step; ``fzs``: finished
    FZs; ``images``: natural images through the model)."""
    for k, n in counts.items():
        _state["counts"][k] += int(n)
    if _state["path"] is not None and time.monotonic() - _state["written"] >= EVERY:
        flush()


def flush() -> None:
    path = _state["path"]
    if path is None:
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(_state["counts"]))
        os.replace(tmp, path)
    except OSError:  # the folder went away (its run ended): progress is never worth stopping the work for
        _state["path"] = None
    _state["written"] = time.monotonic()


def read_all(folder) -> dict[str, int]:
    """The counters of every process that wrote into ``folder``, summed."""
    total = dict.fromkeys(KINDS, 0)
    for p in Path(folder).glob("*.json"):
        try:
            counts = json.loads(p.read_text())
        except (OSError, ValueError):  # replaced while read: the next poll reads it
            continue
        for k in KINDS:
            total[k] += int(counts.get(k, 0))
    return total


#: seconds between two redraws of a progress bar whose output is not a terminal (a batch job's log
#: file); RSI_PROGRESS_SECONDS overrides. On a terminal tqdm's own 0.1 s.
PLAIN_SECONDS = 60.0


def bar(iterable=None, **kw):
    """A tqdm progress bar that writes sparingly into a log file (every ``PLAIN_SECONDS``, not every
    0.1 s) and not at all when the ``rsi_core`` logger is quieter than INFO (``rsi -q``,
    ``--log-level warning``)."""
    import logging
    import sys

    from tqdm.auto import tqdm
    file = kw.get("file") or sys.stderr
    if not (hasattr(file, "isatty") and file.isatty()):
        kw.setdefault("mininterval", float(os.environ.get("RSI_PROGRESS_SECONDS") or PLAIN_SECONDS))
    level = logging.getLogger("rsi_core").level  # NOTSET (0) where nobody configured it: bars shown
    if level > logging.INFO:
        kw["disable"] = True
    return tqdm(iterable, **kw)
