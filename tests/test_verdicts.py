"""The statistical model behind every verdict (rsi_core.verdicts), on constructed numbers.

Every path (holds / fails / inconclusive) of every rule and claim helper, census and sample.
"""
import numpy as np
import pytest
from scipy import stats

from rsi_core.measure.study import SampleReaders
from rsi_core.verdicts import claims as C
from rsi_core.verdicts import verdict as V

QUIET = V.Flips(0, 64)          # no flip in 64 pairs: upper bound 0.046
NOISY = V.Flips(16, 64)         # a quarter flipped: upper bound 0.35


# ----------------------------------------------------------------------------- primitives

def test_exact_bounds_are_scipys_clopper_pearson():
    lo, hi = V.exact_bounds(5, 10)
    ci = stats.binomtest(5, 10).proportion_ci(confidence_level=0.90, method="exact")
    assert (lo, hi) == pytest.approx((ci.low, ci.high))
    assert lo == pytest.approx(0.2224, abs=1e-4)                      # one-sided 95% lower bound
    assert V.exact_bounds(10, 10)[0] == pytest.approx(0.05 ** 0.1)    # k = n: alpha^(1/n)
    assert V.exact_bounds(0, 10) == pytest.approx((0.0, 1 - 0.05 ** 0.1))
    assert V.exact_bounds(0, 0) == (0.0, 1.0)
    assert V.Flips(0, 10).upper == pytest.approx(1 - 0.05 ** 0.1) and V.Flips(0, 0).upper == 1.0


@pytest.mark.parametrize("k,n,flips,expect", [
    (470, 512, V.Flips(2, 64), "holds"),     # 91.8% vs 90%: sd sqrt(0.096/1024) = 0.0097, bound 0.902
    (470, 512, NOISY, "inconclusive"),       # ... not with a quarter of the pairs flipping
    (440, 512, V.Flips(2, 64), "fails"),     # 85.9%
])
def test_census_share_bounds_from_the_flip_rate(k, n, flips, expect):
    r = V.share_test(k, n, 0.9, census=True, flips=flips)
    assert r["verdict"] == expect
    sd = np.sqrt(min(flips.upper / (2 * n), 0.9 * 0.1 / n))
    assert r["lower95"] == pytest.approx(k / n - V.Z * sd) and r["noise"]["flips"] == flips.flips


def test_census_dominate_is_not_a_sampling_question():
    # the 70/128 = 54.7% overwrite in 2.0: a census share above 1/2 by more than its seed noise holds
    assert V.share_test(70, 128, 0.5, census=True, flips=V.Flips(3, 78))["verdict"] == "holds"
    assert V.share_test(70, 128, 0.5, census=False)["verdict"] == "inconclusive"  # as a sample it cannot decide
    assert V.share_test(58, 128, 0.5, census=True, flips=V.Flips(3, 78))["verdict"] == "fails"
    assert V.share_test(64, 128, 0.5, census=True, flips=V.Flips(0, 78))["verdict"] == "inconclusive"


@pytest.mark.parametrize("k,direction,expect", [
    (60, "greater", "holds"), (33, "greater", "inconclusive"), (20, "greater", "fails"),
    (1, "less", "holds"), (3, "less", "inconclusive"), (20, "less", "fails"),
])
def test_sample_share_uses_exact_bounds(k, direction, expect):
    threshold = 0.5 if direction == "greater" else 0.1
    r = V.share_test(k, 64, threshold, census=False, direction=direction)
    assert r["verdict"] == expect
    assert r["lower95"] <= k / 64 <= r["upper95"]


def test_share_without_channels_or_bad_direction():
    assert V.share_test(0, 0, 0.5, census=True, flips=QUIET)["verdict"] == "inconclusive"
    with pytest.raises(ValueError, match="direction"):
        V.share_test(1, 2, 0.5, census=True, flips=QUIET, direction="up")


@pytest.mark.parametrize("k,expect", [(512, "holds"), (497, "holds"), (487, "inconclusive"), (470, "fails")])
def test_census_all_against_its_stated_tolerance(k, expect):
    # "all": at least 95% (486.4 of 512); sd at the threshold sqrt(0.95 * 0.05 / 512) = 0.0096
    r = V.all_test(k, 512, census=True, flips=V.Flips(1, 19))
    assert r["verdict"] == expect and r["tolerance"] == V.ALL_TOLERANCE == 0.05 and r["threshold"] == 0.95


def test_all_and_none_on_a_sample_need_many_channels():
    assert V.all_test(6, 6, census=False)["verdict"] == "inconclusive"      # 6 of 6 cannot show 95%
    assert V.all_test(1, 6, census=False)["verdict"] == "fails"
    assert V.all_test(70, 70, census=False)["verdict"] == "holds"           # lower bound 0.958
    assert V.none_test(0, 6, census=False)["verdict"] == "inconclusive"


def test_none_is_a_share_below_its_tolerance():
    """'Zero' is under 2% (stricter than 'a few', 5%): 5 of 256 (2.0%) no longer holds."""
    f = V.Flips(0, 39)
    assert V.NONE_TOLERANCE < 0.05
    assert V.none_test(0, 256, census=True, flips=f)["verdict"] == "holds"
    assert V.none_test(1, 256, census=True, flips=f)["verdict"] == "holds"          # 0.4% + 1.4% < 2%
    assert V.none_test(5, 256, census=True, flips=f)["verdict"] == "inconclusive"
    assert V.none_test(12, 256, census=True, flips=f)["verdict"] == "fails"
    assert V.none_test(17, 512, census=True, flips=f)["verdict"] == "fails"         # issue 29: 17 of 512 held
    assert V.none_test(2, 256, census=True, flips=f)["k"] == 2


def test_counts():
    f = V.Flips(0, 78)
    assert V.count_test(10, 128, 3, census=True, flips=f)["verdict"] == "holds"
    assert V.count_test(4, 128, 3, census=True, flips=f)["verdict"] == "inconclusive"
    assert V.count_test(0, 128, 3, census=True, flips=f)["verdict"] == "fails"        # 0 + 1.645 sqrt(2.9) < 3
    assert V.count_test(0, 128, 1, census=True, flips=f)["verdict"] == "inconclusive"  # "at least 1" cannot fail
    assert V.count_test(3, 6, 3, census=False, population=128)["verdict"] == "holds"
    assert V.count_test(0, 6, 3, census=False, population=128)["verdict"] == "inconclusive"
    assert V.count_test(0, 200, 4, census=False, population=256)["verdict"] == "fails"  # upper bound 3.8 ch


def test_joint_count_refutes_what_no_block_can():
    f = V.Flips(0, 64)
    zeros = {b: V.count_test(0, 64, 1, census=True, flips=f) for b in "abcde"}
    assert {t["verdict"] for t in zeros.values()} == {"inconclusive"}      # none of them alone
    assert V.joint_count_test(zeros)["verdict"] == "fails"                  # 0 of 5 in all
    enough = {b: V.count_test(12, 64, 2, census=True, flips=f) for b in "ab"}
    assert V.joint_count_test(enough)["verdict"] == "holds"
    assert V.joint_count_test({"a": V.count_test(0, 6, 3, census=False, population=64)})["verdict"] == "inconclusive"


def test_compare_shares():
    f = V.Flips(1, 40)
    assert V.compare_shares(10, 256, 60, 128, census=True, flips1=f, flips2=f)["verdict"] == "holds"
    assert V.compare_shares(60, 128, 10, 256, census=True, flips1=f, flips2=f)["verdict"] == "fails"
    assert V.compare_shares(30, 256, 16, 128, census=True, flips1=f, flips2=f)["verdict"] == "inconclusive"
    assert V.compare_shares(0, 30, 25, 30, census=False)["verdict"] == "holds"
    assert V.compare_shares(2, 6, 3, 6, census=False)["verdict"] == "inconclusive"


@pytest.mark.parametrize("effect,p,expect", [
    (-0.5, 0.001, "holds"), (0.5, 0.001, "fails"), (-0.5, 0.2, "inconclusive"), (float("nan"), 0.01, "inconclusive"),
])
def test_significant_test_on_a_sample(effect, p, expect):
    assert V.significant_test(effect, p, "negative") == expect


@pytest.mark.parametrize("lo,hi,expect", [(-0.5, -0.1, "holds"), (0.1, 0.5, "fails"), (-0.1, 0.1, "inconclusive"),
                                          (float("nan"), 0.1, "inconclusive")])
def test_sign_test_fails_only_where_the_interval_excludes_the_claim(lo, hi, expect):
    assert V.sign_test(lo, hi, "negative") == expect


def test_never_moved_fzs_bound_a_share_both_ways():
    f = V.Flips(0, 78)
    clear = V.share_test(100, 128, 0.5, census=True, flips=f)
    assert clear["verdict"] == "holds"
    stuck = V.share_test(100, 128, 0.5, census=True, flips=f, unknown=(40, 3))
    assert stuck["lower95"] == pytest.approx(clear["lower95"] - 40 / 128)
    assert stuck["upper95"] == pytest.approx(clear["upper95"] + 3 / 128)
    assert stuck["verdict"] == "inconclusive"          # they could change the verdict


def test_absence_holds_only_with_power():
    rng = np.random.default_rng(0)
    same = lambda n: (rng.normal(0, 0.3, n), rng.normal(0, 0.3, n))  # noqa: E731
    assert V.absent_test(*same(200), 0.2)["verdict"] == "holds"          # the lower bound excludes -0.2
    small = V.absent_test(*same(4), 0.2)
    assert small["verdict"] == "inconclusive" and small["lower95"] < -0.2   # not significant, but underpowered
    assert V.absent_test(rng.normal(-0.5, 0.3, 50), rng.normal(0, 0.3, 50), 0.2)["verdict"] == "fails"
    slight = V.absent_test(rng.normal(-0.1, 0.3, 400), rng.normal(0, 0.3, 400), 0.2)   # significant, within the margin
    assert slight["p"] < 0.05 and slight["verdict"] != "fails"
    assert V.absent_test(rng.normal(0.5, 0.3, 50), rng.normal(0, 0.3, 50), 0.2)["verdict"] == "holds"  # opposite
    assert V.absent_test([0.1], [0.2, 0.3], 0.2)["verdict"] == "inconclusive"


def test_combine_blocks():
    assert V.combine({"a": "holds", "b": "holds"}) == "holds"
    assert V.combine({"a": "holds", "b": "fails", "c": "inconclusive"}) == "fails"
    assert V.combine(["holds", "inconclusive"]) == "inconclusive"
    assert V.combine(["fails", "error"]) == "error"
    assert V.combine([]) == "inconclusive"


def _v(verdict, value):
    return V.Verdict("x", verdict, "s", {}, {}, "r", value, "greater")


def test_seed_aggregation():
    assert V.seed_verdict([_v("holds", 0.6), _v("holds", 0.7)]) == ("holds", [0.6, 0.7])
    assert V.seed_verdict([_v("holds", 0.6), _v("fails", 0.4), _v("holds", 0.65)]) == ("inconclusive", [0.4, 0.65])
    assert V.seed_verdict([_v("holds", 0.6), _v("error", None)]) == ("error", [0.6, 0.6])


# ----------------------------------------------------------------------------- claim helpers

def _m(n_over, n_skip):
    return np.r_[np.full(n_over, 0.4), np.full(n_skip, 2.0)]


def _quiet(m, n=40):
    """Pairs of the first n channels, identical under both seeds."""
    return {b: (x[:n], x[:n]) for b, x in m.items()}


def test_downsample_overwrite_paths():
    full = {"2.0": True, "3.0": True, "4.0": True}
    ok = {"2.0": _m(80, 48), "3.0": _m(200, 56), "4.0": _m(400, 112)}
    v = C.downsample_overwrite(ok, full, _quiet(ok))
    assert v.verdict == "holds" and v.value == pytest.approx(80 / 128) and v.direction == "greater"
    assert v.blocks == {"downsample": ["2.0", "3.0", "4.0"]}
    bad = {**ok, "2.0": _m(50, 78)}
    v = C.downsample_overwrite(bad, full, _quiet(bad))
    assert v.verdict == "fails" and v.measured["2.0"]["verdict"] == "fails"
    near = {**ok, "2.0": _m(66, 62)}
    assert C.downsample_overwrite(near, full, _quiet(near)).verdict == "inconclusive"   # 51.6%
    small = {"2.0": _m(4, 2), "3.0": _m(5, 1), "4.0": _m(6, 0)}
    v = C.downsample_overwrite(small, dict.fromkeys(full, False))
    assert v.verdict == "inconclusive" and v.measured["4.0"]["model"] == "sample"


def test_final_block_paths():
    def final(m):
        return C.final_block({"4.1": m}, {"4.1": True}, {"4.1": (m[:19], m[:19])})
    assert final(np.r_[np.full(500, 0.1), np.full(12, 0.6)]).verdict == "holds"          # 2.3% outside
    assert final(np.r_[np.full(460, 0.1), np.full(52, 0.6)]).verdict == "fails"         # 10% outside
    assert final(np.r_[np.full(488, 0.1), np.full(24, 0.6)]).verdict == "inconclusive"  # 4.7%
    assert final(np.r_[np.full(312, 0.0), np.full(200, 0.1)]).verdict == "fails"        # zeros
    assert C.final_block({"4.1": np.full(6, 0.1)}, {"4.1": False}).verdict == "inconclusive"
    v = final(np.full(512, 0.1))
    assert "at least 95%" in v.statistic and v.blocks == {"final": ["4.1"]}


def test_simple_less_skewed_per_simple_block():
    rng = np.random.default_rng(0)
    hi, lo = (lambda: rng.uniform(0.5, 5, 100)), (lambda: rng.uniform(0, 1.5, 100))
    down = {"2.0": lo(), "3.0": lo(), "4.0": lo()}
    census = dict.fromkeys(["1.1", "2.1", "3.1", *down], True)
    v = C.simple_less_skewed({"1.1": hi(), "2.1": hi(), "3.1": hi()}, down, census)
    assert v.verdict == "holds" and v.blocks == {"simple": ["1.1", "2.1", "3.1"], "downsample": list(down)}
    # one simple block as skewed as the downsample blocks: pooling would hide it, per block it does not hold
    v = C.simple_less_skewed({"1.1": hi(), "2.1": lo(), "3.1": hi()}, down, census)
    assert v.verdict == "inconclusive" and v.measured["parts"]["2.1"]["verdict"] == "inconclusive"
    # more skewed than the downsample blocks: fails
    v = C.simple_less_skewed({"1.1": hi(), "2.1": np.full(100, 0.1), "3.1": hi()}, down, census)
    assert v.verdict == "fails" and v.measured["parts"]["2.1"]["verdict"] == "fails"
    # FZs that never moved could make up the difference: inconclusive
    health = {"2.1": {"never_moved": {"I": 40, "B": 0}}}   # 40 of its M = 0 are defaults
    assert C.simple_less_skewed({"1.1": hi(), "2.1": np.full(100, 0.1), "3.1": hi()}, down, census,
                                health).measured["parts"]["2.1"]["verdict"] == "inconclusive"
    assert C.simple_less_skewed({"1.1": lo(), "2.1": lo(), "3.1": lo()}, down,
                                dict.fromkeys(census, False)).verdict == "inconclusive"
    assert C.simple_less_skewed({"1.1": hi()[:3], "2.1": hi()[:3], "3.1": hi()[:3]}, down,
                                dict.fromkeys(census, False)).verdict in ("holds", "inconclusive")


def _weights(rho_sign, n=64, seed=0):
    rng = np.random.default_rng(seed)
    m = rng.uniform(0, 5, n)
    w = rho_sign * m + rng.normal(0, 0.5, n)
    return m, w, w + rng.normal(0, 0.5, n)


def test_weight_magnitude_paths():
    full = dict.fromkeys(("1.1", "2.1", "3.1"), True)
    v = C.weight_magnitude({b: _weights(-1, seed=i) for i, b in enumerate(full)}, full)
    assert v.verdict == "holds" and v.value < 0 and v.measured["1.1"]["reliability_lower95"] == 0.0
    v = C.weight_magnitude({"1.1": _weights(1), "2.1": _weights(-1), "3.1": _weights(-1, seed=3)}, full)
    assert v.verdict == "fails" and v.measured["1.1"]["verdict_bn"] == "fails"
    rng = np.random.default_rng(5)
    flat = (rng.uniform(0, 5, 6), rng.uniform(size=6), rng.uniform(size=6))
    sample = dict.fromkeys(full, False)
    assert C.weight_magnitude({"1.1": flat, "2.1": _weights(-1), "3.1": _weights(-1, seed=3)}, sample).verdict \
        == "inconclusive"
    # a census where rho's seed noise covers 0: inconclusive, not fails (issue 29)
    assert C.weight_magnitude({"1.1": flat, "2.1": _weights(-1), "3.1": _weights(-1, seed=3)},
                              {**sample, "1.1": True}).verdict == "inconclusive"
    # the second seed's pairs bound M's reliability: a reliable M narrows rho's interval
    m, bn, conv = _weights(-1)
    weak = (m, -0.05 * m + np.random.default_rng(9).normal(0, 1, 64), conv)   # rho -0.07
    per = {"1.1": weak, "2.1": _weights(-1), "3.1": _weights(-1, seed=3)}
    assert C.weight_magnitude(per, full).measured["1.1"]["verdict_bn"] == "inconclusive"
    tight = C.weight_magnitude(per, full, {"1.1": (m, m + 0.01)})
    assert tight.measured["1.1"]["reliability_lower95"] > 0.9 and tight.measured["1.1"]["verdict_bn"] == "holds"


def _groups(mo, ms, n=40, seed=0, sd=0.3):
    rng = np.random.default_rng(seed)
    return rng.normal(mo, sd, n), rng.normal(ms, sd, n)


def _ipairs(over, n=20):
    """Paired channels overwrite under both seeds with the same B_c(X_I)."""
    m = np.full(n, 0.5)
    return m, m, over[:n], over[:n]


def test_inhibition_paths_and_a_scale_free_value():
    full = dict.fromkeys(("1.1", "2.1", "3.1"), True)
    ok = {"1.1": _groups(0, 0), "2.1": _groups(-1, 1, seed=1), "3.1": _groups(-1, 1, seed=2)}
    pairs = {b: _ipairs(o) for b, (o, _) in ok.items()}
    v = C.inhibition(ok, full, pairs=pairs)
    assert v.verdict == "holds" and v.measured["2.1"]["negative"]["share"] > 0.9
    scaled = C.inhibition({b: (10 * o, 10 * s) for b, (o, s) in ok.items()}, full,
                          pairs={b: _ipairs(10 * o) for b, (o, _) in ok.items()})
    assert scaled.value == pytest.approx(v.value)        # BatchNorm scale does not move the value
    assert C.inhibition({**ok, "2.1": _groups(1, -1, seed=1)}, full, pairs=pairs).verdict == "fails"   # opposite
    few = {**ok, "3.1": _groups(0.5, 1, seed=2)}
    assert C.inhibition(few, full, pairs={**pairs, "3.1": _ipairs(few["3.1"][0])}).verdict == "fails"
    assert C.inhibition({**ok, "3.1": _groups(-0.1, 0.1, n=3, seed=2)},
                        dict.fromkeys(full, False)).verdict == "inconclusive"
    # channels that move between the groups are flips of the class: a noisier count, never dropped
    o = ok["2.1"][0]
    moving = (np.r_[np.full(10, 0.5), np.full(10, 2.0)], np.full(20, 0.5), o[:20], o[:20])
    v = C.inhibition(ok, full, pairs={**pairs, "2.1": moving})
    assert v.measured["2.1"]["negative"]["noise"]["flips"] == 10


def test_input_block_correlation_paths():
    full = dict.fromkeys(("1.1", "2.1", "3.1"), True)
    null = lambda s: _groups(0, 0, n=100, seed=s)  # noqa: E731
    ok = {"1.1": null(0), "2.1": null(1), "3.1": _groups(-0.5, 0.2, seed=2)}
    v = C.input_block_correlation(ok, full)
    assert v.verdict == "holds" and v.value < 0
    assert v.blocks == {"significant": ["3.1"], "absent": ["1.1", "2.1"]}
    # 3.1 not significant: inconclusive on a census too (its interval covers 0; issue 29)
    assert C.input_block_correlation({**ok, "3.1": null(2)}, full).verdict == "inconclusive"
    assert C.input_block_correlation({**ok, "3.1": null(2)}, dict.fromkeys(full, False)).verdict == "inconclusive"
    # 3.1 significant the other way: fails
    assert C.input_block_correlation({**ok, "3.1": _groups(0.5, -0.2, seed=2)}, full).verdict == "fails"
    # 2.1 significantly MORE negative too: the "not in 2.1" part fails
    v = C.input_block_correlation({**ok, "2.1": _groups(-0.5, 0.2, seed=1)}, full)
    assert v.verdict == "fails" and v.measured["2.1"]["verdict"] == "fails"
    # 1.1 significantly in the OPPOSITE direction: not "more negative", the claim still holds (stated rule)
    v = C.input_block_correlation({**ok, "1.1": _groups(0.5, -0.2, seed=0)}, full)
    assert v.verdict == "holds" and v.measured["1.1"]["opposite_significant"]
    # an absence on 4 channels per group cannot exclude the effect: inconclusive, not holds
    v = C.input_block_correlation({**ok, "1.1": _groups(0, 0, n=4, seed=5)}, full)
    assert v.measured["1.1"]["verdict"] == "inconclusive" and v.verdict == "inconclusive"
    # natural images from the bundled sample cannot decide: inconclusive with the reason
    v = C.input_block_correlation(ok, full, natural=C.BUNDLED)
    assert v.verdict == "inconclusive" and "bundled sample" in v.reason


SIZES = {"1.1": 64, "2.0": 128, "2.1": 128, "3.0": 256, "3.1": 256, "4.0": 512, "4.1": 512}
ROLES = {"simple": ["1.1", "2.1", "3.1"], "downsample": ["2.0", "3.0", "4.0"], "final": ["4.1"]}


def _classes(**over):
    """Per block (with_mix, without_mix, both) counts as masks."""
    base = {"1.1": (8, 12, 6), "2.0": (10, 20, 8), "2.1": (20, 30, 14), "3.0": (0, 30, 0),
            "3.1": (30, 60, 16), "4.0": (0, 0, 0), "4.1": (0, 0, 0)}
    base.update(over)
    return {b: {"with_mix": np.arange(SIZES[b]) < w, "without_mix": np.arange(SIZES[b]) < wo,
                "both": np.arange(SIZES[b]) < bo} for b, (w, wo, bo) in base.items()}


def _scale(classes, census=True, pairs=True):
    parts = C.scale_roles(ROLES, {"1.1": [19], "2.0": [7, 15, 53, 3], "2.1": [0] * 9, "3.1": [0] * 9})
    pair = {b: tuple({k: v[:40] for k, v in c.items()} for _ in range(2)) for b, c in classes.items()} if pairs \
        else None
    return C.scale_counts(classes, dict.fromkeys(SIZES, census), SIZES, **parts, pairs=pair)


def test_scale_counts_paths():
    v = _scale(_classes())
    assert v.verdict == "holds", v.measured["parts"]
    assert {p["noise"]["source"] for n, p in v.measured["parts"].items() if "noise" in p and n != "3.0 below 2.1 "
            "without mix" and isinstance(p["noise"], dict)} == {V.IN_RUN}
    v = _scale(_classes(**{"3.0": (25, 30, 0)}))
    assert v.verdict == "fails" and v.measured["parts"]["3.0 none"]["verdict"] == "fails"
    v = _scale(_classes(**{"3.0": (0, 2, 0)}))                                  # no appreciable share in 3.0
    assert v.verdict == "fails" and v.measured["parts"]["3.0 appreciable without mix"]["verdict"] == "fails"
    v = _scale(_classes(**{"3.0": (0, 120, 0)}))                                # 3.0 above 2.1's share
    assert v.measured["parts"]["3.0 below 2.1 without mix"]["verdict"] == "fails" and v.verdict == "fails"
    v = _scale(_classes(**{"1.1": (3, 9, 1)}))                                  # 3 cannot be told from 2.9
    assert v.verdict == "inconclusive"
    v = _scale(_classes(**{"4.0": (0, 60, 0)}))                                 # "a few" without mix
    assert v.verdict == "fails"
    v = _scale(_classes(**{b: (20, 30, 0) for b in ("1.1", "2.0", "2.1", "3.1")}))   # nobody passes both
    assert v.measured["parts"]["both"]["verdict"] == "fails"
    assert _scale(_classes(), census=False).verdict == "holds"       # as a sample of these sizes: exact bounds
    fallback = _scale(_classes(), pairs=False)
    assert {p["noise"]["source"] for p in fallback.measured["parts"].values() if isinstance(p.get("noise"), dict)} \
        == {"fallback: shipped table (random-init resnet18 random:0)"}
    assert "under 2% of the block" in v.statistic and v.blocks["none"] == ["3.0", "4.0", "4.1"]
    v = C.scale_counts(_classes(), dict.fromkeys(SIZES, True), SIZES, **C.scale_roles(ROLES, {"1.1": [19]}),
                       natural=C.BUNDLED)
    assert v.measured["parts"]["both"] == {"verdict": "inconclusive", "reason": C.BUNDLED}


def test_overlap_reads_ranks_fig6_fig7_fig8_shapes():
    fig7 = {"2.1": [108, 36, 13, 21, 60, 52, 93, 5, 58], "3.1": [113, 178, 22, 215, 204, 25, 29, 154, 200]}
    pop = {"2.1": range(128), "3.1": range(256)}
    first = lambda b, listed: listed + [c for c in pop[b] if c not in listed]  # noqa: E731
    v = C.overlap({b: (pop[b], first(b, fig7[b][:5]), fig7[b]) for b in fig7}, k=None)
    assert v.verdict == "holds" and v.measured["p_high"] < 0.001
    # the paper's channels at the very bottom of the run's ordering: fails
    last = lambda b, listed: [c for c in pop[b] if c not in listed] + listed  # noqa: E731
    v = C.overlap({b: (pop[b], last(b, fig7[b]), fig7[b]) for b in fig7}, k=3)
    assert v.verdict == "fails" and v.measured["found"]["2.1"] == [0, 1, 2]
    # near the top but not the exact top 3 (another FZ seed's list): still holds
    fig8 = {"3.1": [128, 246, 41], "4.1": [154, 68, 496]}
    near = {b: (range(512), [1, 2, 3, *fig8[b], *[c for c in range(512) if c not in fig8[b] and c > 3]], fig8[b])
            for b in fig8}
    v = C.overlap(near, k=3)
    assert v.verdict == "holds" and all(not x["overlap"] for x in v.measured["blocks"].values())
    # random: inconclusive; with the run's own two seeds disagreeing, said to be not reproducible
    rng = np.random.default_rng(1)
    mid = {b: (range(512), rng.permutation(512).tolist(), fig8[b]) for b in fig8}
    scores = rng.normal(size=(2, 40))
    v = C.overlap(mid, {b: (scores[0], scores[1]) for b in fig8}, k=3)
    assert v.verdict == "inconclusive" and "not reproducible under FZ seeds" in v.reason
    # fig6: the null drawn from the criteria-passing channels only (a random SM order among them)
    passing = [108, 1, 2, 3, 4]
    v = C.overlap({"2.1": (passing, rng.permutation(passing).tolist(), [108])}, k=3)
    assert v.measured["blocks"]["2.1"]["population"] == 5 and v.verdict == "inconclusive"
    assert C.overlap({"4.1": (range(8), list(range(8)), [100])}).verdict == "inconclusive"  # nothing studied
    assert C.overlap({b: (pop[b], first(b, fig7[b]), fig7[b]) for b in fig7}, natural=C.BUNDLED).verdict \
        == "inconclusive"


# ----------------------------------------------------------------------------- reading a Study

class _Block:
    def __init__(self, channels, m, failed):
        self.channels, self.m, self.failed = np.asarray(channels), np.asarray(m, float), np.asarray(failed)
        self.skip = self.m > 1  # as written


class _Study(SampleReaders):
    """What the adapters read: profile, model, block(name), pairs(name)."""
    def __init__(self, profile, blocks, pairs=None):
        import torchvision

        from rsi_core.measure.profiles import get_profile
        self.profile, self.model, self._blocks = get_profile(profile), torchvision.models.resnet18(), blocks
        self._pairs = pairs or {}

    def block(self, name):
        return self._blocks[name]

    def pairs(self, name):
        return self._pairs.get(name)


def test_adapters_read_only_the_valid_unbiased_sample():
    from rsi_core.measure.profiles import channels_for, get_profile, sample_channels
    quick = get_profile("quick")
    chans = channels_for(quick, "2.1", 128)                      # sample + the paper's named channels
    sample = sample_channels(quick, "2.1", 128)
    m = np.where(np.isin(chans, sample), 0.5, 1.0)               # named channels sit at M = 1 ...
    m[chans.index(108)] = 0.9                                    # ... one named channel is an overwrite
    failed = np.zeros(len(chans), bool)
    failed[chans.index(sample[0])] = True
    s = _Study("quick", {"2.1": _Block(chans, m, failed)})
    assert len(s.sample_m("2.1")) == len(sample) - 1          # named and failed channels left out
    assert set(s.sample_m("2.1")) == {0.5}
    over, skip = s.sample_groups("2.1", np.arange(len(chans), dtype=float))
    assert len(over) == len(sample) - 1 and len(skip) == 0
    assert s.census_map(["2.1"]) == {"2.1": False} and s.pair_values("2.1", lambda r: r.m) is None
    full = _Study("paper", {"1.1": _Block(range(64), np.full(64, 2.0), np.zeros(64, bool))})
    assert full.is_census("1.1") and len(full.sample_m("1.1")) == 64


def test_pair_values_keep_channels_valid_under_both_seeds():
    a = _Block([1, 5, 9], [0.5, 2.0, 0.1], [False, True, False])
    b = _Block([1, 5, 9], [0.7, 2.0, 3.0], [False, False, True])
    s = _Study("paper", {}, pairs={"1.1": (a, b)})
    first, second = s.pair_values("1.1", lambda r: r.m)
    assert first.tolist() == [0.5] and second.tolist() == [0.7]
    first, second = s.pair_values("1.1", lambda r: r.m, among=lambda r: r.m > 0.6)
    assert first.tolist() == [] and second.tolist() == []
