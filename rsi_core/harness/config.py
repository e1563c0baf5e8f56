"""Where a run's settings come from, highest first: the command line, the environment (``RSI_*``),
a config file, the option table's defaults (``options.OPTIONS``).

The config file is the first ``rsi.toml`` or ``pyproject.toml`` with a ``[tool.rsi]`` table found
from the working folder upward; its keys are the options' names (``weights = "random:0"``,
``fz-seeds = 2``, ``expectations = ["a.toml"]``). A value from the environment or the file becomes
the option's default, so ``pytest claims``, ``rsi run`` and every command read it the same way,
and a command-line value still wins. ``rsi config`` prints each resolved value and its source.
"""
from __future__ import annotations

import os
import tomllib
from pathlib import Path

#: the environment variable of an option, where it has one (docs/options.md lists every RSI_* variable)
ENV = {"weights": "RSI_WEIGHTS", "images": "RSI_IMAGES", "cache-dir": "RSI_CACHE"}


def find_file(start: Path | None = None) -> Path | None:
    """The config file that applies in ``start`` (default: the working folder), or None."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "rsi.toml").is_file():
            return folder / "rsi.toml"
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file() and "rsi" in _read(pyproject).get("tool", {}):
            return pyproject
    return None


def _read(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"config file {path} is not readable TOML ({' '.join(str(exc).split())}): fix or remove it") from None


def file_values(start: Path | None = None) -> tuple[Path | None, dict]:
    """(the config file, its values as command-line text: a string, a list of strings, or a flag's bool)."""
    from rsi_core.harness.options import OPTIONS
    path = find_file(start)
    if path is None:
        return None, {}
    table = _read(path)
    table = table.get("tool", {}).get("rsi", {}) if path.name == "pyproject.toml" else table
    unknown = sorted(set(table) - set(OPTIONS))
    if unknown:
        raise ValueError(f"config file {path}: unknown keys {', '.join(unknown)}: use option names such as "
                         f"{', '.join(list(OPTIONS)[:4])}")
    out = {}
    for name, value in table.items():
        opt = OPTIONS[name]
        if opt.flag:
            out[name] = bool(value)
        elif opt.repeat:
            out[name] = [str(v) for v in (value if isinstance(value, list) else [value])]
        else:
            out[name] = str(value)
    return path, out


def default_of(opt) -> tuple[object, str]:
    """(the default of option ``opt`` in this environment and folder, where it came from)."""
    env = ENV.get(opt.name)
    if env and os.environ.get(env):
        return os.environ[env], f"environment ${env}"
    path, values = file_values()
    if opt.name in values:
        return values[opt.name], f"config file {path}"
    return opt.table_default(), "default"


def resolved(values: dict, given: set[str]) -> list[tuple[str, object, str]]:
    """(name, value, source) of every run option: ``values`` as checked (``options.check``),
    ``given``: the names set on the command line."""
    from rsi_core.harness.options import OPTIONS, RUN_OPTIONS
    rows = []
    for name in RUN_OPTIONS:
        source = "command line" if name in given else default_of(OPTIONS[name])[1]
        rows.append((name, values.get(name), source))
    return rows
