"""Preemption-safe rendering (issue 31): a batch checkpointed on a stop request or periodically
resumes to FZs byte-identical to an uninterrupted batch's; ``rsi fz`` stops on SIGTERM / SIGINT
in one line with 143 / 130 and keeps its batch; a CPU render makes no CUDA call."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from rsi_core.fz import resume
from rsi_core.fz.render import FZSettings, render

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[1]
TAP, CHANS, SETTINGS = "1.1.B", [0, 5, 9], FZSettings(steps=8)


def _stop_at(step, signum=signal.SIGTERM):
    def on_step(s, _params):
        if s == step:
            resume.request_stop(signum)
    return on_step


@pytest.mark.parametrize("batched", [False, True])
def test_a_batch_stopped_at_a_chosen_step_resumes_bit_for_bit(model, tmp_path, batched):
    clean = render(model, TAP, CHANS, SETTINGS, progress=False, batched=batched)
    ckpt = resume.Checkpoint(tmp_path / "batch.pt", "batch-a", every=1e9)
    try:
        with pytest.raises(resume.Interrupted) as stopped:
            render(model, TAP, CHANS, SETTINGS, progress=False, batched=batched, on_step=_stop_at(2), checkpoint=ckpt)
    finally:
        resume._stop["signal"] = None
    assert stopped.value.exit_code == 143 and stopped.value.path == ckpt.path
    assert torch.load(ckpt.path, weights_only=True)["step"] == 3  # steps 0..2 done, 3 next
    seen = []
    again = render(model, TAP, CHANS, SETTINGS, progress=False, batched=batched, checkpoint=ckpt,
                   on_step=lambda s, _p: seen.append(s))
    assert seen == list(range(3, 8))  # only the steps left
    assert np.array_equal(again["images"], clean["images"])
    assert again["reached"].tobytes() == clean["reached"].tobytes()


def test_a_periodic_checkpoint_bounds_what_a_kill_loses(model, tmp_path):
    clean = render(model, TAP, CHANS, SETTINGS, progress=False)
    ckpt = resume.Checkpoint(tmp_path / "batch.pt", "batch-b", every=0.0)  # saved before every step

    def killed(s, _p):
        if s == 5:
            raise SystemExit  # as abrupt as SIGKILL: nothing is saved on the way out
    with pytest.raises(SystemExit):
        render(model, TAP, CHANS, SETTINGS, progress=False, on_step=killed, checkpoint=ckpt)
    assert torch.load(ckpt.path, weights_only=True)["step"] == 5
    again = render(model, TAP, CHANS, SETTINGS, progress=False, checkpoint=ckpt)
    assert np.array_equal(again["images"], clean["images"])
    # another batch's checkpoint under this name is ignored and removed
    other = resume.Checkpoint(ckpt.path, "batch-c")
    assert other.load() is None and not ckpt.path.exists()


RENDER = ["fz", "--weights", "random:0", "--device", "cpu", "--blocks", "1.1", "--taps", "B", "--channels", "0-2",
          "--steps", "120", "--batch-size", "3"]


def _entries(cache: Path) -> dict:
    out = {}
    for p in sorted((cache / "fz").glob("*.npz")):
        with np.load(p) as z:
            out[p.name] = {k: z[k] for k in z.files}
    return out


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_rsi_fz_stops_on_a_signal_in_one_line_and_resumes_bit_for_bit(tmp_path, signum):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RSI_CHECKPOINT_SECONDS": "0.3"}
    cmd = [sys.executable, "-m", "rsi_core.harness.cli", *RENDER]
    cache = tmp_path / "c"
    proc = subprocess.Popen([*cmd, "--cache-dir", str(cache)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not list(cache.glob("fz-batch/*.pt")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)  # a periodic checkpoint: the batch is mid-way
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signum, err
    last = err.strip().splitlines()[-1]  # above it only the progress bar
    assert "Traceback" not in err and last.startswith(f"rsi fz: stopped by {signal.Signals(signum).name}"), err
    assert last.endswith("run the same command again to resume")
    kept = torch.load(next(cache.glob("fz-batch/*.pt")), weights_only=True)
    assert 0 < kept["step"] < 120
    if signum == signal.SIGINT:  # the resume below is the same for either signal
        return
    done = subprocess.run([*cmd, "--cache-dir", str(cache)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    assert not list(cache.glob("fz-batch/*.pt"))  # the finished batch's checkpoint is gone
    whole = subprocess.run([*cmd, "--cache-dir", str(tmp_path / "whole")], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=600)
    assert whole.returncode == 0, whole.stderr
    a, b = _entries(cache), _entries(tmp_path / "whole")
    assert a.keys() == b.keys() and len(a) == 3
    for name in a:
        for k in a[name]:
            assert np.array_equal(a[name][k], b[name][k]), (name, k)


def test_cpu_work_makes_no_cuda_call_with_cuda_available(model, tmp_path, monkeypatch):
    """A CPU render through the bank (Adam included), its checkpoint, and the natural-image pass,
    with CUDA faked available and every CUDA function refused."""
    from cuda_refused import CudaCalled, refuse

    from rsi_core.cache import Cache
    from rsi_core.fz.bank import FZBank
    from rsi_core.model.activations import natural_activations
    from rsi_core.model.images import ImageSet
    plain = torch.optim.Adam([torch.zeros(2, requires_grad=True)])
    plain.param_groups[0]["params"][0].grad = torch.ones(2)
    refuse(monkeypatch.setattr)
    with pytest.raises(CudaCalled):  # the fake bites: torch's own Adam asks CUDA for its stream
        plain.step()
    bank = FZBank(model, Cache(tmp_path), FZSettings(steps=3), device="cpu", progress=False)
    with monkeypatch.context() as m:
        m.setenv("RSI_CHECKPOINT_SECONDS", "0")  # a checkpoint before every step
        assert bank.get(TAP, [0, 1])["image"].shape == (2, 224, 224, 3)
    images = ImageSet.from_dir(None)
    images = ImageSet(images.root, images.files[:4])
    tables = natural_activations(model, images, ["1.1"], cache=Cache(tmp_path), progress=False)
    assert tables["1.1.B"].shape == (4, 64)
