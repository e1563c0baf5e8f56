"""Model loading: every bad input is a clear error, and weights identities are faithful."""
import time
import urllib.error

import pytest
import torch
import torchvision

from rsi_core.harness import cli
from rsi_core.model.anatomy import provenance_of
from rsi_core.model.families import TV_RESNETS
from rsi_core.model.load import (
    WeightsError,
    WeightsUnavailable,
    describe,
    load_model,
    weights_identity,
)


@pytest.fixture(scope="module")
def r18():
    return load_model("resnet18", "random:0")


def test_unknown_model_names_the_choices():
    with pytest.raises(ValueError, match="unknown model 'resnet19'") as info:
        load_model("resnet19", "random:0")
    for name in TV_RESNETS:
        assert name in str(info.value)


def test_bad_random_seed():
    with pytest.raises(ValueError, match="random:SEED"):
        load_model("resnet18", "random:zero")


def test_unknown_weights_name_lists_the_choices():
    with pytest.raises(ValueError, match="unknown weights 'IMAGENET9K'.*IMAGENET1K_V1.*random:SEED"):
        load_model("resnet18", "IMAGENET9K")


def test_missing_weights_file(tmp_path):
    path = tmp_path / "nope.pth"
    with pytest.raises(WeightsError, match="does not exist") as info:
        load_model("resnet18", str(path))
    assert str(path) in str(info.value)


def test_corrupt_weights_file(tmp_path):
    path = tmp_path / "garbage.pth"
    path.write_bytes(b"\x00\x13garbage, not a zip or pickle" * 100)
    with pytest.raises(WeightsError, match="(?s)not a readable PyTorch state dict.*corrupt") as info:
        load_model("resnet18", str(path))
    assert str(path) in str(info.value)


def test_truncated_weights_file(tmp_path, r18):
    good = tmp_path / "good.pth"
    torch.save(r18.state_dict(), good)
    bad = tmp_path / "truncated.pth"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    with pytest.raises(WeightsError, match="truncated or corrupt"):
        load_model("resnet18", str(bad))


def test_file_holding_something_else(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([1, 2, 3], path)
    with pytest.raises(WeightsError, match="holds a list: no state dict"):
        load_model("resnet18", str(path))


def test_state_dict_of_another_architecture(tmp_path):
    r34 = torchvision.models.resnet34(weights=None)
    path = tmp_path / "resnet34.pth"
    torch.save(r34.state_dict(), path)
    with pytest.raises(WeightsError) as info:
        load_model("resnet18", str(path))
    msg = str(info.value)
    assert "do not fit resnet18" in msg
    assert "unexpected keys ['layer1.2." in msg  # resnet34 has 3 blocks in layer1, resnet18 has 2
    assert "missing keys []" in msg
    assert "--model" in msg


def test_state_dict_with_missing_keys(tmp_path, r18):
    state = r18.state_dict()
    del state["fc.weight"], state["layer4.1.bn2.running_var"]
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    with pytest.raises(WeightsError, match=r"missing keys \['layer4.1.bn2.running_var'\]"):  # the head: left out
        load_model("resnet18", str(path))


def test_backbone_of_other_shapes_is_refused(tmp_path):
    # same keys, another width in the backbone: not resnet18, whatever its head
    state = torchvision.models.resnet18(weights=None, num_classes=10).state_dict()
    state["layer1.0.conv1.weight"] = torch.zeros(32, 64, 3, 3)
    path = tmp_path / "narrow.pth"
    torch.save(state, path)
    with pytest.raises(WeightsError, match=r"do not fit resnet18: other shapes in the backbone: "
                                           r"layer1.0.conv1.weight \[32, 64, 3, 3\] \(here \[64, 64, 3, 3\]\)"):
        load_model("resnet18", str(path))


def test_fine_tune_with_another_head_loads_its_backbone(tmp_path):
    """A 10-class fine-tune: the backbone loads exactly, the head is left out (zeroed, so the
    weights identity is the file's) and the note says why that is safe."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        ten = torchvision.models.resnet18(weights=None, num_classes=10)
    path = tmp_path / "ten_classes.pth"
    torch.save(ten.state_dict(), path)
    got = load_model("resnet18", str(path))
    for k, v in ten.state_dict().items():
        if not k.startswith("fc."):
            assert torch.equal(got.state_dict()[k], v), k
    assert not got.fc.weight.any() and not got.fc.bias.any()
    assert provenance_of(got).head.startswith("classifier head fc not loaded (fc.weight [10, 512] (here [1000, 512])")
    assert "no claim reads it" in provenance_of(got).head and describe(got)["head"] == provenance_of(got).head
    assert provenance_of(load_model("resnet18", str(path))).weights_id == provenance_of(got).weights_id   # deterministic: cacheable
    headless = tmp_path / "headless.pth"
    torch.save({k: v for k, v in ten.state_dict().items() if not k.startswith("fc.")}, headless)
    assert "absent or renamed" in provenance_of(load_model("resnet18", str(headless))).head
    assert "head" not in describe(load_model("resnet18", "random:0"))


def _offline(monkeypatch, tmp_path):
    """No cached file and no network, whatever the machine running the tests has: point
    TORCH_HOME at an empty folder and make torchvision's download fail at once (on a machine
    with network the real download would fetch 45 MB; without, it fails in seconds)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    calls = []

    def no_network(url, *args, **kwargs):
        calls.append(url)
        raise urllib.error.URLError("no network (test)")

    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", no_network)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    return calls


def test_named_weights_offline_say_what_to_do(monkeypatch, tmp_path):
    calls = _offline(monkeypatch, tmp_path)
    t0 = time.monotonic()
    with pytest.raises(WeightsUnavailable) as info:
        load_model("resnet18", "IMAGENET1K_V1")
    assert time.monotonic() - t0 < 30
    assert calls == ["https://download.pytorch.org/models/resnet18-f37072fd.pth"]
    msg = str(info.value)
    assert "resnet18-f37072fd.pth" in msg
    assert "$TORCH_HOME/hub/checkpoints/" in msg
    assert str(tmp_path / "torch_home" / "hub" / "checkpoints") in msg
    assert "--weights" in msg
    assert "random:0" in msg
    assert isinstance(info.value, WeightsError)  # callers catching WeightsError see it too


def test_cli_reports_offline_weights_without_traceback(monkeypatch, tmp_path, capsys):
    _offline(monkeypatch, tmp_path)
    assert cli.main(["blocks", "--model", "resnet18", "--weights", "IMAGENET1K_V1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rsi: error:") and "resnet18-f37072fd.pth" in err


def test_local_file_round_trips(tmp_path, r18):
    path = tmp_path / "r18.pth"
    torch.save(r18.state_dict(), path)
    loaded = load_model("resnet18", str(path))
    assert provenance_of(loaded).weights_id == provenance_of(r18).weights_id == weights_identity(loaded)
    for (k, a), (k2, b) in zip(r18.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    assert describe(loaded)["weights"] == str(path)
    assert not loaded.training
    assert not any(p.requires_grad for p in loaded.parameters())
    # a checkpoint wrapped as {"state_dict": ...} is accepted too
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"state_dict": r18.state_dict(), "epoch": 3}, wrapped)
    assert provenance_of(load_model("resnet18", str(wrapped))).weights_id == provenance_of(r18).weights_id


def test_random_identities(r18):
    again = load_model("resnet18", "random:0")
    other = load_model("resnet18", "random:1")
    assert provenance_of(again).weights_id == provenance_of(r18).weights_id
    assert provenance_of(other).weights_id != provenance_of(r18).weights_id
    assert len(provenance_of(r18).weights_id) == 16
    # seeding does not leak into the global RNG
    torch.manual_seed(123)
    a = torch.rand(3)
    torch.manual_seed(123)
    load_model("resnet18", "random:5")
    assert torch.equal(torch.rand(3), a)


def test_identity_changes_with_one_weight(r18):
    model = load_model("resnet18", "random:0")
    with torch.no_grad():
        model.layer3[1].bn2.weight[7] += 1e-3
    assert weights_identity(model) != provenance_of(r18).weights_id


def test_cached_weights_with_wrong_hash_stop_the_run(monkeypatch, tmp_path, r18):
    """A file in torchvision's cache whose content does not match the sha256 prefix in its name
    is an error (not 'offline'), and nothing is downloaded over it."""
    calls = _offline(monkeypatch, tmp_path)
    cached = tmp_path / "torch_home" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    cached.parent.mkdir(parents=True)
    torch.save(r18.state_dict(), cached)  # loadable, right architecture, wrong file
    with pytest.raises(WeightsError, match="(?s)sha256 starts .*its name says f37072fd.*Delete it") as info:
        load_model("resnet18", "IMAGENET1K_V1")
    assert not isinstance(info.value, WeightsUnavailable)
    assert str(cached) in str(info.value)
    assert calls == []


def test_cached_corrupt_weights_are_an_error_not_offline(monkeypatch, tmp_path):
    _offline(monkeypatch, tmp_path)
    monkeypatch.setattr("rsi_core.model.load.verify_hash", lambda path: None)  # reach the unreadable-file path
    cached = tmp_path / "torch_home" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"not a checkpoint" * 50)
    with pytest.raises(WeightsError, match="corrupt") as info:
        load_model("resnet18", "IMAGENET1K_V1")
    assert not isinstance(info.value, WeightsUnavailable)


def _hash_named(tmp_path, state):
    import hashlib
    raw = tmp_path / "raw.pth"
    torch.save(state, raw)
    digest = hashlib.sha256(raw.read_bytes()).hexdigest()
    named = tmp_path / f"resnet18-{digest[:8]}.pth"
    raw.rename(named)
    return named


def test_weights_file_named_with_a_hash_is_verified(tmp_path, r18):
    good = _hash_named(tmp_path, r18.state_dict())
    assert provenance_of(load_model("resnet18", str(good))).weights_id == provenance_of(r18).weights_id
    bad = tmp_path / "resnet18-0123abcd.pth"
    bad.write_bytes(good.read_bytes())
    with pytest.raises(WeightsError, match="its name says 0123abcd"):
        load_model("resnet18", str(bad))
    assert cli.main(["blocks", "--weights", str(bad)]) == 2


LAYOUTS = {  # how training scripts save a checkpoint
    "plain": lambda s: s,
    "model": lambda s: {"model": s, "optimizer": {}, "epoch": 89},              # torchvision's reference scripts
    "model_state_dict": lambda s: {"model_state_dict": s, "optimizer_state_dict": {}, "epoch": 5, "loss": 0.1},
    "state_dict": lambda s: {"state_dict": s, "epoch": 3},
    "net": lambda s: {"net": s, "acc": 91.0},
    "module.": lambda s: {f"module.{k}": v for k, v in s.items()},             # DataParallel
    "model+module.": lambda s: {"model": {f"module.{k}": v for k, v in s.items()}},
    "lightning": lambda s: {"state_dict": {**{f"model.{k}": v for k, v in s.items()},
                                           "criterion.weight": torch.ones(3)},   # the LightningModule's own
                            "epoch": 7, "hyper_parameters": {"lr": 0.1}, "pytorch-lightning_version": "2.1.0"},
}


@pytest.mark.parametrize("layout", [*LAYOUTS, "safetensors"])
def test_common_checkpoint_layouts_are_accepted(tmp_path, r18, layout):
    state = r18.state_dict()
    if layout == "safetensors":
        from safetensors.torch import save_file
        path = tmp_path / "model.safetensors"
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        path = tmp_path / "ckpt.pth"
        torch.save(LAYOUTS[layout](state), path)
    assert provenance_of(load_model("resnet18", str(path))).weights_id == provenance_of(r18).weights_id


def test_a_checkpoint_without_a_state_dict_is_refused_naming_its_keys(tmp_path, r18):
    path = tmp_path / "odd.pth"
    torch.save({"epoch": 3, "optimizer": {}, "weights": r18.state_dict()}, path)
    with pytest.raises(WeightsError, match=r"holds a dict with keys epoch, optimizer, weights: no state dict .* "
                                           r"model_state_dict, state_dict, model, net; save torch.save"):
        load_model("resnet18", str(path))
    assert "\n" not in str(pytest.raises(WeightsError, load_model, "resnet18", str(path)).value)


def test_fz_runs_on_a_fine_tune_and_a_tutorial_checkpoint(tmp_path, capsys):
    """``rsi fz --weights`` a 10-class fine-tune and a ``{"model_state_dict": ...}`` checkpoint (tiny)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(4)
        ten = torchvision.models.resnet18(weights=None, num_classes=10)
    torch.save(ten.state_dict(), tmp_path / "ten.pth")
    torch.save(LAYOUTS["model_state_dict"](ten.state_dict()), tmp_path / "tutorial.pt")
    for name in ("ten.pth", "tutorial.pt"):
        assert cli.main(["fz", "--weights", str(tmp_path / name), "--blocks", "1.1", "--channels", "0-1",
                         "--steps", "2", "--cache-dir", str(tmp_path / "cache")]) == 0
        out = capsys.readouterr().out
        assert "classifier head fc not loaded" in out and "FZ bank ready: 4 FZs" in out
