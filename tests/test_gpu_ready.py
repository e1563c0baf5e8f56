"""The CUDA path's faults, caught on the CPU: nothing asks for a CUDA device when CUDA merely
looks available, TF32 is scoped to the render that asks for it, CUDA FZs have their own cache
entries, and an as-run claims run renders only the as-run bank."""
import numpy as np
import pytest
import torch

from rsi_core.cache import Cache
from rsi_core.fz import bank as bank_mod
from rsi_core.fz.bank import FZBank
from rsi_core.fz.bench import lucent_render
from rsi_core.fz.render import FZSettings, render
from rsi_core.harness.claims import Harness
from rsi_core.measure.profiles import Profile
from rsi_core.measure.study import Study
from rsi_core.model.activations import stream_centre
from rsi_core.model.device import tf32_flags


@pytest.fixture
def cuda_looks_available(monkeypatch):
    """torch says a GPU is there, and any request for a CUDA device fails the test."""
    def asked(*_, **__):
        raise AssertionError("a CPU computation asked for a CUDA device")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(torch.cuda, "_lazy_init", asked)
    # torch.optim's step asks whether the current CUDA stream is capturing a graph whenever CUDA is
    # available: a query on the process's current device, which resolve_device sets to the
    # worker's own GPU. It is torch's, not a tensor of the render, so the fake answers it.
    monkeypatch.setattr(torch.accelerator, "current_accelerator", lambda *_, **__: None)


@pytest.mark.reference
@pytest.mark.usefixtures("cuda_looks_available")
def test_the_fake_catches_lucents_own_colour_step():
    from lucent.optvis.param import color
    with pytest.raises(AssertionError, match="asked for a CUDA device"):
        color._linear_decorrelate_color(torch.zeros(1, 3, 4, 4))


@pytest.mark.usefixtures("cuda_looks_available")
def test_cpu_renders_never_touch_cuda(model, tmp_path):
    out = render(model, "1.1.B", [0, 1], FZSettings(steps=2), device="cpu", progress=False)
    assert out["images"].shape == (2, 224, 224, 3)
    out = render(model, "2.0.I", [3], FZSettings(steps=2, crop=False, target="as-run"), device="cpu", progress=False)
    assert out["images"].shape == (1, 224, 224, 3)
    for settings in (FZSettings(steps=2), FZSettings(steps=2, crop=False)):  # CUDA's batched path, on the CPU
        assert render(model, "2.1.B", [0, 1], settings, device="cpu", progress=False, batched=True)["images"].shape == (2, 224, 224, 3)
    bank = FZBank(model, Cache(tmp_path), FZSettings(steps=2), device="cpu", progress=False)
    bank.ensure({"1.1.I": [0]})
    assert bank.get("1.1.I", [0])["image"].shape == (1, 224, 224, 3)
    images = [torch.zeros(3, 224, 224)] * 3
    assert stream_centre(model, images, ["1.1.B"], progress=False)["1.1.B"].shape == (3, 64)


@pytest.mark.reference
@pytest.mark.usefixtures("cuda_looks_available")
def test_the_reference_render_never_touches_cuda_on_the_cpu(model):
    assert lucent_render(model, "1.1.B", 0, steps=2).shape == (1, 224, 224, 3)


def test_tf32_is_set_inside_a_render_only(model, monkeypatch):
    from rsi_core.fz import render as render_mod
    seen = []
    neuron = render_mod.OBJECTIVES["neuron"]

    def spy(*args):
        seen.append((torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32))
        return neuron(*args)
    monkeypatch.setitem(render_mod.OBJECTIVES, "neuron", spy)
    with tf32_flags(True, True):  # what ran before left TF32 on
        render(model, "1.1.B", [0], FZSettings(steps=1), progress=False)
        assert seen[-1] == (False, False)        # an fp32 render computes in fp32
        render(model, "1.1.B", [0], FZSettings(steps=1, target="as-run"), progress=False)
        assert seen[-1] == (False, True)         # as run: cuDNN convolutions in TF32, as the authors' torch did
        render(model, "1.1.B", [0], FZSettings(steps=1, precision="tf32"), progress=False)
        assert seen[-1] == (True, True)
        assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (True, True)


def test_natural_images_are_measured_in_strict_fp32(model):
    seen = []
    handle = model.conv1.register_forward_hook(lambda *_: seen.append(torch.backends.cudnn.allow_tf32))
    try:
        with tf32_flags(True, True):
            stream_centre(model, [torch.zeros(3, 224, 224)] * 2, ["1.1.B"], progress=False)
            assert torch.backends.cudnn.allow_tf32
    finally:
        handle.remove()
    assert seen == [False]


def test_cuda_fzs_have_their_own_cache_entries(model, tmp_path):
    cpu = FZBank(model, Cache(tmp_path), FZSettings(steps=8), device="cpu")
    gpu = FZBank(model, Cache(tmp_path), FZSettings(steps=8), device="cuda:1", batch_size=256)
    other_gpu = FZBank(model, Cache(tmp_path), FZSettings(steps=8), device="cuda:0", batch_size=256)
    assert cpu._key("1.1.B", 3) != gpu._key("1.1.B", 3) == other_gpu._key("1.1.B", 3)
    bf16 = FZBank(model, Cache(tmp_path), FZSettings(steps=8, precision="bf16"), device="cuda:1", batch_size=256)
    assert bf16._key("1.1.B", 3) != gpu._key("1.1.B", 3)


def test_an_as_run_run_renders_only_the_as_run_bank(model, tmp_path, monkeypatch):
    targets = []
    real = bank_mod.render
    monkeypatch.setattr(bank_mod, "render", lambda m, tap, chans, settings, **kw: (
        targets.append(settings.target), real(m, tap, chans, settings, **kw))[1])
    profile = Profile("tiny", 1, 2, False, 8)
    study = Study(model, profile, Cache(tmp_path), blocks=["1.1"], fz_target="as-run", progress=False)
    study.prepare()
    harness = Harness(study, tmp_path / "artifacts", fz_target="as-run")
    assert harness.primary() is study
    harness.primary().block("1.1")
    assert targets and set(targets) == {"as-run"}
    assert np.isfinite(study.block("1.1").m).all()
