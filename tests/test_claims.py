"""Claims (the functions in claims/test_*.py), the harness and the report on synthetic per-block
results whose verdicts are known by construction."""
import json
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from rsi_core.fz.render import FZSettings
from rsi_core.harness import claims, expectations
from rsi_core.measure.profiles import Profile, evenly_spaced, second_seed_channels
from rsi_core.measure.study import BlockResult, SampleReaders
from rsi_core.model.anatomy import block_roles, find_block
from rsi_core.model.load import load_model
from rsi_core.paper import PAPER_BLOCKS, PAPER_FIG8, PAPER_LISTS, PAPER_READING, READINGS
from rsi_core.report import claims_report as report

CLAIM = claims.claim_functions()


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


class FakeStudy(SampleReaders):
    """What a claim reads from a Study, from hand-made BlockResults; ``variants`` maps FZ
    settings (target, seed) to other FakeStudies. A census block's second seed gives the very
    same numbers (no flip) unless ``second_seed`` is False (then the shipped table is the noise)."""

    def __init__(self, model, results, corr=None, weights="IMAGENET1K_V1", lists=PAPER_LISTS, variants=None,
                 second_seed=True):
        self.model, self.results, self.corr = model, results, corr or {}
        self.roles = block_roles(model)
        self.blocks = list(results)
        self.profile = Profile("test", 1, None, False, None, second_seed=second_seed)
        self.settings = FZSettings(steps=1)
        self.weights, self.lists, self.variants = weights, lists, variants or {}
        self.image_set = SimpleNamespace(is_bundled=False)   # natural images able to decide

    def channels(self, b):
        return self.results[b].channels.tolist()

    def block(self, b):
        return self.results[b]

    robust = block

    def fz_health(self, b):
        return {"channels": len(self.results[b].channels), "never_moved": {"I": 0, "B": 0},
                "failed": int(self.results[b].failed.sum())}

    def pairs(self, b):
        chans = second_seed_channels(self.profile, b, find_block(self.model, b).channels)
        if not chans:
            return None
        r = self.results[b].take(np.searchsorted(self.results[b].channels, chans))
        return r, r

    def input_block_correlation(self, b):
        return self.corr[b]

    def variant(self, **fz):
        out = self.variants[tuple(sorted(fz.items()))]
        out.settings = replace(self.settings, **fz)
        return out

    def prepare(self):  # the harness fills a variant's bank as planned: nothing to render here
        pass

    def describe(self):
        return {"model": "resnet18", "weights": self.weights, "weights_id": "test", "profile": "test",
                "image_set_id": "x", "fz": self.settings.describe()}


def full_study(model, m_of_block, **kw):
    """Every studied block with all its channels, M from ``m_of_block(block, n)``."""
    extra = {k: kw.pop(k) for k in ("weights", "lists", "variants") if k in kw}
    return FakeStudy(model, {b: block_result(b, m_of_block(b, find_block(model, b).channels), model, **kw)
                             for b in PAPER_BLOCKS}, **extra)


def over(model, **kw):
    return full_study(model, lambda b, n: np.full(n, 0.3), **kw)


def skip(model, **kw):
    return full_study(model, lambda b, n: np.full(n, 2.0), **kw)


def test_every_spec_claim_is_a_marked_test_with_the_papers_sentence():
    assert sorted(CLAIM) == sorted(expectations.CLAIM_IDS)
    assert all(fn.__doc__ and len(fn.__doc__) > 30 for fn in CLAIM.values())


def test_downsample_overwrite_holds_fails_and_is_inconclusive(model):
    v = CLAIM["fig2-downsample-overwrite"](over(model))
    assert v.verdict == "holds" and v.blocks == {"downsample": ["2.0", "3.0", "4.0"]} and v.value == 1.0
    assert CLAIM["fig2-downsample-overwrite"](skip(model)).verdict == "fails"
    # a sample of 6 channels per block (5 overwrite): the exact binomial bound cannot clear 1/2
    few = FakeStudy(model, {b: replace(block_result(b, [0.3] * 5 + [2.0], model),
                                       channels=np.array(evenly_spaced(find_block(model, b).channels, 6)))
                            for b in ("2.0", "3.0", "4.0")})
    few.profile = Profile("sample", 1, 6, False, None)
    v = CLAIM["fig2-downsample-overwrite"](few)
    assert v.verdict == "inconclusive" and "5/6 overwrite" in v.reason


def test_simple_blocks_less_skewed(model):
    simple = ("1.1", "2.1", "3.1")
    study = full_study(model, lambda b, n: np.linspace(0.5, 3, n) if b in simple else np.linspace(0.05, 0.9, n))
    assert CLAIM["fig2-simple-less-skewed"](study).verdict == "holds"
    reverse = full_study(model, lambda b, n: np.linspace(0.05, 0.9, n) if b in simple else np.linspace(0.5, 3, n))
    assert CLAIM["fig2-simple-less-skewed"](reverse).verdict == "fails"


def test_final_block_needs_nearly_all_in_lowest_bin_and_nonzero(model):
    assert CLAIM["fig2-final-block"](full_study(model, lambda b, n: np.full(n, 0.1))).verdict == "holds"
    zeros = full_study(model, lambda b, n: np.r_[np.zeros(n // 4), np.full(n - n // 4, 0.1)])
    v = CLAIM["fig2-final-block"](zeros)
    assert v.verdict == "fails" and v.measured["parts"]["4.1 non-zero"]["k"] == 512 - 128
    assert v.blocks == {"final": ["4.1"]}


def test_weight_magnitude_claim_reads_the_blocks_own_weights(model):
    m = {b: np.linspace(0.1, 4, find_block(model, b).channels) for b in PAPER_BLOCKS}
    with torch.no_grad():  # skip channels (high M) get small weights, as the paper finds
        for b in ("1.1", "2.1", "3.1"):
            blk = find_block(model, b).module
            n = blk.bn2.num_features
            blk.bn2.weight.copy_(torch.linspace(2, 0.1, n))
            blk.conv2.weight.mul_(torch.linspace(2, 0.1, n).view(-1, 1, 1, 1) / blk.conv2.weight.abs().mean())
    try:
        v = CLAIM["fig3-weight-magnitude"](full_study(model, lambda b, n: m[b]))
        assert v.verdict == "holds"
        assert all(x["rho_bn"] < -0.9 for x in v.measured.values())
    finally:
        model.load_state_dict(load_model("resnet18", "random:0").state_dict())


def _alternating(model, b):
    n = find_block(model, b).channels
    return np.where(np.arange(n) % 2 == 0, 0.5, 2.0), np.where(np.arange(n) % 2 == 0, -1.0, 1.0)


def test_inhibition_claim(model):
    results = {b: block_result(b, _alternating(model, b)[0], model, b_xi=_alternating(model, b)[1]) for b in PAPER_BLOCKS}
    v = CLAIM["fig4-inhibition"](FakeStudy(model, results))
    assert v.verdict == "holds" and v.measured["3.1"]["negative"]["share"] == 1.0
    flipped = {b: block_result(b, _alternating(model, b)[0], model, b_xi=-_alternating(model, b)[1]) for b in PAPER_BLOCKS}
    assert CLAIM["fig4-inhibition"](FakeStudy(model, flipped)).verdict == "fails"


def test_input_block_correlation_holds_in_31_only(model):
    results = {b: block_result(b, _alternating(model, b)[0], model) for b in PAPER_BLOCKS}
    noise = np.random.default_rng(0)
    corr = {b: noise.normal(0, 0.1, find_block(model, b).channels) for b in ("1.1", "2.1")}
    corr["3.1"] = _alternating(model, "3.1")[1] * 0.5 + noise.normal(0, 0.1, 256)
    v = CLAIM["fig4-input-block-correlation"](FakeStudy(model, results, corr))
    assert v.verdict == "holds", v.reason
    corr["1.1"] = _alternating(model, "1.1")[1] * 0.5  # significant in 1.1 too: refuted
    assert CLAIM["fig4-input-block-correlation"](FakeStudy(model, results, corr)).verdict == "fails"


def test_scale_counts(model):
    n_of = {b: find_block(model, b).channels for b in PAPER_BLOCKS}
    results = {b: block_result(b, np.ones(n_of[b]), model, scale=b in ("1.1", "2.0", "2.1", "3.1")) for b in PAPER_BLOCKS}
    # 3.0: half its channels meet criteria 2 and 3 but not the mix criterion (M = 2): appreciable, below its neighbours
    r30 = block_result("3.0", np.full(n_of["3.0"], 2.0), model, scale=True)
    results["3.0"] = replace(r30, b_s_xi=np.where(np.arange(n_of["3.0"]) % 2 == 0, r30.b_s_xi, r30.b_xi - 1))
    v = CLAIM["fig5-scale-counts"](FakeStudy(model, results))
    assert v.verdict == "holds", v.reason
    assert {p["noise"]["source"] for p in v.measured["parts"].values() if isinstance(p.get("noise"), dict)} == \
        {"in-run second seed"}
    # no second seed: the shipped table (32-step FZs on random-init weights) decides the same census
    table = CLAIM["fig5-scale-counts"](FakeStudy(model, results, second_seed=False))
    assert table.verdict == "holds" and all(
        p["noise"]["source"].startswith("fallback") for p in table.measured["parts"].values()
        if isinstance(p.get("noise"), dict))
    results["3.0"] = block_result("3.0", np.ones(n_of["3.0"]), model, scale=True)  # 100% in 3.0: refuted
    assert CLAIM["fig5-scale-counts"](FakeStudy(model, results)).verdict == "fails"


def test_top_mixes_overlap_with_the_papers_channels(model):
    def m(b, n):
        out = np.full(n, 3.0)
        out[PAPER_FIG8[b]] = 1.0
        return out
    v = CLAIM["fig8-top-mixes"](full_study(model, m))
    assert v.verdict == "holds" and v.measured["p_high"] < 0.001
    assert v.measured["blocks"]["4.1"]["overlap"] == sorted(PAPER_FIG8["4.1"])
    def far(b, n):   # the paper's channels the farthest from 1 of all: they rank last
        out = 1 + np.arange(n) / n
        out[PAPER_FIG8[b]] = 5.0
        return out
    assert CLAIM["fig8-top-mixes"](full_study(model, far)).verdict == "fails"


def test_list_claims_are_not_applicable_without_the_lists(model):
    for cid in ("fig6-top-scale", "fig7-robust", "fig8-top-mixes"):
        v = CLAIM[cid](over(model, lists=None))
        assert v.verdict == "n/a" and v.reason == "n/a: lists are resnet18's"


def test_expectations_files_and_outcomes(tmp_path):
    assert expectations.for_run("resnet18", "IMAGENET1K_V1")["fig2-final-block"] == "holds"
    assert expectations.for_run("resnet18", "random:3")["fig2-final-block"] == "observe"
    assert expectations.for_run("resnet34", "IMAGENET1K_V1")["fig2-final-block"] == "observe"
    mine = tmp_path / "mine.toml"
    mine.write_text('[claims]\nfig2-final-block = "fails"\n')
    assert expectations.for_run("resnet18", "random:3", [mine])["fig2-final-block"] == "fails"
    for text, match in (('[claims]\nfig9-nope = "holds"\n', "unknown claim ids"),
                        ('[claims]\nfig2-final-block = "maybe"\n', "not one of"),
                        ('model = "resnet50"\n', "is for model resnet50")):
        mine.write_text(text)
        with pytest.raises(ValueError, match=match):
            expectations.for_run("resnet18", "IMAGENET1K_V1", [mine])
    o = expectations.outcome
    assert o("holds", "holds") == "pass" and o("fails", "holds") == "fail" and o("fails", "fails") == "fails as expected"
    assert o("holds", "fails").startswith("fail (") and o("fails", "observe") == "observed"
    assert o("inconclusive", "holds") == "inconclusive" and o("error", "observe") == "error"


def test_harness_writes_entry_and_a_blessed_file_makes_a_changed_verdict_fail(model, tmp_path):
    fn = CLAIM["fig2-downsample-overwrite"]
    h = claims.Harness(over(model, weights="random:0"), tmp_path)
    entry = h.run("fig2-downsample-overwrite", fn, paired=("overwrite", "m"))
    saved = json.loads((tmp_path / "claims" / "fig2-downsample-overwrite.json").read_text())
    assert saved["verdict"] == "holds" and saved["outcome"] == "observed" and entry.regressions == []
    assert saved["paper"].startswith("In every downsample block") and saved["blocks"]["downsample"] == ["2.0", "3.0", "4.0"]
    assert saved["paired"]["2.0"]["channels"] == list(range(128)) and saved["paired"]["2.0"]["overwrite"] == [True] * 128
    md, js = report.write_report(report.collect(tmp_path), tmp_path)
    blessed = tmp_path / "blessed.toml"
    blessed.write_text(expectations.from_report(js))
    expect = expectations.for_run("resnet18", "random:0", [blessed])
    assert expect["fig2-downsample-overwrite"] == "holds"
    same = claims.Harness(over(model, weights="random:0"), tmp_path / "a", expect, report.load_baseline(js))
    entry = same.run("fig2-downsample-overwrite", fn, paired=("overwrite", "m"))
    assert entry.regression["verdict"] == "unchanged" and entry.regressions == []
    changed = claims.Harness(skip(model, weights="random:0"), tmp_path / "b", expect, report.load_baseline(js))
    entry = changed.run("fig2-downsample-overwrite", fn, paired=("overwrite", "m"))
    assert entry.outcome == "fail" and entry.regression["verdict"] == "changed"
    assert entry.regression["old"] == {"verdict": "holds", "value": 1.0} and entry.regression["new"]["verdict"] == "fails"
    assert any(r.startswith("2.0 overwrite: share 1 -> 0") for r in entry.regressions)
    md, _ = report.write_report(report.collect(tmp_path / "b"), tmp_path / "b")
    assert "| fig2-downsample-overwrite | holds (1) | fails (0) | changed |" in md.read_text()


def test_baseline_of_another_model_profile_channels_images_or_fz_is_refused(model, tmp_path):
    h = claims.Harness(over(model), tmp_path)
    h.run("fig2-downsample-overwrite", CLAIM["fig2-downsample-overwrite"], paired=("overwrite",))
    _, js = report.write_report(report.collect(tmp_path), tmp_path)
    base = report.load_baseline(js)
    for key, value in (("model", "resnet34"), ("profile", "smoke"), ("image_set_id", "other"),
                       ("sample", {"channels_per_block": 8})):
        other = {**base, "provenance": {**base["provenance"], key: value}}
        with pytest.raises(ValueError, match="not comparable"):
            claims.Harness(over(model), tmp_path, baseline=other)
    for fz in ({"target": "as-run"}, {"steps": 2}, {"seed": 3}):
        moved = {**base, "provenance": {**base["provenance"], "fz": {**base["provenance"]["fz"], **fz}}}
        assert "FZ settings" in report.check_baseline(moved, over(model).describe())
    bare = {**base, "claims": {k: {**e, "paired": None} for k, e in base["claims"].items()}}
    assert "no per-channel values" in report.check_baseline(bare, over(model).describe())
    claims.Harness(over(model, weights="IMAGENET1K_V2"), tmp_path, baseline=base)  # a weights update compares


def test_baseline_is_checked_against_the_options_before_any_work(tmp_path):
    from rsi_core.harness.options import resolve
    from rsi_core.measure.profiles import get_profile
    from rsi_core.model.images import ImageSet
    prov = {"model": "resnet18", "profile": "ci", "sample": get_profile("ci").definition(), "antialias": False,
            "image_set_id": ImageSet.from_dir(None).identity,
            "fz": {"steps": 64, "target": "as-written", "jitter_table": "paper", "seed": 0, "objective": "neuron"}}
    base = {"provenance": prov, "claims": {"fig2-final-block": {"paired": {"4.1": {}}}}}
    options = {"model": "resnet18", "profile": "ci", "images": None, "fz-target": "as-written",
               "jitter-table": "paper", "antialias": False}
    run = lambda **kw: resolve({**options, **kw})  # noqa: E731  the run's RunConfig
    assert report.check_baseline(base, run()) is None
    assert "profile 'ci' vs 'quick'" in report.check_baseline(base, run(profile="quick"))
    assert "FZ settings" in report.check_baseline(base, run(**{"jitter-table": "authors-script"}))
    assert "FZ settings" in report.check_baseline(base, run(**{"fz-target": "as-run"}))


def test_errored_claim_is_an_error_entry_in_the_report(model, tmp_path):
    def broken(study):
        """A claim that raises."""
        raise RuntimeError("boom")
    with pytest.raises(RuntimeError):
        claims.Harness(over(model), tmp_path).run("fig7-robust", broken)
    md, js = report.write_report(report.collect(tmp_path), tmp_path)
    e = json.loads(js.read_text())["claims"][0]
    assert e["verdict"] == "error" and "RuntimeError: boom" in e["error"] and "RuntimeError: boom" in md.read_text()


def test_fz_readings_and_seeds(model, tmp_path):
    fn = CLAIM["fig2-downsample-overwrite"]
    both = over(model, variants={(("target", "as-run"),): skip(model)})
    e = claims.Harness(both, tmp_path, fz_target="both").run("fig2-downsample-overwrite", fn)
    # Figure 2's shares are the authors' code's numbers: the as-run verdict decides
    assert PAPER_READING["fig2-downsample-overwrite"] == e.decisive_reading == "as-run"
    assert e.verdict == "fails" and e.readings["as-written"]["verdict"] == "holds" and e.reading_dependent
    assert e.readings["as-written"]["value"] == 1.0 and e.readings["as-run"]["value"] == 0.0
    assert e.outcome == "fail" and e.readings["as-written"]["expectation"] == "observe"  # expected: holds
    seeds = over(model, variants={(("seed", 1), ("target", "as-written")): skip(model)})
    e = claims.Harness(seeds, tmp_path, fz_seeds=2).run("fig2-downsample-overwrite", fn)
    assert [s["verdict"] for s in e.seeds] == ["holds", "fails"] and e.seed_range == [0.0, 1.0]
    assert e.verdict == "inconclusive" and "seeds disagree" in e.reason
    md, _ = report.write_report(report.collect(tmp_path), tmp_path)
    assert "FZ seeds" in md.read_text()


def test_both_readings_decide_each_claim_and_expectations_can_name_a_reading(model, tmp_path):
    """With both readings each claim's outcome reads its paper reading (PAPER_READING); a
    disagreement is "reading-dependent" in the Markdown, JSON and HTML reports; an expectation
    named for one reading holds that reading to it, a plain one the decisive reading."""
    both = over(model, variants={(("target", "as-run"),): skip(model)})
    mine = tmp_path / "mine.toml"
    mine.write_text('model = "resnet18"\n[claims]\nfig2-downsample-overwrite = "fails"\nfig3-weight-magnitude = "holds"\n'
                    '[claims.as-written]\nfig2-downsample-overwrite = "fails"\n')
    expect = expectations.for_run("resnet18", "IMAGENET1K_V1", [mine])
    assert expect["fig2-downsample-overwrite@as-written"] == "fails"
    h = claims.Harness(both, tmp_path, expect, fz_target="both")
    e = h.run("fig2-downsample-overwrite", CLAIM["fig2-downsample-overwrite"])
    assert e.verdict == "fails" and e.readings["as-run"]["outcome"] == "fails as expected"
    assert e.readings["as-written"]["outcome"] == "fail (expected to fail, holds)"
    assert e.outcome == "fail (expected to fail, holds) (as-written)"   # the named reading's miss fails the test
    w = h.run("fig2-final-block", CLAIM["fig2-final-block"])
    assert w.decisive_reading == "as-run" and not w.reading_dependent
    md, js = report.write_report(report.collect(tmp_path), tmp_path)
    text = md.read_text()
    assert "fails (reading-dependent: as-written holds, as-run fails; decided as-run)" in text
    assert "| fig2-downsample-overwrite | holds (1) | fails (0) | as-run | yes |" in text
    html_text = (tmp_path / "claims-report.html").read_text()
    assert "reading-dependent: as-written holds, as-run fails; decided as-run" in html_text
    saved = {c["id"]: c for c in json.loads(js.read_text())["claims"]}
    assert saved["fig2-downsample-overwrite"]["reading_dependent"] is True
    blessed = tmp_path / "blessed.toml"
    blessed.write_text(expectations.from_report(js))
    assert "[claims.as-written]" in blessed.read_text()
    again = expectations.for_run("resnet18", "IMAGENET1K_V1", [blessed])
    assert again["fig2-downsample-overwrite"] == "fails" and again["fig2-downsample-overwrite@as-written"] == "holds"
    bad = tmp_path / "bad.toml"
    bad.write_text('[claims.as-run]\nfig9 = "holds"\n')
    with pytest.raises(ValueError, match=r"unknown claim ids \['fig9'\] in \[claims.as-run\]"):
        expectations.read(bad)


def test_paper_profile_decides_both_readings_by_default():
    from rsi_core.harness.options import fz_target
    assert fz_target(None, "paper") == "both" and fz_target(None, "quick") == "as-written"
    assert fz_target("as-run", "paper") == "as-run" and set(PAPER_READING) == set(expectations.CLAIM_IDS)
    assert set(PAPER_READING.values()) <= set(READINGS)


def test_report_appends_sections_and_is_removed_when_nothing_ran(model, tmp_path):
    claims.Harness(over(model), tmp_path).run("fig2-final-block", CLAIM["fig2-final-block"])
    (tmp_path / "sections").mkdir()
    (tmp_path / "sections" / "scale.md").write_text("## Strict scale test\n\nnumbers")
    md, _ = report.write_report(report.collect(tmp_path), tmp_path)
    assert "## Strict scale test" in md.read_text()
    assert report.remove_report(tmp_path) == [md, tmp_path / "claims-report.json", tmp_path / "claims-report.html"]
    assert not md.exists()


def test_bad_baseline_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "old.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="claims-report.json"):
        report.load_baseline(bad)


def test_block_roles_of_other_resnets():
    r34 = block_roles(load_model("resnet34", "random:0"))
    assert r34["final"] == ["4.2"] and r34["simple"] == ["1.1", "2.1", "3.1"]
    assert r34["downsample"] == ["2.0", "3.0", "4.0"]
    assert block_roles(load_model("resnet18", "random:0"))["studied"] == list(PAPER_BLOCKS)


def _overwrite_heavy_study(net, roles) -> FakeStudy:
    """A synthetic census of ``net``'s role blocks: every studied block overwrite-heavy (M spread
    over 0.05..1.3), no seed flips, inhibition plain where it is read (decided, not a coin toss)
    and the last simple block's B-I correlation negative for its overwrite channels."""
    rng = np.random.default_rng(0)
    m = {b: np.linspace(0.05, 1.3, find_block(net, b).channels) for b in roles["studied"]}
    results = {b: block_result(b, m[b], net, b_xi=rng.normal(0, 1, len(m[b])) - 2 * (m[b] < 1))
               for b in roles["studied"]}
    corr = {b: rng.normal(0, 0.1, len(m[b])) - 0.3 * (m[b] < 1) * (b == roles["simple"][-1]) for b in roles["simple"]}
    return FakeStudy(net, results, corr, lists=None)


@pytest.mark.parametrize("name", ["resnet34", "resnet50"])
def test_other_resnets_reach_a_verdict_by_role(name):
    """Every claim that applies reaches holds/fails on a census of another ResNet's role blocks
    (here: synthetic M with every block overwrite-heavy, no seed flips); list claims are n/a."""
    net = load_model(name, "random:0")
    roles = block_roles(net)
    study = _overwrite_heavy_study(net, roles)
    for cid, fn in CLAIM.items():
        v = fn(study)
        if cid in ("fig6-top-scale", "fig7-robust", "fig8-top-mixes"):
            assert v.reason == "n/a: lists are resnet18's"
        elif cid == "fig2-simple-less-skewed":   # every block the same shares: neither less nor more skewed
            assert v.verdict == "inconclusive", v.reason
        else:
            assert v.verdict in ("holds", "fails"), (cid, v.reason)
            assert set(sum(v.blocks.values(), [])) <= set(roles["studied"])
    assert CLAIM["fig2-final-block"](study).blocks == {"final": ["4.2"]}


FAKE_CONFTEST = '''
import pytest
from types import SimpleNamespace
from rsi_core.fz.render import FZSettings

@pytest.fixture(scope="session")
def rsi_study():
    return SimpleNamespace(settings=FZSettings(steps=1), profile=SimpleNamespace(name="test"),
                           describe=lambda: {"model": "resnet18", "weights": "random:0", "profile": "test"})
'''

FAKE_CLAIMS = '''
import pytest
from rsi_core.verdicts.verdict import Verdict

def _v(verdict):
    return lambda study: Verdict("", verdict, "stat", {"x": 1.0}, {"final": ["4.1"]}, f"measured {verdict}")

@pytest.mark.claim("fig2-downsample-overwrite")
def test_holds(rsi_claims):
    rsi_claims.check(_v("holds"))

@pytest.mark.claim("fig2-final-block")
def test_fails_as_expected(rsi_claims):
    rsi_claims.check(_v("fails"))

@pytest.mark.claim("fig5-scale-counts")
def test_inconclusive(rsi_claims):
    rsi_claims.check(_v("inconclusive"))

@pytest.mark.claim("fig7-robust")
def test_raises(rsi_claims):
    def broken(study):
        """Raises."""
        raise RuntimeError("boom")
    rsi_claims.check(broken)
'''


def _pytest_claims(tmp_path, *extra, claims_py=FAKE_CLAIMS):
    import subprocess
    import sys
    (tmp_path / "conftest.py").write_text("pytest_plugins = ['rsi_core.harness.plugin']\n" + FAKE_CONFTEST)
    (tmp_path / "claims").mkdir(exist_ok=True)
    (tmp_path / "claims" / "test_fake.py").write_text(claims_py)
    out = subprocess.run([sys.executable, "-m", "pytest", "claims", "-p", "no:cacheprovider", "-rsx",
                          "--rsi-artifacts-dir", str(tmp_path / "art"), "--rootdir", str(tmp_path), *extra],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    return out.returncode, out.stdout + out.stderr


@pytest.mark.slow
def test_fixture_outcomes_error_entry_and_exit_status(tmp_path):
    """Through pytest: expected claim passes, expected failure xfails, inconclusive skips, an
    error fails the run and is in the report; a blessed file turns a changed verdict into a failure."""
    mine = tmp_path / "mine.toml"
    mine.write_text('[claims]\nfig2-downsample-overwrite = "holds"\nfig2-final-block = "fails"\n')
    code, text = _pytest_claims(tmp_path, "--rsi-expectations", str(mine))  # a claims folder of one's own: --rsi-*
    assert code == 1, text
    assert "1 passed" in text and "1 xfailed" in text and "1 skipped" in text and "1 failed" in text, text
    assert "rewritten: 4 claims" in text
    rep = json.loads((tmp_path / "art" / "claims-report.json").read_text())
    by_id = {e["id"]: e for e in rep["claims"]}
    assert by_id["fig7-robust"]["verdict"] == "error" and "RuntimeError: boom" in by_id["fig7-robust"]["error"]
    assert by_id["fig2-final-block"]["outcome"] == "fails as expected"
    mine.write_text('[claims]\nfig2-downsample-overwrite = "fails"\n')  # blessed as failing; now it holds
    code, text = _pytest_claims(tmp_path, "--rsi-expectations", str(mine), "-k", "holds")
    assert code == 1 and "expected to fail, holds" in text, text
    code, text = _pytest_claims(tmp_path, "-k", "no_such_claim")  # claims collected, none selected: none ran
    assert "removed the previous report" in text and not (tmp_path / "art" / "claims-report.md").exists(), text
    (tmp_path / "art" / "claims-report.md").write_text("a report")
    code, text = _pytest_claims(tmp_path, claims_py="def test_nothing():\n    pass\n")  # no claim: not a claims run
    assert code == 0 and "rsi:" not in text and (tmp_path / "art" / "claims-report.md").exists(), text


def test_rsi_run_passes_its_options_to_pytest(tmp_path):
    from argparse import Namespace

    from rsi_core.harness.options import RunConfig
    from rsi_core.harness.runner import pytest_args
    run = RunConfig({"model": "resnet34", "weights": "random:0", "images": None, "profile": "smoke", "device": "cpu",
                     "cache-dir": None, "artifacts-dir": "art", "baseline": None, "fz-target": "both", "fz-seeds": 2,
                     "controls": 1, "expectations": ["a.toml"]})
    args = Namespace(run=run, claims=str(tmp_path))
    argv = pytest_args(args)
    assert argv[0] == str(tmp_path)
    for pair in (["--rsi-model", "resnet34"], ["--rsi-fz-target", "both"], ["--rsi-fz-seeds", "2"], ["--rsi-controls", "1"],
                 ["--rsi-expectations", "a.toml"]):
        assert any(argv[i:i + 2] == pair for i in range(len(argv))), pair
    assert "--rsi-images" not in argv
    args.claims = None
    assert pytest_args(args)[0] == str(claims.claims_dir())


def test_block_result_reads_the_paper_as_written_or_as_run(model):
    """The reading (the study's FZ target) decides Figure 4's skip group (M > 1, or M >= 1 as
    the authors' plotting code ran) and the criteria (as run: deltas divided by B_c(X_B) and
    I_c(X_I), so a negative B_c(X_B) flips criterion 2)."""
    written = block_result("2.1", [1.0, 2.0, 0.5, 1.2], model, scale=True)
    written.b_xb = np.array([1.0, 1.0, 1.0, -1.0])
    run = replace(written, reading="as-run")
    assert written.skip.tolist() == [False, True, False, True]
    assert run.skip.tolist() == [True, True, False, True]
    assert written.scale_invariant().tolist() == [True, False, False, True]
    assert run.scale_invariant().tolist() == [True, False, False, False]
    assert run.scale_invariant(False).tolist() == [True, True, True, False]


def test_named_channels_never_lower_a_list_claims_p(model):
    """quick renders the paper's named channels beside its unbiased sample. They were chosen for the
    listed property (here: exactly M = 1), so they must not enter the null: the p-value is the one
    the sample alone gives."""
    from rsi_core.measure.profiles import channels_for, get_profile, sample_channels
    quick = get_profile("quick")

    def study(with_named: bool):
        results = {}
        for b in PAPER_BLOCKS:
            n = find_block(model, b).channels
            chans = np.array(channels_for(quick, b, n) if with_named else sample_channels(quick, b, n))
            m = np.where(np.isin(chans, sample_channels(quick, b, n)), 0.2 + 2.8 * chans / n, 1.0)
            results[b] = replace(block_result(b, m, model), channels=chans)
        s = FakeStudy(model, results)
        s.profile = quick
        return s
    with_named, sample_only = CLAIM["fig8-top-mixes"](study(True)), CLAIM["fig8-top-mixes"](study(False))
    assert with_named.measured["p_high"] == sample_only.measured["p_high"]
    assert with_named.verdict == sample_only.verdict
    named = {c for b in PAPER_BLOCKS for c in PAPER_FIG8[b]}
    assert not any(set(v["found"]) & (named - set(sample_channels(quick, b, find_block(model, b).channels)))
                   for b, v in with_named.measured["blocks"].items())


def test_a_convnext_gets_n_a_where_a_role_or_premise_is_missing():
    """convnext_tiny has no downsample block and no BatchNorm at its branch end: those claims are
    "n/a" with the reason (never evaluated, never a pass or fail); the others reach a verdict on
    its simple and final blocks, as on a ResNet."""
    net = load_model("convnext_tiny", "random:0")
    roles = block_roles(net)
    assert roles["downsample"] == [] and roles["studied"] == ["1.1", "2.1", "3.1", "4.2"]
    study = _overwrite_heavy_study(net, roles)
    n_a = {"fig2-downsample-overwrite": "no downsample block", "fig2-simple-less-skewed": "no downsample block",
           "fig3-weight-magnitude": "not a BatchNorm", "fig6-top-scale": "lists are resnet18's",
           "fig7-robust": "lists are resnet18's", "fig8-top-mixes": "lists are resnet18's"}
    for cid, fn in CLAIM.items():
        v = fn(study)
        if cid in n_a:
            assert v.verdict == "n/a" and n_a[cid] in v.reason, (cid, v.reason)
        else:
            assert v.verdict in ("holds", "fails", "inconclusive"), (cid, v.reason)
            assert v.verdict != "n/a" and set(sum(v.blocks.values(), [])) <= set(roles["studied"])


def test_an_n_a_claim_writes_its_entry_with_the_reason_and_runs_nothing_else(tmp_path):
    """On a ConvNeXt the downsample claim is n/a: its entry is written (verdict, outcome and
    reason), the report lists it, and no figure, reading or control was computed for it."""
    net = load_model("convnext_tiny", "random:0")
    results = {b: block_result(b, np.linspace(0.05, 1.3, find_block(net, b).channels), net)
               for b in block_roles(net)["studied"]}
    h = claims.Harness(FakeStudy(net, results, lists=None, weights="random:0"), tmp_path, fz_target="both")
    drawn = []
    entry = h.run("fig2-downsample-overwrite", CLAIM["fig2-downsample-overwrite"],
                  figure=lambda *a: drawn.append(a), paired=("overwrite", "m"))
    saved = json.loads((tmp_path / "claims" / "fig2-downsample-overwrite.json").read_text())
    assert saved["verdict"] == saved["outcome"] == "n/a" and entry.to_json() == saved
    assert "ConvNeXt has no downsample block" in saved["reason"] and saved["paper"].startswith("In every downsample")
    assert drawn == [] and "readings" not in saved and "paired" not in saved
    md, _ = report.write_report(report.collect(tmp_path), tmp_path)
    assert "| fig2-downsample-overwrite |" in md.read_text() and "n/a: ConvNeXt has no downsample block" in md.read_text()
    assert expectations.outcome("n/a", "holds") == "n/a"
