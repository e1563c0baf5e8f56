"""A model's anatomy, built once at load: its residual blocks ``L.K``, their roles and taps I,
B, O, each tap's receptive field, and the model's provenance (SPEC "Blocks and taps").

One record per model (``Anatomy``, TransformerLens' ``HookedRootModule.setup``: the hook points
found once): ``load_model`` registers it with the model's ``Provenance`` (torchvision's
``Weights.meta``: name, weights, weights id, preprocessing, named lists, control); a model built
elsewhere gets its anatomy on first use, without provenance, and whatever needs one (a cache key,
a report) then says so instead of assuming resnet18. The record is kept beside the module (a weak
map), never as attributes on it.

Tap names have one grammar, built only here: ``tap("3.1", "B")`` is ``"3.1.B"``
(TransformerLens' ``get_act_name``), and a cache entry's field for a block's tap is
``entry_field("3.1", "B")``, ``"3.1:B"`` (the grammar entries were written with: kept, so a
filled cache is read as it is).

O is the block's real sum (before the ReLU, in a family that has one): O = I + B in a
downsample block and O = ReLU(I) + B in a ResNet's simple block, whose I is the previous block's
O taken before its ReLU (the paper's footnote 2); a ConvNeXt and a ViT sublayer add I itself.
Each family (``rsi_core.model.families``) names its blocks and the modules the taps hook. Taps
are read with forward hooks and clones, never by editing the model: torchvision adds the
identity into the branch's output in place and applies an in-place ReLU, so an un-cloned hook
would see ReLU(O) instead of B. A transformer's token sequences [N, T, C] are read as maps
[N, C, H, W] of its patch tokens (``Block.tokens``).
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass, field, replace
from functools import cache, cached_property

import torch
from torch import nn

from rsi_core.model.families import (  # noqa: F401  (re-exported: the anatomy's names)
    CLASS_TOKEN,
    Block,
    Family,
    family_of,
    last_bn,
    path_of,
    with_studied,
)
from rsi_core.model.images import Preprocess
from rsi_core.paper import IMAGE_SIZE

TAP_KINDS = ("I", "B", "O")


# ------------------------------------------------------------------------------------- tap names
def tap(block: str, kind: str) -> str:
    """The name of tap ``kind`` of ``block``: ``tap("3.1", "B") == "3.1.B"``. The only place a
    tap name is built."""
    if kind not in TAP_KINDS:
        raise ValueError(f"bad tap kind {kind!r}: one of {', '.join(TAP_KINDS)}")
    return f"{block}.{kind}"


def taps_of(block_names, kinds=TAP_KINDS) -> list[str]:
    """Every tap ``kinds`` of every block, block by block."""
    return [tap(b, k) for b in block_names for k in kinds]


def parse_tap(name: str) -> tuple[str, str]:
    """``"3.1.B"`` -> ``("3.1", "B")``."""
    block, _, kind = name.rpartition(".")
    if kind not in TAP_KINDS or block.count(".") != 1:
        raise ValueError(f"bad tap {name!r}: taps are BLOCK.T with T in I, B, O, e.g. 3.1.B")
    return block, kind


def block_of(name: str) -> str:
    return parse_tap(name)[0]


def entry_field(block: str, kind: str) -> str:
    """The field of an FZ cache entry holding ``block``'s tap ``kind`` re-measured on the FZ."""
    return f"{block}:{kind}"


# ------------------------------------------------------------------------------------ provenance
@dataclass(frozen=True)
class Provenance:
    """What made a loaded model, written beside every result and read by every cache key."""
    model: str                      # the --model name
    weights: str                    # what the user asked for (random:0, IMAGENET1K_V1, a path, ...)
    weights_id: str                 # sha256 of the state dict (load.weights_identity): cache keys use it
    preprocess: Preprocess          # the normalization the weights were trained with
    lists: dict | None = None       # the channels the paper (or a planted case) names, per figure
    control: dict | None = None     # a control's recipe (a shuffle's seed, base, BatchNorm images)
    head: str | None = None         # a classifier head the checkpoint did not fit, left out (said in reports)


# --------------------------------------------------------------------------------------- anatomy
def stage_roles(found) -> dict[str, list[str]]:
    """The blocks the paper studies, by role, for a staged network (claims name roles, not
    resnet18 indices): ``downsample`` (the downsample block of stages 2-4; none in a ConvNeXt),
    ``simple`` (the first simple block after the first block of stages 1-3, as the paper's 1.1,
    2.1, 3.1), ``final`` (the last block) and ``studied`` (all of them, in forward order).
    resnet18 gives the paper's 1.1, 2.0, 2.1, 3.0, 3.1, 4.0, 4.1; resnet34 and resnet50 end in
    4.2, convnext_tiny studies 1.1, 2.1, 3.1, 4.2."""
    stage = lambda b: int(b.name.split(".")[0])  # noqa: E731
    down = [b.name for b in found if b.kind == "downsample" and stage(b) in (2, 3, 4) and b.name.endswith(".0")]
    simple = []
    for s in (1, 2, 3):
        first = next((b.name for b in found if stage(b) == s and b.kind == "simple" and not b.name.endswith(".0")),
                     None)
        if first:
            simple.append(first)
    return with_studied(found, {"downsample": down, "simple": simple, "final": [found[-1].name]})


#: the premise of the scale claims: I sees less of the image than B (SPEC, criteria 2 and 3)
SCALE_PREMISE = "scale-rf"


@dataclass(frozen=True, eq=False)
class Anatomy:
    """One model's blocks, roles and taps, found once; its provenance where rsi loaded it."""
    family: Family
    blocks: tuple
    provenance: Provenance | None = field(default=None)

    @cached_property
    def roles(self) -> dict[str, list[str]]:
        return (self.family.roles or stage_roles)(list(self.blocks))

    @property
    def class_token(self) -> bool:
        """A transformer read at its class token (``--model NAME+cls``) instead of its centre patch."""
        return self.provenance is not None and self.provenance.model.endswith(CLASS_TOKEN)

    @cached_property
    def _index(self) -> dict[str, int]:
        return {b.name: i for i, b in enumerate(self.blocks)}

    @property
    def origin(self) -> Provenance:
        """The provenance; a model rsi did not load has none, and this says so (never resnet18's)."""
        if self.provenance is None:
            raise ValueError(f"this {type(self.blocks[0].module).__name__}-based model was not loaded by rsi "
                             "(rsi_core.model.load.load_model): it has no name, weights or weights id to key "
                             "results by; load it with load_model(name, weights)")
        return self.provenance

    def index(self, name: str) -> int:
        try:
            return self._index[name]
        except KeyError:
            raise KeyError(f"unknown block {name!r}: this model has blocks {', '.join(self._index)}") from None

    def find(self, name: str) -> Block:
        return self.blocks[self.index(name)]

    def canonical(self, name: str) -> str:
        """The tap an FZ of ``name`` is rendered for, and the tensor it reads: a block whose I is
        the previous block's O (a simple block) has that O as its I (the same tensor: one FZ,
        one cache entry); every other tap is itself. The rule, written once."""
        block, kind = parse_tap(name)
        i = self.index(block)
        if kind == "I" and self.blocks[i].i_is_prev_o:
            return tap(self.blocks[i - 1].name, "O")
        return name

    def aliases(self, name: str) -> list[str]:
        """Every tap name of the tensor ``canonical(name)``: an O is also the next block's I
        where that block's I is its previous block's O."""
        canonical = self.canonical(name)
        block, kind = parse_tap(canonical)
        i = self.index(block)
        nxt = self.blocks[i + 1] if i + 1 < len(self.blocks) else None
        return [canonical] + ([tap(nxt.name, "I")] if kind == "O" and nxt is not None and nxt.i_is_prev_o else [])

    def ready_after(self, name: str) -> int:
        """Index of the block whose end makes tap ``name`` available."""
        return self.index(block_of(self.canonical(name)))

    def path(self, name: str) -> tuple:
        """(kernel, stride, padding) of the longest path from the image to the tap (a token
        mixing layer counts as a kernel that spans the token grid)."""
        block, kind = parse_tap(name)
        b = self.find(block)
        if kind in ("B", "O"):
            return b.convs
        return b.input_path + path_of(b.shortcut)

    def receptive_field(self, name: str, size: int = IMAGE_SIZE, clip: bool = False) -> int:
        """Side in pixels of the input the centre neuron of tap ``name`` sees in a ``size``
        image (``clip``: only the part inside the image)."""
        path = self.path(name)
        lo, hi = input_window(path, map_size(path, size) // 2)
        if clip:
            lo, hi = max(lo, 0), min(hi, size - 1)
        return hi - lo + 1

    def reach(self, name: str, size: int = IMAGE_SIZE) -> int:
        """The receptive field the scale claims compare: the tap's (``receptive_field``), or the
        whole ``size`` image once an operation on its path spans its whole input map (a ViT's
        attention: every token sees every token, at any image size)."""
        path, n = self.path(name), size
        for k, s, p in path:
            if s == 1 and k >= 2 * n - 1 and p >= n - 1:
                return size
            n = (n + 2 * p - k) // s + 1
        return self.receptive_field(name, size)

    def missing(self, premise: str) -> str | None:
        """Why this model lacks ``premise`` (a claim's reason for "n/a"), or None: a premise its
        family lacks, a role it has no block for, or the scale claims' premise (``SCALE_PREMISE``:
        in every block where they expect scale invariance, I's ``reach`` smaller than B's)."""
        reason = self.family.lacks.get(premise)
        if reason is None and premise in self.roles and not self.roles[premise]:
            reason = f"{self.provenance.model if self.provenance else self.family.name} has no {premise} block"
        if reason is None and premise == SCALE_PREMISE:
            flat = [f"{b} (I {self.reach(tap(b, 'I'))} px, B {self.reach(tap(b, 'B'))} px)" for b in self.scale_blocks()
                    if self.reach(tap(b, "I")) >= self.reach(tap(b, "B"))]
            if flat:
                reason = (f"I's receptive field is not smaller than B's in {', '.join(flat)}: the scale claims read B "
                          "as I's feature at twice the scale, which needs B to see more of the image than I")
        return reason

    def scale_blocks(self) -> list[str]:
        """The blocks where the scale claims expect scale-invariant channels (the simple blocks
        and the first downsample block: fig5's "many")."""
        r = self.roles
        return list(dict.fromkeys(r["simple"][:1] + r["downsample"][:1] + r["simple"][1:]))


_RECORDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def anatomy_of(model: nn.Module) -> Anatomy:
    """The model's anatomy: the one registered at load, else built now (once) without provenance."""
    found = _RECORDS.get(model)
    if found is None:
        family = family_of(model)
        found = _RECORDS[model] = Anatomy(family, tuple(family.walk(model)))
    return found


def register(model: nn.Module, provenance: Provenance) -> Anatomy:
    """Record ``model``'s anatomy with its provenance (``load_model`` and every source that
    makes weights; a source that changes the weights registers the new provenance)."""
    anatomy = _RECORDS[model] = replace(anatomy_of(model), provenance=provenance)
    return anatomy


def provenance_of(model: nn.Module) -> Provenance:
    return anatomy_of(model).origin


def amend(model: nn.Module, **changes) -> Provenance:
    """Register ``model``'s provenance with ``changes`` (new weights, lists, control)."""
    return register(model, replace(provenance_of(model), **changes)).provenance


def preprocess_of(model: nn.Module) -> Preprocess:
    """The normalization and resizing the weights were trained with: the provenance's (the
    checkpoint's own where the loader found one), else the family's."""
    record = anatomy_of(model)
    return record.provenance.preprocess if record.provenance else record.family.preprocess(model)


def premise_missing(model: nn.Module, premise: str) -> str | None:
    return anatomy_of(model).missing(premise)


def blocks(model: nn.Module) -> list[Block]:
    """Every residual block of the model, in forward order, as its family names them."""
    return list(anatomy_of(model).blocks)


def block_roles(model: nn.Module) -> dict[str, list[str]]:
    return anatomy_of(model).roles


def find_block(model: nn.Module, name: str) -> Block:
    return anatomy_of(model).find(name)


def canonical_tap(model, name: str) -> str:
    return anatomy_of(model).canonical(name)


def tap_path(model: nn.Module, name: str) -> tuple:
    return anatomy_of(model).path(name)


def map_size(path: tuple, size: int = IMAGE_SIZE) -> int:
    for k, s, p in path:
        size = (size + 2 * p - k) // s + 1
    return size


def input_window(path: tuple, index: int) -> tuple[int, int]:
    """Input pixel range [lo, hi] (inclusive, may pass the border) seen by output ``index``."""
    lo = hi = index
    for k, s, p in reversed(path):
        lo, hi = lo * s - p, hi * s - p + k - 1
    return lo, hi


def stride(path: tuple) -> int:
    out = 1
    for _, s, _ in path:
        out *= s
    return out


def aligned_window(path: tuple, n: int, index: int) -> tuple[int, int, int]:
    """[start, stop) of an n-long input holding all that output ``index`` of ``path`` depends on,
    its start a multiple of the path's stride (so every later grid stays aligned), and the
    output's index in the cut map."""
    total = stride(path)
    lo, hi = input_window(path, index)
    start = max(0, lo) // total * total
    return start, min(n, hi + 1), index - start // total


@cache
def _centre_crop_window(path: tuple, height: int, width: int):
    """Aligned crop of an HxW input holding the whole receptive field of the centre neuron,
    and that neuron's index in the cropped map; None when cropping would save nothing."""
    (y0, y1, cy), (x0, x1, cx) = (aligned_window(path, n, map_size(path, n) // 2) for n in (height, width))
    if (y1 - y0) * (x1 - x0) >= 0.9 * height * width:
        return None
    return (y0, y1, x0, x1), (cy, cx)


def centre_crop_window(model: nn.Module, name: str, height: int, width: int):
    return _centre_crop_window(tap_path(model, name), height, width)


def describe_blocks(model: nn.Module, size: int = IMAGE_SIZE) -> list[dict]:
    """The block table of ``rsi blocks``: per block its roles and hook points, per tap its
    channels, map size, centre, receptive field (the path's; inside the image; ``reach``: the
    whole image past an operation spanning its input map, as attention)."""
    record = anatomy_of(model)
    rows, roles = [], record.roles
    for b in record.blocks:
        taps = {}
        for kind in TAP_KINDS:
            path = record.path(tap(b.name, kind))
            n = map_size(path, size)
            lo, hi = input_window(path, n // 2)
            if b.tokens is not None and record.class_token:  # one token, seeing what the centre patch sees
                n = 1
            taps[kind] = {"channels": b.channels, "size": [n, n], "centre": [n // 2, n // 2],
                          "receptive_field": hi - lo + 1, "stride": stride(path), "window": [lo, hi],
                          "receptive_field_in_image": min(hi, size - 1) - max(lo, 0) + 1,
                          "reach": record.reach(tap(b.name, kind), size)}
        rows.append({"block": b.name, "kind": b.kind, **({"part": b.part} if b.part else {}),
                     "channels": b.channels, "taps": taps,
                     "roles": [r for r, names in roles.items() if r != "studied" and b.name in names],
                     "hooks": hook_points(model, b)})
    return rows


def hook_points(model: nn.Module, b: Block) -> dict[str, str]:
    """Where each tap of ``b`` is read, in module names (TransformerLens-style hook points)."""
    names = {id(m): n for n, m in model.named_modules()}
    block = names[id(b.module)]
    if b.shortcut is not None:
        i = f"output of {names[id(b.shortcut)]}"
    elif b.i_is_prev_o:
        i = "the previous block's O"
    else:
        i = f"input of {block}"
    skip = "ReLU(I)" if b.relu and b.shortcut is None else "I"
    out = {"I": i, "B": f"output of {names[id(b.branch_end)]}", "O": f"{skip} + B",
           "output": "ReLU(O)" if b.relu else "O"}
    if b.tokens is not None and anatomy_of(model).class_token:
        out["centre"] = "the class token (token 0), read as a 1 x 1 map"
    elif b.tokens is not None:
        out["centre"] = (f"patch token (H // 2, W // 2) of the token grid (after {b.tokens} prefix token(s)): "
                         f"for an even grid the lower-right of the four central patches; --model NAME{CLASS_TOKEN} "
                         "reads the class token")
    return out


def token_map(t: torch.Tensor, prefix: int, class_token: bool = False) -> torch.Tensor:
    """A transformer's [N, T, C] tokens as the [N, C, H, W] map of its patch tokens (the first
    ``prefix`` tokens, class and distillation tokens, left out; a square grid), or with
    ``class_token`` its class token (token 0) as a 1 x 1 map."""
    n, count, c = t.shape
    if class_token:
        if not prefix:
            raise ValueError(f"this transformer has no class token: drop {CLASS_TOKEN} from --model")
        return t[:, :1].transpose(1, 2).unsqueeze(-1)
    side = int(round((count - prefix) ** 0.5))
    if side * side != count - prefix:
        raise ValueError(f"{count - prefix} patch tokens are no square grid: rsi reads square images")
    return t[:, prefix:].transpose(1, 2).reshape(n, c, side, side)


class _Stop(Exception):
    """Raised inside a hook to end the forward pass once the deepest tap needed is read."""


class TapCapture:
    """Read taps during a forward pass, TransformerLens-style: ``acts = capture(x)`` returns
    ``{"1.1.B": tensor, ...}``. The pass stops after the last tap needed. With ``centre=True``
    only the centre neuron of each map is kept (shape [N, C]).

    Use as a context manager, or call ``close()``, to remove the hooks.
    """

    def __init__(self, model: nn.Module, taps, centre: bool = False, stop: bool = True):
        self.model, self.centre, self.stop = model, centre, stop
        self.taps = list(dict.fromkeys(taps))
        self.record = anatomy_of(model)
        all_blocks = self.record.blocks
        self._last = max(self.record.ready_after(t) for t in self.taps)
        self._handles, self._acts, self._state = [], {}, {}
        for i, b in enumerate(all_blocks[: self._last + 1]):
            self._hook_block(i, b, i == self._last)

    def _keep(self, name: str, t: torch.Tensor, b: Block) -> None:
        if name in self.taps:
            if b.tokens is not None:
                t = token_map(t, b.tokens, self.record.class_token)
            # clone: a view of the centre would keep the whole map (and the batch's maps) alive
            self._acts[name] = t[:, :, t.shape[2] // 2, t.shape[3] // 2].clone() if self.centre else t

    def _hook_block(self, i: int, b: Block, last: bool) -> None:
        st, record = self._state, self.record
        m = b.module

        def pre(_mod, args):
            if b.shortcut is None and not b.i_is_prev_o:  # I is the block's input (the stem's, a stage's downsample's)
                st[b.name, "input"] = args[0]

        def on_branch(_mod, _args, out):
            st[b.name, "B"] = out.clone()  # the block adds the identity into this tensor in place

        def on_shortcut(_mod, _args, out):
            st[b.name, "I"] = out.clone()

        def post(_mod, _args, _out):
            if b.shortcut is not None:
                i_t = st.pop((b.name, "I"))
            else:
                i_t = st["prev_O"] if b.i_is_prev_o else st.pop((b.name, "input"))
            b_t = st.pop((b.name, "B"))
            # a simple block of a ReLU family adds its (post-ReLU) input: I is kept pre-ReLU (SPEC, footnote 2)
            o_t = (torch.relu(i_t) if b.relu and b.shortcut is None else i_t) + b_t
            self._keep(tap(b.name, "I"), i_t, b)
            self._keep(tap(b.name, "B"), b_t, b)
            for name in record.aliases(tap(b.name, "O")):
                self._keep(name, o_t, b)
            st["prev_O"] = o_t
            if last and self.stop:
                raise _Stop

        if not b.i_is_prev_o and b.shortcut is None:
            self._handles.append(m.register_forward_pre_hook(pre))
        self._handles += [b.branch_end.register_forward_hook(on_branch), m.register_forward_hook(post)]
        if b.shortcut is not None:
            self._handles.append(b.shortcut.register_forward_hook(on_shortcut))

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        self._acts = {}
        try:
            self.model(x)
        except _Stop:
            pass
        finally:
            self._state.clear()
        return self._acts

    @property
    def acts(self) -> dict[str, torch.Tensor]:
        """The taps of the latest forward pass, also when the model was called directly (as
        lucent's ``render_vis`` does, with ``stop=False``)."""
        return self._acts

    def close(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_taps(model: nn.Module, x: torch.Tensor, taps, centre: bool = False) -> dict[str, torch.Tensor]:
    """One-off ``TapCapture``."""
    with TapCapture(model, taps, centre=centre) as cap:
        return cap(x)
