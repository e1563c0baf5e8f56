"""Control models for every verdict: does learning produce a finding, or the architecture alone?

Two kinds of control, both of the tested architecture: ``random:SEED``, a seeded random
initialization (seeds from 1 up, never the tested seed), and ``shuffle:SEED:<base weights>``,
the tested weights with their learned arrangement destroyed (``rsi_core.model.shuffle``). Each
control's Study shares the tested study's profile, FZ settings, image set, cache and blocks.
"""
from __future__ import annotations

from rsi_core.model.anatomy import amend, preprocess_of, provenance_of
from rsi_core.model.images import ImageSet
from rsi_core.model.load import load_model
from rsi_core.model.sources import random_seed
from rsi_core.report.controls import beyond, headline, verdict_label


def default_controls(profile: str) -> int:
    """K when ``--controls`` is not given: 2 for the paper profile, 0 for the cheaper ones."""
    return 2 if profile == "paper" else 0


def control_weights(weights: str, k: int) -> list[tuple[str, str]]:
    """``k`` control weights strings for tested ``weights``, each with its kind: random, shuffle,
    random, shuffle, ... Random seeds count up from 1 skipping the tested seed; shuffle seeds
    count up from 1."""
    if k < 0:
        raise ValueError(f"--controls must be 0 or more, not {k}")
    weights = str(weights)
    tested = random_seed(weights)
    random_seeds = (s for s in range(1, 2 * k + 2) if s != tested)
    out = []
    for i in range(k):
        if i % 2 == 0:
            out.append((f"random:{next(random_seeds)}", "random"))
        else:
            out.append((f"shuffle:{i // 2 + 1}:{weights}", "shuffle"))
    return out


def control_study(study, weights: str):
    """``study`` (same profile, FZ settings, image set, cache, device, blocks) on the control
    model ``weights``. A shuffled control recomputes its BatchNorm statistics on the run's image
    folder."""
    images = ImageSet.from_dir(study.image_set.root)  # the controls share the tested image set
    model = load_model(provenance_of(study.model).model, weights, study.device, images=images)
    amend(model, preprocess=preprocess_of(study.model))  # and its preprocessing (a robust checkpoint's own)
    return study.variant(model=model)


def control_studies(study, k: int) -> list[tuple[str, str, object]]:
    """(weights, kind, Study) of the ``k`` controls of ``study``'s weights, each prepared."""
    out = []
    for weights, kind in control_weights(provenance_of(study.model).weights, k):
        ctl = control_study(study, weights)
        ctl.prepare()
        out.append((weights, kind, ctl))
    return out


def add_controls(entry, runs: list, evaluate):
    """Set ``value``, ``direction``, ``controls`` ([{weights, weights_id, kind, verdict, value, reason}]),
    ``beyond_controls`` and ``label`` of a tested claim's ``ClaimEntry``; ``runs`` are ``control_studies``
    and ``evaluate(study) -> Verdict.to_json()`` evaluates the same claim on a control."""
    entry.value, entry.direction = headline({"value": entry.value, "direction": entry.direction})
    results = []
    for weights, kind, study in runs:
        base = {"weights": weights, "weights_id": provenance_of(study.model).weights_id, "kind": kind}
        try:
            e = evaluate(study)
        except Exception as exc:  # a control that cannot compute the claim is reported, not fatal
            results.append({**base, "verdict": "error", "value": None, "reason": f"{type(exc).__name__}: {exc}"})
            continue
        results.append({**base, "verdict": e["verdict"], "value": headline(e)[0],
                        "reason": e["reason"]})
    entry.controls = results
    entry.beyond_controls = beyond(entry.value, [c["value"] for c in results], entry.direction) if results else None
    entry.label = verdict_label(entry.verdict, entry.beyond_controls)
    return entry
