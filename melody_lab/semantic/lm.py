"""The semantic LM: a compact LLaMA-style decoder (RMSNorm, rotary positions, SwiGLU).

Sequence: ``[m_1 … m_L ; s_1 … s_T]`` — ``L`` MuLan RVQ codes (level ``l``'s code ``c`` has its own
embedding row ``V + l·K + c``, after the ``V`` semantic tokens) followed by semantic tokens. The
output head predicts only semantic tokens (``V`` logits), and the loss covers only the positions
that predict ``s_1 … s_T`` (the last MuLan position predicts ``s_1``).

Sampling is KV-cached (per layer a buffer of ``prompt + new`` positions written in place; the
rotary tables are computed once per model), with temperature and top-k, from a seeded
``torch.Generator``.
Long outputs use a sliding window: the MuLan prefix stays, and only the last ``window`` semantic
tokens are kept as context, so positions never exceed ``L + max_tokens`` (what was trained).

Classifier-free guidance (our addition; MusicGen-style, the paper guides only the diffusion side):
with ``cond_dropout > 0`` the model owns a learnt *null prefix* ``[levels, dim]`` that replaces the
MuLan prefix embeddings of a training sequence with probability ``cond_dropout``. Sampling with
``guidance = w ≠ 1`` runs each sequence twice in one batch, with its prefix and with the null
prefix, and samples from ``uncond + w · (cond − uncond)`` logits; ``w = 1`` is plain sampling.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import Config
from ..errors import UserError
from ..nn import RMSNorm, RotaryEmbedding, apply_rotary
from ..registry import Registry


@dataclass
class SemanticLMConfig(Config):
    semantic_vocab: int = 256
    mulan_levels: int = 12
    mulan_codebook_size: int = 64
    dim: int = 192
    num_layers: int = 4
    num_heads: int = 6
    mlp_hidden: int = 512
    max_tokens: int = 125  # semantic tokens per training sequence (5 s at 25 Hz)
    dropout: float = 0.1
    rope_base: float = 10000.0
    cond_dropout: float = 0.0  # P(MuLan prefix → learnt null prefix) per training sequence (CFG);
    #                            0: no null prefix, sampling with guidance ≠ 1 is refused


LM_PRESETS = {
    "micro": SemanticLMConfig(semantic_vocab=16, mulan_levels=4, mulan_codebook_size=8, dim=64,
                              num_layers=2, num_heads=4, mlp_hidden=128, max_tokens=50, dropout=0.0,
                              cond_dropout=0.1),
    "tiny": SemanticLMConfig(cond_dropout=0.1),
    # Paper: 429.5M parameters, 10 s targets (250 tokens), vocab 1024, 12 × 1024 MuLan codes.
    "paper": SemanticLMConfig(semantic_vocab=1024, mulan_codebook_size=1024, dim=1536,
                              num_layers=15, num_heads=16, mlp_hidden=3840, max_tokens=250,
                              cond_dropout=0.1),
    # 2-s targets (50 tokens), 12 MuLan levels as in the paper, micro widths
    "paper_micro": SemanticLMConfig(semantic_vocab=16, mulan_levels=12, mulan_codebook_size=8,
                                    dim=64, num_layers=2, num_heads=4, mlp_hidden=128,
                                    max_tokens=50, dropout=0.0, cond_dropout=0.1),
}


class KVCache:
    """One layer's keys/values of a sampling run: ``[B, heads, capacity, head_dim]`` buffers
    allocated at the first write and filled in place (no copy of what is already cached)."""

    def __init__(self, capacity: int):
        self.capacity, self.length = capacity, 0
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write ``k, v [B, heads, S, head_dim]`` after what is cached → views of all so far."""
        end = self.length + k.shape[2]
        if end > self.capacity:
            raise ValueError(f"KV cache of {self.capacity} positions cannot hold {end}")
        if self.k is None:
            self.k = k.new_empty(*k.shape[:2], self.capacity, k.shape[3])
            self.v = v.new_empty(*v.shape[:2], self.capacity, v.shape[3])
        self.k[:, :, self.length:end] = k
        self.v[:, :, self.length:end] = v
        self.length = end
        return self.k[:, :, :end], self.v[:, :, :end]


class Block(nn.Module):
    def __init__(self, c: SemanticLMConfig):
        super().__init__()
        self.heads, self.dropout = c.num_heads, c.dropout
        self.attn_norm, self.mlp_norm = RMSNorm(c.dim), RMSNorm(c.dim)
        self.qkv = nn.Linear(c.dim, 3 * c.dim, bias=False)
        self.out = nn.Linear(c.dim, c.dim, bias=False)
        self.gate_up = nn.Linear(c.dim, 2 * c.mlp_hidden, bias=False)
        self.down = nn.Linear(c.mlp_hidden, c.dim, bias=False)

    def _drop(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(x, self.dropout, True) if self.training and self.dropout else x

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                cache: KVCache | None = None) -> torch.Tensor:
        """``x [B, S, dim]`` with the rotary tables ``cos, sin [S, head_dim]`` of its positions;
        ``cache`` holds the keys/values so far (and gets these)."""
        b, s, d = x.shape
        qkv = self.qkv(self.attn_norm(x)).view(b, s, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        qk = apply_rotary(qkv[:2], cos, sin)  # q and k in one pass: [2, B, heads, S, head_dim]
        q, k, v = qk[0], qk[1], qkv[2]
        if cache is not None:
            k, v = cache.append(k, v)
        causal = s > 1 and (cache is None or k.shape[2] == s)
        if s > 1 and not causal:
            raise ValueError("several new tokens with a non-empty cache are not supported")
        h = F.scaled_dot_product_attention(q, k, v, is_causal=causal,
                                           dropout_p=self.dropout if self.training else 0.0)
        x = x + self._drop(self.out(h.transpose(1, 2).reshape(b, s, d)))
        gate, up = self.gate_up(self.mlp_norm(x)).chunk(2, dim=-1)
        return x + self._drop(self.down(F.silu(gate) * up))


class SemanticLM(nn.Module):
    """Decoder over ``[MuLan codes ; semantic tokens]`` (see module docstring)."""

    def __init__(self, cfg: SemanticLMConfig):
        super().__init__()
        if not 0.0 <= cfg.cond_dropout < 1.0:
            raise UserError(f"cond_dropout must lie in [0, 1), got {cfg.cond_dropout}")
        self.config = cfg
        c = cfg
        self.embed = nn.Embedding(c.semantic_vocab + c.mulan_levels * c.mulan_codebook_size, c.dim)
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.num_layers))
        self.norm = RMSNorm(c.dim)
        self.head = nn.Linear(c.dim, c.semantic_vocab, bias=False)
        self.apply(self._init)
        self.rotary = RotaryEmbedding(c.dim // c.num_heads, c.rope_base)
        self._rotary_tables(c.mulan_levels + c.max_tokens)  # every position sampling reaches
        if c.cond_dropout > 0:  # its own fixed stream: the global RNG (the other weights and
            #                     whatever is drawn after building the model) is left untouched
            null = torch.empty(c.mulan_levels, c.dim).normal_(
                std=0.02, generator=torch.Generator().manual_seed(0))
            self.null_prefix = nn.Parameter(null)  # [levels, dim], replaces the prefix embeddings

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def prefix_ids(self, mulan_codes: torch.Tensor) -> torch.Tensor:
        """MuLan codes ``[B, levels]`` → embedding ids ``[B, levels]`` (per-level offsets)."""
        c = self.config
        if mulan_codes.shape[-1] != c.mulan_levels:
            raise UserError(f"expected {c.mulan_levels} MuLan codes per prompt, "
                            f"got {mulan_codes.shape[-1]}")
        if mulan_codes.min() < 0 or mulan_codes.max() >= c.mulan_codebook_size:
            raise UserError(f"MuLan codes must lie in [0, {c.mulan_codebook_size})")
        levels = torch.arange(c.mulan_levels, device=mulan_codes.device)
        return c.semantic_vocab + levels * c.mulan_codebook_size + mulan_codes.long()

    def _rotary_tables(self, length: int) -> None:
        """(Re)build the rotary ``cos, sin [length, head_dim]`` of positions ``0 … length − 1``."""
        with torch.inference_mode(False):  # plain tensors, even when grown under inference_mode
            cos, sin = self.rotary(torch.arange(length, device=self.rotary.inv_freq.device))
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)

    def new_cache(self, capacity: int) -> list[KVCache]:
        """An empty KV cache (one per layer) for ``capacity`` positions, for :meth:`forward`."""
        return [KVCache(capacity) for _ in self.blocks]

    @property
    def has_null_prefix(self) -> bool:
        """Whether the model was built for classifier-free guidance (``cond_dropout > 0``)."""
        return hasattr(self, "null_prefix")

    def forward(self, ids: torch.Tensor, start: int = 0, cache: list[KVCache] | None = None,
                null: torch.Tensor | None = None) -> torch.Tensor:
        """Embedding ids ``[B, S]`` at positions ``start …`` → semantic logits ``[B, S, V]``.

        ``null [B]`` (bool): sequences whose MuLan prefix (positions ``0 … levels − 1``, so only
        with ``start == 0``) is replaced by the learnt null prefix.
        """
        x = self.embed(ids)
        if null is not None:
            levels = self.config.mulan_levels
            if start != 0 or ids.shape[1] < levels or not self.has_null_prefix:
                raise ValueError("null needs the whole MuLan prefix (start 0) and a null prefix")
            prefix = torch.where(null[:, None, None], self.null_prefix.to(x.dtype), x[:, :levels])
            x = torch.cat([prefix, x[:, levels:]], dim=1)
        end = start + ids.shape[1]
        if end > len(self.rope_cos):  # longer than sampling goes (a probe, a test): grow once
            self._rotary_tables(end)
        cos, sin = self.rope_cos[start:end], self.rope_sin[start:end]
        for i, block in enumerate(self.blocks):
            x = block(x, cos, sin, None if cache is None else cache[i])
        return self.head(self.norm(x))

    def loss(self, mulan_codes: torch.Tensor, tokens: torch.Tensor,
             null: torch.Tensor | None = None) -> torch.Tensor:
        """Mean cross-entropy (nats) of semantic ``tokens [B, T]`` given ``mulan_codes [B, L]``;
        ``null [B]`` (bool): sequences conditioned on the null prefix instead (CFG dropout)."""
        ids = torch.cat([self.prefix_ids(mulan_codes), tokens.long()], dim=1)
        logits = self(ids[:, :-1], null=null)[:, mulan_codes.shape[1] - 1:]
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens.reshape(-1).long())

    # -- sampling ------------------------------------------------------------------------------
    @staticmethod
    def _pick(logits: torch.Tensor, temperature: float, top_k: int | None,
              gen: torch.Generator) -> torch.Tensor:
        if temperature <= 0:
            return logits.argmax(-1)
        logits = logits.float() / temperature
        if top_k:
            kth = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        probs = logits.softmax(-1)
        return torch.multinomial(probs.cpu(), 1, generator=gen)[:, 0].to(logits.device)

    @torch.no_grad()
    def _next_logits(self, ids: torch.Tensor, start: int, cache: list | None,
                     guidance: float) -> torch.Tensor:
        """Logits ``[B, V]`` after ids ``[B, S]`` at positions ``start …``; with ``guidance ≠ 1``
        the batch runs twice as ``[2B, S]`` (with its prefix, then with the null prefix, which
        only the call at ``start == 0`` holds) and the logits are ``u + guidance · (c − u)``."""
        if guidance == 1.0:
            return self(ids, start, cache)[:, -1]
        b = len(ids)
        null = (torch.arange(2 * b, device=ids.device) >= b) if start == 0 else None
        cond, uncond = self(torch.cat([ids, ids]), start, cache, null)[:, -1].chunk(2)
        return uncond + guidance * (cond - uncond)

    @torch.no_grad()
    def _extend(self, prompt: torch.Tensor, num_new: int, temperature: float, top_k: int | None,
                gen: torch.Generator, use_cache: bool, guidance: float = 1.0) -> torch.Tensor:
        """Sample ``num_new`` tokens after embedding ids ``prompt [B, P]`` → ``[B, num_new]``
        (``guidance``: see :meth:`_next_logits`; the KV cache then holds both branches)."""
        new = []
        if use_cache:
            cache = self.new_cache(prompt.shape[1] + num_new)
            logits = self._next_logits(prompt, 0, cache, guidance)
            for i in range(num_new):
                new.append(self._pick(logits, temperature, top_k, gen))
                if i + 1 < num_new:
                    logits = self._next_logits(new[-1][:, None], prompt.shape[1] + i, cache,
                                               guidance)
        else:
            ids = prompt
            for _ in range(num_new):
                new.append(self._pick(self._next_logits(ids, 0, None, guidance), temperature,
                                      top_k, gen))
                ids = torch.cat([ids, new[-1][:, None]], dim=1)
        return torch.stack(new, dim=1)

    def check_guidance(self, guidance: float) -> float:
        """``guidance`` as a float, refused (UserError) when not finite, negative, or ≠ 1 without a
        null prefix."""
        if isinstance(guidance, bool) or not isinstance(guidance, (int, float)) \
                or not math.isfinite(guidance) or guidance < 0:
            raise UserError(f"LM guidance must be a finite number >= 0, got {guidance!r}")
        if guidance != 1.0 and not self.has_null_prefix:
            raise UserError(f"LM guidance {guidance:g} needs an LM trained with cond_dropout > 0 "
                            f"(a learnt null prefix); this one has cond_dropout "
                            f"{self.config.cond_dropout:g}: use guidance 1")
        return float(guidance)

    @torch.no_grad()
    def continue_tokens(self, mulan_codes: torch.Tensor, previous_tokens: torch.Tensor,
                        num_new: int, window: int | None = None, temperature: float = 1.0,
                        top_k: int | None = None, seed: int = 0, use_cache: bool = True,
                        guidance: float = 1.0) -> torch.Tensor:
        """Append ``num_new`` tokens → ``[B, P + num_new]`` (the first ``P`` are ``previous_tokens``).

        Each chunk sees the MuLan prefix plus the last ``window`` tokens so far (default
        ``max_tokens // 2``) and samples up to ``max_tokens − window`` new ones; then the window slides.
        The slide is the step ``max_tokens − window``: the paper's is one diffusion chunk
        (``MeLoDyConfig.lm_step_tokens``, e.g. 62 of 250 tokens at M = 4).
        ``guidance``: classifier-free guidance scale (1: none; ≠ 1 needs ``cond_dropout > 0``).
        """
        c = self.config
        guidance = self.check_guidance(guidance)
        window = c.max_tokens // 2 if window is None else window
        if not 0 <= window < c.max_tokens:
            raise UserError(f"window must lie in [0, {c.max_tokens}) (max_tokens), got {window}")
        was_training = self.training
        self.eval()
        gen = torch.Generator().manual_seed(seed)
        prefix = self.prefix_ids(mulan_codes)
        out = previous_tokens.long().to(prefix.device)
        remaining = num_new
        while remaining > 0:
            ctx = out[:, out.shape[1] - min(window, out.shape[1]):]
            n = min(remaining, c.max_tokens - ctx.shape[1])
            prompt = torch.cat([prefix, ctx], dim=1)
            out = torch.cat([out, self._extend(prompt, n, temperature, top_k, gen, use_cache,
                                                guidance)], 1)
            remaining -= n
        self.train(was_training)
        return out

    @torch.no_grad()
    def generate(self, mulan_codes: torch.Tensor, num_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None, seed: int = 0, use_cache: bool = True,
                 guidance: float = 1.0) -> torch.Tensor:
        """MuLan codes ``[B, levels]`` → semantic tokens ``[B, num_tokens]`` (seeded sampling;
        ``guidance``: see :meth:`continue_tokens`)."""
        empty = torch.zeros(len(mulan_codes), 0, dtype=torch.long, device=mulan_codes.device)
        return self.continue_tokens(mulan_codes, empty, num_tokens, temperature=temperature,
                                    top_k=top_k, seed=seed, use_cache=use_cache,
                                    guidance=guidance)


LMS: Registry = Registry("lm")
LMS.register("lm", config=SemanticLMConfig, presets=LM_PRESETS)(SemanticLM)


def build_lm(preset: str = "tiny", **overrides) -> SemanticLM:
    """An untrained semantic LM of a preset (``micro``, ``tiny``, ``paper``, ``paper_micro``) with
    overrides."""
    return LMS.build("lm", preset, **overrides)
