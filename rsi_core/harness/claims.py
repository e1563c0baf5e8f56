"""Running one claim function (``claims/test_*.py``): on the tested study, under each FZ
reading and seed asked for, and on controls; the per-claim JSON entry; its outcome against the
expectation for this model. The claims themselves live in their tests, nowhere else.
"""
from __future__ import annotations

import json
import traceback
from dataclasses import replace
from pathlib import Path

from rsi_core.harness import expectations as expect_mod
from rsi_core.harness.expectations import claims_dir
from rsi_core.paper import PAPER_READING, READINGS
from rsi_core.report import claims_report as report
from rsi_core.verdicts import regression
from rsi_core.verdicts.verdict import Verdict, seed_verdict


class Harness:
    """Everything a run's claims share: the tested study, its variants (FZ readings, seeds,
    controls, built lazily once), expectations and the baseline."""

    def __init__(self, study, artifacts_dir, expectations: dict | None = None, baseline: dict | None = None,
                 fz_target: str = "as-written", fz_seeds: int = 1, controls: int = 0):
        if fz_target not in READINGS + ("both",):
            raise ValueError(f"--fz-target {fz_target!r}: use as-written, as-run or both")
        if fz_seeds < 1:
            raise ValueError(f"--fz-seeds {fz_seeds}: use 1 or more")
        self.study, self.folder = study, Path(artifacts_dir)
        self.fz_target, self.fz_seeds, self.n_controls = fz_target, fz_seeds, controls
        self._variants: dict = {}
        prov = self.primary().describe()
        self.expectations = expectations or expect_mod.for_run(prov["model"], prov["weights"])
        self.baseline = baseline
        refused = report.check_baseline(baseline, prov) if baseline else None
        if refused:
            raise ValueError(refused)

    # studies --------------------------------------------------------------------------------
    @property
    def primary_reading(self) -> str:
        """The one reading asked (as-written when both are): the controls' reading."""
        return "as-run" if self.fz_target == "as-run" else "as-written"

    def primary(self):
        """The study of ``primary_reading``."""
        return self.reading("as-run") if self.fz_target == "as-run" else self.study

    def decisive(self, claim_id: str) -> str:
        """The reading whose verdict is the claim's outcome: the one asked, or with both the
        paper's own reading of the claim (``paper.PAPER_READING``)."""
        return PAPER_READING.get(claim_id, "as-written") if self.fz_target == "both" else self.primary_reading

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
    def run(self, claim_id: str, fn, figure=None, paired=None) -> dict:
        """Evaluate ``fn`` (a claim function) and write ``artifacts/claims/<id>.json``; an exception
        becomes an ``error`` entry (written) and is raised again. ``paired``: the per-channel
        quantities recorded for a later paired check (default: the claim's ``@reads``)."""
        paper = " ".join((fn.__doc__ or "").split())
        try:
            target = self.primary_reading
            known = {target: fn(self.primary())}  # a claim that does not apply is n/a under every reading
            if known[target].verdict != "n/a":
                known.setdefault(self.decisive(claim_id), None)
                known = {t: v or fn(self.reading(t)) for t, v in known.items()}
            decided = self.decisive(claim_id) if self.decisive(claim_id) in known else target
            v = replace(known[decided], claim_id=claim_id)
            entry = self._entry(claim_id, paper, v, getattr(fn, "paired", ()) if paired is None else paired,
                                self.primary() if decided == target else self.reading(decided))
            if v.verdict != "n/a":  # nothing to read under other readings, seeds or controls
                self._extras(entry, fn, figure, known)
        except Exception as exc:
            write_entry(self.folder, error_entry(claim_id, paper, exc, self.study.describe(),
                                                 self.expectations.get(claim_id, "observe")))
            raise
        write_entry(self.folder, entry)
        return entry

    def _entry(self, claim_id, paper, v: Verdict, paired=(), decided=None) -> dict:
        """The claim's entry from its verdict ``v`` on study ``decided`` (default: the primary; the
        provenance is the run's, the primary's: ``decisive_reading`` says which reading decided)."""
        decided = decided or self.primary()
        prov = self.primary().describe()
        expect = self.expectations.get(claim_id, "observe")
        entry = {"id": claim_id, "paper": paper, **v.to_json(), "expectation": expect,
                 "outcome": expect_mod.outcome(v.verdict, expect), "provenance": prov, "regressions": []}
        if self.fz_target == "both":
            entry["decisive_reading"] = self.decisive(claim_id)
        if paired and v.verdict != "n/a" and not v.reason.startswith("n/a"):
            blocks = [b for role in (v.blocks.values() if isinstance(v.blocks, dict) else [v.blocks]) for b in role]
            entry["paired"] = regression.record(decided, list(dict.fromkeys(blocks)), paired,
                                                v.measured.get("found"))
        if self.baseline:
            entry["regression"] = regression.compare(self.baseline["claims"].get(claim_id), entry)
            if entry["regression"]["verdict"] == "changed":
                entry["regressions"] = regression.changed_parts(entry["regression"])
        return entry

    def _extras(self, entry: dict, fn, figure, known: dict) -> None:
        decisive = self.decisive(entry["id"])
        if self.fz_seeds > 1:
            per = [fn(self.seed(s, decisive)) for s in range(self.fz_seeds)]
            agreed, rng = seed_verdict(per)
            entry["seeds"] = [{"seed": s, "verdict": p.verdict, "value": p.value} for s, p in enumerate(per)]
            entry["seed_range"] = rng
            if agreed != entry["verdict"]:
                entry["reason"] = f"FZ seeds disagree ({', '.join(p.verdict for p in per)}); " + entry["reason"]
                entry["verdict"] = agreed
                entry["outcome"] = expect_mod.outcome(agreed, entry["expectation"])
        if self.fz_target == "both":  # each reading decided; the decisive one is the entry's own verdict
            entry["readings"] = {}
            for t in READINGS:
                rv = (known.get(t) or fn(self.reading(t))) if t != decisive else None
                verdict = rv.verdict if rv else entry["verdict"]
                expect = self.expectations.get(f"{entry['id']}@{t}", entry["expectation"] if t == decisive else "observe")
                entry["readings"][t] = {"verdict": verdict, "value": rv.value if rv else entry["value"],
                                        "measured": rv.measured if rv else entry["measured"], "expectation": expect,
                                        "outcome": expect_mod.outcome(verdict, expect)}
            entry["reading_dependent"] = len({r["verdict"] for r in entry["readings"].values()}) > 1
            entry["outcome"] = expect_mod.combined({t: r["outcome"] for t, r in entry["readings"].items()}, decisive)
        runs = self.controls()
        if runs:
            from rsi_core.harness.controls import add_controls
            add_controls(entry, runs, lambda study: fn(study).to_json())
        if figure is not None:  # a panel per FZ reading when both are asked
            self.folder.mkdir(parents=True, exist_ok=True)
            panels = ({t: (self.reading(t), entry["readings"][t]["measured"]) for t in READINGS}
                      if self.fz_target == "both" else {"": (self.primary(), entry["measured"])})
            for t, (st, measured) in panels.items():
                name = f"{entry['id']}-{t}.png" if t else f"{entry['id']}.png"
                entry["artifacts"] += [str(p) for p in figure(st, self.folder / name, measured, runs) or []]


def error_entry(claim_id: str, paper: str, exc: BaseException | str, prov: dict, expectation="observe") -> dict:
    """The report's entry for a claim that raised: verdict ``error`` with the exception."""
    text = exc if isinstance(exc, str) else "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return {"id": claim_id, "paper": paper, "claim_id": claim_id, "verdict": "error", "statistic": "",
            "measured": {}, "blocks": {}, "reason": f"error: {text}", "value": None, "direction": None,
            "artifacts": [], "expectation": expectation, "outcome": "error", "provenance": prov,
            "regressions": [], "error": text}


def write_entry(folder, entry: dict) -> Path:
    out = Path(folder) / "claims"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{entry['id']}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(entry, indent=1))
    tmp.replace(path)
    return path


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

