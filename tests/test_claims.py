"""Claims and report on synthetic per-block results whose verdicts are known by construction."""
import json

import numpy as np
import pytest
import torch

from rsi_core import claims, report
from rsi_core.analysis import BlockResult
from rsi_core.anatomy import PAPER_BLOCKS, find_block
from rsi_core.models import load_model
from rsi_core.profiles import PAPER_FIG8, Profile


@pytest.fixture(scope="module")
def model():
    return load_model("resnet18", "random:0")


def block_result(name, m, model, b_xi=None, scale=False):
    """A BlockResult with mix ratios ``m`` (O on X_B is 1, so O on X_I is M)."""
    m = np.asarray(m, dtype=float)
    n = len(m)
    ones = np.ones(n)
    b_xi = ones if b_xi is None else np.asarray(b_xi, float)
    return BlockResult(
        block=name, kind=find_block(model, name).kind, channels=np.arange(n),
        i_xi=ones, b_xi=b_xi, o_xi=m, i_xb=ones, b_xb=ones, o_xb=ones,
        b_s_xi=b_xi + (1 if scale else -1), i_sinv_xb=ones + (1 if scale else -1))


class FakeStudy:
    """What a claim reads from a Study, from hand-made BlockResults."""

    def __init__(self, model, results, corr=None):
        self.model, self.results, self.corr = model, results, corr or {}
        self.blocks = list(results)
        self.profile = Profile("test", 1, None, False, None)

    def channels(self, b):
        return self.results[b].channels.tolist()

    def block(self, b):
        return self.results[b]

    robust = block

    def input_block_correlation(self, b):
        return self.corr[b]

    def describe(self):
        return {"model": "resnet18", "weights": "IMAGENET1K_V1", "weights_id": "test", "profile": "test"}


def full_study(model, m_of_block, **kw):
    """Every studied block with all its channels, M from ``m_of_block(block, n)``."""
    return FakeStudy(model, {b: block_result(b, m_of_block(b, find_block(model, b).channels), model, **kw)
                             for b in PAPER_BLOCKS})


def test_downsample_overwrite_holds_fails_and_is_inconclusive(model):
    over = full_study(model, lambda b, n: np.full(n, 0.3))
    assert claims.evaluate("fig2-downsample-overwrite", over).holds is True
    skip = full_study(model, lambda b, n: np.full(n, 2.0))
    assert claims.evaluate("fig2-downsample-overwrite", skip).holds is False
    few = FakeStudy(model, {b: block_result(b, [0.3] * 5 + [2.0], model) for b in ("2.0", "3.0", "4.0")})
    result = claims.evaluate("fig2-downsample-overwrite", few)
    assert result.holds is None and "5/6 overwrite" in result.reason


def test_simple_blocks_less_skewed(model):
    study = full_study(model, lambda b, n: np.linspace(0.5, 3, n) if b in claims.SIMPLE
                       else np.linspace(0.05, 0.9, n))
    assert claims.evaluate("fig2-simple-less-skewed", study).holds is True
    reverse = full_study(model, lambda b, n: np.linspace(0.05, 0.9, n) if b in claims.SIMPLE
                         else np.linspace(0.5, 3, n))
    assert claims.evaluate("fig2-simple-less-skewed", reverse).holds is False


def test_final_block_needs_nearly_all_in_lowest_bin_and_nonzero(model):
    assert claims.evaluate("fig2-final-block", full_study(model, lambda b, n: np.full(n, 0.1))).holds is True
    zeros = full_study(model, lambda b, n: np.r_[np.zeros(n // 4), np.full(n - n // 4, 0.1)])
    result = claims.evaluate("fig2-final-block", zeros)
    assert result.holds is False and result.measured["nonzero"] == 512 - 128


def test_weight_magnitude_claim_reads_the_blocks_own_weights(model):
    m = {b: np.linspace(0.1, 4, find_block(model, b).channels) for b in PAPER_BLOCKS}
    with torch.no_grad():  # skip channels (high M) get small weights, as the paper finds
        for b in claims.SIMPLE:
            blk = find_block(model, b).module
            n = blk.bn2.num_features
            blk.bn2.weight.copy_(torch.linspace(2, 0.1, n))
            blk.conv2.weight.mul_(torch.linspace(2, 0.1, n).view(-1, 1, 1, 1) / blk.conv2.weight.abs().mean())
    try:
        result = claims.evaluate("fig3-weight-magnitude", full_study(model, lambda b, n: m[b]))
        assert result.holds is True
        assert all(v["rho_bn"] < -0.9 for v in result.measured.values())
    finally:
        model.load_state_dict(load_model("resnet18", "random:0").state_dict())


def test_inhibition_claim(model):
    def b_xi(b, n):
        return np.where(np.arange(n) % 2 == 0, -1.0, 1.0)  # overwrite channels (even) inhibited
    results = {b: block_result(b, np.where(np.arange(find_block(model, b).channels) % 2 == 0, 0.5, 2.0), model,
                               b_xi=b_xi(b, find_block(model, b).channels)) for b in PAPER_BLOCKS}
    result = claims.evaluate("fig4-inhibition", FakeStudy(model, results))
    assert result.holds is True
    assert result.measured["3.1"]["overwrite_negative_share"] == 1.0


def test_scale_counts(model):
    n_of = {b: find_block(model, b).channels for b in PAPER_BLOCKS}
    results = {b: block_result(b, np.ones(n_of[b]), model, scale=b in ("1.1", "2.0", "2.1", "3.1")) for b in PAPER_BLOCKS}
    assert claims.evaluate("fig5-scale-counts", FakeStudy(model, results)).holds is True
    results["3.0"] = block_result("3.0", np.ones(n_of["3.0"]), model, scale=True)  # 100% in 3.0: refuted
    assert claims.evaluate("fig5-scale-counts", FakeStudy(model, results)).holds is False


def test_top_mixes_overlap_with_the_papers_channels(model):
    def m(b, n):
        out = np.full(n, 3.0)
        out[PAPER_FIG8[b]] = 1.0
        return out
    result = claims.evaluate("fig8-top-mixes", full_study(model, m))
    assert result.holds is True and result.measured["combined_p"] < 1e-6
    assert result.measured["blocks"]["4.1"]["overlap"] == sorted(PAPER_FIG8["4.1"])
    far = claims.evaluate("fig8-top-mixes", full_study(model, lambda b, n: np.abs(np.arange(n) - 300.0) / 100 + 1))
    assert far.holds is False


def test_expectations_and_outcomes():
    assert claims.expectation("fig2-final-block", "resnet18", "IMAGENET1K_V1") == "holds"
    assert claims.expectation("fig2-final-block", "resnet18", "random:3") == "observe"
    assert claims.expectation("fig2-final-block", "resnet34", "IMAGENET1K_V1") == "observe"
    assert claims.outcome(True, "holds") == "pass" and claims.outcome(False, "holds") == "fail"
    assert claims.outcome(False, "fails") == "fails as expected"
    assert claims.outcome(False, "observe") == "observed" and claims.outcome(None, "holds") == "inconclusive"
    assert len(claims.CLAIMS) == 10


def test_check_writes_entry_and_flags_regressions(model, tmp_path):
    study = full_study(model, lambda b, n: np.full(n, 0.3))
    entry = claims.check("fig2-downsample-overwrite", study, tmp_path)
    saved = json.loads((tmp_path / "claims" / "fig2-downsample-overwrite.json").read_text())
    assert saved["verdict"] == "holds" and saved["outcome"] == "pass" and entry["regressions"] == []
    assert (tmp_path / "fig2-downsample-overwrite.png").stat().st_size > 0
    md, js = report.write_report(report.collect(tmp_path), tmp_path)
    baseline = report.load_baseline(js)
    flipped = full_study(model, lambda b, n: np.full(n, 2.0))
    entry = claims.check("fig2-downsample-overwrite", flipped, tmp_path, baseline)
    assert any("verdict flipped" in r for r in entry["regressions"])
    assert "fig2-downsample-overwrite" in md.read_text()


def test_regression_tolerance():
    old = {"verdict": "holds", "measured": {"a": {"x": 1.0}, "y": 0.01}}
    assert report.regressions({"verdict": "holds", "measured": {"a": {"x": 1.2}, "y": 0.05}}, old) == []
    moved = report.regressions({"verdict": "holds", "measured": {"a": {"x": 1.3}, "y": 0.01}}, old)
    assert moved == ["a.x: 1 -> 1.3"]
    assert report.regressions({"verdict": "inconclusive", "measured": {}}, old) == []


def test_bad_baseline_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "old.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="claims-report.json"):
        report.load_baseline(bad)
