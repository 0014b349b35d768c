"""``melody-lab train STAGE``: every stage's trainer registers its arguments here.

A module under ``melody_lab/train/`` that defines ``register_cli(subparsers)`` becomes a
``melody-lab train <stage>`` sub-command; this module turns the parsed arguments into the stage's
typed configs (see ``melody_lab/train/stages.py``) and calls its ``train`` function. Every argument with a
known name (``--steps``, ``--batch-size``, ``--out``, …) gets its checked type from
:mod:`melody_lab.commands._args`, so a bad value is refused when the command line is parsed.
"""
from __future__ import annotations

import importlib
import pkgutil

from ..errors import UserError
from . import _args

# dest → argparse type, for every stage that has an argument of that name
CHECKED = {
    "steps": _args.positive_int("steps"),
    "max_steps": _args.positive_int("max-steps"),
    "batch_size": _args.positive_int("batch-size", 4096),
    "max_minutes": _args.positive_float("max-minutes", 60 * 24 * 365),
    "val_every": _args.positive_int("val-every"),
    "ckpt_every": _args.positive_int("ckpt-every"),
    "gan_start_step": _args.bounded(int, 0, 10**9, "gan-start-step"),
    "chunks": _args.positive_int("chunks", 64),
    "lr": _args.positive_float("lr", 10.0),
    "crop_seconds": _args.positive_float("crop-seconds", 600.0),
    "seed": _args.seed,
    "out": _args.out_folder,
}


def check_arguments(parser) -> None:
    """Give the arguments of ``parser`` whose names are in CHECKED their checked types."""
    for action in parser._actions:  # argparse's list of the parser's arguments
        if action.dest in CHECKED and action.type in (None, int, float, str):
            action.type = CHECKED[action.dest]


def register(subparsers) -> None:
    from .. import train

    parser = subparsers.add_parser(
        "train", help="train one stage (codec, mulan, tokenizer, lm, denoiser) or all of them",
        description="Train a stage. Every stage resumes from the newest checkpoint in --out, "
        "writes safetensors + JSON, and shows a progress bar.",
    )
    stages = parser.add_subparsers(dest="stage", metavar="STAGE", required=True)
    for info in sorted(pkgutil.iter_modules(train.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{train.__name__}.{info.name}")
        if hasattr(module, "register_cli"):
            module.register_cli(stages)
    for name, run in RUNNERS.items():
        stages.choices[name].set_defaults(func=run)
    for stage in stages.choices.values():
        check_arguments(stage)
    for name, stage in stages.choices.items():
        if name == "tokenizer":  # fits k-means in one go: no training loop, nothing to log
            continue
        stage.add_argument("--tensorboard", action="store_true",
                           help="also write TensorBoard event files to OUT/tensorboard/ beside log.jsonl "
                           "(needs the 'tensorboard' extra: pip install -e '.[tensorboard]')")
        stage.set_defaults(func=_with_tensorboard(stage.get_default("func")))


def _with_tensorboard(run):
    def run_stage(args):
        if not args.tensorboard:
            return run(args)
        from ..train.loop import tensorboard_logging

        with tensorboard_logging():
            return run(args)

    return run_stage


def _codec(args) -> int:
    from ..train.codec import CodecStageConfig, train_codec, train_config

    overrides = {"batch_size": args.batch_size} if args.batch_size else {}
    if args.gan_start_step is not None:
        if args.gan_start_step < 0:
            raise UserError(f"--gan-start-step must be >= 0, got {args.gan_start_step}")
        overrides["gan_start_step"] = args.gan_start_step
    if args.freeze_encoder:
        if not args.init_from:
            raise UserError("--freeze-encoder needs --init-from RUN (the trained encoder to keep)")
        overrides["freeze_encoder"] = True
    config = CodecStageConfig(args.codec, args.preset, train_config(args.preset, **overrides),
                              args.init_from)
    loop = config.loop(args.steps, seed=args.seed, max_minutes=args.max_minutes).replace(
        val_every=args.val_every, ckpt_every=args.ckpt_every)
    state = train_codec(config, args.data, args.out, loop)
    print(f"codec: stopped at step {state['step']}; validation: {state.get('val')}")
    return 0


def _semantic_loop(config, args):
    return config.loop(args.max_steps, seed=args.seed, max_minutes=args.max_minutes,
                       progress=not args.no_progress)


def _mulan(args) -> int:
    from ..train.mulan import MuLanStageConfig, train_mulan

    config = MuLanStageConfig(args.preset)
    state = train_mulan(config, args.data, args.out, _semantic_loop(config, args))
    print(f"mulan: step {state['step']}, validation {state.get('val', {})}; RVQ in {args.out}/rvq")
    return 0


def _tokenizer(args) -> int:
    from ..train.tokenizer import TokenizerStageConfig, fit_tokenizer

    if (args.ssl_path or args.ssl_layer is not None or args.ssl_pooling) and args.features != "ssl":
        raise UserError("--ssl-path, --ssl-layer and --ssl-pooling need --features ssl")
    config = TokenizerStageConfig(args.preset, args.features, args.ssl_path, args.ssl_layer,
                                  args.ssl_pooling)
    state = fit_tokenizer(config, args.data, args.out, config.loop(seed=args.seed))
    print(f"tokenizer: fitted in {args.out}; validation usage {state.get('valid')}")
    return 0


def _lm(args) -> int:
    from ..train.lm import LM_TRAIN_PRESETS, LMStageConfig, train_lm

    train = None
    if args.text_prob is not None:
        if not 0.0 <= args.text_prob <= 1.0:
            raise UserError(f"--text-prob must lie in [0, 1], got {args.text_prob}")
        train = LM_TRAIN_PRESETS[args.preset].replace(text_prob=args.text_prob)
    config = LMStageConfig(args.preset, train=train, init_from=args.init_from)
    state = train_lm(config, args.data, args.out, _semantic_loop(config, args),
                     mulan=args.mulan, tokenizer=args.tokenizer)
    print(f"lm: step {state['step']}, validation {state.get('val', {})}")
    return 0


def _denoiser(args) -> int:
    from ..train.denoiser import DenoiserTrainConfig, train_denoiser

    config = DenoiserTrainConfig(denoiser=args.denoiser, preset=args.preset,
                                 batch_size=args.batch_size, lr=args.lr, num_chunks=args.chunks,
                                 crop_seconds=args.crop_seconds, init_from=args.init_from)
    loop = config.loop(args.steps, seed=args.seed, max_minutes=args.max_minutes,
                       progress=not args.no_progress).replace(
        val_every=500, ckpt_every=250)
    state = train_denoiser(config, args.data, args.out, loop, codec=args.codec,
                           tokenizer=args.tokenizer)
    print(f"stopped at step {state['step']}; validation: {state.get('val')}")
    return 0


def _all(args) -> int:
    from ..train.all import train_all

    train_all(args.preset, args.data, args.out, args.seed, args.codec, args.denoiser,
              args.max_minutes, not args.no_progress, args.init_from, args.steps)
    return 0  # a run paused by --max-minutes (None) is not an error either


#: ``melody-lab train <stage>`` → the function that turns its arguments into configs and trains
RUNNERS = {"codec": _codec, "mulan": _mulan, "tokenizer": _tokenizer, "lm": _lm,
           "denoiser": _denoiser, "all": _all}
