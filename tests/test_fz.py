"""The FZ engine: exact receptive-field crop, determinism, optimization, the bank's resumability,
the PNG round trip, and parity with the paper's own tool (torch-lucent's ``render_vis``).

All on the seeded random ResNet18 (``random:0``): the pretrained weights cannot be assumed here.
"""
import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T

from rsi_core.anatomy import centre_crop_window, parse_tap, read_taps
from rsi_core.bench import lucent_render
from rsi_core.cache import Cache
from rsi_core.fz import bank as bank_mod
from rsi_core.fz.bank import FZBank
from rsi_core.fz.export import export_pngs
from rsi_core.fz.render import CentreCone, FZSettings, measure, render
from rsi_core.images import MEAN, STD
from rsi_core.models import load_model


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: on a 2-core machine shared with other processes, OpenMP's
    spin-waiting threads made these tests up to 20x slower; one thread never costs more than 2x."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def model():
    return load_model("resnet18", "random:0")


@pytest.fixture(scope="module")
def model64():
    m = load_model("resnet18", "random:0").double()
    m.rsi_weights_id += "-float64"
    return m


def _centre(t):
    return t[:, :, t.shape[2] // 2, t.shape[3] // 2]


# ---------------------------------------------------------------- (a) crop exactness

# 219 ... 236: the sizes lucent's random_scale makes of a 224 image (scale 0.95 ... 1.05, padded)
CROP_TAPS = ["1.1.B", "2.0.I", "2.1.B", "3.1.I"]
SIZES = [219, 224, 225, 230, 236]


@pytest.mark.parametrize("tap", CROP_TAPS)
def test_crop_is_exact_float64(model64, tap):
    """The centre activation (every channel) from the aligned crop equals the full image's."""
    g = torch.Generator().manual_seed(1)
    for n in SIZES:
        window = centre_crop_window(model64, tap, n, n)
        assert window is not None, f"{tap} at {n}: the crop should save work"
        (y0, y1, x0, x1), (cy, cx) = window
        x = torch.randn(2, 3, n, n, generator=g, dtype=torch.float64)
        full = _centre(read_taps(model64, x, [tap])[tap])
        cropped = read_taps(model64, x[:, :, y0:y1, x0:x1], [tap])[tap][:, :, cy, cx]
        err = (full - cropped).abs().max().item()
        assert err <= 1e-9, f"{tap} at {n}x{n}: |full - crop| = {err:.3g}"


@pytest.mark.parametrize("tap", ["1.1.B", "2.1.B", "3.1.I"])
def test_crop_is_exact_float32(model, tap):
    x = torch.randn(2, 3, 230, 230, generator=torch.Generator().manual_seed(2))
    (y0, y1, x0, x1), (cy, cx) = centre_crop_window(model, tap, 230, 230)
    full = _centre(read_taps(model, x, [tap])[tap])
    cropped = read_taps(model, x[:, :, y0:y1, x0:x1], [tap])[tap][:, :, cy, cx]
    scale = full.abs().max().item()
    assert (full - cropped).abs().max().item() <= 1e-4 * scale


@pytest.mark.parametrize("tap, n", [("2.1.B", 224), ("3.1.I", 219)])
def test_crop_gradient_is_exact_and_outside_is_zero(model64, tap, n):
    """What the optimizer sees: the input gradient of a centre neuron is zero outside the crop
    on the full image, and equal inside it."""
    (y0, y1, x0, x1), (cy, cx) = centre_crop_window(model64, tap, n, n)
    x = torch.randn(1, 3, n, n, generator=torch.Generator().manual_seed(3), dtype=torch.float64,
                    requires_grad=True)
    _centre(read_taps(model64, x, [tap])[tap])[0, 5].backward()
    xc = x.detach()[:, :, y0:y1, x0:x1].clone().requires_grad_(True)
    read_taps(model64, xc, [tap])[tap][0, 5, cy, cx].backward()
    inside = torch.zeros_like(x.grad, dtype=torch.bool)
    inside[:, :, y0:y1, x0:x1] = True
    assert x.grad[~inside].abs().max().item() == 0
    assert (x.grad[:, :, y0:y1, x0:x1] - xc.grad).abs().max().item() <= 1e-9 * x.grad.abs().max().item()


def _engine_forward(model, tap, x):
    """What render's forward computes: the image crop, then the block-by-block cone."""
    acts, (iy, ix) = CentreCone(model, tap)(x)
    return acts[:, :, iy, ix]


ALL_TAPS18 = [f"{b}.{k}" for b in ("1.0", "1.1", "2.0", "2.1", "3.0", "3.1", "4.0", "4.1") for k in "IBO"]


@pytest.mark.parametrize("n", [219, 224, 236])
def test_engine_forward_is_exact_for_every_tap_float64(model64, n):
    """The engine's forward (image crop + per-block cone, ``CentreCone``) gives every tap's
    centre activation of the full forward pass, all channels."""
    x = torch.randn(1, 3, n, n, generator=torch.Generator().manual_seed(n), dtype=torch.float64)
    full = read_taps(model64, x, ALL_TAPS18, centre=True)
    for tap in ALL_TAPS18:
        err = (_engine_forward(model64, tap, x) - full[tap]).abs().max().item()
        assert err <= 1e-9, f"{tap} at {n}x{n}: |full - engine| = {err:.3g}"


def test_engine_forward_is_exact_for_bottlenecks():
    """resnet50 (Bottleneck blocks, 1.0 with a downsample branch), float32."""
    m = load_model("resnet50", "random:0")
    taps = ["1.0.I", "1.0.O", "1.2.B", "2.0.I", "2.1.I", "2.3.O", "3.0.B", "3.5.I", "4.0.O", "4.2.B"]
    x = torch.randn(2, 3, 200, 200, generator=torch.Generator().manual_seed(5))
    full = read_taps(m, x, taps, centre=True)
    for tap in taps:
        ref = full[tap]
        err = (_engine_forward(m, tap, x) - ref).abs().max().item()
        assert err <= 1e-4 * max(1.0, ref.abs().max().item()), f"{tap}: {err:.3g}"


@pytest.mark.parametrize("tap", ["3.1.B", "4.0.I", "2.1.I"])
def test_engine_forward_gradient_is_exact(model64, tap):
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(4), dtype=torch.float64,
                    requires_grad=True)
    read_taps(model64, x, [tap], centre=True)[tap][0, 9].backward()
    x2 = x.detach().clone().requires_grad_(True)
    _engine_forward(model64, tap, x2)[0, 9].backward()
    assert (x.grad - x2.grad).abs().max().item() <= 1e-9 * x.grad.abs().max().item()


def test_no_crop_where_it_saves_nothing(model):
    for tap in ("3.1.B", "4.0.B", "4.1.I", "4.1.B"):
        assert centre_crop_window(model, tap, 224, 224) is None, tap
    (y0, y1, x0, x1), _ = centre_crop_window(model, "4.0.I", 224, 224)
    assert (y0, y1, x0, x1) == (0, 202, 0, 202)


# ---------------------------------------------------------------- (b) determinism, crop in render

def test_render_is_deterministic_and_leaves_global_rngs_alone(model):
    settings = FZSettings(steps=3, seed=7)
    torch.manual_seed(11)
    np.random.seed(11)
    a = render(model, "2.0.I", [1, 9], settings, progress=False)
    after = (torch.rand(1), np.random.rand())
    torch.manual_seed(11)
    np.random.seed(11)
    b = render(model, "2.0.I", [1, 9], settings, progress=False)
    assert (torch.rand(1), np.random.rand()) == after  # the caller's RNG streams are untouched
    assert np.array_equal(a["images"], b["images"])
    assert np.array_equal(a["reached"], b["reached"])
    assert a["images"].shape == (2, 224, 224, 3) and a["images"].dtype == np.uint8
    c = render(model, "2.0.I", [1, 9], FZSettings(steps=3, seed=8), progress=False)
    assert not np.array_equal(a["images"], c["images"])


@pytest.mark.parametrize("tap", ["1.1.B", "2.1.I"])
def test_crop_changes_nothing_in_render(model, tap):
    on = render(model, tap, [0, 3], FZSettings(steps=4, crop=True), progress=False)
    off = render(model, tap, [0, 3], FZSettings(steps=4, crop=False), progress=False)
    np.testing.assert_allclose(on["reached"], off["reached"], rtol=1e-4, atol=1e-4)
    # the images agree to within a quantization step almost everywhere
    diff = np.abs(on["images"].astype(int) - off["images"].astype(int))
    assert np.mean(diff <= 1) > 0.99


# ---------------------------------------------------------------- (c) the optimization works

def test_engine_increases_its_objective(model):
    chans = list(range(0, 64, 11))  # 6 channels
    for tap in ("1.1.B", "2.0.I"):
        start = render(model, tap, chans, FZSettings(steps=1), progress=False)["reached"]
        end = render(model, tap, chans, FZSettings(steps=32), progress=False)["reached"]
        assert np.mean(end > start) >= 0.75, f"{tap}: start {start}, end {end}"
        assert np.median(end - start) > 0


# ---------------------------------------------------------------- (d) the bank resumes

def test_bank_resumes_after_an_interrupt(model, tmp_path, monkeypatch):
    tap, chans, settings = "1.1.B", [0, 1, 2, 3, 4, 5], FZSettings(steps=2)
    real = bank_mod.render
    calls = []

    def interrupted(m, t, channels, *a, **k):
        calls.append(list(channels))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(m, t, channels, *a, **k)

    monkeypatch.setattr(bank_mod, "render", interrupted)
    bank = FZBank(model, Cache(tmp_path / "c"), settings, batch_size=2, progress=False)
    with pytest.raises(KeyboardInterrupt):
        bank.ensure({tap: chans})
    assert calls == [[0, 1], [2, 3]]
    assert [bank.cache.path(bank._key(tap, c)).exists() for c in chans] == [True, True] + [False] * 4
    first = {c: bank.cache.load(bank._key(tap, c)) for c in (0, 1)}

    calls.clear()
    monkeypatch.setattr(bank_mod, "render", lambda *a, **k: calls.append(list(a[2])) or real(*a, **k))
    resumed = FZBank(model, Cache(tmp_path / "c"), settings, batch_size=2, progress=False).get(tap, chans)
    assert calls == [[2, 3], [4, 5]]  # only the remaining channels, and the lock was released
    for c in (0, 1):
        assert np.array_equal(resumed["image"][c], first[c]["image"])
    # per-chunk seeds: an interrupted-and-resumed bank equals one that never stopped
    calls.clear()
    clean = FZBank(model, Cache(tmp_path / "clean"), settings, batch_size=2, progress=False).get(tap, chans)
    assert len(calls) == 3
    for k in ("image", "I", "B", "O"):
        assert np.array_equal(resumed[k], clean[k]), k
    calls.clear()
    FZBank(model, Cache(tmp_path / "c"), settings, batch_size=2, progress=False).ensure({tap: chans})
    assert calls == []


# ---------------------------------------------------------------- (e) the PNG round trip

def test_png_round_trip_reproduces_the_bank(model, tmp_path):
    """The paper re-measures every FZ on its saved 8-bit PNG (ToTensor + Normalize, no resize):
    reading the exported PNGs back with torchvision reproduces the values the bank stored."""
    tap, chans = "2.0.B", [4, 11, 30]
    bank = FZBank(model, Cache(tmp_path / "c"), FZSettings(steps=3), batch_size=4, progress=False)
    stored = bank.get(tap, chans)
    export_pngs(bank, tap, chans, tmp_path / "png")
    to_input = T.Compose([T.ToTensor(), T.Normalize(MEAN, STD)])
    pngs = []
    for c in chans:
        with Image.open(tmp_path / "png" / tap / f"ch{c:03d}.png") as im:
            assert im.mode == "RGB" and im.size == (224, 224)
            pngs.append(np.asarray(im))
    pngs = np.stack(pngs)
    assert np.array_equal(pngs, stored["image"])  # lossless
    x = torch.stack([to_input(p) for p in pngs])
    block = parse_tap(tap)[0]
    acts = read_taps(model, x, [f"{block}.{k}" for k in "IBO"], centre=True)
    for k in "IBO":
        np.testing.assert_allclose(acts[f"{block}.{k}"].numpy(), stored[k], rtol=1e-4, atol=1e-5)
    again = measure(model, pngs, block)
    for k in "IBO":
        np.testing.assert_allclose(again[k], stored[k], rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- (f) parity with lucent

def _remeasure(model, tap, images, channels):
    block, kind = parse_tap(tap)
    return measure(model, images, block)[kind][np.arange(len(channels)), channels]


def _quantized(lucent_image):
    return (lucent_image * 255).astype(np.uint8)  # the engine's quantization (render.quantize)


def test_engine_reproduces_lucent_exactly_for_one_channel(model):
    """One channel, no crop: the engine's optimization is lucent's render_vis step for step
    (same parameterization, transform draws, objective, optimizer), to float rounding."""
    tap, channel, steps = "2.1.B", 5, 6
    engine = render(model, tap, [channel], FZSettings(steps=steps, seed=3, crop=False), progress=False)
    lucent = _quantized(lucent_render(model, tap, channel, steps, seed=3))
    diff = np.abs(engine["images"].astype(int) - lucent.astype(int))
    assert diff.max() <= 1 and np.mean(diff == 0) > 0.999, diff.max()


PARITY_STEPS = 48
# jitter 0 with crop, jitter 4 with crop, jitter 16 without crop (3.1.B's window is the image)
PARITY_FZS = [("1.1.B", [3, 17]), ("2.1.B", [5, 120]), ("3.1.B", [100, 150])]
# The noise margin. Lucent against itself (seeds 1, 2, 3; this model; 48 steps), the relative
# seed-to-seed spread of these six re-measured activations is 6 % to 21 % (sd per FZ), so the
# mean relative difference of two independent runs over the six has an sd of about 7 %: a gap
# of -25 % (about 3.5 sd) is a real loss, not noise. (Measured: engine seed 0 against lucent
# seed 1, -7.5 %; lucent seed 2 against lucent seed 1, -13 %.)
PARITY_MARGIN = 0.25


@pytest.mark.slow
def test_parity_with_lucent(model):
    """The paper's tool and the engine on the same objectives (centre neuron of 2 channels of
    1.1.B, 2.1.B, 3.1.B), steps, transforms, parameterization and optimizer; both final images
    quantized and re-measured: the engine's FZs activate their neurons at least as much as
    lucent's, within the noise margin. Independent seeds (engine 0, lucent 1): with equal seeds
    a batch's first element would follow lucent's own trajectory."""
    rows = []
    for tap, chans in PARITY_FZS:
        out = render(model, tap, chans, FZSettings(steps=PARITY_STEPS, seed=0), progress=False)
        engine = _remeasure(model, tap, out["images"], chans)
        lucent = _remeasure(model, tap, np.concatenate(
            [_quantized(lucent_render(model, tap, c, PARITY_STEPS, seed=1)) for c in chans]), chans)
        rows += [(tap, c, e, l) for c, e, l in zip(chans, engine, lucent)]
    table = "\n".join(f"{t} ch{c}: engine {e:.4f} lucent {l:.4f}" for t, c, e, l in rows)
    engine = np.array([r[2] for r in rows])
    lucent = np.array([r[3] for r in rows])
    assert (lucent > 0).all() and (engine > 0).all(), f"an FZ failed to activate its neuron:\n{table}"
    gap = (engine - lucent) / lucent
    print(f"{table}\nmean relative gap {gap.mean():+.1%} (margin -{PARITY_MARGIN:.0%})")
    assert gap.mean() >= -PARITY_MARGIN, f"engine below lucent by {-gap.mean():.1%} on average:\n{table}"


# ---------------------------------------------------------------- the benchmark runs

def test_bench_reports_one_json_line(capsys):
    import json

    from rsi_core import bench

    class Args:
        steps, device, json, batch_size, blocks, taps, threads = 2, "cpu", True, 2, ["1.1"], "IB", None

    assert bench.main(Args()) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out.strip().splitlines()[-1])
    assert set(out["per_tap"]) == {"1.1.I", "1.1.B"} and set(out["per_block"]) == {"1.1"}
    assert out["speedup"] > 0 and out["steps"] == 2 and out["device"] == "cpu"
    assert out["extrapolated_paper_bank"]["fzs"] == 128
    assert "EXTRAPOLATION (not measured)" in captured.err and "lucent s/FZ" in captured.err
