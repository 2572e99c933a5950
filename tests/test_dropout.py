"""Dropout masks from random bits (funcs/dropout.py) against a reference computed bit by bit, and their statistics."""

import math

import pytest
import torch

from funcs import dropout


def reference_keep_mask(n: int, keep: float, generator: torch.Generator) -> torch.Tensor:
    """The same draws split into 16-bit integers by shifts (little-endian order), one comparison each."""
    draws = torch.empty((n + 3) // 4, dtype=torch.int64).random_(-(1 << 63), (1 << 63) - 1, generator=generator)
    out = []
    for value in draws.tolist():
        for j in range(4):
            chunk = (value >> (16 * j)) & 0xFFFF
            out.append(chunk - (1 << 16) if chunk >= 1 << 15 else chunk)  # as a signed 16-bit integer
    threshold = round(keep * (1 << 16)) - (1 << 15)
    return torch.tensor([v < threshold for v in out[:n]])


@pytest.mark.parametrize("shape", [(3, 5), (16, 784), (7,)])
def test_keep_mask_matches_the_bit_by_bit_reference(shape):
    n = math.prod(shape)
    got = dropout.keep_mask(shape, 0.7, generator=torch.Generator().manual_seed(3))
    want = reference_keep_mask(n, 0.7, torch.Generator().manual_seed(3)).view(shape)
    assert got.shape == shape and got.dtype == torch.bool and torch.equal(got, want)


@pytest.mark.parametrize("keep", [0.5, 0.7, 0.8, 0.999, 1.0, 0.0])
def test_keep_rate_is_the_probability_asked_for(keep):
    n = 400_000
    kept = dropout.keep_mask((n,), keep, generator=torch.Generator().manual_seed(0)).double().mean().item()
    sigma = math.sqrt(keep * (1 - keep) / n) + 2 ** -17  # sampling noise plus the 16-bit resolution
    assert abs(kept - keep) < 5 * sigma


def test_entries_of_one_draw_are_independent():
    """The four 16-bit parts of a 64-bit draw, and neighbouring draws: P(both kept) = keep^2."""
    keep, n = 0.7, 400_000
    m = dropout.keep_mask((n, 4), keep, generator=torch.Generator().manual_seed(1)).double()
    for a, b in [(0, 1), (1, 2), (2, 3), (0, 3)]:
        assert abs((m[:, a] * m[:, b]).mean().item() - keep ** 2) < 5 * math.sqrt(keep ** 2 / n)
    assert abs((m[:-1, 3] * m[1:, 0]).mean().item() - keep ** 2) < 5 * math.sqrt(keep ** 2 / n)


def test_mask_is_none_without_dropout_and_float_zero_one_otherwise():
    assert dropout.mask((4, 5), 0.0) is None
    m = dropout.mask((4, 5), 0.3)
    assert m.dtype == torch.float32 and set(m.unique().tolist()) <= {0.0, 1.0}


def test_dropout_module_scales_kept_entries_and_passes_gradients_through_the_same_mask():
    layer = dropout.Dropout(0.25)
    x = torch.rand(64, 50, dtype=torch.float64) + 0.5
    torch.manual_seed(0)
    y = layer(x.requires_grad_())
    kept = y != 0
    assert torch.allclose(y[kept], x.detach()[kept] / 0.75) and 0.6 < kept.double().mean() < 0.9
    y.sum().backward()
    assert torch.allclose(x.grad, kept.double() / 0.75)  # d(sum y)/dx: the scaled mask, by autograd
    layer.eval()
    assert layer(x) is x  # evaluation: no dropout


def test_dropout_module_refuses_a_probability_of_one():
    with pytest.raises(ValueError, match="not in"):
        dropout.Dropout(1.0)
