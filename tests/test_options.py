"""The one option table: pytest claims and rsi run are generated from it, every option and
subcommand has help and an example, the CLI has --version and prints no FutureWarning."""
import argparse
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from rsi_core.harness import cli, options, plugin
from rsi_core.measure.profiles import PROFILES
from rsi_core.model import load

ROOT = Path(__file__).resolve().parents[1]


class _Recorder:
    """Stands in for pytest's parser: records the options the plugin adds."""

    def __init__(self):
        self.names = []

    def getgroup(self, *_):
        return self

    def addoption(self, name, **_):
        self.names.append(name)


def _subparsers(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield name, sub
                yield from ((f"{name} {n}", s) for n, s in _subparsers(sub))


def test_pytest_claims_and_rsi_run_have_the_same_options():
    rec = _Recorder()
    plugin.pytest_addoption(rec)
    run = dict(_subparsers(cli.build_parser()))["run"]
    run_flags = [a.option_strings[0] for a in run._actions
                 if a.option_strings and a.dest not in ("help", "claims", "log_level", "quiet", "dry_run")]
    assert run_flags == [f"--{n}" for n in options.RUN_OPTIONS]
    assert rec.names == [f"--rsi-{n}" for n in options.RUN_OPTIONS]  # the short names only where claims run
    assert {"--antialias", "--jitter-table"} <= set(run_flags)


def test_profiles_offered_are_the_public_ones():
    assert set(options.public_profiles()) == set(PROFILES) - set(options.INTERNAL_PROFILES)
    assert "census-planted" in PROFILES and "census-planted" not in options.public_profiles()


def test_every_subcommand_and_option_has_help_and_an_example():
    top = cli.build_parser()
    assert top.description and "examples:\n  rsi " in top.epilog
    for name, sub in _subparsers(top):
        if name == "bench":
            continue  # a group: its one command, bench fz, is checked
        assert sub.description and "examples:\n  rsi " in (sub.epilog or ""), name
        for action in sub._actions:
            if action.option_strings and action.dest != "help":
                assert action.help and "e.g. " in action.help, (name, action.option_strings)


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"rsi {metadata.version('rsi')}"


def test_cli_prints_no_future_warning():
    """kornia's torch.jit.script at import warned on every command."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "rsi_core.harness.cli", "blocks", "--weights", "random:0"], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "4.1" in out.stdout, out.stderr
    assert "Warning" not in out.stderr, out.stderr


def test_rsi_run_forwards_the_table_and_loads_the_model_once(tmp_path, monkeypatch, capsys):
    """rsi run checks its options, loads the model once, and its in-process pytest reuses both."""
    (tmp_path / "claims").mkdir()
    (tmp_path / "claims" / "test_seen.py").write_text(
        "from rsi_core.model.anatomy import provenance_of\n\n\n"
        "def test_seen(rsi_model, rsi_options):\n"
        "    assert rsi_options['antialias'] is True and rsi_options['jitter-table'] == 'authors-script'\n"
        "    assert rsi_options['fz-seeds'] == 2 and provenance_of(rsi_model).weights == 'random:0'\n")
    loads = []
    real = load.load_model
    monkeypatch.setattr(load, "load_model", lambda *a, **k: loads.append(a) or real(*a, **k))
    code = cli.main(["run", "--claims", str(tmp_path / "claims"), "--weights", "random:0", "--device", "cpu",
                     "--antialias", "--jitter-table", "authors-script", "--fz-seeds", "2",
                     "--cache-dir", str(tmp_path / "cache"), "--artifacts-dir", str(tmp_path / "art")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "--rsi-antialias --rsi-jitter-table authors-script" in out and "1 passed" in out
    assert len(loads) == 1, loads
    # the same process goes on working after the in-process run (its progress file is gone)
    assert cli.main(["activations", "--weights", "random:0", "--limit", "1", "--blocks", "1.1", "--cache-dir",
                     str(tmp_path / "cache"), "--out", str(tmp_path / "a.npz")]) == 0, capsys.readouterr().err


def test_channels():
    assert options.channels("all", 4) == [0, 1, 2, 3]
    assert options.channels("0-2,5,1", 8) == [0, 1, 2, 5]
    with pytest.raises(ValueError, match="runs backwards: write it low to high, 2-5"):
        options.channels("5-2", 8)
    with pytest.raises(ValueError, match="channel 8 out of range: this block has channels 0-7"):
        options.channels("0-8", 8)


def test_docs_list_every_option():
    text = (ROOT / "docs" / "options.md").read_text()
    missing = [n for n in options.RUN_OPTIONS if f"`--{n}`" not in text]
    assert not missing, f"docs/options.md lacks {missing}"
