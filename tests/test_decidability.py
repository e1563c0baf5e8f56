"""The decidability table (rsi_core.verdicts.decidability): at resnet18's census sizes and the
noise a census would use, every part of every claim can hold and can fail."""
import pytest

from rsi_core.harness.expectations import CLAIM_IDS
from rsi_core.verdicts.decidability import decidability, resnet18_layout


@pytest.fixture(scope="module")
def table():
    return decidability()


def test_every_part_of_every_claim_can_hold_and_can_fail(table):
    assert {row["claim"] for row in table} == set(CLAIM_IDS)
    stuck = [(r["claim"], r["part"], r["holds"], r["fails"]) for r in table if not (r["can_hold"] and r["can_fail"])]
    assert not stuck


def test_at_resnet18s_sizes(table):
    roles, size = resnet18_layout()
    assert [size[b] for b in roles["studied"]] == [64, 128, 128, 256, 256, 512, 512]
    down = {r["part"]: r for r in table if r["claim"] == "fig2-downsample-overwrite"}
    assert {p: r["channels"] for p, r in down.items()} == {"2.0": 128, "3.0": 256, "4.0": 512}


def test_share_parts_are_ordered_and_tighter_on_larger_blocks(table):
    """Holds above inconclusive above fails for "greater" shares; the inconclusive band narrows as
    the block grows (the census noise falls as 1/sqrt(n))."""
    down = {r["part"]: r for r in table if r["claim"] == "fig2-downsample-overwrite"}
    for r in down.values():
        (h,), (i,), (f,) = r["holds"], r["inconclusive"], r["fails"]
        assert f[1] < i[0] <= i[1] < h[0] and h[1] == 1.0 and f[0] == 0.0
        assert i[0] < 0.5 < i[1]
    width = {p: r["inconclusive"][0][1] - r["inconclusive"][0][0] for p, r in down.items()}
    assert width["2.0"] > width["3.0"] > width["4.0"]
    zero = next(r for r in table if r["part"] == "3.0 none")
    # "zero" is stricter than "a few" (5%): it holds only below 2% and fails before "a few" ends
    assert zero["holds"][0][0] == 0.0 and zero["holds"][0][1] < 0.02 < zero["fails"][0][0] < 0.05
