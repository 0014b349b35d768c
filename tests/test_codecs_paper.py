"""The paper's VAE-GAN: stage widths as stated, the ``paper_exact`` losses against direct formulas,
posterior sampling of the diffusion latent, and the paper preset's parameter counts."""
import math

import numpy as np
import pytest
import torch

from melody_lab.codecs import build_codec, codec_config
from melody_lab.codecs.blocks import Encoder, MultiReceptiveField, PaddedConv
from melody_lab.codecs.losses import (CodecLoss, feature_matching_loss, lsgan_discriminator_loss,
                                      lsgan_generator_loss, mr_stft_l1_loss)
from melody_lab.errors import UserError
from melody_lab.train.codec import CodecTask, train_config


def direct_magnitude(audio: np.ndarray, n_fft: int) -> np.ndarray:
    """|STFT| by explicit framing: reflect-pad n_fft/2, periodic Hann of n_fft/2 centred in n_fft,
    hop n_fft/4 — ``[B, frames, bins]``."""
    win, hop = n_fft // 2, n_fft // 4
    window = np.zeros(n_fft)
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)
    window[(n_fft - win) // 2: (n_fft - win) // 2 + win] = hann
    padded = np.pad(audio, ((0, 0), (n_fft // 2, n_fft // 2)), mode="reflect")
    frames = 1 + audio.shape[-1] // hop
    out = np.stack([padded[:, i * hop: i * hop + n_fft] * window for i in range(frames)], axis=1)
    return np.abs(np.fft.rfft(out, axis=-1))


def test_paper_stft_loss_is_a_sum_of_linear_magnitude_l1_with_half_windows():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(2, 1000, generator=g, dtype=torch.float64).unbind(0)
    x, y = x.reshape(2, 500), y.reshape(2, 500)
    n_ffts = (128, 64, 32)
    expected = sum(np.abs(direct_magnitude(y.numpy(), n) - direct_magnitude(x.numpy(), n)).mean()
                   for n in n_ffts)
    got = mr_stft_l1_loss(x, y, n_ffts)
    assert got.item() == pytest.approx(expected, rel=1e-9)
    assert mr_stft_l1_loss(x, x, n_ffts).item() == 0.0
    # a sum, not a mean: one resolution more adds its own term
    assert (mr_stft_l1_loss(x, y, n_ffts + (16,)) - got).item() == pytest.approx(
        np.abs(direct_magnitude(y.numpy(), 16) - direct_magnitude(x.numpy(), 16)).mean(), rel=1e-9)


def random_outputs(seed: int):
    """Outputs of 3 sub-discriminators with 1–3 feature maps of different shapes each."""
    g = torch.Generator().manual_seed(seed)
    layers = [[(2, 4, 5)], [(2, 3, 7), (2, 6)], [(2, 2, 2, 3), (2, 5), (2, 1, 9)]]
    return [(torch.randn(2, 1, 3 + i, generator=g), [torch.randn(s, generator=g) for s in shapes])
            for i, shapes in enumerate(layers)]


def test_feature_matching_and_lsgan_sum_over_sub_discriminators():
    real, fake = random_outputs(1), random_outputs(2)
    l1 = [np.abs(r.numpy() - f.numpy()).mean() for (_, rf), (_, ff) in zip(real, fake)
          for r, f in zip(rf, ff)]
    assert feature_matching_loss(real, fake, "sum").item() == pytest.approx(sum(l1), rel=1e-6)
    assert feature_matching_loss(real, fake).item() == pytest.approx(np.mean(l1), rel=1e-6)
    gen = [((s.numpy() - 1) ** 2).mean() for s, _ in fake]
    assert lsgan_generator_loss(fake, "sum").item() == pytest.approx(sum(gen), rel=1e-6)
    assert lsgan_generator_loss(fake).item() == pytest.approx(np.mean(gen), rel=1e-6)
    disc = [((r.numpy() - 1) ** 2).mean() + (f.numpy() ** 2).mean()
            for (r, _), (f, _) in zip(real, fake)]
    assert lsgan_discriminator_loss(real, fake, "sum").item() == pytest.approx(sum(disc), rel=1e-6)
    assert lsgan_discriminator_loss(real, fake).item() == pytest.approx(np.mean(disc), rel=1e-6)

    paper, default = CodecLoss("paper_exact"), CodecLoss("sc_logmag")
    adv, fm = paper.generator(real, fake)
    assert (adv.item(), fm.item()) == pytest.approx((sum(gen), sum(l1)), rel=1e-6)
    assert default.discriminator(real, fake).item() == pytest.approx(np.mean(disc), rel=1e-6)
    with pytest.raises(UserError, match="paper_exact"):
        CodecLoss("paper")


def test_paper_preset_trains_with_the_paper_losses_and_others_keep_theirs():
    paper = train_config("paper")
    assert paper.loss == "paper_exact"
    assert paper.stft_ffts == (8192, 4096, 2048, 1024, 512, 256, 128)
    assert (paper.stft_weight, paper.fm_weight, paper.adv_weight, paper.kl_weight) == (
        50.0, 20.0, 1.0, 0.005)
    assert train_config("tiny").loss == train_config("micro").loss == "sc_logmag"


def test_a_paper_exact_gan_step_sums_what_the_default_averages():
    audio = 0.3 * torch.randn(4, 4096, generator=torch.Generator().manual_seed(3))
    logs = {}
    for loss in ("sc_logmag", "paper_exact"):
        torch.manual_seed(0)  # same codec, discriminator and posterior noise for both
        cfg = train_config("micro", loss=loss, gan_start_step=0)
        task = CodecTask(build_codec("vaegan", "micro"), cfg, audio, audio[:2])
        logs[loss] = task.train_step(0, torch.Generator().manual_seed(0))
    mean, total = logs["sc_logmag"], logs["paper_exact"]
    assert all(math.isfinite(v) for v in total.values())
    # micro: 2 period discriminators (3 feature maps each) + 1 spectrogram one (5 maps). Adam's
    # first step does not depend on the gradient's scale, so both discriminators end up alike.
    assert total["adv"] == pytest.approx(3 * mean["adv"], rel=1e-3)
    assert total["fm"] == pytest.approx(11 * mean["fm"], rel=1e-3)
    assert total["disc"] == pytest.approx(3 * mean["disc"], rel=1e-6)


def test_paper_encoder_stages_have_the_listed_widths():
    cfg = codec_config("vaegan", "paper")
    assert (cfg.enc_channels, cfg.enc_strides, cfg.enc_kernels) == (
        (32, 64, 128, 256), (2, 3, 4, 4), (5, 7, 9, 9))
    assert (cfg.dec_channels, cfg.dec_strides, cfg.dec_kernels) == (
        (768, 384, 192, 96), (4, 4, 3, 2), (9, 9, 5, 7))
    assert (cfg.sample_rate, cfg.latent_dim, cfg.enc_layout) == (24000, 16, "stage")
    enc = Encoder(cfg.enc_channels, cfg.enc_strides, cfg.enc_kernels, cfg.res_kernels,
                  cfg.res_dilations, cfg.activation, 2 * cfg.latent_dim, cfg.enc_layout)
    strided = [m.conv for m in enc.modules() if isinstance(m, PaddedConv) and m.conv.stride[0] > 1]
    assert [(c.out_channels, c.stride[0], c.kernel_size[0]) for c in strided] == [
        (32, 2, 5), (64, 3, 7), (128, 4, 9), (256, 4, 9)]
    mrf_widths = [m.blocks[0].layers[0][1].conv.in_channels for m in enc.modules()
                  if isinstance(m, MultiReceptiveField)]
    assert mrf_widths == [32, 64, 128, 256]
    with torch.no_grad():
        assert enc(torch.randn(1, 1, 960)).shape == (1, 32, 10)  # 24 kHz, hop 96 → 250 Hz


def test_tiny_encoder_keeps_its_layout():
    cfg = codec_config("vaegan", "tiny")
    assert cfg.enc_layout == "widen"
    codec = build_codec("vaegan", "tiny")
    strided = [m.conv.out_channels for m in codec.encoder.modules()
               if isinstance(m, PaddedConv) and m.conv.stride[0] > 1]
    assert strided == [32, 64, 128, 256]  # channels[1:] + 2·channels[-1], as shipped


def test_posterior_sampling_draws_mean_plus_sigma_noise():
    audio = 0.3 * torch.randn(2, 4096, generator=torch.Generator().manual_seed(5))
    codec = build_codec("vaegan", "micro").eval()
    sampler = build_codec("vaegan", "micro", posterior_sample=True).eval()
    sampler.load_state_dict(codec.state_dict())
    with torch.no_grad():
        mean, logvar = codec.posterior(audio)
        z_mean = codec.encode(audio)
        assert torch.equal(z_mean, codec.encode(audio))  # default: the posterior mean
        assert torch.equal(z_mean, (mean / 3).clamp(-1, 1))
        torch.manual_seed(0)
        z1 = sampler.encode(audio)
        torch.manual_seed(0)
        assert torch.equal(z1, sampler.encode(audio))  # repeatable under a seed
        assert not torch.equal(z1, sampler.encode(audio))
    inside = z1.abs() < 1
    eps = (3 * z1 - mean)[inside] / (0.5 * logvar).exp()[inside]
    assert inside.float().mean() > 0.5
    assert abs(eps.mean().item()) < 0.1 and abs(eps.std().item() - 1) < 0.1


PAPER_COUNTS = {"encoder": 11_398_304, "decoder": 107_306_594}  # docs/fidelity.md, docs/codecs.md


def test_paper_codec_parameter_counts_match_the_docs():
    with torch.device("meta"):  # shapes only: no memory, no init time
        codec = build_codec("vaegan", "paper")
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert {"encoder": count(codec.encoder), "decoder": count(codec.decoder)} == PAPER_COUNTS
    # the MRFs hold almost everything: 6·Σk·C² weights per MRF (3 kernels × 3 dilations × 2 convs)
    mrf = lambda c: 6 * sum(codec.config.res_kernels) * c * c  # noqa: E731
    mrfs = [m for m in codec.decoder.modules() if isinstance(m, MultiReceptiveField)]
    weights = sum(p.numel() for m in mrfs for n, p in m.named_parameters()
                  if n.endswith("original1"))
    assert weights == sum(mrf(c) for c in (768, 384, 192, 96))


def test_paper_corpus_clips_fit_the_paper_codec():
    from melody_lab.data.presets import get_preset

    corpus, codec = get_preset("paper"), codec_config("vaegan", "paper")
    hop = math.prod(codec.enc_strides)
    assert (corpus.sample_rate, corpus.clip_seconds, hop) == (codec.sample_rate, 10.0, 96)
    assert corpus.clip_samples % hop == 0 and corpus.clip_samples // hop == 2500  # 250 Hz latent
    assert (corpus.clip_samples // hop) % 4 == 0  # M = 4 chunks of 625 frames (2.5 s)
    assert corpus.render_rate >= 2 * corpus.sample_rate
