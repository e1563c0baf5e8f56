"""Residual-block anatomy: blocks named ``L.K`` and their taps I, B, O (SPEC "Blocks and taps").

A tap is named ``"L.K.T"`` (``"3.1.B"``). O is the block's real sum (before the ReLU, in a
family that has one): O = I + B in a downsample block and O = ReLU(I) + B in a ResNet's simple
block, whose I is the previous block's O taken before its ReLU (the paper's footnote 2); a
ConvNeXt adds I itself. Each family (``rsi_core.model.families``) names its blocks and the
modules the taps hook. Taps are read with forward hooks and clones, never by editing the model:
torchvision adds the identity into the branch's output in place and applies an in-place ReLU, so
an un-cloned hook would see ReLU(O) instead of B.
"""
from __future__ import annotations

from functools import cache

import torch
from torch import nn

from rsi_core.model.families import Block, family_of, last_bn, path_of  # noqa: F401  (re-exported: the anatomy's names)
from rsi_core.paper import IMAGE_SIZE

TAP_KINDS = ("I", "B", "O")


def blocks(model: nn.Module) -> list[Block]:
    """Every residual block of the model, in forward order, as its family names them."""
    return family_of(model).walk(model)


def block_roles(model: nn.Module) -> dict[str, list[str]]:
    """The blocks the paper studies, by role, for any model family (claims name roles, not
    resnet18 indices): ``downsample`` (the downsample block of stages 2-4; none in a ConvNeXt),
    ``simple`` (the first simple block after the first block of stages 1-3, as the paper's 1.1,
    2.1, 3.1), ``final`` (the last block) and ``studied`` (all of them, in forward order).
    resnet18 gives the paper's 1.1, 2.0, 2.1, 3.0, 3.1, 4.0, 4.1; resnet34 and resnet50 end in
    4.2, convnext_tiny studies 1.1, 2.1, 3.1, 4.2."""
    found = blocks(model)
    stage = lambda b: int(b.name.split(".")[0])  # noqa: E731
    down = [b.name for b in found if b.kind == "downsample" and stage(b) in (2, 3, 4) and b.name.endswith(".0")]
    simple = []
    for s in (1, 2, 3):
        first = next((b.name for b in found if stage(b) == s and b.kind == "simple" and not b.name.endswith(".0")),
                     None)
        if first:
            simple.append(first)
    final = [found[-1].name]
    chosen = set(down) | set(simple) | set(final)
    return {"downsample": down, "simple": simple, "final": final,
            "studied": [b.name for b in found if b.name in chosen]}


def find_block(model: nn.Module, name: str) -> Block:
    for b in blocks(model):
        if b.name == name:
            return b
    raise KeyError(f"unknown block {name!r}: this model has blocks {', '.join(b.name for b in blocks(model))}")


def parse_tap(tap: str) -> tuple[str, str]:
    """``"3.1.B"`` -> ``("3.1", "B")``."""
    block, _, kind = tap.rpartition(".")
    if kind not in TAP_KINDS or block.count(".") != 1:
        raise ValueError(f"bad tap {tap!r}: taps are BLOCK.T with T in I, B, O, e.g. 3.1.B")
    return block, kind


def canonical_tap(model, tap: str) -> str:
    """The tap an FZ of ``tap`` is rendered for: a simple block's I is the previous block's O
    (the same tensor: one FZ, one cache entry), every other tap is itself."""
    name, kind = parse_tap(tap)
    all_blocks = blocks(model)
    i = all_blocks.index(find_block(model, name))
    if kind == "I" and all_blocks[i].i_is_prev_o:
        return f"{all_blocks[i - 1].name}.O"
    return tap


def tap_path(model: nn.Module, tap: str) -> tuple:
    """(kernel, stride, padding) of the longest path from the image to the tap."""
    name, kind = parse_tap(tap)
    b = find_block(model, name)
    if kind in ("B", "O"):
        return b.convs
    return b.input_path + path_of(b.shortcut)


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


def centre_crop_window(model: nn.Module, tap: str, height: int, width: int):
    return _centre_crop_window(tap_path(model, tap), height, width)


def describe_blocks(model: nn.Module, size: int = IMAGE_SIZE) -> list[dict]:
    """The block table of ``rsi blocks``: per block its roles and hook points, per tap its
    channels, map size, centre and receptive field."""
    rows, roles = [], block_roles(model)
    for b in blocks(model):
        taps = {}
        for kind in TAP_KINDS:
            tap = f"{b.name}.{kind}"
            path = tap_path(model, tap)
            n = map_size(path, size)
            lo, hi = input_window(path, n // 2)
            taps[kind] = {"channels": b.channels, "size": [n, n], "centre": [n // 2, n // 2],
                          "receptive_field": hi - lo + 1, "stride": stride(path),
                          "window": [lo, hi]}
        rows.append({"block": b.name, "kind": b.kind, "channels": b.channels, "taps": taps,
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
    return {"I": i, "B": f"output of {names[id(b.branch_end)]}", "O": f"{skip} + B",
            "output": "ReLU(O)" if b.relu else "O"}


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
        all_blocks = blocks(model)
        self._next = {b.name: nxt for b, nxt in zip(all_blocks, all_blocks[1:] + [None])}
        self._last = max(self._ready_after(all_blocks, t) for t in self.taps)
        self._handles, self._acts, self._state = [], {}, {}
        for i, b in enumerate(all_blocks[: self._last + 1]):
            self._hook_block(i, b, i == self._last)

    @staticmethod
    def _ready_after(all_blocks: list, tap: str) -> int:
        """Index of the block whose end makes ``tap`` available (a simple block's I is the
        previous block's O, so it needs no part of its own block)."""
        name, kind = parse_tap(tap)
        names = [b.name for b in all_blocks]
        if name not in names:
            raise KeyError(f"unknown block {name!r}: this model has blocks {', '.join(names)}")
        i = names.index(name)
        return i - 1 if kind == "I" and all_blocks[i].i_is_prev_o else i

    def _keep(self, tap: str, t: torch.Tensor) -> None:
        if tap in self.taps:
            # clone: a view of the centre would keep the whole map (and the batch's maps) alive
            self._acts[tap] = t[:, :, t.shape[2] // 2, t.shape[3] // 2].clone() if self.centre else t

    def _hook_block(self, i: int, b: Block, last: bool) -> None:
        st = self._state
        m = b.module

        def pre(_mod, args):
            if b.shortcut is None and not b.i_is_prev_o:  # I is the block's input (the stem's, a stage's downsample's)
                st["input"] = args[0]

        def on_branch(_mod, _args, out):
            st["B"] = out.clone()  # the block adds the identity into this tensor in place

        def on_shortcut(_mod, _args, out):
            st["I"] = out.clone()

        def post(_mod, _args, _out):
            if b.shortcut is not None:
                i_t = st.pop("I")
            else:
                i_t = st["prev_O"] if b.i_is_prev_o else st.pop("input")
            b_t = st.pop("B")
            # a simple block of a ReLU family adds its (post-ReLU) input: I is kept pre-ReLU (SPEC, footnote 2)
            o_t = (torch.relu(i_t) if b.relu and b.shortcut is None else i_t) + b_t
            self._keep(f"{b.name}.I", i_t)
            self._keep(f"{b.name}.B", b_t)
            self._keep(f"{b.name}.O", o_t)
            nxt = self._next[b.name]
            if nxt is not None and nxt.i_is_prev_o:
                self._keep(f"{nxt.name}.I", o_t)
            st["prev_O"] = o_t
            if last and self.stop:
                raise _Stop

        self._handles += [m.register_forward_pre_hook(pre), b.branch_end.register_forward_hook(on_branch),
                          m.register_forward_hook(post)]
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
