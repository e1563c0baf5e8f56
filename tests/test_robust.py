"""Study.robust (appendix A.3) on a planted network, recomputed independently.

Each FZ is replaced by the 9 natural images that most activate that tap's centre neuron of the
channel, activations averaged over the nine; S and S_inv are applied to those images. Here the
nine are found and every average is computed again from full centre-activation tables.
"""
import numpy as np
import pytest
import torch

from rsi_core.cache import Cache
from rsi_core.measure import metrics
from rsi_core.measure.profiles import Profile
from rsi_core.measure.study import Study
from rsi_core.model.anatomy import TapCapture
from rsi_core.model.images import ImageSet
from rsi_core.planted import networks as P


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    model = P.build(P.benchmark_spec(0))
    profile = Profile("robust-test", steps=2, channels_per_block=None, paper_channels=False, natural_images=24)
    return Study(model, profile, Cache(tmp_path_factory.mktemp("cache")), images=ImageSet.from_dir(None),
                 blocks=["1.1", "2.0"], progress=False, lists={})


def _centre(model, x, tap):
    with TapCapture(model, [tap], centre=True) as cap, torch.no_grad():
        return cap(x)[tap].double().numpy()


@pytest.mark.parametrize("block", ["1.1", "2.0"])
def test_robust_is_the_top9_average(study, block):
    images = torch.stack([study.image_set[i] for i in range(len(study.image_set))])
    assert len(images) == 24
    acts = {t: _centre(study.model, images, f"{block}.{t}") for t in "IBO"}
    r = study.robust(block)
    chans = study.channels(block)
    assert list(r.channels) == chans
    for n, c in enumerate(chans):
        top_i = np.argsort(-acts["I"][:, c], kind="stable")[:9]
        top_b = np.argsort(-acts["B"][:, c], kind="stable")[:9]
        assert r.i_xi[n] == pytest.approx(acts["I"][top_i, c].mean(), rel=1e-4, abs=1e-5)
        assert r.b_xi[n] == pytest.approx(acts["B"][top_i, c].mean(), rel=1e-4, abs=1e-5)
        assert r.o_xi[n] == pytest.approx(acts["O"][top_i, c].mean(), rel=1e-4, abs=1e-5)
        assert r.b_xb[n] == pytest.approx(acts["B"][top_b, c].mean(), rel=1e-4, abs=1e-5)
        assert r.i_xb[n] == pytest.approx(acts["I"][top_b, c].mean(), rel=1e-4, abs=1e-5)
        # no other nine images give the I tap a larger mean: they are the top nine
        assert r.i_xi[n] >= np.sort(acts["I"][:, c])[-9:].mean() - 1e-5
        zoomed = _centre(study.model, metrics.scale_up(images[top_i]), f"{block}.B")[:, c]
        shrunk = _centre(study.model, metrics.scale_down(images[top_b], antialias=study.antialias), f"{block}.I")[:, c]
        assert r.b_s_xi[n] == pytest.approx(zoomed.mean(), rel=1e-4, abs=1e-5)
        assert r.i_sinv_xb[n] == pytest.approx(shrunk.mean(), rel=1e-4, abs=1e-5)
    # the criteria read these averages exactly as they read FZ activations
    np.testing.assert_array_equal(r.scale_invariant(), metrics.scale_criteria(
        r.m, r.b_xi, r.b_s_xi, r.i_xb, r.i_sinv_xb))
    assert study.robust(block) is r          # computed once


@pytest.mark.parametrize("block", ["1.1", "2.0"])
def test_robust_as_run_averages_relu_of_each_image(study, block):
    """Under the "as-run" reading the criteria's terms, the scaled ones included, are mean(ReLU(a))
    over the nine (the authors' ``mean(clip(a, 0))``), the other averages are unchanged, and the
    criteria are the as-run ones."""
    images = torch.stack([study.image_set[i] for i in range(len(study.image_set))])
    acts = {t: _centre(study.model, images, f"{block}.{t}") for t in "IB"}
    run = study.variant(target="as-run")
    assert run.reading == "as-run" and study.reading == "as-written"
    r, w = run.robust(block), study.robust(block)
    assert r.reading == "as-run"
    for n, c in enumerate(study.channels(block)):
        top_i = np.argsort(-acts["I"][:, c], kind="stable")[:9]
        top_b = np.argsort(-acts["B"][:, c], kind="stable")[:9]
        assert r.b_xi[n] == pytest.approx(np.maximum(acts["B"][top_i, c], 0).mean(), rel=1e-4, abs=1e-5)
        assert r.i_xb[n] == pytest.approx(np.maximum(acts["I"][top_b, c], 0).mean(), rel=1e-4, abs=1e-5)
        # the scaled responses are clipped too (SPEC: measure_invariance's mean(clip(variant, 0)))
        zoomed = _centre(study.model, metrics.scale_up(images[top_i]), f"{block}.B")[:, c]
        shrunk = _centre(study.model, metrics.scale_down(images[top_b], antialias=study.antialias), f"{block}.I")[:, c]
        assert r.b_s_xi[n] == pytest.approx(np.maximum(zoomed, 0).mean(), rel=1e-4, abs=1e-5)
        assert r.i_sinv_xb[n] == pytest.approx(np.maximum(shrunk, 0).mean(), rel=1e-4, abs=1e-5)
    for k in ("i_xi", "o_xi", "b_xb", "o_xb"):
        np.testing.assert_allclose(getattr(r, k), getattr(w, k), rtol=1e-6)
    np.testing.assert_array_equal(r.scale_invariant(), metrics.scale_criteria_read(
        r.m, r.b_xi, r.b_s_xi, r.i_xb, r.i_sinv_xb, "as-run", b_xb=r.b_xb, i_xi=r.i_xi))
