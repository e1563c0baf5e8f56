"""Figure 2: where channels fall on the skip-overwrite spectrum (mix ratio histograms)."""
import pytest


@pytest.mark.claim("fig2-downsample-overwrite")
@pytest.mark.parametrize("claim_id", ["fig2-downsample-overwrite"])
def test_downsample_blocks_overwrite(check_claim, claim_id):
    check_claim(claim_id)


@pytest.mark.claim("fig2-simple-less-skewed")
@pytest.mark.parametrize("claim_id", ["fig2-simple-less-skewed"])
def test_simple_blocks_less_skewed(check_claim, claim_id):
    check_claim(claim_id)


@pytest.mark.claim("fig2-final-block")
@pytest.mark.parametrize("claim_id", ["fig2-final-block"])
def test_final_block_lowest_bin(check_claim, claim_id):
    check_claim(claim_id)
