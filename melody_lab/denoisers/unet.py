"""A plain 1-D diffusion U-Net, the baseline MeLoDy compares its DPD against.

    z_δ [B, L, D] ─ Conv1d ─ level 0 ─ ↓2 ─ level 1 ─ ↓2 … ─ middle ─ … ↑2 ─ level 0 ─ Conv1d ─ v̂
                              │ skips ─────────────────────────────────────┘
Each level: residual conv blocks whose second half is modulated (FiLM after GroupNorm) by the
per-frame angle embedding plus the mean token embedding, average-pooled to that level's resolution;
at the levels flagged in ``attention_levels`` (the coarse ones) each residual block is followed by a
RoFormer block: rotary self-attention along time and cross-attention to the semantic-token memory.
L is zero-padded on the right to a multiple of 2^(levels − 1) and the output cropped back.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import Config
from .conditioning import Conditioning, TokenBinding, TokenMemory, token_positions
from .layers import FiLM, RoFormerBlock


@dataclass
class UNetConfig(Config):
    latent_dim: int = 16
    channels: tuple[int, ...] = (64, 128, 256)          # width per level (level i: L / 2^i frames)
    attention_levels: tuple[bool, ...] = (False, True, True)
    blocks_per_level: int = 2
    cond_dim: int = 128                                   # angle / token embedding width
    heads: int = 4
    ffn_mult: int = 2
    kernel_size: int = 3
    vocab_size: int = 256
    angle_base_dim: int = 256
    angle_interpolation: str = "cossin"


def _group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(8, channels), channels)


class ResBlock(nn.Module):
    """x [B, C_in, N], cond [B, N, cond_dim] -> [B, C_out, N]."""

    def __init__(self, c_in: int, c_out: int, cond_dim: int, kernel_size: int):
        super().__init__()
        pad = kernel_size // 2
        self.norm1, self.conv1 = _group_norm(c_in), nn.Conv1d(c_in, c_out, kernel_size, padding=pad)
        self.norm2, self.conv2 = _group_norm(c_out), nn.Conv1d(c_out, c_out, kernel_size, padding=pad)
        self.film = FiLM(cond_dim, c_out)
        self.skip = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.film(self.norm2(h).transpose(1, 2), cond).transpose(1, 2)
        return self.skip(x) + self.conv2(F.silu(h))


class Stage(nn.Module):
    """A residual block, optionally followed by a RoFormer block (self + cross-attention)."""

    def __init__(self, c_in: int, c_out: int, cfg: UNetConfig, attention: bool):
        super().__init__()
        self.res = ResBlock(c_in, c_out, cfg.cond_dim, cfg.kernel_size)
        self.attn = RoFormerBlock(c_out, cfg.heads, cfg.cond_dim, cfg.ffn_mult) if attention else None

    def forward(self, x, cond, memory: TokenMemory, q_pos, k_pos):
        x = self.res(x, cond)
        if self.attn is not None:
            keys_values = memory.keys_values(self.attn.cross_attn, k_pos, key=q_pos.numel())
            x = self.attn(x.transpose(1, 2), memory.memory, q_pos, k_pos, keys_values).transpose(1, 2)
        return x


class UNet1D(TokenBinding, nn.Module):
    """``UNet1D(UNetConfig(...))``: forward(z_noisy [B, L, D], angles [B, L], tokens) -> [B, L, D]."""

    def __init__(self, cfg: UNetConfig):
        super().__init__()
        if len(cfg.attention_levels) != len(cfg.channels):
            raise ValueError("attention_levels needs one flag per entry of channels")
        self.config = cfg
        ch, attn, n = cfg.channels, cfg.attention_levels, cfg.blocks_per_level
        self.conditioning = Conditioning(cfg.cond_dim, cfg.vocab_size, cfg.angle_base_dim,
                                         cfg.angle_interpolation)
        self.in_conv = nn.Conv1d(cfg.latent_dim, ch[0], cfg.kernel_size, padding=cfg.kernel_size // 2)
        self.down, self.downsample, skip_channels = nn.ModuleList(), nn.ModuleList(), [ch[0]]
        c = ch[0]
        for level, width in enumerate(ch):
            for _ in range(n):
                self.down.append(Stage(c, width, cfg, attn[level]))
                c = width
                skip_channels.append(c)
            if level < len(ch) - 1:
                self.downsample.append(nn.Conv1d(c, c, 3, stride=2, padding=1))
                skip_channels.append(c)
        self.middle = nn.ModuleList([Stage(c, c, cfg, True), Stage(c, c, cfg, False)])
        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for level in reversed(range(len(ch))):
            for _ in range(n + 1):
                self.up.append(Stage(c + skip_channels.pop(), ch[level], cfg, attn[level]))
                c = ch[level]
            if level > 0:
                self.upsample.append(nn.Conv1d(c, c, 3, padding=1))
        self.out = nn.Sequential(_group_norm(c), nn.SiLU(), nn.Conv1d(c, cfg.latent_dim, 3, padding=1))

    def _denoise(self, z_noisy: torch.Tensor, angles: torch.Tensor, memory: TokenMemory) -> torch.Tensor:
        """:meth:`forward` (from :class:`TokenBinding`) with the tokens already embedded."""
        length = z_noisy.shape[1]
        levels, n = len(self.config.channels), self.config.blocks_per_level
        factor = 2 ** (levels - 1)
        angle_emb = self.conditioning.angle_embedding(angles)[0]
        pad = (-length) % factor
        cond = F.pad((angle_emb + memory.mean[:, None]).transpose(1, 2), (0, pad), mode="replicate")
        conds, positions = [], []
        for level in range(levels):  # per level: FiLM input [B, N_l, E] and rotary positions
            conds.append(F.avg_pool1d(cond, 2 ** level).transpose(1, 2))
            n_frames = conds[-1].shape[1]
            q_pos = torch.arange(n_frames, device=z_noisy.device, dtype=torch.float32) + 0.5
            positions.append((q_pos, token_positions(memory.memory.shape[1], length, 2 ** level,
                                                       z_noisy.device)))

        def run(stage, x, level):
            return stage(x, conds[level], memory, *positions[level])

        x = self.in_conv(F.pad(z_noisy.transpose(1, 2), (0, pad)))
        skips, stages = [x], iter(self.down)
        for level in range(levels):
            for _ in range(n):
                x = run(next(stages), x, level)
                skips.append(x)
            if level < levels - 1:
                x = self.downsample[level](x)
                skips.append(x)
        for stage in self.middle:
            x = run(stage, x, levels - 1)
        stages = iter(self.up)
        for i, level in enumerate(reversed(range(levels))):
            for _ in range(n + 1):
                x = run(next(stages), torch.cat([x, skips.pop()], dim=1), level)
            if level > 0:
                x = self.upsample[i](F.interpolate(x, scale_factor=2.0, mode="nearest"))
        return self.out(x)[:, :, :length].transpose(1, 2)
