"""``rsi run``: the claims tests of ``claims/`` through ``pytest.main`` (one implementation of
every claim), with the same options (``options.RUN_OPTIONS``), report and exit status as ``pytest claims``."""
from __future__ import annotations

from pathlib import Path

from rsi_core.harness.options import OPTIONS, RUN_OPTIONS
from rsi_core.harness.plugin import PREFIX


def pytest_args(args) -> list[str]:
    """pytest's command line for ``args`` (an ``rsi run`` namespace, its ``RunConfig`` in ``args.run``):
    every option of the table it sets."""
    from rsi_core.harness.expectations import claims_dir
    folder = Path(args.claims) if getattr(args, "claims", None) else claims_dir()
    out = [str(folder), "-p", "rsi_core.harness.plugin", "-q", "-rsxf", "--rootdir", str(folder.parent),
           # rsi_core is imported before pytest (this process checked the options): pytest, which would
           # rewrite the asserts of an entry point's package, says so once per run; nothing asserts in it
           "-W", "ignore::pytest.PytestAssertRewriteWarning"]
    for name in RUN_OPTIONS:  # the plugin's own names: any claims folder takes them
        value, opt, flag = args.run.values.get(name), OPTIONS[name], f"--{PREFIX}{name}"
        if opt.flag:
            out += [flag] if value else []
        elif opt.repeat:
            for v in value or []:
                out += [flag, str(v)]
        elif value is not None:
            out += [flag, str(value)]
    return out


def main(args) -> int:
    """Run the claims; the exit code is pytest's: 0 when every expected claim held (or was
    observed / inconclusive), 1 when one failed, regressed or errored. The options were checked
    (and the model loaded) by the CLI: pytest reuses both."""
    import pytest

    from rsi_core.harness.plugin import Checked, FailWhenNothingRan  # realjob (issue 9): no claim checked -> exit 1
    argv = pytest_args(args)
    print("rsi run: pytest " + " ".join(argv))
    return int(pytest.main(argv, plugins=[FailWhenNothingRan(), Checked(args.run)]))
