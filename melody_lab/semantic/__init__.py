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

from .lm import LM_PRESETS, SemanticLM, SemanticLMConfig, build_lm
from .mulan import MULAN_PRESETS, MuLan, MuLanConfig, build_mulan
from .retrieval import retrieval_metrics
from .rvq import ResidualVQ, RVQConfig
from .tokenizer import TOKENIZER_PRESETS, SemanticTokenizer, TokenizerConfig

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "semantic"
_CLASSES = {"mulan": MuLan, "rvq": ResidualVQ, "tokenizer": SemanticTokenizer, "lm": SemanticLM}


def load_tiny(name: str):
    """The shipped tiny ``mulan``, ``rvq``, ``tokenizer`` or ``lm`` (eval mode, fp32)."""
    from ..errors import UserError

    if name not in _CLASSES:
        raise UserError(f"unknown semantic component {name!r}; choose one of: {', '.join(_CLASSES)}")
    folder = ASSETS / f"{name}_tiny"
    if not folder.is_dir():
        raise UserError(f"shipped checkpoint {folder} is missing (reinstall melody-lab)")
    return _CLASSES[name].from_pretrained(folder)


__all__ = ["MuLan", "MuLanConfig", "MULAN_PRESETS", "build_mulan", "ResidualVQ", "RVQConfig",
           "SemanticTokenizer", "TokenizerConfig", "TOKENIZER_PRESETS", "SemanticLM",
           "SemanticLMConfig", "LM_PRESETS", "build_lm", "load_tiny", "retrieval_metrics"]
