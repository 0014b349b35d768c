"""Denoisers with exact answers, for tests and notebooks: an oracle and a Gaussian toy.

:class:`OracleDenoiser` knows the one clean latent x₀ and returns its true velocity, so every
sampler state must lie exactly on the path z_δ = cos δ·x₀ + sin δ·ε, whatever the schedule and
number of steps. (Check the states, not only the result: the last step, from δ to 0, is
ẑ = cos δ·z − sin δ·v̂ = x₀ from *any* state, so the final latent alone proves little.)

:class:`GaussianLatents`: if every frame of the data is x ~ N(μ, Σ) (D dims, frames independent),
the best possible denoiser is known in closed form. With c = cos δ, s = sin δ and z_δ = c·x + s·ε:

    E[x | z_δ] = μ + c·Σ·(c²Σ + s²I)⁻¹·(z_δ − c·μ)          (a Wiener filter)
    v̂(z_δ)    = E[v | z_δ] = (c·z_δ − E[x | z_δ]) / s        (and 0 at δ = 0)

This denoiser is affine in z, so the whole sampler is an affine map of the starting noise: its
output is *exactly* Gaussian, N(b, A·Aᵀ). :func:`sampler_output_distribution` reads A and b off the
real :func:`~melody_lab.diffusion.sample` with D + 1 probe noises, and :func:`gaussian_w2` measures
how far that is from the data distribution. With infinitely many steps the sampler is the exact
probability-flow ODE and the distance goes to 0; with T steps the remaining distance is purely the
discretisation error of the schedule — the quantity the uniform-vs-linear ablation is about.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .sampler import sample

__all__ = ["OracleDenoiser", "GaussianLatents", "sampler_output_distribution", "gaussian_w2"]


class OracleDenoiser:
    """The exact velocity towards one known clean latent x₀ [B, L, D].

    From z_δ = cos δ·x₀ + sin δ·ε and v = cos δ·ε − sin δ·x₀ it follows that
    v = (cos δ·z_δ − x₀) / sin δ; at δ = 0 (known frames) it returns 0. For a batch of k·B rows
    (the doubled classifier-free-guidance batch) x₀ is repeated k times. Tokens are ignored.
    """

    def __init__(self, x0: torch.Tensor):
        self.x0 = x0

    def __call__(self, z: torch.Tensor, angles: torch.Tensor, tokens: torch.Tensor | None = None) -> torch.Tensor:
        x0 = self.x0.repeat(z.shape[0] // self.x0.shape[0], 1, 1).to(z.dtype)
        angles = angles.to(z.dtype).unsqueeze(-1)
        c, s = torch.cos(angles), torch.sin(angles)
        return torch.where(s > 0, (c * z - x0) / torch.where(s > 0, s, torch.ones_like(s)), torch.zeros_like(z))


@dataclass(eq=False)
class GaussianLatents:
    """Data distribution N(mean, cov) per frame; calling it is the optimal denoiser for that data.

    ``mean`` [D] and ``cov`` [D, D] (symmetric positive semi-definite), float64.
    """

    mean: torch.Tensor
    cov: torch.Tensor

    def __post_init__(self) -> None:
        self.mean = torch.as_tensor(self.mean, dtype=torch.float64)
        self.cov = torch.as_tensor(self.cov, dtype=torch.float64)
        self.eigenvalues, self.eigenvectors = torch.linalg.eigh(self.cov)  # Σ = U diag(λ) Uᵀ
        self.eigenvalues = self.eigenvalues.clamp_min(0.0)

    @classmethod
    def random(
        cls, dim: int = 16, std_min: float = 0.05, std_max: float = 0.5, seed: int = 0
    ) -> "GaussianLatents":
        """A rotated Gaussian whose principal standard deviations are log-spaced in [std_min, std_max]
        and whose mean is uniform in [−0.2, 0.2]^D: roughly the scale of codec latents in [−1, 1]."""
        generator = torch.Generator().manual_seed(seed)
        q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=generator, dtype=torch.float64))
        stds = torch.logspace(math.log10(std_min), math.log10(std_max), dim, dtype=torch.float64)
        mean = 0.4 * torch.rand(dim, generator=generator, dtype=torch.float64) - 0.2
        return cls(mean=mean, cov=q @ torch.diag(stds**2) @ q.T)

    def sample(self, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
        """float64 [*shape, D] draws from the data distribution."""
        eps = torch.randn(*shape, self.mean.numel(), generator=generator, dtype=torch.float64)
        root = self.eigenvectors * self.eigenvalues.sqrt()  # U diag(√λ): a square root of Σ
        return self.mean + eps @ root.T

    def __call__(self, z: torch.Tensor, angles: torch.Tensor, tokens: torch.Tensor | None = None) -> torch.Tensor:
        """The optimal v̂ for z [B, L, D] at per-frame angles [B, L] (tokens are ignored)."""
        dtype = z.dtype
        z, angles = z.to(torch.float64), angles.to(torch.float64).unsqueeze(-1)
        c, s = torch.cos(angles), torch.sin(angles)
        lam, u = self.eigenvalues, self.eigenvectors
        denominator = c**2 * lam + s**2
        gain = torch.where(denominator > 0, c * lam / denominator.clamp_min(1e-300), torch.zeros_like(denominator))
        x_hat = self.mean + ((z - c * self.mean) @ u * gain) @ u.T
        v_hat = torch.where(s > 0, (c * z - x_hat) / s.clamp_min(1e-300), torch.zeros_like(z))
        return v_hat.to(dtype)


def sampler_output_distribution(
    data: GaussianLatents, angles: torch.Tensor, probe_scale: float = 0.1
) -> tuple[torch.Tensor, torch.Tensor]:
    """The exact output distribution N(b, A·Aᵀ) of ``sample(data, ε, angles)``, ε ~ N(0, I).

    Runs the real sampler once (float64) on D + 1 probe noises, 0 and ``probe_scale``·e_i, and reads
    off b = out(0) and the columns of A = (out(probe_scale·e_i) − b)/probe_scale. The probes are small
    so the final clamp to [−1, 1] stays inactive. Returns (mean b [D], covariance A·Aᵀ [D, D]).
    """
    dim = data.mean.numel()
    probes = torch.cat([torch.zeros(1, dim), probe_scale * torch.eye(dim)]).to(torch.float64)
    out = sample(data, probes.unsqueeze(1), angles)[:, 0]  # [D + 1, D]: frames of one-frame latents
    if bool((out.abs() >= 1).any()):
        raise ValueError("a probe output reached the clamp: use a smaller probe_scale")
    b = out[0]
    a = (out[1:] - b).T / probe_scale  # column i = response to e_i
    return b, a @ a.T


def _psd_sqrt(matrix: torch.Tensor) -> torch.Tensor:
    eigenvalues, eigenvectors = torch.linalg.eigh((matrix + matrix.T) / 2)
    return (eigenvectors * eigenvalues.clamp_min(0.0).sqrt()) @ eigenvectors.T


def gaussian_w2(mean1: torch.Tensor, cov1: torch.Tensor, mean2: torch.Tensor, cov2: torch.Tensor) -> float:
    """Wasserstein-2 distance between N(mean1, cov1) and N(mean2, cov2) (same units as the latent):
    W₂² = |m₁ − m₂|² + tr(C₁ + C₂ − 2·(C₂^½ C₁ C₂^½)^½)."""
    root2 = _psd_sqrt(cov2)
    cross = _psd_sqrt(root2 @ cov1 @ root2)
    squared = (mean1 - mean2).pow(2).sum() + torch.trace(cov1 + cov2 - 2 * cross)
    return float(squared.clamp_min(0.0).sqrt())
