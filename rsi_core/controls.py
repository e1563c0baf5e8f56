"""Control models for every verdict: does learning produce a finding, or the architecture alone?

Two kinds of control, both of the tested architecture:

- ``random:SEED``: a seeded random initialization (seeds from 1 up, never the tested seed).
- ``shuffle:SEED:<base weights>``: the tested weights with their learned arrangement destroyed.
  In every conv and linear layer, for each input channel, the weights are permuted across output
  channels and kernel positions (biases across output channels); in every BatchNorm layer the
  affine weights and biases are permuted across channels, each with its own permutation. So each
  layer keeps exactly its multiset of weight values (its distribution of magnitudes, which keeps
  Figure 3's weight magnitudes meaningful) while which channel holds which value is random.
  BatchNorm running statistics are then recomputed: running stats reset, a pass over
  ``BN_IMAGES`` evenly spaced images of the run's image folder (on its own: the default image
  set, ``$RSI_IMAGES`` else the bundled sample) in train-mode BN with ``momentum=None`` (a plain
  average over the batches), then eval. Given the base weights and the seed the result is deterministic on a device; its
  ``rsi_weights`` is the full string and its ``rsi_weights_id`` hashes the new state dict, so
  caches never mix a control with its base.

``beyond`` compares a claim's headline value (``Verdict.value`` in ``Verdict.direction``) with
the controls' values.
"""
from __future__ import annotations

import math

import torch

BN_IMAGES = 256
BN_BATCH = 32
KINDS = ("random", "shuffle")


def is_control(weights) -> bool:
    """Random-init and weight-shuffled weights are controls: their claims are observed, never expected."""
    return str(weights).startswith(("random:", "shuffle:"))


def default_controls(profile: str) -> int:
    """K when ``--controls`` is not given: 2 for the paper profile, 0 for the cheaper ones."""
    return 2 if profile == "paper" else 0


def _tested_seed(weights: str) -> int | None:
    if weights.startswith("random:"):
        try:
            return int(weights.split(":", 1)[1])
        except ValueError:
            return None
    return None


def control_weights(weights: str, k: int) -> list[tuple[str, str]]:
    """``k`` control weights strings for tested ``weights``, each with its kind: random, shuffle,
    random, shuffle, ... Random seeds count up from 1 skipping the tested seed; shuffle seeds
    count up from 1."""
    if k < 0:
        raise ValueError(f"--controls must be 0 or more, not {k}")
    weights = str(weights)
    tested = _tested_seed(weights)
    random_seeds = (s for s in range(1, 2 * k + 2) if s != tested)
    out = []
    for i in range(k):
        if i % 2 == 0:
            out.append((f"random:{next(random_seeds)}", "random"))
        else:
            out.append((f"shuffle:{i // 2 + 1}:{weights}", "shuffle"))
    return out


def parse_shuffle(weights: str, base: str | None = None) -> tuple[int, str]:
    """(seed, base weights) of ``shuffle:SEED:<base>``, or of ``shuffle:SEED`` with ``base``."""
    parts = str(weights).split(":", 2)
    try:
        seed = int(parts[1])
    except (IndexError, ValueError):
        raise ValueError(f"bad weights {weights!r}: a shuffled control is shuffle:SEED:<base weights>, "
                         "e.g. shuffle:1:IMAGENET1K_V1 or shuffle:1:random:0") from None
    given = parts[2] if len(parts) == 3 and parts[2] else None
    if given and base and given != base:
        raise ValueError(f"weights {weights!r} name base {given!r} but base={base!r} was passed: give one")
    if not (given or base):
        raise ValueError(f"shuffled control {weights!r} needs the weights it shuffles: "
                         f"write shuffle:{seed}:<base weights> (e.g. shuffle:{seed}:IMAGENET1K_V1)")
    return seed, given or base


def _permute_per_input(w: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Permute ``w`` ([out, in, ...]) across output channels and positions, separately for each
    input channel; a 1-d tensor is permuted across its entries."""
    if w.dim() == 1:
        return w[torch.randperm(w.numel(), generator=g)]
    cols = w.transpose(0, 1).reshape(w.shape[1], -1)           # [in, out * positions]
    order = torch.argsort(torch.rand(cols.shape, generator=g), dim=1)
    shuffled = torch.gather(cols, 1, order)
    rest = (w.shape[0],) + tuple(w.shape[2:])
    return shuffled.reshape((w.shape[1],) + rest).transpose(0, 1).contiguous()


@torch.no_grad()
def shuffle_weights(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Shuffle ``model``'s conv, linear and BatchNorm affine parameters in place (module docstring)."""
    g = torch.Generator().manual_seed(seed)
    for _, module in sorted(model.named_modules(), key=lambda nm: nm[0]):
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            params = [module.weight] + ([module.bias] if module.bias is not None else [])
        elif isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and module.affine:
            params = [module.weight, module.bias]
        else:
            continue
        for p in params:
            p.copy_(_permute_per_input(p.detach().cpu(), g).to(p.device, p.dtype))
    return model


@torch.no_grad()
def recompute_bn_stats(model: torch.nn.Module, images, device="cpu", n: int | None = None,
                       batch: int = BN_BATCH) -> int:
    """Reset every BatchNorm's running statistics and re-estimate them as the plain average over
    batches of ``n`` evenly spaced images of ``images``; the model is left in eval mode.
    Returns how many images were used."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    n = min(n or BN_IMAGES, len(images))
    idx = [int(i * len(images) / n) for i in range(n)]
    saved = [(m.momentum, m.training) for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    try:
        for s in range(0, n, batch):
            x = torch.stack([images[i] for i in idx[s:s + batch]]).to(device)
            model(x)
    finally:
        for m, (momentum, _) in zip(bns, saved):
            m.momentum = momentum
        model.eval()
    return n


def shuffled_model(name: str, weights: str, device="cpu", base: str | None = None, images=None):
    """The ``shuffle:SEED:<base>`` control of ``name`` (see the module docstring)."""
    from .images import ImageSet
    from .models import load_model, weights_identity
    seed, base = parse_shuffle(weights, base)
    model = load_model(name, base, device)
    shuffle_weights(model, seed)
    used = recompute_bn_stats(model, images if images is not None else ImageSet.from_dir(None), device)
    model.rsi_weights = f"shuffle:{seed}:{base}"
    model.rsi_weights_id = weights_identity(model)
    model.rsi_control = {"kind": "shuffle", "seed": seed, "base": base, "bn_images": used}
    return model


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


# ------------------------------------------------------------------ studies and verdicts of controls
def control_study(study, weights: str):
    """``study`` (same profile, FZ settings, image set, cache, device, blocks) on the control
    model ``weights``. A shuffled control recomputes its BatchNorm statistics on the run's image
    folder."""
    import copy

    from .fz.bank import FZBank
    from .images import ImageSet
    from .models import load_model
    name, images = study.model.rsi_model, study.image_set  # the controls share the tested image set
    if str(weights).startswith("shuffle:"):
        folder = ImageSet.from_dir(images.root)
        model = shuffled_model(name, weights, study.device, images=folder)
    else:
        model = load_model(name, weights, study.device)
    ctl = copy.copy(study)
    for own in ("natural", "control_studies"):  # the tested model's activations and controls
        ctl.__dict__.pop(own, None)
    ctl.model, ctl._results = model, {}
    ctl.bank = FZBank(model, study.cache, study.settings, device=study.device,
                      batch_size=study.bank.batch_size, progress=study.bank.progress)
    return ctl


def control_studies(study, k: int) -> list[tuple[str, str, object]]:
    """(weights, kind, Study) of the ``k`` controls of ``study``'s weights, each prepared."""
    out = []
    for weights, kind in control_weights(study.model.rsi_weights, k):
        ctl = control_study(study, weights)
        ctl.prepare()
        out.append((weights, kind, ctl))
    return out


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


def add_controls(entry: dict, runs: list, evaluate) -> dict:
    """Add ``value``, ``direction``, ``controls`` ([{weights, weights_id, kind, verdict, value, reason}]),
    ``beyond_controls`` and ``label`` to a tested claim ``entry``; ``runs`` are ``control_studies``
    and ``evaluate(study) -> entry`` evaluates the same claim on a control."""
    entry["value"], entry["direction"] = headline(entry)
    results = []
    for weights, kind, study in runs:
        base = {"weights": weights, "weights_id": study.model.rsi_weights_id, "kind": kind}
        try:
            e = evaluate(study)
        except Exception as exc:  # a control that cannot compute the claim is reported, not fatal
            results.append({**base, "verdict": "error", "value": None, "reason": f"{type(exc).__name__}: {exc}"})
            continue
        results.append({**base, "verdict": e["verdict"], "value": headline(e)[0],
                        "reason": e["reason"]})
    entry["controls"] = results
    entry["beyond_controls"] = (beyond(entry["value"], [c["value"] for c in results], entry["direction"])
                                if results else None)
    entry["label"] = verdict_label(entry["verdict"], entry["beyond_controls"])
    return entry


def _cell(value, verdict: str) -> str:
    return f"{value:.3g} ({verdict})" if _finite(value) else f"n/a ({verdict})"
