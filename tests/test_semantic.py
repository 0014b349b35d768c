"""Semantic stage units: MuLan, RVQ, tokenizer, LM (micro presets, synthetic audio)."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from melody_lab.errors import UserError
from melody_lab.semantic import (TOKENIZER_PRESETS, ResidualVQ, SemanticLM, SemanticTokenizer,
                                 build_lm, build_mulan)
from melody_lab.semantic.features import mel_chroma_onset
from melody_lab.semantic.retrieval import retrieval_metrics
from melody_lab.train.mulan import MULAN_TRAIN_PRESETS, MuLanTask
from melody_lab.data.splits import Split

SR = 16000
INSTRUMENTS = {"flute": [1, 0.1, 0.05], "fiddle": [1, 0.6, 0.5, 0.4, 0.3], "organ": [1, 0, 0.8, 0, 0.6]}


def tune(rng, instrument, notes_per_second, root_midi, seconds=2.0):
    """A melody of decaying harmonic notes from a major scale: timbre, tempo and key vary."""
    n = int(SR * seconds)
    out, count = np.zeros(n), int(seconds * notes_per_second)
    for i in range(count):
        f = 440 * 2 ** ((root_midi + [0, 2, 4, 5, 7, 9, 11][rng.integers(7)] - 69) / 12)
        start, end = i * n // count, (i + 1) * n // count
        t = np.arange(end - start) / SR
        out[start:end] = sum(a * np.sin(2 * np.pi * f * (k + 1) * t)
                             for k, a in enumerate(INSTRUMENTS[instrument])) * np.exp(-3 * t)
    return torch.from_numpy(0.3 * out / np.abs(out).max()).float()


def synthetic_split(copies=2, seed=0):
    """12 distinct captions (instrument × tempo × key) × ``copies`` clips each."""
    rng = np.random.default_rng(seed)
    audio, captions = [], []
    for instrument in INSTRUMENTS:
        for tempo, rate in (("slow", 2), ("fast", 7)):
            for key, root in (("C", 60), ("E", 64)):
                for _ in range(copies):
                    audio.append(tune(rng, instrument, rate, root))
                    captions.append(f"a {tempo} tune in {key} major played on the {instrument}")
    n = len(captions)
    return Split(torch.stack(audio), captions, [f"c{i}" for i in range(n)], [{}] * n, SR)


# ---------------------------------------------------------------------------------------- MuLan
def test_mulan_embeddings_unit_norm_deterministic_and_batch_independent():
    torch.manual_seed(0)
    mulan = build_mulan("micro").eval()
    audio = torch.randn(3, SR) * 0.1
    with torch.no_grad():
        a1, a2 = mulan.embed_audio(audio), mulan.embed_audio(audio)
        single = mulan.embed_audio(audio[1])
        t1 = mulan.embed_text(["a jig on the fiddle", "a slow air"])
        t2 = mulan.embed_text(["a slow air"])
    assert a1.shape == (3, 32) and t1.shape == (2, 32)
    assert torch.allclose(a1.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert torch.allclose(t1.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert torch.equal(a1, a2)
    assert torch.allclose(single[0], a1[1], atol=1e-5)
    assert torch.allclose(t2[0], t1[1], atol=1e-5)


def test_mulan_micro_training_beats_chance_and_pairs_come_closer():
    train = synthetic_split()
    torch.manual_seed(0)
    mulan = build_mulan("micro")
    task = MuLanTask(mulan, MULAN_TRAIN_PRESETS["micro"], train, train, total_steps=120)
    mulan.eval()
    with torch.no_grad():
        before = retrieval_metrics(*task.embed_split(task.mels, task.text_feats, task.cap_idx),
                                   task.cap_idx)
    mulan.train()
    for step in range(120):
        task.train_step(step, torch.Generator().manual_seed(step))
    mulan.eval()
    with torch.no_grad():
        text, audio = task.embed_split(task.mels, task.text_feats, task.cap_idx)
    after = retrieval_metrics(text, audio, task.cap_idx)
    assert after["caption_r@1"] >= 0.8 > 5 * after["chance_caption_r@1"]
    assert after["caption_r@1"] > before["caption_r@1"] + 0.2
    sims = text @ audio.T
    different = task.cap_idx[:, None] != task.cap_idx[None, :]
    assert sims.diagonal().mean() > sims[different].mean() + 0.3


def test_retrieval_metrics_perfect_and_chance_levels():
    emb = F.normalize(torch.randn(20, 8), dim=-1)
    m = retrieval_metrics(emb, emb, torch.arange(20) // 2)
    assert m["r@1"] == 1.0 and m["median_rank"] == 1.0 and m["caption_r@1"] == 1.0
    assert m["chance_r@1"] == pytest.approx(1 / 20)
    assert m["chance_caption_r@1"] == pytest.approx(2 / 20)


# ------------------------------------------------------------------------------------------ RVQ
def test_rvq_error_falls_with_every_level_and_codes_in_range(tmp_path):
    g = torch.Generator().manual_seed(0)
    fit = F.normalize(torch.randn(300, 16, generator=g), dim=-1)
    held = F.normalize(torch.randn(100, 16, generator=g), dim=-1)
    rvq = ResidualVQ(levels=6, codebook_size=16, dim=16).fit(fit, seed=0)
    for x in (fit, held):
        codes = rvq.quantize(x)
        assert codes.shape == (len(x), 6) and codes.dtype == torch.long
        assert codes.min() >= 0 and codes.max() < 16
        errors = [((rvq.dequantize(codes[:, :l]) - x) ** 2).sum(-1).mean().item()
                  for l in range(1, 7)]
        assert all(b < a for a, b in zip(errors, errors[1:])), errors
    rvq.save_pretrained(tmp_path / "rvq")
    assert torch.equal(ResidualVQ.from_pretrained(tmp_path / "rvq").quantize(held), rvq.quantize(held))
    with pytest.raises(UserError, match="more embeddings"):
        ResidualVQ(levels=2, codebook_size=64, dim=16).fit(fit[:10])


# ------------------------------------------------------------------------------------ tokenizer
@pytest.fixture(scope="module")
def tokenizer():
    return SemanticTokenizer(TOKENIZER_PRESETS["micro"]).fit(synthetic_split(copies=1).audio, seed=0)


@pytest.mark.parametrize("num_samples", [1, 639, 640, 641, 16000, 33333, 80000])
def test_tokenizer_rate_and_vocab_for_any_length(tokenizer, num_samples):
    audio = torch.randn(2, num_samples, generator=torch.Generator().manual_seed(num_samples)) * 0.1
    tokens = tokenizer.tokenize(audio)
    assert tokens.shape == (2, max(1, math.ceil(num_samples / 640)))
    assert tokens.dtype == torch.long and tokens.min() >= 0 and tokens.max() < 16


def test_tokenizer_is_deterministic_and_round_trips(tokenizer, tmp_path):
    audio = synthetic_split(copies=1, seed=5).audio[:4]
    tokens = tokenizer.tokenize(audio)
    assert torch.equal(tokens, tokenizer.tokenize(audio))
    assert len(tokens.unique()) > 4  # music uses several tokens, not one
    tokenizer.save_pretrained(tmp_path / "tok")
    assert torch.equal(SemanticTokenizer.from_pretrained(tmp_path / "tok").tokenize(audio), tokens)


def test_chroma_block_finds_the_pitch_class_of_a_tone():
    t = torch.arange(SR) / SR
    for midi, pitch_class in ((69, 9), (60, 0), (67, 7)):
        tone = 0.3 * torch.sin(2 * math.pi * 440 * 2 ** ((midi - 69) / 12) * t)
        feats = mel_chroma_onset(tone[None], SR, 640, 2048, 24, 55.0, 4000.0)[0]
        assert feats.shape == (25, 24 + 12 + 2)
        assert feats[5:20, 24:36].mean(0).argmax().item() == pitch_class


def test_ssl_features_need_a_local_path():
    with pytest.raises(UserError, match="ssl_path"):
        SemanticTokenizer(TOKENIZER_PRESETS["micro"].replace(features="ssl"))


# ------------------------------------------------------------------------------------------- LM
def test_lm_overfits_a_handful_of_sequences():
    torch.manual_seed(0)
    lm = build_lm("micro")
    g = torch.Generator().manual_seed(1)
    codes, tokens = torch.randint(0, 8, (4, 4), generator=g), torch.randint(0, 16, (4, 30), generator=g)
    opt = torch.optim.Adam(lm.parameters(), lr=3e-3)
    for _ in range(150):
        loss = lm.loss(codes, tokens)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05
    greedy = lm.generate(codes, 30, temperature=0.0)
    assert torch.equal(greedy, tokens)  # the memorised sequences come back, per prompt


@pytest.fixture(scope="module")
def lm():
    torch.manual_seed(0)
    return build_lm("micro").eval()


def test_lm_sampling_is_deterministic_per_seed(lm):
    codes = torch.randint(0, 8, (3, 4), generator=torch.Generator().manual_seed(0))
    a = lm.generate(codes, 40, temperature=1.0, top_k=8, seed=7)
    assert a.shape == (3, 40) and a.min() >= 0 and a.max() < 16
    assert torch.equal(a, lm.generate(codes, 40, temperature=1.0, top_k=8, seed=7))
    assert not torch.equal(a, lm.generate(codes, 40, temperature=1.0, top_k=8, seed=8))


@pytest.mark.parametrize("temperature,top_k", [(0.0, None), (1.0, None), (0.8, 5)])
def test_kv_cached_generation_equals_uncached(lm, temperature, top_k):
    codes = torch.randint(0, 8, (2, 4), generator=torch.Generator().manual_seed(1))
    # 120 tokens > max_tokens (50): also exercises the sliding window
    cached = lm.generate(codes, 120, temperature, top_k, seed=3, use_cache=True)
    plain = lm.generate(codes, 120, temperature, top_k, seed=3, use_cache=False)
    assert torch.equal(cached, plain)


def test_continuation_keeps_the_given_tokens_and_uses_only_the_window(lm):
    codes = torch.randint(0, 8, (2, 4), generator=torch.Generator().manual_seed(2))
    previous = torch.randint(0, 16, (2, 30), generator=torch.Generator().manual_seed(3))
    out = lm.continue_tokens(codes, previous, num_new=25, window=10, seed=4)
    assert out.shape == (2, 55) and torch.equal(out[:, :30], previous)
    # only the last `window` tokens matter: changing older ones changes nothing
    altered = previous.clone()
    altered[:, :20] = (altered[:, :20] + 1) % 16
    again = lm.continue_tokens(codes, altered, num_new=25, window=10, seed=4)
    assert torch.equal(again[:, 30:], out[:, 30:])
    with pytest.raises(UserError, match="window"):
        lm.continue_tokens(codes, previous, 5, window=50)


def test_lm_round_trips_through_safetensors(lm, tmp_path):
    codes = torch.randint(0, 8, (2, 4), generator=torch.Generator().manual_seed(5))
    lm.save_pretrained(tmp_path / "lm")
    loaded = SemanticLM.from_pretrained(tmp_path / "lm")
    assert torch.equal(loaded.generate(codes, 20, seed=1), lm.generate(codes, 20, seed=1))
    with pytest.raises(UserError, match="MuLan codes"):
        lm.generate(torch.full((1, 4), 8), 5)


def test_mulan_half_precision_export_loads_as_float32_and_embeds_alike(tmp_path):
    torch.manual_seed(0)
    mulan = build_mulan("micro").eval()
    audio = torch.randn(2, SR) * 0.1
    mulan.save_pretrained(tmp_path / "m", half=True)
    loaded = type(mulan).from_pretrained(tmp_path / "m")
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    with torch.no_grad():
        assert (loaded.embed_audio(audio) - mulan.embed_audio(audio)).abs().max() < 1e-2


def test_bigram_baseline_beats_unigram_on_sticky_sequences():
    from melody_lab.semantic.evaluate import bigram_cross_entropy
    from melody_lab.train.lm import unigram_cross_entropy

    tokens = torch.arange(8).repeat_interleave(4).repeat(20, 1)  # each token held for 4 frames
    assert bigram_cross_entropy(tokens, tokens, 8) < 1.0 < 2.0 < unigram_cross_entropy(tokens, tokens, 8)


def test_pad_ragged_keeps_each_row_and_masks_the_padding():
    from melody_lab.train.mulan import pad_ragged

    table, mask = pad_ragged(torch.arange(10), [3, 0, 5, 2])
    assert table.tolist() == [[0, 1, 2, 0, 0], [0, 0, 0, 0, 0], [3, 4, 5, 6, 7], [8, 9, 0, 0, 0]]
    assert mask.sum(1).tolist() == [3, 0, 5, 2] and table.dtype == torch.long
    feats = torch.randn(7, 4)
    table, mask = pad_ragged(feats, [2, 3, 0, 2], width=4)  # [rows, width, 4]
    assert table.shape == (4, 4, 4) and torch.equal(table[1, :3], feats[2:5])
    assert not table[~mask].any()
