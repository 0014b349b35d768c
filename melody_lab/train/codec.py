"""``melody-lab train codec``: train the VAE-GAN or VQ-VAE codec with the shared loop.

    melody-lab train codec --codec vaegan --preset tiny --data /work/data/tiny --out runs/codec \\
        [--steps N] [--max-minutes M] [--seed S] [--batch-size B]

Each step draws ``batch_size`` random crops (clip and offset from the step's generator, so
resume is exact), runs the codec, and optimises 50·MR-STFT + KL (VAE-GAN) or + commitment
(VQ-VAE); from ``gan_start_step`` on, the multi-period + multi-resolution-spectrogram
discriminators are trained with LSGAN and the codec adds 1·LSGAN + 20·feature matching.
Validation decodes the first ``val_clips`` clips of the valid split and reports reconstruction
metrics plus the latent's spread.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..codecs import build_codec, codec_config
from ..codecs.build import codec_record
from ..codecs.discriminators import CodecDiscriminator, DiscriminatorConfig
from ..codecs.losses import (feature_matching_loss, lsgan_discriminator_loss, lsgan_generator_loss,
                             mr_stft_loss)
from ..codecs.metrics import reconstruction_metrics
from ..config import Config
from ..errors import UserError
from . import distributed
from .checkpoint import latest_checkpoint, load_checkpoint
from .loop import LoopConfig, run_training


@dataclass
class CodecTrainConfig(Config):
    """Hyper-parameters of codec training (loss weights default to the paper's)."""

    batch_size: int = 8
    crop_samples: int = 8192  # a multiple of the hop length
    lr: float = 2e-4
    betas: tuple[float, float] = (0.8, 0.99)
    grad_clip: float = 100.0
    stft_ffts: tuple[int, ...] = (2048, 1024, 512, 256, 128, 64, 32)
    stft_weight: float = 50.0
    fm_weight: float = 20.0
    adv_weight: float = 1.0
    kl_weight: float = 0.005
    commit_weight: float = 10.0
    gan_start_step: int = 1500  # pure reconstruction before this step
    val_clips: int = 16
    # Decoder-only fine-tuning: keep the encoder (and so the latent space) fixed. Used to keep
    # improving the decoder while a diffusion model trains on latents of the frozen encoder.
    freeze_encoder: bool = False
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)


TRAIN_PRESETS: dict[str, dict] = {
    "micro": dict(batch_size=2, crop_samples=2048, gan_start_step=3, val_clips=2,
                  stft_ffts=(512, 128, 32),
                  discriminator=DiscriminatorConfig(periods=(2, 3), period_channels=(4, 8),
                                                    resolutions=(256,), spectrogram_channels=4)),
    "tiny": dict(discriminator=DiscriminatorConfig(period_channels=(8, 32, 64, 128))),
    "paper": dict(batch_size=16, crop_samples=24000, lr=2e-4, gan_start_step=0, val_clips=64,
                  stft_ffts=(8192, 4096, 2048, 1024, 512, 256, 128, 64, 32),
                  discriminator=DiscriminatorConfig(period_channels=(32, 128, 512, 1024),
                                                    resolutions=(2048, 1024, 512),
                                                    spectrogram_channels=32)),
}


def train_config(preset: str, **overrides) -> CodecTrainConfig:
    return CodecTrainConfig(**TRAIN_PRESETS[preset]).replace(**overrides)


class CodecTask:
    """The codec stage for :func:`run_training`.

    ``train_audio`` / ``valid_audio`` are ``[N, T]`` float tensors at the codec's sample rate
    (whole clips; crops are drawn per step).
    """

    name = "codec"

    def __init__(self, codec, config: CodecTrainConfig, train_audio: torch.Tensor,
                 valid_audio: torch.Tensor):
        if config.crop_samples % codec.hop_length:
            raise ValueError(f"crop_samples {config.crop_samples} must be a multiple of the hop "
                             f"length {codec.hop_length}")
        if train_audio.shape[-1] < config.crop_samples:
            raise UserError(f"training clips ({train_audio.shape[-1]} samples) are shorter than "
                            f"the crop ({config.crop_samples} samples)")
        self.codec, self.config = codec, config
        self.train_audio, self.valid_audio = train_audio, valid_audio[: config.val_clips]
        self.discriminator = CodecDiscriminator(config.discriminator)
        distributed.broadcast_parameters(codec, self.discriminator)
        if config.freeze_encoder:
            codec.encoder.requires_grad_(False)
        self.trainable = [p for p in codec.parameters() if p.requires_grad]
        self.opt_gen = torch.optim.AdamW(self.trainable, lr=config.lr, betas=config.betas)
        self.opt_disc = torch.optim.AdamW(self.discriminator.parameters(), lr=config.lr,
                                          betas=config.betas)

    def modules(self):
        return {"codec": self.codec, "discriminator": self.discriminator}

    def optimizers(self):
        return {"opt_codec": self.opt_gen, "opt_discriminator": self.opt_disc}

    def sample_batch(self, generator: torch.Generator) -> torch.Tensor:
        """``[batch_size, crop_samples]`` random crops drawn from ``generator`` only."""
        n, t = self.train_audio.shape
        clips = torch.randint(0, n, (self.config.batch_size,), generator=generator)
        starts = torch.randint(0, t - self.config.crop_samples + 1, (self.config.batch_size,),
                               generator=generator)
        return torch.stack([self.train_audio[c, s: s + self.config.crop_samples]
                            for c, s in zip(clips.tolist(), starts.tolist())]).float()

    def train_step(self, step: int, generator: torch.Generator) -> dict[str, float]:
        cfg = self.config
        audio = self.sample_batch(generator)
        recon, aux = self.codec.forward_train(audio)
        stft = mr_stft_loss(audio, recon, cfg.stft_ffts)
        bottleneck = (cfg.kl_weight * aux["kl"] if "kl" in aux
                      else cfg.commit_weight * aux["commit"])
        loss = cfg.stft_weight * stft + bottleneck
        logs = {"stft": stft.item(), **{k: v.item() for k, v in aux.items()}}

        if step >= cfg.gan_start_step:
            d_loss = lsgan_discriminator_loss(self.discriminator(audio),
                                              self.discriminator(recon.detach()))
            self.opt_disc.zero_grad(set_to_none=True)
            d_loss.backward()
            distributed.average_gradients(self.discriminator)
            torch.nn.utils.clip_grad_norm_(self.discriminator.parameters(), cfg.grad_clip)
            self.opt_disc.step()
            with torch.no_grad():  # real features are only targets for feature matching
                real = self.discriminator(audio)
            fake = self.discriminator(recon)
            adv, fm = lsgan_generator_loss(fake), feature_matching_loss(real, fake)
            loss = loss + cfg.adv_weight * adv + cfg.fm_weight * fm
            logs.update(disc=d_loss.item(), adv=adv.item(), fm=fm.item())

        self.opt_gen.zero_grad(set_to_none=True)
        loss.backward()
        distributed.average_gradients(self.codec)
        torch.nn.utils.clip_grad_norm_(self.trainable, cfg.grad_clip)
        self.opt_gen.step()
        self.discriminator.zero_grad(set_to_none=True)  # drop the generator pass's D gradients
        logs["loss"] = loss.item()
        return logs

    def validate(self) -> dict[str, float]:
        return evaluate_codec(self.codec, self.valid_audio)


@torch.no_grad()
def evaluate_codec(codec, audio: torch.Tensor, batch_size: int = 8) -> dict[str, float]:
    """Reconstruction metrics over ``audio [N, T]`` plus latent statistics (std, clipped fraction)."""
    codec.eval()
    recon, latents = [], []
    for chunk in audio.split(batch_size):
        z = codec.encode(chunk.float())
        latents.append(z)
        recon.append(codec.decode(z, length=chunk.shape[-1]))
    z = torch.cat(latents)
    metrics = reconstruction_metrics(audio.float(), torch.cat(recon), codec.sample_rate)
    metrics.update(z_std=z.std().item(), z_abs_max=z.abs().max().item(),
                   z_clipped=(z.abs() >= 0.999).float().mean().item())
    return metrics


def load_split_audio(root: str | Path, split: str, sample_rate: int) -> torch.Tensor:
    """All clips of ``split`` in a built corpus as ``[N, T]`` (via ``melody_lab.data.ClipDataset``)."""
    from ..data import ClipDataset

    dataset = ClipDataset(root, split)
    if len(dataset) == 0:
        raise UserError(f"the {split!r} split of {root} is empty")
    if dataset.sample_rate != sample_rate:
        raise UserError(f"{root} is at {dataset.sample_rate} Hz but the codec expects "
                        f"{sample_rate} Hz; build the corpus at {sample_rate} Hz or pick another preset")
    return dataset.load_all_audio()


def train_codec(codec_name: str, preset: str, data: str | Path, out: str | Path,
                loop: LoopConfig, init_from: str | Path | None = None, **train_overrides) -> dict:
    """Build codec + task, load the corpus, run the shared loop; returns the final loop state.

    ``init_from``: a codec run folder whose newest weights (codec and discriminator) start this
    run — with ``freeze_encoder=True`` this continues training the decoder alone.
    """
    distributed.setup(allow_cuda=False)  # this stage trains on CPU ranks (gloo) under torchrun
    torch.manual_seed(loop.seed)  # the initial weights (codec and discriminator) follow the seed
    codec = build_codec(codec_name, preset)
    cfg = train_config(preset, **train_overrides)
    task = CodecTask(codec, cfg, load_split_audio(data, "train", codec.sample_rate),
                     load_split_audio(data, "valid", codec.sample_rate))
    record = {"codec": codec_record(codec, preset), "train": cfg.to_dict()}
    if init_from is not None:
        record["init_from"] = str(Path(init_from).resolve())
        if latest_checkpoint(out) is None:  # a fresh run: start from the other run's weights
            ckpt = latest_checkpoint(init_from)
            if ckpt is None:
                raise UserError(f"--init-from {init_from} has no checkpoint")
            load_checkpoint(ckpt, task.modules())
    return run_training(task, out, loop, record)


def _run(args) -> int:
    overrides = {"batch_size": args.batch_size} if args.batch_size else {}
    if args.gan_start_step is not None:
        if args.gan_start_step < 0:
            raise UserError(f"--gan-start-step must be >= 0, got {args.gan_start_step}")
        overrides["gan_start_step"] = args.gan_start_step
    codec_config(args.codec, args.preset)  # fail early on a bad name/preset
    loop = LoopConfig(max_steps=args.steps, seed=args.seed, max_minutes=args.max_minutes,
                      val_every=args.val_every, ckpt_every=args.ckpt_every, log_every=10)
    if args.freeze_encoder:
        if not args.init_from:
            raise UserError("--freeze-encoder needs --init-from RUN (the trained encoder to keep)")
        overrides["freeze_encoder"] = True
    state = train_codec(args.codec, args.preset, args.data, args.out, loop, args.init_from,
                        **overrides)
    print(f"codec: stopped at step {state['step']}; validation: {state.get('val')}")
    return 0


def register_cli(subparsers) -> None:
    p = subparsers.add_parser("codec", help="train the audio codec (vaegan or vqvae)",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--codec", choices=["vaegan", "vqvae"], default="vaegan")
    p.add_argument("--preset", choices=["micro", "tiny", "paper"], default="tiny")
    p.add_argument("--data", required=True, help="a built corpus folder (metadata.jsonl, audio/)")
    p.add_argument("--out", required=True, help="run folder; an existing run there is resumed")
    p.add_argument("--steps", type=int, default=20000, help="total training steps")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="stop cleanly (with a checkpoint) after this much wall time")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=None, help="default: the preset's")
    p.add_argument("--val-every", type=int, default=500)
    p.add_argument("--ckpt-every", type=int, default=250)
    p.add_argument("--init-from", default=None, metavar="RUN",
                   help="start from the newest weights of another codec run folder")
    p.add_argument("--freeze-encoder", action="store_true",
                   help="train only the decoder (keeps the latent space fixed; needs --init-from)")
    p.add_argument("--gan-start-step", type=int, default=None, metavar="STEP",
                   help="step from which the adversarial and feature-matching losses are on "
                        "(default: the preset's; 0 when fine-tuning a decoder that already trained)")
    p.set_defaults(func=_run)
