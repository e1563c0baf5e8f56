"""The report section "Strict scale test": per block, how many channels pass the paper's
scale-invariance criteria and how many of those pass the strict test (``rsi_core.measure.scale_test``);
for the paper's model, which of its Figure 7 channels survive. Written as
``<artifacts>/sections/strict-scale.md`` (+ ``.json``, ``.png``), which the claims report appends.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from rsi_core.measure import scale_test
from rsi_core.report import plots

NAME = "strict-scale"


def block_counts(study, block: str, extra_channels=()) -> dict:
    """Counts for one block of ``study``, plus the strict test on ``extra_channels`` (for
    example the paper's Figure 7 channels outside the profile's sample: the strict test needs
    no FZs)."""
    chans = list(study.channels(block))
    more = [int(c) for c in extra_channels if c not in chans]
    tr = scale_test.strict_scale(study.model, study.image_set, block, chans + more, study.cache, study.device,
                                 antialias=study.antialias, progress=study.bank.progress)
    paper = np.asarray(study.block(block).scale_invariant(True), bool)
    strict = np.asarray(tr["passes"], bool)
    n = len(chans)
    per_channel = {int(c): {"paper": bool(paper[k]) if k < n else None, "strict": bool(strict[k]),
                            "r_zoom": _num(tr["r_zoom"][k]), "r_shrink": _num(tr["r_shrink"][k]),
                            "r_same": _num(tr["r_same"][k]), "balance": _num(tr["balance"][k])}
                   for k, c in enumerate(chans + more)}
    return {"studied": n, "paper": int(paper.sum()), "strict": int(strict[:n].sum()),
            "paper_and_strict": int((paper & strict[:n]).sum()),
            "paper_channels": [int(c) for c, p in zip(chans, paper) if p],
            "survivors": [int(c) for c, p, s in zip(chans, paper, strict[:n]) if p and s],
            "channels": per_channel}


def _num(x) -> float | None:
    return float(x) if np.isfinite(x) else None


def write_section(study, folder, floor: dict | None = None) -> dict:
    """Compute the section for every studied block of ``study`` and write it under
    ``folder/sections``; ``floor`` {control label: strict pass rate}. Returns the JSON data."""
    fig7 = (study.lists or {}).get("fig7", {}) if getattr(study, "lists", None) else {}
    blocks = {b: block_counts(study, b, fig7.get(b, ())) for b in study.blocks}
    survive = {b: {int(c): blocks[b]["channels"][int(c)] for c in fig7.get(b, ())} for b in study.blocks if fig7.get(b)}
    data = {"rule": rule(), "r_min": scale_test.R_MIN, "delta_min": scale_test.DELTA_MIN,
            "balance": list(scale_test.BALANCE), "bootstrap": scale_test.BOOTSTRAP, "blocks": blocks,
            "fig7": survive, "floor": floor or {}, "provenance": study.describe()}
    out = Path(folder) / "sections"
    out.mkdir(parents=True, exist_ok=True)
    png = plots.strict_scale_counts(blocks, data["provenance"], out / f"{NAME}.png", floor=floor)
    (out / f"{NAME}.json").write_text(json.dumps(data, indent=1))
    (out / f"{NAME}.md").write_text("\n".join(markdown(data, png.name)) + "\n")
    return data


def rule() -> str:
    return (f"B tracks I at twice the scale over the natural images: Spearman(I(x), B(S(x))) and "
            f"Spearman(B(x), I(S_inv(x))) >= {scale_test.R_MIN}, and the lower ends of the 95% paired-bootstrap "
            f"intervals of their excess over Spearman(I(x), B(x)) > {scale_test.DELTA_MIN}; and the two answer "
            f"about equally strongly: sqrt(sd(B(S(x)))/sd(I(x)) * sd(B(x))/sd(I(S_inv(x)))) in (2/3, 3/2)")


def markdown(data: dict, png_name: str) -> list[str]:
    lines = ["## Strict scale test (rsi, beside the paper's criteria)", "",
             f"Rule: {data['rule']}. The paper's criteria are unchanged; this asks whether B is I's feature "
             "at twice the scale (`rsi validate`: it rejects the decoys that pass the criteria).", "",
             "| block | studied | pass the paper's criteria | of those, pass the strict test | strict test alone | survivors |",
             "|---|---|---|---|---|---|"]
    for b, c in data["blocks"].items():
        lines.append(f"| {b} | {c['studied']} | {c['paper']} | {c['paper_and_strict']} | {c['strict']} | "
                     f"{', '.join(map(str, c['survivors'])) or '-'} |")
    if data["fig7"]:
        lines += ["", "The paper's Figure 7 channels:", "", "| block | channel | paper's criteria here | strict test | "
                  "r_zoom | r_shrink | r_same | balance |", "|---|---|---|---|---|---|---|---|"]
        for b, chans in data["fig7"].items():
            for c, v in chans.items():
                paper = "not studied" if v["paper"] is None else ("pass" if v["paper"] else "fail")
                lines.append(f"| {b} | {c} | {paper} | {'pass' if v['strict'] else 'fail'} | "
                             + " | ".join("n/a" if v[k] is None else f"{v[k]:.2f}"
                                          for k in ("r_zoom", "r_shrink", "r_same", "balance")) + " |")
    if data["floor"]:
        lines += ["", "False-positive floor (strict test pass rate on controls): "
                  + ", ".join(f"{k}: {v:.1%}" for k, v in data["floor"].items())]
    lines += ["", f"![strict scale test]({png_name})"]
    return lines
