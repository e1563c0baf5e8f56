"""The claims-by-models table (``rsi compare``): which of the paper's claims hold on which
models and weights, from their claims reports.

One row per claim, one column per report (model / weights); each cell the verdict, the headline
value and whether it is beyond controls. Reports of different profiles or image sets measure
different things: they are refused unless ``allow_mixed``, and then the table says they differ.
"""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

from matplotlib.figure import Figure

from rsi_core.report.plots import FOOTER_SIZE, provenance_text

MUST_AGREE = (("profile", lambda p: p.get("profile")), ("image set", lambda p: p.get("image_set_id")))
COLOURS = {"holds": "#9fd89f", "fails": "#f0a0a0", "inconclusive": "#e6e6e6", "n/a": "#ffffff", "error": "#808080"}


def read_report(path) -> dict:
    try:
        data = json.loads(Path(path).read_text())
        return {"path": str(path), "provenance": data.get("provenance", {}), "claims": {c["id"]: c for c in data["claims"]}}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path} is not a readable claims-report.json ({exc}): pass the claims-report.json "
                         "files that pytest claims or rsi run wrote") from None


def differences(reports: list[dict]) -> list[str]:
    """What the reports do not share of ``MUST_AGREE``, in words (empty: comparable)."""
    out = []
    for name, get in MUST_AGREE:
        values = {get(r["provenance"]) for r in reports}
        if len(values) > 1:
            out.append(f"{name}s differ: " + ", ".join(f"{r['path']}: {get(r['provenance'])}" for r in reports))
    return out


def column(report: dict) -> str:
    p = report["provenance"]
    return f"{p.get('model', '?')} / {p.get('weights', '?')}"


def _cell(entry: dict | None) -> dict:
    if entry is None:
        return {"verdict": "not run", "value": None, "beyond_controls": None, "reason": "not in this report"}
    return {"verdict": entry.get("label") or entry["verdict"], "value": entry.get("value"),
            "beyond_controls": entry.get("beyond_controls") or "no controls run", "reason": entry.get("reason", "")}


def table(reports: list[dict], allow_mixed: bool = False) -> dict:
    """{"columns", "claims": [{"id", "cells"}], "mixed"}; refuses incomparable reports unless ``allow_mixed``."""
    if not reports:
        raise ValueError("rsi compare needs at least one claims-report.json")
    mixed = differences(reports)
    if mixed and not allow_mixed:
        raise ValueError("the reports are not comparable (" + "; ".join(mixed) + "): compare runs of one profile "
                         "and image set, or pass --allow-mixed to compare them anyway (the table then says so)")
    ids = sorted({cid for r in reports for cid in r["claims"]})
    return {"columns": [{"column": column(r), "report": r["path"], "provenance": r["provenance"]} for r in reports],
            "claims": [{"id": cid, "cells": [_cell(r["claims"].get(cid)) for r in reports]} for cid in ids],
            "mixed": mixed}


def _text(cell: dict) -> str:
    value = cell["value"]
    shown = f" ({value:.3g})" if isinstance(value, (int, float)) else ""
    return f"{cell['verdict']}{shown}"


def markdown(t: dict) -> str:
    lines = ["# Universality: the paper's claims by model", ""]
    if t["mixed"]:
        lines += ["**Mixed reports (--allow-mixed): " + "; ".join(t["mixed"]) + ".** Their cells measure different "
                  "things.", ""]
    lines += [f"- {c['column']}: `{c['report']}` (weights id {c['provenance'].get('weights_id', '?')}, family "
              f"{c['provenance'].get('family', '?')}, profile {c['provenance'].get('profile', '?')}, image set "
              f"{c['provenance'].get('image_set_id', '?')})" for c in t["columns"]]
    lines += ["", "Each cell: verdict (headline value); beyond controls. An n/a cell's reason is listed below.", "",
              "| claim | " + " | ".join(c["column"] for c in t["columns"]) + " |",
              "|---|" + "---|" * len(t["columns"])]
    for row in t["claims"]:
        cells = [f"{_text(c)}; {c['beyond_controls']}" if c["beyond_controls"] else _text(c) for c in row["cells"]]
        lines.append(f"| {row['id']} | " + " | ".join(x.replace("|", "/") for x in cells) + " |")
    notes = [f"- {row['id']} on {col['column']}: {c['reason']}" for row in t["claims"]
             for col, c in zip(t["columns"], row["cells"]) if c["verdict"] == "n/a"]
    if notes:
        lines += ["", "Not applicable:", ""] + notes
    return "\n".join(lines) + "\n"


def grid(t: dict, path) -> Path:
    """The table as a PNG grid: cells coloured by verdict, the footer naming every column's run."""
    rows, cols = len(t["claims"]), len(t["columns"])
    fig = Figure(figsize=(2.2 + 2.6 * cols, 0.9 + 0.45 * rows))
    ax = fig.add_axes([0.25, 0.02, 0.73, 0.85])
    ax.set_xlim(0, cols)
    ax.set_ylim(rows, 0)
    for i, row in enumerate(t["claims"]):
        for j, c in enumerate(row["cells"]):
            base = c["verdict"].split(",")[0]
            ax.add_patch(_rect(j, i, COLOURS.get(base, "#ffffff")))
            beyond = c["beyond_controls"]
            extra = "" if not beyond or beyond == "no controls run" else f"\nbeyond controls: {beyond[:20]}"
            ax.text(j + 0.5, i + 0.5, _text(c) + extra, ha="center", va="center", fontsize=7)
    ax.set_xticks([j + 0.5 for j in range(cols)], [textwrap.fill(c["column"], 24) for c in t["columns"]], fontsize=7)
    ax.set_yticks([i + 0.5 for i in range(rows)], [r["id"] for r in t["claims"]], fontsize=7)
    ax.xaxis.tick_top()
    ax.tick_params(length=0)
    footer = "\n".join(f"{c['column']}: {provenance_text(c['provenance'])}" for c in t["columns"])
    if t["mixed"]:
        footer = "MIXED: " + "; ".join(t["mixed"]) + "\n" + footer
    fig.text(0.01, 0, "\n".join(textwrap.fill(line, 180) for line in footer.splitlines()),
             fontsize=FOOTER_SIZE - 1, color="0.3", ha="left", va="top")  # below the grid: bbox_inches keeps it
    path = Path(path)
    fig.savefig(path, format="png", dpi=100, bbox_inches="tight", pad_inches=0.15)
    return path


def _rect(x, y, colour):
    from matplotlib.patches import Rectangle
    return Rectangle((x, y), 1, 1, facecolor=colour, edgecolor="0.5", linewidth=0.5)


def write(paths, out, allow_mixed: bool = False) -> list[Path]:
    """universality.md, .json and .png in ``out`` from the claims reports at ``paths``."""
    t = table([read_report(p) for p in paths], allow_mixed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "universality.json").write_text(json.dumps(t, indent=1))
    (out / "universality.md").write_text(markdown(t))
    return [out / "universality.md", out / "universality.json", grid(t, out / "universality.png")]
