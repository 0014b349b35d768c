"""What each configuration needs, trained once or reused: corpus, semantic stages, codecs, denoisers.

    OUT/data/<preset>-seed<S>/                          a corpus built from data.preset (if no data.corpus)
    RUNS/semantic-<h>/{mulan (+rvq), tokenizer, lm}     shared by every configuration (RUNS: OUT/runs
                                                        unless run_ablation(runs_dir=…) / --runs)
    RUNS/codec-<name>-<h>/                              one per codec, shared by its configurations
    RUNS/denoiser-<codec>-<name>-<preset>-<h>/          one per (codec, denoiser, preset)
    RUNS/cache-<codec>-<h>/                             latents + tokens, shared by those denoisers

``<h>`` hashes what the stage's weights depend on (corpus, presets, steps, seed, upstream runs), so
changing a training setting trains into a new folder instead of silently reusing an old one.
Finished stages are skipped and interrupted ones resume (the shared loop's checkpoints). The
sampling axes (schedule, steps, guidance) never reach this module: they never retrain.
"""
from __future__ import annotations

import hashlib
import json
from argparse import Namespace
from pathlib import Path

from ..errors import UserError
from .grid import Configuration, Grid


def _hash(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:8]


def prepare_corpus(grid: Grid, out: Path) -> Path:
    """The grid's corpus: ``data.corpus`` as is, or ``data.preset`` built (resumably) under OUT/data."""
    if "corpus" in grid.data:
        corpus = Path(grid.data["corpus"])
        if not (corpus / "metadata.jsonl").is_file():
            raise UserError(f"data.corpus {corpus} is not a built corpus (no metadata.jsonl); build it "
                            f"with `melody-lab data build --preset tiny --out {corpus}`")
        return corpus
    from ..data.build import build_corpus
    from ..data.presets import get_preset

    folder = out / "data" / f"{grid.data['preset']}-seed{grid.data['seed']}"
    if not (folder / "corpus.json").is_file():
        print(f"[ablate] building the {grid.data['preset']} corpus into {folder}")
        build_corpus(folder, get_preset(grid.data["preset"]), seed=grid.data["seed"], progress=False)
    return folder


class Stages:
    """Trains or finds every model a grid needs; :meth:`pipeline` assembles one configuration's."""

    def __init__(self, grid: Grid, corpus: Path, out: Path, progress: bool = False,
                 runs_dir: str | Path | None = None):
        from ..train.all import STAGE_STEPS
        from ..train.lm import LM_TRAIN_PRESETS
        from ..train.mulan import MULAN_TRAIN_PRESETS

        self.grid, self.corpus, self.progress = grid, corpus, progress
        self.runs = Path(runs_dir) if runs_dir is not None else out / "runs"
        preset = grid.train["preset"]
        self.preset, self.seed = preset, grid.train["seed"]
        self.steps = {**STAGE_STEPS[preset], **grid.train["steps"]}
        self.steps["mulan"] = self.steps["mulan"] or MULAN_TRAIN_PRESETS[preset].steps
        self.steps["lm"] = self.steps["lm"] or LM_TRAIN_PRESETS[preset].steps
        self.max_minutes = grid.train.get("max_minutes")
        self.log: list[str] = []

    # -- bookkeeping ------------------------------------------------------------------------
    def _loop(self, steps: int):
        from ..train.loop import LoopConfig

        return LoopConfig(max_steps=steps, seed=self.seed, max_minutes=self.max_minutes,
                          progress=self.progress, val_every=max(1, min(500, steps)),
                          ckpt_every=max(1, min(250, steps)))

    def _args(self, steps: int) -> Namespace:
        return Namespace(max_steps=steps, max_minutes=self.max_minutes, no_progress=not self.progress,
                         seed=self.seed)

    def _stage(self, name: str, folder: Path, steps: int | None, train) -> Path:
        from ..train.all import _finished

        if _finished(folder, steps):
            return folder
        print(f"[ablate] training {name} into {folder}")
        self.log.append(f"trained {name}: {folder}")
        train()
        if not _finished(folder, steps):
            raise UserError(f"{name} stopped before its last step (train.max_minutes); run the same "
                            f"command again to continue it from its checkpoint")
        return folder

    # -- stages -----------------------------------------------------------------------------
    def semantic(self) -> dict[str, Path]:
        """MuLan (+ rvq), tokenizer, LM: reused from ``reuse`` or trained once for the whole grid."""
        reuse = self.grid.reuse
        if all(k in reuse for k in ("mulan", "tokenizer", "lm")):
            found = {k: Path(reuse[k]) for k in ("mulan", "tokenizer", "lm")}
            return {**found, "rvq": Path(reuse.get("rvq") or found["mulan"] / "rvq")}
        from ..train.lm import train_lm
        from ..train.mulan import train_mulan
        from ..train.tokenizer import fit_tokenizer

        root = self.runs / f"semantic-{_hash(str(self.corpus), self.preset, self.seed, self.steps['mulan'], self.steps['lm'])}"
        mulan = Path(reuse.get("mulan") or root / "mulan")
        if "mulan" not in reuse and not (mulan / "rvq" / "config.json").is_file():
            # train_mulan resumes a stopped run (or skips a finished one) and fits the RVQ at the end
            print(f"[ablate] training mulan into {mulan}")
            self.log.append(f"trained mulan: {mulan}")
            state = train_mulan(self.preset, self.corpus, mulan, self._args(self.steps["mulan"]))
            if state["step"] < self.steps["mulan"]:
                raise UserError("mulan stopped before its last step (train.max_minutes); run the "
                                "same command again to continue it from its checkpoint")
        tokenizer = Path(reuse.get("tokenizer") or root / "tokenizer")
        if "tokenizer" not in reuse:
            self._stage("tokenizer", tokenizer, None,
                        lambda: fit_tokenizer(self.preset, self.corpus, tokenizer, self.seed))
        lm = Path(reuse.get("lm") or root / "lm")
        if "lm" not in reuse:
            self._stage("lm", lm, self.steps["lm"], lambda: train_lm(
                self.preset, self.corpus, lm, mulan, tokenizer, self._args(self.steps["lm"])))
        return {"mulan": mulan, "rvq": Path(reuse.get("rvq") or mulan / "rvq"), "tokenizer": tokenizer,
                "lm": lm}

    def codec(self, name: str) -> Path:
        from ..train.codec import train_codec

        if name in self.grid.reuse.get("codec", {}):
            return Path(self.grid.reuse["codec"][name])
        steps, preset = self.steps["codec"], self.grid.train["codec_preset"]
        folder = self.runs / f"codec-{name}-{_hash(str(self.corpus), name, preset, self.seed, steps)}"
        return self._stage(f"codec {name}", folder, steps, lambda: train_codec(
            name, preset, self.corpus, folder, self._loop(steps)))

    def denoiser(self, codec: str, name: str, preset: str) -> Path:
        from ..codecs import load_codec
        from ..semantic import SemanticTokenizer
        from ..train.denoiser import DenoiserTrainConfig, train_denoiser

        key = f"{codec}/{name}/{preset}"
        if key in self.grid.reuse.get("denoiser", {}):
            return Path(self.grid.reuse["denoiser"][key])
        codec_dir, tokenizer_dir = self.codec(codec), self.semantic()["tokenizer"]
        steps = self.steps["denoiser"]
        crop = self.grid.train.get("crop_seconds")
        folder = self.runs / (f"denoiser-{codec}-{name}-{preset}-" + _hash(
            str(codec_dir), str(tokenizer_dir), name, preset, self.seed, steps,
            *([crop] if crop else [])))  # (no crop: the same hash as before crops existed)
        # match the codec's latent width and the tokenizer's vocabulary whatever the presets
        overrides = {"latent_dim": load_codec(codec_dir).latent_dim,
                     "vocab_size": SemanticTokenizer.from_pretrained(tokenizer_dir).config.vocab_size}
        # one latent cache per (corpus, codec, tokenizer), shared by every denoiser that uses them
        cache = self.runs / f"cache-{codec}-{_hash(str(self.corpus), str(codec_dir), str(tokenizer_dir))}"
        return self._stage(f"denoiser {key}", folder, steps, lambda: train_denoiser(
            self.corpus, codec_dir, tokenizer_dir, folder,
            DenoiserTrainConfig(denoiser=name, preset=preset, crop_seconds=crop), self._loop(steps),
            cache_dir=cache,
            **overrides))

    def prepare(self, configs: list[Configuration]) -> None:
        """Train (or find) everything ``configs`` need, shared stages first."""
        if "bundle" in self.grid.reuse:
            return
        self.semantic()
        for codec in dict.fromkeys(c.codec for c in configs):
            self.codec(codec)
        for c in configs:
            self.denoiser(c.codec, c.denoiser, c.denoiser_preset)

    def model_key(self, config: Configuration) -> tuple[str, str, str]:
        return config.codec, config.denoiser, config.denoiser_preset

    def pipeline(self, config: Configuration):
        """The assembled :class:`~melody_lab.pipeline.MeLoDy` of ``config`` (and its provenance)."""
        from ..pipeline import MeLoDy
        from ..train.assemble import pipeline_from_runs

        if "bundle" in self.grid.reuse:
            model = MeLoDy.from_pretrained(self.grid.reuse["bundle"])
            names = model.config.names
            if (names.get("codec"), names.get("denoiser")) != (config.codec, config.denoiser):
                raise UserError(f"reuse.bundle holds {names.get('codec')}/{names.get('denoiser')}, but "
                                f"the grid asks for {config.codec}/{config.denoiser}; fix axes.codec/denoiser")
            return model, {"bundle": self.grid.reuse["bundle"]}
        runs = {**self.semantic(), "codec": self.codec(config.codec),
                "denoiser": self.denoiser(*self.model_key(config))}
        model = pipeline_from_runs(runs["codec"], runs["mulan"], runs["tokenizer"], runs["lm"],
                                   runs["denoiser"], rvq=runs["rvq"])
        return model, {k: str(v) for k, v in runs.items()}
