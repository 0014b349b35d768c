"""Codec training losses: multi-resolution STFT, feature matching, least-squares GAN, KL.

Paper weights (defaults in ``CodecTrainConfig``): 50·MR-STFT + 20·feature matching + 1·LSGAN +
0.005·KL. Discriminator outputs are lists (one per sub-discriminator) of (score, features).
"""
from __future__ import annotations

import torch

from .metrics import stft_distance


def mr_stft_loss(reference: torch.Tensor, estimate: torch.Tensor, n_ffts: tuple[int, ...]) -> torch.Tensor:
    """Multi-resolution STFT magnitude loss (scalar): mean over resolutions of SC + log-mag L1.

    Spectral convergence is taken over the whole batch (so a silent crop cannot blow it up).
    """
    total = 0.0
    for n_fft in n_ffts:
        _, log_l1 = stft_distance(reference, estimate, n_fft)
        x, y = reference.reshape(1, -1), estimate.reshape(1, -1)
        sc, _ = stft_distance(x, y, n_fft)
        total = total + sc.mean() + log_l1.mean()
    return total / len(n_ffts)


def feature_matching_loss(real_outputs, fake_outputs) -> torch.Tensor:
    """Mean over all discriminator layers of L1(features(real) − features(fake))."""
    losses = [(r.detach() - f).abs().mean()
              for (_, real_feats), (_, fake_feats) in zip(real_outputs, fake_outputs)
              for r, f in zip(real_feats, fake_feats)]
    return sum(losses) / len(losses)


def lsgan_generator_loss(fake_outputs) -> torch.Tensor:
    """Σ over sub-discriminators of mean (D(fake) − 1)², divided by their number."""
    return sum((score - 1).pow(2).mean() for score, _ in fake_outputs) / len(fake_outputs)


def lsgan_discriminator_loss(real_outputs, fake_outputs) -> torch.Tensor:
    """Mean over sub-discriminators of mean (D(real) − 1)² + mean D(fake)²."""
    losses = [(r - 1).pow(2).mean() + f.pow(2).mean()
              for (r, _), (f, _) in zip(real_outputs, fake_outputs)]
    return sum(losses) / len(losses)


def gaussian_kl(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) ‖ N(0, 1)), mean per element."""
    return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).mean()
