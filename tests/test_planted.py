"""Planted networks: the metrics on networks whose answers are known.

Three layers, cheapest first:
1. the scale transforms' geometry (S, S_inv) on synthetic images;
2. the planted networks' construction, read through the real tap anatomy (no FZs);
3. the whole pipeline (FZ engine -> re-measure -> M and the criteria) on randomly drawn planted
   networks (hypothesis): the mix ratio orders channels by planted branch gain; the criteria
   flag planted scale-invariant channels and reject the decoys they can reject. The decoys
   that fool the criteria are measured by ``rsi validate``; here one test pins down that they
   do (the paper's "necessary but insufficient").
"""
import math

import numpy as np
import pytest
import scipy.stats
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from rsi_core.cache import Cache
from rsi_core.measure.metrics import scale_down, scale_up, weight_magnitudes
from rsi_core.model.anatomy import TapCapture, blocks, describe_blocks, provenance_of
from rsi_core.model.images import normalize
from rsi_core.planted import networks as P
from rsi_core.planted.bench import analyse

FZ_STEPS = 32
PIPELINE = settings(max_examples=5, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


# ----------------------------------------------------------------------- 1. S and S_inv geometry


def disc(radius: float, size: int = 224, value: float = 1.0) -> torch.Tensor:
    """[1, 3, size, size]: a disc of ``radius`` pixels centred on the image centre, 0 elsewhere."""
    c = (np.arange(size) - (size - 1) / 2)
    yy, xx = np.meshgrid(c, c, indexing="ij")
    img = (xx ** 2 + yy ** 2 < radius ** 2).astype(np.float32) * value
    return torch.from_numpy(img).expand(1, 3, size, size).clone()


def central(img: torch.Tensor, half: int = 56) -> torch.Tensor:
    """The central (2 half)^2 pixels of the first channel."""
    return img[0, 0, 112 - half:112 + half, 112 - half:112 + half]


def radius_of(img: torch.Tensor, threshold: float = 0.5) -> float:
    """Equivalent radius (pixels) of the central area above ``threshold``."""
    return math.sqrt(float((central(img) > threshold).sum()) / math.pi)


def centroid(img: torch.Tensor) -> tuple[float, float]:
    """Centre of mass of the central area, in image pixel coordinates."""
    w = central(img).double()
    idx = torch.arange(w.shape[0], dtype=torch.float64) + 56
    return float((w.sum(1) * idx).sum() / w.sum()), float((w.sum(0) * idx).sum() / w.sum())


@settings(max_examples=40, deadline=None)
@given(r=st.floats(3, 27))
def test_scale_up_shows_a_centred_pattern_at_twice_its_size(r):
    out = scale_up(disc(r))
    assert abs(radius_of(out) - 2 * r) <= 1.5
    cy, cx = centroid(out)
    assert abs(cy - 111.5) < 1.0 and abs(cx - 111.5) < 1.0


@settings(max_examples=40, deadline=None)
@given(r=st.floats(8, 100), antialias=st.booleans())
def test_scale_down_shows_a_centred_pattern_at_half_its_size(r, antialias):
    out = scale_down(disc(r), antialias=antialias)
    assert abs(radius_of(out) - r / 2) <= 1.0
    cy, cx = centroid(out)
    assert abs(cy - 111.5) < 1.0 and abs(cx - 111.5) < 1.0


@settings(max_examples=10, deadline=None)
@given(r=st.floats(8, 40))
def test_scale_down_mirrors_a_centred_pattern_onto_the_image_border(r):
    """S_inv's reflection padding (56 px, half the shrunk image) reaches the shrunk image's
    centre: copies of a centred pattern (halves on the edges, quarters in the corners) land on
    the border, where the centre neuron of a block with a receptive field wider than the image
    (4.0, 4.1; partly 3.1) sees them."""
    out = scale_down(disc(r))[0, 0]
    for edge in (out[0], out[-1], out[:, 0], out[:, -1]):   # half a copy centred on each edge
        assert float(edge[110:114].min()) > 0.5
    assert float(out[0, 0]) > 0.5 and float(out[-1, -1]) > 0.5  # a quarter copy in each corner
    centre_area = float((central(out[None, None]) > 0.5).sum())
    assert float((out > 0.5).sum()) > 2.5 * centre_area  # 1 + 4 halves + 4 quarters: about 3 copies


@settings(max_examples=30, deadline=None)
@given(values=st.lists(st.floats(-3, 3), min_size=3, max_size=3), antialias=st.booleans())
def test_scale_transforms_keep_a_constant_image_constant(values, antialias):
    x = torch.tensor(values, dtype=torch.float32).view(1, 3, 1, 1).expand(2, 3, 224, 224).clone()
    torch.testing.assert_close(scale_up(x), x)
    torch.testing.assert_close(scale_down(x, antialias=antialias), x)


@settings(max_examples=20, deadline=None)
@given(family=st.sampled_from(["dot", "bar"]), scale=st.floats(1.25, 1.6),
       angle=st.sampled_from([0, 45, 90, 135]), polarity=st.sampled_from([1, -1]))
def test_s_maps_a_planted_pattern_onto_the_same_pattern_at_2s(family, scale, angle, polarity):
    p = P.Pattern(family, scale, polarity, angle)
    small, big = (torch.from_numpy(q.image()).float()[None, None] for q in (p, p.at(2)))
    # pixels that differ (in the centre, away from S_inv's mirrored copies): only along edges
    assert float(central(scale_up(small) - big).abs().gt(0.25).float().mean()) < 0.05
    assert float(central(scale_down(big) - small).abs().gt(0.25).float().mean()) < 0.05


# ----------------------------------------------------------------------- 2. construction


specs = st.builds(lambda seed, n: P.random_spec(seed, roles=[r for r in P.benchmark_roles()][:n]),
                  st.integers(0, 2 ** 16), st.integers(2, 12))


def test_planted_network_has_resnet_anatomy():
    spec = P.benchmark_spec(0)
    model = P.build(spec)
    assert [(b.name, b.kind) for b in blocks(model)] == [("1.0", "simple"), ("1.1", "simple"), ("2.0", "downsample")]
    assert provenance_of(model).model == "planted" and len(provenance_of(model).weights_id) == 16
    assert not any(p.requires_grad for p in model.parameters()) and not model.training
    rows = {r["block"]: r for r in describe_blocks(model)}
    for name in P.STUDIED_BLOCKS:
        for t in "IBO":  # every centre neuron sits on the image centre, where S / S_inv zoom
            lo, hi = rows[name]["taps"][t]["window"]
            assert (lo + hi) / 2 == pytest.approx(111.5)
    assert provenance_of(P.build(spec)).weights_id == provenance_of(model).weights_id  # deterministic
    assert provenance_of(P.build(P.benchmark_spec(1))).weights_id != provenance_of(model).weights_id


def centre_luminance_response(kernel: np.ndarray, images: torch.Tensor) -> np.ndarray:
    """A map kernel's centre response computed independently of the network: the pixel kernel
    against (mean RGB - 1/2) in the window the centre unit sees."""
    pk = P.pixel_kernel(kernel)
    h = pk.shape[0]
    lo = 112 - h // 2
    grey = images.mean(1)[:, lo:lo + h, lo:lo + h].double().numpy() - 0.5
    return (grey * pk).sum(axis=(1, 2))


@settings(max_examples=10, deadline=None)
@given(spec=specs, seed=st.integers(0, 1000))
def test_taps_are_the_planted_detectors(spec, seed):
    """I = g_I (D * L), B = g_B ((F - eta D) * L), O = ReLU(I) + B (simple) or I + B (downsample)."""
    model = P.build(spec)
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(4, 3, 224, 224, generator=g)
    with TapCapture(model, [f"{b}.{t}" for b in P.STUDIED_BLOCKS for t in "IBO"], centre=True) as cap:
        acts = {k: v.double().numpy() for k, v in cap(normalize(images)).items()}
    for b in P.STUDIED_BLOCKS:
        for c, ch in zip(spec.channels(b), spec.roles(b)):
            i_exp = ch.gain_i * centre_luminance_response(ch.i.kernel(P.INPUT_KERNEL), images)
            b_exp = ch.gain_b * centre_luminance_response(ch.b.kernel() - ch.inhibit * ch.i.kernel(), images)
            np.testing.assert_allclose(acts[f"{b}.I"][:, c], i_exp, atol=1e-4)
            np.testing.assert_allclose(acts[f"{b}.B"][:, c], b_exp, atol=1e-4)
            i_added = np.maximum(i_exp, 0) if b == "1.1" else i_exp
            np.testing.assert_allclose(acts[f"{b}.O"][:, c], i_added + b_exp, atol=1e-4)


@settings(max_examples=20, deadline=None)
@given(family=st.sampled_from(["dot", "bar"]), scale=st.floats(1.25, 2.8),
       angle=st.sampled_from([0, 45, 90, 135]), polarity=st.sampled_from([1, -1]))
def test_every_detector_has_the_same_best_response(family, scale, angle, polarity):
    p = P.Pattern(family, scale, polarity, angle)
    if p.extent() > P.INPUT_KERNEL // 2:
        return
    k = p.kernel(P.INPUT_KERNEL)
    assert abs(k.sum()) < 1e-9
    best = torch.from_numpy((P.pixel_kernel(k) > 0).astype(np.float32))  # pixels at 0 or 1
    h = best.shape[0]
    img = torch.full((1, 3, 224, 224), 0.5)
    img[:, :, 112 - h // 2:112 - h // 2 + h, 112 - h // 2:112 - h // 2 + h] = best
    assert centre_luminance_response(k, img)[0] == pytest.approx(P.BEST_RESPONSE, rel=1e-6)
    # the ideal stimulus drives its own detector, and the 2s detector barely
    assert centre_luminance_response(k, torch.from_numpy(p.image()).float().expand(1, 3, 224, 224))[0] > 1.0


def test_bn2_weights_are_the_planted_gains():
    spec = P.benchmark_spec(3)
    model = P.build(spec)
    for name, blk in (("1.1", model.layer1[1]), ("2.0", model.layer2[0])):
        bn, _ = weight_magnitudes(blk)
        np.testing.assert_allclose(bn[spec.channels(name)], [c.gain_b for c in spec.roles(name)], rtol=1e-6)


def test_role_constructors():
    p = P.Pattern("bar", 1.4, 1, 45)
    assert P.make_channel("scale", p).b == p.at(2)
    assert P.make_channel("decoy-same-scale", p).b == p
    assert P.make_channel("mix", p).b == p.at(2).flipped()
    assert P.make_channel("decoy-unrelated", p, kind="orientation").b.angle == 135
    assert P.make_channel("decoy-unrelated", p, kind="oblique").b == p.at(2).turned(45)
    assert P.make_channel("decoy-unrelated", p, kind="scale1.5").b == p.at(1.5)
    assert P.make_channel("decoy-unrelated", P.Pattern("dot", 1.3), kind="scale3").b == P.Pattern("dot", 1.3).at(3)
    assert P.make_channel("decoy-unrelated", P.Pattern("dot", 1.4), kind="family").b.family == "bar"
    assert P.make_channel("decoy-unrelated", p, kind="texture").b.family == "texture"
    inh = P.make_channel("inhibit", p, gain_b=5.0)
    assert inh.inhibit * inh.gain_b > inh.gain_i  # the branch more than cancels the input's feature
    with pytest.raises(ValueError):
        P.make_channel("decoy-unrelated", P.Pattern("dot", 1.4), kind="orientation")
    with pytest.raises(ValueError):
        P.Pattern("star", 1.0)
    assert [c.scale_invariant for c in P.benchmark_spec(0).roles("1.1")].count(True) == 3


# ----------------------------------------------------------------------- 3. the pipeline, with FZs


@pytest.fixture(scope="module")
def fz_cache(tmp_path_factory):
    return Cache(tmp_path_factory.mktemp("planted-fz"))


def gain_spec(seed: int, block: str, relation: str, n: int = 8) -> P.PlantedSpec:
    """``n`` channels whose branch gains spread over 0.2-5 (log-uniform; input gain 1), all with
    the same relation between I's and B's features, which do not drive each other: B tuned to
    I's pattern at 2s (``scale``) or to its opposite at 2s (``polarity``)."""
    rng = np.random.default_rng(seed)
    chans = []
    for g in np.exp(rng.uniform(math.log(0.2), math.log(5), n)):
        role = "skip" if g < 0.5 else "overwrite" if g > 2 else "scale" if relation == "scale" else "mix"
        ch = P.random_channel(rng, "scale", gain_b=float(g))
        b = ch.b if relation == "scale" else ch.b.flipped()
        chans.append(P.Channel(role, ch.i, b, gain_b=ch.gain_b))
    return P.PlantedSpec(blocks={block: tuple(chans)}, name=f"gain-{relation}-{block}-{seed}")


@PIPELINE
@given(seed=st.integers(0, 2 ** 16), block=st.sampled_from(P.STUDIED_BLOCKS),
       relation=st.sampled_from(["scale", "polarity"]))
def test_mix_ratio_orders_channels_by_planted_branch_gain(fz_cache, seed, block, relation):
    """M ~ 1/g + (B's response to I's FZ, which depends on the pattern): the gain orders M,
    up to that cross-term."""
    rows = analyse(gain_spec(seed, block, relation), fz_cache, steps=FZ_STEPS, strict=False)
    m = np.array([r["m"] for r in rows])
    g = np.array([r["gain_b"] / r["gain_i"] for r in rows])
    assert not any(r["failed"] for r in rows)
    rho = scipy.stats.spearmanr(m, g).statistic
    # Gains closer than about 1.5x can swap: the cross-term reached 0.7 near g = 0.5 (hypothesis
    # found rho = -0.74 for seed 357, block 2.0, relation scale). The ordering claim is the
    # pairwise check below; rho bounds how many close pairs may swap.
    assert rho <= -0.6, (rho, list(zip(g.round(2), m.round(2))))
    for a in range(len(g)):  # gains three-fold apart: the larger branch gain never has the larger M
        for b in range(len(g)):
            if g[a] >= 3 * g[b]:
                assert m[a] <= m[b], (g[a], m[a], g[b], m[b])


#: decoys the criteria reject for a structural reason (no coin flip, see test docstring)
REJECTABLE = [("decoy-same-scale", ""), ("decoy-unrelated", "polarity"), ("mix", ""),
              ("skip", ""), ("overwrite", ""), ("inhibit", "")]


@PIPELINE
@given(seed=st.integers(0, 2 ** 16), block=st.sampled_from(P.STUDIED_BLOCKS))
@example(seed=35571, block="2.0")  # flagged, but a scale-metric term of 0.24: under the strict margin
def test_criteria_flag_planted_scale_invariance_and_reject_decoys(fz_cache, seed, block):
    """Flagged: I tuned to a pattern at s, B to it at 2s, g_B / g_I in [1, 1.25], each scale-metric
    term positive. (Below ~0.9, M leaves (2/3, 3/2) although the gains are balanced: lucent's FZ of I
    carries a halo that B answers, adding 0.2-0.4 to M; ``rsi validate`` measures that recall loss,
    and the strict margin's (``flag_margin``, both terms over 0.25): a draw's term can fall under it,
    as in the example, so it is a rate there, not a property here.) Rejected:
    - same scale: B(S(X_I)) ~ 0 < B(X_I) (criterion 2 fails by a wide margin);
    - opposite polarity (also ``mix``): the zoomed FZ drives B negative;
    - skip / overwrite / inhibit: M far outside (2/3, 3/2)."""
    rng = np.random.default_rng(seed)
    chans = [P.random_channel(rng, "scale", gain_b=float(rng.uniform(1.0, 1.25))) for _ in range(2)]
    chans += [P.random_channel(rng, role, kind) for role, kind in REJECTABLE]
    rows = analyse(P.PlantedSpec(blocks={block: tuple(chans)}, name=f"criteria-{block}-{seed}"), fz_cache,
                   steps=FZ_STEPS, strict=False)
    for r in rows:
        if r["truth"]:
            assert r["flag"] and r["margin2"] > 0 and r["margin3"] > 0, r
        else:
            assert not r["flag"], r


def unrelated_decoys(seed: int, block: str, fz_cache) -> list[dict]:
    """Three channels with B tuned to I's bar turned 90 degrees (an unrelated feature, at 2s)."""
    rng = np.random.default_rng(seed)
    chans = tuple(P.random_channel(rng, "decoy-unrelated", "orientation", gain_b=1.0) for _ in range(3))
    return analyse(P.PlantedSpec(blocks={block: chans}, name=f"orientation-{block}-{seed}"), fz_cache,
                   steps=FZ_STEPS, strict=False)


@pytest.mark.parametrize("block", P.STUDIED_BLOCKS)
def test_criteria_are_necessary_but_not_sufficient(fz_cache, block):
    """The paper's caveat, measured: an unrelated decoy passes all three criteria. I's FZ sits
    inside B's uniform centre strip, so B(X_I) ~ 0, and the zoomed FZ drives B a little
    (criterion 2 beats ReLU(~0)); the zoomed-out B FZ drives I a little (criterion 3). The
    margins are small (~0.1 of the tap's best response), so which decoys pass is a rate (on draws
    100-130 of both blocks: 3 of 3 in 43 draws, 2 in 17, 1 in 2, none in 0): this is a fixed draw
    where all three passed by 0.08 or more, and one passing is what the caveat needs, so a CPU
    whose rounding moves a margin cannot turn it."""
    rows = unrelated_decoys(101, block, fz_cache)
    assert sum(r["flag"] for r in rows) >= 1, rows


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2 ** 16), block=st.sampled_from(P.STUDIED_BLOCKS))
def test_strict_margin_rejects_unrelated_decoys(fz_cache, seed, block):
    """A margin of 0.25 on each scale-metric term rejects every unrelated decoy (on 186 of them,
    draws 100-130 and 260 of both blocks, the smaller of a decoy's two terms reached at most 0.21)."""
    for r in unrelated_decoys(seed, block, fz_cache):
        assert not r["truth"] and not r["flag_margin"], r


@pytest.mark.slow
def test_validate_prints_a_table_and_json_and_degrades_without_claims(monkeypatch, tmp_path, capsys):
    """``rsi validate --json`` end to end on one small planted network, with claim functions that
    cannot be loaded: the table says so and the last line is JSON with precision and recall."""
    import argparse
    import json

    from rsi_core.planted import validate as V

    def unavailable():
        raise ImportError("no claims folder")
    monkeypatch.setattr(V, "PLANTED_NETS", 1)
    monkeypatch.setattr(V, "PLANTED_STEPS", 8)
    monkeypatch.setattr(V, "FLOOR_SEEDS", 0)
    monkeypatch.setattr(V, "FRESH_NETS", 1)   # the fresh draw's path once (the command scores 6)
    monkeypatch.setenv("RSI_VALIDATE_WORKERS", "1")
    assert V.main(argparse.Namespace(json=True, seeds=2, cache_dir=str(tmp_path), fz_target="as-written"),
                  unavailable) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert any("controls: claim functions not available" in line for line in lines)
    assert any("precision" in line and "recall" in line for line in lines[:-1])
    report = json.loads(lines[-1])
    for k in ("precision", "recall"):
        assert report[k] is None or 0 <= report[k] <= 1
    assert report["controls"]["available"] is False
    assert len(report["planted"]["channels"]) == 2 * len(P.benchmark_roles())
    strict = report["strict"]  # the strict scale test, beside the paper's criteria
    assert strict["tp"] + strict["fn"] == sum(r["truth"] for r in report["planted"]["channels"])
    assert strict["r_min"] == 0.8
    assert strict["precision"] is None or 0 <= strict["precision"] <= 1
    assert list(report["readings"]) == ["as-written"] and report["strict_floor"]["rate"] is None
    assert all(isinstance(r["strict"], bool) for r in report["planted"]["channels"])
    assert strict["fresh_draw"]["nets"] == 1 and strict["fresh_draw"]["channels"] > 0


def test_fresh_draw_is_new_and_holds_the_held_out_decoys():
    """The strict test's held-out check: new seeds (other positions, patterns, gains) and a decoy
    kind the benchmark never has."""
    bench = {(b, ch) for s in range(6) for b, chans in P.benchmark_spec(s).blocks.items() for ch in chans}
    for k in range(3):
        spec = P.fresh_spec(k)
        chans = [(b, ch) for b, cs in spec.blocks.items() for ch in cs]
        assert not set(chans) & bench
        kinds = {ch.kind for _, ch in chans}
        assert set(P.HELD_OUT_KINDS) <= kinds and not set(P.HELD_OUT_KINDS) & set(P.UNRELATED_KINDS)
        assert sum(ch.scale_invariant for _, ch in chans) == 6
    assert {k for _, k in P.benchmark_roles()}.isdisjoint(P.HELD_OUT_KINDS)
