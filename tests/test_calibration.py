"""The decision rules' operating characteristic (rsi_core.verdicts.calibration) and their
monotonicity in seed noise: more noise never makes a part more decided."""
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rsi_core.harness.expectations import CLAIM_IDS
from rsi_core.verdicts import calibration as K
from rsi_core.verdicts import claims as C
from rsi_core.verdicts import verdict as V


def no_more_decided(quiet: str, noisy: str) -> bool:
    """More noise may only turn a verdict inconclusive: never into holds or fails from anything else."""
    return noisy == quiet or noisy == "inconclusive"


@pytest.fixture(scope="module")
def census_rows():
    """Replication and negation at census size, every reliability, 60 draws (docs/verdicts.md: 200):
    no replication failing and no negation holding in 60 draws bounds each rate below 0.05 (exact
    one-sided 95%); the check allows up to 3 of 60 (the point estimate 0.05)."""
    return K.calibration(60, sizes=("census",), worlds=("replication", "negation"))


def test_every_claim_has_a_calibration_scenario_with_its_source():
    assert set(K.SIMULATORS) == set(K.SCENARIOS) == set(CLAIM_IDS)
    for claim, s in K.SCENARIOS.items():
        assert s["source"] and all(w in s for w in K.WORLDS), claim


def test_operating_characteristic_bounds_at_census_size(census_rows):
    """P(fails | replication) <= 0.05 and P(holds | negation) <= 0.05 at every reliability,
    P(holds | replication) >= 0.8 at reliability 0.9 (no claim is exempt)."""
    assert len(census_rows) == len(CLAIM_IDS) * 2 * 3
    assert not K.NOT_REPRODUCIBLE
    assert K.check_bounds(census_rows) == []
    for r in census_rows:
        assert r["draws"] == 60 and r["p_holds"] + r["p_inconclusive"] + r["p_fails"] == pytest.approx(1)


def test_the_bounds_check_names_what_it_misses():
    rows = [{"claim": "x", "world": "replication", "reliability": 0.9, "size": "census", "p_holds": 0.5,
             "p_inconclusive": 0.4, "p_fails": 0.1, "draws": 10},
            {"claim": "x", "world": "negation", "reliability": 0.5, "size": "census", "p_holds": 0.2,
             "p_inconclusive": 0.8, "p_fails": 0.0, "draws": 10},
            {"claim": "x", "world": "negation", "reliability": 0.5, "size": "quick", "p_holds": 1.0,
             "p_inconclusive": 0.0, "p_fails": 0.0, "draws": 10}]
    missed = K.check_bounds(rows)
    assert len(missed) == 3 and all(m.startswith("x ") for m in missed)


def test_sample_sizes_are_the_profiles_and_lists_use_two_seeds():
    assert K.sample_index("census", "4.1") is None
    assert len(K.sample_index("ci", "4.1")) == 59 and len(K.sample_index("quick", "2.0")) == 16
    row = K.operating_characteristic("fig8-top-mixes", "replication", 0.9, "quick", 5)
    assert row["size"] == "quick" and row["draws"] == 5


def test_cli_prints_the_table_as_json(capsys, monkeypatch):
    from rsi_core.harness.cli import main
    monkeypatch.setattr(K, "SIMULATORS", {c: K.SIMULATORS[c] for c in ("fig2-final-block", "fig8-top-mixes")})
    rc = main(["validate", "--calibration", "--json", "--draws", "3"])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    rows = out["calibration"]
    assert len(rows) == 2 * 3 * 3 * 3 and rc in (0, 1)
    assert set(rows[0]) == {"claim", "world", "reliability", "size", "p_holds", "p_inconclusive", "p_fails", "draws"}
    assert {r["size"] for r in rows} == {"census", "ci", "quick"}


# ------------------------------------------------------------------ more seed noise, every part

@settings(max_examples=60, deadline=None)
@given(k=st.integers(0, 128), extra=st.integers(0, 40), stuck=st.integers(0, 20), t=st.sampled_from([0.05, 0.5, 0.9]),
       direction=st.sampled_from(["greater", "less"]))
def test_shares_counts_and_differences(k, extra, stuck, t, direction):
    """Share, all/none, count, difference and paper-count parts: more flips between the two seeds or
    more FZs that never moved only widen the bounds."""
    quiet, noisy = V.Flips(2, 78), V.Flips(2 + extra, 78)
    for kw in ({}, {"unknown": (0, 0)}):
        a = V.share_test(k, 128, t, census=True, flips=quiet, direction=direction, **kw)["verdict"]
        b = V.share_test(k, 128, t, census=True, flips=noisy, direction=direction, unknown=(stuck, stuck // 2))
        assert no_more_decided(a, b["verdict"])
    a = V.compare_shares(k, 128, 64, 128, census=True, flips1=quiet, flips2=quiet)["verdict"]
    b = V.compare_shares(k, 128, 64, 128, census=True, flips1=noisy, flips2=noisy,
                         unknown=((stuck, 0), (0, stuck)))["verdict"]
    assert no_more_decided(a, b)
    a = V.compare_shares(k, 128, 64, 128, census=False)["verdict"]
    assert no_more_decided(a, V.compare_shares(k, 128, 64, 128, census=False, unknown=((stuck, stuck), (0, 0)))[
        "verdict"])
    ca = V.count_test(k // 8, 128, 3, census=True, flips=quiet)
    cb = V.count_test(k // 8, 128, 3, census=True, flips=noisy)
    assert no_more_decided(ca["verdict"], cb["verdict"])
    assert no_more_decided(C.paper_count_test({"b": ca})["verdict"], C.paper_count_test({"b": cb})["verdict"])
    assert no_more_decided(V.joint_count_test({"b": ca})["verdict"], V.joint_count_test({"b": cb})["verdict"])


@settings(max_examples=40, deadline=None)
@given(rho=st.floats(-0.6, 0.6), noise=st.floats(0.0, 3.0), seed=st.integers(0, 10 ** 6))
def test_correlation_parts(rho, noise, seed):
    """fig3: a noisier second seed lowers M's reliability bound and widens rho's interval."""
    rng = np.random.default_rng(seed)
    m = rng.normal(size=64)
    w = rho * m + np.sqrt(1 - rho ** 2) * rng.normal(size=64)
    per = {b: (m, w, w) for b in ("1.1", "2.1", "3.1")}
    census = dict.fromkeys(per, True)
    e = rng.normal(size=64)
    quiet = C.weight_magnitude(per, census, {b: (m, m + 0.1 * e) for b in per})
    noisy = C.weight_magnitude(per, census, {b: (m, m + (0.1 + noise) * e) for b in per})
    for b in per:
        for name in ("bn", "conv"):
            assert no_more_decided(quiet.measured[b][f"verdict_{name}"], noisy.measured[b][f"verdict_{name}"])


@settings(max_examples=40, deadline=None)
@given(d=st.floats(-1.5, 1.5), noise=st.floats(0.0, 2.0), moved=st.integers(0, 30), seed=st.integers(0, 10 ** 6))
def test_group_parts(d, noise, moved, seed):
    """fig4: the overwrite - skip difference's seed variance (recomputed on the second seed) and the
    negative share's flips (channels moving between the groups, the count kept) only widen."""
    rng = np.random.default_rng(seed)
    over, skip = rng.normal(d, 1, 70), rng.normal(0, 1, 58)
    m = np.r_[np.full(40, 0.5), np.full(38, 2.0)]
    v = np.r_[over[:40], skip[:38]]
    quiet = (m, m, v, v)
    m2 = m.copy()
    m2[:moved // 2], m2[40:40 + moved // 2] = 2.0, 0.5      # as many leave the overwrite group as join it
    v2 = v + noise * rng.normal(size=78)
    v2[40:40 + moved // 2] = v[:moved // 2]                    # the joiners carry the leavers' values: count kept
    noisy = (m, m2, v, v2)
    a, b = C.lower_effect(over, skip, quiet, True), C.lower_effect(over, skip, noisy, True)
    assert b["seed_var"] >= a["seed_var"] and no_more_decided(a["verdict"], b["verdict"])
    a, b = C.negative_share(over, skip, quiet, True), C.negative_share(over, skip, noisy, True)
    if a["k"] == b["k"]:
        assert no_more_decided(a["verdict"], b["verdict"])
    census = dict.fromkeys(("1.1", "2.1", "3.1"), True)
    groups = dict.fromkeys(census, (over, skip))
    a = C.input_block_correlation(groups, census, pairs=dict.fromkeys(census, quiet))
    b = C.input_block_correlation(groups, census, pairs=dict.fromkeys(census, noisy))
    assert no_more_decided(a.measured["3.1"]["verdict"], b.measured["3.1"]["verdict"])


@settings(max_examples=30, deadline=None)
@given(shift=st.integers(0, 200), seed=st.integers(0, 10 ** 6))
def test_list_parts(shift, seed):
    """figs 6-8: the run's own seed-to-seed reproducibility is reported, never a verdict's cause."""
    rng = np.random.default_rng(seed)
    ordered = np.roll(np.arange(256), shift).tolist()
    per = {"3.1": (range(256), ordered, [128, 246, 41]), "2.1": (range(128), rng.permutation(128).tolist(), [22])}
    s = rng.normal(size=(3, 39))
    quiet = C.overlap(per, {b: (s[0], s[0]) for b in per})
    noisy = C.overlap(per, {b: (s[0], s[1]) for b in per})
    assert quiet.verdict == noisy.verdict == C.overlap(per).verdict
