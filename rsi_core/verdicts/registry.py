"""One record per paper claim, in torchvision's ``register_model`` style: its id, where the paper
says it, the quantities its paired check reads, the premises without which it is "n/a", whether
it reads natural images and which of the paper's lists it compares with.

Everything else that needs the list of claims derives it from here: ``CLAIM_IDS`` (expectations
files), the claim functions (``claims/test_*.py``: ``verdict.claim(ID)`` applies ``reads`` and
``applies_if`` from the record; their tests are checked against ``CLAIM_IDS``), the decidability
table, the calibration scenarios, the planted cases and the mutations (each checked to cover
every record: a claim without a calibration scenario, a mutation or a planted holds and fails case
fails a test). Imports nothing: every layer and ``rsi --help`` can read it.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Claim:
    id: str
    figure: str                  # where the paper says it
    reads: tuple = ()            # the per-channel quantities its paired check records (``regression.reads``)
    applies_if: tuple = ()       # premises (roles, family premises): "n/a" on a model without one
    natural: bool = False        # reads natural images: inconclusive on the bundled sample
    lists: str | None = None     # the paper's list it compares with (``paper.PAPER_LISTS``): "n/a" without


CLAIMS: dict[str, Claim] = {}


def register_claim(claim_id: str, **fields) -> Claim:
    """Add one claim's record (ids are unique)."""
    if claim_id in CLAIMS:
        raise ValueError(f"claim {claim_id!r} is registered twice")
    CLAIMS[claim_id] = Claim(claim_id, **fields)
    return CLAIMS[claim_id]


register_claim("fig2-downsample-overwrite", figure="Figure 2, Section 3.1", reads=("overwrite", "m"),
               applies_if=("downsample",))
register_claim("fig2-simple-less-skewed", figure="Figure 2, Section 3.1", reads=("m",), applies_if=("downsample",))
register_claim("fig2-final-block", figure="Figure 2, Section 3.1", reads=("lowest_bin", "nonzero"))
register_claim("fig3-weight-magnitude", figure="Figure 3, Section 3.2", reads=("m", "bn_weight", "conv_weight"),
               applies_if=("bn-branch",))
register_claim("fig4-inhibition", figure="Figure 4 top, Section 3.2", reads=("b_xi", "inhibit"))
register_claim("fig4-input-block-correlation", figure="Figure 4 bottom, Section 3.2", reads=("input_corr",),
               natural=True)
register_claim("fig5-scale-counts", figure="Figure 5, Section 3.3", reads=("criteria", "criteria_without_mix"),
               natural=True, applies_if=("scale-rf",))  # I sees less than B (model.anatomy.SCALE_PREMISE)
register_claim("fig6-top-scale", figure="Figure 6, Section 3.3", reads=("found",), lists="fig6")
register_claim("fig7-robust", figure="Figure 7, Appendix A.3", reads=("found",), natural=True, lists="fig7")
register_claim("fig8-top-mixes", figure="Figure 8, Appendix A.4", reads=("found",), lists="fig8")

CLAIM_IDS = tuple(CLAIMS)
