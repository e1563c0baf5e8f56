"""The options of a run, in one table, checked once before any work.

``RUN_OPTIONS`` is the table: ``pytest claims``' flags (``plugin.pytest_addoption``) and ``rsi run``'s
(``cli``) are generated from it, and the other subcommands take their shared flags (``--model``,
``--weights``, ``--device``, ``--cache-dir``, ...) from ``OPTIONS``. Each entry's ``parse`` turns the
text into a value or says what is wrong; ``check`` then validates the values together, cheapest
first (a typo costs seconds, never a rendered FZ): model, weights source, device, folders, files,
images, baseline, and last the weights themselves, loaded and verified once. Every problem is an
``OptionError``: one line that names the option, the value and the fix. ``check`` returns the run's
one frozen ``RunConfig``: every hook, fixture and command reads it, none re-reads an option.
"""
from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from rsi_core.paper import FZ_TARGETS, JITTER_TABLES, PAPER_MODEL, PAPER_WEIGHTS, Readings

#: profiles a user may ask for by name; the others serve internal checks (census-planted: rsi validate --claims)
INTERNAL_PROFILES = ("census-planted",)


class OptionError(ValueError):
    """A bad option value: ``--name value: what is wrong; what to do``, on one line."""

    def __init__(self, name: str, value, reason: str):
        self.option, self.value = name, value
        shown = " ".join(map(str, value)) if isinstance(value, list | tuple) else value
        super().__init__(f"--{name} {shown}: {' '.join(str(reason).split())}")


def one_line(exc: BaseException) -> str:
    """An exception's message on one line; one re-raised from a DataLoader worker reads as the original."""
    text = str(exc.args[0] if isinstance(exc, KeyError) and exc.args else exc).strip()
    if "Original Traceback" in text:  # torch's ExceptionWrapper: the original's last line is "module.Class: message"
        last = text.splitlines()[-1]
        text = last.split(": ", 1)[1] if ": " in last else last
    return " ".join(text.split())


# parsers: text -> value, ValueError(reason) when the text cannot be one ------------------------------
def at_least(low: int) -> Callable[[str], int]:
    def parse(text) -> int:
        try:
            n = int(text)
        except (TypeError, ValueError):
            raise ValueError(f"not a whole number: give an integer >= {low}") from None
        if n < low:
            raise ValueError(f"must be {low} or more")
        return n
    parse.__name__ = f"integer >= {low}"
    return parse


def one_of(choices: Callable[[], tuple] | tuple) -> Callable[[str], str]:
    def parse(text) -> str:
        known = choices() if callable(choices) else choices
        if text not in known:
            raise ValueError(f"unknown value: use one of {', '.join(known)}")
        return text
    parse.__name__ = "choice"
    parse.choices = choices
    return parse


def public_profiles() -> tuple[str, ...]:
    from rsi_core.measure.profiles import PROFILES
    return tuple(p for p in PROFILES if p not in INTERNAL_PROFILES)


def device_name(text) -> str:
    """``cpu``, ``cuda``, ``cuda:N`` or ``mps``, available on this machine."""
    import torch
    kind, _, index = str(text).partition(":")
    if kind not in ("cpu", "cuda", "mps") or (index and (kind != "cuda" or not index.isdigit())):
        raise ValueError("unknown device: use cpu, cuda, cuda:N or mps")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError("torch sees no CUDA device here: check CUDA_VISIBLE_DEVICES and the torch build, or pass --device cpu")
    if index and int(index) >= torch.cuda.device_count():
        raise ValueError(f"this machine shows {torch.cuda.device_count()} CUDA device(s): use cuda:0..cuda:{torch.cuda.device_count() - 1}")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ValueError("torch sees no MPS device here: pass --device cpu")
    return str(text)


def taps(text) -> list[str]:
    """``I,B``: tap kinds, each one of I, B, O."""
    from rsi_core.model.anatomy import TAP_KINDS
    out = [t.strip() for t in str(text).split(",")]
    bad = [t for t in out if t not in TAP_KINDS]
    if bad or not out:
        raise ValueError(f"unknown tap kind {', '.join(bad) or '(none)'}: use a comma list of {', '.join(TAP_KINDS)}, e.g. I,B")
    return list(dict.fromkeys(out))


def channel_spec(text) -> str:
    """``all``, ``0-15``, ``1,5,9`` or a mix: syntax checked here, the block's range by ``channels``."""
    if text != "all":
        for part in str(text).split(","):
            lo, dash, hi = part.strip().partition("-")
            if not lo.isdigit() or (dash and not hi.isdigit()):
                raise ValueError(f"cannot read {part!r}: write all, a range LO-HI such as 0-15, or a list such as 1,5,9")
            if dash and int(hi) < int(lo):
                raise ValueError(f"range {part} runs backwards: write it low to high, {hi}-{lo}")
    return str(text)


def channels(spec: str, n: int) -> list[int]:
    """The channel ids of ``spec`` in a block of ``n`` channels, sorted."""
    if channel_spec(spec) == "all":
        return list(range(n))
    out = set()
    for part in spec.split(","):
        lo, _, hi = part.strip().partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    if max(out) >= n:
        raise ValueError(f"channel {max(out)} out of range: this block has channels 0-{n - 1}")
    return sorted(out)


@dataclass(frozen=True)
class Option:
    name: str                    # --name; the values dict uses it as is, argparse as dest name_with_underscores
    help: str
    example: str
    default: Any = None          # a value, or a callable read when the parser is built (environment variables)
    parse: Callable | None = None  # text -> value, ValueError(reason); None: the text itself
    flag: bool = False           # a switch (store_true)
    repeat: bool = False         # may be given several times (a list)
    metavar: str | None = None
    required: bool = False

    def default_value(self):
        """The default in this environment and folder: ``$RSI_*``, else the config file, else the
        table's (``rsi_core.harness.config``)."""
        from rsi_core.harness.config import default_of
        return default_of(self)[0]

    def table_default(self):
        return self.default() if callable(self.default) else self.default

    def shown_metavar(self) -> str | None:
        """``metavar``, else a choice's values (``{paper,quick,smoke}``)."""
        choices = getattr(self.parse, "choices", None)
        if self.metavar or choices is None:
            return self.metavar
        return "{" + ",".join(choices() if callable(choices) else choices) + "}"

    def full_help(self, prefix: str = "") -> str:
        """The help, an example, and the default when there is one (``--help`` of pytest and of rsi);
        ``prefix``: the example as ``--{prefix}{name}`` (the plugin's ``--rsi-*`` names)."""
        default = self.default_value()
        example = self.example.replace(f"--{self.name}", f"--{prefix}{self.name}")
        return f"{self.help} (e.g. {example})" + (f" [default: {default}]" if default not in (None, [], False) else "")

    def add_argparse(self, parser, **override) -> None:
        """This option on an ``argparse`` parser; ``override`` replaces fields (another default)."""
        opt = Option(**{**self.__dict__, **override})
        if opt.flag:
            parser.add_argument(f"--{opt.name}", action="store_true", help=opt.full_help())
            return
        parser.add_argument(f"--{opt.name}", action="append" if opt.repeat else "store", type=opt.argparse_type(),
                            default=[] if opt.repeat else opt.default_value(), metavar=opt.shown_metavar(), required=opt.required,
                            help=opt.full_help())

    def argparse_type(self):
        if self.parse is None:
            return None

        def typed(text):
            import argparse
            try:
                return self.parse(text)
            except ValueError as exc:
                reason = str(exc)
                raise argparse.ArgumentTypeError(reason if str(text) in reason else f"{reason} (got {text})") from None
        typed.__name__ = getattr(self.parse, "__name__", "value")
        return typed


OPTIONS: dict[str, Option] = {o.name: o for o in (
    Option("model", "model to test (rsi_core.model.families): a torchvision ResNet or ConvNeXt (resnet18, resnet50, "
           "wide_resnet50_2, resnext50_32x4d, convnext_tiny, ...) or timm:NAME; an unknown name lists them all",
           "--model timm:resnet18", PAPER_MODEL),
    Option("weights", "IMAGENET1K_V1 (torchvision's cache), a .pth file, random:SEED or shuffle:SEED:BASE (controls); "
           "default $RSI_WEIGHTS, else IMAGENET1K_V1", "--weights random:0", PAPER_WEIGHTS),
    Option("images", "natural-image folder (ImageNet val layout); default $RSI_IMAGES, else the bundled 250-image sample",
           "--images ~/data/imagenet/val", None, metavar="DIR"),
    Option("profile", "paper: all channels, 2,560 steps; quick/ci/smoke: sampled channels, fewer steps "
           "(default: paper on CUDA, quick on CPU)", "--profile smoke", None, one_of(public_profiles)),
    Option("device", "cpu, cuda, cuda:N or mps (default: cuda when available; each xdist worker takes its own GPU)",
           "--device cpu", None, device_name),
    Option("cache-dir", "cache folder (default $RSI_CACHE, else ~/.cache/rsi)", "--cache-dir /scratch/rsi-cache",
           None, metavar="DIR"),
    Option("artifacts-dir", "where figures, numbers and the report go", "--artifacts-dir runs/today", "artifacts",
           metavar="DIR"),
    Option("baseline", "claims-report.json of an earlier run of the same model, profile, image set and FZ settings "
           "(other weights): the paired regression check; a claim changed beyond FZ seed noise fails",
           "--baseline old/claims-report.json", None, metavar="JSON"),
    Option("antialias", "antialias S_inv's shrink (today's torchvision default; the paper's torchvision did not)",
           "--antialias", False, flag=True),
    Option("jitter-table", "FZ jitter per tap: " + ", ".join(JITTER_TABLES), "--jitter-table authors-script", "paper",
           one_of(tuple(JITTER_TABLES))),
    Option("expectations", "TOML file of expectations (holds/fails/observe per claim) adding to or overriding the "
           "shipped ones; repeatable; record one with `rsi expectations --from claims-report.json`",
           "--expectations blessed.toml", None, repeat=True, metavar="TOML"),
    Option("fz-target", "FZ objective as the paper wrote it, as the authors' code ran it, or both (each claim "
           "decided under each; the outcome reads the paper's own reading of the claim); default: both on the "
           "paper profile, else as-written", "--fz-target both", None, one_of(FZ_TARGETS)),
    Option("fz-seeds", "render every FZ with seeds 0..K-1; a claim whose verdict differs between seeds is "
           "inconclusive", "--fz-seeds 3", 1, at_least(1), metavar="K"),
    Option("controls", "K control models (random-init, weight-shuffled) every claim is also evaluated on "
           "(default: 2 on the paper profile, else 0)", "--controls 2", None, at_least(0), metavar="K"),
    # issue 31: which device's FZs a run reads (a CPU job analysing a GPU-rendered bank)
    Option("fz-device", "read the FZs rendered on this kind of device (cpu or cuda; default: the run's own); FZs of "
           "another kind are only read, never rendered (a CPU job analysing a GPU-rendered bank)", "--fz-device cuda",
           None, one_of(("cpu", "cuda", "mps"))),
    # issue 31: a claims job that renders nothing (the bank was rendered by rsi fz --unit)
    Option("require-cached", "render no FZ: check the bank against the plan (rsi plan) before any work and stop "
           "in one line when an FZ is missing", "--require-cached", False, flag=True),
)}

#: the options of ``pytest claims`` and ``rsi run``, in help order
RUN_OPTIONS = tuple(OPTIONS)


def _repeated_defaults(values: dict) -> dict:
    """A repeatable option given no value on the command line takes its default (the config file's
    list): the parsers start it empty, so that a command-line value replaces it."""
    return {k: (OPTIONS[k].default_value() or [] if k in OPTIONS and OPTIONS[k].repeat and not v else v)
            for k, v in values.items()}


def parse(raw: dict) -> dict:
    """``{name: text or value}`` -> ``{name: value}``, each through its option's parser."""
    out = {}
    for name, value in _repeated_defaults(raw).items():
        opt = OPTIONS.get(name)
        if opt is None or opt.parse is None or value is None or opt.flag:
            out[name] = value
            continue
        try:
            out[name] = [opt.parse(v) for v in value] if opt.repeat else opt.parse(value)
        except ValueError as exc:
            raise OptionError(name, value, str(exc)) from None
    return out


def writable_dir(name: str, value) -> Path:
    """``value`` as a folder this process can write in: tried (a folder made, a file written) and
    undone, so a check leaves nothing behind."""
    path = Path(value).expanduser().absolute()
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        where = "is a file" if existing == path else f"lies under {existing}, a file"
        raise OptionError(name, value, f"{where}, not a folder: pass a folder (it is created when missing)")
    made = [p for p in (path, *path.parents) if not p.exists()]  # deepest first
    try:
        path.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
    except OSError as exc:
        raise OptionError(name, value, f"cannot write there ({exc.strerror}): pass a folder you can write in") from None
    finally:
        for p in made:
            with contextlib.suppress(OSError):
                p.rmdir()
    return path


def writable_file(name: str, value) -> Path:
    """``value`` as a file this process can write (its folder checked like ``writable_dir``)."""
    path = Path(value).expanduser()
    if path.is_dir():
        raise OptionError(name, value, f"is a folder: pass the path of the file to write, e.g. {path / 'out'}{path.suffix}")
    writable_dir(name, path.absolute().parent)
    return path


def readable_images(name: str, value, limit: int | None = None):
    """The ImageSet of ``value``; the header of every file the run reads (the first ``limit``, or
    all) is read (cheap), so a non-image stops the run here, named, rather than in the middle of a pass."""
    from PIL import Image

    from rsi_core.model.images import ImageSet
    try:
        images = ImageSet.from_dir(value)
    except FileNotFoundError as exc:
        raise OptionError(name, value if value else "(default)", one_line(exc)) from None
    for f in images.files[:limit]:
        try:
            with Image.open(images.root / f):
                pass
        except OSError as exc:
            raise OptionError(name, images.root, f"cannot read image {images.root / f} ({type(exc).__name__}): remove or "
                              "replace it. rsi stops rather than skipping it: the image set's identity, its "
                              "cache keys and every table's rows are its files") from None
    return images


def load_weights(values: dict, device: str = "cpu"):
    """The model of ``values`` (``model``, ``weights``) loaded and verified (fits the architecture,
    finite); None when named pretrained weights are not available offline (the run then says so)."""
    from rsi_core.model.load import WeightsError, WeightsUnavailable, load_model
    try:
        return load_model(values["model"], values["weights"], device)
    except WeightsUnavailable:
        return None
    except (WeightsError, ValueError, KeyError, OSError) as exc:
        raise OptionError("weights", values["weights"], one_line(exc)) from None


def fz_target(value: str | None, profile: str | None) -> str:
    """--fz-target as given, else the profile's (both on the paper profile: a census decides both
    readings), else as-written."""
    from rsi_core.measure.profiles import get_profile
    return value or (get_profile(profile).fz_target if profile else "as-written")


@dataclass(frozen=True)
class RunConfig:
    """A run's options resolved once (``check``; ``resolve`` in an xdist worker, whose controller
    checked them): what every hook, fixture and command reads. ``values``: the command's options by
    name as checked (device, profile and fz-target resolved), read-only; the other fields are what
    they name, interpreted or loaded (None where the command has no such option); any other option
    reads as an attribute (``config.fz_seeds``). Expectation files stay names: the harness reads them
    for the tested model's own name (a planted network's), once it is built."""
    values: Mapping[str, Any]
    profile: Any = None                 # measure.profiles.Profile of --profile
    readings: Readings | None = None    # --fz-target interpreted
    controls: int | None = None         # --controls, else the profile's default
    images: Any = None                  # model.images.ImageSet of --images
    baseline: dict | None = None        # report.claims_report.load_baseline(--baseline)
    loaded: Any = field(default=None, compare=False, repr=False)  # the model, loaded and verified (CPU)

    def __getattr__(self, name: str):
        """An option's value by its Python name; the table's default where the command has none."""
        key = name.replace("_", "-")
        if key not in OPTIONS:
            raise AttributeError(name)
        return self.values[key] if key in self.values else OPTIONS[key].table_default()

    @property
    def artifacts(self) -> Path | None:
        """The artifacts folder, None when the command has none (or it is empty)."""
        return Path(self.values["artifacts-dir"]) if self.values.get("artifacts-dir") else None


def _device(value) -> str:
    from rsi_core.model.device import resolve_device
    try:
        return resolve_device(value)  # under xdist: this worker's own GPU
    except ValueError as exc:
        raise OptionError("device", value, one_line(exc)) from None


def resolve(values: dict, limit: int | None = 0) -> RunConfig:
    """The ``RunConfig`` of parsed ``values``: device, profile and fz-target resolved, expectation
    files read, baseline and image set loaded (``check`` validates first; an xdist worker resolves only).
    ``limit``: the image files whose headers are read (``readable_images``; default none)."""
    v = _repeated_defaults(values)
    if "device" in v:
        v["device"] = _device(v["device"])
    if "profile" in v and v["profile"] is None and "device" in v:
        from rsi_core.measure.profiles import default_profile
        v["profile"] = default_profile(v["device"])
    if "profile" in v and "fz-target" in v:
        v["fz-target"] = fz_target(v["fz-target"], v["profile"])
    out = {}
    if v.get("profile"):
        from rsi_core.measure.profiles import get_profile
        out["profile"] = get_profile(v["profile"])
        if "controls" in v:
            from rsi_core.harness.controls import default_controls
            out["controls"] = default_controls(v["profile"]) if v["controls"] is None else v["controls"]
    if v.get("fz-target"):
        out["readings"] = Readings(v["fz-target"])
    for f in v.get("expectations") or ():
        if not Path(f).expanduser().is_file():
            raise OptionError("expectations", f, "no such file: pass a TOML expectations file (record one with "
                              "`rsi expectations --from claims-report.json > mine.toml`)")
    if "model" in v and "weights" in v and v.get("expectations"):  # read for the run's model by its harness
        from rsi_core.harness import expectations
        try:
            expectations.for_run(v["model"], v["weights"], v["expectations"])
        except ValueError as exc:
            raise OptionError("expectations", v["expectations"], one_line(exc)) from None
    if "images" in v:
        out["images"] = readable_images("images", v["images"], limit)
    if v.get("baseline"):
        from rsi_core.report.claims_report import load_baseline
        if not Path(v["baseline"]).expanduser().is_file():
            raise OptionError("baseline", v["baseline"], "no such file: pass the claims-report.json of an earlier run")
        try:
            out["baseline"] = load_baseline(Path(v["baseline"]).expanduser())
        except ValueError as exc:
            raise OptionError("baseline", v["baseline"], one_line(exc)) from None
    return RunConfig(MappingProxyType(v), **out)


def check(values: dict, *, load: bool = True, limit: int | None = None) -> RunConfig:
    """Validate ``values`` (parsed) before any work, cheapest first, and resolve them (``resolve``);
    with ``load`` the model is loaded on CPU (``loaded``; None when the weights are unavailable
    offline). ``limit``: the images the command reads (rsi activations --limit N reads N)."""
    from rsi_core.model.sources import source_of
    v = _repeated_defaults(values)
    if "model" in v:
        from rsi_core.model.load import _check_model  # the one list of models
        try:
            _check_model(v["model"])
        except ValueError as exc:
            raise OptionError("model", v["model"], one_line(exc)) from None
    if "weights" in v:
        try:
            source_of(v["weights"])
        except ValueError as exc:
            raise OptionError("weights", v["weights"], one_line(exc)) from None
    if "device" in v:
        v["device"] = _device(v["device"])
    for name in ("cache-dir", "artifacts-dir"):
        if v.get(name):
            writable_dir(name, v[name])
    config = resolve(v, limit)
    if config.baseline is not None:
        from rsi_core.report.claims_report import check_baseline
        try:  # another model, profile, channel set, image set or FZ settings: differences that are not regressions
            refused = check_baseline(config.baseline, config)
        except ValueError as exc:
            refused = one_line(exc)
        if refused:
            raise OptionError("baseline", v["baseline"], refused)
    return replace(config, loaded=load_weights(v) if load and "weights" in v else None)
