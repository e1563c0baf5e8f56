"""The package's seams: weights sources resolved in one registry, FZ cache keys stable across
the layout, the public API."""
import pytest

import rsi_core
from rsi_core.cache import Cache
from rsi_core.fz.bank import FZBank
from rsi_core.fz.render import FZSettings
from rsi_core.model.anatomy import provenance_of
from rsi_core.model.load import load_model
from rsi_core.model.sources import SOURCES, is_control, kind_of, random_seed, source_of

# FZ bank keys of random:0 resnet18, channel 3, computed by the flat-module layout before the
# move into packages: a cache filled then is read now without re-rendering.
KEYS_BEFORE_THE_MOVE = {
    "8/as-written/neuron/1.1.I": "fz-2af326c61b1d1f72f71fef4cf867c817",
    "8/as-written/neuron/1.1.B": "fz-fdda149f2962e32aa0a43adc62162c84",
    "8/as-written/neuron/2.0.I": "fz-bdabafee6572d844c9c962c6d4c70187",
    "8/as-written/neuron/4.1.O": "fz-41e074bf6a788480973f6bc1dd1bdc83",
    "2560/as-run/neuron/1.1.I": "fz-408c16dfc7e2e406fea9f5ab60cdb30f",
    "2560/as-run/neuron/1.1.B": "fz-f96f3794d003723ce0581769ee22ee64",
    "2560/as-run/neuron/2.0.I": "fz-c58b4a32ea5847fbdfb3d86ca7ca6918",
    "2560/as-run/neuron/4.1.O": "fz-7f4ee32e59fd7d4fe85b887c9686aaf2",
    "24/as-written/channel/1.1.I": "fz-244ea1ec861a185d7e57bd990dc450b5",
    "24/as-written/channel/1.1.B": "fz-746a4d30134c8cda79f89852b3aba549",
    "24/as-written/channel/2.0.I": "fz-065f64d000c74395d669a2d64d85be92",
    "24/as-written/channel/4.1.O": "fz-f26c4a93d8f74f4d507b7c8f742ffd0b",
}


def test_fz_cache_keys_are_those_of_the_flat_layout(tmp_path):
    model = load_model("resnet18", "random:0")
    got = {}
    for s in (FZSettings(steps=8), FZSettings(steps=2560, target="as-run", seed=1), FZSettings(steps=24, objective="channel")):
        bank = FZBank(model, Cache(tmp_path), s)
        for tap in ("1.1.I", "1.1.B", "2.0.I", "4.1.O"):
            got[f"{s.steps}/{s.target}/{s.objective}/{tap}"] = bank._key(tap, 3)
    assert got == KEYS_BEFORE_THE_MOVE


def test_every_source_registers_itself_and_says_what_it_is():
    assert kind_of("random:0") == kind_of("shuffle:1:IMAGENET1K_V1") == "control"
    assert kind_of("planted:fig2-downsample-holds") == "planted"  # imports rsi_core.planted on first use
    assert set(SOURCES) == {"random", "shuffle", "planted"}
    assert kind_of("IMAGENET1K_V1") is None and kind_of("/tmp/resnet18-f37072fd.pth") is None
    assert is_control("random:3") and not is_control("planted:x") and not is_control("IMAGENET1K_V1")
    assert random_seed("random:7") == 7 and random_seed("random:x") is None and random_seed("shuffle:7:random:0") is None


def test_an_unknown_source_lists_the_known_ones():
    with pytest.raises(ValueError) as err:
        source_of("randon:0")
    message = str(err.value)
    assert "unknown weights source 'randon'" in message
    assert all(s.example in message for s in SOURCES.values())
    with pytest.raises(ValueError, match="unknown weights source"):
        load_model("resnet18", "randon:0")


def test_planted_networks_refuse_another_architecture():
    from rsi_core.planted.resnet import CASES
    with pytest.raises(ValueError, match="need --model resnet18, not 'resnet34'"):
        load_model("resnet34", f"planted:{CASES[0].name}")
    assert provenance_of(load_model("resnet18", f"planted:{CASES[0].name}")).weights == f"planted:{CASES[0].name}"


def test_the_public_api_is_small_and_importable():
    assert sorted(rsi_core.__all__) == ["Cache", "FZBank", "FZSettings", "ImageSet", "Study", "get_profile",
                                        "load_model", "natural_activations"]
    assert all(callable(getattr(rsi_core, n)) for n in rsi_core.__all__)


#: the fields an FZ entry of random:0 resnet18 held when written before the anatomy record (its
#: ``"L.K:T"`` grammar): 1.1.I is 1.0.O, re-measured for 1.0 and for 1.1
FIELDS_BEFORE_THE_ANATOMY = {"1.1.I": ["1.0", "1.1"], "1.1.B": ["1.1"], "2.0.I": ["2.0"], "4.1.O": ["4.1"]}
#: natural-image tables of random:0 resnet18 over the bundled images, blocks 1.1 and 2.0, before it
NATURAL_KEY_BEFORE_THE_ANATOMY = "natural-d07d0e71a0f6ef3c3f08731f36ef7de5"


def test_a_cache_filled_before_the_anatomy_is_reused_with_no_render(tmp_path, monkeypatch):
    """Entries written under the keys and fields of the code before the anatomy record are read
    as they are: no FZ is rendered, no natural image is read."""
    import numpy as np

    from rsi_core.fz import bank as bank_module
    from rsi_core.model import activations
    from rsi_core.model.anatomy import preprocess_of
    from rsi_core.model.images import ImageSet
    cache, rng = Cache(tmp_path), np.random.default_rng(0)
    written = {}
    for tap, served in FIELDS_BEFORE_THE_ANATOMY.items():
        entry = {"image": rng.integers(0, 256, (224, 224, 3), dtype=np.uint8),
                 **{f"{b}:{k}": rng.normal(size=64 if b[0] == "1" else 128 if b[0] == "2" else 512).astype(np.float32)
                    for b in served for k in "IBO"}}
        cache.save(KEYS_BEFORE_THE_MOVE[f"8/as-written/neuron/{tap}"], entry)
        written[tap] = entry
    cache.save(NATURAL_KEY_BEFORE_THE_ANATOMY, {"1.1.I": np.ones((250, 64), np.float32)})

    def no_render(*_a, **_k):
        raise AssertionError("rendered an FZ the cache holds")
    monkeypatch.setattr(bank_module, "render", no_render)
    monkeypatch.setattr(activations, "stream_centre", no_render)
    model = load_model("resnet18", "random:0")
    bank = FZBank(model, cache, FZSettings(steps=8), progress=False)
    for tap, entry in written.items():
        got = bank.get(tap, [3])
        block = tap.rsplit(".", 1)[0]
        assert np.array_equal(got["image"][0], entry["image"])
        assert all(np.array_equal(got[k][0], entry[f"{block}:{k}"]) for k in "IBO")
    images = ImageSet.from_dir(None).with_preprocess(preprocess_of(model))
    tables = activations.natural_activations(model, images, ["1.1", "2.0"], cache=cache, progress=False)
    assert tables["1.1.I"].shape == (250, 64)
