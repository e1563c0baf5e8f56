"""Centre-neuron activations of natural images, streamed into per-tap [images, channels] tables.

Only the centre neuron of each map is copied out of each batch (TapCapture clones it), into
tables allocated once for the whole set, so memory is the tables (float32: 22 KB per image for
I, B and O of the seven studied blocks; 1.1 GB for 50,000 images) plus one batch, whatever the
number of images (benchmarks/memory.py measures it). glibc's malloc would otherwise keep every
freed batch buffer: each large block freed raises its mmap threshold, so later batches come from
heaps it does not return (about 130 KB per image, not levelling off); ``_flat_malloc`` fixes the
threshold from inside, as ``MALLOC_MMAP_THRESHOLD_=1048576`` would from outside.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

import numpy as np
import torch

from rsi_core.cache import Cache
from rsi_core.model import progress as counters
from rsi_core.model.anatomy import TapCapture, preprocess_of, provenance_of, taps_of
from rsi_core.model.device import tf32_flags
from rsi_core.model.images import ImageSet

#: glibc's mallopt parameter and the size from which a block is its own mapping, returned when freed
M_MMAP_THRESHOLD, MMAP_THRESHOLD = -3, 1 << 20


def _flat_malloc() -> bool:
    """Blocks of 1 MiB and more (a batch's maps) mapped and unmapped one by one: a fixed mmap
    threshold (glibc; DataLoader workers forked later inherit it). False where there is no glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return bool(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    except (OSError, AttributeError):  # musl and others: no mallopt
        return False


def block_taps(block_names) -> list[str]:
    return taps_of(block_names)


@torch.no_grad()
def stream_centre(model, images, taps, device="cpu", batch_size: int = 50,
                  progress: bool = True) -> dict[str, np.ndarray]:
    """One forward pass per batch, stopped after the deepest tap; ``images`` is any dataset of
    normalized [3, H, W] tensors (an ImageSet, or a synthetic stream in the benchmark)."""
    _flat_malloc()
    workers = min(4, max(0, (os.cpu_count() or 1) - 1))
    loader = torch.utils.data.DataLoader(images, batch_size=batch_size, num_workers=workers)
    tables, done = {}, 0
    with TapCapture(model, taps, centre=True) as cap, tf32_flags():  # strict fp32, whatever ran before
        for x in counters.bar(loader, desc=f"centre activations over {len(images)} images", unit="batch",
                      disable=not progress):
            for t, a in cap(x.to(device)).items():
                if t not in tables:  # filled in place: no per-batch pieces, no concatenation copy
                    tables[t] = np.empty((len(images), a.shape[1]), dtype=np.float32)
                tables[t][done:done + len(a)] = a.float().cpu().numpy()
            done += len(x)
            counters.advance(images=len(x))
    counters.flush()
    return {t: tables[t] for t in taps}


def natural_activations(model, images: ImageSet, block_names, cache: Cache | None = None,
                        device="cpu", batch_size: int = 50, progress: bool = True) -> dict[str, np.ndarray]:
    """Centre activations of I, B and O of ``block_names`` for every image, read with the
    weights' own preprocessing, through the cache."""
    taps = block_taps(block_names)
    images = images.with_preprocess(preprocess_of(model))

    def compute():
        return stream_centre(model, images, taps, device=device, batch_size=batch_size, progress=progress)

    if cache is None:
        return compute()
    return cache.get_or_compute(natural_key(model, images, block_names), compute)


def natural_key(model, images: ImageSet, block_names) -> str:
    """The cache key of ``natural_activations``' tables."""
    origin = provenance_of(model)
    return Cache.key("natural", weights_id=origin.weights_id, model=origin.model,
                     images=images.identity, taps=block_taps(block_names))


def top_k(acts: np.ndarray, k: int = 9) -> np.ndarray:
    """[channels, k] image indices, most activating first."""
    k = min(k, acts.shape[0])
    idx = np.argpartition(-acts, k - 1, axis=0)[:k].T
    order = np.argsort(-np.take_along_axis(acts.T, idx, axis=1), axis=1, kind="stable")
    return np.take_along_axis(idx, order, axis=1)


#: what each tap of an ``rsi activations`` table reads (SPEC "Blocks and taps")
TAP_SEMANTICS = {
    "I": "the block's input as the skip connection carries it: the previous block's O before its ReLU "
         "(a simple block), the downsample branch's output (a downsample block)",
    "B": "the block's own branch: the output of its last BatchNorm, before the addition",
    "O": "the block's sum I + B (ReLU(I) + B in a simple block), before the final ReLU",
    "centre": "each value is the centre neuron (H // 2, W // 2) of its channel's map",
}


def table_provenance(model, images: ImageSet, taps) -> dict:
    """What made an ``rsi activations`` file: model, weights, image set and the preprocessing it
    was read with (``preprocess``), taps and what they read, the rsi version."""
    from importlib.metadata import PackageNotFoundError, version

    from rsi_core.model.load import describe
    try:
        rsi_version = version("rsi")
    except PackageNotFoundError:  # a checkout on PYTHONPATH, not installed
        rsi_version = "unknown (not installed)"
    return {**describe(model), **images.describe(), "taps": list(taps), "tap_semantics": TAP_SEMANTICS,
            "rsi_version": rsi_version, "dtype": "float32"}


def save_tables(path, tables: dict[str, np.ndarray], files: list[str], provenance: dict) -> str:
    """``{tap: [images, channels]}`` plus ``files`` (row order) and ``provenance`` in one .npz,
    written atomically. The provenance is stored field by field (``provenance/<field>``, nested
    fields ``provenance/<field>/<key>``), each a plain array; ``load_tables`` gives it back as a dict."""
    from pathlib import Path
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
    np.savez(tmp, files=np.array(files), **_flatten(provenance, "provenance/"), **tables)
    os.replace(tmp, path)
    return str(path)


def _flatten(d: dict, prefix: str) -> dict[str, np.ndarray]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}/"))
        else:
            out[f"{prefix}{k}"] = np.asarray(v)
    return out


def load_tables(path) -> tuple[dict[str, np.ndarray], list[str], dict]:
    """(tables, files, provenance) of an ``rsi activations`` file; files written before the
    provenance was stored field by field (one JSON string) load too."""
    import json
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    files = arrays.pop("files").tolist()
    provenance: dict = json.loads(str(arrays.pop("provenance"))) if "provenance" in arrays else {}
    for key in [k for k in arrays if k.startswith("provenance/")]:
        *parents, name = key.split("/")[1:]
        node = provenance
        for p in parents:
            node = node.setdefault(p, {})
        value = arrays.pop(key)
        node[name] = value.item() if value.ndim == 0 else value.tolist()
    return arrays, files, provenance
