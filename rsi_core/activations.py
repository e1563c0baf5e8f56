"""Centre-neuron activations of natural images, streamed into per-tap [images, channels] tables.

Only the centre neuron of each map is kept, so 50,000 ImageNet images for every tap of the
seven studied blocks need about 1 GB, not the images themselves.
"""
from __future__ import annotations

import os

import numpy as np
import torch
from tqdm.auto import tqdm

from .anatomy import TAP_KINDS, TapCapture
from .cache import Cache
from .images import ImageSet


def block_taps(block_names) -> list[str]:
    return [f"{b}.{k}" for b in block_names for k in TAP_KINDS]


@torch.no_grad()
def stream_centre(model, images: ImageSet, taps, device="cpu", batch_size: int = 50,
                  progress: bool = True) -> dict[str, np.ndarray]:
    """One forward pass per batch, stopped after the deepest tap."""
    workers = min(4, max(0, (os.cpu_count() or 1) - 1))
    loader = torch.utils.data.DataLoader(images, batch_size=batch_size, num_workers=workers)
    chunks = {t: [] for t in taps}
    with TapCapture(model, taps, centre=True) as cap:
        for x in tqdm(loader, desc=f"centre activations over {len(images)} images", unit="batch",
                      disable=not progress):
            for t, a in cap(x.to(device)).items():
                chunks[t].append(a.float().cpu().numpy())
    return {t: np.concatenate(c) for t, c in chunks.items()}


def natural_activations(model, images: ImageSet, block_names, cache: Cache | None = None,
                        device="cpu", batch_size: int = 50, progress: bool = True) -> dict[str, np.ndarray]:
    """Centre activations of I, B and O of ``block_names`` for every image, through the cache."""
    taps = block_taps(block_names)

    def compute():
        return stream_centre(model, images, taps, device=device, batch_size=batch_size, progress=progress)

    if cache is None:
        return compute()
    key = Cache.key("natural", weights_id=model.rsi_weights_id, model=model.rsi_model,
                    images=images.identity, taps=taps)
    return cache.get_or_compute(key, compute)


def top_k(acts: np.ndarray, k: int = 9) -> np.ndarray:
    """[channels, k] image indices, most activating first."""
    k = min(k, acts.shape[0])
    idx = np.argpartition(-acts, k - 1, axis=0)[:k].T
    order = np.argsort(-np.take_along_axis(acts.T, idx, axis=1), axis=1, kind="stable")
    return np.take_along_axis(idx, order, axis=1)
