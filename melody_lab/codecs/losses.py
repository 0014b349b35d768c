"""Codec training losses: multi-resolution STFT, feature matching, least-squares GAN, KL.

Paper weights (defaults in ``CodecTrainConfig``): 50·MR-STFT + 20·feature matching + 1·LSGAN +
0.005·KL. Discriminator outputs are lists (one per sub-discriminator) of (score, features).

Two loss sets, chosen by name (:class:`CodecLoss`, ``CodecTrainConfig.loss``):

* ``"sc_logmag"`` (micro/tiny): reconstruction = mean over resolutions of spectral convergence +
  log-magnitude L1 (window n_fft); FM and GAN terms are *averaged* over sub-discriminators;
* ``"paper_exact"`` (paper): reconstruction = Σ over resolutions of linear-magnitude L1 (window
  n_fft/2, hop n_fft/4); FM and GAN terms are *summed* over sub-discriminators (and FM over their
  layers, as in HiFi-GAN), so the paper's weights balance the terms as the paper's do.
"""
from __future__ import annotations

import torch

from ..audio import stft_magnitude
from ..errors import UserError
from .metrics import stft_distance

LOSS_KINDS = ("sc_logmag", "paper_exact")


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


def mr_stft_l1_loss(reference: torch.Tensor, estimate: torch.Tensor,
                    n_ffts: tuple[int, ...]) -> torch.Tensor:
    """The paper's reconstruction loss (scalar): Σ over resolutions of mean |‖Y‖ − ‖X‖|.

    Linear STFT magnitudes (not normalised), Hann window of ``n_fft/2`` samples zero-padded to
    ``n_fft``, hop ``n_fft/4``; the mean runs over batch, bins and frames of each resolution.
    """
    total = 0.0
    for n_fft in n_ffts:
        x = stft_magnitude(reference, n_fft, n_fft // 4, win_length=n_fft // 2)
        y = stft_magnitude(estimate, n_fft, n_fft // 4, win_length=n_fft // 2)
        total = total + (y - x).abs().mean()
    return total


def _reduce(losses: list[torch.Tensor], how: str) -> torch.Tensor:
    if how not in ("mean", "sum"):
        raise ValueError(f"reduction must be mean or sum, got {how!r}")
    return sum(losses) / len(losses) if how == "mean" else sum(losses)


def feature_matching_loss(real_outputs, fake_outputs, reduction: str = "mean") -> torch.Tensor:
    """L1(features(real) − features(fake)), one mean per layer of each sub-discriminator.

    ``reduction="mean"`` averages those over all layers; ``"sum"`` adds them (HiFi-GAN's form).
    """
    losses = [(r.detach() - f).abs().mean()
              for (_, real_feats), (_, fake_feats) in zip(real_outputs, fake_outputs)
              for r, f in zip(real_feats, fake_feats)]
    return _reduce(losses, reduction)


def lsgan_generator_loss(fake_outputs, reduction: str = "mean") -> torch.Tensor:
    """mean (D(fake) − 1)² per sub-discriminator, averaged (``"mean"``) or summed (``"sum"``)."""
    return _reduce([(score - 1).pow(2).mean() for score, _ in fake_outputs], reduction)


def lsgan_discriminator_loss(real_outputs, fake_outputs, reduction: str = "mean") -> torch.Tensor:
    """mean (D(real) − 1)² + mean D(fake)² per sub-discriminator, averaged or summed."""
    losses = [(r - 1).pow(2).mean() + f.pow(2).mean()
              for (r, _), (f, _) in zip(real_outputs, fake_outputs)]
    return _reduce(losses, reduction)


class CodecLoss:
    """The codec training losses of one loss set (``"sc_logmag"`` or ``"paper_exact"``)."""

    def __init__(self, kind: str):
        if kind not in LOSS_KINDS:
            raise UserError(f"unknown codec loss {kind!r}; choose one of: {', '.join(LOSS_KINDS)}")
        self.kind = kind
        self.reduction = "sum" if kind == "paper_exact" else "mean"

    def reconstruction(self, reference: torch.Tensor, estimate: torch.Tensor,
                       n_ffts: tuple[int, ...]) -> torch.Tensor:
        fn = mr_stft_l1_loss if self.kind == "paper_exact" else mr_stft_loss
        return fn(reference, estimate, n_ffts)

    def generator(self, real_outputs, fake_outputs) -> tuple[torch.Tensor, torch.Tensor]:
        """(LSGAN generator loss, feature-matching loss)."""
        return (lsgan_generator_loss(fake_outputs, self.reduction),
                feature_matching_loss(real_outputs, fake_outputs, self.reduction))

    def discriminator(self, real_outputs, fake_outputs) -> torch.Tensor:
        return lsgan_discriminator_loss(real_outputs, fake_outputs, self.reduction)


def gaussian_kl(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) ‖ N(0, 1)), mean per element."""
    return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).mean()
