"""How a claim's verdict reads beside its controls: "beyond controls", the label, and the
report's controls preamble and table.

``beyond`` compares a claim's headline value (``Verdict.value`` in ``Verdict.direction``) with
the controls' values.
"""
from __future__ import annotations

import math


def _finite(v) -> bool:
    return v is not None and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def beyond(tested_value, control_values, direction) -> str:
    """"yes" when ``tested_value`` lies beyond every control's value in ``direction`` ("greater":
    larger supports the claim, "less": smaller does), "no" when a control reaches it (ties
    count as reaching), "n/a: reason" when it cannot be decided."""
    if direction not in ("greater", "less"):
        return f"n/a: the claim has no direction to compare in ({direction!r})"
    if not _finite(tested_value):
        return "n/a: the tested model's value was not computed"
    values = list(control_values)
    if not values:
        return "n/a: no controls were run"
    finite = [v for v in values if _finite(v)]
    reach = (lambda v: v >= tested_value) if direction == "greater" else (lambda v: v <= tested_value)
    if any(reach(v) for v in finite):
        return "no"
    if len(finite) < len(values):
        return f"n/a: {len(values) - len(finite)} of {len(values)} controls could not compute the value"
    return "yes"


def verdict_label(verdict: str, beyond_cell: str | None) -> str:
    """The verdict as the terminal summary and report state it: a claim that holds on the tested
    model while a control reaches its value is "holds, not beyond controls"."""
    if verdict == "holds" and beyond_cell == "no":
        return "holds, not beyond controls"
    return verdict


def report_preamble(entries: list[dict]) -> list[str]:
    """The report's opening lines about controls: which were run and what they are, or that none were."""
    runs = next((e["controls"] for e in entries if e.get("controls")), [])
    if not runs:
        return ["**No controls were run** (`--controls 0`): a verdict here does not say whether "
                "learning or the architecture alone produces it. Run `--controls 2` (the paper profile's "
                "default) to compare every claim with random-init and weight-shuffled models."]
    names = ", ".join(f"`{c['weights']}` ({c['kind']})" for c in runs)
    return [f"**Controls:** {names}. `random:SEED` is a seeded random initialization of the same "
            "architecture; `shuffle:SEED:W` is W with each conv/linear layer's weights permuted across "
            "output channels and positions (per input channel) and BatchNorm affine parameters permuted "
            "across channels, BatchNorm statistics recomputed on the image folder. Same profile, FZ settings "
            "and image set. **beyond controls**: yes when the tested value lies beyond every control's in "
            "the claim's direction, no when a control reaches it."]


def report_table(entries: list[dict]) -> list[str]:
    """Markdown: per claim, the tested value and verdict, each control's, and "beyond controls"."""
    runs = next((e["controls"] for e in entries if e.get("controls")), [])
    if not runs:
        return []
    head = ["claim", "direction", "tested"] + [c["weights"] for c in runs] + ["beyond controls"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for e in entries:
        by_weights = {c["weights"]: c for c in e.get("controls") or []}
        cells = [e["id"], str(e.get("direction") or "n/a"), _cell(e.get("value"), e["verdict"])]
        cells += [_cell(by_weights[c["weights"]]["value"], by_weights[c["weights"]]["verdict"])
                  if c["weights"] in by_weights else "not run" for c in runs]
        cells.append(str(e.get("beyond_controls") or "n/a: no controls were run"))
        lines.append("| " + " | ".join(x.replace("|", "/") for x in cells) + " |")
    return lines


def headline(entry: dict) -> tuple[float | None, str | None]:
    """(value, direction) of a claim entry (``Verdict.to_json()``); value None when not computed."""
    value = entry.get("value")
    return (value if _finite(value) else None), entry.get("direction")


def _cell(value, verdict: str) -> str:
    return f"{value:.3g} ({verdict})" if _finite(value) else f"n/a ({verdict})"
