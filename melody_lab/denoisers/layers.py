"""Building blocks shared by both denoisers: rotary attention, FiLM, a RoFormer block.

RMSNorm and the rotary embedding live in ``melody_lab.nn`` (the semantic LM uses them too).

Shapes: sequences are ``[B, N, C]`` (batch, positions, channels). Rotary positions are *float*
tensors ``[N]`` in a unit the caller chooses, so a query sequence and a key sequence sampled at
different rates (segments vs. 25 Hz semantic tokens) can share one time axis: the attention logit
between a query at position p and a key at position q then depends on p − q only.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..nn import RMSNorm, RotaryEmbedding, apply_rotary

__all__ = ["Attention", "FeedForward", "FiLM", "RMSNorm", "RoFormerBlock", "RotaryEmbedding",
           "apply_rotary"]


class Attention(nn.Module):
    """Multi-head attention with rotary positions on ``F.scaled_dot_product_attention``.

    Self-attention when ``context`` is None, otherwise cross-attention from ``x [B, N, dim]`` to
    ``context [B, M, context_dim]``. ``q_pos [N]`` / ``k_pos [M]`` are float positions on a shared
    axis (None: no rotary for that side's attention, i.e. content-only attention).
    """

    def __init__(self, dim: int, heads: int, context_dim: int | None = None):
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.heads, self.head_dim = heads, dim // heads
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_kv = nn.Linear(context_dim or dim, 2 * dim, bias=False)
        self.to_out = nn.Linear(dim, dim, bias=False)
        self.rotary = RotaryEmbedding(self.head_dim)

    def _split(self, x: torch.Tensor) -> torch.Tensor:  # [B, N, dim] -> [B, heads, N, head_dim]
        return x.unflatten(-1, (self.heads, self.head_dim)).transpose(1, 2)

    def context_keys_values(self, context: torch.Tensor, k_pos: torch.Tensor | None):
        """context [B, M, context_dim] -> (k, v) [B, heads, M, head_dim], k rotated by ``k_pos``.
        Depends on the context only, so a caller may compute it once and pass it as ``keys_values``."""
        k, v = (self._split(t) for t in self.to_kv(context).chunk(2, dim=-1))
        return (k if k_pos is None else apply_rotary(k, *self.rotary(k_pos))), v

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                q_pos: torch.Tensor | None = None, k_pos: torch.Tensor | None = None,
                keys_values: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        q = self._split(self.to_q(x))
        if q_pos is not None:
            q = apply_rotary(q, *self.rotary(q_pos))
        if keys_values is None:
            source, k_pos = (x, q_pos) if context is None else (context, k_pos)
            keys_values = self.context_keys_values(source, None if q_pos is None else k_pos)
        out = F.scaled_dot_product_attention(q, *keys_values)
        return self.to_out(out.transpose(1, 2).flatten(2))


class FiLM(nn.Module):
    """Feature-wise linear modulation: ``x * (1 + scale(c)) + shift(c)``."""

    def __init__(self, cond_dim: int, dim: int):
        super().__init__()
        self.proj = nn.Linear(cond_dim, 2 * dim)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """x [..., dim]; cond [..., cond_dim] broadcastable to x's leading dims."""
        return self.modulate(x, self.proj(cond))

    @staticmethod
    def modulate(x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """Apply precomputed ``params = proj(cond)`` [..., 2·dim] (e.g. computed per frame once and
        then rearranged like x)."""
        scale, shift = params.chunk(2, dim=-1)
        return torch.addcmul(shift, x, 1 + scale)


class FeedForward(nn.Sequential):
    """Position-wise MLP ``dim -> mult·dim -> dim`` with GELU."""

    def __init__(self, dim: int, mult: int = 4):
        super().__init__(nn.Linear(dim, mult * dim), nn.GELU(), nn.Linear(mult * dim, dim))


class RoFormerBlock(nn.Module):
    """Pre-norm transformer layer: rotary self-attention, cross-attention to tokens, feed-forward.

    x [B·G, N, dim] is G sequences per example (DPD: one per merged position inside a segment;
    U-Net: G = 1); memory [B, M, context_dim]. Self-attention runs along N within each sequence.
    Cross-attention, with ``pool_groups=False``, lets all G·N positions of an example query the
    memory as one set (the memory is projected once per example, not G times); with
    ``pool_groups=True`` the G positions sharing an index n are averaged into one query and the
    answer is added to all of them — G times cheaper, and the only part of the DPD coarse path
    whose cost grows with L² × G. q_pos [N], k_pos [M] as in :class:`Attention`.
    """

    def __init__(self, dim: int, heads: int, context_dim: int, ffn_mult: int = 4,
                 pool_groups: bool = False):
        super().__init__()
        self.pool_groups = pool_groups
        self.norm_self, self.norm_cross, self.norm_ffn = RMSNorm(dim), RMSNorm(dim), RMSNorm(dim)
        self.self_attn = Attention(dim, heads)
        self.cross_attn = Attention(dim, heads, context_dim=context_dim)
        self.ffn = FeedForward(dim, ffn_mult)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, q_pos: torch.Tensor,
                k_pos: torch.Tensor, memory_keys_values: tuple | None = None) -> torch.Tensor:
        """``memory_keys_values``: ``cross_attn.context_keys_values(memory, k_pos)`` if precomputed."""
        x = x + self.self_attn(self.norm_self(x), q_pos=q_pos)
        batch, (rows, length, dim) = memory.shape[0], x.shape
        groups = rows // batch
        queries = self.norm_cross(x).reshape(batch, groups, length, dim)
        if self.pool_groups:
            cross = self.cross_attn(queries.mean(1), memory, q_pos=q_pos, k_pos=k_pos,
                                    keys_values=memory_keys_values)[:, None]
        else:
            cross = self.cross_attn(queries.reshape(batch, groups * length, dim), memory,
                                    q_pos=q_pos.repeat(groups), k_pos=k_pos,
                                    keys_values=memory_keys_values)
        x = (x.reshape(batch, groups, length, dim) + cross.reshape(batch, -1, length, dim)).reshape(x.shape)
        return x + self.ffn(self.norm_ffn(x))
