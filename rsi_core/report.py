"""claims-report.md / .json from per-claim JSON artifacts, and comparison with a baseline report.

Regression rule: a claim regresses when its verdict flips between two decisive verdicts
(holds <-> fails), or when a scalar it measured moves by more than
``max(ABS_TOLERANCE, REL_TOLERANCE * |baseline|)``.
"""
from __future__ import annotations

import json
from pathlib import Path

REL_TOLERANCE = 0.25
ABS_TOLERANCE = 0.05


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


def load_baseline(path) -> dict[str, dict]:
    """{claim id: entry} from an earlier claims-report.json."""
    try:
        data = json.loads(Path(path).read_text())
        return {c["id"]: c for c in data["claims"]}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"baseline {path} is not a readable claims-report.json ({exc}): "
                         "pass the claims-report.json of an earlier run") from exc


def write_report(entries: list[dict], folder) -> tuple[Path, Path]:
    """Write claims-report.json and .md from per-claim entries (``ClaimResult.to_json()`` plus
    ``provenance``, ``expectation``, ``outcome``, ``regressions``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    entries = sorted(entries, key=lambda e: e["id"])
    prov = entries[0]["provenance"] if entries else {}
    from .controls import is_control
    control = is_control(prov.get("weights", ""))
    js = folder / "claims-report.json"
    js.write_text(json.dumps({"provenance": prov, "control": control, "claims": entries}, indent=1))
    lines = ["# Claims report: Interpreting the Residual Stream of ResNet18", ""]
    lines += [f"- {k}: `{v}`" for k, v in prov.items() if k != "fz"]
    lines += [f"- FZ settings: `{json.dumps(prov.get('fz', {}))}`"]
    if control:
        lines += ["", "**Random-init or weight-shuffled weights: a control.** A claim that holds here holds "
                      "without any learning (or without its learned arrangement); expectations are 'observe' "
                      "and nothing fails."]
    lines += ["", "| claim | blocks | verdict | expectation | outcome | measured | paper |",
              "|---|---|---|---|---|---|---|"]
    for e in entries:
        cell = e["reason"].replace("|", "/")
        flag = " **regressed: " + "; ".join(e["regressions"]) + "**" if e.get("regressions") else ""
        lines.append(f"| {e['id']} | {', '.join(e['blocks'])} | {e['verdict']} | {e.get('expectation', '')} | "
                     f"{e.get('outcome', '')}{flag} | {cell} | {e['paper']} |")
    lines += ["", "Statistics:", ""] + [f"- **{e['id']}**: {e['statistic']}" for e in entries]
    md = folder / "claims-report.md"
    md.write_text("\n".join(lines) + "\n")
    return md, js


def collect(folder) -> list[dict]:
    """Per-claim entries written by this run (one JSON per claim id under ``folder/claims``)."""
    return [json.loads(p.read_text()) for p in sorted((Path(folder) / "claims").glob("*.json"))]
