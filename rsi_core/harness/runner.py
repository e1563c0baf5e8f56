"""``rsi run``: the claims tests of ``claims/`` through ``pytest.main`` (one implementation of
every claim), with the same options, report and exit status as ``pytest claims``."""
from __future__ import annotations

from pathlib import Path

OPTIONS = ("model", "weights", "images", "profile", "device", "cache_dir", "artifacts_dir", "baseline",
           "fz_target", "fz_seeds", "controls")


def pytest_args(args) -> list[str]:
    """pytest's command line for ``args`` (an ``rsi run`` namespace)."""
    from rsi_core.harness.claims import claims_dir
    folder = Path(args.claims) if getattr(args, "claims", None) else claims_dir()
    out = [str(folder), "-p", "rsi_core.harness.plugin", "-q", "-rsxf", "--rootdir", str(folder.parent)]
    for name in OPTIONS:
        value = getattr(args, name, None)
        if value is not None:
            out += [f"--{name.replace('_', '-')}", str(value)]
    for f in getattr(args, "expectations", None) or []:
        out += ["--expectations", str(f)]
    return out


def main(args) -> int:
    """Run the claims; the exit code is pytest's: 0 when every expected claim held (or was
    observed / inconclusive), 1 when one failed, regressed or errored."""
    import pytest
    argv = pytest_args(args)
    print("rsi run: pytest " + " ".join(argv))
    from rsi_core.harness.plugin import FailWhenNothingRan  # realjob (issue 9): no claim checked -> exit 1
    return int(pytest.main(argv, plugins=[FailWhenNothingRan()]))
