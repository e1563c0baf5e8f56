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
