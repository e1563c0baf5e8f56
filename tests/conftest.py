"""Fixtures shared by the unit tests, and the ``reference`` marker: a test against the paper's own
tool (torch-lucent 0.1.8 + kornia 0.4.1, the ``[reference]`` extra) is skipped, with the reason,
only where those exact versions are not installed (CI installs them)."""
import os
from importlib import metadata

import pytest
import torch

from rsi_core.model.load import load_model


@pytest.fixture(scope="module")
def model():
    """torchvision resnet18 under ``torch.manual_seed(0)``: every test's random-init control."""
    return load_model("resnet18", "random:0")


@pytest.fixture(scope="session")
def few_images(tmp_path_factory) -> str:
    """A folder of the first 12 bundled images: natural passes and BatchNorm re-estimation stay small."""
    from rsi_core.model.images import ImageSet
    bundled, folder = ImageSet.from_dir(None), tmp_path_factory.mktemp("few-images")
    for f in bundled.files[:12]:
        (folder / f).parent.mkdir(parents=True, exist_ok=True)
        (folder / f).write_bytes((bundled.root / f).read_bytes())
    return str(folder)


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread: on a 2-core machine shared with other processes, OpenMP's
    spin-waiting threads made FZ tests up to 20x slower; one thread never costs more than 2x."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def pytest_configure(config):
    """Under ``-n N`` each worker gets its share of the cores, for torch here and for the processes
    its tests start: N workers of torch's default (every core) oversubscribe the CPU, and OpenMP's
    spinning threads made the suite about 2x slower on 2 cores (tests/test_batched.py and
    tests/test_robust.py with ``-n 2``: 225 s against 109 s). And workers steal each other's queued
    tests: xdist's ``load`` deals the first quarter of the suite in two blocks, so every ``slow`` test
    (sorted first, below) went to one worker, which ran them for 6 minutes after the other had
    nothing left (``--durations``: 2,649 worker-seconds in 1,709 s wall, 380 s of it one worker alone)."""
    if getattr(config.option, "dist", "no") == "load":  # the controller, under -n
        config.option.dist = "worksteal"
    workers = int(getattr(config, "workerinput", {}).get("workercount", 1))
    if workers > 1:
        share = max(1, (os.cpu_count() or 1) // workers)
        torch.set_num_threads(share)
        os.environ["OMP_NUM_THREADS"] = str(share)


def _reference_missing() -> str | None:
    for package, version in (("torch-lucent", "0.1.8"), ("kornia", "0.4.1")):
        try:
            found = metadata.version(package)
        except metadata.PackageNotFoundError:
            found = None
        if found != version:
            return (f"needs the [reference] extra ({package} {version}; found {found or 'none'}): "
                    "pip install -e '.[reference]'")
    return None


def pytest_collection_modifyitems(items):
    reason = _reference_missing()
    for item in items:
        if reason and item.get_closest_marker("reference"):
            item.add_marker(pytest.mark.skip(reason=reason))
    # the ``slow`` tests first (stable otherwise): under ``-n 2`` a minutes-long test dealt last kept one
    # worker busy while the other sat idle (test_units' two were among the last collected)
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
