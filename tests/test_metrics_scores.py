"""CLAP score / MCC, attribute accuracy, real-time factor and bootstrap confidence intervals."""
import mmap
import time

import numpy as np
import pytest
import torch

from melody_lab.audio import resample
from melody_lab.metrics import (FeatureEmbedder, attribute_prompts, bootstrap_fad_ci, bootstrap_mean_ci, clap_score,
                                fit_attribute_probes, measure_rtf, mulan_cycle_consistency, probe_attribute_accuracy,
                                zero_shot_attribute_accuracy)

SR = 16000
KINDS = ("low", "high", "noise")


def make_clip(kind: str, rng, seconds: float = 0.5) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    if kind == "noise":
        return (0.3 * rng.standard_normal(len(t))).astype(np.float32)
    f0 = rng.uniform(150, 350) if kind == "low" else rng.uniform(1500, 3000)
    return (0.5 * np.sin(2 * np.pi * f0 * t + rng.uniform(0, 6.3))).astype(np.float32)


class FakeToneModel:
    """A tiny hand-made text–audio model in a 3-d space (low tone / high tone / noise).

    Text: which of the words "low", "high", "noise" the caption contains. Audio: spectral flatness
    (noise) and the dominant frequency (low vs high), as soft scores. Both unit-norm.
    """

    name = "fake-tone-model"
    sample_rate = SR

    def __init__(self):
        self.text_calls = 0

    def embed_text(self, texts):
        self.text_calls += 1
        emb = torch.tensor([[float(k in t) for k in KINDS] for t in texts]) + 0.1
        return torch.nn.functional.normalize(emb, dim=-1)

    def embed_audio(self, audio):
        power = torch.fft.rfft(audio.double(), dim=-1).abs() ** 2 + 1e-12
        flatness = torch.exp(torch.log(power).mean(-1)) / power.mean(-1)
        dominant = power.argmax(-1).double() * SR / audio.shape[-1]
        noisy = torch.clamp(flatness * 3, 0, 1)
        low = (1 - noisy) * torch.sigmoid((800 - dominant) / 100)
        emb = torch.stack([low, (1 - noisy) - low, noisy], dim=-1) + 0.05
        return torch.nn.functional.normalize(emb, dim=-1)


@pytest.fixture(scope="module")
def labelled_clips():
    rng = np.random.default_rng(0)
    kinds = [KINDS[i % 3] for i in range(24)]
    captions = {"low": "a low tone", "high": "a high tone", "noise": "some white noise"}
    return np.stack([make_clip(k, rng) for k in kinds]), kinds, [captions[k] for k in kinds]


def test_clap_score_ranks_matching_captions_above_shuffled(labelled_clips):
    audio, kinds, captions = labelled_clips
    model = FakeToneModel()
    matched = clap_score(model, captions, audio, SR)
    shuffled = clap_score(model, list(np.roll(captions, 1)), audio, SR)  # every clip gets another kind
    assert matched.metric == "clap_score" and matched.model == "fake-tone-model" and matched.n == 24
    assert matched.score > 0.9 and matched.score - shuffled.score > 0.3
    assert len(matched.cosines) == 24 and np.mean(matched.cosines) == pytest.approx(matched.score)
    # 32 kHz input is resampled to the model's 16 kHz; ragged lists work.
    double_rate = [resample(c, SR, 2 * SR) for c in audio]
    assert clap_score(model, captions, double_rate, 2 * SR).score == pytest.approx(matched.score, abs=0.01)
    ragged = [audio[0], audio[1][:4000]]
    assert clap_score(model, captions[:2], ragged, SR).n == 2
    with pytest.raises(ValueError, match="3 prompts but 24"):
        clap_score(model, captions[:3], audio, SR)


def test_mcc_is_the_same_computation_named_mcc(labelled_clips):
    audio, _, captions = labelled_clips
    model = FakeToneModel()
    mcc = mulan_cycle_consistency(model, captions, audio, SR, name="generator MuLan")
    assert mcc.metric == "mcc" and mcc.model == "generator MuLan"
    assert mcc.score == pytest.approx(clap_score(model, captions, audio, SR).score)


def _shipped_mulan():
    semantic = pytest.importorskip("melody_lab.semantic")
    if not (semantic.ASSETS / "mulan_tiny").is_dir():
        pytest.skip("the shipped tiny MuLan is not yet at melody_lab/assets/semantic/mulan_tiny (semantic issue)")
    return semantic.load_tiny("mulan")


def _real_test_clips(request):
    """Up to 32 real clips of the micro corpus fixture (all splits: its test split has only 2).

    These clips come from the same collections as the tiny MuLan's training data (not necessarily
    held-out works); held-out retrieval numbers are in docs/semantic.md.
    """
    root = request.getfixturevalue("micro_corpus")
    from melody_lab.data import ClipDataset
    dataset = ClipDataset(root, "all")
    items = [dataset[i] for i in range(min(len(dataset), 32))]
    return [it["audio"].numpy() for it in items], [it["caption"] for it in items], dataset.sample_rate


def test_clap_score_under_the_shipped_mulan_on_real_clips(request):
    mulan = _shipped_mulan()
    audio, captions, sample_rate = _real_test_clips(request)
    shift = len(captions) // 2
    pairs = [(i, (i + shift) % len(captions)) for i in range(len(captions))]
    pairs = [(i, j) for i, j in pairs if captions[i] != captions[j]]
    assert len(pairs) >= 4, "too few distinct captions in the test split to compare"
    clips = [audio[i] for i, _ in pairs]
    matched = clap_score(mulan, [captions[i] for i, _ in pairs], clips, sample_rate, name="mulan_tiny")
    shuffled = clap_score(mulan, [captions[j] for _, j in pairs], clips, sample_rate, name="mulan_tiny")
    assert matched.score > shuffled.score


def test_zero_shot_attribute_accuracy(labelled_clips):
    audio, kinds, _ = labelled_clips
    attributes = [{"register": k, "form": None} for k in kinds]
    prompts = {"register": attribute_prompts(KINDS, template="a {value} sound")}
    result = zero_shot_attribute_accuracy(FakeToneModel(), audio, attributes, prompts, SR)["register"]
    assert result.accuracy == 1.0 and result.n == 24 and result.classes == ("high", "low", "noise")
    assert result.majority_baseline == pytest.approx(1 / 3) and result.method == "zero-shot:fake-tone-model"
    wrong = [{"register": KINDS[(KINDS.index(k) + 1) % 3]} for k in kinds]  # prompted ≠ produced
    assert zero_shot_attribute_accuracy(FakeToneModel(), audio, wrong, prompts, SR)["register"].accuracy == 0.0


def test_attribute_probes_on_untrained_features():
    """Probes trained on 'real' clips classify held-out clips; mislabelled clips score at chance."""
    rng = np.random.default_rng(1)
    embedder = FeatureEmbedder()
    kinds = [KINDS[i % 3] for i in range(60)]
    emb = embedder.embed(np.stack([make_clip(k, rng) for k in kinds]), SR)
    attributes = [{"register": k, "loud": "yes"} for k in kinds]
    probes = fit_attribute_probes(emb[:30], attributes[:30], ["register"], embedder=embedder.name)
    held_out = probe_attribute_accuracy(probes, emb[30:], attributes[30:])["register"]
    assert held_out.accuracy >= 0.9 and held_out.n == 30 and held_out.method == "probe:features"
    scrambled = [{"register": KINDS[(KINDS.index(k) + 1) % 3]} for k in kinds[30:]]
    assert probe_attribute_accuracy(probes, emb[30:], scrambled)["register"].accuracy <= 0.1
    with pytest.raises(ValueError, match="≥ 2 classes"):
        fit_attribute_probes(emb[:30], attributes[:30], ["loud"], embedder=embedder.name)


def test_rtf_measures_a_known_sleep():
    calls = []

    def run(timer):
        calls.append(1)
        with timer.stage("lm"):
            time.sleep(0.02)
        with timer.stage("diffusion"):
            time.sleep(0.04)

    result = measure_rtf(run, audio_seconds=0.12, warmup=2, repeats=3)
    assert len(calls) == 5 and result.repeats == 3 and result.device == "cpu"
    assert result.total_seconds == pytest.approx(0.06, abs=0.015)
    assert result.rtf == pytest.approx(0.5, abs=0.125) and result.speed_x_realtime == pytest.approx(1 / result.rtf)
    assert result.stage_seconds["lm"] == pytest.approx(0.02, abs=0.01)
    assert result.stage_seconds["diffusion"] == pytest.approx(0.04, abs=0.01)
    assert result.stage_rtf["diffusion"] == pytest.approx(result.stage_seconds["diffusion"] / 0.12)
    assert result.peak_memory_bytes and result.peak_memory_bytes > 10 * 2**20
    assert result.memory_kind in {"rss_peak", "rss_peak_process_lifetime"}


def test_rtf_peak_memory_sees_an_allocation():
    def allocate(timer):
        # fresh anonymous pages (numpy could reuse heap memory that an earlier test left resident)
        block = mmap.mmap(-1, 64 * 2**20)
        block.write(b"\x01" * len(block))  # touch every page
        block.close()

    baseline = measure_rtf(lambda timer: None, audio_seconds=1.0, warmup=0, repeats=1)
    result = measure_rtf(allocate, audio_seconds=1.0, warmup=0, repeats=1)
    if result.memory_kind != "rss_peak":
        pytest.skip("this kernel does not let a process reset its peak RSS")
    assert result.peak_memory_bytes - baseline.peak_memory_bytes > 48 * 2**20


def test_bootstrap_mean_ci_contains_the_true_mean_and_covers_about_95_percent():
    rng = np.random.default_rng(0)
    sample = rng.normal(3.0, 1.0, 200)
    ci = bootstrap_mean_ci(sample, seed=1)
    assert ci.low < 3.0 < ci.high and ci.low < ci.estimate < ci.high
    assert ci.high - ci.low == pytest.approx(2 * 1.96 / np.sqrt(200), rel=0.2)
    assert bootstrap_mean_ci(sample, seed=1) == ci  # seeded
    hits = 0  # coverage over 200 independent samples of n = 50
    for s in range(200):
        draw = rng.normal(3.0, 1.0, 50)
        interval = bootstrap_mean_ci(draw, n_resamples=500, seed=s)
        hits += interval.low < 3.0 < interval.high
    assert 0.88 <= hits / 200 <= 0.99


def test_bootstrap_fad_ci_names_its_inputs():
    rng = np.random.default_rng(2)
    evaluation, reference = rng.standard_normal((300, 4)) + 0.5, rng.standard_normal((400, 4))
    result, ci = bootstrap_fad_ci(evaluation, reference, embedder="gaussian", reference="N(0, I)", n_resamples=100)
    assert (result.embedder, result.reference, result.n_eval, result.n_reference) == ("gaussian", "N(0, I)", 300, 400)
    assert ci.estimate == result.score and ci.low < 1.0 < ci.high  # true FAD = ‖m‖² = 4 · 0.25
    assert ci.n_resamples == 100 and ci.confidence == 0.95
