"""Frame features for the semantic tokenizer, one frame per token (paper: 25 Hz).

Default ``mel_chroma_onset`` — offline, no learnt weights, and one block per musical dimension:

* **log-mel** (timbre, register, loudness): ``n_mels`` bands of a 128 ms STFT;
* **chroma** (pitch class / harmony): STFT power folded onto 12 pitch classes between
  ``chroma_fmin`` and ``chroma_fmax`` with a soft (Gaussian, 0.5-semitone) assignment, normalised to
  a maximum of 1 per frame, so a C-major triad in any octave or instrument looks alike;
* **onset strength** (rhythm): spectral flux of a 4× finer log-mel (10 ms at 16 kHz), reduced to
  its mean and max within each token frame, so note attacks inside a 40 ms frame are not lost.

Frame ``i`` is centred on sample ``i · hop``; ``T`` samples give ``ceil(T / hop)`` frames.
An SSL model (wav2vec2 / wav2vec2-conformer / HuBERT-style) from a *local* folder can replace these
features (``SSLFeatures``, the paper's path): the hidden states of one layer, pooled to the token rate.
"""
from __future__ import annotations

import json
import math
import os
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from ..audio import mel_filterbank, resample, stft_magnitude
from ..errors import UserError


def num_frames(num_samples: int, hop: int) -> int:
    """Tokens for ``num_samples`` of audio: ``ceil(T / hop)`` (5 s at 16 kHz, hop 640 → 125)."""
    return max(1, math.ceil(num_samples / hop))


@lru_cache(maxsize=8)
def chroma_filterbank(sample_rate: int, n_fft: int, fmin: float, fmax: float) -> torch.Tensor:
    """``[12, n_fft//2 + 1]`` soft pitch-class weights (class 0 = C)."""
    freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    valid = (freqs >= fmin) & (freqs <= fmax)
    midi = 69 + 12 * np.log2(np.maximum(freqs, 1e-6) / 440.0)
    diff = (midi[None, :] - np.arange(12)[:, None]) % 12  # distance to each class, circular
    diff = np.minimum(diff, 12 - diff)
    weights = np.exp(-0.5 * (diff / 0.5) ** 2) * valid[None]
    return torch.from_numpy(weights.astype(np.float32))


def mel_chroma_onset(audio: torch.Tensor, sample_rate: int, hop: int, n_fft: int, n_mels: int,
                     chroma_fmin: float, chroma_fmax: float) -> torch.Tensor:
    """Audio ``[B, T]`` → features ``[B, ceil(T / hop), n_mels + 12 + 2]`` (unstandardised)."""
    if audio.dim() == 1:
        audio = audio[None]
    audio = audio.float()
    n = num_frames(audio.shape[-1], hop)
    if audio.shape[-1] < n_fft:  # very short input: pad so the STFT has a full window
        audio = F.pad(audio, (0, n_fft - audio.shape[-1]))
    mag = stft_magnitude(audio, n_fft, hop)[..., :n]  # [B, bins, n]
    mel = torch.log(torch.clamp(mel_filterbank(sample_rate, n_fft, n_mels) @ mag, min=1e-5))
    chroma = chroma_filterbank(sample_rate, n_fft, chroma_fmin, chroma_fmax) @ mag**2
    chroma = chroma / chroma.amax(dim=1, keepdim=True).clamp(min=1e-8)
    fine_hop = hop // 4
    fine_fft = max(256, n_fft // 4)
    fine = stft_magnitude(audio, fine_fft, fine_hop)
    fine = torch.log(torch.clamp(mel_filterbank(sample_rate, fine_fft, 32) @ fine, min=1e-5))
    flux = F.relu(fine[..., 1:] - fine[..., :-1]).mean(1)  # [B, fine frames - 1]
    flux = F.pad(flux, (3, 4 * n + 4))  # frame 4i spans fine frames 4i-2 .. 4i+1
    windows = flux[:, : 4 * n].reshape(len(flux), n, 4)
    onset = torch.stack([windows.mean(-1), windows.amax(-1)], dim=1)  # [B, 2, n]
    return torch.cat([mel, chroma, onset], dim=1).transpose(1, 2)


SSL_POOLINGS = ("mean", "centre")


class SSLFeatures:
    """Hidden states of one layer of a local transformers audio model, pooled to the token rate.

    ``path`` is a folder with ``config.json`` + weights of a model that transformers knows by its
    config (wav2vec2, wav2vec2-conformer — the paper's architecture —, HuBERT, WavLM,
    data2vec-audio …). It is loaded with ``local_files_only=True``; folders that need custom code
    are refused (loading never executes code). When the folder holds ``preprocessor_config.json``
    (a feature extractor saved with the model), its ``sampling_rate`` and ``do_normalize`` are
    used; otherwise audio is resampled to ``model_sample_rate`` and normalised per clip.

    ``layer``: index into the model's hidden states — 0 is the transformer's input (the projected
    conv features), ``i`` the output of layer ``i``, negative counts from the end (-1 = last).
    ``pooling``: how model frames become token frames — ``"mean"`` averages the model frames that
    fall into each token's span (adaptive average pooling), ``"centre"`` takes the model frame
    nearest each token's centre.
    """

    def __init__(self, path: str, layer: int, model_sample_rate: int, pooling: str = "mean"):
        os.environ["HF_HUB_OFFLINE"] = "1"
        if pooling not in SSL_POOLINGS:
            raise UserError(f"unknown SSL pooling {pooling!r}; choose one of {', '.join(SSL_POOLINGS)}")
        try:
            from transformers import AutoModel
            self.model = AutoModel.from_pretrained(path, local_files_only=True,
                                                   trust_remote_code=False).eval()
        except (OSError, ValueError, KeyError) as err:
            raise UserError(f"cannot load an SSL model from local folder {path!r}: {err}") from err
        config = self.model.config
        layers = int(getattr(config, "num_hidden_layers", 0))
        if not -(layers + 1) <= layer <= layers:
            raise UserError(f"ssl_layer {layer} is out of range for {path!r}: the model has "
                            f"{layers} layers, so choose 0 … {layers} (or -1 for the last)")
        self.layer, self.pooling = layer, pooling
        self.model_sample_rate, self.normalize = model_sample_rate, True
        extractor = os.path.join(path, "preprocessor_config.json")
        if os.path.isfile(extractor):
            with open(extractor) as f:
                settings = json.load(f)
            self.model_sample_rate = int(settings.get("sampling_rate", model_sample_rate))
            self.normalize = bool(settings.get("do_normalize", True))
        self.dim = int(config.hidden_size)
        # the conv feature encoder's receptive field minus its total stride: the padding after
        # which L samples give exactly L / stride model frames
        kernels, strides = getattr(config, "conv_kernel", ()), getattr(config, "conv_stride", ())
        field = 1
        for k, st in reversed(list(zip(kernels, strides))):
            field = (field - 1) * st + k
        self.overhang = max(0, field - math.prod(strides))

    @torch.no_grad()
    def __call__(self, audio: torch.Tensor, sample_rate: int, hop: int) -> torch.Tensor:
        """Audio ``[B, T]`` at ``sample_rate`` → ``[B, ceil(T / hop), hidden_size]``."""
        if audio.dim() == 1:
            audio = audio[None]
        n = num_frames(audio.shape[-1], hop)
        x = np.stack([resample(a.numpy(), sample_rate, self.model_sample_rate) for a in audio])
        x = torch.from_numpy(x).float()
        if self.normalize:
            x = (x - x.mean(-1, keepdim=True)) / x.std(-1, keepdim=True).clamp(min=1e-5)
        covered = math.ceil(n * hop * self.model_sample_rate / sample_rate)  # all n token spans
        x = F.pad(x, (0, covered + self.overhang - x.shape[-1]))
        states = self.model(x, output_hidden_states=True).hidden_states[self.layer]  # [B, L, H]
        if self.pooling == "mean":
            return F.adaptive_avg_pool1d(states.transpose(1, 2), n).transpose(1, 2)
        centres = ((torch.arange(n) + 0.5) * states.shape[1] / n).long().clamp(max=states.shape[1] - 1)
        return states[:, centres]
