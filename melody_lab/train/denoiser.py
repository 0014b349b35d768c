"""Train the diffusion denoiser (DPD or U-Net) on cached codec latents + semantic tokens.

One step (the paper's multi-chunk velocity prediction):
  1. draw B cached examples ``z [B, L, D]`` and their tokens ``[B, T_st]``;
  2. split the L frames into M chunks, draw one angle per chunk, build ``z_δ`` and ``v``;
  3. drop each row's tokens with p = 0.1 (classifier-free guidance's unconditional branch);
  4. MSE between ``denoiser(z_δ, δ, tokens)`` and ``v``.
An exponential moving average of the weights (``ema``) is kept and is what ships.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import Config
from ..denoisers import build_denoiser, count_parameters, single_pass_metrics
from ..diffusion import drop_tokens, multichunk_target, velocity_loss
from ..errors import UserError
from ..io import component_record, locate
from . import distributed
from .loop import LoopConfig, run_training


@dataclass
class DenoiserTrainConfig(Config):
    denoiser: str = "dpd"
    preset: str = "tiny"
    num_chunks: int | None = None  # M; None: the preset's recipe (train/stages.py RECIPES)
    cfg_dropout: float = 0.1     # paper: p = 0.1
    batch_size: int = 8
    lr: float = 5e-4
    warmup_steps: int = 200
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    val_clips: int = 64
    crop_seconds: float | None = None  # train on random crops of this length (None: whole clips)
    init_from: str | None = None  # fine-tune from this bundle / 'tiny' / denoiser run (its EMA weights)

    def __post_init__(self):
        if self.num_chunks is None:
            from .stages import recipe
            self.num_chunks = recipe(self.preset).num_chunks

    @classmethod
    def for_preset(cls, preset: str, denoiser: str = "dpd") -> "DenoiserTrainConfig":
        return cls(denoiser=denoiser, preset=preset)

    def loop(self, steps: int | None = None, **options) -> LoopConfig:
        """See :func:`melody_lab.train.stages.default_loop` (the loop's own cadence)."""
        from .stages import default_loop
        return default_loop("denoiser", self.preset, steps, **options)


class DenoiserTask:
    """A :class:`~melody_lab.train.loop.TrainTask` for the shared loop."""

    name = "denoiser"

    def __init__(self, config: DenoiserTrainConfig, train: dict[str, torch.Tensor],
                 valid: dict[str, torch.Tensor], device: torch.device | str = "cpu",
                 frame_rate: float = 125.0, **denoiser_overrides):
        self.config = config
        self.device = torch.device(device)
        self.latents, self.tokens = train["latents"], train["tokens"]
        self.valid = valid
        self.net = build_denoiser(config.denoiser, config.preset, **denoiser_overrides).to(self.device)
        dim = getattr(self.net.config, "latent_dim", None)
        if dim is not None and dim != self.latents.shape[-1]:
            raise UserError(f"the {config.denoiser}/{config.preset} denoiser expects latent_dim "
                            f"{dim} but the codec's latents have {self.latents.shape[-1]}")
        vocab = getattr(self.net.config, "vocab_size", None)
        if vocab is not None and int(self.tokens.max()) >= vocab:
            raise UserError(f"semantic tokens go up to {int(self.tokens.max())} but the denoiser's "
                            f"vocab_size is {vocab}; pass a matching vocab_size")
        self.frames_per_token = self.latents.shape[1] // self.tokens.shape[1]
        self.crop_frames = self.latents.shape[1]
        if config.crop_seconds is not None:
            crop = round(config.crop_seconds * frame_rate)
            self.crop_frames = crop - crop % self.frames_per_token
            if not 0 < self.crop_frames <= self.latents.shape[1]:
                raise UserError(f"crop_seconds {config.crop_seconds} does not fit the "
                                f"{self.latents.shape[1]}-frame training latents")
        self.ema = copy.deepcopy(self.net).requires_grad_(False)
        self.train_net = distributed.wrap(self.net)  # DDP under torchrun, else the net itself
        self.opt = torch.optim.AdamW(self.net.parameters(), lr=config.lr,
                                     weight_decay=config.weight_decay)

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"denoiser": self.net, "ema": self.ema}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"adamw": self.opt}

    def train_step(self, step: int, generator: torch.Generator) -> dict[str, float]:
        cfg = self.config
        idx = torch.randint(0, self.latents.shape[0], (cfg.batch_size,), generator=generator)
        z, tokens = self.latents[idx].float(), self.tokens[idx].long()
        if self.crop_frames < z.shape[1]:  # one random crop for the batch, on the token grid
            starts = (z.shape[1] - self.crop_frames) // self.frames_per_token + 1
            t0 = int(torch.randint(0, starts, (1,), generator=generator))
            f0 = t0 * self.frames_per_token
            z = z[:, f0:f0 + self.crop_frames]
            tokens = tokens[:, t0:t0 + self.crop_frames // self.frames_per_token]
        tokens = drop_tokens(tokens, cfg.cfg_dropout, generator)
        target = multichunk_target(z, cfg.num_chunks, generator)
        for group in self.opt.param_groups:
            group["lr"] = cfg.lr * min(1.0, (step + 1) / max(1, cfg.warmup_steps))
        on_gpu = self.device.type == "cuda"
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=on_gpu):  # mixed precision on GPU
            v_hat = self.train_net(target.noisy.to(self.device), target.angles.to(self.device),
                                   tokens.to(self.device))
        loss = velocity_loss(v_hat.float(), target.velocity.to(self.device))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.net.parameters(), cfg.grad_clip)
        self.opt.step()
        decay = min(cfg.ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for ema_p, p in zip(self.ema.parameters(), self.net.parameters()):
                ema_p.lerp_(p, 1 - decay)
        return {"loss": loss.item(), "grad_norm": float(grad_norm)}

    def validate(self) -> dict[str, float]:
        n = self.config.val_clips
        metrics = single_pass_metrics(self.ema, self.valid["latents"][:n].float().to(self.device),
                                      self.valid["tokens"][:n].long().to(self.device))
        return {k: v for k, v in metrics.items() if "@" not in k}


def train_denoiser(config: DenoiserTrainConfig, data: str | Path, out: str | Path,
                   loop: LoopConfig | None = None, *, codec: str | Path, tokenizer: str | Path,
                   cache_dir: str | Path | None = None, **denoiser_overrides) -> dict:
    """Encode the corpus with the ``codec`` and ``tokenizer`` run folders (or exports) into the
    latent cache under ``cache_dir`` (default ``out/cache``; runs that share a codec and tokenizer
    may share one; reused when it exists) and train; returns the loop state.
    ``denoiser_overrides``: preset fields to change (e.g. ``latent_dim``, ``vocab_size``)."""
    from ..codecs import load_codec
    from ..semantic import SemanticTokenizer
    from .latent_cache import build_latent_cache

    loop = loop or config.loop()
    codec_dir, tokenizer_dir = locate(codec), locate(tokenizer)
    device = distributed.setup()
    codec = load_codec(codec_dir)
    tokenizer = SemanticTokenizer.from_pretrained(tokenizer_dir)
    init, init_provenance = _init_source(config, codec, denoiser_overrides)  # before any write
    if init is not None:
        denoiser_overrides = init.config.to_dict()  # fine-tuning keeps the source's architecture
    provenance = {"codec": str(Path(codec_dir).resolve()),
                  "tokenizer": str(Path(tokenizer_dir).resolve())}
    caches = {split: build_latent_cache(data, split, codec, tokenizer,
                                        Path(cache_dir) if cache_dir else Path(out) / "cache",
                                        provenance=provenance, progress=loop.progress)
              for split in ("train", "valid")}
    torch.manual_seed(loop.seed)  # the initial weights follow the seed, not the process's history
    task = DenoiserTask(config, caches["train"], caches["valid"], device,
                        codec.sample_rate / codec.hop_length, **denoiser_overrides)
    if init is not None:
        task.net.load_state_dict(init.state_dict())
        task.ema.load_state_dict(init.state_dict())
    print(f"{config.denoiser}/{config.preset}: {count_parameters(task.net):,} parameters; "
          f"{caches['train']['latents'].shape[0]} training latents of shape "
          f"{tuple(caches['train']['latents'].shape[1:])}")
    record = {"model": component_record(task.ema, weights="ema"),
              "denoiser_train": config.to_dict(), "overrides": denoiser_overrides, **provenance,
              "data": str(Path(data).resolve()), **init_provenance}
    return run_training(task, out, loop, record)


#: the fields of a denoiser config that make a size preset; a fine-tuning source must agree on
#: them with ``--preset`` (its other details, e.g. an older preset's RNN type, are kept as they are)
SIZE_FIELDS = ("width", "num_blocks", "base_channels", "channel_mults", "latent_dim", "vocab_size")


def _init_source(config: DenoiserTrainConfig, codec, overrides: dict):
    """``(module, provenance)`` of ``config.init_from`` (``(None, {})`` without one), refused when
    its architecture, size preset or latent size differs from this run's."""
    from ..denoisers import denoiser_config
    from ..io import check_same_config, load_init

    if config.init_from is None:
        return None, {}
    what = f"--init-from {config.init_from}"
    init, provenance = load_init("denoiser", config.init_from)
    source = {"architecture": init.name, **init.config.to_dict()}
    target = {"architecture": config.denoiser,
              **denoiser_config(config.denoiser, config.preset, **overrides).to_dict()}
    codec_dim = getattr(codec.config, "latent_dim", None)
    if codec_dim is not None:
        target["latent_dim"] = codec_dim
    check_same_config(what, source, target,
                      ["architecture", *(f for f in SIZE_FIELDS if f in target)])
    return init, provenance


def register_cli(subparsers) -> None:
    p = subparsers.add_parser(
        "denoiser", help="train the diffusion denoiser on codec latents + semantic tokens",
        description="Encode the corpus with a trained codec and semantic tokenizer (cached in "
        "OUT/cache), then train a denoiser with the multi-chunk velocity loss. Resumes from OUT.")
    p.add_argument("--data", required=True, help="a built corpus folder (melody-lab data build)")
    p.add_argument("--codec", required=True, help="a trained codec folder (melody-lab train "
                   "codec), a bundle folder or 'tiny'")
    p.add_argument("--tokenizer", required=True, help="a fitted semantic tokenizer folder, a bundle "
                   "folder or 'tiny'")
    p.add_argument("--out", required=True, help="run folder (checkpoints, log, cache)")
    p.add_argument("--denoiser", default="dpd", choices=["dpd", "unet"], help="architecture")
    p.add_argument("--preset", default="tiny",
                   help="denoiser preset: micro, tiny, tiny_compute (unet), paper, paper_micro")
    p.add_argument("--steps", type=int, default=20000, help="total optimisation steps")
    p.add_argument("--batch-size", type=int, default=8, help="latents per step")
    p.add_argument("--lr", type=float, default=5e-4, help="peak AdamW learning rate")
    p.add_argument("--chunks", type=int, default=None,
                   help="M, chunks per window (multi-chunk loss; default: the preset's, 4 for "
                   "paper/paper_micro, else 5)")
    p.add_argument("--crop-seconds", type=float, default=None,
                   help="train on random crops of this many seconds (default: whole clips); "
                   "the bundle then generates in windows of this length")
    p.add_argument("--init-from", default=None, metavar="BUNDLE_OR_RUN",
                   help="fine-tune: start from the denoiser of a bundle folder, 'tiny' (the shipped "
                   "bundle) or a denoiser run folder (same architecture and size as --denoiser/--preset)")
    p.add_argument("--max-minutes", type=float, default=None, help="stop cleanly after this long")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
