"""The training stages in order: one table that ``train all`` and the ablation runner both walk.

    codec ───────────────────────┐
    mulan (+ its RVQ) ──┐        ├──→ denoiser ──→ (bundle: ``assemble.py``)
    tokenizer ──────────┴──→ lm  │
    tokenizer ───────────────────┘

Each :class:`Stage` names its upstream stages, the typed config class its ``train`` function
takes, and what "finished" means. Every ``train`` function has one shape::

    stage.train(config, data, out, loop, **{name: run_folder for name in stage.upstream})

``config`` is an instance of ``stage.config`` (:meth:`Stage.make_config` builds the preset's),
``loop`` a :class:`~melody_lab.train.loop.LoopConfig` (:meth:`Stage.loop` builds the stage's
default one). ``train all`` trains into ``OUT/<stage>``; the ablation runner adds only hashed
folder names and reuse of already-trained folders.

Adding a stage: write ``train_<name>(config, data, out, loop, **upstream)`` in its own module
and add one :class:`Stage` row here (see docs/architecture.md).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..config import Config
from ..errors import UserError
from .checkpoint import latest_checkpoint
from .codec import CodecStageConfig, train_codec
from .denoiser import DenoiserTrainConfig, train_denoiser
from .lm import LMStageConfig, train_lm
from .loop import LoopConfig
from .mulan import MuLanStageConfig, train_mulan
from .tokenizer import TokenizerStageConfig, fit_tokenizer

PRESETS = ("micro", "tiny", "paper", "paper_micro")

#: the ``MeLoDyConfig`` fields a :class:`Recipe` sets in the bundles it makes (``Recipe.sampling``)
SAMPLING_FIELDS = ("context_chunks", "lm_step_tokens", "guidance", "lm_guidance")

#: optimisation steps per preset of the gradient stages under ``train all`` and the ablation
#: grids (the one place for them; ``mulan``/``lm`` None = their train preset's own ``steps``)
STAGE_STEPS = {
    "micro": {"codec": 20, "mulan": 20, "lm": 20, "denoiser": 20},
    "tiny": {"codec": 20000, "mulan": None, "lm": None, "denoiser": 20000},
    "paper": {"codec": 400000, "mulan": None, "lm": None, "denoiser": 100000},
    "paper_micro": {"codec": 20, "mulan": 20, "lm": 20, "denoiser": 20},
}


@dataclass(frozen=True)
class Recipe:
    """The operating point of a preset that no single component's size preset holds: which
    corpus it trains on, how the denoiser is trained, and how the bundle samples.

    * ``corpus``: the corpus preset (``melody_lab.data.presets``) whose sample rate and clip
      length are the recipe's: the denoiser trains on whole clips, so the clip length *is* the
      training window, and ``train all`` imports a bring-your-own folder at that rate and length;
    * ``num_chunks``: M of the multi-chunk velocity loss (``DenoiserTrainConfig.num_chunks``);
    * ``context_chunks``: chunks of known latent per continuation window (None: M − 1, the
      paper's slide by one chunk; ``MeLoDyConfig.context_chunks``);
    * ``lm_step_tokens``: new semantic tokens per LM call after the first window (None: half of
      the LM's ``max_tokens``, the tiny model's; ``MeLoDyConfig.lm_step_tokens``);
    * ``guidance``: the classifier-free guidance weight w the bundle samples with;
    * ``lm_guidance``: the semantic LM's classifier-free guidance (1: none; our addition, not the
      paper's; needs an LM trained with ``cond_dropout > 0``, as every LM preset is).

    The architecture itself (widths, ``rnn_type``, ``cross_attention``, sample rates, codec loss)
    is in each component's preset of the same name: ``DPD_PRESETS``, ``VAEGAN_PRESETS`` +
    ``train/codec.py`` ``TRAIN_PRESETS``, ``MULAN_PRESETS``, ``TOKENIZER_PRESETS``, ``LM_PRESETS``.
    """

    corpus: str
    num_chunks: int = 5
    context_chunks: int | None = None
    lm_step_tokens: int | None = None
    guidance: float = 2.5
    lm_guidance: float = 1.0

    def sampling(self) -> dict:
        """The ``MeLoDyConfig`` fields this recipe sets in the bundle ``train all`` writes."""
        return {name: getattr(self, name) for name in SAMPLING_FIELDS}


#: preset → its :class:`Recipe` (the one place for the numbers of the paper's operating point;
#: docs/fidelity.md says which are the paper's and which are our choices)
RECIPES = {
    "micro": Recipe(corpus="micro"),
    # 5-s windows of 1-s chunks (aligned to the 25 Hz tokens); the LM keeps 62 tokens, adds 63
    # LM guidance 3: key match of text prompts 0.13 → 0.21 on 40 valid clips in the issue-13 probe
    # (docs/tiny_model.md); the shipped tiny bundle samples with it
    "tiny": Recipe(corpus="tiny", lm_guidance=3.0),
    # the paper: 10-s windows (250 tokens at 25 Hz) of M = 4 chunks of 2.5 s, continuation by one
    # chunk, w = 2.5. One chunk is 62.5 tokens: the LM adds ⌊250/4⌋ = 62 per call (our rounding),
    # so its 188 kept tokens always cover the denoiser's M − 1 = 3 clean context chunks (7.5 s)
    "paper": Recipe(corpus="paper", num_chunks=4, lm_step_tokens=250 // 4),
    # the paper's recipe at 2-s clips (50 tokens, chunks of 12.5 tokens → ⌊50/4⌋ = 12 per call)
    "paper_micro": Recipe(corpus="paper_micro", num_chunks=4, lm_step_tokens=50 // 4),
}


def recipe(preset: str) -> Recipe:
    """The :class:`Recipe` of ``preset``; a size preset that is no recipe of its own (the U-Net's
    ``tiny_compute``) trains on the ``tiny`` recipe."""
    return RECIPES.get(preset, RECIPES["tiny"])


def stage_steps(preset: str, overrides: dict | None = None) -> dict[str, int]:
    """``{stage: steps}`` of every gradient stage at ``preset``, ``overrides`` applied."""
    if preset not in STAGE_STEPS:
        raise UserError(f"unknown preset {preset!r}; choose one of: {', '.join(STAGE_STEPS)}")
    steps = {**STAGE_STEPS[preset], **(overrides or {})}
    for name in ("mulan", "lm"):
        if steps[name] is None:
            steps[name] = STAGES[name].make_config(preset).train.steps
    return steps


def default_loop(stage: str, preset: str, steps: int | None = None, seed: int = 0,
                 max_minutes: float | None = None, progress: bool = True) -> LoopConfig:
    """The loop of a gradient stage at the shared loop's own cadence (validation and checkpoints
    every 250 steps): ``steps`` steps (None: :func:`stage_steps` of ``preset``). The codec and
    denoiser configs' ``loop``."""
    steps = stage_steps(preset)[stage] if steps is None else steps
    return LoopConfig(max_steps=steps, seed=seed, max_minutes=max_minutes, progress=progress)


def is_finished(folder: str | Path, steps: int | None = None) -> bool:
    """True when run folder ``folder`` has a checkpoint at step ``steps`` or later (any
    checkpoint when ``steps`` is None: a stage fitted in one go, like the tokenizer)."""
    folder = Path(folder)
    ckpt = latest_checkpoint(folder) if folder.exists() else None
    if ckpt is None:
        return False
    done = json.loads((ckpt / "state.json").read_text())["step"]
    return steps is None or done >= steps


@dataclass(frozen=True)
class Stage:
    """One row of the stage table (see the module docstring)."""

    name: str
    upstream: tuple[str, ...]
    config: type[Config]
    train: Callable[..., dict]
    gradient: bool = True     # trained for a number of steps (False: fitted once, e.g. k-means)
    products: tuple[str, ...] = ()  # files a finished run has besides its checkpoint

    def make_config(self, preset: str, **choices) -> Config:
        """The stage's config at size ``preset`` (``choices``: e.g. ``codec="vqvae"``)."""
        return self.config.for_preset(preset, **choices)

    def loop(self, config: Config, steps: int | None = None, seed: int = 0,
             max_minutes: float | None = None, progress: bool = True) -> LoopConfig:
        """The stage's loop settings: ``steps`` steps (None: :func:`stage_steps` of the config's
        preset), the cadence of validation and checkpoints its config chooses."""
        if steps is None and self.gradient:
            steps = stage_steps(config.preset)[self.name]
        return config.loop(steps, seed=seed, max_minutes=max_minutes, progress=progress)

    def finished(self, folder: str | Path, steps: int | None = None) -> bool:
        """Has ``folder`` a finished run of this stage (``steps`` reached, if it has steps)?"""
        if not all((Path(folder) / product).is_file() for product in self.products):
            return False
        return is_finished(folder, steps if self.gradient else None)

    def run(self, config: Config, data: str | Path, out: str | Path, loop: LoopConfig,
            upstream: dict[str, str | Path], **options) -> dict:
        """Train (or resume) into ``out``; ``upstream`` maps (at least) each upstream stage to its
        run folder; ``options`` go to the train function as they are (e.g. ``cache_dir``)."""
        missing = [u for u in self.upstream if u not in upstream]
        if missing:
            raise UserError(f"stage {self.name} needs the run folder(s) of {', '.join(missing)}")
        return self.train(config, data, out, loop, **{u: Path(upstream[u]) for u in self.upstream},
                          **options)


#: ``{name: Stage}`` in training order (upstream stages first)
STAGES: dict[str, Stage] = {stage.name: stage for stage in (
    Stage("codec", (), CodecStageConfig, train_codec),
    Stage("mulan", (), MuLanStageConfig, train_mulan, products=("rvq/config.json",)),
    Stage("tokenizer", (), TokenizerStageConfig, fit_tokenizer, gradient=False),
    Stage("lm", ("mulan", "tokenizer"), LMStageConfig, train_lm),
    Stage("denoiser", ("codec", "tokenizer"), DenoiserTrainConfig, train_denoiser),
)}
