"""The installed package: imports that load no torch, a root that exports lazily, weights sources
registered on first use, the pytest plugin's entry point."""
import json
import os
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
    from rsi_core.report.environment import SCHEMA
    entry = {"id": "fig2-a", "verdict": "holds", "outcome": "observed", "reason": "9/10", "paper": "A statement.",
             "statistic": "", "expectation": "observe", "regressions": [], "artifacts": [],
             "provenance": {"model": "resnet18", "weights": "random:0", "profile": "smoke", "device": "cpu"}}
    _, js = write_report([entry], tmp_path)
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
