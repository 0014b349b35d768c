"""MeLoDy's dual-path diffusion network (DPD): z_δ [B, L, D], angles [B, L], tokens -> v̂ [B, L, D].

    z_δ ─ Linear(D→H) + angle emb ─ RMSNorm ─ segment (K, hop K/2) ─┐  [B, S, K, H]
      ┌──────────────────────────────────────────────────────────────┘
      │ N × dual-path block:
      │   coarse: mean-merge K → K_i positions, RoFormer along the S segments (rotary self-attention
      │           + cross-attention to the token memory, by default one query per segment),
      │           repeat the change back to K positions, add, RMSNorm
      │   fine:   2-layer bidirectional SRU (or GRU) along the K positions of each segment,
      │           FiLM(angle emb + mean token emb), add, RMSNorm
      └─ overlap-add ─ RMSNorm ─ Linear(H→D) ─ v̂

The merge widths K_i form a "sandglass" (wide at the ends, narrow in the middle, see
:func:`sandglass_widths`): the coarse path attends over S ∝ L segments, so narrowing it keeps the
quadratic part small and the network's cost close to linear in L.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..config import Config
from .conditioning import Conditioning, TokenBinding, TokenMemory, token_positions
from .layers import FiLM, RMSNorm, RoFormerBlock
from .sru import build_bidirectional_rnn


@dataclass
class DPDConfig(Config):
    latent_dim: int = 16
    width: int = 128                      # H
    num_blocks: int = 4                   # N
    segment_size: int = 32                # K (hop K/2); even
    merge_widths: tuple[int, ...] = ()    # K_i per block, each dividing K; () = sandglass_widths
    coarse_layers: int = 1                # RoFormer layers per coarse path
    cross_attention: str = "segment"      # "segment": one query per segment | "position": per K_i
    heads: int = 4
    ffn_mult: int = 4
    rnn_type: str = "sru"                 # fine path: "sru" (the paper's) | "sru_linear" | "gru"
    rnn_recurrence: str = "loop"          # how "sru_linear" runs c_t: "loop" | "scan" (parallel)
    rnn_layers: int = 2
    rnn_hidden: int = 0                   # state size per direction; 0 = width // 2
    vocab_size: int = 256                 # semantic-token vocabulary (NULL_TOKEN is extra)
    angle_base_dim: int = 256
    angle_interpolation: str = "cossin"   # "cossin" | "slerp"

    def resolved_merge_widths(self) -> tuple[int, ...]:
        widths = tuple(self.merge_widths) or sandglass_widths(self.segment_size, self.num_blocks)
        if len(widths) != self.num_blocks:
            raise ValueError(f"merge_widths has {len(widths)} entries for {self.num_blocks} blocks")
        if self.cross_attention not in ("segment", "position"):
            raise ValueError(f"cross_attention {self.cross_attention!r}; choose segment or position")
        if self.segment_size % 2 or any(self.segment_size % k for k in widths):
            raise ValueError(f"segment_size {self.segment_size} must be even and divisible by every "
                             f"merge width {widths}")
        return widths


def sandglass_widths(segment_size: int, num_blocks: int) -> tuple[int, ...]:
    """K_i = K / 2^(d+2), d = the block's distance to the nearer end, floored at 1.

    K = 64, N = 8 -> (16, 8, 4, 2, 2, 4, 8, 16); K = 32, N = 4 -> (8, 4, 4, 8).
    """
    return tuple(max(1, segment_size >> (min(i, num_blocks - 1 - i) + 2)) for i in range(num_blocks))


def segment(x: torch.Tensor, size: int) -> torch.Tensor:
    """Half-overlapping segments: x [B, L, C] -> [B, S, size, C], hop = size/2.

    x is zero-padded by one hop on the left and by one hop plus up to hop−1 frames on the right, so
    every real frame lies in exactly two segments and S = ceil(L / hop) + 1.
    """
    hop = size // 2
    length = x.shape[1]
    right = hop + (-length) % hop
    padded = nn.functional.pad(x, (0, 0, hop, right))
    return padded.unfold(1, size, hop).transpose(2, 3)


def overlap_add(segments: torch.Tensor, length: int) -> torch.Tensor:
    """Inverse of :func:`segment`: [B, S, K, C] -> [B, length, C], averaging the two copies of
    each frame (so ``overlap_add(segment(x, K), L) == x`` exactly)."""
    batch, count, size, channels = segments.shape
    hop = size // 2
    first, second = segments[:, :, :hop], segments[:, :, hop:]
    # hop-block j of the padded signal = first half of segment j + second half of segment j−1
    zero = first.new_zeros(batch, 1, hop, channels)
    blocks = torch.cat([first, zero], 1) + torch.cat([zero, second], 1)
    return blocks.flatten(1, 2)[:, hop:hop + length] * 0.5


class DualPathBlock(nn.Module):
    """One coarse + fine pass over segments [B, S, K, H]."""

    def __init__(self, cfg: DPDConfig, merge_width: int):
        super().__init__()
        h = cfg.width
        self.merge_width = merge_width
        self.coarse = nn.ModuleList(
            RoFormerBlock(h, cfg.heads, h, cfg.ffn_mult, pool_groups=cfg.cross_attention == "segment")
            for _ in range(cfg.coarse_layers))
        self.coarse_norm = RMSNorm(h)
        hidden = cfg.rnn_hidden or h // 2
        self.rnn = build_bidirectional_rnn(cfg.rnn_type, h, hidden, cfg.rnn_layers, cfg.rnn_recurrence)
        self.rnn_out = nn.Linear(2 * hidden, h)
        self.film = FiLM(h, h)
        self.fine_norm = RMSNorm(h)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, frame_index: torch.Tensor,
                memory: TokenMemory, q_pos: torch.Tensor, k_pos: torch.Tensor) -> torch.Tensor:
        """x [B, S, K, H]; cond [B, U, H]: the FiLM input for each of the U distinct angles, and
        frame_index [B, L] picks each frame's one; memory: the tokens' :class:`TokenMemory`;
        q_pos [S]; k_pos [T].

        FiLM's projection runs once per distinct angle (not per frame, nor per segment position),
        and its result is then spread to the frames and segmented like x."""
        b, s, k, h = x.shape
        kw = self.merge_width
        merged = x.unflatten(2, (kw, k // kw)).mean(3)                 # [B, S, K_i, H]
        seq = merged.transpose(1, 2).reshape(b * kw, s, h)             # along segments
        out = seq
        for layer in self.coarse:
            keys_values = memory.keys_values(layer.cross_attn, k_pos, key=q_pos.numel())
            out = layer(out, memory.memory, q_pos, k_pos, keys_values)
        delta = (out - seq).reshape(b, kw, s, h).transpose(1, 2)       # [B, S, K_i, H]
        x = self.coarse_norm((x.unflatten(2, (kw, k // kw)) + delta[:, :, :, None]).flatten(2, 3))

        fine = self.rnn_out(self.rnn(x.reshape(b * s, k, h))).reshape(b, s, k, h)
        film = self.film.proj(cond)                                   # [B, U, 2H]
        film_params = segment(film[torch.arange(b, device=x.device)[:, None], frame_index], k)
        return self.fine_norm(x + FiLM.modulate(fine, film_params))   # film_params [B, S, K, 2H]


class DPD(TokenBinding, nn.Module):
    """The dual-path denoiser; see the module docstring. ``DPD(DPDConfig(...))``."""

    def __init__(self, cfg: DPDConfig):
        super().__init__()
        self.config = cfg
        h = cfg.width
        self.conditioning = Conditioning(h, cfg.vocab_size, cfg.angle_base_dim, cfg.angle_interpolation)
        self.in_proj = nn.Linear(cfg.latent_dim, h)
        self.in_norm = RMSNorm(h)
        self.blocks = nn.ModuleList(DualPathBlock(cfg, kw) for kw in cfg.resolved_merge_widths())
        self.out_norm = RMSNorm(h)
        self.out_proj = nn.Linear(h, cfg.latent_dim)

    def _denoise(self, z_noisy: torch.Tensor, angles: torch.Tensor, memory: TokenMemory) -> torch.Tensor:
        """``forward`` (from :class:`TokenBinding`) with the tokens already embedded (batch B)."""
        _, length, _ = z_noisy.shape
        size = self.config.segment_size
        angle_emb, per_angle, frame_index = self.conditioning.angle_embedding(angles)
        x = self.in_norm(self.in_proj(z_noisy) + angle_emb)
        segments = segment(x, size)
        cond = per_angle[None] + memory.mean[:, None, :]                 # [B, U, H]
        q_pos = torch.arange(segments.shape[1], device=x.device, dtype=torch.float32)
        k_pos = token_positions(memory.memory.shape[1], length, size // 2, device=x.device)
        for block in self.blocks:
            segments = block(segments, cond, frame_index, memory, q_pos, k_pos)
        return self.out_proj(self.out_norm(overlap_add(segments, length)))
