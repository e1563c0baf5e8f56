"""A claim's record in a run: ``ClaimEntry``, written by the claims harness as
``artifacts/claims/<id>.json`` and read back here only (``read``), then one item of
claims-report.json's ``claims``.

Its JSON form is the report's (schema 1, ``report.environment.SCHEMA``): the verdict's fields
(``Verdict.to_json``), what the run expected and made of it, the provenance, and the sections a run
adds when asked (the FZ readings and seeds, controls, the baseline's paired check), present only
when set. Keys this rsi does not know are kept as they are (``extra``), so nothing read is lost.
"""
from __future__ import annotations

import json
import traceback
from dataclasses import dataclass, field, fields
from pathlib import Path

from rsi_core.cache import atomic_write

#: the fields written only when set (a run adds them when asked)
SECTIONS = ("decisive_reading", "paired", "regression", "seeds", "seed_range", "readings", "reading_dependent",
            "controls", "beyond_controls", "label", "error")


@dataclass
class ClaimEntry:
    id: str
    verdict: str                  # holds, fails, inconclusive, n/a or error (``Verdict``)
    paper: str = ""               # the claim as the paper states it (the claim function's docstring)
    claim_id: str = ""
    statistic: str = ""
    measured: dict = field(default_factory=dict)
    blocks: dict | list = field(default_factory=dict)
    reason: str = ""
    value: float | None = None    # the headline statistic, compared with the controls' in ``direction``
    direction: str | None = None
    artifacts: list = field(default_factory=list)      # figure files
    expectation: str = "observe"
    outcome: str = ""             # the verdict against the expectation (``harness.expectations.outcome``)
    provenance: dict = field(default_factory=dict)
    regressions: list = field(default_factory=list)    # the parts changed against the baseline
    decisive_reading: str | None = None                # --fz-target both: the reading that decided
    paired: dict | None = None    # per-channel values for a later paired check (``verdicts.regression``)
    regression: dict | None = None                     # the paired check against the baseline
    seeds: list | None = None     # --fz-seeds K: per seed its verdict and value
    seed_range: object = None      # the seeds' range of values (``seed_verdict``)
    readings: dict | None = None  # --fz-target both: per reading its verdict, value, expectation, outcome
    reading_dependent: bool | None = None
    controls: list | None = None  # per control model its verdict and value (``harness.controls``)
    beyond_controls: str | None = None
    label: str | None = None      # the verdict as stated beside the controls ("holds, not beyond controls")
    error: str | None = None      # the exception of a claim that raised
    extra: dict = field(default_factory=dict)          # keys of the JSON this rsi does not know

    @classmethod
    def failed(cls, claim_id: str, paper: str, exc: BaseException | str, provenance: dict,
               expectation: str = "observe") -> ClaimEntry:
        """The entry of a claim that raised (or whose test errored before it ran): verdict ``error``."""
        text = exc if isinstance(exc, str) else "".join(traceback.format_exception_only(type(exc), exc)).strip()
        return cls(claim_id, "error", paper, claim_id, reason=f"error: {text}", expectation=expectation,
                   outcome="error", provenance=provenance, error=text)

    def to_json(self) -> dict:
        """The entry's JSON, its keys in the order rsi has always written them."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        out = {"id": self.id, "paper": self.paper, "claim_id": self.claim_id} | out
        return {**{k: v for k, v in out.items() if k not in SECTIONS or v is not None}, **self.extra}

    @classmethod
    def from_json(cls, data: dict) -> ClaimEntry:
        known = {f.name for f in fields(cls)} - {"extra"}
        return cls(**{k: v for k, v in data.items() if k in known},
                   extra={k: v for k, v in data.items() if k not in known})

    @staticmethod
    def path(folder, claim_id: str) -> Path:
        """Where a run's entry of ``claim_id`` lies under its artifacts ``folder``."""
        return Path(folder) / "claims" / f"{claim_id}.json"

    def write(self, folder) -> Path:
        """Atomically: a reader never sees half an entry."""
        return atomic_write(self.path(folder, self.id), lambda f: f.write(json.dumps(self.to_json(), indent=1).encode()))

    @classmethod
    def read(cls, path) -> ClaimEntry:
        return cls.from_json(json.loads(Path(path).read_text()))
