"""Profiles: the unbiased sample never holds the paper's named channels; they come in addition."""
import pytest

from rsi_core.measure.profiles import (
    channels_for,
    evenly_spaced,
    get_profile,
    is_census,
    named_channels,
    sample_channels,
)
from rsi_core.paper import PAPER_LISTS

SIZES = {"1.1": 64, "2.0": 128, "2.1": 128, "3.0": 256, "3.1": 256, "4.0": 512, "4.1": 512}


def test_evenly_spaced():
    assert evenly_spaced(64, 5) == [0, 16, 32, 47, 63]
    assert evenly_spaced(8, None) == list(range(8)) == evenly_spaced(8, 20)
    assert evenly_spaced(512, 1) == [0]


@pytest.mark.parametrize("name", ["quick", "smoke"])
def test_sample_ignores_what_the_paper_found(name):
    p = get_profile(name)
    for b, n in SIZES.items():
        assert sample_channels(p, b, n) == evenly_spaced(n, p.channels_per_block)
        assert not is_census(p, b, n)
        # the sample would be the same if the paper had named other channels
        assert sample_channels(p, b, n) == sample_channels(p, "9.9", n)


def test_named_channels_come_in_addition_for_quick_only():
    quick, smoke, paper = get_profile("quick"), get_profile("smoke"), get_profile("paper")
    for b, n in SIZES.items():
        named = named_channels(quick, b, n)
        listed = {c for fig in PAPER_LISTS.values() for c in fig.get(b, [])}
        assert set(named) == listed - set(sample_channels(quick, b, n))
        assert not set(named) & set(sample_channels(quick, b, n))
        assert channels_for(quick, b, n) == sorted(set(sample_channels(quick, b, n)) | set(named))
        assert named_channels(smoke, b, n) == [] and channels_for(smoke, b, n) == sample_channels(smoke, b, n)
        assert named_channels(paper, b, n) == [] and is_census(paper, b, n)
        assert channels_for(paper, b, n) == list(range(n))
    assert 108 in named_channels(quick, "2.1", 128)
    assert named_channels(quick, "2.1", 128, lists=None) == []   # other models: no paper lists


@pytest.mark.slow
def test_ci_profile_is_what_the_power_analysis_asks():
    """benchmarks/power.py sizes ``ci``: per block the channels its servable claims need for 80% power."""
    import importlib.util
    from pathlib import Path
    spec = importlib.util.spec_from_file_location("power", Path(__file__).parents[1] / "benchmarks" / "power.py")
    power = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(power)
    table = power.rows()
    ci = get_profile("ci")
    assert {b: ci.sample_size(b) for b in power.BLOCKS} == power.profile(table)
    # the paired check's floor from what rsi validate --regression measured (benchmarks/regression_oc.json): at
    # continued training's F_pair no size up to the census meets the targets, so ci stays at the verdicts' needs
    assert power.regression_floor(power.verdict_needs(table), power.json.loads(power.MEASURED.read_text())) is None
    assert power.served(table) == ["fig2-downsample-overwrite", "fig2-final-block", "fig2-simple-less-skewed"]
    assert power.share_n(1.0, 0.95, 0.9) == 59   # "all" at 95%: 0.05 ** (1 / 59) > 0.95 > 0.05 ** (1 / 58)
