"""The weight-shuffled control, ``shuffle:SEED:<base weights>``: the base weights with their
learned arrangement destroyed.

In every conv and linear layer, for each input channel, the weights are permuted across output
channels and kernel positions (biases across output channels); in every BatchNorm layer the
affine weights and biases are permuted across channels, each with its own permutation. So each
layer keeps exactly its multiset of weight values (its distribution of magnitudes, which keeps
Figure 3's weight magnitudes meaningful) while which channel holds which value is random.
BatchNorm running statistics are then recomputed: running stats reset, a pass over
``BN_IMAGES`` evenly spaced images of the run's image folder (the default image set when none is
given) in train-mode BN with ``momentum=None`` (a plain average over the batches), then eval.
Given the base weights and the seed the result is deterministic on a device; its
provenance names the full string and its weights id hashes the new state dict, so
caches never mix a control with its base.
"""
from __future__ import annotations

import torch

from rsi_core.model.anatomy import amend, preprocess_of
from rsi_core.model.images import ImageSet
from rsi_core.model.load import load_model, weights_identity
from rsi_core.model.sources import register_source

BN_IMAGES = 256
BN_BATCH = 32


def parse_shuffle(weights: str, base: str | None = None) -> tuple[int, str]:
    """(seed, base weights) of ``shuffle:SEED:<base>``, or of ``shuffle:SEED`` with ``base``."""
    parts = str(weights).split(":", 2)
    try:
        seed = int(parts[1])
    except (IndexError, ValueError):
        raise ValueError(f"bad weights {weights!r}: a shuffled control is shuffle:SEED:<base weights>, "
                         "e.g. shuffle:1:IMAGENET1K_V1 or shuffle:1:random:0") from None
    given = parts[2] if len(parts) == 3 and parts[2] else None
    if given and base and given != base:
        raise ValueError(f"weights {weights!r} name base {given!r} but base={base!r} was passed: give one")
    if not (given or base):
        raise ValueError(f"shuffled control {weights!r} needs the weights it shuffles: "
                         f"write shuffle:{seed}:<base weights> (e.g. shuffle:{seed}:IMAGENET1K_V1)")
    return seed, given or base


def _permute_per_input(w: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Permute ``w`` ([out, in, ...]) across output channels and positions, separately for each
    input channel; a 1-d tensor is permuted across its entries."""
    if w.dim() == 1:
        return w[torch.randperm(w.numel(), generator=g)]
    cols = w.transpose(0, 1).reshape(w.shape[1], -1)           # [in, out * positions]
    order = torch.argsort(torch.rand(cols.shape, generator=g), dim=1)
    shuffled = torch.gather(cols, 1, order)
    rest = (w.shape[0],) + tuple(w.shape[2:])
    return shuffled.reshape((w.shape[1],) + rest).transpose(0, 1).contiguous()


@torch.no_grad()
def shuffle_weights(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Shuffle ``model``'s conv, linear and BatchNorm affine parameters in place (module docstring)."""
    g = torch.Generator().manual_seed(seed)
    for _, module in sorted(model.named_modules(), key=lambda nm: nm[0]):
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            params = [module.weight] + ([module.bias] if module.bias is not None else [])
        elif isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and module.affine:
            params = [module.weight, module.bias]
        else:
            continue
        for p in params:
            p.copy_(_permute_per_input(p.detach().cpu(), g).to(p.device, p.dtype))
    return model


@torch.no_grad()
def recompute_bn_stats(model: torch.nn.Module, images, device="cpu", n: int | None = None,
                       batch: int = BN_BATCH) -> int:
    """Reset every BatchNorm's running statistics and re-estimate them as the plain average over
    batches of ``n`` evenly spaced images of ``images``; the model is left in eval mode.
    Returns how many images were used."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    n = min(n or BN_IMAGES, len(images))
    idx = [int(i * len(images) / n) for i in range(n)]
    saved = [(m.momentum, m.training) for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    try:
        for s in range(0, n, batch):
            x = torch.stack([images[i] for i in idx[s:s + batch]]).to(device)
            model(x)
    finally:
        for m, (momentum, _) in zip(bns, saved):
            m.momentum = momentum
        model.eval()
    return n


@register_source("shuffle", kind="control", example="shuffle:1:IMAGENET1K_V1")
def shuffled_model(name: str, weights: str, device="cpu", base: str | None = None, images=None):
    """The ``shuffle:SEED:<base>`` control of ``name`` (see the module docstring)."""
    seed, base = parse_shuffle(weights, base)
    model = load_model(name, base, device)
    shuffle_weights(model, seed)
    images = (images if images is not None else ImageSet.from_dir(None))
    if isinstance(images, ImageSet):  # read as the base weights were trained to see them
        images = images.with_preprocess(preprocess_of(model))
    used = recompute_bn_stats(model, images, device)
    amend(model, weights=f"shuffle:{seed}:{base}", weights_id=weights_identity(model),
          control={"kind": "shuffle", "seed": seed, "base": base, "bn_images": used})
    return model
