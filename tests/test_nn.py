"""The shared building blocks of melody_lab.nn."""
from __future__ import annotations

import pytest
import torch

from melody_lab.nn import RMSNorm


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(3, 7, 16), (2, 625, 64), (5, 1)])
def test_rms_norm_is_the_textbook_formula_bit_for_bit(dtype, shape):
    """The fused call equals x * rsqrt(mean(x²) + eps) * g exactly, values and gradients."""
    torch.manual_seed(0)
    norm = RMSNorm(shape[-1]).to(dtype)
    with torch.no_grad():
        norm.weight.copy_(torch.randn(shape[-1], dtype=dtype))
    x = (torch.randn(shape, dtype=dtype) * 3).requires_grad_()
    reference = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + norm.eps) * norm.weight
    out = norm(x)
    assert out.dtype == dtype and torch.equal(out, reference)
    grads = torch.autograd.grad(out.square().sum(), (x, norm.weight))
    expected = torch.autograd.grad(reference.square().sum(), (x, norm.weight))
    for got, want in zip(grads, expected):
        torch.testing.assert_close(got, want, rtol=1e-6 if dtype == torch.float32 else 1e-12, atol=0)
    # a row of zeros stays finite (eps), and scaling a row does not change its output
    zeros = norm(torch.zeros(1, shape[-1], dtype=dtype))
    assert torch.isfinite(zeros).all() and not zeros.any()
    y = torch.randn(4, shape[-1], dtype=dtype) + 1
    torch.testing.assert_close(norm(y * 10), norm(y), rtol=1e-5, atol=1e-6)
