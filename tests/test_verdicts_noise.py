"""Which measured seed noise a census verdict uses (rsi_core.verdicts.verdict.noise_for / seed_noise):
a planted network reads the planted source's rates, any other model the larger rate over the
sources; every census part records the source it used."""
from types import SimpleNamespace

import numpy as np
import pytest

from rsi_core.harness import claims
from rsi_core.measure.profiles import Profile
from rsi_core.measure.study import BlockResult, SampleReaders
from rsi_core.model.anatomy import block_roles, find_block
from rsi_core.model.load import load_model
from rsi_core.planted import resnet as PR
from rsi_core.verdicts import claims as C
from rsi_core.verdicts import verdict as V

PLANTED = V.PLANTED_SOURCE


@pytest.fixture
def table(monkeypatch):
    """A two-source table: the random-init source noisy (11%), the planted one quiet (1%)."""
    rates = {"random-init": 0.11, PLANTED: 0.01}
    t = {"command": "test", "sources": {s: {"pooled": {k: {"rate": r} for k in V.NOISE_KEYS}} for s, r in rates.items()},
         "margin": {k: max(rates.values()) for k in V.NOISE_KEYS}}
    monkeypatch.setattr(V, "_noise_table", lambda path: t)
    return t


def test_seed_noise_per_source_on_the_shipped_table():
    t = V._noise_table(str(V.NOISE_FILE))
    for key in V.NOISE_KEYS:
        rates = [s["pooled"][key]["rate"] for s in t["sources"].values()]
        assert V.seed_noise(key) == pytest.approx(max(rates))
        assert V.seed_noise(key, PLANTED) == pytest.approx(t["sources"][PLANTED]["pooled"][key]["rate"])
    with pytest.raises(ValueError, match="no seed-noise source 'vgg'"):
        V.seed_noise("criteria", "vgg")


def test_noise_for_reads_the_model():
    planted = PR.build(PR.get_case("scale-counts-fails"))
    assert V.noise_for(SimpleNamespace(model=planted)) == PLANTED
    assert V.noise_for(SimpleNamespace(model=load_model("resnet18", "planted:scale-counts-fails"))) == PLANTED
    assert V.noise_for(SimpleNamespace(model=load_model("resnet18", "random:0"))) is None
    shuffled = SimpleNamespace(rsi_weights="shuffle:0:planted:scale-counts-fails")   # a control: not the family
    assert V.noise_for(SimpleNamespace(model=shuffled)) is None


@pytest.mark.parametrize("test,args,kw,decided", [
    (V.share_test, (0, 3, 0.05), {"noise_key": "criteria_without_mix", "direction": "less"}, "holds"),  # "a few"
    (V.share_test, (1, 8, 0.05), {"noise_key": "criteria_without_mix"}, "holds"),       # "appreciable": 12.5%
    (V.count_test, (4, 12, 3), {"noise_key": "criteria"}, "holds"),                    # "at least 3": 4 of 12
    (V.compare_shares, (1, 8, 4, 12), {"noise_key": "criteria_without_mix"}, "holds"),  # 12.5% below 33%
    (V.none_test, (1, 8), {"noise_key": "criteria"}, "fails"),   # "none": 1 of 8 is within 2 x 11%, not 2 x 1%
])
def test_same_census_numbers_inconclusive_under_the_margin_decided_under_the_planted_source(table, test, args, kw,
                                                                                             decided):
    wide = test(*args, census=True, **kw)
    planted = test(*args, census=True, noise_source=PLANTED, **kw)
    assert (wide["verdict"], wide["noise_source"]) == ("inconclusive", V.MAX_SOURCES)
    assert (planted["verdict"], planted["noise_source"]) == (decided, PLANTED)


def _fig5_counts():
    """The planted fig5 case's design: 4 scale channels in each "many" block, none in 3.0/4.x,
    one of 3.0's ten channels passes criteria 2 and 3 without the mix one."""
    c = {b: {"n": 12, "with_mix": 4, "without_mix": 4, "both": 4} for b in ("1.1", "2.0", "2.1", "3.1")}
    c.update({"3.0": {"n": 10, "with_mix": 0, "without_mix": 1}, "4.0": {"n": 3, "with_mix": 0, "without_mix": 0},
              "4.1": {"n": 3, "with_mix": 0, "without_mix": 0}})
    return c


@pytest.mark.parametrize("shipped", [False, True])
def test_fig5_on_a_census_holds_only_under_the_planted_source(request, shipped):
    """With the larger (random-init) rate, "at most 5%" needs a share below 5% minus 11%: no census
    can show it. The planted source decides the same counts. Also on the shipped table."""
    if not shipped:
        request.getfixturevalue("table")
    counts = _fig5_counts()
    census, pop = {b: True for b in counts}, {b: counts[b]["n"] for b in counts}
    both = {"1.1": 1, "2.0": 3, "2.1": 3, "3.1": 3}
    wide = C.scale_counts(counts, census, pop, both=both)
    planted = C.scale_counts(counts, census, pop, both=both, noise_source=PLANTED)
    assert wide.verdict == "inconclusive"
    assert wide.measured["parts"]["4.0 few without mix"]["verdict"] == "inconclusive"
    assert planted.verdict == "holds", planted.measured["parts"]
    for v, src in ((wide, V.MAX_SOURCES), (planted, PLANTED)):
        assert {p["noise_source"] for p in v.measured["parts"].values()} == {src}
        assert V.noise_label(None if src == V.MAX_SOURCES else src) in v.statistic
    assert "at least 1 in 1.1, 3 in 2.0" in planted.statistic   # the lists' lengths, not resnet18's 1, 4, 9, 9


class _Census(SampleReaders):
    """A census Study of M values only (what fig2-downsample-overwrite reads)."""

    def __init__(self, model, m: dict):
        self.model, self.roles, self.profile = model, block_roles(model), Profile("test", 1, None, False, None)
        self.results = {b: BlockResult(b, find_block(model, b).kind, np.arange(len(x)), *([np.ones(len(x))] * 2),
                                       np.asarray(x, float), *([np.ones(len(x))] * 5)) for b, x in m.items()}

    def block(self, b):
        return self.results[b]


@pytest.mark.parametrize("weights,source", [("planted:downsample-overwrite-holds", PLANTED),
                                            ("random:0", V.MAX_SOURCES)])
def test_claim_function_records_its_noise_source(weights, source):
    model = load_model("resnet18", weights)
    m = {b: np.where(np.arange(find_block(model, b).channels) % 4 == 0, 2.0, 0.2) for b in ("2.0", "3.0", "4.0")}
    v = claims.claim_functions()["fig2-downsample-overwrite"](_Census(model, m))
    assert v.verdict == "holds", v.reason
    assert {p["noise_source"] for p in v.measured.values()} == {source}
    assert {p["noise"] for p in v.measured.values()} == {
        V.seed_noise("overwrite", None if source == V.MAX_SOURCES else source)}
    assert V.noise_label(None if source == V.MAX_SOURCES else source) in v.statistic
