"""When the weights are missing, nothing is checked, and the run says so without -rs."""
import os
import re
import subprocess
import sys
from pathlib import Path

from test_models import _offline

from rsi_core.harness import cli

ROOT = Path(__file__).resolve().parents[1]
OFFLINE_PLUGIN = '''
import urllib.error, torch, torchvision
def _no_network(url, *a, **k):
    raise urllib.error.URLError("no network (test)")
torchvision.models._api.load_state_dict_from_url = _no_network
torch.hub.load_state_dict_from_url = _no_network
'''


def test_pytest_claims_without_weights_says_why_in_header_and_summary(tmp_path):
    (tmp_path / "offline_plugin.py").write_text(OFFLINE_PLUGIN)
    env = {**os.environ, "TORCH_HOME": str(tmp_path / "torch_home"), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env.pop("RSI_WEIGHTS", None)
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "offline_plugin", "claims/test_fig2_spectrum.py",
         "--weights", "IMAGENET1K_V1", "--profile", "smoke", "--artifacts-dir", str(tmp_path / "art"),
         "--cache-dir", str(tmp_path / "cache"), "-p", "no:cacheprovider"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    text = out.stdout + out.stderr
    header, _, summary = text.partition("claims/test_fig2_spectrum.py ")  # said before the first test runs
    assert "WEIGHTS NOT FOUND: resnet18-f37072fd.pth is not in torchvision's cache" in header
    skipped = re.search(r"(\d+) skipped", summary)
    assert skipped and int(skipped.group(1)) > 0, summary
    assert f"NO CLAIM WAS CHECKED: {skipped.group(1)} claims skipped, weights unavailable" in summary
    assert "--weights /path/to/resnet18-f37072fd.pth" in summary


def test_rsi_run_without_weights_exits_non_zero(monkeypatch, tmp_path, capsys):
    _offline(monkeypatch, tmp_path)
    code = cli.main(["run", "--weights", "IMAGENET1K_V1", "--profile", "smoke", "--device", "cpu",
                     "--cache-dir", str(tmp_path / "c"), "--artifacts-dir", str(tmp_path / "a")])
    assert code != 0
    captured = capsys.readouterr()
    assert "resnet18-f37072fd.pth" in captured.out + captured.err
