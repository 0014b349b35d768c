"""Assemble a :class:`~melody_lab.pipeline.MeLoDy` from the run folders of each training stage."""
from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from ..io import read_json
from ..pipeline import MeLoDy, MeLoDyConfig


def pipeline_from_runs(codec: str | Path, mulan: str | Path, tokenizer: str | Path,
                       lm: str | Path, denoiser: str | Path, window_seconds: float | None = None,
                       rvq: str | Path | None = None, **config_overrides) -> MeLoDy:
    """Load every stage (MuLan's RVQ is ``rvq``, default ``MULAN/rvq``) and assemble the pipeline.

    Each folder is an export or a training run (``melody_lab.io.resolve``); the denoiser run
    gives its EMA weights and the chunking and window it was trained with.
    """
    from ..codecs import load_codec
    from ..data import load_corpus_info
    from ..denoisers import DENOISERS
    from ..semantic import MuLan, ResidualVQ, SemanticLM, SemanticTokenizer

    record = read_json(Path(denoiser) / "config.json")
    train = record.get("denoiser_train") if isinstance(record, dict) else None
    if train is None:
        raise UserError(f"{denoiser} is not a `melody-lab train denoiser` run folder")
    net = DENOISERS.get(record["model"]["name"]).from_pretrained(denoiser)
    if window_seconds is None:  # the length the denoiser was trained on: its crops, or whole clips
        window_seconds = (train.get("crop_seconds")
                          or float(load_corpus_info(record["data"])["clip_seconds"]))
    config = MeLoDyConfig(window_seconds=window_seconds, num_chunks=train["num_chunks"],
                          **config_overrides)
    return MeLoDy(load_codec(codec), net, MuLan.from_pretrained(mulan),
                  ResidualVQ.from_pretrained(Path(rvq) if rvq else Path(mulan) / "rvq"),
                  SemanticTokenizer.from_pretrained(tokenizer), SemanticLM.from_pretrained(lm), config)
