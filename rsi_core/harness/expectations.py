"""What a run should show, per claim: data in TOML files, not code.

``claims/expectations/<model>.toml`` ships the paper's expectations (pretrained weights);
``--expectations FILE`` adds or overrides them. Random-init and weight-shuffled weights are
controls: every claim is observed unless a file passed with ``--expectations`` says otherwise.
``rsi expectations --from claims-report.json`` records a run's verdicts as such a file (bless a
model once; a later run whose verdict changes fails).

File format::

    model = "resnet18"            # optional: the file is refused for another model
    [claims]
    fig2-downsample-overwrite = "holds"   # holds | fails | observe: the claim's decisive reading
    [claims.as-written]                   # optional: one reading's own expectation (--fz-target both)
    fig2-downsample-overwrite = "observe"

With both readings decided, a claim's plain expectation applies to its decisive reading
(``paper.PAPER_READING``), the other reading is observed unless named; the returned mapping keys a
reading's own as ``"<claim id>@<reading>"``.
"""
from __future__ import annotations

import json
import tomllib
from pathlib import Path

from rsi_core.paper import READINGS
from rsi_core.verdicts.registry import CLAIM_IDS  # the one record per claim

VALUES = ("holds", "fails", "observe")


def claims_dir() -> Path:
    """The claims tests: a clone's ``claims/`` beside the package, else the installed ``rsi_claims``
    package (the same folder, shipped in the wheel under rsi's name)."""
    import importlib.util
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").is_file() and (root / "claims").is_dir():
        return root / "claims"
    spec = importlib.util.find_spec("rsi_claims")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations))).resolve()
    raise FileNotFoundError(f"no claims folder beside {root} and no rsi_claims package: "
                            "pass the folder of the claims tests (--claims PATH)")


def shipped_dir() -> Path:
    return claims_dir() / "expectations"


def read(path) -> dict:
    """{claim id: expectation} of one file, checked: unknown claim ids, values or model are errors."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"expectations file {path}: {exc}") from None
    unknown_keys = set(data) - {"model", "weights", "claims"}
    if unknown_keys:
        raise ValueError(f"expectations file {path}: unknown keys {sorted(unknown_keys)}; use model, weights, [claims]")
    claims = dict(data.get("claims", {}))
    for reading in READINGS:  # [claims.<reading>]: that reading's own expectations
        named = claims.pop(reading, {})
        if not isinstance(named, dict):
            raise ValueError(f"expectations file {path}: {reading} must be a table [claims.{reading}] of claim ids")
        bad_ids = sorted(set(named) - set(CLAIM_IDS))
        if bad_ids:
            raise ValueError(f"expectations file {path}: unknown claim ids {bad_ids} in [claims.{reading}]; "
                             f"known: {', '.join(CLAIM_IDS)}")
        claims.update({f"{cid}@{reading}": v for cid, v in named.items()})
    bad_ids = sorted(set(claims) - set(CLAIM_IDS) - {k for k in claims if "@" in k})
    if bad_ids:
        raise ValueError(f"expectations file {path}: unknown claim ids {bad_ids}; known: {', '.join(CLAIM_IDS)}")
    bad = {k: v for k, v in claims.items() if v not in VALUES}
    if bad:
        raise ValueError(f"expectations file {path}: values {bad} are not one of {', '.join(VALUES)}")
    return {"model": data.get("model"), "claims": dict(claims)}


def for_run(model: str, weights: str, files=()) -> dict[str, str]:
    """{claim id: holds | fails | observe} for this model and weights: the shipped file for
    ``model`` (not for control weights), then each file of ``files`` in order."""
    from rsi_core.model.sources import is_control
    out = {cid: "observe" for cid in CLAIM_IDS}
    shipped = shipped_dir() / f"{model}.toml"
    if shipped.exists() and not is_control(weights):
        out.update(read(shipped)["claims"])
    for f in files or ():
        data = read(f)
        if data["model"] and data["model"] != model:
            raise ValueError(f"expectations file {f} is for model {data['model']}, this run tests {model}: "
                             "pass a file recorded for this model (rsi expectations --from REPORT.json)")
        out.update(data["claims"])
    return out


def outcome(verdict: str, expect: str) -> str:
    """pass / fail / fails as expected / fail (expected to fail, holds) / observed / inconclusive /
    n/a / error."""
    if verdict in ("error", "inconclusive", "n/a"):
        return verdict
    if expect == "observe":
        return "observed"
    if expect == "fails":
        return "fails as expected" if verdict == "fails" else "fail (expected to fail, holds)"
    return "pass" if verdict == "holds" else "fail"


def combined(outcomes: dict, decisive: str) -> str:
    """A claim's outcome over its readings ({reading: outcome}): the decisive reading's, unless
    another reading's own expectation was not met (then that reading's failure, named)."""
    missed = ("fail", "fail (expected to fail, holds)")
    failed = [f"{o} ({t})" for t, o in outcomes.items() if t != decisive and o in missed]
    return failed[0] if failed and outcomes[decisive] not in missed else outcomes[decisive]


def from_report(path) -> str:
    """A TOML expectations file recording the verdicts of a claims-report.json; inconclusive and
    errored claims are recorded as observe (nothing decided to hold a later run to). A report
    where every claim errored is refused: it would bless nothing but silence."""
    try:
        data = json.loads(Path(path).read_text())
        claims, prov = data["claims"], data.get("provenance", {})
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"--from {path}: not a readable claims-report.json ({type(exc).__name__}: {exc}); "
                         "pass the claims-report.json a run wrote into its --artifacts-dir") from None
    if not claims or all(e.get("verdict") == "error" for e in claims):
        raise ValueError(f"--from {path}: every claim of this report errored ({len(claims)} claims), nothing to record; "
                         "fix the run's errors (see claims-report.md) and bless a run whose claims were decided")
    lines = [f"# recorded from {path}: weights {prov.get('weights')}, profile {prov.get('profile')}",
             f'model = "{prov.get("model")}"', "", "[claims]"]
    for e in sorted(claims, key=lambda e: e["id"]):
        v = e["verdict"] if e["verdict"] in ("holds", "fails") else "observe"
        lines.append(f'{e["id"]} = "{v}"  # {e["verdict"]}')
    for reading in READINGS:  # both readings decided: each non-decisive one's own verdict too
        named = [(e["id"], e["readings"][reading]["verdict"]) for e in sorted(claims, key=lambda e: e["id"])
                 if reading in e.get("readings", {}) and e.get("decisive_reading") != reading]
        if named:
            lines += ["", f"[claims.{reading}]"]
            lines += [f'{cid} = "{v if v in ("holds", "fails") else "observe"}"  # {v}' for cid, v in named]
    return "\n".join(lines) + "\n"
