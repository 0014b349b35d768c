"""Gaussian data with its optimal denoiser: the sampler's output distribution approaches the data's."""
import math

import pytest
import torch

from melody_lab.diffusion import (
    GaussianLatents,
    add_noise,
    gaussian_w2,
    get_schedule,
    sample,
    sampler_output_distribution,
    velocity_target,
)

SCHEDULES = [("uniform", {}), ("linear", {}), ("ratio", {"ratio": 3.0}), ("logsnr", {})]
STEPS = [1, 2, 5, 10, 20, 50, 100, 200]


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def data():
    return GaussianLatents.random(dim=16, seed=0)


def relative_error(data, name, params, num_steps):
    """W₂(sampler output, data) / W₂(point mass at the mean, data) = W₂ / √tr Σ."""
    mean, cov = sampler_output_distribution(data, get_schedule(name, **params).angles(num_steps))
    return gaussian_w2(mean, cov, data.mean, data.cov) / math.sqrt(data.cov.trace().item())


def test_optimal_denoiser_matches_the_gaussian_conditioning_formula(data):
    # Independent derivation: E[v | z] = E v + Cov(v, z)·Cov(z)⁻¹·(z − E z), with
    # Cov(v, z) = cs(I − Σ), Cov(z) = c²Σ + s²I, E v = −sμ, E z = cμ.
    z = torch.randn(3, 7, 16, generator=gen(1), dtype=torch.float64)
    angles = torch.rand(3, 7, generator=gen(2), dtype=torch.float64) * (math.pi / 2)
    v_hat = data(z, angles)
    eye = torch.eye(16, dtype=torch.float64)
    for b in range(3):
        for frame in range(7):
            c, s = math.cos(angles[b, frame]), math.sin(angles[b, frame])
            gain = c * s * (eye - data.cov) @ torch.linalg.inv(c**2 * data.cov + s**2 * eye)
            expected = -s * data.mean + gain @ (z[b, frame] - c * data.mean)
            torch.testing.assert_close(v_hat[b, frame], expected, rtol=0, atol=1e-10)


def test_optimal_denoiser_residual_is_orthogonal_to_its_input(data):
    # The orthogonality principle of the best estimator, checked by Monte Carlo at one angle.
    g = gen(3)
    x = data.sample((1, 50000), g)
    noise = torch.randn(x.shape, generator=g, dtype=torch.float64)
    angles = torch.full((1, 50000), 0.6, dtype=torch.float64)
    z = add_noise(x, noise, angles)
    residual = (velocity_target(x, noise, angles) - data(z, angles))[0]
    cross = residual.T @ (z[0] - z[0].mean(0)) / 50000  # ≈ 0 (standard error ≈ 0.005)
    assert residual.mean(0).abs().max().item() < 0.02
    assert cross.abs().max().item() < 0.02


def test_gaussian_w2_known_values():
    eye = torch.eye(4, dtype=torch.float64)
    zero = torch.zeros(4, dtype=torch.float64)
    assert gaussian_w2(zero, eye, zero, eye) == pytest.approx(0.0, abs=1e-7)
    assert gaussian_w2(zero, 0.25 * eye, zero, eye) == pytest.approx(math.sqrt(4) * 0.5)
    shift = torch.tensor([3.0, 4.0, 0.0, 0.0], dtype=torch.float64)
    assert gaussian_w2(shift, eye, zero, eye) == pytest.approx(5.0)
    assert gaussian_w2(zero, 0 * eye, zero, eye) == pytest.approx(2.0)  # point mass: √tr Σ


def test_probed_output_distribution_matches_monte_carlo_of_the_real_sampler():
    data = GaussianLatents.random(dim=16, std_max=0.25, seed=1)  # small enough that the clamp never acts
    angles = get_schedule("linear").angles(10)
    mean, cov = sampler_output_distribution(data, angles)
    n = 16384
    out = sample(data, torch.randn(1, n, 16, generator=gen(4), dtype=torch.float64), angles)[0]
    assert out.abs().max().item() < 1.0
    std = cov.diagonal().sqrt()
    assert ((out.mean(0) - mean).abs() / (std / math.sqrt(n))).max().item() < 5
    cov_se = torch.sqrt((std[:, None] ** 2 * std[None, :] ** 2 + cov**2) / n)
    assert ((torch.cov(out.T) - cov).abs() / cov_se).max().item() < 5


@pytest.mark.parametrize("name,params", SCHEDULES)
def test_unit_variance_data_is_only_shrunk_by_the_product_of_cosines(name, params):
    # For N(0, I) data the optimal velocity is exactly 0, so each step only multiplies z by cos ω:
    # the output is Π cos ω_i · ε. (Equal steps maximise that product: uniform is optimal here.)
    data = GaussianLatents(mean=torch.zeros(4), cov=torch.eye(4))
    noise = torch.randn(2, 5, 4, generator=gen(5), dtype=torch.float64) * 0.3
    steps = get_schedule(name, **params).steps(7)
    out = sample(data, noise, get_schedule(name, **params).angles(7))
    torch.testing.assert_close(out, torch.cos(steps).prod() * noise, rtol=0, atol=1e-12)
    assert torch.cos(steps).prod() <= torch.cos(get_schedule("uniform").steps(7)).prod() + 1e-15


def test_one_step_collapses_to_the_mean(data):
    mean, cov = sampler_output_distribution(data, get_schedule("linear").angles(1))
    torch.testing.assert_close(mean, data.mean, rtol=0, atol=1e-12)
    assert cov.abs().max().item() < 1e-12
    assert relative_error(data, "linear", {}, 1) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("name,params", SCHEDULES)
def test_error_shrinks_as_steps_grow(data, name, params):
    errors = [relative_error(data, name, params, T) for T in STEPS]
    assert all(later < earlier for earlier, later in zip(errors, errors[1:])), errors
    assert errors[-1] < 0.05  # 200 steps
    assert relative_error(data, name, params, 1000) < 0.01


@pytest.mark.parametrize("name,params", [("uniform", {}), ("linear", {}), ("ratio", {"ratio": 3.0})])
def test_ddim_is_first_order_doubling_the_steps_halves_the_error(data, name, params):
    ratio = relative_error(data, name, params, 400) / relative_error(data, name, params, 200)
    assert 0.45 < ratio < 0.55


@pytest.mark.parametrize("num_steps", [5, 10, 20])
def test_linear_schedule_beats_uniform_on_this_toy(data, num_steps):
    # The paper's claim (its Table 4) reproduced where it can be computed exactly.
    assert relative_error(data, "linear", {}, num_steps) < 0.8 * relative_error(data, "uniform", {}, num_steps)
