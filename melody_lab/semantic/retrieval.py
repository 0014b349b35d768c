"""Text → audio retrieval metrics for a joint embedding (MuLan), with chance levels.

For each caption, all clips are ranked by cosine to it; the rank of its own clip gives recall@k
and the median rank. Many clips share an identical caption (captions are built from a small
attribute vocabulary), and no model can tell those clips apart by text, so a second, "caption
level" recall counts a hit when any clip with the same caption is within the top k.
"""
from __future__ import annotations

import torch


def retrieval_metrics(text_emb: torch.Tensor, audio_emb: torch.Tensor,
                      caption_ids: torch.Tensor | None = None,
                      ks: tuple[int, ...] = (1, 10)) -> dict[str, float]:
    """Unit ``text_emb [N, E]`` (row i describes clip i) and ``audio_emb [N, E]`` → metrics.

    Keys: ``r@k`` (own clip in top k), ``median_rank`` (1 = best), ``chance_r@k`` (= k / N),
    ``chance_median_rank`` ((N + 1) / 2), ``mcc`` (mean cosine of matching pairs), and with
    ``caption_ids [N]``: ``caption_r@k`` and ``chance_caption_r@k`` (expected for random ranking).
    """
    n = len(text_emb)
    sims = text_emb.float() @ audio_emb.float().T  # [N, N]
    own = sims.diagonal()
    ranks = (sims > own[:, None]).sum(1) + 1  # 1-based rank of the own clip
    out: dict[str, float] = {"n": float(n), "mcc": own.mean().item(),
                             "median_rank": ranks.float().median().item(),
                             "chance_median_rank": (n + 1) / 2}
    for k in ks:
        out[f"r@{k}"] = (ranks <= k).float().mean().item()
        out[f"chance_r@{k}"] = min(1.0, k / n)
    if caption_ids is not None:
        same = caption_ids[:, None] == caption_ids[None, :]  # [N, N]
        order = sims.argsort(dim=1, descending=True)
        hits = torch.gather(same, 1, order)  # hits[i, r]: the r-th ranked clip shares i's caption
        first = hits.float().argmax(1) + 1
        sizes = same.sum(1).float()
        for k in ks:
            out[f"caption_r@{k}"] = (first <= k).float().mean().item()
            # P(at least one of `size` same-caption clips among k random picks out of n)
            miss = torch.ones(n)
            for j in range(min(k, n)):
                miss = miss * (1 - sizes / (n - j)).clamp(min=0)
            out[f"chance_caption_r@{k}"] = (1 - miss).mean().item()
    return out


def caption_index(captions: list[str]) -> tuple[list[str], torch.Tensor]:
    """Distinct captions (first-seen order) and the index of each clip's caption ``[N]``."""
    unique = list(dict.fromkeys(captions))
    lookup = {c: i for i, c in enumerate(unique)}
    return unique, torch.tensor([lookup[c] for c in captions])
