"""A run's one frozen configuration (``options.RunConfig``: resolved once, read by every hook and
fixture) and a claim's record (``report.entry.ClaimEntry``: one JSON form, read back in one place,
the reports rsi wrote before it still read)."""
import dataclasses
import json
from pathlib import Path

import pytest

from rsi_core.harness import options
from rsi_core.paper import Readings
from rsi_core.report import claims_report as report
from rsi_core.report.entry import ClaimEntry

DATA = Path(__file__).parent / "data"
#: claims-report.json files written before ClaimEntry existed (schema 1): a smoke run of issue 31's
#: branch with controls (commit 05745d3) and the errored-claim test's report (commit 77c243a)
OLD_REPORTS = ("claims-report-controls.json", "claims-report-error.json")

CLAIMS_TEST = '''
import dataclasses

import pytest

from rsi_core.harness import options, plugin


@pytest.mark.claim("{claim}")
def test_{name}(rsi_config, rsi_options, request):
    assert isinstance(rsi_config, options.RunConfig) and rsi_config is plugin.state(request.config).run
    with pytest.raises(dataclasses.FrozenInstanceError):
        rsi_config.controls = 5
    with pytest.raises(TypeError):
        rsi_config.values["fz-seeds"] = 5
    assert rsi_options == dict(rsi_config.values) and rsi_config.loaded is not None
    assert rsi_config.profile.name == "smoke" and rsi_config.readings.asked == ("as-written", "as-run")
    assert rsi_config.controls == 0 and rsi_config.fz_seeds == 2 and rsi_config.device == "cpu"
    assert rsi_config.artifacts.name == "art" and len(rsi_config.images) > 0
'''


def test_a_claims_run_parses_and_checks_its_options_once_and_every_test_reads_the_same_config(tmp_path, monkeypatch):
    """In-process pytest on a claims folder of two claim tests: the options are parsed and checked
    once, and both tests (and the hooks' state) see one frozen RunConfig."""
    folder = tmp_path / "claims"
    folder.mkdir()
    for claim, name in (("fig2-final-block", "a"), ("fig7-robust", "b")):
        (folder / f"test_{name}.py").write_text(CLAIMS_TEST.format(claim=claim, name=name))
    calls = []
    for name in ("parse", "resolve", "check"):
        real = getattr(options, name)
        monkeypatch.setattr(options, name, lambda *a, _real=real, _name=name, **k: calls.append(_name) or _real(*a, **k))
    code = pytest.main([str(folder), "-p", "rsi_core.harness.plugin", "-q", "-p", "no:cacheprovider",
                        "--rootdir", str(tmp_path), "--rsi-weights", "random:0", "--rsi-device", "cpu",
                        "--rsi-profile", "smoke", "--rsi-fz-target", "both", "--rsi-fz-seeds", "2",
                        "--rsi-cache-dir", str(tmp_path / "cache"), "--rsi-artifacts-dir", str(tmp_path / "art")])
    assert code == 0
    assert calls == ["parse", "check", "resolve"], calls  # check resolves, once; no hook parses again


def test_a_worker_resolves_the_config_its_controller_checked(tmp_path):
    """An xdist worker resolves the parsed options (no check, no load): the same RunConfig."""
    values = options.parse({"model": "resnet18", "weights": "random:0", "device": "cpu", "profile": None,
                            "images": None, "fz-target": None, "controls": None, "fz-seeds": "1",
                            "expectations": [], "baseline": None, "artifacts-dir": str(tmp_path)})
    checked = options.check(values, load=False)
    assert options.resolve(values) == checked
    assert checked.profile.name == "quick" and checked.readings == Readings("as-written") and checked.controls == 0
    assert checked.jitter_table == "paper" and checked.antialias is False  # not an option here: the table's default
    with pytest.raises(AttributeError):
        checked.no_such_option  # noqa: B018


def test_readings_interpret_fz_target_in_one_place():
    both, run = Readings("both"), Readings("as-run")
    assert both.asked == ("as-written", "as-run") and both.primary == "as-written"
    assert both.decisive("fig2-final-block") == "as-run" and both.decisive("fig3-weight-magnitude") == "as-written"
    assert run.asked == ("as-run",) and run.primary == run.decisive("fig3-weight-magnitude") == "as-run"
    with pytest.raises(ValueError, match="use as-written, as-run or both"):
        Readings("as-read")


@pytest.mark.parametrize("name", OLD_REPORTS)
def test_a_report_written_before_claim_entry_reads_and_rewrites_the_same(name, tmp_path):
    """Every entry of an older report reads into a ClaimEntry and back to the very same JSON, and
    a report written from them holds the same claims; the baseline loader still takes it."""
    old = json.loads((DATA / name).read_text())
    entries = [ClaimEntry.from_json(c) for c in old["claims"]]
    assert [e.to_json() for e in entries] == old["claims"]
    assert [list(e.to_json()) for e in entries] == [list(c) for c in old["claims"]]  # the same file, key for key
    assert all(e.extra == {} for e in entries)  # every key of schema 1 is a field
    for e in entries:
        e.write(tmp_path / "run")
    back = report.collect(tmp_path / "run")
    assert back == sorted(entries, key=lambda e: e.id)
    _, js = report.write_report(back, tmp_path / "run")
    assert json.loads(js.read_text())["claims"] == sorted(old["claims"], key=lambda c: c["id"])
    assert set(report.load_baseline(DATA / name)["claims"]) == {e.id for e in entries}


def test_claim_entry_round_trips_its_sections_and_keeps_unknown_keys(tmp_path):
    entry = ClaimEntry("fig2-final-block", "holds", claim_id="fig2-final-block", value=0.9, direction="greater",
                       seeds=[{"seed": 0, "verdict": "holds", "value": 0.9}], seed_range=[0.9, 0.9],
                       readings={"as-run": {"verdict": "holds"}}, decisive_reading="as-run",
                       extra={"from_a_later_rsi": [1, 2]})
    data = entry.to_json()
    assert "controls" not in data and "error" not in data and data["from_a_later_rsi"] == [1, 2]
    assert data["value"] == 0.9 and "direction" in data
    assert ClaimEntry.from_json(json.loads(json.dumps(data))) == entry
    assert ClaimEntry.read(entry.write(tmp_path)) == entry
    assert entry.write(tmp_path) == ClaimEntry.path(tmp_path, "fig2-final-block")


def test_the_one_error_constructor():
    e = ClaimEntry.failed("fig7-robust", "A statement.", RuntimeError("boom"), {"model": "resnet18"}, "holds")
    assert (e.verdict, e.outcome, e.expectation, e.error) == ("error", "error", "holds", "RuntimeError: boom")
    assert e.reason == "error: RuntimeError: boom" and e.to_json()["claim_id"] == "fig7-robust"
    assert ClaimEntry.failed("fig7-robust", "", "collect failed", {}).error == "collect failed"
    frozen = options.RunConfig({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        frozen.profile = None
