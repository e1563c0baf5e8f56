"""Content-addressed on-disk cache of numpy arrays, safe under concurrent pytest-xdist workers.

An entry is one ``.npz`` file named by the sha256 of its key fields (which always include the
algorithm version). Writes go to a temporary file that is renamed into place, so a reader never
sees half an entry; a per-entry file lock makes concurrent askers compute it once. A corrupt
entry is reported, deleted and recomputed.

Locks (``EntryLock``) never hang: a wait is bounded (``LOCK_WAIT_SECONDS``, then ``LockBusy``
names the holder's host, pid and age), a holder writes who it is into the lock and beats a
heartbeat, and a lock whose holder died on this host, or whose heartbeat stopped
``STALE_SECONDS`` ago on any host, is broken. It is the kernel's ``flock`` where the filesystem
has it (released when its holder dies) and else a soft lock (a file created exclusively), as on
Lustre mounted without flock.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import socket
import tempfile
import threading
import time
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

ALGORITHM_VERSION = 4  # bump when a computation's result changes (2: per-channel FZ streams, canonical taps, FZ
# targets; 3: one CPU thread, batched cone never of one, transforms over the window; 4: BatchNorms
# folded into the cone's convolutions)


class CorruptEntryWarning(UserWarning):
    pass


#: the longest a process waits for a lock another holds before giving up with ``LockBusy``
LOCK_WAIT_SECONDS = 6 * 3600.0
#: a lock whose heartbeat is older than this is its dead holder's (any host), and is broken
STALE_SECONDS = 600.0
#: seconds between two heartbeats of a held lock
HEARTBEAT_SECONDS = 30.0
_HOST = socket.gethostname()


class LockBusy(TimeoutError):
    """A lock still held by a live process after the wait allowed."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


class EntryLock:
    """A lock file: ``flock`` on it where the filesystem has flock, else a soft lock (``path``
    created exclusively, ``soft`` forces it). The holder's host, pid and start time are written
    into it and its modification time is a heartbeat (a thread touches it while held)."""

    def __init__(self, path, soft: bool | None = None):
        self.path = Path(path)
        self.soft = bool(os.environ.get("RSI_SOFT_LOCKS")) if soft is None else soft
        self.fd, self.beat = None, None

    @property
    def where(self) -> Path:
        """The lock file: the soft lock has its own (a failed flock attempt leaves ``path`` behind)."""
        return Path(f"{self.path}.soft") if self.soft else self.path

    def holder(self) -> str:
        """'host H, pid P, held for S s, heartbeat T s ago' of the lock file, or '' when unreadable."""
        try:
            info, age = json.loads(self.where.read_text()), time.time() - self.where.stat().st_mtime
        except (OSError, ValueError):
            return ""
        return (f"host {info.get('host')}, pid {info.get('pid')}, held for {time.time() - info.get('since', 0):.0f} s, "
                f"heartbeat {age:.0f} s ago")

    def _stale(self) -> bool:
        """The holder is dead: on this host its pid is gone; anywhere its heartbeat stopped."""
        try:
            info, age = json.loads(self.where.read_text()), time.time() - self.where.stat().st_mtime
        except FileNotFoundError:
            return False
        except (OSError, ValueError):  # written half-way by a holder that died at once
            age, info = time.time() - self.where.stat().st_mtime, {}
            return age > 5.0
        if info.get("host") == _HOST and not _alive(int(info.get("pid", 0))):
            return True
        return age > STALE_SECONDS

    def _record(self, fd) -> None:
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"host": _HOST, "pid": os.getpid(), "since": time.time()}).encode(), 0)

    def _try(self) -> bool:
        if not self.soft:
            fd = os.open(self.where, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            except OSError as exc:  # no flock on this filesystem: the soft lock instead
                os.close(fd)
                if exc.errno not in (errno.ENOSYS, errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
                    raise
                self.soft = True
                return self._try()
        else:
            try:
                fd = os.open(self.where, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                if self._stale():  # break it; two breakers racing cost at most work done twice (same bytes)
                    self.where.unlink(missing_ok=True)
                return False
        self._record(fd)
        self.fd = fd
        return True

    def acquire(self, timeout: float | None = None, poll: float = 0.5) -> EntryLock:
        """Take the lock; wait at most ``timeout`` s (None: ``LOCK_WAIT_SECONDS``; 0: one try), then
        ``LockBusy`` naming the holder."""
        timeout = LOCK_WAIT_SECONDS if timeout is None or timeout < 0 else timeout
        start = time.monotonic()
        while not self._try():
            if time.monotonic() - start >= timeout:
                raise LockBusy(f"{self.where} is held by {self.holder() or 'an unknown process'} (waited {timeout:.0f} s): "
                               f"it is alive, so wait for it; a dead holder's lock is broken after {STALE_SECONDS:.0f} s "
                               f"without a heartbeat, or remove the file")
            time.sleep(min(poll, max(0.0, timeout - (time.monotonic() - start))))
        self.beat = threading.Event()
        threading.Thread(target=self._heartbeat, args=(self.beat,), daemon=True).start()
        return self

    def _heartbeat(self, stop: threading.Event) -> None:
        while not stop.wait(HEARTBEAT_SECONDS):
            try:
                os.utime(self.where)
            except OSError:  # broken as stale meanwhile (a heartbeat lost to a stalled filesystem)
                return

    def release(self) -> None:
        if self.fd is None:
            return
        self.beat.set()
        if self.soft:
            self.where.unlink(missing_ok=True)
        else:
            os.ftruncate(self.fd, 0)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = None

    def __enter__(self) -> EntryLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def atomic_write(path: Path, write: Callable) -> Path:
    """``write(f)`` into a temporary file beside ``path`` (binary), synced and renamed into place:
    a reader never sees half a file, and an interrupted write leaves no temporary file behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


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

    def lock(self, key: str) -> EntryLock:
        p = self.path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        return EntryLock(str(p) + ".lock")

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
        atomic_write(self.path(key), lambda f: np.savez(f, __key__=np.array(json.dumps(key)), **arrays))

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
