"""Figures 5-8: scale-invariant channels and the channels the paper names."""
import pytest


@pytest.mark.claim("fig5-scale-counts")
@pytest.mark.parametrize("claim_id", ["fig5-scale-counts"])
def test_scale_invariant_counts(check_claim, claim_id):
    check_claim(claim_id)


@pytest.mark.claim("fig6-top-scale")
@pytest.mark.parametrize("claim_id", ["fig6-top-scale"])
def test_top_scale_channels(check_claim, claim_id):
    check_claim(claim_id)


@pytest.mark.claim("fig7-robust")
@pytest.mark.parametrize("claim_id", ["fig7-robust"])
def test_robust_scale_channels(check_claim, claim_id):
    check_claim(claim_id)


@pytest.mark.claim("fig8-top-mixes")
@pytest.mark.parametrize("claim_id", ["fig8-top-mixes"])
def test_top_mixes(check_claim, claim_id):
    check_claim(claim_id)
