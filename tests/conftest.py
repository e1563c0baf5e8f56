"""Fixtures shared by the unit tests."""
import pytest
import torch

from rsi_core.model.load import load_model


@pytest.fixture(scope="module")
def model():
    """torchvision resnet18 under ``torch.manual_seed(0)``: every test's random-init control."""
    return load_model("resnet18", "random:0")


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread: on a 2-core machine shared with other processes, OpenMP's
    spin-waiting threads made FZ tests up to 20x slower; one thread never costs more than 2x."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
