"""The installed package: imports that load no torch, a root that exports lazily, weights sources
registered on first use, the pytest plugin's entry point."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _python(code: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_rsi_core_paper_imports_no_torch():
    got = _python("import sys, json, rsi_core.paper; print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] "
                  "in ('torch', 'torchvision', 'scipy', 'rsi_core'))))")
    assert got == ["rsi_core", "rsi_core.paper"]


def test_rsi_help_imports_no_torch():
    got = _python("import sys, json, contextlib, io\nfrom rsi_core.harness import cli\n"
                  "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
                  "    try:\n        cli.main(['--help'])\n    except SystemExit:\n        pass\n"
                  "print(json.dumps({'torch': 'torch' in sys.modules, 'help': 'COMMAND' in out.getvalue()}))")
    assert got == {"torch": False, "help": True}


def test_the_root_exports_lazily_and_planted_registers_when_asked_for():
    got = _python("import sys, json, rsi_core\nfrom rsi_core.model import sources\n"
                  "before = 'rsi_core.planted' in sys.modules\nkind = sources.kind_of('planted:fig2-holds')\n"
                  "print(json.dumps({'before': before, 'kind': kind, 'after': 'rsi_core.planted' in sys.modules,"
                  "'lazy': rsi_core.load_model.__module__}))")
    assert got == {"before": False, "kind": "planted", "after": True, "lazy": "rsi_core.model.load"}


def test_the_report_records_its_schema_and_environment_and_refuses_another_schema(tmp_path):
    import pytest

    from rsi_core.report.claims_report import load_baseline, write_report
    from rsi_core.report.entry import ClaimEntry
    from rsi_core.report.environment import SCHEMA
    entry = {"id": "fig2-a", "verdict": "holds", "outcome": "observed", "reason": "9/10", "paper": "A statement.",
             "statistic": "", "expectation": "observe", "regressions": [], "artifacts": [],
             "provenance": {"model": "resnet18", "weights": "random:0", "profile": "smoke", "device": "cpu"}}
    _, js = write_report([ClaimEntry.from_json(entry)], tmp_path)
    report = json.loads(js.read_text())
    env = report["environment"]
    assert report["schema"] == SCHEMA
    assert env["rsi"] and env["python"] and env["torch"] and env["torchvision"] and env["cpu"] and env["platform"]
    assert env["git_commit"] and len(env["git_commit"]) == 40  # tests run from a clone
    assert env["command"] and env["date"].endswith("+00:00") and {"cuda", "cudnn", "gpu"} <= set(env)
    page = (tmp_path / "claims-report.html").read_text()
    assert f"Environment: rsi {env['rsi']}, torch {env['torch']}" in page and env["git_commit"] in page
    assert env["torch"] in (tmp_path / "claims-report.md").read_text()
    assert load_baseline(js)["claims"]["fig2-a"]["verdict"] == "holds"
    js.write_text(json.dumps({**report, "schema": SCHEMA + 1}))
    with pytest.raises(ValueError) as refused:
        load_baseline(js)
    assert f"schema {SCHEMA + 1}" in str(refused.value) and "\n" not in str(refused.value)


def _pytest(args: list[str], cwd, pythonpath: list[str]) -> subprocess.CompletedProcess:
    """pytest in a fresh process with the plugin loaded as its entry point loads it (before any conftest)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(pythonpath), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "rsi_core.harness.plugin", "-p", "no:cacheprovider",
                           *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_the_plugin_is_registered_as_a_pytest11_entry_point():
    import tomllib
    points = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["pytest11"]
    assert points == {"rsi_core.harness.plugin": "rsi_core.harness.plugin"}


def test_another_projects_pytest_run_sees_no_rsi_options_and_no_rsi_work(tmp_path):
    (tmp_path / "test_other.py").write_text("def test_other():\n    assert True\n")
    shown = _pytest(["--help"], tmp_path, [str(ROOT)]).stdout
    assert "--rsi-weights" in shown and "--rsi-model" in shown
    for generic in ("--weights", "--model", "--device", "--profile", "--images", "--baseline"):
        assert not re.search(rf"(^|[\s(]){generic}\b", shown, re.M), generic
    run = _pytest(["-q"], tmp_path, [str(ROOT)])
    assert run.returncode == 0 and "1 passed" in run.stdout, run.stdout + run.stderr
    assert "rsi" not in run.stdout and not (tmp_path / "artifacts").exists()
    refused = _pytest(["-q", "--weights", "random:0"], tmp_path, [str(ROOT)])
    assert refused.returncode == 4 and "unrecognized arguments: --weights" in refused.stderr


def test_pytest_pyargs_takes_the_claims_short_options(tmp_path):
    """``pytest --pyargs rsi_claims --weights ...``: the installed claims package (here the clone's
    claims/ under that name) gets its short options; the ten claims are collected."""
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "rsi_claims").symlink_to(ROOT / "claims")
    run = _pytest(["--pyargs", "rsi_claims", "--weights", "random:0", "--profile", "smoke", "--collect-only", "-q"],
                  tmp_path, [str(tmp_path / "site"), str(ROOT)])
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    claims = [line for line in run.stdout.splitlines() if "::test_" in line and "[" in line]
    assert len(claims) == 10, run.stdout


def test_progress_bars_write_sparingly_into_a_file_and_not_at_all_when_quiet(tmp_path, monkeypatch, capsys):
    import io
    import logging

    from rsi_core.harness import cli
    from rsi_core.model import progress
    log = logging.getLogger("rsi_core")
    monkeypatch.setattr(log, "level", logging.NOTSET)  # restored after: cli.main sets it
    monkeypatch.setattr(log, "handlers", [])
    monkeypatch.delenv("RSI_PROGRESS_SECONDS", raising=False)
    with progress.bar(range(3), file=io.StringIO()) as b:
        assert b.mininterval == progress.PLAIN_SECONDS == 60 and not b.disable
    monkeypatch.setenv("RSI_PROGRESS_SECONDS", "5")
    assert progress.bar(range(3), file=io.StringIO()).mininterval == 5
    fz = ["fz", "--weights", "random:0", "--blocks", "1.1", "--taps", "B", "--channels", "0-1", "--steps", "2",
          "--device", "cpu", "--cache-dir", str(tmp_path / "cache")]
    assert cli.main([*fz, "-q"]) == 0
    quiet = capsys.readouterr()
    assert "FZ bank" not in quiet.err and "FZ bank ready" in quiet.out  # the command's own report stays
    assert progress.bar(range(3), file=io.StringIO()).disable  # -q: the rsi_core logger at warning
    assert cli.main([*fz, "--cache-dir", str(tmp_path / "cache2"), "--log-level", "info"]) == 0
    assert "FZ bank: 100%" in capsys.readouterr().err


def test_settings_come_from_the_command_line_the_environment_a_config_file_then_the_defaults(tmp_path, monkeypatch,
                                                                                          capsys):
    from rsi_core.harness import cli
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RSI_WEIGHTS", raising=False)
    (tmp_path / "rsi.toml").write_text('weights = "random:3"\nfz-seeds = 2\njitter-table = "none"\n')

    def shown(*argv):
        assert cli.main(["config", "--json", *argv]) == 0
        return json.loads(capsys.readouterr().out)["options"]
    got = shown("--jitter-table", "paper")
    assert got["weights"] == {"value": "random:3", "source": f"config file {tmp_path / 'rsi.toml'}"}
    assert got["fz-seeds"]["value"] == 2 and got["jitter-table"] == {"value": "paper", "source": "command line"}
    assert got["model"] == {"value": "resnet18", "source": "default"}
    monkeypatch.setenv("RSI_WEIGHTS", "random:5")
    assert shown()["weights"] == {"value": "random:5", "source": "environment $RSI_WEIGHTS"}
    assert shown("--weights", "random:7")["weights"] == {"value": "random:7", "source": "command line"}
    (tmp_path / "rsi.toml").write_text('wieghts = "random:3"\n')
    assert cli.main(["config"]) == 2
    err = capsys.readouterr().err
    assert "unknown keys wieghts" in err and len(err.strip().splitlines()) == 1


def test_the_xdist_controller_recognises_claims_from_the_workers_node_ids(tmp_path, monkeypatch):
    """The controller collects nothing: it reads the workers' node ids, relative to the rootdir in a
    clone and to the package's folder with ``--pyargs``."""
    from types import SimpleNamespace

    from rsi_core.harness.plugin import _claim_marked
    claim, plain = "test_fig2_spectrum.py::test_final_block[fig2-final-block]", "test_package.py::test_x"

    def config(rootpath, args, pyargs=False):
        return SimpleNamespace(rootpath=rootpath, args=args, option=SimpleNamespace(pyargs=pyargs))
    assert _claim_marked(config(ROOT, ["claims"]), [f"claims/{claim}"])
    assert not _claim_marked(config(ROOT, ["tests"]), [f"tests/{plain}"])
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "rsi_claims").symlink_to(ROOT / "claims")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert _claim_marked(config(tmp_path, ["rsi_claims"], pyargs=True), [claim])
