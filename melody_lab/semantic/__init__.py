"""The semantic side of MeLoDy: MuLan, its RVQ, the semantic tokenizer and the semantic LM.

    from melody_lab.semantic import MuLan, ResidualVQ, SemanticTokenizer, SemanticLM
    mulan = MuLan.from_pretrained(folder)            # embed_text / embed_audio → unit [B, E]
    codes = ResidualVQ.from_pretrained(rvq_folder).quantize(mulan.embed_text(["a reel"]))
    tokens = SemanticLM.from_pretrained(lm_folder).generate(codes, num_tokens=125, top_k=50)

``load_tiny(name)`` loads the shipped tiny checkpoints from ``melody_lab/assets/semantic``.
See docs/semantic.md.
"""
from __future__ import annotations

from pathlib import Path

from .lm import LM_PRESETS, LMS, SemanticLM, SemanticLMConfig, build_lm
from .mulan import MULAN_PRESETS, MULANS, MuLan, MuLanConfig, build_mulan
from .retrieval import retrieval_metrics
from .rvq import RVQS, ResidualVQ, RVQConfig
from .tokenizer import TOKENIZER_PRESETS, TOKENIZERS, SemanticTokenizer, TokenizerConfig

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "semantic"
KINDS = tuple(r.kind for r in (MULANS, RVQS, TOKENIZERS, LMS))  # "mulan", "rvq", "tokenizer", "lm"


def load_tiny(name: str):
    """The shipped tiny ``mulan``, ``rvq``, ``tokenizer`` or ``lm`` (eval mode, fp32)."""
    from ..errors import UserError
    from ..io import load_pretrained

    if name not in KINDS:
        raise UserError(f"unknown semantic component {name!r}; choose one of: {', '.join(KINDS)}")
    folder = ASSETS / f"{name}_tiny"
    if not folder.is_dir():
        raise UserError(f"shipped checkpoint {folder} is missing (reinstall melody-lab)")
    return load_pretrained(name, folder)


__all__ = ["MuLan", "MuLanConfig", "MULAN_PRESETS", "MULANS", "build_mulan", "ResidualVQ",
           "RVQConfig", "RVQS", "SemanticTokenizer", "TokenizerConfig", "TOKENIZER_PRESETS",
           "TOKENIZERS", "SemanticLM", "SemanticLMConfig", "LM_PRESETS", "LMS", "build_lm",
           "load_tiny", "retrieval_metrics"]
