"""Block anatomy: the I, B, O taps against torchvision's own forward pass.

Conventions under test (rsi_core/anatomy.py, SPEC "Blocks and taps"):

* B is the output of the block's last BatchNorm, before the identity is added (torchvision adds
  it in place, so the tap must be a clone).
* I is what the block adds to B. In a downsample block it is the ``downsample`` branch's
  output. In a simple block it is the previous block's O taken **pre-ReLU** (the paper's
  footnote 2); the block itself adds ReLU(I), which is what torchvision feeds it.
* O is the pre-ReLU sum: O = I + B in a downsample block and O = ReLU(I) + B in a simple block,
  so ReLU(O) is the block's real output.

Every relation is checked against plain forward hooks on torchvision's modules, never against
TapCapture's own arithmetic alone.
"""
import json

import pytest
import torch

from rsi_core.harness import cli
from rsi_core.model.anatomy import (
    TapCapture,
    blocks,
    centre_crop_window,
    describe_blocks,
    find_block,
    last_bn,
    parse_tap,
    provenance_of,
    read_taps,
)
from rsi_core.model.load import load_model
from rsi_core.paper import PAPER_BLOCKS

RF_PAPER = {"1.0": 27, "1.1": 43, "2.0": 67, "2.1": 99, "3.0": 147, "3.1": 211, "4.0": 307, "4.1": 435}
CHANNELS = {"1": 64, "2": 128, "3": 256, "4": 512}
CENTRE = {"1": 28, "2": 14, "3": 7, "4": 3}


@pytest.fixture(scope="module")
def resnet18():
    return load_model("resnet18", "random:0")


@pytest.fixture(scope="module", params=["resnet18", "resnet50"])
def any_model(request):
    return load_model(request.param, "random:0")


def _close(a, b, atol=1e-6, msg=""):
    """Max-abs comparison (torch.testing.assert_close is slow on this CPU)."""
    assert a.shape == b.shape, f"{msg} shapes {tuple(a.shape)} != {tuple(b.shape)}"
    err = (a - b).abs().max().item()
    assert err <= atol, f"{msg} max |a - b| = {err:.3g} > {atol}"


def _plain_hooks(model):
    """Independent reference: clones of every block's input, output, last-BN output and
    downsample output, and of the stem's max-pool output."""
    ref, handles = {}, []

    def save(key, pre=False):
        if pre:
            return lambda _m, args: ref.__setitem__(key, args[0].detach().clone())
        return lambda _m, _a, out: ref.__setitem__(key, out.detach().clone())

    handles.append(model.maxpool.register_forward_hook(save("stem")))
    for b in blocks(model):
        handles.append(b.module.register_forward_pre_hook(save(f"{b.name}.in", pre=True)))
        handles.append(b.module.register_forward_hook(save(f"{b.name}.out")))
        handles.append(last_bn(b.module).register_forward_hook(save(f"{b.name}.bn")))
        if b.module.downsample is not None:
            handles.append(b.module.downsample.register_forward_hook(save(f"{b.name}.ds")))
    return ref, handles


@pytest.fixture(scope="module")
def taps_and_reference(any_model):
    """All taps of all blocks read by TapCapture, and the plain-hook reference, one forward."""
    model = any_model
    torch.manual_seed(0)
    x = torch.randn(1, 3, 64, 64)
    ref, handles = _plain_hooks(model)  # registered first: they run before TapCapture's
    all_taps = [f"{b.name}.{k}" for b in blocks(model) for k in "IBO"]
    try:
        with TapCapture(model, all_taps, stop=False) as cap:
            acts = cap(x)
    finally:
        for h in handles:
            h.remove()
    return model, acts, ref


def test_every_tap_is_read(taps_and_reference):
    model, acts, _ = taps_and_reference
    assert set(acts) == {f"{b.name}.{k}" for b in blocks(model) for k in "IBO"}
    for b in blocks(model):
        for k in "IBO":
            assert acts[f"{b.name}.{k}"].shape[1] == b.channels


def test_relu_of_O_is_the_block_output(taps_and_reference):
    model, acts, ref = taps_and_reference
    for b in blocks(model):
        _close(torch.relu(acts[f"{b.name}.O"]), ref[f"{b.name}.out"], atol=1e-6, msg=f"block {b.name}")


def test_B_is_the_last_batchnorm_before_the_addition(taps_and_reference):
    model, acts, ref = taps_and_reference
    for b in blocks(model):
        _close(acts[f"{b.name}.B"], ref[f"{b.name}.bn"], atol=0)
        # B really is pre-addition: it differs from the block output wherever the skip is non-zero
        assert not torch.allclose(acts[f"{b.name}.B"], ref[f"{b.name}.out"])


def test_O_is_I_plus_B_or_relu_I_plus_B(taps_and_reference):
    """O = I + B (downsample block) or O = ReLU(I) + B (simple block), where a simple block's I
    is the previous block's pre-ReLU O (footnote 2), so ReLU(I) is the block's real input."""
    model, acts, ref = taps_and_reference
    bl = blocks(model)
    for i, b in enumerate(bl):
        I, B, O = (acts[f"{b.name}.{k}"] for k in "IBO")
        if b.kind == "downsample":
            _close(I, ref[f"{b.name}.ds"], atol=0)
            _close(O, I + B, atol=1e-6)
        else:
            _close(O, torch.relu(I) + B, atol=1e-6)
            _close(torch.relu(I), ref[f"{b.name}.in"], atol=1e-6)
            if i > 0:
                # pre-ReLU: I is the previous block's O itself, negative values included
                _close(I, acts[f"{bl[i - 1].name}.O"], atol=0)
                assert (I < 0).any(), f"{b.name}.I should keep the negative pre-ReLU values"


def test_first_block_taps(taps_and_reference):
    """1.0 takes its input from the stem's max-pool: in resnet18 (simple block) 1.0.I is the
    max-pool output; in resnet50 (1.0 has a downsample branch) it is that branch's output."""
    model, acts, ref = taps_and_reference
    first = blocks(model)[0]
    assert first.name == "1.0"
    _close(ref["1.0.in"], ref["stem"], atol=0)
    if provenance_of(model).model == "resnet18":
        assert first.kind == "simple"
        _close(acts["1.0.I"], ref["stem"], atol=0)
    else:
        assert first.kind == "downsample"
        _close(acts["1.0.I"], ref["1.0.ds"], atol=0)
    _close(torch.relu(acts["1.0.O"]), ref["1.0.out"], atol=1e-6)


def test_centre_mode_keeps_the_centre_neuron(resnet18):
    x = torch.randn(1, 3, 224, 224)
    full = read_taps(resnet18, x, ["2.1.B", "3.0.I"])
    centre = read_taps(resnet18, x, ["2.1.B", "3.0.I"], centre=True)
    for tap, t in full.items():
        assert centre[tap].shape == t.shape[:2]
        _close(centre[tap], t[:, :, t.shape[2] // 2, t.shape[3] // 2])


def test_block_table_matches_spec(resnet18):
    rows = describe_blocks(resnet18)
    assert [r["block"] for r in rows] == ["1.0", "1.1", "2.0", "2.1", "3.0", "3.1", "4.0", "4.1"]
    assert [r["block"] for r in rows if r["block"] in PAPER_BLOCKS] == list(PAPER_BLOCKS)
    for r in rows:
        layer, k = r["block"].split(".")
        assert r["kind"] == ("downsample" if k == "0" and layer != "1" else "simple")
        assert r["channels"] == CHANNELS[layer]
        n = CENTRE[layer]
        for t in "IBO":
            assert r["taps"][t]["channels"] == CHANNELS[layer]
            assert r["taps"][t]["size"] == [2 * n if n != 3 else 7] * 2
            assert r["taps"][t]["centre"] == [n, n]
        for t in "BO":
            assert r["taps"][t]["receptive_field"] == RF_PAPER[r["block"]], r["block"]
        # a simple block's I is the previous block's O: same receptive field
        if r["kind"] == "simple" and r["block"] != "1.0":
            prev = rows[rows.index(r) - 1]
            assert r["taps"]["I"]["receptive_field"] == prev["taps"]["O"]["receptive_field"]


@pytest.mark.parametrize("tap, not_called", [
    ("1.1.B", ["layer2", "layer3", "layer4", "fc"]),
    ("2.1.I", ["layer3", "layer4"]),   # 2.1.I is 2.0's O: 2.1 itself is not needed
    ("3.0.I", ["layer4"]),
])
def test_forward_stops_after_the_deepest_tap(resnet18, tap, not_called):
    def fail(_m, _a):
        raise AssertionError(f"the forward pass went on past {tap}")

    modules = [getattr(resnet18, n) for n in not_called]
    if tap == "2.1.I":
        modules.append(resnet18.layer2[1])
    handles = [m.register_forward_pre_hook(fail) for m in modules]
    try:
        acts = read_taps(resnet18, torch.randn(1, 3, 64, 64), [tap])
    finally:
        for h in handles:
            h.remove()
    assert set(acts) == {tap}


def test_unknown_block_and_tap_are_clear_errors(resnet18):
    with pytest.raises(KeyError, match=r"unknown block '5\.0'.*1\.0, 1\.1, 2\.0"):
        TapCapture(resnet18, ["5.0.B"])
    with pytest.raises(KeyError, match="unknown block '1.7'"):
        find_block(resnet18, "1.7")
    with pytest.raises(KeyError, match="unknown block"):
        centre_crop_window(resnet18, "9.9.I", 224, 224)
    for bad in ["1.1.X", "1.1", "B", "1.1.b", "1.1.1.B", ""]:
        with pytest.raises(ValueError, match="taps are BLOCK.T with T in I, B, O"):
            parse_tap(bad)
    with pytest.raises(ValueError, match="bad tap"):
        TapCapture(resnet18, ["2.1.Q"])


def test_cli_blocks_json(capsys):
    assert cli.main(["blocks", "--model", "resnet18", "--weights", "random:0", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert isinstance(rows, list) and len(rows) == 8
    for r in rows:
        assert {"block", "kind", "channels", "taps"} <= set(r)
        assert set(r["taps"]) == {"I", "B", "O"}
    assert rows[1]["block"] == "1.1" and rows[1]["taps"]["B"]["receptive_field"] == 43


def test_cli_blocks_bad_model_is_a_clear_error(capsys):
    assert cli.main(["blocks", "--model", "resnet19", "--weights", "random:0"]) == 2
    assert "unknown model 'resnet19'" in capsys.readouterr().err


# ------------------------------------------------------------------ the record built once at load
def test_the_anatomy_is_built_once_and_holds_the_provenance(resnet18):
    from rsi_core.model.anatomy import anatomy_of, provenance_of
    record = anatomy_of(resnet18)
    assert anatomy_of(resnet18) is record and blocks(resnet18)[0] is record.blocks[0]  # found once, at load
    p = provenance_of(resnet18)
    assert (p.model, p.weights, len(p.weights_id), p.lists["fig8"]["4.1"], p.control) == \
        ("resnet18", "random:0", 16, [154, 68, 496], None)
    assert not [k for k in vars(resnet18) if k.startswith("rsi_")]  # nothing set on the module


def test_tap_names_and_the_canonical_rule(resnet18):
    from rsi_core.model.anatomy import anatomy_of, entry_field, tap, taps_of
    record = anatomy_of(resnet18)
    assert tap("3.1", "B") == "3.1.B" and parse_tap(tap("3.1", "B")) == ("3.1", "B")
    assert taps_of(["1.1", "2.0"], "IB") == ["1.1.I", "1.1.B", "2.0.I", "2.0.B"]
    assert entry_field("2.0", "O") == "2.0:O"
    with pytest.raises(ValueError, match="bad tap kind"):
        tap("3.1", "X")
    # a simple block's I is the previous block's O; a downsample block's I and every B, O are themselves
    assert [record.canonical(t) for t in ("1.1.I", "2.1.I", "2.0.I", "2.0.B", "4.1.O")] == \
        ["1.0.O", "2.0.O", "2.0.I", "2.0.B", "4.1.O"]
    assert record.aliases("2.1.I") == record.aliases("2.0.O") == ["2.0.O", "2.1.I"]
    assert record.aliases("1.1.O") == ["1.1.O"]  # 2.0's I is its downsample's output
    assert record.receptive_field("4.1.O") == 435 and record.receptive_field("4.1.O", clip=True) == 224


def test_a_model_rsi_did_not_load_has_no_provenance_and_says_so(tmp_path):
    """Never a silent resnet18: an FZ cache key needs the provenance a load registers."""
    from torchvision.models import resnet18 as bare

    from rsi_core.cache import Cache
    from rsi_core.fz.bank import FZBank
    from rsi_core.fz.transform import jitter_of
    from rsi_core.model.anatomy import block_roles, preprocess_of
    model = bare()
    assert block_roles(model)["downsample"] == ["2.0", "3.0", "4.0"]  # the anatomy needs no provenance
    assert preprocess_of(model).crop == 224  # the family's
    for read in (lambda: FZBank(model, Cache(tmp_path))._key("1.1.B", 0), lambda: jitter_of(model, "1.1.B")):
        with pytest.raises(ValueError, match="was not loaded by rsi"):
            read()
