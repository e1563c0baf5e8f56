"""Load a model of any family (``rsi_core.model.families``) with named, local or seeded-random weights.

Every loaded model is registered with its anatomy and ``Provenance`` (``rsi_core.model.anatomy``):
architecture name, weights (what the user asked for), weights id (a hash of the state dict: cache
keys use it, so new weights never reuse results computed for old ones), preprocessing, the
channel lists the paper names (resnet18's) and, for a control, its recipe.
"""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import torch
import torchvision
from torchvision.models import get_model_weights

from rsi_core.model.anatomy import Provenance, anatomy_of, register
from rsi_core.model.families import TIMM, family_for, library_name
from rsi_core.model.robust import read_robust
from rsi_core.model.sources import random_seed, register_source, source_of
from rsi_core.paper import PAPER_LISTS, PAPER_MODEL, PAPER_WEIGHTS

DEFAULT_MODEL, DEFAULT_WEIGHTS = PAPER_MODEL, PAPER_WEIGHTS


class WeightsError(RuntimeError):
    """Weights that cannot be had or do not fit the architecture."""


class WeightsUnavailable(WeightsError):
    """Named pretrained weights are neither cached nor downloadable (the offline case)."""


def _check_model(name: str) -> None:
    family_for(name)  # an unknown name: one line listing the known ones


def weights_identity(model: torch.nn.Module) -> str:
    """sha256 over the state dict (names, dtypes, shapes, bytes): 16 hex digits."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return h.hexdigest()[:16]


def checkpoint_path(weights_enum) -> Path:
    """Where torchvision's weights API keeps (or would keep) the downloaded file."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights_enum.url)


HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.(?:pth|pt)$")  # torchvision/torch.hub: NAME-<sha256 prefix>.pth


def verify_hash(path: Path) -> None:
    """A file named like torchvision's checkpoints (``resnet18-f37072fd.pth``) must have a
    sha256 starting with that prefix; torch.hub checks it only when it downloads."""
    m = HASH_IN_NAME.search(path.name)
    if not m:
        return
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    if not h.hexdigest().startswith(m.group(1)):
        raise WeightsError(
            f"weights file {path} is damaged or not the file its name promises: its sha256 starts "
            f"{h.hexdigest()[:len(m.group(1))]}, its name says {m.group(1)}. Delete it and download it again "
            f"(or copy a good {path.name} there); nothing was run with it.")


def _named_state_dict(name: str, weights: str) -> dict:
    enum = get_model_weights(library_name(name))
    try:
        member = enum[weights]
    except KeyError:
        raise ValueError(
            f"unknown weights {weights!r} for {name}: use one of {', '.join(enum.__members__)}, "
            "a path to a .pth file, or random:SEED") from None
    path = checkpoint_path(member)
    if path.exists():  # cached: verified and read here, so damage is an error, never "offline"
        return _file_state_dict(path)[0]
    try:
        return member.get_state_dict(progress=False, check_hash=True)
    except Exception as exc:  # offline, proxy refusal, partial download ...
        raise WeightsUnavailable(
            f"cannot load {name} weights {weights}: {type(exc).__name__}: {exc}\n"
            f"  The file {path.name} is not in torchvision's cache and could not be downloaded.\n"
            f"  Either copy {path.name} to {path.parent}/ (set $TORCH_HOME to move that folder: "
            f"$TORCH_HOME/hub/checkpoints/),\n"
            f"  or pass the file itself: --weights /path/to/{path.name} (or RSI_WEIGHTS).\n"
            f"  Its address is {member.url}. Offline controls: --weights random:0") from exc


def weights_missing(name: str, weights: str) -> str | None:
    """Why ``weights`` will not be found locally, in one line, or None. Cheap (no download, no
    load): for announcing up front that a run is about to skip everything."""
    weights = str(weights)
    if source_of(weights):
        return None
    path = Path(weights).expanduser()
    if path.suffix in FILE_SUFFIXES or os.sep in weights:
        return None if path.exists() else f"weights file {path} does not exist"
    if str(name).startswith(TIMM):
        return _timm_missing(name, weights)
    try:
        member = get_model_weights(library_name(name))[weights]
    except (KeyError, ValueError):
        return None  # load_model says what is wrong with the name
    cached = checkpoint_path(member)
    if cached.exists():
        return None
    return (f"{cached.name} is not in torchvision's cache ({cached.parent}); a download will be tried. "
            f"Offline, copy it there (or set $TORCH_HOME), or pass --weights /path/to/{cached.name}; "
            f"for an offline control use --weights random:0")


def _timm_missing(name: str, tag: str) -> str | None:
    """Whether timm's checkpoint ``ARCH.TAG`` is in the Hugging Face hub's cache (timm's own)."""
    import timm
    from huggingface_hub import constants
    try:
        hub_id = timm.models.get_pretrained_cfg(f"{library_name(name)[len(TIMM):]}.{tag}").hf_hub_id
    except (RuntimeError, AttributeError):
        return None  # not a tag timm knows: load_model says which are
    if not hub_id or (Path(constants.HF_HUB_CACHE) / f"models--{hub_id.replace('/', '--')}").is_dir():
        return None
    return (f"timm's {hub_id} is not in the Hugging Face hub's cache ({constants.HF_HUB_CACHE}); a download will be "
            f"tried (offline, timm retries for about a minute). Offline, pass --weights /path/to/file.pth; for an "
            f"offline control use --weights random:0")


#: where checkpoints keep the state dict (PyTorch's tutorial, Lightning and others, torchvision's
#: reference scripts, other training scripts), looked up in this order
STATE_KEYS = ("model_state_dict", "state_dict", "model", "net")
#: key prefixes of wrapped networks: DataParallel / DistributedDataParallel, Lightning's ``self.model``, ``self.net``
PREFIXES = ("module.", "model.", "net.")
#: the file suffixes read as weights files (any existing path is read too)
FILE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".safetensors")


def _is_state(obj) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def _find_state(obj, path: Path) -> dict:
    """The state dict in a checkpoint: the file's dict itself when it is one (names to tensors),
    else the first of ``STATE_KEYS`` that holds one; anything else is refused naming its keys."""
    for _ in range(3):  # {"model": {"state_dict": ...}} and the like
        if _is_state(obj):
            return obj
        inner = next((obj[k] for k in STATE_KEYS if isinstance(obj, dict) and isinstance(obj.get(k), dict)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, dict):
        found = f"a {type(obj).__name__}"
    else:
        found = f"a dict with keys {', '.join(map(str, list(obj)[:12]))}{' ...' if len(obj) > 12 else ''}" if obj \
            else "an empty dict"
    raise WeightsError(f"weights file {path} holds {found}: no state dict (names to tensors) there or under "
                       f"{', '.join(STATE_KEYS)}; save torch.save(model.state_dict(), PATH) and pass that file")


def _strip_prefixes(state: dict, expected) -> dict:
    """``state`` with wrapper prefixes (``PREFIXES``, nested too) taken off while none of its keys
    is one the architecture has; keys without the prefix (a Lightning module's loss, metrics) go."""
    for _ in range(3):
        if any(k in expected for k in state):
            break
        prefix = next((p for p in PREFIXES if any(k.startswith(p) for k in state)), None)
        if prefix is None:
            break
        state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    return state


def _read_file(path: Path):
    """The file's contents: safetensors by its suffix, else ``torch.load`` without pickled code."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        try:
            return load_file(str(path), device="cpu")
        except Exception as exc:
            raise WeightsError(f"weights file {path} is not a readable safetensors file ({type(exc).__name__}); "
                               "it may be truncated or corrupt: save it again") from exc
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        pickled = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
        if pickled:  # a whole pickled object (torch.save(model)): loading it would run its code
            raise WeightsError(
                f"weights file {path} holds a pickled {pickled.group(1)} (a whole model saved with torch.save(model)), "
                "not a state dict; rsi does not run pickled code: save torch.save(model.state_dict(), PATH) "
                "and pass that file") from exc
        raise WeightsError(
            f"weights file {path} is not a readable PyTorch state dict ({type(exc).__name__}); "
            "it may be truncated or corrupt: download it again") from exc


def _file_state_dict(path: Path) -> tuple[dict, object]:
    """The file's state dict, and its own preprocessing when it is a robust checkpoint (else None)."""
    if not path.exists():
        raise WeightsError(f"weights file {path} does not exist: check the path given to --weights")
    verify_hash(path)
    state = _find_state(_read_file(path), path)
    try:
        robust = read_robust(state)
    except ValueError as exc:
        raise WeightsError(f"weights file {path}: {exc}; pass a checkpoint in a format rsi reads") from exc
    return robust or (state, None)


def head_name(model: torch.nn.Module) -> str | None:
    """The classifier head: the network's last ``nn.Linear`` (resnet's ``fc``, convnext's
    ``classifier.2``, timm's ``head.fc``); no claim reads it (every tap is a block's)."""
    return next((n for n, m in reversed(list(model.named_modules())) if isinstance(m, torch.nn.Linear)), None)


def _load_backbone(model: torch.nn.Module, state: dict, name: str, weights: str) -> str | None:
    """Load ``state`` into ``model``; a classifier head of another shape (a fine-tune to other
    classes) or absent is left out, zeroed (the weights identity stays the file's), and said in
    the note returned (the provenance's ``head``). Anything else that does not fit is refused."""
    expected = model.state_dict()
    state = _strip_prefixes(state, expected)
    head = head_name(model)

    def in_head(k):
        return head is not None and k.startswith(head + ".")
    missing, unexpected = _compare_keys(expected, state)
    reshaped = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    skipped = [k for k in missing + unexpected + reshaped if in_head(k)]
    missing, unexpected = [k for k in missing if not in_head(k)], [k for k in unexpected if not in_head(k)]
    if missing or unexpected:
        raise WeightsError(
            f"weights {weights} do not fit {name}: missing keys {missing[:8]}"
            f"{' ...' if len(missing) > 8 else ''}, unexpected keys {unexpected[:8]}"
            f"{' ...' if len(unexpected) > 8 else ''}. Is it a checkpoint of another architecture? "
            f"Pass --model to match it.")
    backbone = [f"{k} {list(state[k].shape)} (here {list(expected[k].shape)})" for k in reshaped if not in_head(k)]
    if backbone:
        raise WeightsError(f"weights {weights} do not fit {name}: other shapes in the backbone: {', '.join(backbone[:4])}"
                           f"{' ...' if len(backbone) > 4 else ''}. Is it another width or depth? Pass --model to match it.")
    note = None
    if skipped:
        moved = [f"{k} {list(state[k].shape)} (here {list(expected[k].shape)})" for k in reshaped if in_head(k)]
        state = {k: v for k, v in state.items() if not in_head(k)}
        with torch.no_grad():
            for k, t in expected.items():
                if in_head(k):
                    t.zero_()
        note = (f"classifier head {head} not loaded ({', '.join(moved) or 'absent or renamed in the file'}): "
                "safe, no claim reads it (every tap and FZ objective is a block's channel); "
                "the backbone loaded, the head zeroed")
    model.load_state_dict(state, strict=not skipped)
    return note


@register_source("random", kind="control", example="random:0")
def random_model(name: str, weights: str, device="cpu", **_) -> torch.nn.Module:
    """``random:SEED``: the family's initialization of ``name`` (torchvision's, timm's) under
    ``torch.manual_seed(SEED)``."""
    seed = random_seed(weights)
    if seed is None:
        raise ValueError(f"bad weights {weights!r}: random weights are random:SEED, e.g. random:0")
    family = family_for(name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return finish(family.build(name), name, weights, device)


def _timm_pretrained(name: str, tag: str) -> torch.nn.Module:
    """timm's pretrained ``ARCH.TAG`` through timm's own loader and cache (the Hugging Face hub's)."""
    import timm
    arch = library_name(name)[len(TIMM):]
    tags = [t.split(".", 1)[1] for t in timm.list_pretrained(f"{arch}.*") if "." in t]
    if tag not in tags:
        raise ValueError(f"unknown weights {tag!r} for {name}: use one of timm's tags {', '.join(tags) or '(none)'}, "
                         "a path to a .pth file, or random:SEED")
    try:
        return timm.create_model(f"{arch}.{tag}", pretrained=True)
    except Exception as exc:  # offline, proxy refusal, partial download ...
        raise WeightsUnavailable(
            f"cannot load {name} weights {tag}: {type(exc).__name__}: {exc}\n"
            f"  timm's checkpoint {arch}.{tag} is not in its cache (the Hugging Face hub's, $HF_HOME) and could not be "
            f"downloaded.\n  Either fill that cache where you are online (timm.create_model('{arch}.{tag}', "
            f"pretrained=True)), or pass the file itself: --weights /path/to/file.pth (or RSI_WEIGHTS).\n"
            f"  Offline controls: --weights random:0") from exc


def trained_model(name: str, weights: str, device="cpu") -> torch.nn.Module:
    """A local file (``FILE_SUFFIXES`` or any existing path; the robust formats too), a
    torchvision weights name, or for ``timm:ARCH`` a timm pretrained tag."""
    family = family_for(name)
    path = Path(weights).expanduser()
    looks_like_file = path.suffix in FILE_SUFFIXES or os.sep in weights or path.exists()
    if not looks_like_file and name.startswith(TIMM):
        return finish(_timm_pretrained(name, weights), name, weights, device)
    state, preprocess = _file_state_dict(path) if looks_like_file else (_named_state_dict(name, weights), None)
    model = family.build(name)
    head = _load_backbone(model, state, name, weights)
    return finish(model, name, weights, device, preprocess=preprocess, head=head)


def finish(model: torch.nn.Module, name: str, weights: str, device="cpu", preprocess=None,
           lists=None, head: str | None = None) -> torch.nn.Module:
    """Eval mode, frozen parameters, and the model's anatomy registered with its provenance
    (``preprocess``: a checkpoint's own, else the family's; ``lists``: the paper's for resnet18;
    ``head``: a classifier head left out, said)."""
    bad = [k for k, t in model.state_dict().items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:  # NaN or inf would give tables full of NaN and verdicts read from them
        raise WeightsError(f"weights {weights} hold NaN or infinite values in {', '.join(bad[:4])}"
                           f"{' ...' if len(bad) > 4 else ''}: the checkpoint is damaged; pass an intact one")
    model.eval().to(device)
    for p in model.parameters():
        p.requires_grad_(False)
    if lists is None:
        lists = PAPER_LISTS if name == "resnet18" else None
    register(model, Provenance(model=name, weights=weights, weights_id=weights_identity(model),
                               preprocess=preprocess or anatomy_of(model).family.preprocess(model),
                               lists=lists or None, head=head))
    return model


def load_model(name: str = DEFAULT_MODEL, weights: str = DEFAULT_WEIGHTS,
               device: str | torch.device = "cpu", **options) -> torch.nn.Module:
    """Build ``name`` in eval mode with ``weights``: a registered source's string (``random:SEED``,
    ``shuffle:SEED:<base>``, ``planted:CASE``; ``rsi_core.model.sources``), a local file path, or
    a torchvision weights name (``IMAGENET1K_V1``). ``options`` go to the source (a shuffled
    control's ``images``, ``base``)."""
    _check_model(name)
    weights = str(weights)
    source = source_of(weights)
    return source.build(name, weights, device, **options) if source else trained_model(name, weights, device)


def _compare_keys(expected: dict, given: dict) -> tuple[list[str], list[str]]:
    missing = sorted(k for k in expected if k not in given
                     and not k.endswith("num_batches_tracked"))  # old checkpoints lack it
    unexpected = sorted(k for k in given if k not in expected)
    return missing, unexpected


def describe(model: torch.nn.Module) -> dict:
    """What made a result: written beside every figure and number."""
    record = anatomy_of(model)
    p = record.origin
    out = {"model": p.model, "weights": p.weights, "weights_id": p.weights_id,
           "family": record.family.name, "preprocess": p.preprocess.describe(),
           "torchvision": torchvision.__version__}
    if p.head:
        out["head"] = p.head
    if p.model.startswith(TIMM):
        import timm
        out["timm"] = timm.__version__
    return out
