"""The one place that chooses the device a process computes on.

Under pytest-xdist each worker (``PYTEST_XDIST_WORKER=gw0, gw1, ...``) takes its own GPU: worker
k uses visible device k mod the device count. ``CUDA_VISIBLE_DEVICES`` is respected because
torch numbers only the devices it makes visible, so ``CUDA_VISIBLE_DEVICES=2,3 pytest -n 2``
puts gw0 on physical GPU 2 and gw1 on GPU 3.
"""
from __future__ import annotations

import contextlib
import os
import re
import warnings

import torch
from torch.utils._python_dispatch import TorchDispatchMode


def worker_index() -> int | None:
    """The pytest-xdist worker number (gw3 -> 3), None outside xdist."""
    m = re.fullmatch(r"gw(\d+)", os.environ.get("PYTEST_XDIST_WORKER", ""))
    return int(m.group(1)) if m else None


def resolve_device(arg: str | None = None) -> str:
    """``arg`` if it names a device fully (``cpu``, ``cuda:1``); ``cuda`` (or nothing, when a GPU
    is visible) becomes the worker's own GPU under xdist, else ``cuda:0``, made the process's
    current CUDA device; else ``cpu``."""
    if arg and arg != "cuda":
        return arg
    if not torch.cuda.is_available():
        if arg == "cuda":
            raise ValueError("--device cuda asked for, but torch sees no CUDA device: "
                             "check CUDA_VISIBLE_DEVICES and the torch build, or pass --device cpu")
        return "cpu"
    index = (worker_index() or 0) % torch.cuda.device_count()
    torch.cuda.set_device(index)  # torch's own queries (the optimizer's stream check) stay on this GPU too
    return f"cuda:{index}"


@contextlib.contextmanager
def tf32_flags(matmul: bool = False, cudnn: bool = False):
    """CUDA's TF32 switches (matmul, cuDNN convolutions) set for one block of work and restored
    after, so a render's precision never leaks into what runs next. The default is strict fp32:
    natural-image measurement runs under it (torch's own default lets cuDNN use TF32). On a CPU
    the switches change nothing."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


# operations that make the host wait for a GPU: a value read back, an output sized by the data,
# a linear-algebra error check, a tensor made from host data (a blocking copy to the device)
_WAITING_OPS = {"_local_scalar_dense", "nonzero", "masked_select", "_linalg_check_errors", "lift_fresh"}


class _HostWaits(TorchDispatchMode):
    def __init__(self, waits: list):
        super().__init__()
        self.waits = waits

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.name().split("::")[-1].split(".")[0] in _WAITING_OPS:
            self.waits.append(func.name())
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def host_waits(device):
    """The list of what made (CUDA: torch's synchronization warnings) or would make (CPU: the
    operations of ``_WAITING_OPS`` dispatched) the host wait for a GPU inside the block; it is
    filled when the block ends."""
    waits = []
    if torch.device(device).type == "cuda":
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                yield waits
            finally:
                torch.cuda.set_sync_debug_mode("default")
        waits.extend(str(w.message) for w in caught if "synchroniz" in str(w.message))
    else:
        with _HostWaits(waits):
            yield waits
