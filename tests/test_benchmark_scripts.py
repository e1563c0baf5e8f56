"""The GPU check's code paths run (on the CPU, --tiny), so the GPU run is not its first run."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ["environment", "smoke", "correctness", "speed", "precision_flips", "determinism", "natural", "processes"]


def test_gpu_check_runs_every_section_tiny_on_cpu_from_a_plain_checkout(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--tiny"], cwd=tmp_path,
                         env={**env, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=900)
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert [s["section"] for s in lines] == SECTIONS, out.stderr[-2000:]
    assert out.returncode == 0, [s for s in lines if "error" in s]
    by = {s["section"]: s for s in lines}
    assert by["smoke"]["all_finite"] and len(by["smoke"]["variants"]) == 13
    assert all(t["m_class_agrees"] == 1.0 and t["max_pixel_diff"] == 0 for t in by["correctness"]["per_tap"].values())
    assert by["speed"]["fp32"]["achieved_tflops"] > 0 and by["speed"]["extrapolated_paper_bank_minutes_fp32"] > 0
    assert by["determinism"]["run_to_run_max_pixel_diff"] == 0 == by["determinism"]["alone_vs_batch_max_pixel_diff"]
    assert by["natural"]["images_per_second"] > 0 and by["processes"]["throughput_ratio_two_vs_one"] > 0
