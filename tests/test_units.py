"""A claims run as a plan of work units (issue 31): what the plan holds, shards by array index,
units rendered apart equal to one render bit for bit, and the fault test: units killed and
stopped mid-batch, rerun, then a claims job that renders nothing (--require-cached)."""
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rsi_core.cache import Cache
from rsi_core.fz import bank as bank_mod
from rsi_core.harness.plan import Banks, build, parse_unit
from rsi_core.measure.profiles import get_profile
from rsi_core.measure.study import Study

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[1]


def _study(model, cache, steps=2, blocks=("1.1", "2.0"), profile="smoke"):
    return Study(model, replace(get_profile(profile), steps=steps), Cache(cache), blocks=list(blocks), progress=False)


def _entries(plan, banks) -> list[tuple]:
    return [(u.bank.weights, u.bank.target, u.bank.seed, u.tap, c) for u in plan.units for c in u.channels]


def test_the_plan_holds_every_bank_a_run_reads_once(model, tmp_path):
    study = _study(model, tmp_path)
    plan = build(study, "both", fz_seeds=2, controls=2, batch_size=4)
    # smoke: 6 channels; 1.1 (I = 1.0.O, B) and 2.0 (I, B): 24 FZs per bank; as-run shares 2.0.I (a downsample
    # block's input) with as-written, and reads 1.1.B and 1.1.I as the block outputs 1.1.O and 1.0.O
    # the seed 1 of each reading: 24 + 18
    assert plan.counts == {"primary": 24, "other reading": 18, "seed 1": 42, "control random": 24,
                           "control shuffle": 24}
    entries = _entries(plan, None)
    assert len(entries) == len(set(entries)) == plan.total == 132
    assert all(1 <= len(u.channels) <= 4 for u in plan.units)
    assert {u.bank.weights for u in plan.units} == {"random:0", "random:1", "shuffle:1:random:0"}
    assert plan.totals().startswith("rsi: plan: 132 FZs of 2 steps in ")


@given(st.integers(1, 40))
def test_shards_are_disjoint_and_cover_the_plan(n):
    from rsi_core.harness.plan import BankSpec, Unit, WorkPlan
    spec = BankSpec("random:0", "tested", "as-written", 0)
    plan = WorkPlan([Unit(i, spec, f"{i % 5}.0.B", (i,)) for i in range(29)], 2, 16)
    shards = [plan.shard(k, n) for k in range(n)]
    dealt = [u.index for s in shards for u in s]
    assert sorted(dealt) == list(range(29)) and len(dealt) == len(set(dealt))


def test_unit_auto_reads_the_schedulers_index():
    assert parse_unit("auto", 28, {"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "8"}) == (3, 8)
    assert parse_unit("auto", 28, {"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_MIN": "1",
                                   "SLURM_ARRAY_TASK_COUNT": "8"}) == (4, 8)
    assert parse_unit("auto", 28, {"JOB_COMPLETION_INDEX": "27"}) == (27, 28)  # one pod per unit
    assert parse_unit("auto", 28, {"JOB_COMPLETION_INDEX": "2", "RSI_UNIT_COUNT": "4"}) == (2, 4)
    assert parse_unit("1/3", 28, {}) == (1, 3)
    with pytest.raises(ValueError, match="neither SLURM_ARRAY_TASK_ID nor JOB_COMPLETION_INDEX"):
        parse_unit("auto", 28, {})
    with pytest.raises(ValueError, match="0..N-1"):
        parse_unit("auto", 28, {"JOB_COMPLETION_INDEX": "28"})


def test_units_rendered_apart_equal_one_render_bit_for_bit(model, tmp_path, monkeypatch):
    rendered = []
    real = bank_mod.render
    monkeypatch.setattr(bank_mod, "render", lambda m, t, c, *a, **k: rendered.append(len(c)) or real(m, t, c, *a, **k))
    whole = _study(model, tmp_path / "whole", blocks=["1.1"])
    plan = build(whole, controls=1, batch_size=4)
    assert Banks(whole, plan).render(plan.units) == plan.total == sum(rendered) == 24
    sharded = _study(model, tmp_path / "sharded", blocks=["1.1"])
    rendered.clear()
    for k in range(3):
        Banks(sharded, plan).render(plan.shard(k, 3))
    assert sum(rendered) == plan.total  # each FZ once
    a, b = (sorted((tmp_path / d / "fz").glob("*.npz")) for d in ("whole", "sharded"))
    assert [p.name for p in a] == [p.name for p in b] and len(a) == 24
    for pa, pb in zip(a, b):
        with np.load(pa) as za, np.load(pb) as zb:
            assert all(np.array_equal(za[k], zb[k]) for k in za.files)
    assert Banks(sharded, plan).missing() == []


def test_a_cpu_job_reads_a_gpu_rendered_bank_and_renders_nothing(model, tmp_path, monkeypatch):
    """--fz-device cuda: a CPU bank reads the entries keyed as CUDA's (here written by hand from a
    CPU render: no GPU on this machine) and renders none of its own."""
    from rsi_core.fz.bank import FZBank, NotCached
    from rsi_core.fz.render import FZSettings
    settings, chans = FZSettings(steps=2), [0, 1]
    cpu = FZBank(model, Cache(tmp_path), settings, device="cpu", progress=False)
    gpu = FZBank(model, Cache(tmp_path), settings, device="cuda", progress=False)  # its keys: no CUDA call
    rendered = cpu.get("1.1.B", chans)
    for c in chans:
        assert gpu._key("1.1.B", c) != cpu._key("1.1.B", c)
        gpu.cache.save(gpu._key("1.1.B", c), cpu.cache.load(cpu._key("1.1.B", c)))
    monkeypatch.setattr(FZBank, "key_device", "cuda")
    monkeypatch.setattr(bank_mod, "render", None)  # rendering would fail
    assert [cpu._key("1.1.B", c) for c in chans] == [gpu._key("1.1.B", c) for c in chans]
    assert np.array_equal(cpu.get("1.1.B", chans)["image"], rendered["image"])
    with pytest.raises(NotCached, match="1 FZs of 1.1.B are not in the cache"):
        cpu.get("1.1.B", [5])  # never rendered under another device's key
    assert cpu.get("1.1.O", [5], figure=True)["image"].max() == 0  # a figure's missing FZ: blank


# ---------------------------------------------------------------- the fault test

WORKER = """
import json, os, sys, time
from rsi_core.fz import bank as bank_mod, resume
log, stall, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
real = bank_mod.render
def render(model, tap, chans, *a, **k):
    if k.get("checkpoint") is None:  # a calibration of the plan's estimate, not an FZ
        return real(model, tap, chans, *a, **k)
    with open(log, "a") as f:
        f.write(json.dumps([tap, list(chans)]) + "\\n")
    inner = k.get("on_step")
    def on_step(s, p):  # test hook: the second batch stalls after its step 1 until a signal comes
        if inner: inner(s, p)
        if stall != "-" and s == 1 and sum(1 for _ in open(log)) == 2:
            open(stall, "w").close()
            t = time.monotonic()
            while not resume.stop_requested() and time.monotonic() - t < 120:
                time.sleep(0.05)
    return real(model, tap, chans, *a, **dict(k, on_step=on_step))
bank_mod.render = render
if argv[0] == "pytest":
    import pytest
    sys.exit(pytest.main(argv[1:]))
from rsi_core.harness import cli
sys.exit(cli.main(argv))
"""
RUN = ["--weights", "random:0", "--profile", "smoke", "--controls", "1", "--device", "cpu"]
#: the claims that read the whole bank and draw no FZ grid (a grid's FZs are outside the plan)
BANK_CLAIMS = ["-k", "fig2 and not simple"]


def _rendered(log: Path) -> int:
    return sum(len(json.loads(line)[1]) for line in log.read_text().splitlines()) if log.exists() else 0


@pytest.mark.slow
def test_fault_units_killed_and_stopped_then_a_claims_job_that_renders_nothing(tmp_path, few_images):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RSI_PROFILE_STEPS": "3", "RSI_CHECKPOINT_SECONDS": "0",
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    env.pop("RSI_CACHE", None)

    def worker(log, stall, *argv):
        return subprocess.Popen([sys.executable, "-c", WORKER, str(log), str(stall), *argv], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    units, images = tmp_path / "units", ["--images", few_images]
    fz = ["fz", *RUN, *images, "--cache-dir", str(units)]
    procs = [worker(tmp_path / f"log{k}", tmp_path / f"stall{k}" if k < 2 else "-", *fz, "--unit", f"{k}/3")
             for k in range(3)]
    deadline = time.monotonic() + 300
    for k, signum in ((0, signal.SIGKILL), (1, signal.SIGTERM)):  # each stalled mid-batch (its second)
        while not (tmp_path / f"stall{k}").exists() and procs[k].poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        procs[k].send_signal(signum)
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [-signal.SIGKILL, 143, 0], outs
    assert outs[1][1].strip().splitlines()[-1].startswith("rsi fz: stopped by SIGTERM")
    assert len(list(units.glob("fz-batch/*.pt"))) == 2  # the killed batch's periodic checkpoint, the stopped one's
    for k in (0, 1):  # both rerun: they resume
        again = worker(tmp_path / f"log{k}", "-", *fz, "--unit", f"{k}/3")
        out, err = again.communicate(timeout=300)
        assert again.returncode == 0, err
    assert not list(units.glob("fz-batch/*.pt"))
    plan = subprocess.run([sys.executable, "-m", "rsi_core.harness.cli", "plan", *RUN, *images, "--cache-dir", str(units),
                           "--json", "--no-estimate"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    total = json.loads(plan.stdout)["total_fzs"]
    assert total == 168 and json.loads(plan.stdout)["cached_units"] == json.loads(plan.stdout)["units"]
    # the claims job on the units' bank renders nothing, and makes no CUDA call (CUDA faked available, refused)
    claims = ["pytest", "claims", *RUN, *images, *BANK_CLAIMS, "--cache-dir", str(units), "--artifacts-dir",
              str(tmp_path / "art"), "--require-cached", "-p", "cuda_refused", "-p", "no:cacheprovider", "-q"]
    job = worker(tmp_path / "log-claims", "-", *claims)
    out, err = job.communicate(timeout=900)
    assert job.returncode == 0, out[-3000:] + err[-2000:]
    assert _rendered(tmp_path / "log-claims") == 0
    report = json.loads((tmp_path / "art" / "claims-report.json").read_text())
    assert len(report["claims"]) == 2 and not [c for c in report["claims"] if c["verdict"] == "error"]
    # a claims run that renders its own bank renders exactly the plan, and the same bytes
    single = tmp_path / "single"
    job = worker(tmp_path / "log-single", "-", "pytest", "claims", *RUN, *images, *BANK_CLAIMS, "--cache-dir", str(single),
                 "--artifacts-dir", str(tmp_path / "art-single"), "-p", "no:cacheprovider", "-q")
    out, err = job.communicate(timeout=900)
    assert job.returncode == 0, out[-3000:] + err[-2000:]
    assert _rendered(tmp_path / "log-single") == total
    a, b = (sorted((d / "fz").glob("*.npz")) for d in (units, single))
    assert [p.name for p in a] == [p.name for p in b]
    for pa, pb in zip(a, b):
        with np.load(pa) as za, np.load(pb) as zb:
            assert all(np.array_equal(za[k], zb[k]) for k in za.files), pa.name
    # one FZ gone: the claims job stops before any work, in one line that names the count and the command
    a[0].unlink()
    gone = [str(tmp_path / "art-gone") if x == str(tmp_path / "art") else x for x in claims]
    job = worker(tmp_path / "log-gone", "-", *gone)
    out, err = job.communicate(timeout=300)
    assert job.returncode == pytest.ExitCode.USAGE_ERROR and "Traceback" not in out + err, out[-2000:] + err[-2000:]
    line = [s for s in err.splitlines() if "--require-cached:" in s]
    assert len(line) == 1 and f"1 of the plan's {total} FZs are not in the cache" in line[0], err[-2000:]
    assert "render them with: rsi fz " in line[0] and "--unit" in line[0]
    assert _rendered(tmp_path / "log-gone") == 0 and not (tmp_path / "art-gone" / "claims").exists()


@pytest.mark.slow
def test_rsi_submit_runs_a_smoke_plan_and_its_claims_job_on_the_local_executor(tmp_path, few_images):
    """The units as a job array and the claims job after it, through submitit's local executor
    (rsi submit waits for the array: no dependencies here); the claims job renders nothing."""
    pytest.importorskip("submitit")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RSI_PROFILE_STEPS": "2", "PYTHONPATH": str(ROOT)}
    env.pop("RSI_CACHE", None)
    run = ["--weights", "random:0", "--profile", "smoke", "--controls", "0", "--device", "cpu",
           "--images", few_images, "--cache-dir", str(tmp_path / "cache"),
           "--artifacts-dir", str(tmp_path / "art")]
    done = subprocess.run([sys.executable, "-m", "rsi_core.harness.cli", "submit", *run, "--executor", "local",
                           "--tasks", "2", "--folder", str(tmp_path / "jobs"), "--wait"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("rsi submit: 2 unit tasks (array ") and "claims job" in lines[1], done.stdout
    assert "--require-cached" in lines[1] and lines[-1].endswith("done")
    assert len(list((tmp_path / "cache" / "fz").glob("*.npz"))) == 84  # the smoke plan without controls
    report = json.loads((tmp_path / "art" / "claims-report.json").read_text())
    assert len(report["claims"]) >= 10 and not [c for c in report["claims"] if c["verdict"] == "error"]
