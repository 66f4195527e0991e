from __future__ import annotations

import torch

from diffadapt.diffusion.interpolate import lerp, slerp


def test_slerp_endpoints_exact():
    a, b = torch.randn(1, 3, 8, 8), torch.randn(1, 3, 8, 8)
    assert torch.equal(slerp(a, b, 0.0), a) and torch.equal(slerp(a, b, 1.0), b)


def test_slerp_keeps_the_norm_of_orthogonal_equal_norm_inputs():
    a = torch.zeros(4)
    b = torch.zeros(4)
    a[0], b[1] = 2.0, 2.0
    middle = slerp(a, b, 0.5)
    torch.testing.assert_close(middle.norm(), torch.tensor(2.0))
    assert lerp(a, b, 0.5).norm() < 1.5


def test_slerp_nearly_parallel_is_finite_and_linear():
    a = torch.randn(1, 3, 16, 16)
    b = a * (1 + 1e-9)
    out = slerp(a, b, 0.3)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, lerp(a, b, 0.3))


def test_slerp_matches_formula():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(100, generator=g, dtype=torch.float64), torch.randn(100, generator=g, dtype=torch.float64)
    theta = torch.arccos(torch.dot(a, b) / (a.norm() * b.norm()))
    expected = torch.sin(0.7 * theta) / torch.sin(theta) * a + torch.sin(0.3 * theta) / torch.sin(theta) * b
    torch.testing.assert_close(slerp(a, b, 0.3), expected)
