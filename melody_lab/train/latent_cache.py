"""Cache the diffusion model's training data: codec latents and semantic tokens of every clip.

Encoding audio is the slow, repeated part of denoiser training, so it happens once per
(corpus, split, codec, tokenizer). The cache is one safetensors file::

    latents [N, L, D] float16   codec.encode(clip), in [-1, 1]
    tokens  [N, T_st] int32      semantic tokenizer output (25 Hz)

plus a JSON sidecar naming the clips and the SHA-256 of the codec's and the tokenizer's weights,
written atomically; an existing cache is reused only if all of these match (so a codec that kept
training invalidates it).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from ..data import ClipDataset
from ..errors import UserError
from ..io import atomic_write, atomic_write_text


def weights_digest(module: torch.nn.Module) -> str:
    """SHA-256 of a module's parameters and buffers: identifies the exact weights a cache used."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def cache_paths(out_dir: str | Path, split: str) -> tuple[Path, Path]:
    out = Path(out_dir)
    return out / f"{split}.safetensors", out / f"{split}.json"


@torch.no_grad()
def build_latent_cache(data: str | Path, split: str, codec, tokenizer, out_dir: str | Path,
                       batch_size: int = 16, provenance: dict | None = None,
                       progress: bool = True) -> dict[str, torch.Tensor]:
    """Encode every clip of ``split`` (or reuse the cache); returns ``{"latents", "tokens"}``."""
    tensors_path, meta_path = cache_paths(out_dir, split)
    dataset = ClipDataset(data, split)
    if len(dataset) == 0:
        raise UserError(f"split {split!r} of {data} has no clips")
    if dataset.sample_rate != codec.sample_rate:
        raise UserError(f"corpus {data} is at {dataset.sample_rate} Hz but the codec expects "
                        f"{codec.sample_rate} Hz")
    meta = {"data": str(Path(data).resolve()), "split": split,
            "clip_ids": [r["clip_id"] for r in dataset.rows], "codec_sha256": weights_digest(codec),
            "tokenizer_sha256": weights_digest(tokenizer), **(provenance or {})}
    if tensors_path.exists() and meta_path.exists() and json.loads(meta_path.read_text()) == meta:
        return load_file(str(tensors_path))
    codec.eval()
    latents, tokens = [], []
    audio = dataset.load_all_audio()
    for start in tqdm(range(0, len(dataset), batch_size), desc=f"encode {split}",
                      disable=not progress):
        batch = audio[start:start + batch_size]
        latents.append(codec.encode(batch).to(torch.float16))
        tokens.append(tokenizer.tokenize(batch).to(torch.int32))
    result = {"latents": torch.cat(latents), "tokens": torch.cat(tokens)}
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    atomic_write(tensors_path, lambda tmp: save_file(result, str(tmp)))
    atomic_write_text(meta_path, json.dumps(meta))
    return result
