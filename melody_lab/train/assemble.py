"""Assemble a :class:`~melody_lab.pipeline.MeLoDy` from the run folders of each training stage."""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import UserError
from ..pipeline import MeLoDy, MeLoDyConfig
from .checkpoint import latest_checkpoint, load_checkpoint


def load_trained_denoiser(run_dir: str | Path, use_ema: bool = True):
    """The denoiser of a ``melody-lab train denoiser`` run (its EMA weights by default)."""
    from ..denoisers import build_denoiser

    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.json"
    if not cfg_path.is_file():
        raise UserError(f"{run_dir} is not a denoiser run folder (no config.json)")
    record = json.loads(cfg_path.read_text())
    if "denoiser_train" not in record:
        raise UserError(f"{run_dir} is a run folder, but not of `melody-lab train denoiser`")
    ckpt = latest_checkpoint(run_dir)
    if ckpt is None:
        raise UserError(f"denoiser run {run_dir} has no checkpoint yet")
    train = record["denoiser_train"]
    net = build_denoiser(train["denoiser"], train["preset"], **record.get("overrides", {}))
    name = "ema" if use_ema else "denoiser"
    load_checkpoint(ckpt, {name: net})
    return net.eval(), train


def pipeline_from_runs(codec: str | Path, mulan: str | Path, tokenizer: str | Path,
                       lm: str | Path, denoiser: str | Path, window_seconds: float | None = None,
                       rvq: str | Path | None = None, **config_overrides) -> MeLoDy:
    """Load every stage (MuLan's RVQ is ``rvq``, default ``MULAN/rvq``) and assemble the pipeline."""
    from ..codecs import load_codec
    from ..data import load_corpus_info
    from ..semantic import MuLan, ResidualVQ, SemanticLM, SemanticTokenizer

    net, train = load_trained_denoiser(denoiser)
    codec_model = load_codec(codec)
    if window_seconds is None:  # the length the denoiser was trained on: its crops, or whole clips
        data = json.loads((Path(denoiser) / "config.json").read_text())["data"]
        window_seconds = train.get("crop_seconds") or float(load_corpus_info(data)["clip_seconds"])
    config = MeLoDyConfig(window_seconds=window_seconds, num_chunks=train["num_chunks"],
                          names={"codec": codec_model.name, "denoiser": train["denoiser"]},
                          **config_overrides)
    return MeLoDy(codec_model, net, MuLan.from_pretrained(mulan),
                  ResidualVQ.from_pretrained(Path(rvq) if rvq else Path(mulan) / "rvq"),
                  SemanticTokenizer.from_pretrained(tokenizer), SemanticLM.from_pretrained(lm), config)
