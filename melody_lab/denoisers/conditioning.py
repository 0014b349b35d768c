"""Conditioning shared by the denoisers: the angle embedding and the semantic-token embedding.

Angle embedding (MeLoDy): two learnable 256-d vectors e_start, e_end are interpolated by the noise
angle δ, then an MLP maps the result to the model width. ``interpolation="cossin"`` (default) uses
``cos δ · e_start + sin δ · e_end`` — the same rotation that mixes latent and noise; ``"slerp"`` is
the true spherical interpolation with t = δ / (π/2), which divides by sin Ω (Ω the angle between the
two vectors) and is therefore ill-conditioned while the two learned vectors are nearly parallel. The
two coincide when e_start ⊥ e_end with equal norms. See docs/denoisers.md.

Semantic tokens: ``tokens [B, T]`` long in ``[0, vocab_size)`` index an embedding table; the value
``NULL_TOKEN`` (−1) selects one extra learned row, the *null embedding*. The MLP then maps every row
to the memory width. A row made only of NULL_TOKEN therefore yields a memory whose entries are all
the same learned vector, so cross-attention returns exactly that vector's value projection and the
time-mean equals it too: the same result as ``tokens=None``, which uses a single null entry. This
is how the sampler batches the conditional and unconditional halves of classifier-free guidance.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..diffusion.guidance import NULL_TOKEN  # −1: the classifier-free-guidance null marker

ANGLE_INTERPOLATIONS = ("cossin", "slerp")


def _mlp(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.SiLU(), nn.Linear(hidden, out_dim))


class AngleEmbedding(nn.Module):
    """angles [...] radians in [0, π/2] -> embedding [..., out_dim]."""

    def __init__(self, out_dim: int, base_dim: int = 256, interpolation: str = "cossin"):
        super().__init__()
        if interpolation not in ANGLE_INTERPOLATIONS:
            raise ValueError(f"angle interpolation {interpolation!r}; choose one of "
                             f"{', '.join(ANGLE_INTERPOLATIONS)}")
        self.interpolation = interpolation
        self.e_start = nn.Parameter(torch.randn(base_dim) / math.sqrt(base_dim))
        self.e_end = nn.Parameter(torch.randn(base_dim) / math.sqrt(base_dim))
        self.mlp = _mlp(base_dim, out_dim, out_dim)

    def interpolate(self, angles: torch.Tensor) -> torch.Tensor:
        """angles [...] -> the interpolated 256-d vector [..., base_dim] (before the MLP)."""
        angles = angles.to(self.e_start.dtype)[..., None]
        if self.interpolation == "cossin":
            return torch.cos(angles) * self.e_start + torch.sin(angles) * self.e_end
        cos_omega = torch.cosine_similarity(self.e_start, self.e_end, dim=0).clamp(-1 + 1e-6, 1 - 1e-6)
        omega = torch.acos(cos_omega)
        t = angles / (math.pi / 2)
        return (torch.sin((1 - t) * omega) * self.e_start
                + torch.sin(t * omega) * self.e_end) / torch.sin(omega)

    def forward(self, angles: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.interpolate(angles))


class TokenEmbedding(nn.Module):
    """Semantic tokens [B, T] (or None) -> memory [B, T', out_dim] for cross-attention.

    ``None`` gives a one-entry memory [B, 1, out_dim] of the null embedding; the caller passes the
    batch size. Values must lie in ``[0, vocab_size)`` or equal ``NULL_TOKEN``.
    """

    def __init__(self, vocab_size: int, out_dim: int):
        super().__init__()
        self.vocab_size = vocab_size
        self.table = nn.Embedding(vocab_size + 1, out_dim)  # last row: the learned null embedding
        self.mlp = _mlp(out_dim, out_dim, out_dim)

    def forward(self, tokens: torch.Tensor | None, batch_size: int) -> torch.Tensor:
        if tokens is None:
            index = torch.full((batch_size, 1), self.vocab_size, device=self.table.weight.device)
        else:
            if tokens.dim() != 2 or tokens.shape[0] != batch_size or tokens.shape[1] == 0:
                raise ValueError(f"tokens must be [B={batch_size}, T>=1] long, got {tuple(tokens.shape)}")
            if tokens.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
                raise TypeError(f"tokens must be an integer tensor, got {tokens.dtype}")
            low, high = int(tokens.min()), int(tokens.max())
            if high >= self.vocab_size or (low < 0 and low != NULL_TOKEN):
                raise ValueError(f"token ids must lie in [0, {self.vocab_size}) or equal NULL_TOKEN="
                                 f"{NULL_TOKEN}; got values in [{low}, {high}]")
            index = torch.where(tokens == NULL_TOKEN, self.vocab_size, tokens.long())
        return self.mlp(self.table(index))


class TokenMemory:
    """What a batch of semantic tokens gives a denoiser: the same for every sampler step of a window.

    ``memory`` [B, T', width] (cross-attention context), ``mean`` [B, width] (its time-mean, for FiLM),
    and a cache of each cross-attention layer's keys/values: :meth:`keys_values` projects the memory
    once per (layer, ``key``) — the caller's key names what else the keys depend on (their rotary
    positions, i.e. the latent length). Built by :meth:`Conditioning.token_memory`; a denoiser's
    ``bind_tokens`` keeps one for a whole sampler window (see diffusion/guidance.py).
    """

    def __init__(self, memory: torch.Tensor):
        self.memory, self.mean = memory, memory.mean(1)
        self._keys_values: dict = {}

    def keys_values(self, attention: nn.Module, k_pos: torch.Tensor, key) -> tuple[torch.Tensor, torch.Tensor]:
        """``attention.context_keys_values(memory, k_pos)`` (k, v [B, heads, T', head_dim]), cached."""
        slot = (id(attention), key)
        if slot not in self._keys_values:
            self._keys_values[slot] = attention.context_keys_values(self.memory, k_pos)
        return self._keys_values[slot]


class TokenBinding:
    """``forward`` and ``bind_tokens`` for a denoiser module with ``self.conditioning`` (a
    :class:`Conditioning`) and ``self._denoise(z_noisy, angles, memory: TokenMemory)``."""

    def forward(self, z_noisy: torch.Tensor, angles: torch.Tensor,
                tokens: "torch.Tensor | TokenMemory | None" = None) -> torch.Tensor:
        """z_noisy [B, L, D], angles [B, L] radians, tokens [B, T] long | None -> v̂ [B, L, D].
        ``tokens`` may also be a :class:`TokenMemory` already built from them (see :meth:`bind_tokens`)."""
        if not isinstance(tokens, TokenMemory):
            tokens = self.conditioning.token_memory(tokens, z_noisy.shape[0])
        return self._denoise(z_noisy, angles, tokens)

    def bind_tokens(self, tokens: torch.Tensor):
        """``velocity(z_noisy, angles)`` with ``tokens`` [B, T] fixed: the token embedding and every
        cross-attention layer's keys/values are computed once, on first use, and reused by all
        later calls (one sampler window). Same values as ``forward(z_noisy, angles, tokens)``; each
        call still goes through ``self(...)``, so module hooks (progress bars) see every step."""
        memory = self.conditioning.token_memory(tokens, tokens.shape[0])
        return lambda z_noisy, angles: self(z_noisy, angles, memory)


class Conditioning(nn.Module):
    """Both conditioning signals of a denoiser.

    ``token_memory(tokens [B, T] | None, batch_size)`` -> :class:`TokenMemory` (memory [B, T', width]
    is the cross-attention context, its time-mean goes into FiLM with the angle embedding);
    ``angle_embedding(angles [B, L])`` -> (per-frame embedding [B, L, width], the embedding of each
    distinct angle [U, width], each frame's index into it [B, L]). A sampler step gives every frame
    the same angle except the known (angle-0) ones, so U is 1 or 2: the MLP — and any per-frame
    projection of ``embedding + memory mean`` — runs on U rows instead of B·L.
    """

    def __init__(self, width: int, vocab_size: int, angle_base_dim: int = 256,
                 angle_interpolation: str = "cossin"):
        super().__init__()
        self.angle = AngleEmbedding(width, angle_base_dim, angle_interpolation)
        self.tokens = TokenEmbedding(vocab_size, width)

    def token_memory(self, tokens: torch.Tensor | None, batch_size: int) -> TokenMemory:
        return TokenMemory(self.tokens(tokens, batch_size))

    def angle_embedding(self, angles: torch.Tensor):
        distinct, index = torch.unique(angles, return_inverse=True)
        per_angle = self.angle(distinct)                                        # [U, width]
        return per_angle[index], per_angle, index

    def forward(self, angles: torch.Tensor, tokens: torch.Tensor | None):
        """(angle_emb [B, L, width], memory [B, T', width], memory_mean [B, width])."""
        memory = self.token_memory(tokens, angles.shape[0])
        return self.angle_embedding(angles)[0], memory.memory, memory.mean


def token_positions(num_tokens: int, length: int, frames_per_unit: float,
                    device: torch.device | None = None) -> torch.Tensor:
    """Centres of ``num_tokens`` tokens spread evenly over ``length`` latent frames, in units of
    ``frames_per_unit`` frames (the query sequence's position unit): float [num_tokens]. Time is
    continuous: frame j spans [j, j + 1).

    Semantic tokens (25 Hz) and latent frames (125 Hz) cover the same audio, so a token's rotary
    position is its centre time on the query axis: cross-attention logits can then depend on the
    time offset between a query and a token, not only on their content.
    """
    centres = (torch.arange(num_tokens, device=device, dtype=torch.float32) + 0.5) * length / num_tokens
    return centres / frames_per_unit
