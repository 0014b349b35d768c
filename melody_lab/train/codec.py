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
from ..codecs.discriminators import CodecDiscriminator, DiscriminatorConfig
from ..codecs.losses import CodecLoss
from ..codecs.metrics import evaluate_codec
from ..config import Config
from ..errors import UserError
from ..io import check_same_config, component_record, load_init, locate
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
    loss: str = "sc_logmag"  # or "paper_exact" (codecs/losses.py: how the terms are formed)
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


TRAIN_PRESETS: dict[str, CodecTrainConfig] = {
    "micro": CodecTrainConfig(
        batch_size=2, crop_samples=2048, gan_start_step=3, val_clips=2, stft_ffts=(512, 128, 32),
        discriminator=DiscriminatorConfig(periods=(2, 3), period_channels=(4, 8), resolutions=(256,),
                                          spectrogram_channels=4)),
    "tiny": CodecTrainConfig(discriminator=DiscriminatorConfig(period_channels=(8, 32, 64, 128))),
    "paper": CodecTrainConfig(
        batch_size=16, crop_samples=24000, lr=2e-4, gan_start_step=0, val_clips=64,
        loss="paper_exact", stft_ffts=(8192, 4096, 2048, 1024, 512, 256, 128),
        discriminator=DiscriminatorConfig(period_channels=(32, 128, 512, 1024),
                                          resolutions=(2048, 1024, 512), spectrogram_channels=32)),
    # paper's loss form and GAN from step 0, at micro sizes (crops of 0.2 s = 50 latent frames)
    "paper_micro": CodecTrainConfig(
        batch_size=2, crop_samples=4800, gan_start_step=0, val_clips=2, loss="paper_exact",
        stft_ffts=(1024, 256, 64),
        discriminator=DiscriminatorConfig(periods=(2, 3), period_channels=(4, 8), resolutions=(256,),
                                          spectrogram_channels=4)),
}


def train_config(preset: str, **overrides) -> CodecTrainConfig:
    """A copy of the ``preset``'s training config with field ``overrides``."""
    return TRAIN_PRESETS[preset].replace(**overrides)


@dataclass
class CodecStageConfig(Config):
    """What :func:`train_codec` trains: codec ``codec`` (a registry name) of size ``preset`` with
    the ``train`` hyper-parameters (None: the preset's, :func:`train_config`), optionally
    starting from the codec of ``init_from`` (a bundle, ``tiny``, an export, or the newest
    checkpoint of a codec run folder; with ``train.freeze_encoder``: decoder-only fine-tuning)."""

    codec: str = "vaegan"
    preset: str = "tiny"
    train: CodecTrainConfig | None = None
    init_from: str | None = None

    def __post_init__(self):
        codec_config(self.codec, self.preset)  # a clear error for a bad name or preset
        if self.train is None:
            self.train = train_config(self.preset)
        if self.train.freeze_encoder and not self.init_from:
            raise UserError("freeze_encoder needs init_from (the run whose trained encoder to keep)")

    @classmethod
    def for_preset(cls, preset: str, codec: str = "vaegan") -> "CodecStageConfig":
        return cls(codec, preset)

    def loop(self, steps: int | None = None, **options) -> LoopConfig:
        """See :func:`melody_lab.train.stages.default_loop` (the loop's own cadence)."""
        from .stages import default_loop
        return default_loop("codec", self.preset, steps, **options)


class CodecTask:
    """The codec stage for :func:`run_training`.

    ``train_audio`` / ``valid_audio`` are ``[N, T]`` float tensors at the codec's sample rate
    (whole clips; crops are drawn per step on the CPU). The codec, the discriminator, their
    optimizer state, each batch and the losses live on ``device``.
    """

    name = "codec"

    def __init__(self, codec, config: CodecTrainConfig, train_audio: torch.Tensor,
                 valid_audio: torch.Tensor, device: torch.device | str = "cpu"):
        if config.crop_samples % codec.hop_length:
            raise ValueError(f"crop_samples {config.crop_samples} must be a multiple of the hop "
                             f"length {codec.hop_length}")
        if train_audio.shape[-1] < config.crop_samples:
            raise UserError(f"training clips ({train_audio.shape[-1]} samples) are shorter than "
                            f"the crop ({config.crop_samples} samples)")
        self.device = torch.device(device)
        self.codec, self.config = codec.to(self.device), config
        self.loss = CodecLoss(config.loss)
        self.train_audio = train_audio
        self.valid_audio = valid_audio[: config.val_clips].to(self.device)
        self.discriminator = CodecDiscriminator(config.discriminator).to(self.device)
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
        audio = self.sample_batch(generator).to(self.device)
        recon, aux = self.codec.forward_train(audio)
        stft = self.loss.reconstruction(audio, recon, cfg.stft_ffts)
        bottleneck = (cfg.kl_weight * aux["kl"] if "kl" in aux
                      else cfg.commit_weight * aux["commit"])
        loss = cfg.stft_weight * stft + bottleneck
        terms = {"stft": stft, **aux}  # read back once, after the step (one sync on a GPU)

        if step >= cfg.gan_start_step:
            d_loss = self.loss.discriminator(self.discriminator(audio),
                                             self.discriminator(recon.detach()))
            self.opt_disc.zero_grad(set_to_none=True)
            d_loss.backward()
            distributed.average_gradients(self.discriminator)
            torch.nn.utils.clip_grad_norm_(self.discriminator.parameters(), cfg.grad_clip)
            self.opt_disc.step()
            with torch.no_grad():  # real features are only targets for feature matching
                real = self.discriminator(audio)
            fake = self.discriminator(recon)
            adv, fm = self.loss.generator(real, fake)
            loss = loss + cfg.adv_weight * adv + cfg.fm_weight * fm
            terms.update(disc=d_loss, adv=adv, fm=fm)

        self.opt_gen.zero_grad(set_to_none=True)
        loss.backward()
        distributed.average_gradients(self.codec)
        torch.nn.utils.clip_grad_norm_(self.trainable, cfg.grad_clip)
        self.opt_gen.step()
        self.discriminator.zero_grad(set_to_none=True)  # drop the generator pass's D gradients
        terms["loss"] = loss
        return {k: v.item() for k, v in terms.items()}

    def validate(self) -> dict[str, float]:
        return evaluate_codec(self.codec, self.valid_audio)


def load_split_audio(root: str | Path, split: str, sample_rate: int) -> torch.Tensor:
    """All clips of ``split`` in a built corpus as ``[N, T]`` (``melody_lab.data.splits.load_split``)."""
    from ..data.splits import load_split

    return load_split(root, split, sample_rate).audio


def train_codec(config: CodecStageConfig, data: str | Path, out: str | Path,
                loop: LoopConfig | None = None) -> dict:
    """Build codec + task, load the corpus, run the shared loop; returns the final loop state."""
    loop = loop or config.loop()
    device = distributed.setup()
    torch.manual_seed(loop.seed)  # the initial weights (codec and discriminator) follow the seed
    codec = build_codec(config.codec, config.preset)
    init, provenance = None, {}
    if config.init_from is not None:  # any source of codec weights (io.resolve), checked first
        init, provenance = load_init("codec", config.init_from)
        check_same_config(f"--init-from {config.init_from}",
                          {"architecture": init.name, **init.config.to_dict()},
                          {"architecture": config.codec, **codec.config.to_dict()},
                          ["architecture", "sample_rate", "enc_channels", "dec_channels",
                           "latent_dim", "enc_strides", "dec_strides"])
        codec = init  # fine-tuning keeps the source's architecture
    cfg = config.train
    task = CodecTask(codec, cfg, load_split_audio(data, "train", codec.sample_rate),
                     load_split_audio(data, "valid", codec.sample_rate), device)
    record = {"model": component_record(codec, preset=config.preset), "train": cfg.to_dict(),
              **provenance}
    if init is not None and latest_checkpoint(out) is None:
        run = locate(config.init_from)  # a codec run folder: its discriminator too
        ckpt = latest_checkpoint(run) if (run / "latest").exists() else None
        if ckpt is not None:
            load_checkpoint(ckpt, task.modules())
    return run_training(task, out, loop, record)


def register_cli(subparsers) -> None:
    p = subparsers.add_parser("codec", help="train the audio codec (vaegan or vqvae)",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--codec", choices=["vaegan", "vqvae"], default="vaegan")
    p.add_argument("--preset", choices=list(TRAIN_PRESETS), default="tiny")
    p.add_argument("--data", required=True, help="a built corpus folder (metadata.jsonl, audio/)")
    p.add_argument("--out", required=True, help="run folder; an existing run there is resumed")
    p.add_argument("--steps", type=int, default=20000, help="total training steps")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="stop cleanly (with a checkpoint) after this much wall time")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=None, help="default: the preset's")
    p.add_argument("--val-every", type=int, default=500)
    p.add_argument("--ckpt-every", type=int, default=250)
    p.add_argument("--init-from", default=None, metavar="BUNDLE_OR_RUN",
                   help="fine-tune: start from the codec of a bundle folder, 'tiny' (the shipped "
                   "bundle) or the newest weights of a codec run folder (with its discriminator)")
    p.add_argument("--freeze-encoder", action="store_true",
                   help="train only the decoder (keeps the latent space fixed; needs --init-from)")
    p.add_argument("--gan-start-step", type=int, default=None, metavar="STEP",
                   help="step from which the adversarial and feature-matching losses are on "
                        "(default: the preset's; 0 when fine-tuning a decoder that already trained)")
