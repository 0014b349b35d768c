"""``melody-lab train all``: every stage in order, then a bundle.

    OUT/data/      (only for bring-your-own data: the imported corpus)
    OUT/codec/  OUT/mulan/ (+ rvq/)  OUT/tokenizer/  OUT/lm/  OUT/denoiser/   one run folder each
    OUT/bundle/    the assembled, verified model (``melody-lab generate --bundle OUT/bundle``)

Finished stages are skipped, an interrupted stage resumes from its newest checkpoint, and the
intermediate products (LM token/code cache, denoiser latent cache) are cached inside the stage's
run folder. Under ``torchrun --nproc_per_node N`` the gradient stages run with DDP.
"""
from __future__ import annotations

import json
import time
from argparse import Namespace
from pathlib import Path

from ..errors import UserError
from .checkpoint import latest_checkpoint

#: optimisation steps per stage and preset (mulan/lm default to their own presets' steps)
STAGE_STEPS = {
    "micro": {"codec": 20, "mulan": 20, "lm": 20, "denoiser": 20},
    "tiny": {"codec": 20000, "mulan": None, "lm": None, "denoiser": 20000},
    "paper": {"codec": 400000, "mulan": None, "lm": None, "denoiser": 100000},
}
STAGES = ("codec", "mulan", "tokenizer", "lm", "denoiser", "bundle")


def _finished(run_dir: Path, steps: int | None) -> bool:
    ckpt = latest_checkpoint(run_dir) if run_dir.exists() else None
    if ckpt is None:
        return False
    done = json.loads((ckpt / "state.json").read_text())["step"]
    return steps is None or done >= steps


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
              progress: bool = True) -> Path | None:
    """Run (or resume) every stage; returns the bundle folder (None if paused by the budget)."""
    if preset not in STAGE_STEPS:
        raise UserError(f"unknown preset {preset!r}; choose one of: {', '.join(STAGE_STEPS)}")
    from .lm import LM_TRAIN_PRESETS
    from .mulan import MULAN_TRAIN_PRESETS

    out = Path(out)
    steps = dict(STAGE_STEPS[preset])
    steps["mulan"] = steps["mulan"] or MULAN_TRAIN_PRESETS[preset].steps
    steps["lm"] = steps["lm"] or LM_TRAIN_PRESETS[preset].steps
    data = resolve_data(data, out)
    runs = {stage: out / stage for stage in STAGES[:-1]}
    args = Namespace(max_steps=None, max_minutes=max_minutes, no_progress=not progress, seed=seed)

    class Paused(Exception):
        pass

    def stage(name: str, run, step_count: int | None) -> None:
        if _finished(runs[name], step_count):
            print(f"[train all] {name}: finished earlier, skipped")
            return
        print(f"[train all] {name}: training into {runs[name]}")
        started = time.monotonic()
        run()
        if not _finished(runs[name], step_count):
            raise Paused(name)
        print(f"[train all] {name}: done in {time.monotonic() - started:.0f} s")

    loop = dict(seed=seed, max_minutes=max_minutes, progress=progress)
    try:
        _run_stages(stage, runs, steps, data, preset, seed, codec, denoiser, args, loop)
    except Paused as paused:
        print(f"[train all] {paused}: stopped by --max-minutes before its last step; run the "
              f"same command again to continue from its checkpoint")
        return None

    from .assemble import pipeline_from_runs

    bundle = pipeline_from_runs(runs["codec"], runs["mulan"], runs["tokenizer"], runs["lm"],
                                runs["denoiser"]).save_pretrained(out / "bundle")
    print(f"[train all] bundle: {bundle}  (melody-lab generate \"…\" --bundle {bundle} --out x.wav)")
    return bundle


def _run_stages(stage, runs, steps, data, preset, seed, codec, denoiser, args, loop) -> None:
    from .codec import train_codec
    from .denoiser import DenoiserTrainConfig, train_denoiser
    from .lm import train_lm
    from .loop import LoopConfig
    from .mulan import train_mulan
    from .tokenizer import fit_tokenizer

    stage("codec", lambda: train_codec(codec, preset, data, runs["codec"],
                                       LoopConfig(max_steps=steps["codec"], **loop)), steps["codec"])
    stage("mulan", lambda: train_mulan(preset, data, runs["mulan"],
                                       Namespace(**{**vars(args), "max_steps": steps["mulan"]})),
          steps["mulan"])
    stage("tokenizer", lambda: fit_tokenizer(preset, data, runs["tokenizer"], seed), None)
    stage("lm", lambda: train_lm(preset, data, runs["lm"], runs["mulan"], runs["tokenizer"],
                                 Namespace(**{**vars(args), "max_steps": steps["lm"]})), steps["lm"])
    stage("denoiser", lambda: train_denoiser(
        data, runs["codec"], runs["tokenizer"], runs["denoiser"],
        DenoiserTrainConfig(denoiser=denoiser, preset=preset),
        LoopConfig(max_steps=steps["denoiser"], **loop)), steps["denoiser"])


def register_cli(subparsers) -> None:
    p = subparsers.add_parser(
        "all", help="train every stage in order (skips finished ones) and write OUT/bundle",
        description=__doc__.split("\n\n")[0] + " --data is a built corpus, or a folder of audio "
        "files with a captions.csv / captions.jsonl table (columns: path, caption).")
    p.add_argument("--preset", default="tiny", choices=list(STAGE_STEPS), help="size preset")
    p.add_argument("--data", required=True, help="built corpus, or audio folder with captions table")
    p.add_argument("--out", required=True, help="folder for all run folders and the bundle")
    p.add_argument("--codec", default="vaegan", choices=["vaegan", "vqvae"], help="latent codec")
    p.add_argument("--denoiser", default="dpd", choices=["dpd", "unet"], help="denoiser")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="per-stage wall-time budget (a stage stopped by it resumes on the next run)")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=lambda a: train_all(a.preset, a.data, a.out, a.seed, a.codec, a.denoiser,
                                            a.max_minutes, not a.no_progress) and 0)
