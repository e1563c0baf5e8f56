"""claims-report.html: the claims report as one self-contained page a person would rather open.

The verdict table first (one colour per verdict), then per claim its statement, the statistic's
sentence, what was measured, the controls and the FZ readings or seeds when run, its figures
inline (base64 PNG: the file can be mailed or attached to a CI run alone) and the provenance.
No script, no external stylesheet or font.
"""
from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

from PIL import Image

from rsi_core.report.controls import report_preamble

#: background colour of each verdict's cell (the Chromium test reads these pixels)
VERDICT_COLOURS = {"holds": "#2e7d32", "fails": "#c62828", "inconclusive": "#f9a825", "error": "#6a1b9a",
                   "n/a": "#757575"}
OTHER_COLOUR = "#455a64"
#: the largest figure the page embeds as PNG; a larger one is an image grid, embedded as JPEG
PNG_BYTES = 400_000

STYLE = """
body { font-family: sans-serif; margin: 2em; max-width: 75em; color: #212121; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #bdbdbd; padding: 0.35em 0.6em; text-align: left; vertical-align: top; }
th { background: #eeeeee; }
td.verdict { color: white; font-weight: bold; white-space: nowrap; }
section.claim { border-top: 2px solid #e0e0e0; margin-top: 2em; padding-top: 0.5em; }
img { max-width: 100%; border: 1px solid #e0e0e0; margin: 0.5em 0; }
.statistic { background: #f5f5f5; padding: 0.6em; border-left: 4px solid #9e9e9e; }
.regressed { color: #c62828; font-weight: bold; }
pre { background: #fafafa; padding: 0.6em; overflow-x: auto; font-size: 85%; }
"""


def colour(verdict: str) -> str:
    return VERDICT_COLOURS.get(verdict, OTHER_COLOUR)


def _e(x) -> str:
    return html.escape(str(x))


def blocks_text(e) -> str:
    """The blocks a claim read, by role (``downsample: 2.0, 3.0``): one cell of either report."""
    b = e.get("blocks") or {}
    if isinstance(b, dict):
        return "; ".join(f"{role}: {', '.join(v)}" for role, v in b.items())
    return ", ".join(b)


def reading_text(e) -> str:
    """"" or, where both FZ readings were decided and disagree, what each gave and which one
    decided (``reading-dependent: as-written holds, as-run fails; decided as-run``): the verdict
    cell of either report says it."""
    if not e.get("reading_dependent"):
        return ""
    per = ", ".join(f"{t} {r['verdict']}" for t, r in e["readings"].items())
    return f"reading-dependent: {per}; decided {e.get('decisive_reading')}"


def _verdict_cell(e) -> str:
    note = reading_text(e)
    return (f'<td class="verdict" style="background:{colour(e["verdict"])}">{_e(e.get("label") or e["verdict"])}'
            + (f'<br><small>{_e(note)}</small>' if note else "") + "</td>")


def _mapping(d: dict) -> str:
    """A two-column table of a (flattened) mapping."""
    rows = []

    def walk(x, prefix=""):
        for k, v in x.items():
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")
            else:
                text = json.dumps(v) if isinstance(v, (list, tuple)) else v
                rows.append(f"<tr><th>{_e(prefix + str(k))}</th><td>{_e(text)}</td></tr>")
    walk(d or {})
    return "<table>" + "".join(rows) + "</table>" if rows else "<p>none</p>"


def _figure(path) -> str:
    p = Path(path)
    if p.suffix.lower() != ".png" or not p.is_file():
        return f"<p>figure {_e(p.name)} not found</p>"
    mime, data = _page_image(p)
    return (f'<figure><img alt="{_e(p.name)}" src="data:{mime};base64,{base64.b64encode(data).decode()}">'
            f'<figcaption>{_e(p.name)} (full size: the PNG of that name in the artifacts)</figcaption></figure>')


def _page_image(p: Path) -> tuple[str, bytes]:
    """The figure as the page embeds it: a plot as its PNG; a grid of FZs and natural images
    (noise-like pixels: a PNG of several MB) as a JPEG, which keeps the page mailable."""
    data = p.read_bytes()
    if len(data) <= PNG_BYTES:
        return "image/png", data
    out = io.BytesIO()
    with Image.open(p) as im:
        im.convert("RGB").save(out, format="JPEG", quality=85)
    return "image/jpeg", out.getvalue()


def _controls(e) -> str:
    runs = e.get("controls") or []
    if not runs:
        return ""
    rows = "".join(f"<tr><td>{_e(c.get('weights'))}</td><td>{_e(c.get('kind'))}</td>"
                   f"<td>{_e(c.get('value'))}</td>{_verdict_cell(c)}</tr>" for c in runs)
    return (f"<h4>Controls (beyond controls: {_e(e.get('beyond_controls', 'n/a'))})</h4>"
            f"<table><tr><th>weights</th><th>kind</th><th>value</th><th>verdict</th></tr>{rows}</table>")


def _variants(e) -> str:
    out = ""
    if "readings" in e:
        rows = "".join(f"<tr><td>{_e(t)}{' (decisive)' if t == e.get('decisive_reading') else ''}</td>"
                       f"<td>{_e(r.get('value'))}</td>{_verdict_cell(r)}<td>{_e(r.get('expectation', ''))}</td>"
                       f"<td>{_e(r.get('outcome', ''))}</td></tr>" for t, r in e["readings"].items())
        out += ("<h4>FZ readings</h4><table><tr><th>reading</th><th>value</th><th>verdict</th><th>expectation</th>"
                f"<th>outcome</th></tr>{rows}</table>")
    if "seeds" in e:
        rows = "".join(f"<tr><td>{_e(s['seed'])}</td><td>{_e(s.get('value'))}</td>{_verdict_cell(s)}</tr>"
                       for s in e["seeds"])
        out += (f"<h4>FZ seeds (range {_e(e.get('seed_range'))})</h4>"
                f"<table><tr><th>seed</th><th>value</th><th>verdict</th></tr>{rows}</table>")
    return out


def claim_section(e, figures: bool = True) -> str:
    """One claim's part of the page (its figures inline unless ``figures`` is False: pytest-html
    attaches them as images of their own)."""
    regressed = (f'<p class="regressed">Regressed against the baseline: {_e("; ".join(e["regressions"]))}</p>'
                 if e.get("regressions") else "")
    error = f"<pre>{_e(e.get('error'))}</pre>" if e["verdict"] == "error" else ""
    return (f'<section class="claim" id="{_e(e["id"])}"><h2>{_e(e["id"])}</h2>'
            f'<table><tr><th>verdict</th>{_verdict_cell(e)}<th>expectation</th><td>{_e(e.get("expectation", ""))}</td>'
            f'<th>outcome</th><td>{_e(e.get("outcome", ""))}</td></tr></table>{regressed}'
            f'<p><b>Paper:</b> {_e(e.get("paper", ""))}</p><p><b>Measured:</b> {_e(e.get("reason", ""))}</p>'
            f'<p class="statistic"><b>Statistic:</b> {_e(e.get("statistic") or "none")}</p>{error}'
            + "".join(_figure(a) for a in (e.get("artifacts") or []) if figures)
            + _controls(e) + _variants(e)
            + f"<details><summary>numbers</summary>{_mapping(e.get('measured'))}</details>"
            f"<details><summary>provenance</summary>{_mapping(e.get('provenance'))}</details></section>")


def write_html(entries: list[dict], folder, title: str = "Claims report: Interpreting the Residual Stream of ResNet18",
               env: dict | None = None) -> Path:
    """Write ``folder/claims-report.html`` from the per-claim entries (and ``env``, the run's
    environment record, ``report.environment``); return its path."""
    folder = Path(folder)
    entries = sorted(entries, key=lambda e: e["id"])
    prov = next((e["provenance"] for e in entries if e.get("provenance")), {})
    rows = "".join(f'<tr><td><a href="#{_e(e["id"])}">{_e(e["id"])}</a></td><td>{_e(blocks_text(e))}</td>{_verdict_cell(e)}'
                   f'<td>{_e(e.get("expectation", ""))}</td><td>{_e(e.get("outcome", ""))}'
                   f'{" (regressed)" if e.get("regressions") else ""}</td><td>{_e(e.get("reason", ""))}</td></tr>'
                   for e in entries)
    counts = {}
    for e in entries:
        counts[e["verdict"]] = counts.get(e["verdict"], 0) + 1
    summary = ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))
    preamble = "".join(f"<p>{_e(line.replace('**', '').replace('`', ''))}</p>" for line in report_preamble(entries))
    sections = "".join(f"<section class=\"claim\"><pre>{_e(p.read_text())}</pre>"
                       + (_figure(p.with_suffix(".png")) if p.with_suffix(".png").is_file() else "") + "</section>"
                       for p in sorted((folder / "sections").glob("*.md")))  # other analyses, their figure inline
    page = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            f"<style>{STYLE}</style></head><body><h1>{_e(title)}</h1>"
            f"<p>{len(entries)} claims: {_e(summary)}. Model {_e(prov.get('model', '?'))}, weights "
            f"{_e(prov.get('weights', '?'))}, profile {_e(prov.get('profile', '?'))}.</p>{preamble}"
            f'<table id="verdicts"><tr><th>claim</th><th>blocks read</th><th>verdict</th><th>expectation</th>'
            f"<th>outcome</th><th>measured</th></tr>{rows}</table>"
            f"<details><summary>Provenance of the run</summary>{_mapping(prov)}</details>"
            + (f"<details><summary>Environment: rsi {_e(env.get('rsi'))}, torch {_e(env.get('torch'))}, "
               f"{_e(env.get('gpu') or env.get('cpu'))}, {_e(env.get('date'))}</summary>{_mapping(env)}</details>" if env else "")
            + "".join(claim_section(e) for e in entries) + sections + "</body></html>\n")
    path = folder / "claims-report.html"
    path.write_text(page, encoding="utf-8")
    return path
