"""Preprocessing per checkpoint and the robust checkpoint formats.

The robust formats are exercised on synthetic checkpoints built from random-init models exactly
as their libraries save them (MadryLab ``robustness``: ``{"model": state}`` with ``module.model.``
and a ``module.attacker.model.`` copy, normalization buffers inside; RobustBench:
``Sequential(normalize, model)``): the network loads as it was, and its normalization is applied
once, by rsi, to natural images and FZs alike.
"""
import numpy as np
import pytest
import torch

from rsi_core.fz.render import dequantize
from rsi_core.measure.profiles import Profile
from rsi_core.measure.study import Study
from rsi_core.model.activations import natural_activations
from rsi_core.model.anatomy import preprocess_of, provenance_of, read_taps
from rsi_core.model.images import PAPER_PREPROCESS, ImageSet, normalize
from rsi_core.model.load import WeightsError, describe, load_model

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def _madry(model) -> dict:
    net = {f"module.model.{k}": v for k, v in model.state_dict().items()}
    copy = {f"module.attacker.model.{k}": v.clone() for k, v in model.state_dict().items()}
    norm = {f"module.{p}.{b}": torch.tensor(v).view(3, 1, 1) for p in ("normalizer", "attacker.normalize")
            for b, v in (("new_mean", MEAN), ("new_std", STD))}
    return {"model": {**net, **copy, **norm}, "epoch": 90, "optimizer": {}}


class ImageNormalizer(torch.nn.Module):
    """RobustBench's normalization module (buffers ``mean`` and ``std``, [1, 3, 1, 1])."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1))


def _robustbench(model) -> dict:
    from collections import OrderedDict
    return torch.nn.Sequential(OrderedDict([("normalize", ImageNormalizer()), ("model", model)])).state_dict()


@pytest.mark.parametrize("fmt", [_madry, _robustbench])
def test_robust_checkpoints_load_as_they_are(tmp_path, model, fmt):
    path = tmp_path / "robust.pt"
    torch.save(fmt(model), path)
    robust = load_model("resnet18", str(path))
    assert provenance_of(robust).weights_id == provenance_of(model).weights_id  # the network itself, not the attacker's copy
    p = preprocess_of(robust)
    assert p.mean == MEAN and p.std == STD and "checkpoint's own" in p.source
    assert describe(robust)["preprocess"]["mean"] == MEAN
    # normalized once: an image in [0, 1] reaches the network as (x - 0.5) / 0.25
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    got = read_taps(robust, normalize(x, p), ["1.1.B"])["1.1.B"]
    want = read_taps(model, (x - 0.5) / 0.25, ["1.1.B"])["1.1.B"]
    assert torch.equal(got, want)


def test_a_robust_checkpoint_with_unknown_keys_is_refused(tmp_path, model):
    state = _madry(model)
    state["model"]["module.extra.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "odd.pt")
    with pytest.raises(WeightsError, match="MadryLab robustness checkpoint with keys rsi does not know"):
        load_model("resnet18", str(tmp_path / "odd.pt"))


def test_a_robust_checkpoint_of_another_architecture_says_so(tmp_path):
    torch.save(_madry(load_model("resnet50", "random:0")), tmp_path / "r50.pt")
    with pytest.raises(WeightsError, match="do not fit resnet18.*--model"):
        load_model("resnet18", str(tmp_path / "r50.pt"))


def test_timm_weights_use_timm_data_config():
    timm = pytest.importorskip("timm")
    m = load_model("timm:resnet18", "random:0")
    cfg = timm.data.resolve_data_config({}, model=m)
    p = preprocess_of(m)
    assert p.mean == tuple(cfg["mean"]) and p.interpolation == cfg["interpolation"]
    assert p.crop == 224 and p.resize == round(224 / cfg["crop_pct"]) and "timm data config" in p.source
    assert describe(m)["timm"] == timm.__version__


def test_images_fzs_and_keys_follow_the_preprocessing(tmp_path, model):
    torch.save(_madry(model), tmp_path / "robust.pt")
    robust = load_model("resnet18", str(tmp_path / "robust.pt"))
    p = preprocess_of(robust)
    images = ImageSet.from_dir(None)
    few = ImageSet(images.root, images.files[:3])
    mine = few.with_preprocess(p)
    assert few.preprocess == PAPER_PREPROCESS and mine.identity != few.identity  # its own cache entries
    assert mine.files_identity == few.files_identity == few.identity             # the same images
    # the same crop, another normalization: x_paper * 0.229 + 0.485 = x_mine * 0.25 + 0.5
    paper_x, mine_x = few[0], mine[0]
    std, mean = torch.tensor(PAPER_PREPROCESS.std).view(3, 1, 1), torch.tensor(PAPER_PREPROCESS.mean).view(3, 1, 1)
    torch.testing.assert_close(paper_x * std + mean, mine_x * 0.25 + 0.5, atol=1e-5, rtol=0)
    acts = natural_activations(robust, few, ["1.1"], progress=False)  # read with the checkpoint's preprocessing
    want = read_taps(robust, torch.stack([mine[i] for i in range(3)]), ["1.1.O"], centre=True)["1.1.O"]
    np.testing.assert_allclose(acts["1.1.O"], want.numpy(), rtol=1e-5, atol=1e-6)
    pixels = np.full((1, 8, 8, 3), 128, np.uint8)
    torch.testing.assert_close(dequantize(pixels, preprocess=p), torch.full((1, 3, 8, 8), (128 / 255 - 0.5) / 0.25),
                               atol=1e-6, rtol=0)
    study = Study(robust, Profile("t", 1, 2, False, 3), cache=None, images=few, progress=False)
    assert study.image_set.preprocess == p and study.describe()["preprocess"]["source"] == p.source
