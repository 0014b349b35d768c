"""A micro DPD and a micro U-Net can memorise a handful of noisy latents (loss falls 10×)."""
import math

import pytest
import torch

from melody_lab.denoisers import build_denoiser
from melody_lab.diffusion.angles import add_noise, velocity_target


@pytest.mark.parametrize("name, overrides", [
    ("dpd", {}), ("dpd", {"rnn_type": "sru_linear"}), ("dpd", {"rnn_type": "sru_linear", "rnn_recurrence": "scan"}),
    ("dpd", {"rnn_type": "gru"}), ("unet", {})])
def test_micro_denoiser_overfits_a_handful_of_latents(name, overrides):
    """Every fine path of the DPD (micro default ``sru``, ``sru_linear`` loop / scan, ``gru``) too."""
    torch.manual_seed(0)
    model = build_denoiser(name, "micro", **overrides)
    g = torch.Generator().manual_seed(1)
    z = torch.rand(4, 32, 8, generator=g) * 2 - 1
    noise = torch.randn(z.shape, generator=g)
    angles = torch.rand(4, 32, generator=g) * math.pi / 2
    tokens = torch.randint(0, 32, (4, 6), generator=g)
    z_noisy, target = add_noise(z, noise, angles), velocity_target(z, noise, angles)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(150):
        loss = (model(z_noisy, angles, tokens) - target).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert min(losses[-10:]) < losses[0] / 10, f"{name} {overrides}: loss {losses[0]:.3f} -> {losses[-1]:.3f}"
