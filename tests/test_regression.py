"""The paired regression check's statistics on constructed numbers (rsi_core.verdicts.regression)."""
import numpy as np

from rsi_core.verdicts import regression as R
from rsi_core.verdicts.verdict import Flips, table_flips


def _seeds(rng, q):
    """Two FZ seeds' classes of channels in the class with probabilities ``q``."""
    return rng.random(len(q)) < q, rng.random(len(q)) < q


def test_identical_classes_are_unchanged_and_a_moved_share_is_changed():
    old = np.r_[np.ones(30, bool), np.zeros(10, bool)]
    assert R.class_change(old, old, Flips(0, 40))["verdict"] == "unchanged"
    moved = R.class_change(old, np.r_[np.ones(10, bool), np.zeros(30, bool)], Flips(4, 40))
    assert moved["verdict"] == "changed" and moved["lost"] == 20 and moved["shift"] == -0.5


def test_churn_beyond_the_seed_flip_rate_is_changed_churn_within_it_is_not():
    old = np.r_[np.ones(100, bool), np.zeros(100, bool)]
    new = old.copy()
    new[:10], new[100:110] = False, True       # 20 of 200 flipped, both ways: the share did not move
    assert R.class_change(old, new, Flips(40, 200))["verdict"] == "unchanged"   # seeds flip 20% of channels
    churn = R.class_change(old, new, Flips(0, 200))                              # seeds never flip one
    assert churn["verdict"] == "changed" and churn["p_churn"] < 1e-6 and abs(churn["shift"]) == 0


def test_few_channels_with_flips_are_inconclusive():
    old = np.array([True, True, False, False, True, False])
    new = np.array([False, True, True, False, True, False])
    assert R.class_change(old, new, Flips(2, 10))["verdict"] == "inconclusive"


def test_continuous_values_shift_beyond_and_within_the_tolerance():
    rng = np.random.default_rng(0)
    old = rng.normal(0, 1, 60)
    assert R.continuous_change(old, old)["verdict"] == "unchanged"
    assert R.continuous_change(old, old + rng.normal(0, 0.02, 60))["verdict"] == "unchanged"
    up = R.continuous_change(old, old + 1.0 + rng.normal(0, 0.1, 60))
    assert up["verdict"] == "changed" and up["p_above"] < 0.01 and up["median_shift"] > 0.9
    assert R.continuous_change(old, old - 1.0)["verdict"] == "changed"
    assert R.continuous_change(old[:4], old[:4] + 5)["verdict"] == "inconclusive"   # too few pairs to tell
    assert R.continuous_change(old, old + rng.normal(0, 1.5, 60))["verdict"] == "inconclusive"


def test_false_alarm_rate_under_pure_seed_noise_is_at_most_alpha():
    """Baseline and run differ only by FZ seed: per channel the class flips with 2 q (1 - q), the
    continuous value by seed noise; a claim of 3 blocks x 2 quantities, 300 draws."""
    rng = np.random.default_rng(1)
    alarms = 0
    for _ in range(300):
        claim = {}
        for b in ("2.0", "3.0", "4.0"):
            n = 40
            q = rng.choice([0.02, 0.3, 0.7, 0.98], n)
            m = rng.lognormal(-0.5, 0.8, n)
            a, c = _seeds(rng, q)
            pa, pc = _seeds(rng, q[:20])                     # the run's own second seed on 20 channels
            claim[b] = ({"channels": list(range(n)), "overwrite": list(a), "m": list(m * rng.lognormal(0, 0.3, n))},
                        {"channels": list(range(n)), "overwrite": list(c), "m": list(m * rng.lognormal(0, 0.3, n)),
                         "flips": {"overwrite": {"flips": int((pa != pc).sum()), "pairs": 20}}})
        old = {"verdict": "holds", "value": 1.0, "paired": {b: o for b, (o, _) in claim.items()}}
        new = {"verdict": "holds", "value": 1.0, "paired": {b: n_ for b, (_, n_) in claim.items()}}
        alarms += R.compare(old, new)["verdict"] == "changed"
    assert alarms / 300 <= 0.05


def test_claim_verdict_combines_parts_and_na_stays_na():
    rec = {"channels": [0, 1, 2, 3, 4, 5, 6, 7], "overwrite": [True] * 8}
    entry = {"verdict": "holds", "value": 1.0, "paired": {"2.0": rec, "3.0": rec}}
    assert R.compare(entry, entry)["verdict"] == "unchanged"
    flipped = {**entry, "paired": {"2.0": rec, "3.0": {**rec, "overwrite": [False] * 8}}}
    out = R.compare(entry, flipped)
    assert out["verdict"] == "changed" and out["parts"]["2.0 overwrite"]["verdict"] == "unchanged"
    table = table_flips("overwrite").upper   # no second seed recorded: the shipped table's rate
    assert R.changed_parts(out) == [f"3.0 overwrite: share 1 -> 0, 8 of 8 channels flipped (seed-flip rate at most "
                                    f"{table:.2g})"]
    na = {"verdict": "inconclusive", "reason": "n/a: lists are resnet18's", "value": None}
    assert R.compare(na, na)["verdict"] == "n/a" and R.compare(entry, {**entry, "verdict": "n/a"})["verdict"] == "n/a"
    assert R.compare(None, entry)["verdict"] == "n/a" and R.compare(entry, {**entry, "verdict": "error"})["verdict"] == "n/a"
    # channels pair by id: a channel only one run kept is left out
    other = {**entry, "paired": {"2.0": {"channels": [1, 2, 3, 4, 5, 6, 7, 8], "overwrite": [True] * 8}}}
    assert R.compare(entry, other)["parts"]["2.0 overwrite"]["n"] == 7
