"""Planted residual networks: torchvision-shaped ResNets with hand-set weights, so that every
channel's role (skip, overwrite, mix, scale invariant, decoy) is known in advance.

The same anatomy, FZ and metric code that runs on ResNet18 runs on them: a planted network has
``conv1``/``bn1``/``relu``/``maxpool`` and ``layer1`` = [1.0, 1.1], ``layer2`` = [2.0] made of
torchvision ``BasicBlock`` s (2.0 with a ``downsample``), so its studied blocks are a simple block
(1.1, I = pre-ReLU output of 1.0) and a downsample block (2.0, I = the downsample BN).

How the weights make a channel's role (every tap is linear in one luminance map):

* The stem (``conv1`` 4x4 stride 4, identity ``maxpool``) turns the image into a luminance map
  ``L = 4 (box(mean RGB) - 1/2)`` on a 57x57 grid (4 pixels per unit; the centre unit sits on
  the image centre, where S and S_inv zoom), carried by channel 0 as ``L + 4`` so that it
  survives every ReLU (zero-sum kernels cancel the offset).
* Channels ``1..n`` of a studied block are planted detectors on ``L``:
  ``I_c = g_I * (D_c * L)`` (written by block 1.0's branch for 1.1; for 2.0 by 1.0 into helper
  channels ``n+1..2n``, offset by +8, which layer1 passes on and 2.0's 1x1 downsample reads) and
  ``B_c = g_B * ((F_c - eta D_c) * L)`` (the block's own branch: ``conv1`` 1x1 copies the carrier,
  ``conv2`` KxK holds the kernels, ``bn2``'s weight is the gain ``g_B``). Every BN is an exact
  affine map (running mean 0, variance 1, eps 0).
* Kernels are zero-sum and scaled so that the best response any image can give (pixels at 0 or
  1 by the sign of the kernel seen in pixels) is ``BEST_RESPONSE`` = 4 per unit of gain: the
  gains, not the patterns, set how strongly I and B can drive O.
* Patterns (``rsi_core.planted.patterns``): a centre-surround ``dot`` (disc of radius s,
  annulus to s*sqrt(2), equal areas) and
  an oriented ``bar`` (centre strip of half-width s, flanks to 2s, half-length 1.5s); a seeded
  random ``texture`` serves as an unrelated decoy's B. A dot or bar at s lies inside the uniform
  centre of the same pattern at 2s, so on ideal stimuli the two scales' detectors ignore each
  other and ``M ~ g_I / g_B``.

Roles (``Channel.role``), per studied block:

* ``skip``: branch silenced (``g_B`` 0 or 0.05-0.2). M high.
* ``overwrite``: branch dominant (``g_B`` 4-8); ``inhibit``: dominant and subtracting the
  input's feature (``eta g_B`` = 2 ``g_I``), so ``B_c(X_I) < 0``. M low.
* ``mix``: balanced gains (``g_B / g_I`` 0.8-1.25), B tuned to the opposite polarity at 2s.
* ``scale``: I tuned to a pattern at s, B to the same pattern at 2s, balanced: the only role
  whose output is scale invariant in the paper's sense (the positives).
* ``decoy-same-scale``: B tuned to the same pattern at the same scale, balanced.
* ``decoy-unrelated``: B tuned to another pattern at 2s, balanced; ``kind``: ``polarity``
  (OFF vs ON), ``orientation`` (bar turned 90 degrees), ``oblique`` (bar turned 45 degrees),
  ``family`` (dot vs bar), ``texture`` (a random pattern), or ``scale1.5`` (the same pattern
  at 1.5s instead of 2s: the right feature at the wrong scale). ``HELD_OUT_KINDS`` (``scale3``:
  a dot at 3s: a bar at 3s does not fit the kernel) are never in the benchmark the strict test was tuned on: only the fresh
  draw (``fresh_spec``) has them.

Scales are in map units: a pattern of scale s is 4s pixels; I patterns run 1.25-2.8 units.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch
from torch import nn
from torchvision.models.resnet import BasicBlock

from rsi_core.model import load
from rsi_core.model.images import MEAN, STD
from rsi_core.planted.patterns import (  # noqa: F401
    BAR_LENGTH,
    BEST_RESPONSE,
    FAMILIES,
    INPUT_KERNEL,
    KERNEL,
    LUM_GAIN,
    TEXTURE_BUMPS,
    UNIT,
    Pattern,
    best_response,
    pixel_kernel,
)

CARRIER = 0              # the stream channel carrying L + CARRIER_BIAS
CARRIER_BIAS = 4.0       # > max |L|: the carrier survives every ReLU
HELPER_BIAS = 8.0        # > any detector's response: helper channels survive every ReLU
STUDIED_BLOCKS = ("1.1", "2.0")
ROLES = ("skip", "overwrite", "inhibit", "mix", "scale", "decoy-same-scale", "decoy-unrelated")
UNRELATED_KINDS = ("polarity", "orientation", "oblique", "family", "texture", "scale1.5")
HELD_OUT_KINDS = ("scale3",)
FRESH_SEED = 1000        # fresh draws are benchmark seeds FRESH_SEED + k, never used for tuning


# --------------------------------------------------------------------------------- channels


@dataclass(frozen=True)
class Channel:
    """One planted channel of a studied block: ``I = gain_i * (i * L)``,
    ``B = gain_b * ((b - inhibit * i) * L)`` (``*`` a convolution at the block's centre)."""
    role: str
    i: Pattern
    b: Pattern
    gain_i: float = 1.0
    gain_b: float = 1.0
    inhibit: float = 0.0
    kind: str = ""          # decoy-unrelated: polarity / orientation / family

    def __post_init__(self):
        if self.role not in ROLES:
            raise ValueError(f"unknown role {self.role!r}: one of {', '.join(ROLES)}")
        if self.inhibit and self.gain_b <= 0:
            raise ValueError("an inhibiting branch needs gain_b > 0")

    @property
    def scale_invariant(self) -> bool:
        """Ground truth: O responds to the same pattern at s (through I) and 2s (through B)."""
        return self.role == "scale"

    def describe(self) -> dict:
        d = asdict(self)
        d.update(i=self.i.short(), b=self.b.short(), scale_invariant=self.scale_invariant)
        return d


def make_channel(role: str, pattern: Pattern, gain_b: float = 1.0, gain_i: float = 1.0,
                 kind: str = "", inhibit: float = 0.0, texture_seed: int = 1) -> Channel:
    """A channel of ``role`` whose I detects ``pattern`` (at its scale s): B's pattern follows
    from the role (2s for scale/skip/overwrite/mix/unrelated decoys, s for the same-scale decoy;
    ``texture_seed`` picks the texture of a ``texture`` decoy)."""
    p = pattern
    if role in ("scale", "skip", "overwrite", "inhibit"):
        b = p.at(2)
    elif role == "mix":
        b = p.at(2).flipped()
    elif role == "decoy-same-scale":
        b = p
    elif role == "decoy-unrelated":
        kind = kind or "polarity"
        if kind == "polarity":
            b = p.at(2).flipped()
        elif kind in ("orientation", "oblique"):
            if p.family == "dot":
                raise ValueError("an orientation decoy needs a bar (or a texture)")
            b = p.at(2).turned(90 if kind == "orientation" else 45)
        elif kind in ("scale1.5", "scale3"):
            b = p.at(float(kind[len("scale"):]))
        elif kind == "family":
            b = replace(p.at(2), family="bar" if p.family == "dot" else "dot", angle=0.0)
        elif kind == "texture":
            b = Pattern("texture", p.scale * 2, polarity=p.polarity, seed=int(texture_seed))
        else:
            raise ValueError(f"unknown decoy kind {kind!r}: one of {', '.join(UNRELATED_KINDS + HELD_OUT_KINDS)}")
    else:
        raise ValueError(f"unknown role {role!r}")
    if role == "inhibit" and not inhibit:
        inhibit = 2.0 * gain_i / gain_b  # twice what it takes to cancel the input's feature
    return Channel(role, p, b, gain_i=gain_i, gain_b=gain_b, inhibit=inhibit, kind=kind)


@dataclass(frozen=True)
class PlantedSpec:
    """Channels of each studied block ("1.1", "2.0"); both blocks get the same number of
    planted channels (a block listed with fewer is padded with silent channels)."""
    blocks: dict = field(default_factory=dict)  # block name -> tuple[Channel, ...]
    name: str = ""

    def __post_init__(self):
        unknown = set(self.blocks) - set(STUDIED_BLOCKS)
        if unknown:
            raise ValueError(f"planted networks study blocks {STUDIED_BLOCKS}, not {sorted(unknown)}")

    @property
    def n(self) -> int:
        return max((len(c) for c in self.blocks.values()), default=0)

    def channels(self, block: str) -> list[int]:
        """Stream channel ids of the planted channels of ``block`` (see ``layout``)."""
        return layout(self.n)["planted"][:len(self.blocks.get(block, ()))]

    def roles(self, block: str) -> list[Channel]:
        return list(self.blocks.get(block, ()))

    def describe(self) -> dict:
        return {"name": self.name, "blocks": {b: [c.describe() for c in chans] for b, chans in self.blocks.items()}}

    def identity(self) -> str:
        return hashlib.sha256(json.dumps(self.describe(), sort_keys=True).encode()).hexdigest()[:12]


# --------------------------------------------------------------------------------- network


def narrow_block(width: int, stride: int, kernel: int, inplanes: int | None = None) -> BasicBlock:
    """A torchvision ``BasicBlock`` of ``width`` output channels (``inplanes`` in, default the
    same) whose branch is one 1x1 conv to a single unit and one ``kernel`` conv back (the planted
    patterns live in its weights); a 1x1 downsample when ``stride`` is 2."""
    inplanes = inplanes or width
    downsample = None
    if stride != 1:
        downsample = nn.Sequential(nn.Conv2d(inplanes, width, 1, stride=stride, bias=False), nn.BatchNorm2d(width))
    blk = BasicBlock(inplanes, width, stride=stride, downsample=downsample)
    blk.conv1 = nn.Conv2d(inplanes, 1, 1, bias=False)
    blk.bn1 = nn.BatchNorm2d(1)
    blk.conv2 = nn.Conv2d(1, width, kernel, stride=stride, padding=kernel // 2, bias=False)
    blk.bn2 = nn.BatchNorm2d(width)
    return blk


def add_stem(net: nn.Module, width: int) -> None:
    """torchvision's stem modules for a planted network: a 4x4 stride-4 ``conv1`` (the box
    filter, set by ``luminance_stem``), ``bn1``, ``relu`` and an identity ``maxpool``."""
    net.conv1 = nn.Conv2d(3, width, UNIT, stride=UNIT, padding=UNIT // 2, bias=False)
    net.bn1 = nn.BatchNorm2d(width)
    net.relu = nn.ReLU(inplace=True)
    net.maxpool = nn.MaxPool2d(kernel_size=1, stride=1, padding=0)


class PlantedResNet(nn.Module):
    """conv1 / bn1 / relu / maxpool / layer1 (1.0, 1.1) / layer2 (2.0) / avgpool, as torchvision's.

    The stem is a 4x4 stride-4 box filter (so the 57x57 map's centre unit sits exactly on the
    image centre, where S and S_inv zoom) and an identity max-pool. Every block's branch is
    ``conv1`` 1x1 (copies the carrier), ``bn1``, ReLU (a no-op: the carrier is positive),
    ``conv2`` KxK (carrier -> detectors), ``bn2`` (the gains). 2.0 takes its stride in ``conv2``,
    so its detectors are laid out on the same grid as 1.1's, and its ``downsample`` is a 1x1
    stride-2 conv + BN as in torchvision.
    """

    def __init__(self, width: int):
        super().__init__()
        add_stem(self, width)

        self.layer1 = nn.Sequential(narrow_block(width, 1, INPUT_KERNEL), narrow_block(width, 1, KERNEL))
        self.layer2 = nn.Sequential(narrow_block(width, 2, KERNEL))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer2(self.layer1(x))
        return torch.flatten(self.avgpool(x), 1)


def set_bn(bn: nn.BatchNorm2d, weight, bias=None) -> None:
    """Eval-mode BN as an exact affine map: y = weight * x + bias."""
    bn.eps = 0.0
    bn.running_mean.zero_()
    bn.running_var.fill_(1.0)
    bn.weight.copy_(torch.as_tensor(np.asarray(weight), dtype=torch.float32))
    bn.bias.copy_(torch.zeros_like(bn.bias) if bias is None else torch.as_tensor(np.asarray(bias), dtype=torch.float32))


def _detector_branch(blk: BasicBlock, kernels: dict, gains: dict) -> None:
    """Set a block's branch so that B[c] = gains[c] * (kernels[c] * L); every other channel's
    branch is 0 (a skip). The branch reads the carrier L + CARRIER_BIAS: zero-sum kernels cancel
    the bias."""
    width = blk.bn2.num_features
    w1 = torch.zeros_like(blk.conv1.weight)
    w1[0, CARRIER, 0, 0] = 1.0
    w2 = torch.zeros_like(blk.conv2.weight)
    gain = np.zeros(width)
    for c, k in kernels.items():
        w2[c, 0] = torch.as_tensor(k, dtype=torch.float32)
        gain[c] = gains[c]
    blk.conv1.weight.copy_(w1)
    set_bn(blk.bn1, np.ones(1))
    blk.conv2.weight.copy_(w2)
    set_bn(blk.bn2, gain)


def layout(n: int) -> dict:
    """Stream channels of a network with ``n`` planted channels per block: the carrier (0),
    the planted channels (ids ``1 .. n`` in both studied blocks) and the channels that carry
    2.0's input detectors through layer1 (skip channels of 1.1, not studied)."""
    return {"carrier": CARRIER, "planted": list(range(1, n + 1)),
            "helpers": list(range(n + 1, 2 * n + 1)), "width": 2 * n + 1}


def luminance_stem(model: nn.Module, width: int, bias=None) -> None:
    """Zero every conv, then set the stem: carrier = L + CARRIER_BIAS, L = LUM_GAIN * (box(mean
    RGB) - 1/2), from the normalized input; ``bias`` (per channel) is added after the stem."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            m.weight.zero_()
    for k in range(3):
        model.conv1.weight[CARRIER, k] = LUM_GAIN * STD[k] / 3 / UNIT ** 2
    total = np.zeros(width) if bias is None else np.array(bias, dtype=np.float64)
    total[CARRIER] += LUM_GAIN * (sum(MEAN) / 3 - 0.5) + CARRIER_BIAS
    set_bn(model.bn1, np.ones(width), total)


@torch.no_grad()
def build(spec: PlantedSpec) -> nn.Module:
    """The planted network of ``spec``, in eval mode, parameters frozen, registered with its provenance
    (name, weights, weights id: the FZ bank cache keys)."""
    lay = layout(spec.n)
    width, planted, helpers = lay["width"], lay["planted"], lay["helpers"]
    model = PlantedResNet(width)
    # helpers start at HELPER_BIAS (so that block 1.0 can write signed values they keep)
    bias = np.zeros(width)
    bias[helpers] = HELPER_BIAS
    luminance_stem(model, width, bias)

    b10, b11 = model.layer1
    b20 = model.layer2[0]
    c11, c20 = spec.roles("1.1"), spec.roles("2.0")
    # 1.0's branch writes I of 1.1 and (on the helpers) 2.0's input detectors
    kernels, gains = {}, {}
    for j, ch in enumerate(c11):
        kernels[planted[j]], gains[planted[j]] = ch.i.kernel(INPUT_KERNEL), ch.gain_i
    for j, ch in enumerate(c20):
        kernels[helpers[j]], gains[helpers[j]] = ch.i.kernel(INPUT_KERNEL), 1.0
    _detector_branch(b10, kernels, gains)
    # 1.1's branch: B of 1.1; carrier and helpers pass (branch 0 on them)
    _detector_branch(b11, {planted[j]: ch.b.kernel() - ch.inhibit * ch.i.kernel() for j, ch in enumerate(c11)},
                     {planted[j]: ch.gain_b for j, ch in enumerate(c11)})
    # 2.0: the downsample writes I = g_I (helper - HELPER_BIAS), the branch writes B
    ds_conv, ds_bn = b20.downsample
    weight, bias = np.zeros(width), np.zeros(width)
    for j, ch in enumerate(c20):
        ds_conv.weight[planted[j], helpers[j], 0, 0] = 1.0
        weight[planted[j]], bias[planted[j]] = ch.gain_i, -ch.gain_i * HELPER_BIAS
    ds_conv.weight[CARRIER, CARRIER, 0, 0] = 1.0  # keep the carrier for any later block
    weight[CARRIER] = 1.0
    set_bn(ds_bn, weight, bias)
    _detector_branch(b20, {planted[j]: ch.b.kernel() - ch.inhibit * ch.i.kernel() for j, ch in enumerate(c20)},
                     {planted[j]: ch.gain_b for j, ch in enumerate(c20)})

    finish(model, "planted", f"planted:{spec.name or spec.identity()}")
    return model


def finish(model: nn.Module, name: str, weights: str, lists=None) -> None:
    """Eval mode, frozen parameters, and the provenance the FZ bank's cache keys read (no
    channel lists but ``lists``: the paper's are resnet18's)."""
    load.finish(model, name, weights, lists=lists or {})


# --------------------------------------------------------------------------------- random specs

MIN_SCALE = 1.25         # map units: 5 px, below which the 4-px grid cannot draw a pattern


def fits(ch: Channel) -> bool:
    """Both detectors fit their kernels (I: INPUT_KERNEL, B: KERNEL)."""
    return ch.i.extent() <= INPUT_KERNEL // 2 and ch.b.extent() <= KERNEL // 2


def random_pattern(rng: np.random.Generator, family: str = "dot", max_scale: float | None = None) -> Pattern:
    """A dot or a bar at a random scale (up to what fits the input kernel, or ``max_scale``),
    polarity and angle. Textures are only drawn as an unrelated decoy's B: a texture's detector
    responds to the texture zoomed 2x too, so "tuned to s, not to 2s" would not hold for it."""
    hi = (INPUT_KERNEL // 2) / Pattern(family, 1.0).extent()
    hi = min(hi, max_scale) if max_scale else hi
    return Pattern(family=family, scale=math.floor(float(rng.uniform(MIN_SCALE, hi)) * 1000) / 1000,
                   polarity=int(rng.choice([1, -1])),
                   angle=float(rng.choice([0, 45, 90, 135])) if family != "dot" else 0.0,
                   seed=int(rng.integers(1 << 16)) if family == "texture" else 0)


def random_channel(rng: np.random.Generator, role: str, kind: str = "", gain_b: float | None = None) -> Channel:
    """A channel of ``role`` with a random pattern and a branch gain drawn inside the role's
    range (input gain 1): balanced roles g_B in [0.8, 1.25] (log-uniform); skip 0 (30%) or
    [0.05, 0.2]; overwrite and inhibit [4, 8]."""
    if gain_b is None:
        if role in ("scale", "mix", "decoy-same-scale", "decoy-unrelated"):
            gain_b = float(np.exp(rng.uniform(math.log(0.8), math.log(1.25))))
        elif role == "skip":
            gain_b = 0.0 if rng.random() < 0.3 else float(rng.uniform(0.05, 0.2))
        else:
            gain_b = float(rng.uniform(4, 8))
    family = "bar" if kind in ("orientation", "oblique") else "dot" if kind == "scale3" else str(rng.choice(["dot", "bar"]))
    # B at 2s must fit the block kernel; a family decoy's B is the other family
    b_family = {"dot": "bar", "bar": "dot"}[family] if kind == "family" else family
    max_scale = (KERNEL // 2) / Pattern(b_family, 3.0 if kind == "scale3" else 2.0).extent()
    ch = make_channel(role, random_pattern(rng, family, max_scale), gain_b=round(gain_b, 4), kind=kind,
                      texture_seed=int(rng.integers(1 << 16)))
    assert fits(ch), ch
    return ch


def benchmark_roles() -> list[tuple[str, str]]:
    """The planted benchmark's composition per block: (role, decoy kind). Three positives,
    one decoy of each kind, and one channel of every other role."""
    return [("scale", ""), ("scale", ""), ("scale", ""),
            ("decoy-same-scale", ""), *[("decoy-unrelated", k) for k in UNRELATED_KINDS],
            ("skip", ""), ("overwrite", ""), ("inhibit", ""), ("mix", "")]


def random_spec(seed: int, roles=None, blocks=STUDIED_BLOCKS, name: str | None = None) -> PlantedSpec:
    """A planted network with ``roles`` ((role, kind) pairs; default ``benchmark_roles()``) in
    each of ``blocks``, shuffled, patterns and gains drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    roles = list(roles or benchmark_roles())
    out = {}
    for b in blocks:
        order = rng.permutation(len(roles))
        out[b] = tuple(random_channel(rng, *roles[i]) for i in order)
    return PlantedSpec(blocks=out, name=name or f"random-{seed}")


def benchmark_spec(seed: int) -> PlantedSpec:
    """Network ``seed`` of the planted benchmark (``rsi validate``)."""
    return random_spec(seed, name=f"benchmark-{seed}")


def fresh_spec(k: int) -> PlantedSpec:
    """Fresh network ``k`` for the strict test's held-out check: new seeds (so new positions,
    patterns and gains) and, beside the benchmark's roles, the decoy kinds never used while its
    thresholds were chosen (``HELD_OUT_KINDS``)."""
    roles = benchmark_roles() + [("decoy-unrelated", kind) for kind in HELD_OUT_KINDS]
    return random_spec(FRESH_SEED + k, roles=roles, name=f"fresh-{k}")
