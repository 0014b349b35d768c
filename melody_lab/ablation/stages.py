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

Several processes may share one OUT or RUNS folder (``ablate --shard i/N``): each stage's training
runs under an exclusive ``fcntl.flock`` on ``<stage folder>/.lock`` (the corpus build on
``OUT/data/<name>.lock``), so a stage is trained by one process while the others wait for it and
then find it finished.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path

from ..errors import UserError
from ..train.stages import STAGES, stage_steps
from .grid import Configuration, Grid


def _hash(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:8]


@contextlib.contextmanager
def file_lock(path: Path, waiting: str | None = None):
    """Hold an exclusive ``fcntl.flock`` on the file ``path`` (POSIX; created empty, and kept).

    Blocks while another process holds it, printing ``waiting`` once if it has to wait. The lock is
    released when the block ends or the process dies (a killed holder never leaves it stuck)."""
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting:
                print(f"[ablate] {waiting}", flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def prepare_corpus(grid: Grid, out: Path) -> Path:
    """The grid's corpus: ``data.corpus`` as is, or ``data.preset`` built (resumably) under OUT/data."""
    data = grid.data
    if data.corpus is not None:
        corpus = Path(data.corpus)
        if not (corpus / "metadata.jsonl").is_file():
            raise UserError(f"data.corpus {corpus} is not a built corpus (no metadata.jsonl); build it "
                            f"with `melody-lab data build --preset tiny --out {corpus}`")
        return corpus
    from ..data.build import build_corpus
    from ..data.presets import get_preset

    folder = out / "data" / f"{data.preset}-seed{data.seed}"
    if (folder / "corpus.json").is_file():
        return folder
    with file_lock(folder.parent / f"{folder.name}.lock",
                   f"waiting for another process building the corpus {folder}"):
        if not (folder / "corpus.json").is_file():
            print(f"[ablate] building the {data.preset} corpus into {folder}")
            build_corpus(folder, get_preset(data.preset), seed=data.seed, progress=False)
    return folder


class Stages:
    """Trains or finds every model a grid needs; :meth:`pipeline` assembles one configuration's.

    The stages, their order, configs and "finished" test are those of ``train all``
    (:data:`melody_lab.train.stages.STAGES`); this class adds only the folder names (hashes of
    what each stage depends on), the ``reuse`` section and a validation cadence sized to short runs.
    """

    def __init__(self, grid: Grid, corpus: Path, out: Path, progress: bool = False,
                 runs_dir: str | Path | None = None):
        self.grid, self.corpus, self.progress = grid, corpus, progress
        self.runs = Path(runs_dir) if runs_dir is not None else out / "runs"
        self.preset, self.seed = grid.train.preset, grid.train.seed
        self.steps = stage_steps(self.preset, grid.train.steps)
        self.max_minutes = grid.train.max_minutes
        self.log: list[str] = []

    # -- bookkeeping ------------------------------------------------------------------------
    def _train(self, name: str, folder: Path, config, label: str | None = None,
               upstream: dict[str, Path] | None = None, **options) -> Path:
        """Train stage ``name`` into ``folder`` unless it is finished there (resuming if begun);
        under :func:`file_lock`, so two processes never train the same folder at once."""
        stage, steps = STAGES[name], self.steps.get(name)
        if stage.finished(folder, steps):
            return folder
        label = label or name
        with file_lock(folder / ".lock", f"waiting for another process training {label} into {folder}"):
            if stage.finished(folder, steps):  # the other process finished it while we waited
                return folder
            return self._train_locked(name, folder, config, label, upstream, **options)

    def _train_locked(self, name: str, folder: Path, config, label: str,
                      upstream: dict[str, Path] | None, **options) -> Path:
        stage, steps = STAGES[name], self.steps.get(name)
        print(f"[ablate] training {label} into {folder}")
        self.log.append(f"trained {label}: {folder}")
        loop = stage.loop(config, steps, self.seed, self.max_minutes, self.progress)
        if name in ("codec", "denoiser"):  # short grid runs: validate and keep checkpoints often
            loop = loop.replace(val_every=max(1, min(500, steps)), ckpt_every=max(1, min(250, steps)))
        stage.run(config, self.corpus, folder, loop, upstream or {}, **options)
        if not stage.finished(folder, steps):
            raise UserError(f"{label} stopped before its last step (train.max_minutes); run the same "
                            f"command again to continue it from its checkpoint")
        return folder

    # -- stages -----------------------------------------------------------------------------
    def semantic(self) -> dict[str, Path]:
        """MuLan (+ rvq), tokenizer, LM: reused from ``reuse`` or trained once for the whole grid."""
        reuse = self.grid.reuse
        root = self.runs / f"semantic-{_hash(str(self.corpus), self.preset, self.seed, self.steps['mulan'], self.steps['lm'])}"
        found = {}
        for name in ("mulan", "tokenizer", "lm"):  # in table order: the LM needs the other two
            given = getattr(reuse, name)
            found[name] = Path(given) if given else self._train(
                name, root / name, STAGES[name].make_config(self.preset), upstream=found)
        return {**found, "rvq": Path(reuse.rvq or found["mulan"] / "rvq")}

    def codec(self, name: str) -> Path:
        if name in (self.grid.reuse.codec or {}):
            return Path(self.grid.reuse.codec[name])
        steps, preset = self.steps["codec"], self.grid.train.codec_preset
        folder = self.runs / f"codec-{name}-{_hash(str(self.corpus), name, preset, self.seed, steps)}"
        return self._train("codec", folder, STAGES["codec"].make_config(preset, codec=name),
                           label=f"codec {name}")

    def denoiser(self, codec: str, name: str, preset: str) -> Path:
        from ..codecs import load_codec
        from ..semantic import SemanticTokenizer

        key = f"{codec}/{name}/{preset}"
        if key in (self.grid.reuse.denoiser or {}):
            return Path(self.grid.reuse.denoiser[key])
        codec_dir, tokenizer_dir = self.codec(codec), self.semantic()["tokenizer"]
        steps = self.steps["denoiser"]
        crop = self.grid.train.crop_seconds
        folder = self.runs / (f"denoiser-{codec}-{name}-{preset}-" + _hash(
            str(codec_dir), str(tokenizer_dir), name, preset, self.seed, steps,
            *([crop] if crop else [])))  # (no crop: the same hash as before crops existed)
        stage = STAGES["denoiser"]
        if stage.finished(folder, steps):
            return folder
        # match the codec's latent width and the tokenizer's vocabulary whatever the presets
        overrides = {"latent_dim": load_codec(codec_dir).latent_dim,
                     "vocab_size": SemanticTokenizer.from_pretrained(tokenizer_dir).config.vocab_size}
        # one latent cache per (corpus, codec, tokenizer), shared by every denoiser that uses them
        cache = self.runs / f"cache-{codec}-{_hash(str(self.corpus), str(codec_dir), str(tokenizer_dir))}"
        config = stage.make_config(preset, denoiser=name).replace(crop_seconds=crop)
        return self._train("denoiser", folder, config, label=f"denoiser {key}",
                           upstream={"codec": codec_dir, "tokenizer": tokenizer_dir},
                           cache_dir=cache, **overrides)

    def prepare(self, configs: list[Configuration]) -> None:
        """Train (or find) everything ``configs`` need, shared stages first."""
        if self.grid.reuse.bundle:
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
        from ..train.stages import recipe

        bundle = self.grid.reuse.bundle
        if bundle:
            model = MeLoDy.from_pretrained(bundle)
            names = model.config.names
            if (names.get("codec"), names.get("denoiser")) != (config.codec, config.denoiser):
                raise UserError(f"reuse.bundle holds {names.get('codec')}/{names.get('denoiser')}, but "
                                f"the grid asks for {config.codec}/{config.denoiser}; fix axes.codec/denoiser")
            runs = {"bundle": bundle}
        else:
            runs = {**self.semantic(), "codec": self.codec(config.codec),
                    "denoiser": self.denoiser(*self.model_key(config))}
            model = pipeline_from_runs(runs["codec"], runs["mulan"], runs["tokenizer"], runs["lm"],
                                       runs["denoiser"], rvq=runs["rvq"],
                                       **recipe(self.grid.train.preset).sampling())  # as train all
            runs = {k: str(v) for k, v in runs.items()}
        context = self.grid.eval.context_chunks
        if context is not None:  # the grid's continuation setting replaces the model's own
            if context >= model.config.num_chunks:
                raise UserError(f"grid: eval.context_chunks must be below the model's num_chunks "
                                f"({model.config.num_chunks}), got {context}")
            model.config.context_chunks = context
        return model, runs
