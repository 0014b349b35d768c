"""Denoisers: ``forward(z_noisy [B, L, D], angles [B, L], tokens [B, T] | None) -> v̂ [B, L, D]``.

    net = build_denoiser("dpd", "tiny")                      # MeLoDy's dual-path network
    net = build_denoiser("unet", "tiny")                     # parameter-matched 1-D U-Net
    net = build_denoiser("unet", "tiny_compute")             # U-Net as fast as tiny DPD (10 s, CPU)
    net = build_denoiser("dpd", "micro", rnn_type="gru")     # preset + config overrides

Presets: ``micro`` (unit tests; builds in milliseconds), ``tiny`` (CPU; D = 16, 625-frame latents,
~125 tokens per clip), ``paper`` (MeLoDy's sizes), ``paper_micro`` (the paper's code paths at
micro widths, 24 kHz latents). Token ids are in ``[0, vocab_size)``; rows of
``NULL_TOKEN`` (−1), or ``tokens=None``, select the learned null embedding (classifier-free guidance).
See docs/denoisers.md.
"""
from __future__ import annotations

from torch import nn

from ..registry import Registry
from .conditioning import NULL_TOKEN
from .dpd import DPD, DPDConfig, overlap_add, sandglass_widths, segment
from .metrics import DEFAULT_METRIC_ANGLES, single_pass_metrics
from .unet import UNet1D, UNetConfig

DPD_PRESETS: dict[str, DPDConfig] = {
    "micro": DPDConfig(latent_dim=8, width=32, num_blocks=2, segment_size=8, heads=2, ffn_mult=2,
                       vocab_size=32, angle_base_dim=16),
    # GRU fine path: at tiny size the input-gated SRU (rnn_type="sru_linear", ffn_mult=5) trained
    # to a worse denoiser in the same wall time (issue 13's retrain: velocity MSE 0.0756 after
    # 7,000 steps vs 0.0615 after 8,000; FAD features 194 vs 143), so by issue 15's rule (the
    # fastest fine path at equal or better quality) the tiny preset stays GRU; docs/denoisers.md
    "tiny": DPDConfig(latent_dim=16, width=128, num_blocks=4, segment_size=32, heads=4, ffn_mult=4,
                      rnn_type="gru", vocab_size=256),
    "paper": DPDConfig(latent_dim=16, width=768, num_blocks=8, segment_size=64, heads=12,
                       ffn_mult=4, coarse_layers=2, rnn_hidden=768, vocab_size=1024,
                       cross_attention="position", rnn_type="sru"),
    # the paper preset's code paths (SRU fine path, per-position cross-attention, 2 RoFormer
    # layers, state = width) at micro widths
    "paper_micro": DPDConfig(latent_dim=16, width=32, num_blocks=2, segment_size=8, heads=2,
                             ffn_mult=2, coarse_layers=2, rnn_hidden=32, vocab_size=16,
                             angle_base_dim=16, cross_attention="position", rnn_type="sru"),
}
UNET_PRESETS: dict[str, UNetConfig] = {
    "micro": UNetConfig(latent_dim=8, channels=(16, 32), attention_levels=(False, True),
                        blocks_per_level=1, cond_dim=32, heads=2, ffn_mult=2, vocab_size=32,
                        angle_base_dim=16),
    "tiny": UNetConfig(latent_dim=16, channels=(48, 64, 96), attention_levels=(False, True, True),
                       blocks_per_level=2, cond_dim=64, heads=4, ffn_mult=2, vocab_size=256),
    # the same forward time as tiny DPD at 10 s of latent on the CPU of docs/denoisers.md
    "tiny_compute": UNetConfig(latent_dim=16, channels=(48, 80, 112),
                               attention_levels=(False, True, True), blocks_per_level=2,
                               cond_dim=64, heads=4, ffn_mult=2, vocab_size=256),
    "paper": UNetConfig(latent_dim=16, channels=(256, 512, 768, 1024),
                        attention_levels=(False, False, True, True), blocks_per_level=2,
                        cond_dim=768, heads=8, ffn_mult=4, vocab_size=1024),
    "paper_micro": UNetConfig(latent_dim=16, channels=(16, 32), attention_levels=(False, True),
                              blocks_per_level=1, cond_dim=32, heads=2, ffn_mult=2, vocab_size=16,
                              angle_base_dim=16),
}

DENOISERS: Registry = Registry("denoiser")
DENOISERS.register("dpd", config=DPDConfig, presets=DPD_PRESETS)(DPD)
DENOISERS.register("unet", config=UNetConfig, presets=UNET_PRESETS)(UNet1D)
PRESETS = DENOISERS.presets  # {"dpd": {"micro": DPDConfig(...), ...}, "unet": {...}}


def denoiser_config(name: str, preset: str = "tiny", **overrides) -> DPDConfig | UNetConfig:
    """The config of denoiser ``name`` at ``preset`` with field ``overrides``."""
    return DENOISERS.config(name, preset, **overrides)


def build_denoiser(name: str, preset: str = "tiny", **overrides) -> nn.Module:
    """A freshly initialised denoiser ``name`` (``dpd`` | ``unet``) at ``preset``."""
    return DENOISERS.build(name, preset, **overrides)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


__all__ = ["DEFAULT_METRIC_ANGLES", "DENOISERS", "DPD", "DPDConfig", "NULL_TOKEN", "PRESETS",
           "UNet1D", "UNetConfig", "build_denoiser", "count_parameters", "denoiser_config",
           "overlap_add", "sandglass_widths", "segment", "single_pass_metrics"]
