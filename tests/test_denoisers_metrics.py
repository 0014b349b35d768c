"""Single-pass denoising metrics: exact values for an oracle and a zero predictor."""
import math

import pytest
import torch
from torch import nn

from melody_lab.denoisers import build_denoiser, single_pass_metrics
from melody_lab.audio import si_sdr


def si_snr(estimate, reference):  # melody_lab.audio.si_sdr in this file's argument order
    return si_sdr(reference, estimate)


class ZeroVelocity(nn.Module):
    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, z_noisy, angles, tokens=None):
        return torch.zeros_like(z_noisy)


class Oracle(ZeroVelocity):
    """Knows the clean latents, so returns the true velocity v = (z_δ cos δ − z) / sin δ."""

    def __init__(self, clean):
        super().__init__()
        self.clean, self.offset = clean, 0

    def forward(self, z_noisy, angles, tokens=None):
        z = self.clean[self.offset:self.offset + z_noisy.shape[0]]
        self.offset = (self.offset + z_noisy.shape[0]) % self.clean.shape[0]
        cos, sin = angles.cos()[..., None], angles.sin()[..., None]
        return (cos * z_noisy - z) / sin


def latents(n=6, length=40, dim=8):
    return torch.randn(n, length, dim, generator=torch.Generator().manual_seed(3))


def test_si_snr_is_scale_invariant_and_known_for_a_simple_case():
    g = torch.Generator().manual_seed(0)
    ref = torch.randn(2, 4000, generator=g)
    noisy = ref + 0.1 * torch.randn(2, 4000, generator=g)
    torch.testing.assert_close(si_snr(3 * noisy, ref), si_snr(noisy, ref))
    torch.testing.assert_close(si_snr(noisy, ref), torch.full((2,), 20.0), atol=0.5, rtol=0)


def test_zero_velocity_gives_no_improvement_and_velocity_mse_near_one():
    z = latents()
    result = single_pass_metrics(ZeroVelocity(), z, batch_size=4)
    assert abs(result["si_snri_db"]) < 1e-4  # ẑ = cos δ · z_δ: a rescaled z_δ, same SI-SNR
    assert result["velocity_mse"] == pytest.approx(1.0, abs=0.1)  # E v² = 1 for unit-variance z
    assert len([k for k in result if k.startswith("si_snri_db@")]) == 5


def test_oracle_gives_zero_velocity_error_and_a_large_improvement():
    z = latents()
    result = single_pass_metrics(Oracle(z), z, batch_size=6, angles=(math.pi / 4,))
    assert result["velocity_mse"] < 1e-10
    assert result["si_snri_db"] > 40


def test_metrics_are_deterministic_whatever_the_batch_size_and_restore_train_mode():
    torch.manual_seed(0)
    model = build_denoiser("dpd", "micro").train()
    z, tokens = latents(5, 24), torch.randint(0, 32, (5, 4))
    a = single_pass_metrics(model, z, tokens, batch_size=2)
    b = single_pass_metrics(model, z, tokens, batch_size=5)
    assert model.training
    assert a.keys() == b.keys()
    for key in a:
        assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6)
    assert single_pass_metrics(model, z, tokens, seed=1)["velocity_mse"] != a["velocity_mse"]
