"""The batched FZ step (CUDA's default), checked on the CPU: the run's draws made up front are
numpy's own, the batched transforms are each element's own chain to float rounding, a batched
render is the element-by-element one to float rounding, and a batched step neither reads
anything back from the device nor makes tensors from host data."""
import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import _disable_current_modes

from rsi_core.fz import render as fz_render
from rsi_core.fz.render import FZSettings, render
from rsi_core.fz.transform import ANGLES, SCALES, BatchedChain, Draws, apply
from rsi_core.model.device import host_waits

pytestmark = pytest.mark.usefixtures("one_thread")


def lucents_draws(rng, jitter: int, steps: int) -> list[list]:
    """What lucent's transforms draw, one ``choice`` at a time, in its order."""
    out = []
    for _ in range(steps):
        step = [rng.choice(jitter), rng.choice(jitter)] if jitter >= 4 else []
        step += [rng.choice(SCALES), rng.choice(ANGLES)]
        out.append(step + ([rng.choice(jitter // 2), rng.choice(jitter // 2)] if jitter >= 4 else []))
    return out


def as_lists(draws: Draws, n: int) -> list[list]:
    return [([*d["shift"]] if "shift" in d else []) + [d["scale"], d["angle"]] + ([*d["shift2"]] if "shift2" in d else [])
            for d in (draws.step(s)[n] for s in range(draws.scale.shape[0]))]


@pytest.mark.parametrize("jitter", [0, 4, 16])
def test_draws_up_front_are_numpys_one_at_a_time(jitter):
    seeds = range(40)
    draws = Draws.run([np.random.default_rng(s) for s in seeds], jitter, 300)
    for n, s in enumerate(seeds):
        assert as_lists(draws, n) == lucents_draws(np.random.default_rng(s), jitter, 300)
    half_used = np.random.default_rng(5)
    half_used.integers(0, 7)  # one 32-bit half of a 64-bit output left waiting in the generator
    expected = np.random.default_rng(5)
    expected.integers(0, 7)
    assert as_lists(Draws.run([half_used], jitter, 50), 0) == lucents_draws(expected, jitter, 50)


def _generator_whose_next_output_is(out: int) -> np.random.Generator:
    """A PCG64 generator whose next 64-bit output is ``out`` (its step inverted)."""
    mult, inc, hi = (2549297995355413924 << 64) + 4865540595714422341, (0x5851F42D4C957F2D << 1) | 1, 0x0123456789ABCDEF
    rot = hi >> 58
    lo = hi ^ (((out << rot) | (out >> (64 - rot))) & (2 ** 64 - 1))
    previous = ((((hi << 64) | lo) - inc) * pow(mult, -1, 2 ** 128)) % 2 ** 128
    bits = np.random.PCG64()
    bits.state = {"bit_generator": "PCG64", "state": {"state": previous, "inc": inc}, "has_uint32": 0, "uinteger": 0}
    return np.random.Generator(bits)


def test_a_draw_numpy_rejects_is_drawn_again_as_numpy_does():
    """A low half of 0 makes numpy reject choice(5) and use the next 32 bits (here 3, where the
    rejected bits alone would give 0)."""
    out = 3_000_000_000 << 32
    reference = lucents_draws(_generator_whose_next_output_is(out), 0, 20)
    assert reference[0][0] == SCALES[3]
    assert as_lists(Draws.run([np.random.default_rng(1), _generator_whose_next_output_is(out)], 0, 20), 1) == reference


@pytest.mark.parametrize("jitter", [0, 4, 16])
def test_batched_chain_is_each_elements_own_chain(jitter):
    """Every element's transformed image and input gradient: the batched chain against ``apply``
    on that element alone, for every step's draws (all five scales occur)."""
    n, steps = 12, 3
    draws = Draws.run([np.random.default_rng(100 + k) for k in range(n)], jitter, steps)
    assert len(np.unique(draws.scale)) == len(SCALES)
    chain = BatchedChain(draws, "cpu")
    for s in range(steps):
        x = torch.rand(n, 3, 224, 224, requires_grad=True)
        groups = chain(x, s)
        assert sum(hi - lo for _, lo, hi, _ in groups) == n
        order = chain.perm[s].tolist()
        weights = {}
        for _, lo, hi, images in groups:
            for row, element in enumerate(order[lo:hi]):
                (_, alone), = apply(x[element:element + 1], draws.step(s)[element:element + 1], jitter)
                torch.testing.assert_close(images[row:row + 1], alone, rtol=0, atol=1e-6)
                weights[element] = torch.rand_like(alone)
        got, = torch.autograd.grad(sum((images[row:row + 1] * weights[e]).sum() for _, lo, hi, images in groups
                                       for row, e in enumerate(order[lo:hi])), x)
        expected, = torch.autograd.grad(sum((apply(x[e:e + 1], draws.step(s)[e:e + 1], jitter)[0][1] * w).sum()
                                            for e, w in weights.items()), x)
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("tap, settings", [
    ("1.1.B", FZSettings(steps=2)),                                # jitter 0, cone
    ("2.1.B", FZSettings(steps=2)),                                # jitter 4, cone
    ("4.0.I", FZSettings(steps=2)),                                # jitter 16, cone
    ("2.0.B", FZSettings(steps=2, crop=False)),                    # jitter 0, the model's own forward
    ("3.1.I", FZSettings(steps=2, crop=False)),                    # jitter 4
    ("2.0.I", FZSettings(steps=2, target="as-run")),
    ("2.1.I", FZSettings(steps=2, objective="channel")),
])
def test_batched_render_is_the_element_by_element_one(model, tap, settings):
    """Two steps (Adam turns rounding into visible differences within tens of steps: on CUDA the
    batched FZs are not the CPU's bit for bit, docs/gpu.md)."""
    channels = list(range(9))
    one_by_one = render(model, tap, channels, settings, progress=False)
    batched = render(model, tap, channels, settings, progress=False, batched=True)
    np.testing.assert_allclose(batched["reached"], one_by_one["reached"], rtol=1e-4, atol=1e-5)
    diff = np.abs(batched["images"].astype(int) - one_by_one["images"].astype(int))
    assert diff.max() <= 1 and np.mean(diff == 0) > 0.99


def _waits_of_a_render(model, monkeypatch, steps: int, batched: bool) -> int:
    """Host waits of a whole render, Adam's own update left out: its step counter lives on the
    CPU even on CUDA (torch's default), so reading it waits for nothing."""
    # the class the render instantiates: torch hooks ``step`` onto it at its first instance, so a
    # patch of torch.optim.Adam alone would miss it once any earlier render in the process ran
    update = fz_render.Adam.step

    def step_uncounted(self, *args, **kwargs):
        with _disable_current_modes():
            return update(self, *args, **kwargs)
    monkeypatch.setattr(fz_render.Adam, "step", step_uncounted)
    with host_waits("cpu") as waits:
        render(model, "2.1.B", list(range(6)), FZSettings(steps=steps), progress=False, batched=batched)
    return len(waits)


def test_a_batched_step_never_waits_for_the_device(model, monkeypatch):
    """Whatever a batched render reads back or uploads, it does so before or after its steps:
    more steps, no more host waits. The element-by-element path waits in every step. One render
    first fills the process's cache of warp matrices (a few distinct draws, built once on the
    host: ``transform._warp_matrix``), which would otherwise count in whichever render runs first."""
    _waits_of_a_render(model, monkeypatch, 5, True)
    assert _waits_of_a_render(model, monkeypatch, 5, True) == _waits_of_a_render(model, monkeypatch, 2, True)
    assert _waits_of_a_render(model, monkeypatch, 5, False) > _waits_of_a_render(model, monkeypatch, 2, False) + 3 * 6
