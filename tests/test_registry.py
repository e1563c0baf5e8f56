"""One record per claim (rsi_core.verdicts.registry): everything that lists the claims derives
from it, and a claim without a test, a calibration scenario, a mutation, a decidability row or a
planted holds and fails case fails here."""
import pytest

from rsi_core.harness.claims import claim_functions
from rsi_core.harness.expectations import CLAIM_IDS
from rsi_core.planted import resnet as PR
from rsi_core.planted.mutations import mutation_for
from rsi_core.verdicts import calibration, registry
from rsi_core.verdicts.regression import QUANTITIES, claim


def test_claim_ids_are_the_registrys():
    assert CLAIM_IDS == registry.CLAIM_IDS == tuple(registry.CLAIMS) and len(CLAIM_IDS) == 10
    with pytest.raises(ValueError, match="registered twice"):
        registry.register_claim(CLAIM_IDS[0], figure="x")
    with pytest.raises(ValueError, match="not registered"):
        claim("fig9-nothing")


def test_every_claim_function_is_its_records():
    fns = claim_functions()
    assert sorted(fns) == sorted(CLAIM_IDS)
    for cid, fn in fns.items():
        rec = registry.CLAIMS[cid]
        assert fn.claim_id == cid and fn.paired == rec.reads and set(rec.reads) <= set(QUANTITIES)


@pytest.mark.parametrize("cid", registry.CLAIM_IDS)
def test_every_claim_has_a_scenario_a_mutation_and_planted_cases(cid):
    assert cid in calibration.SCENARIOS and cid in calibration.SIMULATORS
    assert mutation_for(cid).claim == cid
    # a holds and a fails case each; a harder case may expect inconclusive too (a near-threshold share)
    assert {"holds", "fails"} <= {c.expect for c in PR.CASES if c.claim == cid}


def test_a_claim_function_marked_with_another_id_is_refused(tmp_path):
    (tmp_path / "test_x.py").write_text(
        "import pytest\nfrom rsi_core.verdicts.regression import claim\n\n"
        "@claim('fig2-final-block')\ndef final(study):\n    pass\n\n"
        "@pytest.mark.claim('fig8-top-mixes')\ndef test_final(rsi_claims):\n    pass\n")
    with pytest.raises(ValueError, match="marked 'fig8-top-mixes' but checks 'fig2-final-block'"):
        claim_functions(tmp_path)


def test_a_paper_run_on_the_bundled_images_says_so_before_any_work(tmp_path, monkeypatch):
    from rsi_core.harness.claims import natural_images_note
    monkeypatch.delenv("RSI_IMAGES", raising=False)
    note = natural_images_note("paper", None)
    assert "bundled 250-image sample" in note and "--images" in note
    assert all(c in note for c in ("fig4-input-block-correlation", "fig5-scale-counts", "fig7-robust"))
    assert natural_images_note("paper", str(tmp_path)) is None and natural_images_note("quick", None) is None
