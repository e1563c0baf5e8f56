"""Model families: the taps of every supported architecture obey the stated semantics, checked on
random init against plain hooks on each model's own forward pass (never against TapCapture's
arithmetic alone): the block's output is ReLU(O) in a family with a ReLU after the sum, O in one
without; O = skip + B with skip = ReLU(I) in a ResNet's simple block and I otherwise; a
downsample block's I is its shortcut's output, a simple block's the previous O (ResNets: ReLU(I)
is the block's input) or the block's input itself (ConvNeXt)."""
import pytest
import torch

from rsi_core.harness import cli
from rsi_core.model.anatomy import TapCapture, block_roles, blocks, describe_blocks, premise_missing
from rsi_core.model.families import FAMILIES, TV_CONVNEXTS, TV_RESNETS, family_for, family_of, known_model
from rsi_core.model.load import load_model

pytest.importorskip("timm")

# one model per architecture and variant the families serve: basic and bottleneck ResNets, the
# "d" deep stem and avg-pool shortcut, squeeze-excitation, anti-aliasing, ConvNeXts of both libraries
ARCHITECTURES = {
    **{name: "torchvision-resnet" for name in TV_RESNETS}, **{name: "torchvision-convnext" for name in TV_CONVNEXTS},
    "timm:resnet18": "timm-resnet", "timm:resnet50d": "timm-resnet", "timm:seresnet50": "timm-resnet",
    "timm:resnetaa50d": "timm-resnet", "timm:convnext_atto": "timm-convnext", "timm:convnext_tiny": "timm-convnext",
}
CONVNEXTS = [n for n, f in ARCHITECTURES.items() if f.endswith("convnext")]


def _reference(model, x):
    """Each block's input and output, and its shortcut's output, from plain hooks."""
    ref, handles = {}, []
    for b in blocks(model):
        def pre(_m, args, name=b.name):
            ref[f"{name}.in"] = args[0].clone()

        def post(_m, _a, out, name=b.name):
            ref[f"{name}.out"] = out.clone()
        handles += [b.module.register_forward_pre_hook(pre), b.module.register_forward_hook(post)]
        if b.shortcut is not None:
            handles.append(b.shortcut.register_forward_hook(lambda _m, _a, out, name=b.name: ref.__setitem__(
                f"{name}.short", out.clone())))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return ref


def _close(a, b, msg):
    assert a.shape == b.shape, msg
    err = (a - b).abs().max().item()
    assert err <= 1e-5 * max(1.0, b.abs().max().item()), f"{msg}: max |a - b| = {err:.3g}"


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_taps_obey_the_family_semantics(name, one_thread):
    model = load_model(name, "random:0")
    assert family_of(model).name == ARCHITECTURES[name]
    all_blocks = blocks(model)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))  # small: every stage's map is 2x2 or more
    ref = _reference(model, x)
    with TapCapture(model, [f"{b.name}.{k}" for b in all_blocks for k in "IBO"], stop=False) as cap, torch.no_grad():
        acts = cap(x)
    relu_family = name not in CONVNEXTS
    for i, b in enumerate(all_blocks):
        i_t, b_t, o_t = (acts[f"{b.name}.{k}"] for k in "IBO")
        assert b.relu == relu_family
        out = ref[f"{b.name}.out"]
        _close(torch.relu(o_t) if b.relu else o_t, out, f"{name} {b.name}: output vs O")
        if b.shortcut is not None:
            _close(i_t, ref[f"{b.name}.short"], f"{name} {b.name}: I vs the shortcut")
            skip = i_t
        else:
            skip = torch.relu(i_t) if b.relu else i_t
            _close(skip, ref[f"{b.name}.in"], f"{name} {b.name}: the skip vs the block's input")
            if b.i_is_prev_o:
                _close(i_t, acts[f"{all_blocks[i - 1].name}.O"], f"{name} {b.name}: I vs the previous O")
        assert torch.equal(o_t, skip + b_t), f"{name} {b.name}: O is not skip + B exactly"
        if b.relu:  # B is not a post-ReLU tensor: the in-place sum and ReLU did not reach the tap
            assert (b_t < 0).any(), f"{name} {b.name}: B has no negative value"


@pytest.mark.parametrize("name,stage_first", [("convnext_tiny", ["2.0", "3.0", "4.0"]),
                                              ("timm:convnext_atto", ["2.0", "3.0", "4.0"])])
def test_convnext_downsamples_between_blocks(name, stage_first):
    """No ConvNeXt block has a shortcut: the first block of stages 2-4 reads the downsample layer's
    output as its I (a tap of its own), the others the previous block's O; no downsample role."""
    model = load_model(name, "random:0")
    all_blocks = blocks(model)
    assert [b.name for b in all_blocks if not b.i_is_prev_o] == ["1.0"] + stage_first
    assert all(b.kind == "simple" and b.shortcut is None for b in all_blocks)
    roles = block_roles(model)
    assert roles["downsample"] == [] and roles["simple"] == ["1.1", "2.1", "3.1"]
    assert premise_missing(model, "downsample") and premise_missing(model, "bn-branch")
    sizes = {r["block"]: r["taps"]["I"]["size"][0] for r in describe_blocks(model)}
    assert sizes["2.0"] == sizes["1.2" if name == "convnext_tiny" else "1.1"] // 2


def test_resnet_families_have_every_premise(model):
    for premise in ("downsample", "bn-branch"):
        assert premise_missing(model, premise) is None
        assert premise_missing(load_model("timm:resnet18", "random:0"), premise) is None


def test_timm_resnet18_is_torchvision_resnet18_by_anatomy(model):
    """Same blocks, kinds, channels and receptive fields (timm's resnet18 is torchvision's network)."""
    timm18 = load_model("timm:resnet18", "random:0")
    strip = lambda rows: [{k: v for k, v in r.items() if k != "hooks"} for r in rows]  # noqa: E731
    assert strip(describe_blocks(timm18)) == strip(describe_blocks(model))
    assert block_roles(timm18) == block_roles(model)


def test_d_variants_read_the_avgpool_shortcut():
    """resnet50d's shortcut is AvgPool2d, conv, BatchNorm (at downsample.2): I is its output, and
    its receptive field passes the pool."""
    m = load_model("timm:resnet50d", "random:0")
    b = next(b for b in blocks(m) if b.name == "2.0")
    assert type(b.shortcut[0]).__name__ == "AvgPool2d" and isinstance(b.shortcut[2], torch.nn.BatchNorm2d)
    row = next(r for r in describe_blocks(m) if r["block"] == "2.0")
    assert row["hooks"]["I"] == "output of layer2.0.downsample"


def test_known_models_and_unknown_ones():
    for name in ARCHITECTURES:
        assert known_model(name) and family_for(name).name == ARCHITECTURES[name]
    for bad in ("resnet19", "timm:swin_tiny_patch4_window7_224", "timm:nope", "convnext_huge"):
        assert not known_model(bad)
        with pytest.raises(ValueError, match=f"unknown model '{bad}'"):
            load_model(bad, "random:0")
    assert set(FAMILIES) == set(ARCHITECTURES.values()) | {"torchvision-vit", "timm-vit"}  # ViTs: tests/test_vit.py


def test_rsi_blocks_prints_roles_and_taps(capsys):
    for name, first in (("timm:resnet18", "layer1.1.bn2"), ("convnext_tiny", "features.1.1.stochastic_depth")):
        assert cli.main(["blocks", "--model", name, "--weights", "random:0"]) == 0
        out = capsys.readouterr().out
        assert first in out and "jitter" in out and "simple" in out
        assert ("downsample" in out) == (name == "timm:resnet18")


def test_timm_unknown_tag_lists_the_tags():
    with pytest.raises(ValueError, match="unknown weights 'nope' for timm:resnet18.*tv_in1k"):
        load_model("timm:resnet18", "nope")


def test_jitter_outside_resnet18_follows_the_receptive_field_rule(model):
    """resnet18 keeps the paper's table; a model of the same geometry (timm's resnet18) gets the
    rule, which reads the table by receptive field: the authors' script's table, tap for tap of the
    studied blocks."""
    from rsi_core.fz.transform import jitter_for, jitter_of
    from rsi_core.model.anatomy import canonical_tap
    timm18 = load_model("timm:resnet18", "random:0")
    taps = {canonical_tap(model, f"{b}.{t}") for b in block_roles(model)["studied"] for t in "IBO"}
    assert {jitter_of(model, t) for t in taps} == {0, 4, 16}
    for tap in taps:
        assert jitter_of(model, tap) == jitter_for(tap, "paper")
        assert jitter_of(timm18, tap) == jitter_for(tap, "authors-script"), tap
        assert jitter_of(timm18, tap, "none") == 0
    convnext = load_model("convnext_tiny", "random:0")
    rf = {r["block"]: r["taps"]["B"]["receptive_field"] for r in describe_blocks(convnext)}
    for name, field in rf.items():
        assert jitter_of(convnext, f"{name}.B") == (0 if field <= 67 else 4 if field <= 147 else 16)


def test_timm_weights_unavailable_offline_say_what_to_do(monkeypatch):
    """timm's own loader is asked (its cache is the Hugging Face hub's); when it cannot get the
    file, the error is today's WeightsUnavailable, naming the cache, the file option and random:0
    (here the loader is made to fail at once, as it does offline after its retries)."""
    import timm

    from rsi_core.model.load import WeightsUnavailable

    def offline(name, pretrained=False, **_):
        assert name == "resnet18.tv_in1k" and pretrained
        raise OSError("We couldn't connect to 'https://huggingface.co'")
    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(WeightsUnavailable, match=r"(?s)resnet18\.tv_in1k is not in its cache.*--weights /path/to.*random:0"):
        load_model("timm:resnet18", "tv_in1k")


def test_a_timm_tag_missing_from_the_hub_cache_is_announced_up_front(tmp_path, monkeypatch):
    from huggingface_hub import constants

    from rsi_core.model.load import weights_missing
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    assert "timm/resnet18.tv_in1k is not in the Hugging Face hub's cache" in weights_missing("timm:resnet18", "tv_in1k")
    (tmp_path / "models--timm--resnet18.tv_in1k").mkdir()
    assert weights_missing("timm:resnet18", "tv_in1k") is None
    assert weights_missing("timm:resnet18", "random:0") is None
