"""The denoiser stage: multi-chunk batches, token-aligned crops, EMA, CFG dropout."""
import torch

from melody_lab.diffusion import NULL_TOKEN
from melody_lab.train.denoiser import DenoiserTask, DenoiserTrainConfig


def _cache(n=6, frames=625, tokens=125, dim=8):
    g = torch.Generator().manual_seed(0)
    latents = torch.rand(n, frames, dim, generator=g) * 2 - 1
    # token t of every clip is t itself, so a crop's tokens reveal where the crop started
    return {"latents": latents.half(), "tokens": torch.arange(tokens).repeat(n, 1).int() % 32}


class Recorder(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net, self.calls = net, []

    def forward(self, z, angles, tokens):
        self.calls.append((z, angles, tokens))
        return self.net(z, angles, tokens)


def test_crops_stay_on_the_token_grid_and_ema_moves():
    cache = _cache()
    task = DenoiserTask(DenoiserTrainConfig(preset="micro", crop_seconds=2.0, batch_size=4,
                                            cfg_dropout=0.5, val_clips=2), cache, cache)
    task.train_net = recorder = Recorder(task.net)
    ema_before = [p.clone() for p in task.ema.parameters()]
    seen_null = False
    for step in range(6):
        task.train_step(step, torch.Generator().manual_seed(step))
        z, angles, tokens = recorder.calls[-1]
        assert z.shape == (4, 250, 8) and angles.shape == (4, 250) and tokens.shape == (4, 50)
        kept = tokens[(tokens != NULL_TOKEN).all(1)]
        seen_null |= bool((tokens == NULL_TOKEN).all(1).any())
        for row in kept:  # consecutive token ids: the crop is contiguous and token-aligned
            assert torch.equal(row, (row[0] + torch.arange(50)) % 32)
        # per-chunk angles: 5 chunks of 50 frames, constant inside each chunk
        assert all(len(a.reshape(5, 50).unique(dim=1).T) == 1 for a in angles)
    assert seen_null
    assert any(not torch.equal(a, b) for a, b in zip(ema_before, task.ema.parameters()))
    assert set(task.validate()) >= {"velocity_mse", "si_snri_db"}


def test_latent_cache_is_reused_only_for_the_same_weights(micro_corpus, tmp_path):
    from melody_lab.codecs import build_codec
    from melody_lab.semantic import SemanticTokenizer
    from melody_lab.semantic.tokenizer import TOKENIZER_PRESETS
    from melody_lab.train.latent_cache import build_latent_cache

    torch.manual_seed(0)
    codec = build_codec("vaegan", "micro")
    tokenizer = SemanticTokenizer(TOKENIZER_PRESETS["micro"])
    tokenizer.fit(torch.randn(4, 32000) * 0.1, seed=0)
    first = build_latent_cache(micro_corpus, "valid", codec, tokenizer, tmp_path, progress=False)
    marker = (tmp_path / "valid.safetensors").stat().st_mtime_ns
    again = build_latent_cache(micro_corpus, "valid", codec, tokenizer, tmp_path, progress=False)
    assert (tmp_path / "valid.safetensors").stat().st_mtime_ns == marker  # reused, not rebuilt
    assert torch.equal(first["latents"], again["latents"])
    with torch.no_grad():
        next(codec.parameters()).add_(0.1)  # "the codec kept training"
    changed = build_latent_cache(micro_corpus, "valid", codec, tokenizer, tmp_path, progress=False)
    assert not torch.equal(first["latents"], changed["latents"])
    assert first["latents"].shape[1:] == (1000, 8) and first["tokens"].shape[1] == 50
