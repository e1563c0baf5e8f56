"""Running one claim function (``claims/test_*.py``): on the tested study, under each FZ
reading and seed asked for, and on controls; the claim's ``ClaimEntry`` (``report.entry``,
written as ``artifacts/claims/<id>.json``); its outcome against the expectation for this model.
The claims themselves live in their tests, nowhere else.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from rsi_core.harness import expectations as expect_mod
from rsi_core.harness.expectations import claims_dir
from rsi_core.paper import READINGS, Readings
from rsi_core.report import claims_report as report
from rsi_core.report.entry import ClaimEntry
from rsi_core.verdicts import regression
from rsi_core.verdicts.verdict import Verdict, seed_verdict


class Harness:
    """Everything a run's claims share: the tested study, its variants (FZ readings, seeds,
    controls, built lazily once), expectations and the baseline."""

    def __init__(self, study, artifacts_dir, expectations: dict | None = None, baseline: dict | None = None,
                 fz_target: str = "as-written", fz_seeds: int = 1, controls: int = 0):
        if fz_seeds < 1:
            raise ValueError(f"--fz-seeds {fz_seeds}: use 1 or more")
        self.study, self.folder = study, Path(artifacts_dir)
        self.readings, self.fz_seeds, self.n_controls = Readings(fz_target), fz_seeds, controls
        self._variants: dict = {}
        prov = self.primary().describe()
        self.expectations = expectations or expect_mod.for_run(prov["model"], prov["weights"])
        self.baseline = baseline
        refused = report.check_baseline(baseline, prov) if baseline else None
        if refused:
            raise ValueError(refused)

    # studies --------------------------------------------------------------------------------
    def primary(self):
        """The study of the primary reading (``Readings.primary``: the controls' reading)."""
        return self.reading("as-run") if self.readings.primary == "as-run" else self.study

    def reading(self, target: str):
        if target == self.study.settings.target:
            return self.study
        return self._variant(("target", target), target=target)

    def seed(self, s: int, target: str):
        base = self.reading(target)
        return base if s == base.settings.seed else self._variant(("seed", target, s), seed=s, target=target)

    def _variant(self, key, **fz):
        if key not in self._variants:
            self._variants[key] = self.study.variant(**fz)
            self._variants[key].prepare()  # its whole bank, as planned (rsi_core.harness.plan)
        return self._variants[key]

    def controls(self) -> list:
        if self.n_controls and "controls" not in self._variants:
            from rsi_core.harness.controls import control_studies
            self._variants["controls"] = control_studies(self.primary(), self.n_controls)
        return self._variants.get("controls", [])

    # one claim ------------------------------------------------------------------------------
    def run(self, claim_id: str, fn, figure=None, paired=None) -> ClaimEntry:
        """Evaluate ``fn`` (a claim function) and write ``artifacts/claims/<id>.json``; an exception
        becomes an ``error`` entry (written) and is raised again. ``paired``: the per-channel
        quantities recorded for a later paired check (default: the claim's ``@reads``)."""
        paper = " ".join((fn.__doc__ or "").split())
        decisive = self.readings.decisive(claim_id)
        try:
            target = self.readings.primary
            known = {target: fn(self.primary())}  # a claim that does not apply is n/a under every reading
            if known[target].verdict != "n/a":
                known.setdefault(decisive, None)
                known = {t: v or fn(self.reading(t)) for t, v in known.items()}
            decided = decisive if decisive in known else target
            v = replace(known[decided], claim_id=claim_id)
            entry = self._entry(claim_id, paper, v, getattr(fn, "paired", ()) if paired is None else paired,
                                self.primary() if decided == target else self.reading(decided))
            if v.verdict != "n/a":  # nothing to read under other readings, seeds or controls
                self._extras(entry, fn, figure, known)
        except Exception as exc:
            ClaimEntry.failed(claim_id, paper, exc, self.study.describe(),
                              self.expectations.get(claim_id, "observe")).write(self.folder)
            raise
        entry.write(self.folder)
        return entry

    def _entry(self, claim_id, paper, v: Verdict, paired=(), decided=None) -> ClaimEntry:
        """The claim's entry from its verdict ``v`` on study ``decided`` (default: the primary; the
        provenance is the run's, the primary's: ``decisive_reading`` says which reading decided)."""
        decided = decided or self.primary()
        expect = self.expectations.get(claim_id, "observe")
        entry = ClaimEntry(claim_id, paper=paper, **v.to_json(), expectation=expect,
                           outcome=expect_mod.outcome(v.verdict, expect), provenance=self.primary().describe())
        if self.readings.both:
            entry.decisive_reading = self.readings.decisive(claim_id)
        if paired and v.verdict != "n/a" and not v.reason.startswith("n/a"):
            blocks = [b for role in (v.blocks.values() if isinstance(v.blocks, dict) else [v.blocks]) for b in role]
            entry.paired = regression.record(decided, list(dict.fromkeys(blocks)), paired, v.measured.get("found"))
        if self.baseline:
            entry.regression = regression.compare(self.baseline["claims"].get(claim_id), entry.to_json())
            if entry.regression["verdict"] == "changed":
                entry.regressions = regression.changed_parts(entry.regression)
        return entry

    def _extras(self, entry: ClaimEntry, fn, figure, known: dict) -> None:
        decisive = self.readings.decisive(entry.id)
        if self.fz_seeds > 1:
            per = [fn(self.seed(s, decisive)) for s in range(self.fz_seeds)]
            agreed, entry.seed_range = seed_verdict(per)
            entry.seeds = [{"seed": s, "verdict": p.verdict, "value": p.value} for s, p in enumerate(per)]
            if agreed != entry.verdict:
                entry.reason = f"FZ seeds disagree ({', '.join(p.verdict for p in per)}); " + entry.reason
                entry.verdict, entry.outcome = agreed, expect_mod.outcome(agreed, entry.expectation)
        if self.readings.both:  # each reading decided; the decisive one is the entry's own verdict
            entry.readings = {}
            for t in READINGS:
                rv = (known.get(t) or fn(self.reading(t))) if t != decisive else None
                verdict = rv.verdict if rv else entry.verdict
                expect = self.expectations.get(f"{entry.id}@{t}", entry.expectation if t == decisive else "observe")
                entry.readings[t] = {"verdict": verdict, "value": rv.value if rv else entry.value,
                                     "measured": rv.measured if rv else entry.measured, "expectation": expect,
                                     "outcome": expect_mod.outcome(verdict, expect)}
            entry.reading_dependent = len({r["verdict"] for r in entry.readings.values()}) > 1
            entry.outcome = expect_mod.combined({t: r["outcome"] for t, r in entry.readings.items()}, decisive)
        runs = self.controls()
        if runs:
            from rsi_core.harness.controls import add_controls
            add_controls(entry, runs, lambda study: fn(study).to_json())
        if figure is not None:  # a panel per FZ reading when both are asked
            self.folder.mkdir(parents=True, exist_ok=True)
            panels = ({t: (self.reading(t), entry.readings[t]["measured"]) for t in READINGS}
                      if self.readings.both else {"": (self.primary(), entry.measured)})
            for t, (st, measured) in panels.items():
                name = f"{entry.id}-{t}.png" if t else f"{entry.id}.png"
                entry.artifacts += [str(p) for p in figure(st, self.folder / name, measured, runs) or []]


def claim_functions(folder=None) -> dict:
    """{claim id: claim function} from the claims test modules: a test marked
    ``claim(id)`` named ``test_<name>`` checks the module's function ``<name>``. For callers
    without pytest (``rsi validate``)."""
    import importlib.util
    folder = Path(folder) if folder else claims_dir()
    out = {}
    for path in sorted(folder.glob("test_*.py")):
        spec = importlib.util.spec_from_file_location(f"rsi_claims_{path.stem}", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        for name, obj in vars(mod).items():
            marks = [m for m in getattr(obj, "pytestmark", []) if m.name == "claim"]
            if name.startswith("test_") and marks:
                fn = getattr(mod, name[len("test_"):])
                if getattr(fn, "claim_id", marks[0].args[0]) != marks[0].args[0]:
                    raise ValueError(f"{path.name}: {name} is marked {marks[0].args[0]!r} but checks {fn.claim_id!r}")
                out[marks[0].args[0]] = fn
    return out


def natural_images_note(profile: str, images) -> str | None:
    """The header line of a ``paper`` run whose natural images are the bundled sample (no
    ``--images``, no ``$RSI_IMAGES``): which parts will be inconclusive, and what decides them."""
    from rsi_core.model.images import bundled_dir, resolve_image_dir
    from rsi_core.verdicts.registry import CLAIMS
    if profile != "paper" or resolve_image_dir(images).resolve() != bundled_dir().resolve():
        return None
    parts = ", ".join(c.id for c in CLAIMS.values() if c.natural)
    return (f"rsi: NATURAL IMAGES: the bundled 250-image sample, not the 50,000-image validation set: the parts "
            f"that read natural images ({parts}) will be inconclusive; pass --images DIR to decide them")

