"""The strict scale test (rsi_core.measure.scale_test): the statistic on synthetic tables, then a
hypothesis search for a counterexample on planted networks read with natural images."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rsi_core.cache import Cache
from rsi_core.measure import scale_test
from rsi_core.measure.metrics import tracking_test
from rsi_core.model.images import ImageSet
from rsi_core.planted import networks as P


def tables(n=200, c=3, seed=0, zoom_noise=0.1, same_mix=0.3):
    """I(x) random; B(S(x)) = I(x) + noise (a 2x counterpart); B(x) partly I(x)."""
    rng = np.random.default_rng(seed)
    i_x = rng.normal(size=(n, c))
    b_x = same_mix * i_x + rng.normal(size=(n, c))
    b_sx = np.exp(i_x) + zoom_noise * rng.normal(size=(n, c))   # monotone: Spearman ignores the exp
    i_sinvx = b_x ** 3 + zoom_noise * rng.normal(size=(n, c))
    return i_x, b_x, b_sx, i_sinvx


def test_a_2x_counterpart_passes_and_its_intervals_hold_the_difference():
    out = tracking_test(*tables())
    assert out["tracks"].all()
    assert (out["r_zoom"] > 0.9).all() and (out["r_same"] < 0.5).all()
    diff = out["r_zoom"] - out["r_same"]
    assert ((out["d_zoom"][:, 0] <= diff) & (diff <= out["d_zoom"][:, 1])).all()


def test_tracking_no_better_than_unscaled_fails():
    i_x, b_x, _, i_sinvx = tables()
    # B on the zoom tracks I only as well as B on the image itself: no scale relation
    out = tracking_test(i_x, b_x, b_x + 0.01, i_sinvx)
    assert not out["tracks"].any()
    assert (np.abs(out["d_zoom"]) < 0.1).all()


def test_weak_tracking_fails_even_when_better_than_unscaled():
    i_x, b_x, b_sx, i_sinvx = tables(zoom_noise=3.0, same_mix=0.0)
    out = tracking_test(i_x, b_x, np.log(b_sx - b_sx.min() + 1), i_sinvx, r_min=0.8)
    assert (out["r_zoom"] < 0.8).all() and not out["tracks"].any()


def test_a_silent_tap_gives_nan_and_does_not_pass():
    i_x, b_x, b_sx, i_sinvx = tables(c=2)
    b_x[:, 1] = 0.0
    b_sx[:, 1] = 0.0
    out = tracking_test(i_x, b_x, b_sx, i_sinvx)
    assert np.isnan(out["r_zoom"][1]) and not out["tracks"][1] and out["tracks"][0]


def test_bad_shapes_are_a_clear_error():
    i_x, b_x, b_sx, i_sinvx = tables()
    with pytest.raises(ValueError, match="one shape"):
        tracking_test(i_x, b_x[:-1], b_sx, i_sinvx)
    with pytest.raises(ValueError, match="at least 3 images"):
        tracking_test(i_x[:2], b_x[:2], b_sx[:2], i_sinvx[:2])


def test_strict_verdict_needs_tracking_and_balance():
    tr = {"tracks": np.array([True, True, True, False, True]), "balance": np.array([1.0, 0.2, 3.0, 1.0, np.nan])}
    assert scale_test.strict_verdict(tr).tolist() == [True, False, False, False, False]


def test_balance_is_the_gain_ratio():
    i_x, b_x, b_sx, i_sinvx = tables()
    out = tracking_test(i_x, 3 * b_x, 3 * b_sx, i_sinvx)
    np.testing.assert_allclose(out["balance"] / tracking_test(i_x, b_x, b_sx, i_sinvx)["balance"], 3.0)


# ------------------------------------------------------------- planted networks, natural images


@pytest.fixture(scope="module")
def images():
    return ImageSet.from_dir(None)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return Cache(tmp_path_factory.mktemp("scaled"))


#: drawn against the positives: every decoy kind (other orientation, 45 degrees, other family,
#: texture, opposite polarity, the same pattern at 1.5s or at s) and every other role (skip,
#: overwrite and inhibit have B = I's pattern at 2s, but unbalanced gains)
AGAINST = [("decoy-same-scale", "")] + [("decoy-unrelated", k) for k in P.UNRELATED_KINDS] + \
          [(r, "") for r in ("mix", "skip", "overwrite", "inhibit")]


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2 ** 16), block=st.sampled_from(P.STUDIED_BLOCKS),
       picks=st.lists(st.integers(0, len(AGAINST) - 1), min_size=3, max_size=4))
def test_no_counterexample_strict_test_passes_exactly_the_planted_positives(images, cache, seed, block, picks):
    """Search for a counterexample: a planted scale-invariant channel (B = I's pattern at 2s,
    any gain ratio in [0.8, 1.25], any pattern, scale, polarity, angle) that fails the strict
    test, or a channel of any other role or decoy kind that passes it. No FZs are needed: the
    test reads natural images."""
    rng = np.random.default_rng(seed)
    chans = [P.random_channel(rng, "scale") for _ in range(2)]
    chans += [P.random_channel(rng, *AGAINST[k]) for k in picks]
    spec = P.PlantedSpec(blocks={block: tuple(chans)}, name=f"strict-{block}-{seed}")
    model = P.build(spec)
    out = scale_test.strict_scale(model, images, block, spec.channels(block), cache, progress=False)
    for k, ch in enumerate(chans):
        assert bool(out["passes"][k]) == ch.scale_invariant, (
            ch.describe(), {n: out[n][k] for n in ("r_zoom", "r_shrink", "r_same", "d_zoom", "d_shrink")})


def test_scaled_pass_is_cached_by_block_and_channels(images, cache):
    spec = P.benchmark_spec(0)
    model = P.build(spec)
    chans = spec.channels("1.1")[:2]
    a = scale_test.scaled_activations(model, images, "1.1", chans, cache, progress=False)
    assert a["i_x"].shape == (len(images), 2)
    key_files = list(cache.root.rglob("scaled-*.npz"))
    b = scale_test.scaled_activations(model, images, "1.1", chans, cache, progress=False)
    assert list(cache.root.rglob("scaled-*.npz")) == key_files  # read back, not computed again
    np.testing.assert_array_equal(a["b_sx"], b["b_sx"])
