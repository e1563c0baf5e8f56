"""claims-report.md / .json from per-claim JSON artifacts, and comparison with a baseline report.

Regression rule: a claim regresses when its verdict flips between two decisive verdicts
(holds <-> fails), or when a scalar it measured moves by more than
``max(ABS_TOLERANCE, REL_TOLERANCE * |baseline|)``. A baseline is comparable only when it ran
the same model, profile, image set and FZ target (a weights update is the regression use case).
"""
from __future__ import annotations

import json
from pathlib import Path

from rsi_core.model.sources import is_control
from rsi_core.report.controls import report_preamble, report_table
from rsi_core.report.html import write_html

REL_TOLERANCE = 0.25
ABS_TOLERANCE = 0.05
COMPARABLE = (("model", lambda p: p.get("model")), ("profile", lambda p: p.get("profile")),
              ("image set", lambda p: p.get("image_set_id")),
              ("FZ target", lambda p: (p.get("fz") or {}).get("target", "as-written")))


def _scalars(d, prefix=""):
    """Flatten nested dicts of numbers to {"a.b": value} (lists are left out)."""
    out = {}
    for k, v in (d or {}).items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_scalars(v, name + "."))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[name] = float(v)
    return out


def regressions(result: dict, baseline: dict | None) -> list[str]:
    """What moved between ``baseline`` and ``result`` (two entries of a claims report)."""
    if not baseline:
        return []
    found = []
    if {result["verdict"], baseline["verdict"]} == {"holds", "fails"}:
        found.append(f"verdict flipped: {baseline['verdict']} -> {result['verdict']}")
    new, old = _scalars(result.get("measured")), _scalars(baseline.get("measured"))
    for k in sorted(new.keys() & old.keys()):
        if abs(new[k] - old[k]) > max(ABS_TOLERANCE, REL_TOLERANCE * abs(old[k])):
            found.append(f"{k}: {old[k]:.4g} -> {new[k]:.4g}")
    return found


def load_baseline(path) -> dict:
    """{"provenance": ..., "claims": {claim id: entry}} from an earlier claims-report.json."""
    try:
        data = json.loads(Path(path).read_text())
        return {"provenance": data.get("provenance", {}), "claims": {c["id"]: c for c in data["claims"]}}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"baseline {path} is not a readable claims-report.json ({exc}): "
                         "pass the claims-report.json of an earlier run") from exc


def check_baseline(baseline: dict, provenance: dict) -> None:
    """Refuse a baseline of another model, profile, image set or FZ target: its differences are
    not regressions."""
    old = baseline.get("provenance", {})
    diff = [f"{name} {get(old)!r} vs {get(provenance)!r}" for name, get in COMPARABLE if get(old) != get(provenance)]
    if diff:
        raise ValueError(f"baseline is not comparable with this run ({'; '.join(diff)}): pass the report of a run "
                         "of the same model, profile, image set and FZ target (other weights are fine)")


def _blocks(e) -> str:
    b = e.get("blocks") or {}
    if isinstance(b, dict):
        return "; ".join(f"{role}: {', '.join(v)}" for role, v in b.items())
    return ", ".join(b)


def _num(x) -> str:
    return "n/a" if x is None else f"{x:.3g}"


def write_report(entries: list[dict], folder) -> tuple[Path, Path]:
    """Write claims-report.json, .md and .html (``report.html``) from per-claim entries, then
    append every ``folder/sections/*.md`` (report sections of other analyses)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    entries = sorted(entries, key=lambda e: e["id"])
    prov = next((e["provenance"] for e in entries if e.get("provenance")), {})
    control = is_control(prov.get("weights", ""))
    js = folder / "claims-report.json"
    js.write_text(json.dumps({"provenance": prov, "control": control, "claims": entries}, indent=1))
    lines = ["# Claims report: Interpreting the Residual Stream of ResNet18", ""]
    lines += report_preamble(entries) + [""]  # controls or their absence, in the first lines
    lines += [f"- {k}: `{v}`" for k, v in prov.items() if k != "fz"]
    lines += [f"- FZ settings: `{json.dumps(prov.get('fz', {}))}`"]
    if control:
        lines += ["", "**Random-init or weight-shuffled weights: a control.** A claim that holds here holds "
                      "without any learning (or without its learned arrangement); expectations are 'observe' "
                      "and nothing fails."]
    lines += ["", "| claim | blocks read | verdict | expectation | outcome | measured | paper |",
              "|---|---|---|---|---|---|---|"]
    for e in entries:
        cell = e["reason"].replace("|", "/").replace("\n", " ")
        flag = " **regressed: " + "; ".join(e["regressions"]) + "**" if e.get("regressions") else ""
        label = e.get("label") or e["verdict"]
        lines.append(f"| {e['id']} | {_blocks(e)} | {label} | {e.get('expectation', '')} | "
                     f"{e.get('outcome', '')}{flag} | {cell} | {e.get('paper', '').replace('|', '/')} |")
    if any("readings" in e for e in entries):
        lines += ["", "FZ readings (SPEC: the FZ target as written vs as the authors' code ran it):", "",
                  "| claim | as-written | as-run |", "|---|---|---|"]
        lines += [f"| {e['id']} | " + " | ".join(f"{r['verdict']} ({_num(r['value'])})" for r in
                                              (e["readings"][t] for t in ("as-written", "as-run"))) + " |"
                  for e in entries if "readings" in e]
    if any("seeds" in e for e in entries):
        lines += ["", "FZ seeds (verdict inconclusive when seeds disagree):", "", "| claim | per seed | range |",
                  "|---|---|---|"]
        lines += [f"| {e['id']} | " + ", ".join(f"{s['seed']}: {s['verdict']} ({_num(s['value'])})" for s in e["seeds"])
                  + f" | {e.get('seed_range')} |" for e in entries if "seeds" in e]
    if any(e.get("controls") for e in entries):
        lines += ["", "Beside the controls:", ""] + report_table(entries)
    lines += ["", "Statistics:", ""] + [f"- **{e['id']}**: {e['statistic']}" for e in entries if e["statistic"]]
    errors = [e for e in entries if e["verdict"] == "error"]
    if errors:
        lines += ["", "Errors:", ""] + [f"- **{e['id']}**: `{e.get('error', e['reason'])}`" for e in errors]
    for section in sorted((folder / "sections").glob("*.md")):
        lines += ["", section.read_text().rstrip()]
    md = folder / "claims-report.md"
    md.write_text("\n".join(lines) + "\n")
    write_html(entries, folder)
    return md, js


def remove_report(folder) -> list[Path]:
    """Remove a previous run's report (a run that checked no claim must not leave it in place)."""
    gone = []
    for name in ("claims-report.md", "claims-report.json", "claims-report.html"):
        p = Path(folder) / name
        if p.exists():
            p.unlink()
            gone.append(p)
    return gone


def collect(folder) -> list[dict]:
    """Per-claim entries written by this run (one JSON per claim id under ``folder/claims``)."""
    return [json.loads(p.read_text()) for p in sorted((Path(folder) / "claims").glob("*.json"))]
