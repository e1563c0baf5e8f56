"""Device choice: each pytest-xdist worker its own GPU, within the visible devices."""
import pytest
import torch

from rsi_core.model import device as dev


@pytest.fixture
def gpus(monkeypatch):
    """``n`` visible GPUs; ``current`` records what resolve_device made the current device."""
    current = []

    def set_count(n):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: n)
        monkeypatch.setattr(torch.cuda, "set_device", current.append)
        return current
    return set_count


@pytest.mark.parametrize("worker,count,expected", [
    ("gw0", 4, "cuda:0"), ("gw1", 4, "cuda:1"), ("gw3", 4, "cuda:3"), ("gw5", 4, "cuda:1"),
    ("gw1", 1, "cuda:0"), (None, 2, "cuda:0")])
def test_each_worker_takes_its_own_visible_gpu(gpus, monkeypatch, worker, count, expected):
    current = gpus(count)
    if worker is None:
        monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    else:
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
    assert dev.resolve_device(None) == expected
    assert current == [int(expected.split(":")[1])]  # and it is the process's current CUDA device
    assert dev.resolve_device("cuda") == expected


def test_visible_devices_are_respected(gpus, monkeypatch):
    """torch numbers only the visible devices: with CUDA_VISIBLE_DEVICES=2,3 it sees two, and
    worker gw1 takes the second of them (index 1), never an index beyond them."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    gpus(2)
    for k in range(6):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", f"gw{k}")
        assert dev.resolve_device(None) == f"cuda:{k % 2}"


def test_explicit_devices_win_and_cpu_without_gpu(gpus, monkeypatch):
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw3")
    gpus(4)
    assert dev.resolve_device("cuda:2") == "cuda:2"
    assert dev.resolve_device("cpu") == "cpu"
    gpus(0)
    assert dev.resolve_device(None) == "cpu"
    with pytest.raises(ValueError, match="no CUDA device"):
        dev.resolve_device("cuda")


def test_worker_index_reads_only_xdist_names(monkeypatch):
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw12")
    assert dev.worker_index() == 12
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "master")
    assert dev.worker_index() is None
