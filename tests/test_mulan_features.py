"""MuLan's pitch-class/rhythm inputs and its counterfactual hard negatives (issue 13)."""
import math

import numpy as np
import pytest
import torch

from melody_lab.data.captions import _KEY_RE, counterfactual_captions
from melody_lab.semantic.mulan import MULAN_PRESETS, MuLan, tempogram


def test_counterfactuals_change_exactly_one_attribute_word():
    rng = np.random.default_rng(0)
    caption = "A slow air in D minor played on flute at 60 bpm."
    out = counterfactual_captions(caption, rng, 8)
    assert len(out) == 8 and len(set(out)) == 8 and caption not in out
    for text in out:
        a, b = caption.rstrip(".").split(), text.rstrip(".").split()
        changed = [(x, y) for x, y in zip(a, b) if x != y]
        # one attribute: a key is two words ("D minor"), everything else one (or a longer phrase)
        assert changed, text
        if _KEY_RE.search(text).group(0) != "D minor":
            assert len(changed) <= 2 and text.replace(_KEY_RE.search(text).group(0), "D minor") == caption
        elif "slow" not in text:
            assert any(w in text for w in ("lively", "brisk", "bouncy", "fast", "quick", "rapid"))
        elif "60 bpm" not in text:
            assert ("36 bpm" in text) or ("96 bpm" in text)


def test_counterfactuals_of_a_caption_without_attributes_is_empty():
    assert counterfactual_captions("Some music.", np.random.default_rng(0), 4) == []


def test_tempogram_peaks_at_the_onset_period():
    cfg = MULAN_PRESETS["tiny"]
    onset = torch.zeros(1, 200)
    onset[0, ::25] = 1.0  # an attack every 25 frames = 0.5 s at 50 frames/s = 120 bpm
    ac = tempogram(onset, cfg.tempo_lags)
    assert ac.shape == (1, len(cfg.tempo_lags))
    assert cfg.tempo_lags[int(ac.argmax())] == 25
    assert cfg.tempo_lags.start == 10 and cfg.tempo_lags.stop == 101  # 300 … 30 bpm


def test_tiny_audio_tower_sees_chroma_onset_and_tempo():
    cfg = MULAN_PRESETS["tiny"].replace(channels=16, num_blocks=1, embed_dim=8, text_hidden=16)
    model = MuLan(cfg)
    audio = torch.randn(2, 16000)
    feats = model.features(audio)
    assert feats.shape == (2, cfg.n_mels + 14, math.ceil(16000 / cfg.hop_length))
    emb = model.embed_audio(audio)
    assert emb.shape == (2, 8) and torch.allclose(emb.norm(dim=-1), torch.ones(2))
    # the tempo branch is wired in: its weights receive gradient
    model.audio_tower(feats).sum().backward()
    assert model.audio_tower.tempo[0].weight.grad.abs().sum() > 0


def test_hard_negatives_enter_the_audio_to_text_loss_only_where_masked_in():
    torch.manual_seed(0)
    model = MuLan(MULAN_PRESETS["micro"])
    a = torch.nn.functional.normalize(torch.randn(4, 32), dim=-1)
    t = torch.nn.functional.normalize(torch.randn(4, 32), dim=-1)
    hard = torch.nn.functional.normalize(torch.randn(4, 3, 32), dim=-1)
    plain = model.contrastive_loss(a, t)
    none_real = model.contrastive_loss(a, t, None, hard, torch.zeros(4, 3, dtype=torch.bool))
    assert torch.isfinite(none_real) and torch.allclose(plain, none_real, atol=1e-5)
    # a hard negative equal to the audio itself is the most confusable one: the loss rises
    confusing = a[:, None].expand(4, 3, 32)
    assert model.contrastive_loss(a, t, None, confusing) > plain


def test_an_old_mel_only_config_still_builds_the_old_tower():
    cfg = MULAN_PRESETS["micro"]
    assert cfg.audio_features == "mel" and not cfg.tempogram
    model = MuLan(cfg)
    assert model.audio_tower.stem.in_channels == cfg.n_mels and not hasattr(model.audio_tower, "tempo")
    with pytest.raises(Exception, match="audio_features"):
        MuLan(cfg.replace(audio_features="cqt"))
