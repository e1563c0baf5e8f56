"""The census's own seed noise (rsi_core.verdicts.verdict: Flips, census_class, census_sd): a
second FZ seed on a power-sized random subsample, the flip rate's upper bound turned into bounds
for each share, count and difference; the shipped table only where no second seed exists; more
noise never makes a verdict easier."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rsi_core.measure.profiles import Profile, get_profile, second_seed_channels, second_seed_size
from rsi_core.verdicts import claims as C
from rsi_core.verdicts import verdict as V

# ----------------------------------------------------------------------------- the noise itself

def test_variance_of_a_census_share_is_the_flip_rate_over_2n():
    """Var(share) = sum q_c (1 - q_c) / n^2 and two seeds disagree with probability 2 q (1 - q): so a
    census of n channels with flip rate F has sd sqrt(F / 2n). Checked by simulation."""
    rng = np.random.default_rng(0)
    q = rng.uniform(0, 1, 400)
    seeds = rng.random((4000, 400)) < q                     # 4000 FZ seeds of a 400-channel block
    f = (seeds[0::2] != seeds[1::2]).mean()                  # flip rate between seed pairs
    assert seeds.mean(axis=1).std() == pytest.approx(np.sqrt(f / (2 * 400)), rel=0.05)
    assert V.census_sd(400, V.Flips(int(round(f * 1000)), 1000)) >= np.sqrt(f / 800)   # the upper bound is wider


def test_paired_channels_count_as_the_mean_of_both_seeds():
    first, second = np.array([0.5, 0.5, 2.0, 2.0]), np.array([0.5, 2.0, 2.0, 0.5])
    k, flips = V.census_class(lambda m: m < 1, np.r_[np.full(6, 0.5), np.full(4, 2.0)], (first, second), "overwrite",
                              census=True)
    assert k == 6 and flips == V.Flips(2, 4, V.IN_RUN, paired=4)
    k, flips = V.census_class(lambda m: m < 1, np.full(10, 0.5), (np.full(4, 0.5), np.full(4, 2.0)), "overwrite",
                              census=True)
    assert k == 8 and flips.flips == 4     # the 4 paired channels left the class under seed 2: each counts 1/2
    # half the variance for the paired channels
    assert V.census_sd(10, V.Flips(2, 10, paired=10)) == pytest.approx(V.census_sd(10, V.Flips(2, 10)) / np.sqrt(2))
    k, flips = V.census_class(lambda m: m < 1, np.full(10, 0.5), None, "overwrite", census=False)
    assert (k, flips) == (10, None)


def test_no_second_seed_falls_back_to_the_shipped_table_and_says_so():
    k, flips = V.census_class(lambda m: m < 1, np.full(10, 0.5), None, "overwrite", census=True)
    table = V._noise_table(str(V.NOISE_FILE))["sources"]
    worst = max(table.values(), key=lambda s: s["pooled"]["overwrite"]["flips"] / s["pooled"]["n"])
    assert flips.flips == worst["pooled"]["overwrite"]["flips"] and flips.pairs == worst["pooled"]["n"]
    assert flips.source.startswith("fallback: shipped table") and flips.paired == 0
    with pytest.raises(ValueError, match="no seed noise for 'colour'"):
        V.table_flips("colour")
    with pytest.raises(ValueError, match="flips"):
        V.share_test(5, 10, 0.5, census=True)


def test_every_census_part_records_its_noise():
    m = {b: np.r_[np.full(90, 0.4), np.full(38, 2.0)] for b in ("2.0", "3.0", "4.0")}
    pairs = {"2.0": (np.full(20, 0.4), np.full(20, 0.4)), "3.0": None, "4.0": (np.full(20, 0.4), np.full(20, 2.0))}
    v = C.downsample_overwrite(m, dict.fromkeys(m, True), pairs)
    assert v.measured["2.0"]["noise"]["source"] == V.IN_RUN and v.measured["2.0"]["noise"]["flips"] == 0
    assert v.measured["3.0"]["noise"]["source"].startswith("fallback")
    assert v.measured["4.0"]["noise"]["flips"] == 20
    assert "seed-to-seed noise" in v.statistic


def test_second_seed_size_meets_its_power_statement():
    """With no flip seen, the pairs bound a census share to +-2% (one-sided 95%), or the whole block
    is paired; resnet18's sizes."""
    assert [second_seed_size(n) for n in (64, 128, 256, 512)] == [64, 78, 39, 19]
    for n in (10, 64, 100, 128, 256, 512, 2048):
        m = second_seed_size(n)
        half = V.Z * V.census_sd(n, V.Flips(0, m))
        assert m == n or (half <= 0.02 and V.Z * V.census_sd(n, V.Flips(0, m - 1)) > 0.02)


def test_second_seed_subsample_is_random_fixed_and_census_only():
    paper, quick = get_profile("paper"), get_profile("quick")
    chans = second_seed_channels(paper, "3.0", 256)
    assert len(chans) == 39 and chans == sorted(set(chans)) and chans == second_seed_channels(paper, "3.0", 256)
    assert chans != second_seed_channels(paper, "3.1", 256)            # drawn per block
    assert chans != list(range(39)) and max(chans) > 128               # not the first channels
    assert second_seed_channels(quick, "3.0", 256) == []               # a sample has no second seed
    assert second_seed_channels(Profile("x", 1, None, False, None, second_seed=False), "3.0", 256) == []
    assert all(get_profile(p).second_seed for p in ("paper", "census-planted"))


# ----------------------------------------------------------------------------- more noise is never easier

@settings(max_examples=300, deadline=None)
@given(n=st.integers(1, 600), frac=st.floats(0, 1), t=st.floats(0.01, 0.99), pairs=st.integers(1, 100),
       f=st.lists(st.integers(0, 100), min_size=2, max_size=2), direction=st.sampled_from(["greater", "less"]),
       tol=st.floats(0.01, 0.2))
def test_more_seed_noise_never_makes_a_verdict_easier(n, frac, t, pairs, f, direction, tol):
    """A verdict may only move towards inconclusive as the flip count grows: never inconclusive ->
    holds, fails -> holds, or inconclusive -> fails; for shares, all, none, counts and differences."""
    lo, hi = sorted(min(x, pairs) for x in f)
    k = round(frac * n)
    quiet, noisy = V.Flips(lo, pairs), V.Flips(hi, pairs)

    def easier(a, b):   # b (noisier) decided where a was not, or decided differently
        return b != "inconclusive" and a != b

    tests = [
        lambda fl: V.share_test(k, n, t, census=True, flips=fl, direction=direction)["verdict"],
        lambda fl: V.all_test(k, n, tol, census=True, flips=fl)["verdict"],
        lambda fl: V.none_test(k, n, tol, census=True, flips=fl)["verdict"],
        lambda fl: V.count_test(k, n, max(1, round(t * n)), census=True, flips=fl)["verdict"],
        lambda fl: V.compare_shares(k, n, n - k, n, census=True, flips1=fl, flips2=fl)["verdict"],
    ]
    for test in tests:
        assert not easier(test(quiet), test(noisy))


@settings(max_examples=60, deadline=None)
@given(over=st.integers(0, 40), flips=st.lists(st.integers(0, 10), min_size=2, max_size=2))
def test_more_noise_never_turns_a_claim_into_holds(over, flips):
    """The same on a whole claim (the final block) with noisier pairs: as many channels leave the
    lowest bin under the second seed as join it, so only the noise changes."""
    lo, hi = sorted(flips)

    def pairs(f):
        first = np.r_[np.full(10, 0.1), np.full(10, 0.6)]
        second = first.copy()
        second[:f], second[10:10 + f] = 0.6, 0.1
        return first, second

    m = np.r_[np.full(40 - over, 0.1), np.full(over, 0.6)]
    a = C.final_block({"4.1": m}, {"4.1": True}, {"4.1": pairs(lo)}).verdict
    b = C.final_block({"4.1": m}, {"4.1": True}, {"4.1": pairs(hi)}).verdict
    assert b == "inconclusive" or a == b
