"""The semantic LM: a compact LLaMA-style decoder (RMSNorm, rotary positions, SwiGLU).

Sequence: ``[m_1 … m_L ; s_1 … s_T]`` — ``L`` MuLan RVQ codes (level ``l``'s code ``c`` has its own
embedding row ``V + l·K + c``, after the ``V`` semantic tokens) followed by semantic tokens. The
output head predicts only semantic tokens (``V`` logits), and the loss covers only the positions
that predict ``s_1 … s_T`` (the last MuLan position predicts ``s_1``).

Sampling is KV-cached, with temperature and top-k, from a seeded ``torch.Generator``.
Long outputs use a sliding window: the MuLan prefix stays, and only the last ``window`` semantic
tokens are kept as context, so positions never exceed ``L + max_tokens`` (what was trained).
"""
from __future__ import annotations

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


LM_PRESETS = {
    "micro": SemanticLMConfig(semantic_vocab=16, mulan_levels=4, mulan_codebook_size=8, dim=64,
                              num_layers=2, num_heads=4, mlp_hidden=128, max_tokens=50, dropout=0.0),
    "tiny": SemanticLMConfig(),
    # Paper: 429.5M parameters, 10 s targets (250 tokens), vocab 1024, 12 × 1024 MuLan codes.
    "paper": SemanticLMConfig(semantic_vocab=1024, mulan_codebook_size=1024, dim=1536,
                              num_layers=15, num_heads=16, mlp_hidden=3840, max_tokens=250),
    # 2-s targets (50 tokens), 12 MuLan levels as in the paper, micro widths
    "paper_micro": SemanticLMConfig(semantic_vocab=16, mulan_levels=12, mulan_codebook_size=8,
                                    dim=64, num_layers=2, num_heads=4, mlp_hidden=128,
                                    max_tokens=50, dropout=0.0),
}


class Block(nn.Module):
    def __init__(self, c: SemanticLMConfig):
        super().__init__()
        self.heads, self.dropout = c.num_heads, c.dropout
        self.rotary = RotaryEmbedding(c.dim // c.num_heads, c.rope_base)
        self.attn_norm, self.mlp_norm = RMSNorm(c.dim), RMSNorm(c.dim)
        self.qkv = nn.Linear(c.dim, 3 * c.dim, bias=False)
        self.out = nn.Linear(c.dim, c.dim, bias=False)
        self.gate_up = nn.Linear(c.dim, 2 * c.mlp_hidden, bias=False)
        self.down = nn.Linear(c.mlp_hidden, c.dim, bias=False)

    def forward(self, x: torch.Tensor, positions: torch.Tensor,
                cache: dict | None = None) -> torch.Tensor:
        """``x [B, S, dim]`` at ``positions [S]``; ``cache`` (dict) holds keys/values so far."""
        b, s, d = x.shape
        q, k, v = self.qkv(self.attn_norm(x)).view(b, s, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        cos, sin = self.rotary(positions)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if cache is not None:
            if "k" in cache:
                k, v = torch.cat([cache["k"], k], dim=2), torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
        causal = s > 1 and (cache is None or k.shape[2] == s)
        if s > 1 and not causal:
            raise ValueError("several new tokens with a non-empty cache are not supported")
        h = F.scaled_dot_product_attention(q, k, v, is_causal=causal,
                                           dropout_p=self.dropout if self.training else 0.0)
        x = x + F.dropout(self.out(h.transpose(1, 2).reshape(b, s, d)), self.dropout, self.training)
        gate, up = self.gate_up(self.mlp_norm(x)).chunk(2, dim=-1)
        return x + F.dropout(self.down(F.silu(gate) * up), self.dropout, self.training)


class SemanticLM(nn.Module):
    """Decoder over ``[MuLan codes ; semantic tokens]`` (see module docstring)."""

    def __init__(self, cfg: SemanticLMConfig):
        super().__init__()
        self.config = cfg
        c = cfg
        self.embed = nn.Embedding(c.semantic_vocab + c.mulan_levels * c.mulan_codebook_size, c.dim)
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.num_layers))
        self.norm = RMSNorm(c.dim)
        self.head = nn.Linear(c.dim, c.semantic_vocab, bias=False)
        self.apply(self._init)

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

    def forward(self, ids: torch.Tensor, start: int = 0, cache: list | None = None) -> torch.Tensor:
        """Embedding ids ``[B, S]`` at positions ``start …`` → semantic logits ``[B, S, V]``."""
        x = self.embed(ids)
        positions = torch.arange(start, start + ids.shape[1], device=ids.device)
        for i, block in enumerate(self.blocks):
            x = block(x, positions, None if cache is None else cache[i])
        return self.head(self.norm(x))

    def loss(self, mulan_codes: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy (nats) of semantic ``tokens [B, T]`` given ``mulan_codes [B, L]``."""
        ids = torch.cat([self.prefix_ids(mulan_codes), tokens.long()], dim=1)
        logits = self(ids[:, :-1])[:, mulan_codes.shape[1] - 1:]
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
    def _extend(self, prompt: torch.Tensor, num_new: int, temperature: float, top_k: int | None,
                gen: torch.Generator, use_cache: bool) -> torch.Tensor:
        """Sample ``num_new`` tokens after embedding ids ``prompt [B, P]`` → ``[B, num_new]``."""
        new = []
        if use_cache:
            cache = [{} for _ in self.blocks]
            logits = self(prompt, 0, cache)[:, -1]
            for i in range(num_new):
                new.append(self._pick(logits, temperature, top_k, gen))
                if i + 1 < num_new:
                    logits = self(new[-1][:, None], prompt.shape[1] + i, cache)[:, -1]
        else:
            ids = prompt
            for _ in range(num_new):
                new.append(self._pick(self(ids)[:, -1], temperature, top_k, gen))
                ids = torch.cat([ids, new[-1][:, None]], dim=1)
        return torch.stack(new, dim=1)

    @torch.no_grad()
    def continue_tokens(self, mulan_codes: torch.Tensor, previous_tokens: torch.Tensor,
                        num_new: int, window: int | None = None, temperature: float = 1.0,
                        top_k: int | None = None, seed: int = 0,
                        use_cache: bool = True) -> torch.Tensor:
        """Append ``num_new`` tokens → ``[B, P + num_new]`` (the first ``P`` are ``previous_tokens``).

        Each chunk sees the MuLan prefix plus the last ``window`` tokens so far (default
        ``max_tokens // 2``) and samples up to ``max_tokens − window`` new ones; then the window slides.
        The slide is the step ``max_tokens − window``: the paper's is one diffusion chunk
        (``MeLoDyConfig.lm_step_tokens``, e.g. 62 of 250 tokens at M = 4).
        """
        c = self.config
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
            out = torch.cat([out, self._extend(prompt, n, temperature, top_k, gen, use_cache)], 1)
            remaining -= n
        self.train(was_training)
        return out

    @torch.no_grad()
    def generate(self, mulan_codes: torch.Tensor, num_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None, seed: int = 0, use_cache: bool = True) -> torch.Tensor:
        """MuLan codes ``[B, levels]`` → semantic tokens ``[B, num_tokens]`` (seeded sampling)."""
        empty = torch.zeros(len(mulan_codes), 0, dtype=torch.long, device=mulan_codes.device)
        return self.continue_tokens(mulan_codes, empty, num_tokens, temperature=temperature,
                                    top_k=top_k, seed=seed, use_cache=use_cache)


LMS: Registry = Registry("lm")
LMS.register("lm", config=SemanticLMConfig, presets=LM_PRESETS)(SemanticLM)


def build_lm(preset: str = "tiny", **overrides) -> SemanticLM:
    """An untrained semantic LM of a preset (``micro``, ``tiny``, ``paper``, ``paper_micro``) with
    overrides."""
    return LMS.build("lm", preset, **overrides)
