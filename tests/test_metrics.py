"""Tests for rsi_core.measure.metrics: hand-computed cases, geometry of S / S_inv, properties."""

import math

import numpy as np
import pytest
import scipy.stats
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from torchvision.models.resnet import BasicBlock, Bottleneck

from rsi_core.measure.metrics import (
    MIX_BINS,
    anova_two_groups,
    binomial_lower_bound,
    failed_fzs,
    hypergeom_overlap_p,
    mix_ratio,
    rowwise_spearman,
    scale_criteria,
    scale_down,
    scale_metric,
    scale_up,
    spearman,
    top_mixes,
    weight_magnitudes,
)

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)

# --------------------------------------------------------------------------- mix ratio


def test_mix_ratio_hand_cases():
    num = [2, 1, -1, -1, 10, 0, 3]
    den = [1, -1, 1, -1, 1, 2, 0]
    m = mix_ratio(num, den)
    np.testing.assert_allclose(m, [2, 5, 0, 5, 5, 0, 5])
    assert m.dtype == np.float64
    np.testing.assert_array_equal(failed_fzs(num, den), [0, 0, 0, 1, 0, 0, 0])


def test_mix_ratio_plain_ratio_and_custom_clamp():
    np.testing.assert_allclose(mix_ratio([1.0, 3.0, 0.5], [4.0, 2.0, 1.0]), [0.25, 1.5, 0.5])
    np.testing.assert_allclose(mix_ratio([10.0, 1.0, 1.0], [1.0, -2.0, 2.0], clamp=3.0), [3, 3, 0.5])


def test_mix_bins():
    assert len(MIX_BINS) == 21
    assert MIX_BINS[0] == 0 and MIX_BINS[-1] == 5
    np.testing.assert_allclose(np.diff(MIX_BINS), 0.25)
    # a clamped skip (M = 5) still lands in the last bin
    counts, _ = np.histogram([0.1, 1.0, 5.0], MIX_BINS)
    assert counts[0] == 1 and counts[4] == 1 and counts[-1] == 1


def test_top_mixes():
    m = np.array([0.5, 1.125, 0.875, 1.0, 5.0, 0.8])  # exact binary values: a true tie
    ch = [10, 11, 12, 13, 14, 15]
    assert top_mixes(m, ch) == [13, 11, 12]
    assert top_mixes(m, ch, k=1) == [13]
    assert top_mixes(m, [15, 14, 13, 12, 11, 10], k=2) == [12, 13]
    # ties broken by channel id, regardless of order in the array
    m2 = np.array([1.25, 0.75, 2.0, 1.25])
    assert top_mixes(m2, [7, 3, 1, 2], k=3) == [2, 3, 7]
    # NaN never beats a real value
    assert top_mixes(np.array([np.nan, 4.0]), [0, 1], k=1) == [1]
    with pytest.raises(ValueError):
        top_mixes(np.zeros(3), [0, 1])


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.float64, 8, elements=finite), hnp.arrays(np.float64, 8, elements=finite))
def test_mix_ratio_in_range(num, den):
    m = mix_ratio(num, den)
    assert np.all((m >= 0) & (m <= 5))
    assert np.all(m[den <= 0] == 5)
    assert np.all(m[(num <= 0) & (den > 0)] == 0)


@settings(max_examples=60, deadline=None)
@given(finite, finite, st.floats(1e-3, 1e6))
def test_mix_ratio_monotone_in_numerator(a, b, den):
    lo, hi = sorted([a, b])
    m = mix_ratio([lo, hi], [den, den])
    assert m[0] <= m[1]


# --------------------------------------------------------------------------- S and S_inv


def _square(side, size=224, n=1):
    x = torch.zeros(n, 3, size, size)
    a = (size - side) // 2
    x[..., a : a + side, a : a + side] = 1.0
    return x


def _run_through_centre(line):
    on = (line > 0.5).tolist()
    c = len(on) // 2
    assert on[c]
    lo, hi = c, c
    while lo > 0 and on[lo - 1]:
        lo -= 1
    while hi < len(on) - 1 and on[hi + 1]:
        hi += 1
    return hi - lo + 1


def _side(img):
    """Length of the bright run through the image centre, along the centre row and column.

    Only the central run counts: S_inv's reflection padding mirrors the content up to the
    centre, so copies of the square also appear near the borders.
    """
    h, w = img.shape[-2:]
    return _run_through_centre(img[0, 0, h // 2]), _run_through_centre(img[0, 0, :, w // 2])


def test_scale_up_doubles_a_centred_square():
    x = _square(40)
    y = scale_up(x)
    assert y.shape == x.shape
    for s in _side(y):
        assert abs(s - 80) <= 2
    # still centred
    nz = torch.nonzero(y[0, 0] > 0.5)
    assert abs(nz.float().mean().item() - 111.5) < 1


def test_scale_down_halves_a_centred_square():
    x = _square(40)
    for aa in (False, True):
        y = scale_down(x, antialias=aa)
        assert y.shape == x.shape
        for s in _side(y):
            assert abs(s - 20) <= 2
    y = scale_down(x)
    nz = torch.nonzero(y[0, 0, 56:168, 56:168] > 0.5) + 56
    assert abs(nz.float().mean().item() - 111.5) < 1
    # reflection copies: the small square (small-image cols 46..65) mirrors to cols 0..10
    assert y[0, 0, 112, 0] > 0.5 and y[0, 0, 112, 30] < 0.5


@pytest.mark.parametrize("fn", [scale_up, scale_down, lambda t: scale_down(t, antialias=True)])
def test_scaling_keeps_constant_images_constant(fn):
    x = torch.full((2, 3, 224, 224), -1.7)  # normalized values may be negative
    x[:, 1] = 0.3
    y = fn(x)
    assert y.shape == x.shape
    torch.testing.assert_close(y, x)


def test_scaling_any_batch_and_size():
    x = torch.randn(5, 3, 64, 64)
    assert scale_up(x).shape == x.shape
    assert scale_down(x).shape == x.shape
    assert scale_down(torch.randn(1, 3, 30, 30)).shape == (1, 3, 30, 30)  # 30 // 4 != 30 // 2 / 2
    assert scale_down(torch.randn(3, 224, 224)).shape == (3, 224, 224)  # unbatched


def test_scale_up_is_bilinear_zoom_of_centre():
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    ref = F.interpolate(x[..., 56:168, 56:168], size=(224, 224), mode="bilinear", align_corners=False)
    torch.testing.assert_close(scale_up(x), ref)


def test_scale_down_default_is_unantialiased_bilinear_with_reflection():
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    y = scale_down(x)
    # centre = plain bilinear half-size (torchvision 0.15 tensor Resize, no antialias)
    small = F.interpolate(x, size=(112, 112), mode="bilinear", align_corners=False)
    torch.testing.assert_close(y[..., 56:168, 56:168], small)
    # borders mirror the centre without repeating the edge pixel (reflect, not replicate/zero)
    torch.testing.assert_close(y[..., 56:168, 55], small[..., :, 1])
    torch.testing.assert_close(y[..., 56:168, 0], small[..., :, 56])
    torch.testing.assert_close(y[..., 223, 56:168], small[..., 110 - 55, :])


def test_antialias_changes_high_frequency_but_not_constant():
    noise = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    a, b = scale_down(noise, antialias=False), scale_down(noise, antialias=True)
    assert (a - b).abs().max() > 0.05
    # antialiasing smooths more: less variance left
    assert b[..., 56:168, 56:168].var() < a[..., 56:168, 56:168].var()
    const = torch.full((1, 3, 224, 224), 0.25)
    torch.testing.assert_close(scale_down(const, antialias=False), scale_down(const, antialias=True))


# --------------------------------------------------------------------------- scale criteria / metric


def test_scale_criteria_truth_table():
    # columns: c0 all pass; c1 M too low; c2 M too high; c3 crit 2 fails; c4 crit 3 fails;
    # c5 M exactly 2/3 (strict); c6 negative B(X_I) -> ReLU 0 < small positive passes;
    # c7 B(S(X_I)) equal to B(X_I) (strict) fails; c8 negative B(S(X_I)) with negative B(X_I)
    m = np.array([1.0, 0.5, 1.6, 1.0, 1.0, 2 / 3, 1.2, 1.0, 1.0])
    b_xi = np.array([1.0, 1.0, 1.0, 2.0, 1.0, 1.0, -3.0, 1.0, -2.0])
    b_s_xi = np.array([2.0, 2.0, 2.0, 1.0, 2.0, 2.0, 0.1, 1.0, -1.0])
    i_xb = np.array([0.5, 0.5, 0.5, 0.5, 0.5, 0.5, -1.0, 0.5, 0.5])
    i_sinv_xb = np.array([1.0, 1.0, 1.0, 1.0, 0.4, 1.0, 0.01, 1.0, 1.0])
    got = scale_criteria(m, b_xi=b_xi, b_s_xi=b_s_xi, i_xb=i_xb, i_sinv_xb=i_sinv_xb)
    np.testing.assert_array_equal(got, [1, 0, 0, 0, 0, 0, 1, 0, 0])
    got = scale_criteria(m, b_xi, b_s_xi, i_xb, i_sinv_xb, use_mix=False)
    np.testing.assert_array_equal(got, [1, 1, 1, 0, 0, 1, 1, 0, 0])
    got = scale_criteria(None, b_xi, b_s_xi, i_xb, i_sinv_xb, use_mix=False)
    assert got.dtype == bool and got.sum() == 5
    assert scale_criteria(np.array([1.49, 1.5]), [0, 0], [1, 1], [0, 0], [1, 1]).tolist() == [True, False]


def test_scale_metric_hand_computed():
    b_xi = np.array([1.0, -2.0])
    b_s_xi = np.array([3.0, 1.0])
    b_xb = np.array([4.0, 2.0])
    i_xb = np.array([-1.0, 2.0])
    i_sinv_xb = np.array([2.0, 1.0])
    i_xi = np.array([8.0, 4.0])
    # c0: (3-1)/4 + (2-0)/8 = 0.75 ; c1: (1-0)/2 + (1-2)/4 = 0.25
    np.testing.assert_allclose(scale_metric(b_xi, b_s_xi, b_xb, i_xb, i_sinv_xb, i_xi), [0.75, 0.25])
    np.testing.assert_allclose(
        scale_metric(b_xi=[0.0], b_s_xi=[0.0], b_xb=[1.0], i_xb=[0.0], i_sinv_xb=[-3.0], i_xi=[2.0]), [-1.5]
    )


def test_as_run_clips_the_scaled_response():
    """SPEC "What the authors' code optimized": as run, criteria 2 and 3 and SM use
    ReLU(variant) - ReLU(base) divided by B(X_B) / I(X_I); as written, variant - ReLU(base).
    The forms disagree exactly where the scaled response is negative, the base <= 0 and the
    denominator negative: as written the negative delta over a negative denominator passes."""
    from rsi_core.measure.metrics import scale_criteria_parts, scale_criteria_read, scale_deltas

    # c0 both pass; c1 negative zoomed response, base <= 0, negative B(X_B): the forms disagree;
    # c2 the same with a positive base (both pass, the flipped sign); c3 negative shrunk response,
    # base < 0, negative I(X_I): disagree on criterion 3; c4 negative variant, positive denominator
    m = np.ones(5)
    b_xi, b_s_xi, b_xb = np.array([1.0, -1.0, 0.5, 1.0, -1.0]), np.array([2.0, -0.5, -2.0, 2.0, -0.5]), \
        np.array([1.0, -1.0, -1.0, 1.0, 1.0])
    i_xb, i_sinv_xb, i_xi = np.array([0.5, 0.5, 0.5, -2.0, 0.5]), np.array([1.0, 1.0, 1.0, -1.0, 1.0]), \
        np.array([2.0, 2.0, 2.0, -4.0, 2.0])
    d2, d3 = scale_deltas(b_xi, b_s_xi, i_xb, i_sinv_xb, "as-written")
    np.testing.assert_allclose(d2, [1.0, -0.5, -2.5, 1.0, -0.5])
    np.testing.assert_allclose(d3, [0.5, 0.5, 0.5, -1.0, 0.5])
    d2, d3 = scale_deltas(b_xi, b_s_xi, i_xb, i_sinv_xb, "as-run")
    np.testing.assert_allclose(d2, [1.0, 0.0, -0.5, 1.0, 0.0])
    np.testing.assert_allclose(d3, [0.5, 0.5, 0.5, 0.0, 0.5])
    _, c2, c3 = scale_criteria_parts(m, b_xi, b_s_xi, i_xb, i_sinv_xb, reading="as-run", b_xb=b_xb, i_xi=i_xi)
    assert c2.tolist() == [True, False, True, True, False] and c3.tolist() == [True, True, True, False, True]
    run = scale_criteria_read(m, b_xi, b_s_xi, i_xb, i_sinv_xb, "as-run", b_xb=b_xb, i_xi=i_xi)
    assert run.tolist() == [True, False, True, False, False]
    # the unclipped form (rsi before issue 29) would pass c1 and c3 as run
    with np.errstate(divide="ignore", invalid="ignore"):
        unclipped = ((b_s_xi - np.maximum(b_xi, 0)) / b_xb > 0) & ((i_sinv_xb - np.maximum(i_xb, 0)) / i_xi > 0)
    assert unclipped.tolist() == [True, True, True, True, False]
    # as written nothing changes: a negative variant is a negative delta
    assert scale_criteria_read(m, b_xi, b_s_xi, i_xb, i_sinv_xb).tolist() == [True, False, False, False, False]
    # SM: the same deltas over the same denominators
    np.testing.assert_allclose(scale_metric(b_xi, b_s_xi, b_xb, i_xb, i_sinv_xb, i_xi, "as-run"),
                               [1.25, 0.25, 0.75, 1.0, 0.25])
    np.testing.assert_allclose(scale_metric(b_xi, b_s_xi, b_xb, i_xb, i_sinv_xb, i_xi),
                               [1.25, 0.75, 2.75, 1.25, -0.25])
    with pytest.raises(ValueError, match="as-written"):
        scale_deltas(b_xi, b_s_xi, i_xb, i_sinv_xb, "as-ran")


def test_block_result_reads_sm_and_criteria_by_its_reading():
    from rsi_core.measure.study import BlockResult

    vals = dict(channels=np.array([0, 1]), i_xi=np.array([2.0, 2.0]), b_xi=np.array([-1.0, 1.0]),
                o_xi=np.array([1.0, 1.0]), i_xb=np.array([0.5, 0.5]), b_xb=np.array([-1.0, 1.0]),
                o_xb=np.array([1.0, 1.0]), b_s_xi=np.array([-0.5, 2.0]), i_sinv_xb=np.array([1.0, 1.0]))
    written, run = BlockResult("1.1", "simple", **vals), BlockResult("1.1", "simple", reading="as-run", **vals)
    np.testing.assert_allclose(written.sm, [0.75, 1.25])
    np.testing.assert_allclose(run.sm, [0.25, 1.25])
    assert run.scale_invariant().tolist() == [False, True]
    assert run.table()["sm"] == [0.25, 1.25]


# --------------------------------------------------------------------------- weights


def _set(param, values):
    with torch.no_grad():
        param.copy_(torch.as_tensor(values, dtype=param.dtype).reshape(param.shape))


def test_weight_magnitudes_basic_block():
    blk = BasicBlock(4, 4)
    _set(blk.bn2.weight, [-1.0, 2.0, -3.0, 0.5])
    _set(blk.bn1.weight, [9.0, 9.0, 9.0, 9.0])
    w = torch.zeros(4, 4, 3, 3)
    signs = torch.tensor([1.0, -1.0]).repeat(18)[:36].reshape(4, 3, 3)
    for c in range(4):
        w[c] = (c + 1) * signs  # mean |w[c]| = c + 1
    w[2, 0, 0, 0] = -3.0 + 36.0  # one entry of magnitude 33: mean = (35 * 3 + 33) / 36
    _set(blk.conv2.weight, w)
    bn, conv = weight_magnitudes(blk)
    assert bn.dtype == np.float64 and conv.dtype == np.float64
    np.testing.assert_allclose(bn, [1.0, 2.0, 3.0, 0.5])
    np.testing.assert_allclose(conv, [1.0, 2.0, (35 * 3 + 33) / 36, 4.0], rtol=1e-6)


def test_weight_magnitudes_bottleneck():
    blk = Bottleneck(16, 4)  # conv3: 4 -> 16 channels (expansion 4), 1x1
    bn3 = np.arange(16) - 7.5
    _set(blk.bn3.weight, bn3)
    _set(blk.bn2.weight, np.full(4, 100.0))
    w = torch.zeros(16, 4, 1, 1)
    w[:, 0, 0, 0] = torch.arange(16.0)
    w[:, 1, 0, 0] = -torch.arange(16.0)
    _set(blk.conv3.weight, w)
    bn, conv = weight_magnitudes(blk)
    assert bn.shape == conv.shape == (16,)
    np.testing.assert_allclose(bn, np.abs(bn3))
    np.testing.assert_allclose(conv, np.arange(16) / 2)


def test_weight_magnitudes_rejects_other_modules():
    with pytest.raises(TypeError):
        weight_magnitudes(torch.nn.Linear(2, 2))


# --------------------------------------------------------------------------- statistics wrappers


def test_spearman_matches_scipy_and_handles_degenerate(recwarn):
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    y = np.array([5.0, 6.0, 7.0, 8.0, 7.0])
    rho, p = spearman(x, y)
    ref = scipy.stats.spearmanr(x, y)
    assert rho == pytest.approx(ref.statistic) and p == pytest.approx(ref.pvalue)
    assert spearman(x, -x)[0] == pytest.approx(-1.0)
    for a, b in [([1.0], [2.0]), ([], []), ([1, 1, 1], [1, 2, 3]), ([1, 2, 3], [4, 4, 4])]:
        assert all(math.isnan(v) for v in spearman(a, b))
    assert len(recwarn) == 0
    with pytest.raises(ValueError):
        spearman([1, 2, 3], [1, 2])


def test_anova_matches_hand_computation(recwarn):
    a, b = [1.0, 2.0, 3.0], [4.0, 5.0, 6.0]
    # grand mean 3.5; SSB = 3*1.5^2*2 = 13.5 (df 1); SSW = 2 + 2 = 4 (df 4): F = 13.5
    f, p = anova_two_groups(a, b)
    assert f == pytest.approx(13.5)
    assert p == pytest.approx(scipy.stats.f.sf(13.5, 1, 4))
    for x, y in [([1.0], [2.0, 3.0]), ([1.0, 2.0], []), ([2.0, 2.0], [2.0, 2.0, 2.0])]:
        assert all(math.isnan(v) for v in anova_two_groups(x, y))
    f, p = anova_two_groups([1.0, 1.0], [3.0, 3.0])  # perfectly separated constant groups
    assert f == math.inf and p == 0.0
    assert len(recwarn) == 0


def test_rowwise_spearman_matches_scipy_on_positive_rows():
    rng = np.random.default_rng(0)
    n, c = 40, 12
    i = rng.normal(size=(n, c))
    b = 0.5 * i + rng.normal(size=(n, c))
    b[:, 3] = -i[:, 3] ** 3  # perfectly anti-monotone on every row
    i[:, 5] = -np.abs(i[:, 5])  # no positive rows -> NaN
    i[:, 6] = -1.0
    i[:2, 6] = [1.0, 2.0]  # only 2 positive rows -> NaN
    b[:, 7] = 4.0  # constant block column -> NaN
    b[:, 8] = np.round(b[:, 8])  # ties
    got = rowwise_spearman(b, i)
    assert got.shape == (c,)
    for k in range(c):
        mask = i[:, k] > 0
        if k in (5, 6, 7):
            assert math.isnan(got[k])
            continue
        ref = scipy.stats.spearmanr(b[mask, k], i[mask, k]).statistic
        assert got[k] == pytest.approx(ref, abs=1e-12), k
    assert got[3] == pytest.approx(-1.0)
    # rows with I <= 0 must not matter: scramble B there
    b2 = b.copy()
    b2[i <= 0] = rng.normal(size=(i <= 0).sum()) * 100
    np.testing.assert_allclose(rowwise_spearman(b2, i), got, equal_nan=True)


def test_rowwise_spearman_shapes():
    with pytest.raises(ValueError):
        rowwise_spearman(np.zeros((3, 2)), np.zeros((3, 3)))


@settings(max_examples=30, deadline=None)
@given(
    hnp.arrays(np.float64, (12, 3), elements=st.integers(-50, 50).map(float)),
    hnp.arrays(np.float64, (12, 3), elements=st.integers(-50, 50).map(float)),
)
def test_rowwise_spearman_invariant_to_monotone_transforms(b, i):
    base = rowwise_spearman(b, i)
    # strictly increasing maps; the I map keeps the sign so the I > 0 mask is unchanged
    b2 = np.arctan(b / 10) * 7 - 3
    i2 = np.sign(i) * np.abs(i) ** 1.5 * 2
    got = rowwise_spearman(b2, i2)
    assert np.array_equal(np.isnan(base), np.isnan(got))
    np.testing.assert_allclose(got, base, atol=1e-9, equal_nan=True)
    assert np.all(np.isnan(base) | (np.abs(base) <= 1))
    # a decreasing map of B flips the sign
    np.testing.assert_allclose(rowwise_spearman(-b, i), -base, atol=1e-9, equal_nan=True)


# --------------------------------------------------------------------------- claim statistics


def test_binomial_lower_bound_known_values():
    assert binomial_lower_bound(0, 10) == 0.0
    assert binomial_lower_bound(10, 10) == pytest.approx(0.05 ** 0.1)  # k = n: alpha^(1/n)
    assert binomial_lower_bound(1, 1) == pytest.approx(0.05)
    # two-sided 90% Clopper-Pearson interval for 5/10 is (0.2224, 0.7776)
    assert binomial_lower_bound(5, 10) == pytest.approx(0.2224, abs=1e-4)
    assert binomial_lower_bound(5, 10, confidence=0.99) < binomial_lower_bound(5, 10)
    # 60 of 64 overwrite channels: share clearly above 1/2
    assert binomial_lower_bound(60, 64) > 0.5
    assert binomial_lower_bound(33, 64) < 0.5
    with pytest.raises(ValueError):
        binomial_lower_bound(5, 4)


def test_hypergeom_overlap_p_known_values():
    pop = set(range(10))
    # draw 2 of 10, both in a paper set of 2: 1 / C(10, 2)
    assert hypergeom_overlap_p(pop, {0, 1}, {0, 1}) == pytest.approx(1 / 45)
    # draw 3, paper set 2, overlap 1: 1 - C(8,3)/C(10,3) = 64/120
    assert hypergeom_overlap_p(pop, {0, 1}, {1, 5, 6}) == pytest.approx(64 / 120)
    assert hypergeom_overlap_p(pop, {0, 1}, {5, 6, 7}) == 1.0
    # paper ids outside the population are ignored: same as paper set {0, 1}
    assert hypergeom_overlap_p(pop, {0, 1, 99}, {0, 1}) == pytest.approx(1 / 45)
    with pytest.raises(ValueError):
        hypergeom_overlap_p(pop, {0}, {0, 42})
