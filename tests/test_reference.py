"""rsi's own image parameter and warps against the paper's tool, bit for bit: torch-lucent 0.1.8's
decorrelated Fourier image and kornia 0.4.1's ``translate`` / ``get_rotation_matrix2d`` +
``warp_affine`` (the ``[reference]`` extra; skipped with the reason where it is not installed).
The whole loop against lucent's ``render_vis`` is ``test_fz.test_engine_reproduces_lucent_exactly_for_one_channel``."""
import numpy as np
import pytest
import torch

from rsi_core.fz import transform
from rsi_core.fz.bench import lucent, lucent_image_parameter
from rsi_core.fz.image import COLOUR, image_parameter
from rsi_core.fz.render import element_streams

pytestmark = [pytest.mark.reference, pytest.mark.usefixtures("one_thread")]


def test_the_colour_matrix_is_lucents():
    assert COLOUR.dtype == np.float32
    assert np.array_equal(COLOUR, lucent("lucent.optvis.param.color").color_correlation_normalized)


@pytest.mark.parametrize("size, batch", [(224, 1), (224, 3), (63, 2)])  # an odd side keeps one more bin
def test_image_parameter_is_lucents_bit_for_bit(size, batch):
    """Same images and same gradients: the optimization then follows the same path."""
    init, _ = element_streams(2, "2.1.B", range(batch), size=size) if size % 2 == 0 else \
        (torch.randn(batch, 3, size, size // 2 + 2, 2, generator=torch.Generator().manual_seed(3)) * 0.01, None)
    (mine,), mine_f = image_parameter(torch.device("cpu"), init, size)
    (ref,), ref_f = lucent_image_parameter("cpu", init, size)
    a, b = mine_f(), ref_f()
    assert a.shape == (batch, 3, size, size) and torch.equal(a, b)
    weights = torch.rand(a.shape, generator=torch.Generator().manual_seed(4))
    (a * weights).sum().backward()
    (b * weights).sum().backward()
    assert torch.equal(mine.grad, ref.grad)


@pytest.mark.parametrize("n", [219, 224, 231, 236, 256])  # scaled sides, and a padded side (224 + 2 * 16)
def test_rotation_is_kornia_041s_bit_for_bit(n):
    kornia = lucent("kornia")
    x = torch.rand(len(transform.ANGLES), 3, n, n, generator=torch.Generator().manual_seed(n))
    b = len(transform.ANGLES)
    centre = torch.full((b, 2), (n - 1) / 2)
    m = kornia.get_rotation_matrix2d(centre, torch.tensor(transform.ANGLES, dtype=torch.float32), torch.ones(b, 2))
    assert torch.equal(transform._rotation(transform.ANGLES, n)[:, :2], m)
    assert torch.equal(transform._rotate(x, transform.ANGLES), kornia.warp_affine(x, m, dsize=(n, n)))


@pytest.mark.parametrize("n", [224, 232, 256])
def test_translation_is_kornia_041s_bit_for_bit(n):
    kornia = lucent("kornia")
    shifts = [(dx, dy) for dx in range(0, 16, 3) for dy in range(0, 16, 5)]
    x = torch.rand(len(shifts), 3, n, n, generator=torch.Generator().manual_seed(n), requires_grad=True)
    mine = transform._translate(x, shifts)
    ref = kornia.translate(x, torch.tensor(shifts, dtype=torch.float32))
    assert torch.equal(mine, ref)
    w = torch.rand(mine.shape, generator=torch.Generator().manual_seed(1))
    assert torch.equal(*(torch.autograd.grad((y * w).sum(), x)[0] for y in (mine, ref)))


@pytest.mark.parametrize("jitter", [0, 4, 16])
def test_the_transform_chain_is_lucents_bit_for_bit(jitter):
    """``apply`` with an element's draws equals lucent's own transform list driven by the same
    generator (``bench.transforms_for`` + ``bench.lucent_draws``)."""
    from rsi_core.fz.bench import lucent_draws, transforms_for

    x = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(jitter))
    draws = transform.Draws.run([np.random.default_rng(jitter)], jitter, 5)
    chain = transforms_for(jitter)
    with lucent_draws(np.random.default_rng(jitter)):
        for s in range(5):
            ref = x
            for t in chain:
                ref = t(ref)
            (_, mine), = transform.apply(x, draws.step(s), jitter)
            assert torch.equal(mine, ref), f"step {s}"
