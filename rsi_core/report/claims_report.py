"""claims-report.md / .json from per-claim JSON artifacts, and the baseline they are checked against.

Regression rule (``rsi_core.verdicts.regression``): with the same profile as the baseline, every
claim's per-channel values pair with the baseline's, channel by channel (the same channels, the
same FZ seeds); a claim "changed" beyond FZ seed noise fails. A baseline is comparable only when
it ran the same model, profile (and its channels), image set and FZ settings (``check_baseline``:
a weights update is the regression use case).
"""
from __future__ import annotations

import json
from pathlib import Path

from rsi_core.model.sources import is_control
from rsi_core.report.controls import report_preamble, report_table
from rsi_core.report.entry import ClaimEntry
from rsi_core.report.environment import SCHEMA, environment, schema_of
from rsi_core.report.html import blocks_text, reading_text, write_html

#: the FZ settings a baseline must share (``FZSettings``' fields that change an FZ; lr and crop are fixed)
FZ_KEYS = ("steps", "target", "jitter_table", "seed", "objective")


def load_baseline(path) -> dict:
    """{"provenance": ..., "claims": {claim id: entry}} from an earlier claims-report.json."""
    try:
        data = json.loads(Path(path).read_text())
        schema = schema_of(data)
        baseline = {"provenance": data.get("provenance", {}), "claims": {c["id"]: c for c in data["claims"]}}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"baseline {path} is not a readable claims-report.json ({exc}): "
                         "pass the claims-report.json of an earlier run") from exc
    if schema != SCHEMA:
        made = (data.get("environment") or {}).get("rsi") or "another rsi"
        raise ValueError(f"baseline {path} is a claims-report.json of schema {schema} (made by rsi {made}); this rsi "
                         f"reads schema {SCHEMA}: rerun the baseline with this rsi and pass its claims-report.json")
    return baseline


def identity(prov: dict) -> dict:
    """What a baseline must share with a run, from a report's provenance."""
    fz = prov.get("fz") or {}
    return {"model": prov.get("model"), "profile": prov.get("profile"), "channels": prov.get("sample"),
            "image set": prov.get("image_set_id"), "FZ settings": {k: fz.get(k) for k in FZ_KEYS},
            "antialias": bool(prov.get("antialias"))}


def options_identity(config) -> dict:
    """The same from a run's configuration, before any work (``harness.options.RunConfig``: its
    model, profile, image set, primary FZ reading, jitter table and antialias)."""
    p = config.profile
    return {"model": config.model, "profile": p.name, "channels": p.definition(), "image set": config.images.identity,
            "FZ settings": {"steps": p.steps, "target": config.readings.primary, "jitter_table": config.jitter_table,
                            "seed": 0, "objective": "neuron"},
            "antialias": bool(config.antialias)}


def _differing(old, new) -> str:
    """What differs, short: a mapping's differing keys only, each value cut to 40 characters."""
    if isinstance(old, dict) and isinstance(new, dict):
        return ", ".join(f"{k} {_differing(old.get(k), new.get(k))}" for k in sorted(set(old) | set(new))
                         if old.get(k) != new.get(k))
    cut = lambda v: repr(v) if len(repr(v)) <= 40 else repr(v)[:37] + "..."
    return f"{cut(old)} vs {cut(new)}"


def check_baseline(baseline: dict, run) -> str | None:
    """One line saying why ``baseline`` (``load_baseline``) cannot be compared with ``run`` (a
    ``RunConfig``: ``options_identity``; or a study's provenance dict), or None when it can:
    another model, profile, channel set, image set or FZ settings makes differences that are not
    regressions, and a baseline without per-channel values has nothing to pair."""
    old = identity(baseline.get("provenance", {}))
    new = identity(run) if isinstance(run, dict) else options_identity(run)
    diff = [f"{k} {_differing(old[k], new[k])}" for k in old if old[k] != new[k]]
    if diff:
        return (f"baseline is not comparable with this run ({'; '.join(diff)}): pass the claims-report.json of a run of "
                "the same model, profile, image set and FZ settings (other weights are fine)")
    if not any(e.get("paired") for e in baseline.get("claims", {}).values()):
        return ("baseline has no per-channel values (made by an older rsi, or no claim ran): rerun it with this rsi "
                "and the same profile, then pass its claims-report.json")
    return None


def _num(x) -> str:
    return "n/a" if x is None else f"{x:.3g}"


def write_report(claims: list[ClaimEntry], folder, env: dict | None = None) -> tuple[Path, Path]:
    """Write claims-report.json, .md and .html (``report.html``) from a run's entries, then
    append every ``folder/sections/*.md`` (report sections of other analyses). ``env``: the run's
    environment record (default: this process's, ``report.environment``). The reports render the
    entries' JSON form, the one claims-report.json holds."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    entries = sorted((c.to_json() for c in claims), key=lambda e: e["id"])
    prov = next((e["provenance"] for e in entries if e.get("provenance")), {})
    control = is_control(prov.get("weights", ""))
    js = folder / "claims-report.json"
    env = env if env is not None else environment(prov.get("device"))
    js.write_text(json.dumps({"schema": SCHEMA, "environment": env, "provenance": prov, "control": control,
                              "claims": entries}, indent=1))
    lines = ["# Claims report: Interpreting the Residual Stream of ResNet18", ""]
    lines += report_preamble(entries) + [""]  # controls or their absence, in the first lines
    lines += [f"- {k}: `{v}`" for k, v in prov.items() if k != "fz"]
    lines += [f"- FZ settings: `{json.dumps(prov.get('fz', {}))}`"]
    lines += ["- environment: " + ", ".join(f"{k} `{v}`" for k, v in env.items() if v is not None)]
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
        label += f" ({reading_text(e)})" if reading_text(e) else ""
        lines.append(f"| {e['id']} | {blocks_text(e)} | {label} | {e.get('expectation', '')} | "
                     f"{e.get('outcome', '')}{flag} | {cell} | {e.get('paper', '').replace('|', '/')} |")
    if any("readings" in e for e in entries):
        lines += ["", "FZ readings (SPEC: the FZ target as written vs as the authors' code ran it; the decisive "
                      "one is the paper's own reading of the claim, rsi_core.paper.PAPER_READING):", "",
                  "| claim | as-written | as-run | decisive | reading-dependent |", "|---|---|---|---|---|"]
        lines += [f"| {e['id']} | " + " | ".join(f"{r['verdict']} ({_num(r['value'])})" for r in
                                              (e["readings"][t] for t in ("as-written", "as-run")))
                  + f" | {e.get('decisive_reading', '')} | {'yes' if e.get('reading_dependent') else 'no'} |"
                  for e in entries if "readings" in e]
    if any("seeds" in e for e in entries):
        lines += ["", "FZ seeds (verdict inconclusive when seeds disagree):", "", "| claim | per seed | range |",
                  "|---|---|---|"]
        lines += [f"| {e['id']} | " + ", ".join(f"{s['seed']}: {s['verdict']} ({_num(s['value'])})" for s in e["seeds"])
                  + f" | {e.get('seed_range')} |" for e in entries if "seeds" in e]
    if any("regression" in e for e in entries):
        lines += ["", "Paired regression check against the baseline (same channels and FZ seeds; "
                      "`rsi_core.verdicts.regression`):", "",
                  "| claim | baseline verdict (value) | this run (value) | paired check | changed parts |", "|---|---|---|---|---|"]
        lines += [f"| {e['id']} | {r['old']['verdict']} ({_num(r['old']['value'])}) | {r['new']['verdict']} "
                  f"({_num(r['new']['value'])}) | {r['verdict']} | {'; '.join(e.get('regressions', [])) or '-'} |"
                  for e in entries if (r := e.get("regression"))]
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
    write_html(entries, folder, env=env)
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


def collect(folder) -> list[ClaimEntry]:
    """The entries a run wrote under ``folder/claims`` (one per claim id), by id."""
    return [ClaimEntry.read(p) for p in sorted((Path(folder) / "claims").glob("*.json"))]
