"""The GPU benchmark's code paths run (on the CPU, --tiny), so the GPU run is not its first run."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_script_runs_tiny_on_cpu(tmp_path):
    out = subprocess.run([sys.executable, "benchmarks/gpu.py", "--tiny", "--out", str(tmp_path / "gpu.json")],
                         cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == json.loads((tmp_path / "gpu.json").read_text())
    s = result["sections"]
    assert set(s["lucent_vs_engine"]["per_tap"]) == {"1.1.I", "1.1.B", "4.0.I", "4.0.B"}
    assert all(v["ratio"] > 0 for v in s["lucent_vs_engine"]["per_tap"].values())
    assert set(s["precision"]) == {"fp32", "tf32", "bf16"}
    assert all(s["precision"][p]["extrapolated_paper_bank_minutes"] > 0 for p in s["precision"])
    for p in ("tf32", "bf16"):
        assert 0 <= s["m_agreement"][p]["class_changed"] <= 1
    assert s["natural"]["images_per_second"] > 0
