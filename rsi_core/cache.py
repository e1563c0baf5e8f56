"""Content-addressed on-disk cache of numpy arrays, safe under concurrent pytest-xdist workers.

An entry is one ``.npz`` file named by the sha256 of its key fields (which always include the
algorithm version). Writes go to a temporary file that is renamed into place, so a reader never
sees half an entry; a per-entry file lock makes concurrent askers compute it once. A corrupt
entry is reported, deleted and recomputed.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from filelock import FileLock

ALGORITHM_VERSION = 4  # bump when a computation's result changes (2: per-channel FZ streams, canonical taps, FZ
# targets; 3: one CPU thread, batched cone never of one, transforms over the window; 4: BatchNorms
# folded into the cone's convolutions)


class CorruptEntryWarning(UserWarning):
    pass


def default_root() -> Path:
    return Path(os.environ.get("RSI_CACHE") or Path.home() / ".cache" / "rsi")


def _plain(value):
    """JSON form of numpy scalars and arrays (so np.int64(3) keys like 3), else ``str``."""
    return value.tolist() if isinstance(value, (np.generic, np.ndarray)) else str(value)


class Cache:
    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root else default_root()
        self.root.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def key(namespace: str, **fields) -> str:
        blob = json.dumps({"namespace": namespace, "version": ALGORITHM_VERSION, **fields},
                          sort_keys=True, default=_plain)
        return f"{namespace}-{hashlib.sha256(blob.encode()).hexdigest()[:32]}"

    def path(self, key: str) -> Path:
        return self.root / key.rsplit("-", 1)[0] / f"{key}.npz"

    def lock(self, key: str) -> FileLock:
        p = self.path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        return FileLock(str(p) + ".lock")

    def load(self, key: str) -> dict[str, np.ndarray] | None:
        """The entry's arrays, or None when absent or corrupt (a corrupt file is removed)."""
        p = self.path(key)
        if not p.exists():
            return None
        try:
            with np.load(p, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            if json.loads(str(arrays.pop("__key__"))) != key:
                raise ValueError("entry holds another key")
            return arrays
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            warnings.warn(f"cache entry {p} is corrupt ({type(exc).__name__}: {exc}); "
                          "removing it and computing it again", CorruptEntryWarning, stacklevel=2)
            p.unlink(missing_ok=True)
            return None

    def save(self, key: str, arrays: dict[str, np.ndarray]) -> None:
        p = self.path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=p.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, __key__=np.array(json.dumps(key)), **arrays)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, p)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get_or_compute(self, key: str, compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        """Load ``key``, or compute and store it; concurrent callers compute it once."""
        found = self.load(key)
        if found is not None:
            return found
        with self.lock(key):
            found = self.load(key)  # another process may have finished while we waited
            if found is not None:
                return found
            arrays = {k: np.asarray(v) for k, v in compute().items()}
            self.save(key, arrays)
            return arrays
