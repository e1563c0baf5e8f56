"""Figures 3 and 4: mechanisms of the spectrum (weight magnitudes, inhibition)."""
from rsi_core.pytest_plugin import claim


@claim("fig3-weight-magnitude")
def test_skip_channels_have_small_weights(check_claim, claim_id):
    check_claim(claim_id)


@claim("fig4-inhibition")
def test_block_inhibits_input_feature(check_claim, claim_id):
    check_claim(claim_id)


@claim("fig4-input-block-correlation")
def test_input_block_correlation(check_claim, claim_id):
    check_claim(claim_id)
