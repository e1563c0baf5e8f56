"""Realistic weight updates of a model, for measuring the paired regression check on what CI sees
(``rsi validate --regression``, ``rsi_core.planted.regression``).

* ``head_update``: a fine-tune of the classifier alone to ``HEAD_CLASSES`` classes (the backbone
  frozen, ``fc`` trained on the bundled images' features), saved as a checkpoint and loaded back
  the way a user's fine-tune is (``rsi_core.model.load``: the other head is left out).
* ``continued``: the whole backbone trained on for ``CONTINUED_STEPS`` SGD steps at a small
  learning rate on the bundled images (their ImageNet labels). BatchNorm's running statistics stay
  frozen (eval mode), as fine-tuning usually keeps them: at random init they are 0 and 1, and
  letting them follow the data would be no small update.

Each is cached (``Cache``, keyed by the base weights' identity and the recipe), so a rerun
studies the very same weights and finds its FZs in the cache.
"""
from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import torch

from rsi_core.cache import Cache
from rsi_core.model.anatomy import provenance_of, register
from rsi_core.model.images import ImageSet, normalize
from rsi_core.model.load import load_model, weights_identity

HEAD_CLASSES = 10
HEAD_STEPS, HEAD_LR = 100, 0.1
CONTINUED_STEPS, CONTINUED_LR, CONTINUED_BATCH = 200, 1e-3, 5
CLASS_STRIDE = 4   # the bundled sample holds every 4th ImageNet class, one image each (its README)


def bundled(limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The bundled images (normalized) and their ImageNet labels."""
    images = ImageSet.from_dir(None)
    n = min(len(images), limit or len(images))
    x = normalize(torch.stack([images[i] for i in range(n)]))
    return x, torch.arange(n) * CLASS_STRIDE


def _cached(cache: Cache, recipe: dict, base, make) -> dict:
    origin = provenance_of(base)
    key = Cache.key("update", weights_id=origin.weights_id, model=origin.model, **recipe)
    arrays = cache.get_or_compute(key, lambda: {k: v.numpy() for k, v in make().items()})
    return {k: torch.from_numpy(np.asarray(v)) for k, v in arrays.items()}


def head_update(base, cache: Cache, path) -> torch.nn.Module:
    """``base`` with its classifier replaced by a ``HEAD_CLASSES``-class one trained on the first
    images' features, saved to ``path`` and loaded from it (the backbone is ``base``'s)."""
    def make():
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            x, _ = bundled(HEAD_CLASSES)
            feats = torch.nn.Sequential(*list(base.children())[:-1])(x).flatten(1)
            fc = torch.nn.Linear(feats.shape[1], HEAD_CLASSES)
        opt = torch.optim.SGD(fc.parameters(), lr=HEAD_LR, momentum=0.9)
        for _ in range(HEAD_STEPS):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(fc(feats), torch.arange(HEAD_CLASSES)).backward()
            opt.step()
        state = {k: v for k, v in base.state_dict().items() if not k.startswith("fc.")}
        return {**state, "fc.weight": fc.weight.detach().clone(), "fc.bias": fc.bias.detach().clone()}
    state = _cached(cache, {"recipe": "head", "classes": HEAD_CLASSES, "steps": HEAD_STEPS, "lr": HEAD_LR}, base, make)
    torch.save({"model_state_dict": state, "epoch": 1}, path)  # as PyTorch's tutorial saves a checkpoint
    return load_model(provenance_of(base).model, str(path))


def continued(base, cache: Cache, steps: int = CONTINUED_STEPS, lr: float = CONTINUED_LR) -> torch.nn.Module:
    """``base`` trained on for ``steps`` SGD steps (batches of ``CONTINUED_BATCH`` bundled images,
    momentum 0.9, ``lr``), BatchNorm statistics frozen."""
    def make():
        net = copy.deepcopy(base).train()
        for m in net.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.eval()   # running statistics frozen; their affine weights train
        for p in net.parameters():
            p.requires_grad_(True)
        x, y = bundled()
        opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
        g = torch.Generator().manual_seed(0)
        for _ in range(steps):
            i = torch.randperm(len(x), generator=g)[:CONTINUED_BATCH]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x[i]), y[i]).backward()
            opt.step()
        return {k: v.detach().clone() for k, v in net.state_dict().items()}
    state = _cached(cache, {"recipe": "continued", "steps": steps, "lr": lr, "batch": CONTINUED_BATCH}, base, make)
    model = copy.deepcopy(base)
    model.load_state_dict(state)
    origin = provenance_of(base)   # the copy is a new module: registered with the base's provenance, new weights
    register(model, replace(origin, weights=f"{origin.weights}+continued{steps}x{lr:g}", weights_id=weights_identity(model)))
    return model


def relative_change(base, model) -> float:
    """||new - old|| / ||old|| over the backbone's weights (the classifier left out)."""
    num = den = 0.0
    new = model.state_dict()
    for k, v in base.state_dict().items():
        if v.is_floating_point() and not k.startswith("fc.") and k in new and new[k].shape == v.shape:
            num += float(((new[k] - v) ** 2).sum())
            den += float((v ** 2).sum())
    return (num / den) ** 0.5 if den else 0.0
