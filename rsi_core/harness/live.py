"""What a claims run will do (the plan in pytest's header) and one live line of what it has done.

pytest-xdist forwards no worker output, so every process that renders FZs or passes natural
images writes its counters into ``<artifacts>/.progress/`` (``rsi_core.model.progress``) and the
controller polls that folder from a thread: on a terminal one line rewritten in place, elsewhere a
line every few seconds. Each claim's verdict is printed above it as its test completes.
"""
from __future__ import annotations

import math
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from rsi_core.model import progress

#: seconds between two progress lines when the output is not a terminal (RSI_PROGRESS_SECONDS overrides)
EVERY_PLAIN = 15.0
EVERY_TTY = 1.0


def progress_folder(artifacts_dir) -> Path:
    return Path(artifacts_dir) / ".progress"


@dataclass
class Plan:
    """FZs the run reads (``requested``), those already cached, the natural images still to pass
    through a model (at most: claims that read none pass none), the FZ steps, and the estimated
    time of the FZs on one process."""
    requested: int = 0
    cached: int = 0
    images: int = 0
    steps: int = 0
    seconds: float | None = None
    unchecked: int = 0            # control models' FZs: counted as to render, not looked up
    totals: str = ""              # the work plan's totals line (rsi plan prints the same)

    @property
    def to_render(self) -> int:
        return self.requested - self.cached

    def describe(self, workers: int) -> str:
        eta = (f", about {clock(self.seconds / max(1, workers))} with {workers} worker{'s' * (workers > 1)} "
               "(from a calibration)" if self.seconds else "")
        extra = f" (of which {self.unchecked} for the controls, not looked up)" if self.unchecked else ""
        return ((self.totals + "\n" if self.totals else "") +
                f"rsi: plan: {self.requested} FZs of {self.steps} steps, {self.cached} cached, {self.to_render} "
                f"to render{extra}; up to {self.images} natural images to pass{eta}")


def plan_run(study, fz_target: str = "as-written", fz_seeds: int = 1, controls: int = 0) -> Plan:
    """The plan of a claims run on ``study``: its FZs (``rsi_core.harness.plan``: the other FZ
    reading's, the other seeds', the controls'), which of the tested weights' are cached, and the
    time of the rest from a short calibration of each tap (``FZBank.costs``)."""
    from rsi_core.harness.plan import Banks, build
    work = build(study, fz_target, fz_seeds, controls, batch_size=study.bank.batch_size)
    tested = [u for u in work.units if u.bank.kind == "tested"]
    todo: dict[str, int] = {}   # FZs to render per canonical tap, over the tested weights' banks
    for u, gone in Banks(study, work).missing(tested):
        _add(todo, {u.tap: gone})
    own: dict[str, int] = {}    # a control model's FZs, not looked up (its model is not loaded yet)
    for u in work.units:
        if u.bank.kind != "tested":
            _add(own, {u.tap: list(u.channels)})
    plan = Plan(requested=work.total, steps=study.settings.steps, unchecked=sum(own.values()), totals=work.totals())
    plan.cached = sum(len(u.channels) for u in tested) - sum(todo.values())
    if study.bank.read_only:  # --require-cached: the check before any work found every FZ (controls' too)
        plan.cached, plan.unchecked, own = plan.requested, 0, {}
    # natural images through each model: the activation tables, and one pass per block of the strict
    # scale test (``rsi_core.measure.scale_test``, not looked up in the cache)
    strict = len(study.blocks) * len(study.image_set) if study.profile.strict_section else 0
    plan.images = (0 if study.natural_cached() else len(study.image_set)) + controls * len(study.image_set) + strict
    if plan.to_render:
        costs = study.bank.costs(set(todo) | set(own))
        plan.seconds = sum(costs[t] * n for t, n in todo.items()) + sum(costs[t] * n for t, n in own.items())
    return plan


def _add(counts: dict[str, int], pending: dict[str, list[int]]) -> None:
    for tap, chans in pending.items():
        counts[tap] = counts.get(tap, 0) + len(chans)


def clock(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    s = int(round(max(0.0, seconds)))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class LiveLine:
    """The controller's progress line, from the counters in ``folder`` and the run's ``plan``.
    ``tw`` is pytest's terminal writer (its current column); ``out`` where the line goes (default
    ``tw``): a copy of the terminal's descriptor, which test capture does not redirect."""

    def __init__(self, tw, folder, plan: Plan, workers: int = 1, out=None):
        self.tw, self.out, self.folder, self.plan, self.workers = tw, out or tw, Path(folder), plan, workers
        self.tty = bool(getattr(out or getattr(tw, "_file", None), "isatty", lambda: False)())
        self.every = float(os.environ.get("RSI_PROGRESS_SECONDS") or (EVERY_TTY if self.tty else EVERY_PLAIN))
        self.start, self.lock, self.stopped = time.monotonic(), threading.Lock(), threading.Event()
        self.shown = ""  # the line on the terminal now (tty)
        self.first, self.last = None, None  # (time, FZ steps) when steps were first and last seen moving
        self.counts, self.printed = None, None  # the counts now, and when a plain line was last printed
        self.column = 0  # pytest's column when this last wrote a line
        self.thread = threading.Thread(target=self._loop, name="rsi-progress", daemon=True)

    def run(self) -> LiveLine:
        self.thread.start()
        return self

    def text(self) -> str:
        c, p = progress.read_all(self.folder), self.plan
        now = time.monotonic()
        total = max(p.to_render, c["fzs"])
        total_steps = max(total * p.steps, c["fz_steps"])
        share = c["fz_steps"] / total_steps if total_steps else 1.0
        if c["fz_steps"] and self.first is None:
            self.first = (now, c["fz_steps"])   # the rate counts from the first step seen, not the start-up
        if self.first is not None and c["fz_steps"] > (self.last or self.first)[1]:
            self.last = (now, c["fz_steps"])    # ... to the last step seen: idle stretches do not lower it
        moved = self.last is not None and self.last[0] > self.first[0]
        rate = (self.last[1] - self.first[1]) / (self.last[0] - self.first[0]) if moved else 0.0
        if moved:
            eta = (total_steps - c["fz_steps"]) / rate
        else:
            eta = p.seconds / max(1, self.workers) - (now - self.start) if p.seconds else None
            eta = eta if eta is None or eta > 0 else None  # past the estimate, and no step seen yet
        images = f"images {c['images']}/{max(p.images, c['images'])}" if p.images or c["images"] else "images cached"
        self.counts = (c["fzs"], c["fz_steps"], c["images"])
        return (f"rsi: FZs {c['fzs']}/{total} ({100 * share:.0f}% of steps), {images}, "
                f"{rate / max(1, p.steps):.2f} FZ/s, ETA {clock(eta) if total_steps > c['fz_steps'] else '0:00'}, "
                f"elapsed {clock(now - self.start)}")

    def _loop(self) -> None:
        while not self.stopped.wait(self.every):
            self.draw()

    def _write(self, text: str) -> None:
        if self.out is not self.tw:
            self.tw.flush()  # what pytest wrote first comes first
        self.out.write(text)
        self.out.flush()

    def _newline(self) -> str:
        """A newline when pytest wrote on the current line since this last did."""
        col = self.tw.width_of_current_line
        fresh = col and col != self.column
        self.column = col
        return "\n" if fresh else ""

    def draw(self) -> None:
        line = self.text()
        with self.lock:
            if self.tty:
                width = shutil.get_terminal_size().columns - 1
                self._write("\r" + line[:width].ljust(width))
                self.shown = line
            elif self.counts != self.printed:  # a plain line only when something moved
                self._write(self._newline() + line + "\n")
                self.printed = self.counts

    def above(self, text: str) -> None:
        """Print ``text`` on its own line (above the live line on a terminal)."""
        with self.lock:
            width = shutil.get_terminal_size().columns - 1
            if self.tty:
                self._write("\r" + " " * width + "\r" + text + "\n" + self.shown[:width])
            else:
                self._write(self._newline() + text + "\n")

    def stop(self) -> str:
        """Stop the thread; the closing line (what was done, in how long)."""
        self.stopped.set()
        if self.thread.is_alive():
            self.thread.join(timeout=5)
        c = progress.read_all(self.folder)
        closing = (f"rsi: rendered {c['fzs']} FZs and passed {c['images']} natural images in "
                   f"{clock(time.monotonic() - self.start)}")
        self.shown = ""
        self.above(closing)
        if self.out is not self.tw:
            self.out.close()
        return closing


def verdict_line(entry: dict) -> str:
    """One line per finished claim: its verdict, the expectation and the outcome, the measurement."""
    reason = " ".join(str(entry.get("reason", "")).split())
    reason = reason if len(reason) <= 110 else reason[:107] + "..."
    return (f"rsi: {entry['id']}: {entry.get('label') or entry['verdict']} "
            f"(expected {entry.get('expectation', '?')}: {entry.get('outcome', '?')}) {reason}")
