"""Model families: every architecture rsi reads, through one interface (torchvision's
``register_model`` style).

A family says, for its models, how to build one (random init), which modules are the residual
blocks (``Block``: name ``L.K``, kind, channels), which modules the I, B, O taps hook
(TransformerLens-style hook points: B is ``branch_end``'s output, a downsample block's I is
``shortcut``'s output, any other block's I is its input or, where ``i_is_prev_o``, the previous
block's O), the receptive-field path of every tap, whether a ReLU follows the sum, which of the
paper's premises it lacks (with the reason a claim reports as "n/a"), and its preprocessing.

Tap semantics, the same for every family (tested on random init of each architecture):
O = skip + B exactly, where skip is ReLU(I) in a simple block of a family with a ReLU after the
sum (I is then the previous block's O before its ReLU: the paper's footnote 2) and I otherwise;
the block's output is ReLU(O) where the family has a ReLU after the sum, O itself where it has none.

Families: ``torchvision-resnet`` (``resnet18`` ...; also the robust checkpoints, loaded into
torchvision's ResNets), ``timm-resnet`` (``timm:resnet18``, ``timm:resnet50d``,
``timm:seresnet50``, ...), ``torchvision-convnext`` (``convnext_tiny`` ...) and ``timm-convnext``
(``timm:convnext_tiny`` ...). timm is optional (the ``timm`` extra).
"""
from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

from rsi_core.model.images import PAPER_PREPROCESS, Preprocess

TIMM = "timm:"
#: a ViT name ending in this reads the class token instead of the centre patch token (a model of its own)
CLASS_TOKEN = "+cls"


def library_name(name: str) -> str:
    """The name torchvision or timm knows ``--model name`` by (a ViT's ``+cls`` left out)."""
    return name.removesuffix(CLASS_TOKEN)


@dataclass(frozen=True)
class Block:
    name: str
    kind: str  # "simple" or "downsample"
    channels: int
    module: nn.Module = field(compare=False, repr=False)
    convs: tuple = field(compare=False, repr=False)       # (kernel, stride, padding) from the image to B
    input_path: tuple = field(compare=False, repr=False)  # ... to the block's input
    branch_end: nn.Module = field(compare=False, repr=False, default=None)  # B is its output
    shortcut: nn.Module | None = field(compare=False, repr=False, default=None)  # I is its output
    i_is_prev_o: bool = False  # I is the previous block's O (one tensor, one FZ)
    relu: bool = True          # a ReLU follows the sum: the block's output is ReLU(O)
    tokens: int | None = None  # a transformer's: I, B, O are [N, T, C] tokens after this many prefix tokens
    part: str = ""             # what the block is where a layer has several (a ViT's "attention", "mlp")


@dataclass(frozen=True)
class Family:
    name: str
    describe: str
    names: Callable[[], list[str]]          # the --model names it serves (for errors and validation)
    serves: Callable[[str], bool]           # whether it serves --model NAME
    build: Callable[[str], nn.Module]       # random init (under the caller's seed)
    matches: Callable[[nn.Module], bool]    # whether a built model is this family's
    walk: Callable[[nn.Module], list]       # its Blocks, in forward order
    preprocess: Callable[[nn.Module], Preprocess]
    lacks: dict = field(default_factory=dict)  # premise -> why the family does not have it
    cone: Callable[[nn.Module], bool] = lambda m: False  # whether rsi_core.fz.render.CentreCone runs its blocks
    roles: Callable[[list], dict] | None = None  # its blocks' roles (None: anatomy.stage_roles, the staged rule)
    input_side: int | None = None  # the only image side its models take (a ViT's position embedding), if any


FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    FAMILIES[family.name] = family
    return family


def family_for(name: str) -> Family:
    """The family serving ``--model name``; an unknown name gets one line listing the known ones."""
    for f in FAMILIES.values():
        if f.serves(name):
            return f
    if name.startswith(TIMM) and not timm_installed():
        raise ValueError(f"model {name!r} needs timm, which is not installed: pip install 'rsi[timm]'")
    raise ValueError(f"unknown model {name!r}: choose one of {', '.join(model_names())}")


def known_model(name: str) -> bool:
    """Whether ``--model name`` names a model some family serves (cheap: nothing is built)."""
    return any(f.serves(str(name)) for f in FAMILIES.values())


def model_names() -> list[str]:
    """The names to list in an error: every torchvision name, timm's as patterns."""
    return [n for f in FAMILIES.values() for n in f.names()]


def family_of(model: nn.Module) -> Family:
    for f in FAMILIES.values():
        if f.matches(model):
            return f
    raise TypeError(f"{type(model).__name__} is of no model family rsi reads "
                    f"({', '.join(FAMILIES)}): pass --model one of {', '.join(model_names())}")


def with_studied(found, roles: dict) -> dict[str, list[str]]:
    """``roles`` and ``studied``: every block some role names, in forward order."""
    chosen = {b for names in roles.values() for b in names}
    return {**roles, "studied": [b.name for b in found if b.name in chosen]}


# ----------------------------------------------------------------------------- receptive paths
def geometry(m: nn.Module) -> tuple[int, int, int]:
    def one(v):
        return v[0] if isinstance(v, (tuple, list)) else v
    if hasattr(m, "filt_size"):  # timm's BlurPool2d
        return one(m.filt_size), one(m.stride), (one(m.filt_size) - 1) // 2
    return one(m.kernel_size), one(m.stride), one(m.padding)


SPATIAL = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)


def path_of(module: nn.Module | None, skip=()) -> tuple:
    """(kernel, stride, padding) of every convolution and pool in ``module``, in registration
    order (the forward order of the families here), leaving out the submodules named ``skip``."""
    if module is None:
        return ()
    skipped = tuple(f"{s}." for s in skip)
    out = []
    for name, m in module.named_modules():
        if name in skip or name.startswith(skipped):
            continue
        if isinstance(m, SPATIAL) or type(m).__name__ == "BlurPool2d":
            out.append(geometry(m))
    return tuple(out)


# ------------------------------------------------------------------------------------- ResNets
def _resnet_walk(model: nn.Module, block_types: tuple, branch_end) -> list[Block]:
    found, path = [], path_of(model.conv1) + path_of(model.maxpool)
    for lname in ("layer1", "layer2", "layer3", "layer4"):
        layer = getattr(model, lname, None)
        if layer is None:
            continue
        for k, blk in enumerate(layer):
            if not isinstance(blk, block_types):
                raise TypeError(f"{lname}[{k}] is a {type(blk).__name__}, not a residual block")
            end = branch_end(blk)
            before, path = path, path + path_of(blk, skip=("downsample",))
            found.append(Block(
                name=f"{lname[-1]}.{k}", kind="downsample" if blk.downsample is not None else "simple",
                channels=last_bn(blk).num_features,
                module=blk, convs=path, input_path=before, branch_end=end, shortcut=blk.downsample,
                i_is_prev_o=bool(found) and blk.downsample is None))
    if not found:
        raise TypeError(f"{type(model).__name__} has no layer1..layer4 residual blocks")
    return found


def last_bn(block: nn.Module) -> nn.BatchNorm2d:
    """A ResNet block's last BatchNorm (``bn3`` in a bottleneck, else ``bn2``)."""
    return block.bn3 if hasattr(block, "bn3") else block.bn2


TV_RESNETS = (
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
    "wide_resnet50_2", "wide_resnet101_2",
    "resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d",
)
TV_CONVNEXTS = ("convnext_tiny", "convnext_small", "convnext_base", "convnext_large")


def _tv_build(name: str) -> nn.Module:
    from torchvision.models import get_model
    return get_model(name, weights=None)


def _tv_resnet_types():
    from torchvision.models.resnet import BasicBlock, Bottleneck
    return BasicBlock, Bottleneck


def _tv_resnet_matches(model) -> bool:
    layer = getattr(model, "layer1", None)
    return isinstance(layer, nn.Sequential) and len(layer) > 0 and isinstance(layer[0], _tv_resnet_types())


register_family(Family(
    name="torchvision-resnet",
    describe="torchvision ResNets (BasicBlock / Bottleneck); robust checkpoints load into them",
    names=lambda: list(TV_RESNETS), serves=lambda n: n in TV_RESNETS, build=_tv_build,
    matches=_tv_resnet_matches,
    walk=lambda m: _resnet_walk(m, _tv_resnet_types(), last_bn), preprocess=lambda m: PAPER_PREPROCESS,
    cone=lambda m: True))


# ---------------------------------------------------------------------------------------- timm
def timm_installed() -> bool:
    return importlib.util.find_spec("timm") is not None


def timm_arch(name: str, module: str) -> bool:
    """``timm:ARCH`` is a timm model defined in ``timm.models.<module>``."""
    if not name.startswith(TIMM) or not timm_installed():
        return False
    import timm
    arch = name[len(TIMM):]
    if not timm.is_model(arch):
        return False
    return timm.models.model_entrypoint(arch).__module__ == f"timm.models.{module}"


def timm_build(name: str, **kwargs) -> nn.Module:
    import timm
    return timm.create_model(name[len(TIMM):], pretrained=False, **kwargs)


def timm_preprocess(model: nn.Module) -> Preprocess:
    """timm's data config of the model's pretrained tag (mean, std, interpolation, crop_pct),
    at the paper's image size (FZs and images are 224 pixels)."""
    from timm.data import resolve_data_config
    cfg = resolve_data_config({}, model=model)
    tag = getattr(model, "pretrained_cfg", {}) or {}
    return Preprocess.at_paper_size(mean=cfg["mean"], std=cfg["std"], crop_pct=cfg["crop_pct"],
                                    interpolation=cfg["interpolation"],
                                    source=f"timm data config of {tag.get('architecture', '?')}.{tag.get('tag', '?')} "
                                           f"(its input size {tuple(cfg['input_size'][1:])})")


def _timm_resnet_end(blk: nn.Module) -> nn.Module:
    """The last module of a timm ResNet block's branch before the sum: drop_path, else se, else
    the last BatchNorm."""
    for attr in ("drop_path", "se"):
        m = getattr(blk, attr, None)
        if isinstance(m, nn.Module):
            return m
    return last_bn(blk)


def _timm_resnet_walk(model: nn.Module) -> list[Block]:
    from timm.models.resnet import BasicBlock, Bottleneck
    found = _resnet_walk(model, (BasicBlock, Bottleneck), _timm_resnet_end)
    for b in found:
        act = b.module.act3 if hasattr(b.module, "act3") else b.module.act2
        if not isinstance(act, nn.ReLU):
            raise TypeError(f"block {b.name} of {type(model).__name__} ends in {type(act).__name__}, not a ReLU: "
                            "rsi reads timm ResNets with a ReLU after the sum")
    return found


def _timm_plain(model) -> bool:
    """A timm ResNet laid out as torchvision's (one stem convolution, a max-pool, blocks of conv,
    BatchNorm and ReLU with a conv + BatchNorm shortcut): CentreCone runs it."""
    def plain(blk):
        down = blk.downsample
        return (blk.se is None and blk.drop_path is None and isinstance(blk.aa, nn.Identity)
                and isinstance(blk.drop_block, nn.Identity) and (down is None or (
                    isinstance(down, nn.Sequential) and len(down) == 2 and isinstance(down[0], nn.Conv2d))))
    return (isinstance(model.conv1, nn.Conv2d) and isinstance(model.maxpool, nn.MaxPool2d)
            and all(plain(b) for layer in (model.layer1, model.layer2, model.layer3, model.layer4) for b in layer))


def _timm_matches(model, module: str, cls: str) -> bool:
    if not timm_installed():
        return False
    t = type(model)
    return t.__module__ == f"timm.models.{module}" and t.__name__ == cls


register_family(Family(
    name="timm-resnet",
    describe="timm ResNets (act1/act2/act3; optional se, drop_path, aa; 'd' shortcuts)",
    names=lambda: ["timm:resnet18", "timm:resnet50d", "timm:seresnet50", "timm:<any timm ResNet>"],
    # random init keeps the last BatchNorm's weights random, as torchvision's does: timm's default
    # zero_init_last would make every B zero, so no FZ of a B tap could move
    serves=lambda n: timm_arch(n, "resnet"), build=lambda n: timm_build(n, zero_init_last=False),
    matches=lambda m: _timm_matches(m, "resnet", "ResNet"), walk=_timm_resnet_walk,
    preprocess=timm_preprocess, cone=_timm_plain))


# ------------------------------------------------------------------------------------ ConvNeXts
CONVNEXT_LACKS = {
    "downsample": "ConvNeXt has no downsample block: it downsamples between stages, in a layer of its own",
    "bn-branch": "ConvNeXt's branch ends in a layer scale, not a BatchNorm: the claim reads the last BatchNorm's "
                 "and convolution's weights",
}


def _convnext_walk(stages, stem_path: tuple, end, shortcut) -> list[Block]:
    """``stages``: [(downsample layer before the stage or None, [blocks])]; blocks ``L.K``."""
    found, path = [], stem_path
    for s, (down, blks) in enumerate(stages, start=1):
        path = path + path_of(down)
        for k, blk in enumerate(blks):
            sc = shortcut(blk)
            before, path = path, path + path_of(blk, skip=("shortcut",)) + path_of(sc)
            channels = next(m for m in blk.modules() if isinstance(m, nn.Conv2d)).out_channels
            found.append(Block(name=f"{s}.{k}", kind="downsample" if sc is not None else "simple", channels=channels,
                               module=blk, convs=path, input_path=before, branch_end=end(blk), shortcut=sc,
                               i_is_prev_o=k > 0 and sc is None, relu=False))
    return found


def _tv_convnext_walk(model) -> list[Block]:
    stages, down = [], None
    for f in list(model.features)[1:]:  # features[0] is the stem
        if type(f[0]).__name__ == "CNBlock":
            stages.append((down, list(f)))
            down = None
        else:
            down = f
    return _convnext_walk(stages, path_of(model.features[0]), lambda b: b.stochastic_depth, lambda b: None)


def _tv_convnext_matches(model) -> bool:
    feats = getattr(model, "features", None)
    return isinstance(feats, nn.Sequential) and any(type(m).__name__ == "CNBlock" for m in model.modules())


def _timm_convnext_walk(model) -> list[Block]:
    stages = [(None if isinstance(st.downsample, nn.Identity) else st.downsample, list(st.blocks)) for st in model.stages]
    return _convnext_walk(stages, path_of(model.stem), lambda b: b.drop_path,
                          lambda b: None if isinstance(b.shortcut, nn.Identity) else b.shortcut)


register_family(Family(
    name="torchvision-convnext",
    describe="torchvision ConvNeXts (CNBlock: no ReLU after the sum, layer scale and stochastic depth on the branch)",
    names=lambda: list(TV_CONVNEXTS), serves=lambda n: n in TV_CONVNEXTS, build=_tv_build,
    matches=_tv_convnext_matches, walk=_tv_convnext_walk, preprocess=lambda m: PAPER_PREPROCESS,
    lacks=CONVNEXT_LACKS))

register_family(Family(
    name="timm-convnext",
    describe="timm ConvNeXts (ConvNeXtBlock: no ReLU after the sum, gamma and drop_path on the branch)",
    names=lambda: ["timm:convnext_tiny", "timm:<any timm ConvNeXt>"],
    serves=lambda n: timm_arch(n, "convnext"), build=timm_build,
    matches=lambda m: _timm_matches(m, "convnext", "ConvNeXt"), walk=_timm_convnext_walk,
    preprocess=timm_preprocess, lacks=CONVNEXT_LACKS))


# ---------------------------------------------------------------------------- vision transformers
VIT_LACKS = {
    "downsample": "a ViT has no downsample block: its token grid keeps one size from the patch embedding on",
    "bn-branch": "a ViT sublayer's branch ends in a linear projection (and a layer scale in some), not a BatchNorm; "
                 "its LayerNorm opens the branch (pre-norm), no analogue of the last BatchNorm the claim reads",
}
TV_VITS = ("vit_b_16", "vit_b_32", "vit_l_16", "vit_l_32", "vit_h_14")


def global_path(grid: int) -> tuple:
    """Attention as a receptive-field path: a kernel spanning the whole ``grid`` x ``grid`` token
    map (every token sees every token), stride 1, the map's size unchanged."""
    return ((2 * grid - 1, 1, grid - 1),)


def _vit_walk(layers, patch: nn.Conv2d, prefix: int, side: int, branch_ends) -> list[Block]:
    """Blocks ``L.0`` (layer L's attention sublayer) and ``L.1`` (its MLP sublayer), L counted
    from 0 as the model's own layer index. Each sublayer's I is the stream entering it (the
    previous sublayer's O, but for 0.0: the embedded patches), B its output as added, O = I + B."""
    path = path_of(patch)
    grid = (side - geometry(patch)[0]) // geometry(patch)[1] + 1
    found = []
    for layer_index, layer in enumerate(layers):
        attention_end, mlp_end = branch_ends(layer)
        for k, (part, end, mixing) in enumerate((("attention", attention_end, global_path(grid)),
                                                 ("mlp", mlp_end, ()))):
            before, path = path, path + mixing
            found.append(Block(name=f"{layer_index}.{k}", kind="simple", channels=patch.out_channels, module=layer,
                               convs=path, input_path=before, branch_end=end, i_is_prev_o=bool(found), relu=False,
                               tokens=prefix, part=part))
    return found


def vit_roles(found) -> dict[str, list[str]]:
    """A ViT's roles: no downsample block; ``simple``: the MLP sublayers of the layers that end
    the first, second and third quarter of its depth (of 12 layers: 2.1, 5.1, 8.1, as the paper's
    1.1, 2.1, 3.1 sit in stages 1-3 of 4); ``final``: the last sublayer (the last layer's MLP)."""
    depth = len(found) // 2
    simple = list(dict.fromkeys(f"{max(depth * q // 4 - 1, 0)}.1" for q in (1, 2, 3)))
    return with_studied(found, {"downsample": [], "simple": simple, "final": [found[-1].name]})


def _tv_vit_matches(model) -> bool:
    return type(model).__name__ == "VisionTransformer" and type(model).__module__ == "torchvision.models.vision_transformer"


def _tv_vit_walk(model) -> list[Block]:
    if not isinstance(model.conv_proj, nn.Conv2d):
        raise TypeError("this torchvision ViT embeds patches with a convolution stem, not one patch convolution: "
                        "rsi reads vit_b_16, vit_b_32, vit_l_16, vit_l_32 and vit_h_14")
    return _vit_walk(list(model.encoder.layers), model.conv_proj, 1, model.image_size,
                     lambda layer: (layer.dropout, layer.mlp))


register_family(Family(
    name="torchvision-vit",
    describe="torchvision ViTs (EncoderBlock: attention and MLP sublayers, pre-norm, no ReLU after the sums)",
    names=lambda: [*TV_VITS, f"vit_b_16{CLASS_TOKEN}"], serves=lambda n: library_name(n) in TV_VITS,
    build=lambda n: _tv_build(library_name(n)), matches=_tv_vit_matches,
    walk=_tv_vit_walk, preprocess=lambda m: PAPER_PREPROCESS, lacks=VIT_LACKS, roles=vit_roles, input_side=224))


def _timm_vit_walk(model) -> list[Block]:
    from timm.models.vision_transformer import Block as TimmBlock
    odd = [f"blocks.{i} ({type(b).__name__})" for i, b in enumerate(model.blocks) if type(b) is not TimmBlock]
    if odd:
        raise TypeError(f"{', '.join(odd[:3])} of this timm ViT is not timm's pre-norm Block: rsi reads the sublayers "
                        "x + drop_path1(ls1(attn(norm1(x)))) and x + drop_path2(ls2(mlp(norm2(x)))) only")
    side = model.patch_embed.img_size
    if side is None or tuple(side) != (224, 224) or not isinstance(model.patch_embed.proj, nn.Conv2d):
        raise TypeError(f"this timm ViT takes {side} images: rsi reads 224-pixel images (pass a *_224 variant)")
    return _vit_walk(list(model.blocks), model.patch_embed.proj, model.num_prefix_tokens, 224,
                     lambda b: (b.drop_path1, b.drop_path2))


def _timm_vit_matches(model) -> bool:
    return (_timm_matches(model, "vision_transformer", "VisionTransformer")
            or _timm_matches(model, "deit", "VisionTransformerDistilled"))


register_family(Family(
    name="timm-vit",
    describe="timm ViTs and DeiTs (Block: attention and MLP sublayers with layer scale and drop-path, pre-norm)",
    names=lambda: ["timm:deit_tiny_patch16_224", "timm:vit_tiny_patch16_224", "timm:<any timm ViT or DeiT at 224>",
                   f"timm:deit_tiny_patch16_224{CLASS_TOKEN}"],
    serves=lambda n: timm_arch(library_name(n), "vision_transformer") or timm_arch(library_name(n), "deit"),
    build=lambda n: timm_build(library_name(n)),
    matches=_timm_vit_matches, walk=_timm_vit_walk, preprocess=timm_preprocess, lacks=VIT_LACKS,
    roles=vit_roles, input_side=224))
