"""The paired regression check's statistics on constructed numbers (rsi_core.verdicts.regression)."""
import numpy as np
import pytest
from scipy import stats

from rsi_core.verdicts import regression as R


def _seeds(rng, q):
    """Two FZ seeds' classes of channels in the class with probabilities ``q``."""
    return rng.random(len(q)) < q, rng.random(len(q)) < q


def test_identical_classes_are_unchanged_and_a_moved_share_is_changed():
    old = np.r_[np.ones(30, bool), np.zeros(10, bool)]
    same = R.class_change(old, old)
    assert same["verdict"] == "unchanged" and same["se"] == 0 and same["shift_bound95"] == 0
    moved = R.class_change(old, np.r_[np.ones(10, bool), np.zeros(30, bool)])
    assert moved["verdict"] == "changed" and moved["lost"] == 20 and moved["shift"] == -0.5
    assert moved["p_mcnemar"] == pytest.approx(stats.binomtest(0, 20, 0.5).pvalue)


def test_share_change_and_its_standard_error_from_the_discordant_pairs():
    old = np.r_[np.ones(100, bool), np.zeros(100, bool)]
    new = old.copy()
    new[:10], new[100:110] = False, True       # 20 of 200 flipped, both ways: the share did not move
    churn = R.class_change(old, new)
    assert churn["shift"] == 0 and churn["se"] == pytest.approx(np.sqrt(20) / 200)
    assert churn["verdict"] == "unchanged" and churn["p_mcnemar"] == 1.0   # bound 1.645 * 0.022 = 0.037
    small = np.r_[np.ones(20, bool), np.zeros(20, bool)]
    wide = small.copy()
    wide[:10], wide[20:30] = False, True       # half of 40 churned: no share moved, but SE 0.11 bounds nothing
    assert R.class_change(small, wide)["verdict"] == "inconclusive"
    new[100:130] = True                        # 30 gained, 10 lost: delta 0.1, SE sqrt(40 - 400 / 200) / 200
    up = R.class_change(old, new)
    assert up["shift"] == pytest.approx(0.1) and up["se"] == pytest.approx(np.sqrt(38) / 200)
    assert up["verdict"] == "changed" and up["p_mcnemar"] < 0.05


def test_a_significant_move_of_five_points_or_less_is_never_changed():
    old = np.zeros(1000, bool)
    new = old.copy()
    new[:40] = True                            # 40 gained, none lost: McNemar p 2e-12, but 4 points
    got = R.class_change(old, new)
    assert got["p_mcnemar"] < 1e-10 and got["verdict"] == "unchanged"


def test_few_channels_with_flips_are_inconclusive():
    old = np.array([True, True, False, False, True, False])
    new = np.array([False, True, True, False, True, False])
    assert R.class_change(old, new)["verdict"] == "inconclusive"


def test_continuous_values_shift_beyond_and_within_the_tolerance():
    rng = np.random.default_rng(0)
    old = rng.normal(0, 1, 60)
    assert R.continuous_change(old, old)["verdict"] == "unchanged"
    assert R.continuous_change(old, old + rng.normal(0, 0.02, 60))["verdict"] == "unchanged"
    up = R.continuous_change(old, old + 1.0 + rng.normal(0, 0.1, 60))
    assert up["verdict"] == "changed" and up["p_above"] < 0.01 and up["median_shift"] > 0.9
    assert R.continuous_change(old, old - 1.0)["verdict"] == "changed"
    assert R.continuous_change(old[:4], old[:4] + 5)["verdict"] == "inconclusive"   # too few pairs to tell
    assert R.continuous_change(old[:4], old[:4])["verdict"] == "unchanged"           # ... unless the very same
    assert R.continuous_change(old, old + rng.normal(0, 1.5, 60))["verdict"] == "inconclusive"


def test_a_baseline_of_equal_values_keeps_a_material_tolerance():
    """BatchNorm's weights at init are all 1 (sd 0): a 3% move is within 5% of their scale, so
    unchanged, not changed for want of spread; a 20% move is changed; a correlation's scale is 1."""
    rng = np.random.default_rng(0)
    ones = np.ones(43)
    moved = R.continuous_change(ones, ones * 1.03 + rng.normal(0, 0.005, 43))
    assert moved["tolerance"] == pytest.approx(R.TOL_REL) and moved["verdict"] == "unchanged"
    assert R.continuous_change(ones, ones * 0.97)["verdict"] == "unchanged"
    assert R.continuous_change(ones, ones * 1.2 + rng.normal(0, 0.005, 43))["verdict"] == "changed"
    corr = rng.uniform(-0.02, 0.02, 43)             # correlations near 0: their mean magnitude is no scale
    assert R.continuous_change(corr, corr + 0.03, scale=R.SCALE["input_corr"])["verdict"] == "unchanged"
    assert R.continuous_change(corr, corr + 0.3, scale=R.SCALE["input_corr"])["verdict"] == "changed"


def test_continuous_rule_operating_characteristic_at_ci_sizes():
    """``simulate_continuous`` on a census of 256 equal baseline values sampled 43 at a time (ci's
    simple blocks): a move of at most 3% of the scale is never changed and, as per-channel noise
    grows, "unchanged" gets no more likely; a 20% move is changed."""
    rng = np.random.default_rng(1)
    ones = np.ones(256)
    unchanged = []
    for noise in (0.0, 0.01, 0.03, 0.06, 0.1):
        for shift in (0.0, 0.03):
            got = R.simulate_continuous({"1.1": (43, [(ones, ones + shift + rng.normal(0, noise, 256), None)])}, 100)
            assert got["changed"] <= 0.05, (noise, shift, got)
            if shift:
                unchanged.append(got["unchanged"])
    assert unchanged == sorted(unchanged, reverse=True) and unchanged[0] == 1.0 and unchanged[-1] < 0.5
    big = R.simulate_continuous({"1.1": (43, [(ones, ones * 1.2 + rng.normal(0, 0.03, 256), None)])}, 100)
    assert big["changed"] >= 0.95


def test_false_alarm_rate_under_pure_seed_noise_is_at_most_alpha():
    """Baseline and run differ only by FZ seed: per channel the class flips with 2 q (1 - q), M by
    seed noise; a claim of 3 blocks reading the overwrite class and M (reported only), 100 draws."""
    rng = np.random.default_rng(1)
    alarms = 0
    for _ in range(100):
        claim = {}
        for b in ("2.0", "3.0", "4.0"):
            n = 40
            q = rng.choice([0.02, 0.3, 0.7, 0.98], n)
            m = rng.lognormal(-0.5, 0.8, n)
            a, c = _seeds(rng, q)
            claim[b] = ({"channels": list(range(n)), "overwrite": list(a), "m": list(m * rng.lognormal(0, 0.3, n))},
                        {"channels": list(range(n)), "overwrite": list(c), "m": list(m * rng.lognormal(0, 0.3, n))})
        old = {"verdict": "holds", "value": 1.0, "paired": {b: o for b, (o, _) in claim.items()}}
        new = {"verdict": "holds", "value": 1.0, "paired": {b: n_ for b, (_, n_) in claim.items()}}
        alarms += R.compare(old, new)["verdict"] == "changed"
    assert alarms / 100 <= 0.05


def test_claim_verdict_combines_parts_and_na_stays_na():
    rec = {"channels": [0, 1, 2, 3, 4, 5, 6, 7], "overwrite": [True] * 8}
    entry = {"verdict": "holds", "value": 1.0, "paired": {"2.0": rec, "3.0": rec}}
    assert R.compare(entry, entry)["verdict"] == "unchanged"
    flipped = {**entry, "paired": {"2.0": rec, "3.0": {**rec, "overwrite": [False] * 8}}}
    out = R.compare(entry, flipped)
    assert out["verdict"] == "changed" and out["parts"]["2.0 overwrite"]["verdict"] == "unchanged"
    assert R.changed_parts(out) == ["3.0 overwrite: share 1 -> 0 (0 gained, 8 lost of 8 channels; McNemar p 0.0078)"]
    na = {"verdict": "inconclusive", "reason": "n/a: lists are resnet18's", "value": None}
    assert R.compare(na, na)["verdict"] == "n/a" and R.compare(entry, {**entry, "verdict": "n/a"})["verdict"] == "n/a"
    assert R.compare(None, entry)["verdict"] == "n/a" and R.compare(entry, {**entry, "verdict": "error"})["verdict"] == "n/a"
    # channels pair by id: a channel only one run kept is left out
    other = {**entry, "paired": {"2.0": {"channels": [1, 2, 3, 4, 5, 6, 7, 8], "overwrite": [True] * 8}}}
    assert R.compare(entry, other)["parts"]["2.0 overwrite"]["n"] == 7


def test_an_fz_value_is_reported_and_its_class_decides():
    """M (continuous, from FZs) does not decide; M < 1 does, added where the claim names no class."""
    m_old = [0.2, 0.5, 0.9, 1.5, 2.0, 3.0, 0.3, 0.6] * 5
    entry = {"verdict": "holds", "value": 1.0, "paired": {"1.1": {"channels": list(range(40)), "m": m_old}}}
    m_new = [x if x == 0.9 else x * 1.3 for x in m_old]   # M up 30% (beyond 0.2 sd); no channel crosses 1
    out = R.compare(entry, {**entry, "paired": {"1.1": {"channels": list(range(40)), "m": m_new}}})
    assert out["parts"]["1.1 m"]["decides"] is False and out["parts"]["1.1 m"]["median_shift"] > 0.1   # reported
    assert out["parts"]["1.1 overwrite"]["from"] == "m" and out["parts"]["1.1 overwrite"]["discordant"] == 0
    assert out["verdict"] == "unchanged"
    crossed = R.compare(entry, {**entry, "paired": {"1.1": {"channels": list(range(40)), "m": [x * 1.3 for x in m_old]}}})
    assert crossed["parts"]["1.1 overwrite"]["lost"] == 5 and crossed["verdict"] == "inconclusive"   # 0.9 -> 1.17
    assert R.changed_parts(out) == []
    both = {"1.1": {"channels": [0, 1], "m": [0.5, 2.0], "overwrite": [True, False]}}
    assert list(R.compare({**entry, "paired": both}, {**entry, "paired": both})["parts"]) == ["1.1 m", "1.1 overwrite"]


def _exact(n, f, shift, alpha):
    """P(changed), P(unchanged) of one part by enumerating the multinomial (lost, gained)."""
    lost, gained = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
    ok = lost + gained <= n
    pmf = stats.multinomial.pmf(np.stack([lost[ok], gained[ok], n - lost[ok] - gained[ok]], 1), n,
                                [f / 2, f / 2 + shift, 1 - f - shift])
    v = R._decide(gained[ok], lost[ok], n, alpha)[0]
    return pmf[v == "changed"].sum(), pmf[v == "unchanged"].sum()


def test_simulation_agrees_with_exact_enumeration():
    for n, f, shift in ((37, 0.05, 0.0), (37, 0.05, 0.15), (59, 0.02, 0.1)):
        changed, unchanged = _exact(n, f, shift, 0.05)
        sim = R.simulate([n], f, shift, draws=20000)
        assert abs(sim["changed"] - changed) < 0.015 and abs(sim["unchanged"] - unchanged) < 0.015


@pytest.mark.parametrize("sizes", [[37], [37, 37, 37], [43] * 6, [59, 59], [64, 128, 128, 256, 256, 512, 512] * 2])
def test_operating_characteristic_at_the_sizes_used(sizes):
    """The check's OC (exact per part, combined over independent parts) at ci's and census sizes:
    false alarms <= 5% whatever the pair discordance F; a claim whose parts never moved (F = 0) is
    always unchanged; a 15-point move is called unchanged at most 5% of the time."""
    alpha = 0.05 / len(sizes)
    for f in (0.0, 0.02, 0.05, 0.15, 0.3):
        parts = [_exact(n, f, 0.0, alpha) if n < 100 else None for n in sizes]
        exact = [p for p in parts if p is not None]
        sim = R.simulate(sizes, f, draws=3000) if len(exact) < len(sizes) else None
        alarm = 1 - np.prod([1 - c for c, _ in exact]) if sim is None else sim["changed"]
        assert alarm <= 0.05, (f, alarm)
        if f == 0:
            assert R.simulate(sizes, f, draws=200)["unchanged"] == 1.0
        moved = _exact(sizes[0], f, 0.15, alpha)[1] if sizes[0] < 100 else R.simulate(sizes, f, 0.15)["unchanged"]
        assert moved <= 0.05, (f, moved)


def test_validate_report_carries_measured_f_pair_to_ci_sizes():
    """``rsi validate --regression``'s report (``planted.regression.assemble``) on constructed
    entries: F_pair per update, the null updates' decided share and power at ci's sizes."""
    from rsi_core.planted import regression as PRg
    rng = np.random.default_rng(0)
    old = {b: list(rng.random(40) < 0.5) for b in ("2.0", "3.0", "4.0")}

    def entry(flip):
        rec = {b: {"channels": list(range(40)), "overwrite": [bool(v) != (rng.random() < flip) for v in vs]}
               for b, vs in old.items()}
        return {"fig2-downsample-overwrite": {"verdict": "holds", "value": 1.0, "paired": rec},
                "fig4-input-block-correlation": {"verdict": "n/a", "value": None, "reason": "n/a: none", "paired": None}}
    blessed = entry(0.0)
    out = PRg.assemble(blessed, {name: entry(f) for name, f in zip(PRg.NULL, (0, 0, 0.02, 0.2))}, [], None, {})
    assert out["f_pair"][PRg.NULL[0]] == 0 and out["unchanged_decided"][PRg.NULL[0]] == 1.0
    assert 0 < out["f_pair"][PRg.CONTINUED] < 0.06 and out["f_pair"][PRg.NULL[3]] > 0.1
    assert out["simulated_at"]["claim_part_sizes"] == {"fig2-downsample-overwrite": [37, 37, 37]}
    noise = out["updates"][3]
    assert 0 < noise["f_pair_by_class"]["overwrite"] and abs(noise["shift_by_class"]["overwrite"]) <= noise["f_pair_by_class"]["overwrite"]
    assert out["false_alarm_rate"] <= 0.05 and out["unchanged_decided"][PRg.NULL[3]] < out["unchanged_decided"][PRg.CONTINUED]
    power = [out["power"][str(p)] for p in PRg.SHIFTS]
    assert power == sorted(power) and power[-1] > 0.5 and out["power"] == out["power_by_update"][PRg.CONTINUED]
    assert out["power_by_update"][PRg.NOISE]["15"] < out["power"]["15"]          # more churn, less power
    need = {k: v for name in (PRg.CONTINUED, PRg.NOISE) for k, v in out["channels_needed"][name].items()}
    low, high = (out["channels_needed"][name]["power 0.8 at 15 points"]["channels_per_part"] for name in (PRg.CONTINUED, PRg.NOISE))
    assert low < high and len(need) == 2     # F 0.02 needs fewer channels than F 0.2
    assert out["power_on_census"][PRg.CONTINUED] == out["power"]["15"]   # no model: the census is the sample
    assert PRg.check_cost(100, {"1.1": 64, "2.0": 128}) == {"channels": 164, "fzs": 328, "fz_core_minutes": 13.7,
                                                           "census_blocks": ["1.1"]}


def test_continuous_parts_are_measured_at_ci_channels(tmp_path):
    """The weights need no FZ: ``continuous_at`` reads them at ci's own sample (43 channels of 1.1),
    where Wilcoxon decides: the same weights unchanged, a move within 0.2 sd unchanged, conv2 x 1.5
    changed."""
    import copy
    from dataclasses import replace

    import torch

    from rsi_core.cache import Cache
    from rsi_core.measure.profiles import get_profile
    from rsi_core.model.anatomy import find_block, provenance_of, register
    from rsi_core.model.load import load_model, weights_identity
    from rsi_core.planted import regression as PRg
    base = load_model("resnet18", "random:0")

    def scaled(factor):
        model = copy.deepcopy(base)
        with torch.no_grad():
            find_block(model, "1.1").module.conv2.weight.mul_(factor)
        register(model, replace(provenance_of(base), weights=f"x{factor}", weights_id=weights_identity(model)))
        return model
    parts = {"fig3-weight-magnitude": {"class": [], "continuous": [("1.1", "conv_weight"), ("1.1", "bn_weight")]}}
    bn = copy.deepcopy(base)
    with torch.no_grad():
        find_block(bn, "1.1").module.bn2.weight.mul_(1.03)   # every weight 1 at init (sd 0): 3% is immaterial
    register(bn, replace(provenance_of(base), weights="bn", weights_id=weights_identity(bn)))
    got = PRg.continuous_at(parts, base, {"same": base, "tiny": scaled(1 + 1e-4), "bn 3%": bn, "moved": scaled(1.5)},
                            Cache(tmp_path), get_profile("ci"), draws=20)
    share = {k: max(v["fig3-weight-magnitude"], key=v["fig3-weight-magnitude"].get) for k, v in got.items()}
    assert share == {"same": "unchanged", "tiny": "unchanged", "bn 3%": "unchanged", "moved": "changed"}
    assert got["moved"]["fig3-weight-magnitude"]["changed"] == 1.0 and got["bn 3%"]["fig3-weight-magnitude"]["unchanged"] == 1.0
