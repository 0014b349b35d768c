"""Angle maths: noising and velocity are a rotation of (z, ε); the inverse maps undo it exactly."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from melody_lab.diffusion import add_noise, predict_clean, predict_noise, velocity_target


def _draw(seed: int, shape=(2, 5, 3), dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    z = torch.rand(shape, generator=g, dtype=dtype) * 2 - 1
    noise = torch.randn(shape, generator=g, dtype=dtype)
    delta = torch.rand(shape[:-1], generator=g, dtype=dtype) * (math.pi / 2)
    return z, noise, delta


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_inverse_maps_recover_clean_latent_and_noise(seed):
    z, noise, delta = _draw(seed)
    z_delta = add_noise(z, noise, delta)
    v = velocity_target(z, noise, delta)
    torch.testing.assert_close(predict_clean(z_delta, v, delta), z, rtol=0, atol=1e-12)
    torch.testing.assert_close(predict_noise(z_delta, v, delta), noise, rtol=0, atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_noising_is_a_rotation_so_it_preserves_energy(seed):
    z, noise, delta = _draw(seed)
    z_delta, v = add_noise(z, noise, delta), velocity_target(z, noise, delta)
    torch.testing.assert_close(z_delta**2 + v**2, z**2 + noise**2, rtol=0, atol=1e-12)


def test_formulas_written_out():
    z, noise, delta = _draw(1)
    c, s = torch.cos(delta)[..., None], torch.sin(delta)[..., None]
    torch.testing.assert_close(add_noise(z, noise, delta), c * z + s * noise)
    torch.testing.assert_close(velocity_target(z, noise, delta), c * noise - s * z)
    torch.testing.assert_close(predict_clean(z, noise, delta), c * z - s * noise)
    torch.testing.assert_close(predict_noise(z, noise, delta), s * z + c * noise)


def test_velocity_is_the_derivative_of_the_noisy_latent_along_the_angle():
    z, noise, delta = _draw(2)
    delta = delta.clone().requires_grad_(True)
    (add_noise(z, noise, delta) * torch.ones_like(z)).sum().backward()
    torch.testing.assert_close(delta.grad, velocity_target(z, noise, delta.detach()).sum(-1))


def test_endpoints_zero_is_clean_and_half_pi_is_noise():
    z, noise, _ = _draw(3)
    assert torch.equal(add_noise(z, noise, 0.0), z)
    assert torch.equal(velocity_target(z, noise, 0.0), noise)
    torch.testing.assert_close(add_noise(z, noise, math.pi / 2), noise, rtol=0, atol=1e-15)
    torch.testing.assert_close(velocity_target(z, noise, math.pi / 2), -z, rtol=0, atol=1e-15)


def test_per_frame_angles_broadcast_over_latent_dims_only():
    z, noise, delta = _draw(4, shape=(2, 6, 4))
    out = add_noise(z, noise, delta)
    for b in range(2):
        for frame in range(6):
            expected = add_noise(z[b, frame], noise[b, frame], delta[b, frame].item())
            torch.testing.assert_close(out[b, frame], expected)


def test_scalar_and_zero_dim_angles_mean_the_same_angle_everywhere():
    z, noise, _ = _draw(5)
    full = torch.full(z.shape[:-1], 0.7, dtype=z.dtype)
    assert torch.equal(add_noise(z, noise, 0.7), add_noise(z, noise, full))
    assert torch.equal(add_noise(z, noise, torch.tensor(0.7, dtype=torch.float64)), add_noise(z, noise, full))


def test_result_has_the_latent_dtype():
    z, noise, delta = _draw(6, dtype=torch.float32)
    for fn in (add_noise, velocity_target, predict_clean, predict_noise):
        assert fn(z, noise, delta.double()).dtype == torch.float32


def test_mismatched_angle_shape_is_rejected_with_a_clear_message():
    z, noise, _ = _draw(7)
    with pytest.raises(ValueError, match=r"per-frame angles \[B, L\]"):
        add_noise(z, noise, torch.zeros(2))
