"""Figure 2: where channels fall on the skip-overwrite spectrum (mix ratio histograms)."""
from rsi_core.pytest_plugin import claim


@claim("fig2-downsample-overwrite")
def test_downsample_blocks_overwrite(check_claim, claim_id):
    check_claim(claim_id)


@claim("fig2-simple-less-skewed")
def test_simple_blocks_less_skewed(check_claim, claim_id):
    check_claim(claim_id)


@claim("fig2-final-block")
def test_final_block_lowest_bin(check_claim, claim_id):
    check_claim(claim_id)
