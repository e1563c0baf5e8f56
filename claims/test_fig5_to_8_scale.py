"""Figures 5-8: scale-invariant channels and the channels the paper names."""
from rsi_core.pytest_plugin import claim


@claim("fig5-scale-counts")
def test_scale_invariant_counts(check_claim, claim_id):
    check_claim(claim_id)


@claim("fig6-top-scale")
def test_top_scale_channels(check_claim, claim_id):
    check_claim(claim_id)


@claim("fig7-robust")
def test_robust_scale_channels(check_claim, claim_id):
    check_claim(claim_id)


@claim("fig8-top-mixes")
def test_top_mixes(check_claim, claim_id):
    check_claim(claim_id)
