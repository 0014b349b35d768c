"""Assemble a :class:`~melody_lab.pipeline.MeLoDy` from the run folders of each training stage."""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import UserError
from ..io import locate, read_json
from ..pipeline import MeLoDy, MeLoDyConfig


def _run_summary(folder: Path) -> dict:
    """What the model card says of one part: a training run's recipe, steps, wall time (first to
    last ``log.jsonl`` row), validation and ``init_from``; or where an exported part came from."""
    record = read_json(folder / "config.json") if (folder / "config.json").is_file() else {}
    if not isinstance(record, dict) or "model" not in record:
        return {"from": str(folder.resolve()), "note": "exported component, reused as it is"}
    summary = {"run": str(folder.resolve())}
    for key in ("preset", "train", "denoiser_train", "data", "init_from", "init_manifest_sha256"):
        if key in record:
            summary[key] = record[key]
    times, val = [], None
    log = folder / "log.jsonl"
    if log.is_file():
        for line in log.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            times += [row["time"]] if "time" in row else []
            val = row.get("val", val)
            summary["steps"] = max(summary.get("steps", 0), row.get("step", 0))
    if len(times) > 1:
        summary["wall_minutes_logged"] = round((times[-1] - times[0]) / 60, 1)
    if val is not None:
        summary["last_validation"] = val
    return summary


def _bundle_config(part: Path) -> dict | None:
    """The sampling config (``melody.json``) of the bundle that ``part`` is, or is a component
    folder of; None when it belongs to no bundle (a run folder or an export)."""
    for folder in (part, part.parent):
        if (folder / "melody.json").is_file():
            return read_json(folder / "melody.json").get("config", {})
    return None


def pipeline_from_runs(codec: str | Path, mulan: str | Path, tokenizer: str | Path,
                       lm: str | Path, denoiser: str | Path, window_seconds: float | None = None,
                       rvq: str | Path | None = None, **config_overrides) -> MeLoDy:
    """Load every stage (MuLan's RVQ is ``rvq``, default ``MULAN/rvq``, or the ``rvq/`` beside
    a bundle's ``mulan/``) and assemble the pipeline; ``card_info`` records each part's run.

    Each folder is an export, a training run, a whole bundle or ``tiny``
    (``melody_lab.io.resolve``); a denoiser run gives its EMA weights and the chunking and window
    it was trained with (a denoiser taken from a bundle: that bundle's ``melody.json``); an LM
    taken from a bundle keeps that bundle's LM sampling (``lm_guidance``, temperature, top-k).
    """
    from ..codecs import load_codec
    from ..data import load_corpus_info
    from ..denoisers import DENOISERS
    from ..io import load_pretrained
    from ..semantic import MuLan, ResidualVQ, SemanticLM, SemanticTokenizer

    codec, mulan, tokenizer, lm, denoiser = map(locate, (codec, mulan, tokenizer, lm, denoiser))
    record = read_json(denoiser / "config.json") if (denoiser / "config.json").is_file() else {}
    train = record.get("denoiser_train") if isinstance(record, dict) else None
    if train is not None:
        net = DENOISERS.get(record["model"]["name"]).from_pretrained(denoiser)
        if window_seconds is None:  # the length the denoiser was trained on: its crops, or clips
            window_seconds = (train.get("crop_seconds")
                              or float(load_corpus_info(record["data"])["clip_seconds"]))
        num_chunks = train["num_chunks"]
    else:  # a denoiser inside a bundle (or the bundle itself): the bundle says how it runs
        saved = _bundle_config(denoiser)
        if saved is None:
            raise UserError(f"{denoiser} is not a `melody-lab train denoiser` run folder nor a "
                            f"bundle's denoiser")
        net = load_pretrained(DENOISERS, denoiser)
        window_seconds = window_seconds or saved["window_seconds"]
        num_chunks = saved["num_chunks"]
        config_overrides = {**{k: saved[k] for k in ("context_chunks", "lm_step_tokens", "steps",
                                                     "schedule", "guidance")
                               if saved.get(k) is not None},
                            **config_overrides}
    saved = _bundle_config(lm)
    if saved is not None:  # an LM taken from a bundle keeps how it sampled
        config_overrides = {**{k: saved[k] for k in ("lm_guidance", "temperature", "top_k")
                               if k in saved}, **config_overrides}
    if rvq is None:
        rvq = mulan / "rvq" if (mulan / "rvq").is_dir() else mulan.parent / "rvq"
    config = MeLoDyConfig(window_seconds=window_seconds, num_chunks=num_chunks,
                          **config_overrides)
    model = MeLoDy(load_codec(codec), net, MuLan.from_pretrained(mulan),
                   ResidualVQ.from_pretrained(Path(rvq)),
                   SemanticTokenizer.from_pretrained(tokenizer), SemanticLM.from_pretrained(lm), config)
    parts = {"codec": codec, "mulan": mulan, "rvq": Path(rvq), "tokenizer": tokenizer, "lm": lm,
             "denoiser": denoiser}
    data = record.get("data") if isinstance(record, dict) else None
    model.card_info = {"data": data, "training": {p: _run_summary(f) for p, f in parts.items()}}
    return model
