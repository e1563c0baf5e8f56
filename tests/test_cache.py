"""The on-disk cache: atomic writes, stable keys, corrupt entries, and real concurrent processes.

The concurrency tests start real ``multiprocessing`` processes (spawn, as pytest-xdist workers
are separate interpreters): their entry points are module-level functions of this file.
"""
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

from rsi_core import cache as cache_mod
from rsi_core.cache import Cache, CorruptEntryWarning, EntryLock, LockBusy

SPAWN = multiprocessing.get_context("spawn")


def _arrays(seed=0):
    rng = np.random.default_rng(seed)
    return {"a": rng.normal(size=(5, 3)).astype(np.float32), "b": np.arange(7), "s": np.array("text")}


def _same(x, y):
    assert set(x) == set(y)
    for k in x:
        np.testing.assert_array_equal(x[k], y[k])
        assert x[k].dtype == y[k].dtype


# ---------------------------------------------------------------- keys

def test_key_is_order_independent_and_field_sensitive():
    k = Cache.key("fz", tap="1.1.B", channel=3, steps=16)
    assert k == Cache.key("fz", steps=16, channel=3, tap="1.1.B")
    assert k.startswith("fz-") and len(k) == len("fz-") + 32
    assert k != Cache.key("fz", tap="1.1.B", channel=4, steps=16)
    assert k != Cache.key("fz", tap="1.1.B", channel=3, steps=16, crop=False)
    assert k != Cache.key("natural", tap="1.1.B", channel=3, steps=16)
    assert Cache.key("t", taps=["a", "b"]) != Cache.key("t", taps=["b", "a"])


def test_key_includes_the_algorithm_version(monkeypatch):
    k = Cache.key("fz", channel=1)
    monkeypatch.setattr(cache_mod, "ALGORITHM_VERSION", cache_mod.ALGORITHM_VERSION + 1)
    assert Cache.key("fz", channel=1) != k


def test_key_is_stable_across_interpreters():
    """No dependence on Python's per-process hash randomization or dict order."""
    code = ("from rsi_core.cache import Cache; "
            "print(Cache.key('fz', tap='3.1.I', channel=7, settings={'lr': 0.05, 'steps': 2560}))")
    keys = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": seed}).stdout.strip()
            for seed in ("1", "2")}
    assert keys == {Cache.key("fz", tap="3.1.I", channel=7, settings={"steps": 2560, "lr": 0.05})}


def test_entry_path_is_under_its_namespace(tmp_path):
    c = Cache(tmp_path)
    k = Cache.key("natural", images="x")
    assert c.path(k) == tmp_path / "natural" / f"{k}.npz"


# ---------------------------------------------------------------- writes and reads

def test_round_trip(tmp_path):
    c = Cache(tmp_path)
    k = Cache.key("t", n=1)
    assert c.load(k) is None
    c.save(k, _arrays())
    _same(c.load(k), _arrays())
    assert not list(c.path(k).parent.glob("*.tmp"))


def test_default_root_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("RSI_CACHE", str(tmp_path / "elsewhere"))
    assert Cache().root == tmp_path / "elsewhere"
    assert (tmp_path / "elsewhere").is_dir()


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()])
def test_failed_write_leaves_no_entry_and_keeps_the_old_one(tmp_path, monkeypatch, error):
    """A write that dies half-way (disk full, Ctrl-C) leaves the previous entry intact and no
    temporary file: readers see the old entry or none, never half an entry."""
    c = Cache(tmp_path)
    old, new = Cache.key("t", n="old"), Cache.key("t", n="new")
    c.save(old, _arrays(1))
    real_savez = np.savez

    def dying_savez(f, **arrays):
        f.write(b"PK\x03\x04 half an entry")
        raise error

    monkeypatch.setattr(cache_mod.np, "savez", dying_savez)
    for key in (old, new):
        with pytest.raises(type(error)):
            c.save(key, _arrays(2))
    monkeypatch.setattr(cache_mod.np, "savez", real_savez)
    _same(c.load(old), _arrays(1))
    assert not c.path(new).exists()
    assert not list(c.path(new).parent.glob("*.tmp"))


def test_write_is_a_rename(tmp_path, monkeypatch):
    """The entry's path appears only through os.replace of a complete temporary file."""
    c = Cache(tmp_path)
    k = Cache.key("t", n=2)
    seen = []
    real_replace = os.replace

    def spy(src, dst):
        seen.append(c.path(k).exists())
        with np.load(src) as z:  # the temporary file is already a complete entry
            assert json.loads(str(z["__key__"])) == k
        real_replace(src, dst)

    monkeypatch.setattr(cache_mod.os, "replace", spy)
    c.save(k, _arrays())
    assert seen == [False]
    _same(c.load(k), _arrays())


# ---------------------------------------------------------------- corrupt entries

@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "other-key"])
def test_corrupt_entry_is_reported_removed_and_recomputed(tmp_path, damage):
    c = Cache(tmp_path)
    k = Cache.key("t", n=3)
    c.save(k, _arrays())
    p = c.path(k)
    if damage == "truncate":
        p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    elif damage == "garbage":
        p.write_bytes(os.urandom(300))
    elif damage == "empty":
        p.write_bytes(b"")
    else:  # a valid entry of another key copied over this one
        other = Cache.key("t", n=4)
        c.save(other, _arrays(9))
        p.write_bytes(c.path(other).read_bytes())
    calls = []

    def compute():
        calls.append(1)
        return _arrays()

    with pytest.warns(CorruptEntryWarning, match="corrupt"):
        got = c.get_or_compute(k, compute)
    assert calls == [1]
    _same(got, _arrays())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the recomputed entry is sound
        _same(c.load(k), _arrays())
    assert c.get_or_compute(k, compute) is not None and calls == [1]


def test_get_or_compute_computes_once_in_one_process(tmp_path):
    c = Cache(tmp_path)
    k = Cache.key("t", n=5)
    calls = []
    for _ in range(3):
        _same(c.get_or_compute(k, lambda: calls.append(1) or _arrays()), _arrays())
    assert calls == [1]


def test_failed_compute_stores_nothing_and_releases_the_lock(tmp_path):
    c = Cache(tmp_path)
    k = Cache.key("t", n=6)

    def boom():
        raise RuntimeError("compute failed")

    with pytest.raises(RuntimeError):
        c.get_or_compute(k, boom)
    assert not c.path(k).exists()
    lock = c.lock(k)
    lock.acquire(timeout=1)  # not left held
    lock.release()
    _same(c.get_or_compute(k, _arrays), _arrays())


# ---------------------------------------------------------------- real processes

def _slow_worker(root, key, counter, barrier, results):
    """Child process: ask for ``key``; the computation takes 1 s and logs itself."""
    from rsi_core.cache import Cache as ChildCache

    def compute():
        with open(counter, "a") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(1.0)
        return {"x": np.arange(10.0) * 3, "pid": np.array(os.getpid())}

    barrier.wait(timeout=60)
    out = ChildCache(root).get_or_compute(key, compute)
    results.put((os.getpid(), out["x"].tolist(), int(out["pid"])))


def test_concurrent_processes_compute_once(tmp_path):
    n = 4
    key = Cache.key("race", n=1)
    counter = tmp_path / "computed.log"
    barrier, results = SPAWN.Barrier(n), SPAWN.Queue()
    procs = [SPAWN.Process(target=_slow_worker, args=(str(tmp_path / "c"), key, str(counter), barrier, results))
             for _ in range(n)]
    for p in procs:
        p.start()
    got = [results.get(timeout=120) for _ in range(n)]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    lines = counter.read_text().split()
    assert len(lines) == 1, f"computed {len(lines)} times: {lines}"
    assert {g[0] for g in got} == {p.pid for p in procs}
    assert all(g[1] == [3.0 * i for i in range(10)] for g in got)
    assert {g[2] for g in got} == {int(lines[0])}  # every process got the one computation's arrays


def _bank_worker(root, requests, log, barrier, results):
    """Child process: fill an FZ bank with a spy on ``render`` that logs every batch it renders."""
    import torch

    torch.set_num_threads(1)
    from rsi_core.fz import bank as bank_mod
    from rsi_core.fz.render import FZSettings
    from rsi_core.model.load import load_model

    real_render = bank_mod.render

    def spy(model, tap, channels, *args, **kwargs):
        with open(log, "a") as f:
            f.write(json.dumps([os.getpid(), tap, list(channels)]) + "\n")
        return real_render(model, tap, channels, *args, **kwargs)

    bank_mod.render = spy
    model = load_model("resnet18", "random:0")
    bank = bank_mod.FZBank(model, Cache(root), FZSettings(steps=2), batch_size=2, progress=False)
    barrier.wait(timeout=120)
    bank.ensure(requests)
    images = {tap: bank.get(tap, chans)["image"].sum(axis=(1, 2, 3)).tolist() for tap, chans in requests.items()}
    results.put((os.getpid(), images))


def test_concurrent_fz_banks_compute_each_fz_once(tmp_path):
    """Two processes fill the same bank: every (tap, channel) FZ is rendered by exactly one of
    them, and both read the same images."""
    requests = {"1.1.B": [0, 1, 2, 3], "1.1.I": [5, 6]}
    log = tmp_path / "render.log"
    barrier, results = SPAWN.Barrier(2), SPAWN.Queue()
    procs = [SPAWN.Process(target=_bank_worker, args=(str(tmp_path / "c"), requests, str(log), barrier, results))
             for _ in range(2)]
    for p in procs:
        p.start()
    got = [results.get(timeout=300) for _ in range(2)]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    rendered = [json.loads(line) for line in log.read_text().splitlines()]
    fzs = [(tap, c) for _, tap, chans in rendered for c in chans]
    canonical = {"1.1.I": "1.0.O"}  # fz (issue 8): a simple block's I is rendered as the previous O
    assert sorted(fzs) == sorted((canonical.get(t, t), c) for t, cs in requests.items() for c in cs), rendered
    assert got[0][1] == got[1][1]
    entries = list((tmp_path / "c" / "fz").glob("*.npz"))
    assert len(entries) == 6


def test_numpy_scalars_key_like_python_numbers():
    assert Cache.key("fz", channel=np.int64(3), w=np.float64(0.5)) == Cache.key("fz", channel=3, w=0.5)
    assert Cache.key("fz", channel=3) != Cache.key("fz", channel="3")


# ---------------------------------------------------------------- locks that never hang (issue 31)

HOLD = """
import sys, time
from rsi_core.cache import EntryLock
EntryLock(sys.argv[1], soft=True).acquire()
print("held", flush=True)
time.sleep(600)
"""


def test_a_killed_holders_soft_lock_is_broken(tmp_path):
    """The soft lock (no flock on the filesystem) of a process killed with SIGKILL on this host."""
    import signal
    path = tmp_path / "entry.lock"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True,
                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert proc.stdout.readline().strip() == "held"
    with pytest.raises(LockBusy, match=f"pid {proc.pid}"):  # alive: a bounded wait names it
        EntryLock(path, soft=True).acquire(timeout=0.3, poll=0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    soft = tmp_path / "entry.lock.soft"
    assert soft.exists()  # left behind
    lock = EntryLock(path, soft=True).acquire(timeout=5, poll=0.1)
    assert json.loads(soft.read_text())["pid"] == os.getpid()
    lock.release()
    assert not soft.exists()


def test_another_hosts_lock_is_broken_when_its_heartbeat_stops(tmp_path, monkeypatch):
    path = tmp_path / "entry.lock"
    (tmp_path / "entry.lock.soft").write_text(json.dumps({"host": "node-17", "pid": 4242, "since": time.time() - 900}))
    with pytest.raises(LockBusy, match="host node-17, pid 4242, held for 9.. s"):
        EntryLock(path, soft=True).acquire(timeout=0.2, poll=0.1)  # its heartbeat is fresh: alive
    old = time.time() - cache_mod.STALE_SECONDS - 1
    os.utime(tmp_path / "entry.lock.soft", (old, old))
    EntryLock(path, soft=True).acquire(timeout=1, poll=0.1).release()


def test_a_filesystem_without_flock_falls_back_to_the_soft_lock(tmp_path, monkeypatch):
    import errno
    import fcntl

    def no_flock(*_a):
        raise OSError(errno.ENOSYS, "Function not implemented")
    monkeypatch.setattr(fcntl, "flock", no_flock)
    monkeypatch.setattr(cache_mod, "HEARTBEAT_SECONDS", 0.05)
    a = EntryLock(tmp_path / "entry.lock").acquire(timeout=0)
    assert a.soft
    stamp = (tmp_path / "entry.lock.soft").stat().st_mtime
    time.sleep(0.3)
    assert (tmp_path / "entry.lock.soft").stat().st_mtime > stamp  # the holder's heartbeat
    with pytest.raises(LockBusy, match=f"pid {os.getpid()}"):
        EntryLock(tmp_path / "entry.lock").acquire(timeout=0.2, poll=0.05)
    a.release()
    EntryLock(tmp_path / "entry.lock").acquire(timeout=0).release()


def test_a_flock_wait_is_bounded_and_names_the_holder(tmp_path):
    a = EntryLock(tmp_path / "entry.lock").acquire(timeout=0)
    assert not a.soft
    t0 = time.monotonic()
    with pytest.raises(LockBusy, match=f"host {socket.gethostname()}, pid {os.getpid()}"):
        EntryLock(tmp_path / "entry.lock").acquire(timeout=0.5, poll=0.1)
    assert time.monotonic() - t0 < 5
    a.release()
    EntryLock(tmp_path / "entry.lock").acquire(timeout=0).release()
