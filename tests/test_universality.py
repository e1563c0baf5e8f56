"""rsi compare: the claims-by-models table from claims reports."""
import json

import pytest

from rsi_core.harness import cli
from rsi_core.report import universality as U


def _report(tmp_path, name, model, weights, profile="smoke", images="abc", entries=()):
    prov = {"model": model, "weights": weights, "weights_id": f"id-{name}", "profile": profile,
            "image_set_id": images, "family": "f", "fz": {"steps": 24}}
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"provenance": prov, "claims": [dict(e) for e in entries]}))
    return path


HOLDS = {"id": "fig2-final-block", "verdict": "holds", "value": 0.97, "reason": "97% in [0, 0.25)",
         "beyond_controls": "yes"}
NA = {"id": "fig2-downsample-overwrite", "verdict": "n/a", "value": None,
      "reason": "n/a: ConvNeXt has no downsample block"}


def test_one_row_per_claim_one_column_per_report(tmp_path):
    a = _report(tmp_path, "a", "resnet18", "random:0", entries=[HOLDS, {**NA, "verdict": "fails", "value": 0.2,
                                                                         "reason": "20%"}])
    b = _report(tmp_path, "b", "convnext_tiny", "random:0", entries=[{"id": HOLDS["id"], "verdict": "inconclusive", "value": 0.5,
                                                                              "reason": "too few"}, NA])
    paths = U.write([a, b], tmp_path / "out")
    t = json.loads((tmp_path / "out" / "universality.json").read_text())
    assert [c["column"] for c in t["columns"]] == ["resnet18 / random:0", "convnext_tiny / random:0"]
    rows = {r["id"]: r["cells"] for r in t["claims"]}
    assert [c["verdict"] for c in rows["fig2-downsample-overwrite"]] == ["fails", "n/a"]
    assert rows["fig2-final-block"][0] == {"verdict": "holds", "value": 0.97, "beyond_controls": "yes",
                                           "reason": "97% in [0, 0.25)"}
    md = (tmp_path / "out" / "universality.md").read_text()
    assert "| fig2-final-block | holds (0.97); yes | inconclusive (0.5); no controls run |" in md
    assert "fig2-downsample-overwrite on convnext_tiny / random:0: n/a: ConvNeXt has no downsample block" in md
    assert paths[2].name == "universality.png" and paths[2].stat().st_size > 0
    assert t["mixed"] == []


def test_a_claim_missing_from_a_report_is_not_run(tmp_path):
    a = _report(tmp_path, "a", "resnet18", "random:0", entries=[HOLDS])
    b = _report(tmp_path, "b", "resnet18", "random:1", entries=[])
    t = U.table([U.read_report(a), U.read_report(b)])
    assert t["claims"][0]["cells"][1]["verdict"] == "not run"


@pytest.mark.parametrize("other", [{"profile": "quick"}, {"images": "xyz"}])
def test_different_profiles_or_image_sets_are_refused_unless_allowed(tmp_path, capsys, other):
    a = _report(tmp_path, "a", "resnet18", "random:0", entries=[HOLDS])
    b = _report(tmp_path, "b", "timm:resnet18", "random:0", entries=[HOLDS], **other)
    assert cli.main(["compare", str(a), str(b), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "not comparable" in err and "--allow-mixed" in err and "differ" in err
    assert not (tmp_path / "out").exists()
    assert cli.main(["compare", str(a), str(b), "--out", str(tmp_path / "out"), "--allow-mixed"]) == 0
    assert "MIXED reports compared" in capsys.readouterr().out
    assert "**Mixed reports (--allow-mixed)" in (tmp_path / "out" / "universality.md").read_text()


def test_an_unreadable_report_is_one_clear_line(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert cli.main(["compare", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "not a readable claims-report.json" in capsys.readouterr().err
