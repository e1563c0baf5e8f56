"""What made a run: the schema of ``claims-report.json`` and the environment record it carries.

``SCHEMA`` counts changes of the report's layout that a reader (``--baseline``, ``rsi compare``,
``rsi expectations``) must know about; a report written before the field existed has layout 1.
The environment says which rsi (its version, and the git commit when run from a clone), Python,
torch, torchvision, CUDA / cuDNN and device, platform, command line and date made the run.
"""
from __future__ import annotations

import datetime
import platform
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path

SCHEMA = 1


def schema_of(report: dict) -> int:
    """A report's layout version (1 for reports written before the field existed)."""
    return int(report.get("schema", 1))


def _git(repo: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def environment(device: str | None = None) -> dict:
    """The record of this process: rsi (version; commit and whether the tree differs from it, in a
    clone), Python, torch, torchvision, CUDA / cuDNN, the device's name (GPU, else the CPU),
    platform, command line, date (UTC)."""
    import torch
    import torchvision

    repo = Path(__file__).resolve().parents[2]
    commit = _git(repo, "rev-parse", "HEAD") if (repo / ".git").exists() else None
    # the GPU's name and cuDNN's version of a run on CUDA only: asking initializes CUDA (issue 31)
    on_cuda = bool(device) and str(device).startswith("cuda")
    gpu = torch.cuda.get_device_name(torch.device(device)) if on_cuda else None
    return {
        "rsi": _version("rsi"),
        "git_commit": commit,
        "git_dirty": bool(_git(repo, "status", "--porcelain", "--untracked-files=no")) if commit else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if on_cuda and torch.backends.cudnn.is_available() else None,
        "device": device,
        "gpu": gpu,
        "cpu": platform.processor() or platform.machine(),
        "platform": platform.platform(),
        "command": shlex.join(sys.argv),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
