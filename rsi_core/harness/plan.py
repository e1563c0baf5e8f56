"""A claims run as a plan of work units (issue 31): every FZ the run reads, dealt into units that
any scheduler's array index can render.

The FZs of a run are those of every FZ bank it reads: the tested weights' (the primary reading
and seed, the second seed's paired channels, the other reading with ``--fz-target both``, the
other seeds with ``--fz-seeds``) and each control model's (its primary reading and second seed).
They are keyed as the bank keys them (canonical tap, the reading actually optimized), so an FZ
two banks share is planned once. A unit is one tap of one bank and at most one batch of its
channels (``--batch-size``; 16 on a CPU, 256 on a GPU: full batches); units are numbered in a
fixed order (bank, tap, channel), so ``--unit K/N`` (units K, K+N, ...) is the same set in every
process, and the N shards are disjoint and together the plan.

Outside the plan: the figures' FZs of channels the analysis finds (a grid's O and channel FZs),
which a claims run renders as its figures ask; under ``--require-cached`` the figures show the
cached ones only. With the as-run reading, failed FZs re-rendered under other seeds (their number
is the analysis's) are outside it too.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from rsi_core.fz.bank import FZBank, default_batch_size
from rsi_core.fz.render import effective_target
from rsi_core.model.anatomy import canonical_tap, provenance_of
from rsi_core.paper import Readings


@dataclass(frozen=True)
class BankSpec:
    """One FZ bank a run reads: the weights (tested or a control), the reading and the seed."""
    weights: str
    kind: str       # "tested", "random", "shuffle"
    target: str     # as the bank keys it (effective per tap: see ``units``)
    seed: int

    def label(self) -> str:
        return f"{self.weights} {self.target} seed {self.seed}"


@dataclass(frozen=True)
class Unit:
    index: int
    bank: BankSpec
    tap: str                  # canonical
    channels: tuple[int, ...]


@dataclass
class WorkPlan:
    units: list[Unit]
    steps: int
    batch_size: int
    counts: dict = field(default_factory=dict)     # FZs per role ("primary", "second seed", ...)
    seconds: dict = field(default_factory=dict)    # estimated seconds per FZ per canonical tap (calibration)
    cached: set = field(default_factory=set)       # indices of units whose FZs are all cached

    @property
    def total(self) -> int:
        return sum(len(u.channels) for u in self.units)

    def unit_seconds(self, u: Unit) -> float | None:
        return self.seconds[u.tap] * len(u.channels) if u.tap in self.seconds else None

    def shard(self, k: int, n: int) -> list[Unit]:
        """Units k, k + n, ... of the plan."""
        return self.units[k::n]

    def totals(self) -> str:
        """The line ``rsi plan``, ``rsi run --dry-run`` and ``pytest claims --collect-only`` print."""
        roles = ", ".join(f"{n} {role}" for role, n in self.counts.items())
        return (f"rsi: plan: {self.total} FZs of {self.steps} steps in {len(self.units)} units of at most "
                f"{self.batch_size} ({roles})")

    def to_json(self) -> dict:
        return {"total_fzs": self.total, "units": len(self.units), "steps": self.steps, "batch_size": self.batch_size,
                "counts": self.counts, "cached_units": len(self.cached),
                "estimated_seconds": sum(filter(None, map(self.unit_seconds, self.units))) if self.seconds else None,
                "work_units": [{"index": u.index, "weights": u.bank.weights, "kind": u.bank.kind, "target": u.bank.target,
                                "seed": u.bank.seed, "tap": u.tap, "channels": list(u.channels),
                                "cached": u.index in self.cached, "estimated_seconds": self.unit_seconds(u)}
                               for u in self.units]}


def _requests(study, fz_target: str, fz_seeds: int) -> list[tuple[str, FZBank, dict]]:
    """(role, bank, {tap: channels}) of the tested weights' banks a run reads."""
    readings = [("primary", study)] + ([("other reading", study.variant(target="as-run"))]
                                       if Readings(fz_target).both else [])
    variants = readings + [(f"seed {s}", r.variant(seed=s)) for _, r in readings for s in range(1, fz_seeds)]
    out = []
    for role, st in variants:
        for n, (bank, requests) in enumerate(st.fz_requests()):
            out.append((role if n == 0 else "second seed", bank, requests))
    return out


def build(study, fz_target: str = "as-written", fz_seeds: int = 1, controls: int = 0,
          batch_size: int | None = None) -> WorkPlan:
    """The plan of a claims run on ``study`` with these options: controls are planned from the
    tested model's architecture (the same taps and channels) without being loaded."""
    from rsi_core.harness.controls import control_weights
    model = study.model
    batch = batch_size or default_batch_size(study.device)
    tested = [(role, BankSpec(provenance_of(model).weights, "tested", bank.settings.target, bank.settings.seed), requests)
              for role, bank, requests in _requests(study, fz_target, fz_seeds)]
    banks = list(tested)
    for weights, kind in control_weights(provenance_of(model).weights, controls):  # a control's primary and second seed
        banks += [(f"control {kind}" if role == "primary" else f"control {kind} second seed",
                   BankSpec(weights, kind, spec.target, spec.seed), requests)
                  for role, spec, requests in tested if role in ("primary", "second seed")]
    merged: dict = {}   # (weights, kind, effective target, seed) -> {canonical tap: {channel: role}}
    for role, spec, requests in banks:
        for tap, chans in requests.items():
            tap = canonical_tap(model, tap)
            eff = BankSpec(spec.weights, spec.kind, effective_target(model, tap, spec.target), spec.seed)
            for c in chans:
                merged.setdefault(eff, {}).setdefault(tap, {}).setdefault(int(c), role)
    units, counts = [], {}
    for spec, taps in merged.items():
        for tap in sorted(taps):
            chans = sorted(taps[tap])
            for role in taps[tap].values():
                counts[role] = counts.get(role, 0) + 1
            for i in range(0, len(chans), batch):
                units.append(Unit(len(units), spec, tap, tuple(chans[i:i + batch])))
    return WorkPlan(units, study.settings.steps, batch, counts)


class Banks:
    """The FZBank of each planned bank, for ``study``'s run: a control's model is loaded (as the
    claims run loads it) the first time one of its units asks."""

    def __init__(self, study, plan: WorkPlan):
        self.study, self.plan, self.models, self.banks = study, plan, {provenance_of(study.model).weights: study.model}, {}

    def __call__(self, spec: BankSpec) -> FZBank:
        if spec not in self.banks:
            from dataclasses import replace

            from rsi_core.harness.controls import control_study
            if spec.weights not in self.models:
                self.models[spec.weights] = control_study(self.study, spec.weights).model
            st = self.study
            self.banks[spec] = FZBank(self.models[spec.weights], st.cache, replace(st.settings, target=spec.target,
                                      seed=spec.seed), device=st.device, batch_size=self.plan.batch_size,
                                      progress=st.bank.progress)
        return self.banks[spec]

    def missing(self, units=None) -> list[tuple[Unit, list[int]]]:
        """(unit, its channels not in the cache) of ``units`` (default: all), those with any."""
        out = []
        for u in self.plan.units if units is None else units:
            gone = self(u.bank).pending({u.tap: list(u.channels)}).get(u.tap, [])
            if gone:
                out.append((u, gone))
        return out

    def render(self, units) -> int:
        """Render what ``units`` miss, without locks (static units are disjoint by construction);
        the number of FZs rendered."""
        done = 0
        for u, gone in self.missing(units):
            bank = self(u.bank)
            bank.lock_tag = None
            bank.ensure({u.tap: gone})
            done += len(gone)
        return done


def parse_unit(spec: str, n_units: int | None = None, environ=os.environ) -> tuple[int, int]:
    """``K/N`` -> (K, N); ``auto``: SLURM's array task id and count, or a Kubernetes Indexed Job's
    ``JOB_COMPLETION_INDEX`` with N from the plan (``n_units``: one task per unit) or
    ``RSI_UNIT_COUNT``."""
    from rsi_core.fz.shard import parse_shard
    if spec != "auto":
        return parse_shard(spec)
    if "SLURM_ARRAY_TASK_ID" in environ:
        k = int(environ["SLURM_ARRAY_TASK_ID"]) - int(environ.get("SLURM_ARRAY_TASK_MIN", 0))
        n = int(environ.get("SLURM_ARRAY_TASK_COUNT") or n_units or 0)
    elif "JOB_COMPLETION_INDEX" in environ:
        k, n = int(environ["JOB_COMPLETION_INDEX"]), int(environ.get("RSI_UNIT_COUNT") or n_units or 0)
    else:
        raise ValueError("--unit auto: neither SLURM_ARRAY_TASK_ID nor JOB_COMPLETION_INDEX is set: "
                         "pass --unit K/N (K counts from 0)")
    return parse_shard(f"{k}/{n}")


def dumps(plan: WorkPlan) -> str:
    return json.dumps(plan.to_json(), indent=1)


#: the run options that decide a plan (``rsi plan`` and ``rsi fz --unit`` take them)
PLAN_OPTIONS = ("model", "weights", "images", "profile", "device", "cache-dir", "jitter-table", "fz-target",
                "fz-seeds", "controls")


def build_study(model, config):
    """The tested Study of a run (not yet prepared) of ``config`` (``options.RunConfig``); it
    renders the primary reading's bank only (``Harness`` builds the other reading's)."""
    from rsi_core.cache import Cache
    from rsi_core.measure.study import Study
    return Study(model, config.profile, Cache(config.cache_dir), images=config.images, device=config.device,
                 antialias=config.antialias, jitter_table=config.jitter_table, fz_target=config.readings.primary)


def for_run(model, config, batch_size: int | None = None, progress: bool = True):
    """(study, plan) of a claims run of ``config`` (``options.RunConfig``)."""
    study = build_study(model, config)
    study.bank.progress = progress
    return study, build(study, config.readings.target, config.fz_seeds, config.controls, batch_size=batch_size)


def unit_command(config, n: int = 1) -> str:
    """The ``rsi fz --unit`` command line that renders a plan of the run ``config`` (every unit
    when ``n`` is 1; what is cached is skipped)."""
    from rsi_core.harness.options import OPTIONS
    values, parts = config.values, ["rsi fz"]
    if values.get("fz-device"):  # another device's bank: rendered there
        values = {**values, "device": values["fz-device"]}
    for name in PLAN_OPTIONS:
        opt, value = OPTIONS[name], values.get(name)
        if value not in (None, False, []) and value != opt.default_value():
            parts.append(f"--{name} {value}")
    return " ".join(parts + [f"--unit 0/{n}" if n == 1 else f"--unit K/{n}"])
