"""Controls: the shuffled copy keeps every layer's values and loses their arrangement; control
lists and the "beyond controls" rule."""
import json
import math

import numpy as np
import pytest
import torch

from rsi_core.harness import controls
from rsi_core.harness.controls import control_weights, default_controls
from rsi_core.model import shuffle
from rsi_core.model.anatomy import provenance_of
from rsi_core.model.load import load_model
from rsi_core.model.shuffle import shuffle_weights
from rsi_core.model.sources import is_control
from rsi_core.report import controls as report_controls
from rsi_core.report.controls import beyond


class FewImages:
    """A tiny deterministic image set (what ImageSet offers: len and normalized tensors)."""

    def __init__(self, n=6, size=64):
        g = torch.Generator().manual_seed(123)
        self.x = torch.randn(n, 3, size, size, generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i]


@pytest.fixture(scope="module")
def base():
    return load_model("resnet18", "random:0")


@pytest.fixture(scope="module")
def shuffled():
    return shuffle.shuffled_model("resnet18", "shuffle:1:random:0", images=FewImages())


def _shuffled_params(model):
    """(name, tensor) of every parameter the shuffle permutes."""
    for name, module in model.named_modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear, torch.nn.BatchNorm2d)):
            yield f"{name}.weight", module.weight
            if module.bias is not None:
                yield f"{name}.bias", module.bias


def test_shuffle_keeps_each_layers_values_and_input_channel_sums(base, shuffled):
    params = dict(_shuffled_params(shuffled))
    assert len(params) > 60  # every conv, BN and the fc of resnet18
    for name, w in _shuffled_params(base):
        s = params[name]
        assert torch.equal(w.flatten().sort().values, s.flatten().sort().values), name
        if w.dim() > 1:  # permuted within each input channel: per-input-channel sums kept
            dims = [0] + list(range(2, w.dim()))
            assert torch.allclose(w.sum(dims), s.sum(dims), atol=1e-4), name


def test_shuffle_changes_the_arrangement(base, shuffled):
    for name, w in _shuffled_params(base):
        s = dict(_shuffled_params(shuffled))[name]
        if w.numel() < 100 or w.dim() < 2:
            continue
        assert (w == s).float().mean() < 0.05, name
        # which output channel holds large weights is no longer the base's
        per_out = lambda t: t.abs().flatten(1).mean(1)  # noqa: E731
        assert not torch.allclose(per_out(w), per_out(s)), name


def test_shuffle_permutes_bn_affine_of_a_trained_like_model():
    model = load_model("resnet18", "random:0")
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(torch.linspace(0.1, 2.0, m.num_features))
                m.bias.copy_(torch.linspace(-1, 1, m.num_features))
    before = model.layer3[1].bn2.weight.clone()
    shuffle_weights(model, seed=5)
    after = model.layer3[1].bn2.weight
    assert torch.equal(before.sort().values, after.sort().values)
    assert not torch.equal(before, after)


def test_bn_statistics_are_recomputed(base, shuffled):
    bn = shuffled.layer2[0].bn1
    assert not shuffled.training and not bn.training
    assert bn.momentum == base.layer2[0].bn1.momentum  # momentum restored after the pass
    assert not torch.allclose(bn.running_var, torch.ones_like(bn.running_var))
    assert provenance_of(shuffled).control == {"kind": "shuffle", "seed": 1, "base": "random:0", "bn_images": 6}


def test_shuffle_is_deterministic_and_keyed_apart(base, shuffled):
    again = shuffle.shuffled_model("resnet18", "shuffle:1:random:0", images=FewImages())
    other = shuffle.shuffled_model("resnet18", "shuffle:2:random:0", images=FewImages())
    assert provenance_of(again).weights == provenance_of(shuffled).weights == "shuffle:1:random:0"
    assert provenance_of(again).weights_id == provenance_of(shuffled).weights_id
    assert len({provenance_of(base).weights_id, provenance_of(shuffled).weights_id, provenance_of(other).weights_id}) == 3
    x = FewImages(2)
    with torch.no_grad():
        assert torch.equal(again(torch.stack([x[0], x[1]])), shuffled(torch.stack([x[0], x[1]])))


def test_load_model_dispatches_both_spellings(monkeypatch):
    monkeypatch.setattr(shuffle, "BN_IMAGES", 4)
    a = load_model("resnet18", "shuffle:3", base="random:0")
    b = load_model("resnet18", "shuffle:3:random:0")
    assert provenance_of(a).weights == provenance_of(b).weights == "shuffle:3:random:0"
    assert provenance_of(a).weights_id == provenance_of(b).weights_id
    assert provenance_of(a).control["bn_images"] == 4


@pytest.mark.parametrize("weights, base, message", [
    ("shuffle:one:random:0", None, "shuffle:SEED:<base weights>"),
    ("shuffle:1", None, "needs the weights it shuffles"),
    ("shuffle:1:random:0", "random:1", "give one"),
])
def test_bad_shuffle_strings_say_what_to_write(weights, base, message):
    with pytest.raises(ValueError, match=message):
        load_model("resnet18", weights, base=base)


def test_control_weights_alternate_kinds_and_skip_the_tested_seed():
    assert control_weights("IMAGENET1K_V1", 0) == []
    assert control_weights("IMAGENET1K_V1", 2) == [("random:1", "random"), ("shuffle:1:IMAGENET1K_V1", "shuffle")]
    got = control_weights("random:2", 5)
    assert [k for _, k in got] == ["random", "shuffle", "random", "shuffle", "random"]
    assert [w for w, k in got if k == "random"] == ["random:1", "random:3", "random:4"]
    assert [w for w, k in got if k == "shuffle"] == ["shuffle:1:random:2", "shuffle:2:random:2"]
    assert len({w for w, _ in control_weights("random:1", 12)}) == 12
    with pytest.raises(ValueError, match="0 or more"):
        control_weights("random:0", -1)


def test_default_controls():
    assert default_controls("paper") == 2
    assert default_controls("quick") == default_controls("smoke") == 0


@pytest.mark.parametrize("tested, ctl, direction, want", [
    (0.9, [0.5, 0.6], "greater", "yes"),
    (0.9, [0.5, 0.9], "greater", "no"),       # a tie reaches it
    (0.9, [0.95], "greater", "no"),
    (0.1, [0.5, 0.2], "less", "yes"),
    (0.1, [0.05, 0.5], "less", "no"),
    (0.9, [0.95, None], "greater", "no"),    # decided by the control that computed it
    (0.9, [0.5, None], "greater", "n/a: 1 of 2 controls could not compute the value"),
    (0.9, [0.5, math.nan], "greater", "n/a: 1 of 2 controls could not compute the value"),
    (0.9, [], "greater", "n/a: no controls were run"),
    (None, [0.5], "greater", "n/a: the tested model's value was not computed"),
    (0.9, [0.5], None, "n/a: the claim has no direction to compare in (None)"),
])
def test_beyond(tested, ctl, direction, want):
    assert beyond(tested, ctl, direction) == want


# ------------------------------------------------------------------ figures mark the controls
@pytest.fixture
def saved_axes(monkeypatch):
    """The axes of every figure saved during the test, captured at save time."""
    import matplotlib.figure
    saved, original = [], matplotlib.figure.Figure.savefig

    def spy(fig, *args, **kwargs):
        saved.append(fig.axes)
        return original(fig, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", spy)
    return saved


class Block:
    def __init__(self, m, kind="simple"):
        self.m, self.kind, self.failed = np.asarray(m, dtype=float), kind, np.zeros(len(m), bool)


def test_fig2_draws_each_controls_histogram_as_an_outline(tmp_path, saved_axes):
    from matplotlib.patches import Rectangle, StepPatch
    from PIL import Image

    from rsi_core.report import plots
    tested = {"2.0": Block([0.1, 0.2, 0.3, 2.0], "downsample"), "4.1": Block([0.1, 0.1], "final")}
    ctl = {"random:1": {"2.0": [0.1, 3.0, 3.5, 4.0], "4.1": [0.05, 0.2]},
           "shuffle:1:random:0": {"2.0": Block([1.5, 1.6, 1.7, 4.9])}}
    path = plots.fig2_mix_histograms(tested, {"profile": "smoke"}, tmp_path / "fig2.png", controls=ctl)
    with Image.open(path) as im:
        assert im.format == "PNG"
    ax20, ax41 = saved_axes[-1][:2]
    bars = [p.get_height() for p in ax20.patches if isinstance(p, Rectangle)]
    assert bars == plots.mix_histogram([0.1, 0.2, 0.3, 2.0]).tolist()
    outlines = [p for p in ax20.patches if isinstance(p, StepPatch)]
    assert [o.get_label() for o in outlines] == ["random:1", "shuffle:1:random:0"]
    assert outlines[0].get_data().values.tolist() == plots.mix_histogram([0.1, 3.0, 3.5, 4.0]).tolist()
    assert outlines[1].get_data().values.tolist() == plots.mix_histogram([1.5, 1.6, 1.7, 4.9]).tolist()
    assert len([p for p in ax41.patches if isinstance(p, StepPatch)]) == 1  # the shuffle lacks 4.1
    legend = {t.get_text() for t in ax20.get_legend().get_texts()}
    assert legend == {"tested", "random:1", "shuffle:1:random:0"}


def test_fig2_without_controls_draws_no_outline(tmp_path, saved_axes):
    from matplotlib.patches import StepPatch

    from rsi_core.report import plots
    plots.fig2_mix_histograms({"2.0": Block([0.1, 2.0])}, {}, tmp_path / "fig2.png")
    assert not [p for p in saved_axes[-1][0].patches if isinstance(p, StepPatch)]
    assert saved_axes[-1][0].get_legend() is None


def test_fig5_marks_the_controls_percentages(tmp_path, saved_axes):
    from rsi_core.report import plots
    counts = {"1.1": {"n": 4, "with_mix": 1, "without_mix": 2}, "4.0": {"n": 0, "with_mix": 0, "without_mix": 0}}
    ctl = {"random:1": {"1.1": {"n": 4, "with_mix": 3, "without_mix": 4},
                        "4.0": {"n": 2, "with_mix": 1, "without_mix": 0}}}
    plots.fig5_scale_counts(counts, {"profile": "smoke"}, tmp_path / "fig5.png", controls=ctl)
    marks = [c.get_offsets()[:, 1].tolist() for c in saved_axes[-1][0].collections]
    assert marks == [[75.0, 50.0], [100.0, 0.0]]


# ------------------------------------------------------------------ controls of a study and the report
@pytest.mark.slow
def test_control_study_keeps_everything_but_the_model(tmp_path, few_images):
    from rsi_core.cache import Cache
    from rsi_core.measure.profiles import Profile
    from rsi_core.measure.study import Study
    from rsi_core.model.images import ImageSet
    profile = Profile("tiny", steps=2, channels_per_block=1, paper_channels=False, natural_images=8)
    study = Study(load_model("resnet18", "random:0"), profile, Cache(tmp_path), images=ImageSet.from_dir(few_images),
                  blocks=("1.1",), progress=False)
    study.prepare()
    (w1, k1, random1), (w2, k2, shuffled) = controls.control_studies(study, 2)
    assert (w1, k1, w2, k2) == ("random:1", "random", "shuffle:1:random:0", "shuffle")
    for ctl in (random1, shuffled):
        assert ctl.settings is study.settings and ctl.profile is study.profile and ctl.blocks == study.blocks
        assert ctl.image_set is study.image_set
        assert ctl.describe()["weights_id"] != study.describe()["weights_id"]
        assert ctl.block("1.1").o_xi.tolist() != study.block("1.1").o_xi.tolist()
        assert ctl.natural["1.1.O"].tolist() != study.natural["1.1.O"].tolist()
    assert provenance_of(study.model).weights == "random:0"  # the tested study is untouched
    assert shuffled.describe()["weights"] == "shuffle:1:random:0"


def _entry(verdict, value, direction="greater", reason="r"):
    """What a claim function's ``Verdict.to_json()`` carries for the controls."""
    return {"id": "c", "verdict": verdict, "value": value, "direction": direction, "reason": reason}


def _model_with_id(weights_id):
    """A small torchvision ResNet registered with the provenance ``weights_id`` (no loading)."""
    from torchvision.models.resnet import BasicBlock, ResNet

    from rsi_core.model.anatomy import Provenance, register
    from rsi_core.model.images import PAPER_PREPROCESS
    model = ResNet(BasicBlock, [1, 1, 1, 1])
    register(model, Provenance("resnet18", "w", weights_id, PAPER_PREPROCESS))
    return model


class FakeStudy:
    def __init__(self, weights_id, value=None, verdict="holds"):
        self.model = _model_with_id(weights_id)
        self.value, self.verdict = value, verdict


def _evaluate(study):
    if study.verdict == "raise":
        raise RuntimeError("cannot compute")
    return _entry(study.verdict, study.value)


def test_add_controls_records_each_control_and_the_beyond_cell():
    from rsi_core.report.entry import ClaimEntry
    tested = _entry("holds", 0.8)
    runs = [("random:1", "random", FakeStudy("a", 0.5, "fails")),
            ("shuffle:1:W", "shuffle", FakeStudy("b", math.nan, "inconclusive"))]
    got = controls.add_controls(ClaimEntry.from_json(tested), runs, _evaluate)
    assert got.controls == [
        {"weights": "random:1", "weights_id": "a", "kind": "random", "verdict": "fails", "value": 0.5, "reason": "r"},
        {"weights": "shuffle:1:W", "weights_id": "b", "kind": "shuffle", "verdict": "inconclusive", "value": None,
         "reason": "r"}]
    assert got.beyond_controls == "n/a: 1 of 2 controls could not compute the value"
    assert got.label == "holds"
    # a control that reaches the tested value: the claim holds, not beyond controls
    runs.append(("random:2", "random", FakeStudy("c", 0.8)))
    got = controls.add_controls(ClaimEntry.from_json(tested), runs, _evaluate)
    assert got.beyond_controls == "no" and got.label == "holds, not beyond controls"
    # every control below: beyond controls
    got = controls.add_controls(ClaimEntry.from_json(tested), runs[:1], _evaluate)
    assert got.beyond_controls == "yes" and got.label == "holds"
    # a control that raises is an error, not a crash
    got = controls.add_controls(ClaimEntry.from_json(tested), [("random:3", "random", FakeStudy("d", verdict="raise"))], _evaluate)
    assert got.controls[0]["verdict"] == "error" and "cannot compute" in got.controls[0]["reason"]
    assert got.beyond_controls == "n/a: 1 of 1 controls could not compute the value"
    # without controls: no beyond cell, the verdict stands
    got = controls.add_controls(ClaimEntry.from_json(tested), [], _evaluate)
    assert got.controls == [] and got.beyond_controls is None and got.label == "holds"


def test_headline_reads_the_entrys_value_and_direction():
    assert report_controls.headline(_entry("holds", 0.3, "less")) == (0.3, "less")
    assert report_controls.headline(_entry("holds", math.nan, "less")) == (None, "less")
    assert report_controls.headline({"verdict": "error"}) == (None, None)


def test_verdict_labels():
    assert report_controls.verdict_label("holds", "no") == "holds, not beyond controls"
    assert report_controls.verdict_label("holds", "yes") == "holds"
    assert report_controls.verdict_label("fails", "no") == "fails"
    assert report_controls.verdict_label("holds", None) == "holds"


def test_report_says_when_there_are_no_controls_and_tabulates_them():
    entries = [{"id": "a", "verdict": "holds", "value": 0.7, "direction": "greater"}]
    assert "No controls were run" in report_controls.report_preamble(entries)[0]
    assert report_controls.report_table(entries) == []
    runs = [{"weights": "random:1", "kind": "random", "verdict": "holds", "value": 0.8},
            {"weights": "shuffle:1:random:0", "kind": "shuffle", "verdict": "error", "value": None}]
    entries = [{"id": "a", "verdict": "holds", "value": 0.7, "direction": "greater", "controls": runs,
                "beyond_controls": "no"},
               {"id": "b", "verdict": "inconclusive", "value": None, "direction": None}]
    pre = report_controls.report_preamble(entries)[0]
    assert "`random:1` (random)" in pre and "`shuffle:1:random:0` (shuffle)" in pre
    table = report_controls.report_table(entries)
    assert table[0] == "| claim | direction | tested | random:1 | shuffle:1:random:0 | beyond controls |"
    assert table[2] == "| a | greater | 0.7 (holds) | 0.8 (holds) | n/a (error) | no |"
    assert table[3] == "| b | n/a | n/a (inconclusive) | not run | not run | n/a: no controls were run |"


def test_control_weights_are_observed_never_expected():
    from rsi_core.harness.expectations import for_run
    assert is_control("random:3") and is_control("shuffle:1:IMAGENET1K_V1")
    assert not is_control("IMAGENET1K_V1")
    assert set(for_run("resnet18", "shuffle:1:IMAGENET1K_V1").values()) == {"observe"}
    assert for_run("resnet18", "IMAGENET1K_V1")["fig2-downsample-overwrite"] == "holds"


# ------------------------------------------------------------------ through the claims harness and the report
class ControlStudy:
    """What the harness and a toy claim read: a value, a model with a weights identity, provenance."""

    def __init__(self, weights, value):
        self.value, self.weights = value, weights
        self.model = _model_with_id(f"id-{weights}")

    def describe(self):
        return {"model": "resnet18", "weights": self.weights, "weights_id": f"id-{self.weights}", "profile": "test"}


def share_claim(study):
    """A toy claim: holds when the share exceeds one half."""
    from rsi_core.verdicts.verdict import Verdict
    return Verdict("", "holds" if study.value > 0.5 else "fails", "share > 0.5", {"share": study.value}, {},
                   f"share {study.value}", value=study.value, direction="greater")


def test_harness_reports_holds_not_beyond_controls_without_failing(tmp_path, monkeypatch):
    from rsi_core.harness import claims
    from rsi_core.report import claims_report as report
    runs = [("random:1", "random", ControlStudy("random:1", 0.9)),
            ("shuffle:1:IMAGENET1K_V1", "shuffle", ControlStudy("shuffle:1:IMAGENET1K_V1", 0.2))]
    asked = []
    monkeypatch.setattr(controls, "control_studies", lambda study, k: asked.append(k) or runs)
    harness = claims.Harness(ControlStudy("IMAGENET1K_V1", 0.8), tmp_path, controls=2)
    entry = harness.run("fig2-downsample-overwrite", share_claim)
    harness.run("fig2-final-block", share_claim)
    assert asked == [2]  # the controls are built once per run
    assert entry.verdict == "holds" and entry.outcome == "pass"  # not beyond controls does not fail
    assert entry.label == "holds, not beyond controls" and entry.beyond_controls == "no"
    assert [(c["weights"], c["verdict"], c["value"]) for c in entry.controls] == [
        ("random:1", "holds", 0.9), ("shuffle:1:IMAGENET1K_V1", "fails", 0.2)]
    md, js = report.write_report(report.collect(tmp_path), tmp_path)
    lines = md.read_text().splitlines()
    assert lines[2].startswith("**Controls:** `random:1` (random), `shuffle:1:IMAGENET1K_V1` (shuffle)")
    assert any(line.startswith("| fig2-downsample-overwrite | ") and "| holds, not beyond controls |" in line
               for line in lines)
    assert "| fig2-downsample-overwrite | greater | 0.8 (holds) | 0.9 (holds) | 0.2 (fails) | no |" in lines
    saved = json.loads(js.read_text())["claims"][0]
    assert saved["beyond_controls"] == "no" and len(saved["controls"]) == 2


def test_a_report_without_controls_says_so_first(tmp_path):
    from rsi_core.harness import claims
    from rsi_core.report import claims_report as report
    claims.Harness(ControlStudy("IMAGENET1K_V1", 0.8), tmp_path).run("fig2-final-block", share_claim)
    md, _ = report.write_report(report.collect(tmp_path), tmp_path)
    text = md.read_text()
    assert text.splitlines()[2].startswith("**No controls were run**")
    assert "Beside the controls" not in text
