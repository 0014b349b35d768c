"""``melody-lab train all``: every stage in order, then a bundle.

    OUT/data/      (only for bring-your-own data: the imported corpus)
    OUT/codec/  OUT/mulan/ (+ rvq/)  OUT/tokenizer/  OUT/lm/  OUT/denoiser/   one run folder each
    OUT/bundle/    the assembled, verified model (``melody-lab generate --bundle OUT/bundle``)

Finished stages are skipped, an interrupted stage resumes from its newest checkpoint, and the
intermediate products (LM token/code cache, denoiser latent cache) are cached inside the stage's
run folder. Under ``torchrun --nproc_per_node N`` the gradient stages run with DDP.
"""
from __future__ import annotations

import time
from pathlib import Path

from .stages import PRESETS, STAGES, recipe, stage_steps


def resolve_data(data: str | Path, out: Path, sample_rate: int = 16000,
                 clip_seconds: float = 5.0) -> Path:
    """A built corpus is used as is; a folder with a captions table is imported into OUT/data."""
    from ..data.folder import find_captions_table, import_audio_folder

    data = Path(data)
    if (data / "metadata.jsonl").is_file() and (data / "corpus.json").is_file():
        return data
    table = find_captions_table(data)
    return import_audio_folder(data, table, out / "data", sample_rate=sample_rate,
                               clip_seconds=clip_seconds)


def train_all(preset: str, data: str | Path, out: str | Path, seed: int = 0,
              codec: str = "vaegan", denoiser: str = "dpd", max_minutes: float | None = None,
              progress: bool = True, init_from: str | Path | None = None,
              steps_override: int | None = None) -> Path | None:
    """Run (or resume) every stage of :data:`~melody_lab.train.stages.STAGES` in order into
    ``OUT/<stage>``; returns the bundle folder (None if a stage was paused by the budget). The
    preset's :class:`~melody_lab.train.stages.Recipe` sets the import's rate and clip length, the
    denoiser's M and the bundle's sampling (continuation, LM step, guidance).

    ``init_from`` (a bundle or ``tiny``): fine-tune — every gradient stage starts from that
    bundle's component, and its MuLan (+ RVQ) and tokenizer are reused as they are (the LM's
    conditioning codes and the denoiser's tokens stay the ones those weights learnt); the
    denoiser trains on crops of the bundle's window. ``steps_override``: steps of every gradient
    stage (default: the preset's, :func:`~melody_lab.train.stages.stage_steps`)."""
    from ..data.presets import get_preset
    from ..io import locate

    steps = stage_steps(preset, None if steps_override is None else
                        {name: steps_override for name in ("codec", "mulan", "lm", "denoiser")})
    plan = recipe(preset)
    corpus = get_preset(plan.corpus)  # a folder is imported at the recipe corpus's rate and length
    out = Path(out)
    source = locate(init_from) if init_from is not None else None
    saved = _bundle_config(source, {"codec": codec, "denoiser": denoiser}) if source else {}
    data = resolve_data(data, out, corpus.sample_rate, corpus.clip_seconds)
    runs = {name: out / name for name in STAGES}
    choices = {"codec": {"codec": codec}, "denoiser": {"denoiser": denoiser}}
    if source is not None:  # not trained: the bundle's own (io.resolve reads a whole bundle)
        runs.update(mulan=source, tokenizer=source)
    for name, stage in STAGES.items():
        if source is not None and name in ("mulan", "tokenizer"):
            print(f"[train all] {name}: reused from {source}")
            continue
        if stage.finished(runs[name], steps.get(name)):
            print(f"[train all] {name}: finished earlier, skipped")
            continue
        print(f"[train all] {name}: training into {runs[name]}")
        started = time.monotonic()
        config = stage.make_config(preset, **choices.get(name, {}))
        if source is not None:
            config = config.replace(init_from=str(source), **(
                {"crop_seconds": saved["window_seconds"]} if name == "denoiser" else {}))
        stage.run(config, data, runs[name], stage.loop(config, steps.get(name), seed, max_minutes,
                                                       progress), runs)
        if not stage.finished(runs[name], steps.get(name)):
            print(f"[train all] {name}: stopped by --max-minutes before its last step; run the "
                  f"same command again to continue from its checkpoint")
            return None
        print(f"[train all] {name}: done in {time.monotonic() - started:.0f} s")

    from .assemble import pipeline_from_runs

    bundle = pipeline_from_runs(runs["codec"], runs["mulan"], runs["tokenizer"], runs["lm"],
                                runs["denoiser"],
                                **{**plan.sampling(), **({"context_chunks": saved["context_chunks"]}
                                                         if saved.get("context_chunks") else {})}
                                ).save_pretrained(out / "bundle")
    print(f"[train all] bundle: {bundle}  (melody-lab generate \"…\" --bundle {bundle} --out x.wav)")
    return bundle


def _bundle_config(source: Path, names: dict[str, str]) -> dict:
    """The pipeline config of fine-tuning source ``source``, refused unless it is a bundle of
    the ``names`` architectures (checked before any stage starts; each stage checks the rest)."""
    from ..errors import UserError
    from ..io import read_json

    if not (source / "melody.json").is_file():
        raise UserError(f"--init-from {source}: not a bundle folder (train all fine-tunes a whole "
                        f"bundle, e.g. 'tiny'; a single run folder goes to `melody-lab train STAGE`)")
    saved = read_json(source / "melody.json").get("config", {})
    for part, name in names.items():
        have = saved.get("names", {}).get(part)
        if have != name:
            raise UserError(f"--init-from {source}: config mismatch in the {part}: the bundle has "
                            f"{have!r}, this run trains {name!r} (--{part} {have})")
    return saved


def register_cli(subparsers) -> None:
    p = subparsers.add_parser(
        "all", help="train every stage in order (skips finished ones) and write OUT/bundle",
        description=__doc__.split("\n\n")[0] + " --data is a built corpus, or a folder of audio "
        "files with a captions.csv / captions.jsonl table (columns: path, caption).")
    p.add_argument("--preset", default="tiny", choices=list(PRESETS), help="size preset")
    p.add_argument("--data", required=True, help="built corpus, or audio folder with captions table")
    p.add_argument("--out", required=True, help="folder for all run folders and the bundle")
    p.add_argument("--codec", default="vaegan", choices=["vaegan", "vqvae"], help="latent codec")
    p.add_argument("--denoiser", default="dpd", choices=["dpd", "unet"], help="denoiser")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="per-stage wall-time budget (a stage stopped by it resumes on the next run)")
    p.add_argument("--init-from", default=None, metavar="BUNDLE",
                   help="fine-tune a bundle (a folder or 'tiny'): codec, LM and denoiser start from "
                   "its weights, its MuLan/RVQ and tokenizer are reused as they are")
    p.add_argument("--steps", type=int, default=None,
                   help="steps of every gradient stage (default: the preset's)")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
