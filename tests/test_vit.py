"""Vision transformers as a family: each encoder layer's attention and MLP sublayers are blocks.

Tap semantics under test, against plain hooks on the models' own modules (never TapCapture's
arithmetic alone): a sublayer's I is the stream entering it, B its output as added (after layer
scale and drop-path), O = I + B exactly, and O is the stream the next sublayer receives. Maps are
the patch tokens on their grid; the centre neuron is the patch token (H // 2, W // 2).
"""
import json

import numpy as np
import pytest
import torch
from torchvision.models import get_model
from torchvision.models.vision_transformer import VisionTransformer

from rsi_core.fz.render import FZSettings, render
from rsi_core.fz.transform import jitter_of
from rsi_core.harness import cli
from rsi_core.model.anatomy import (
    SCALE_PREMISE,
    TapCapture,
    anatomy_of,
    describe_blocks,
    provenance_of,
    taps_of,
    token_map,
)
from rsi_core.model.families import TV_VITS, family_for
from rsi_core.model.load import finish, load_model

pytestmark = pytest.mark.usefixtures("one_thread")

#: timm names, one per kind of block the family reads: plain, distilled (two prefix tokens),
#: layer scale (deit3), and a ViT (not a DeiT) name
TIMM_VITS = ("timm:deit_tiny_patch16_224", "timm:deit_tiny_distilled_patch16_224", "timm:vit_tiny_patch16_224",
             "timm:deit3_small_patch16_224")


def _reference(model, layers, ln2, prefix):
    """The stream entering each layer, entering its MLP sublayer (the input of its second
    norm) and leaving it, as patch-token maps, from plain hooks."""
    ref, handles = {}, []

    def keep(key):
        return lambda _m, args: ref.__setitem__(key, token_map(args[0].detach().clone(), prefix))
    for i, layer in enumerate(layers):
        handles.append(layer.register_forward_pre_hook(keep(f"{i}.in")))
        handles.append(ln2(layer).register_forward_pre_hook(keep(f"{i}.mid")))
        handles.append(layer.register_forward_hook(
            lambda _m, _a, out, i=i: ref.__setitem__(f"{i}.out", token_map(out.detach().clone(), prefix))))
    return ref, handles


def _check_sublayers(model, layers, ln2, prefix):
    names = [b.name for b in anatomy_of(model).blocks]
    assert names == [f"{i}.{k}" for i in range(len(layers)) for k in (0, 1)]
    ref, handles = _reference(model, layers, ln2, prefix)
    try:
        with torch.no_grad(), TapCapture(model, taps_of(names), stop=False) as cap:
            acts = cap(torch.randn(1, 3, 224, 224))
    finally:
        for h in handles:
            h.remove()
    for i in range(len(layers)):
        attn, mlp = f"{i}.0", f"{i}.1"
        assert torch.equal(acts[f"{attn}.I"], ref[f"{i}.in"])             # the stream entering the layer
        assert torch.equal(acts[f"{attn}.O"], ref[f"{i}.mid"])            # what the MLP sublayer receives
        assert torch.equal(acts[f"{mlp}.I"], acts[f"{attn}.O"])           # one tensor, one name each
        assert torch.equal(acts[f"{mlp}.O"], ref[f"{i}.out"])             # the layer's output
        for b in (attn, mlp):
            assert torch.equal(acts[f"{b}.I"] + acts[f"{b}.B"], acts[f"{b}.O"])  # O = I + B exactly, no ReLU
            assert acts[f"{b}.B"].abs().sum() > 0


@pytest.mark.parametrize("name", TIMM_VITS)
def test_timm_sublayers_are_I_plus_B(name):
    model = load_model(name, "random:0")
    _check_sublayers(model, list(model.blocks), lambda b: b.norm2, model.num_prefix_tokens)


def test_vit_b_16_sublayers_are_I_plus_B():
    """vit_b_16 itself, one forward at batch 1."""
    model = load_model("vit_b_16", "random:0")
    _check_sublayers(model, list(model.encoder.layers), lambda b: b.ln_2, 1)


@pytest.mark.parametrize("name", [n for n in TV_VITS if n != "vit_b_16"])
def test_other_torchvision_vits_are_I_plus_B(name):
    """Every other torchvision ViT: its own patch size, width and heads (read from the name's
    builder on the meta device, no memory), two of its encoder layers (the same EncoderBlock)."""
    with torch.device("meta"):
        full = get_model(name)
    cfg = dict(image_size=224, patch_size=full.patch_size, num_layers=2, num_heads=full.encoder.layers[0].num_heads,
               hidden_dim=full.hidden_dim, mlp_dim=full.mlp_dim)
    torch.manual_seed(0)
    model = finish(VisionTransformer(**cfg), name, "random:0")
    assert family_for(name).name == anatomy_of(model).family.name == "torchvision-vit"
    _check_sublayers(model, list(model.encoder.layers), lambda b: b.ln_2, 1)


@pytest.fixture(scope="module")
def deit():
    return load_model("timm:deit_tiny_patch16_224", "random:0")


def test_roles_and_premises(deit):
    record = anatomy_of(deit)
    assert record.roles == {"downsample": [], "simple": ["2.1", "5.1", "8.1"], "final": ["11.1"],
                            "studied": ["2.1", "5.1", "8.1", "11.1"]}
    assert "no downsample block" in record.missing("downsample")
    assert "not a BatchNorm" in record.missing("bn-branch")
    # attention makes every token see the image: I and B of the studied MLP sublayers see all of it
    assert "2.1 (I 224 px, B 224 px)" in record.missing(SCALE_PREMISE)
    # where receptive fields grow, the premise holds: the patch embedding against the first attention;
    # past it every I sees the whole image, as every B does
    assert record.reach("0.0.I") == 16 < record.reach("0.0.B") == 224
    assert record.reach("1.0.I") == record.reach("1.0.B") == record.reach("1.1.B") == 224
    for name in ("resnet18", "resnet34"):  # every block's branch adds convolutions: B reaches further
        assert anatomy_of(load_model(name, "random:0")).missing(SCALE_PREMISE) is None


def test_centre_is_the_lower_right_of_the_four_central_patches():
    tokens = torch.arange(1 + 14 * 14, dtype=torch.float32).view(1, -1, 1)  # value = token index
    grid = token_map(tokens, 1)
    assert grid.shape == (1, 1, 14, 14) and grid[0, 0, 7, 7] == 1 + 7 * 14 + 7


def test_jitter_follows_the_receptive_field_rule_at_least_4(deit):
    """Every ViT tap past the patch embedding sees the image (jitter 16); the patch embedding's
    16 pixels would take none, but below 4 the transforms change the side a ViT needs: 4."""
    assert jitter_of(deit, "0.0.I") == 4
    assert {jitter_of(deit, t) for t in taps_of(["0.0", "5.1", "11.1"], "BO")} == {16}


def test_fz_is_independent_of_its_batch(deit):
    """A channel's ViT FZ is the same alone and in a batch (no cone: every element runs alone)."""
    s = FZSettings(steps=2)
    pair = render(deit, "5.1.B", [3, 7], s, progress=False)
    alone = render(deit, "5.1.B", [7], s, progress=False)
    assert np.array_equal(pair["images"][1], alone["images"][0])
    assert not np.array_equal(pair["images"][0], pair["images"][1])
    assert pair["reached"][1] == alone["reached"][0]


def test_rsi_blocks_lists_the_sublayers(capsys):
    assert cli.main(["blocks", "--model", "timm:deit_tiny_patch16_224", "--weights", "random:0", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["block"] for r in rows[:4]] == ["0.0", "0.1", "1.0", "1.1"] and len(rows) == 24
    assert [r["part"] for r in rows[:2]] == ["attention", "mlp"]
    first, mlp = rows[0], rows[5]
    assert first["hooks"] == {"I": "input of blocks.0", "B": "output of blocks.0.drop_path1", "O": "I + B",
                              "output": "O", "centre": first["hooks"]["centre"]}
    assert first["taps"]["I"]["receptive_field"] == 16 and first["taps"]["I"]["jitter"] == 4
    assert first["taps"]["B"]["receptive_field_in_image"] == first["taps"]["B"]["reach"] == 224
    assert first["taps"]["B"]["jitter"] == 16 and first["taps"]["I"]["reach"] == 16
    assert mlp["block"] == "2.1" and mlp["roles"] == ["simple"] and mlp["taps"]["O"]["size"] == [14, 14]
    assert rows[-1]["roles"] == ["final"]


def test_an_unsupported_timm_vit_is_one_clear_line():
    with pytest.raises(TypeError, match="rsi reads 224-pixel images"):
        load_model("timm:vit_tiny_patch16_384", "random:0")


def test_the_class_token_is_an_option(deit):
    """``--model NAME+cls`` reads token 0 as a 1 x 1 map: the same weights, a model of its own
    (its name keys its cache entries apart from the centre patch's)."""
    cls = load_model("timm:deit_tiny_patch16_224+cls", "random:0")
    assert anatomy_of(cls).class_token and not anatomy_of(deit).class_token
    x = torch.randn(1, 3, 224, 224)
    out = {}
    handle = cls.blocks[5].register_forward_hook(lambda _m, _a, o: out.__setitem__("5", o.detach().clone()))
    try:
        with torch.no_grad(), TapCapture(cls, ["5.1.O", "5.1.B"]) as cap:
            acts = cap(x)
    finally:
        handle.remove()
    assert acts["5.1.O"].shape == (1, 192, 1, 1) and torch.equal(acts["5.1.O"][:, :, 0, 0], out["5"][:, 0])
    assert provenance_of(cls).weights_id == provenance_of(deit).weights_id
    first = describe_blocks(cls)[0]
    assert "class token" in first["hooks"]["centre"] and first["taps"]["B"]["size"] == [1, 1]
