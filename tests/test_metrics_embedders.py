"""The untrained ``features`` embedder (with fadtk-style golden FAD values) and the pretrained adapters.

Golden tests: FIXED synthetic clips generated from seeds, FAD against a fixed reference set, and the
expected scores stored here (also tabulated in docs/metrics.md). If a change to the embedder or to
FAD moves any of them by more than 0.1 %, the change is a metric change: update the table on purpose.
"""
import json

import numpy as np
import pytest
import scipy.signal
import torch

from melody_lab.config import Config, ConfigError
from melody_lab.errors import UserError
from melody_lab.metrics import EMBEDDERS, FeatureEmbedder, build_embedder, fad
from melody_lab.metrics.adapters import LAION_CLAP_ENV, VGGISH_ENV, VGGishNet, vggish_examples, vggish_mel_matrix
from melody_lab.metrics.embedders import EVALCLAP_TINY_DIR
from melody_lab.registry import UnknownNameError

SR = 16000
GOLDEN_REL = 1e-3


def tones(seed: int, n: int = 128, seconds: float = 1.0) -> np.ndarray:
    """``[n, T]`` decaying harmonic tones (f0 110–880 Hz, 4 harmonics at 0.5^k, peak 0.5)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(SR * seconds)) / SR
    clips = []
    for _ in range(n):
        f0, decay = rng.uniform(110, 880), rng.uniform(0.5, 3.0)
        phases = rng.uniform(0, 2 * np.pi, 4)
        x = sum(0.5**k * np.sin(2 * np.pi * f0 * (k + 1) * t + phases[k]) for k in range(4))
        envelope = np.minimum(1.0, t / 0.02) * np.exp(-decay * t)
        clips.append(0.5 * x * envelope / np.abs(x).max())
    return np.stack(clips).astype(np.float32)


def white_noise(seed: int, n: int = 128, seconds: float = 1.0) -> np.ndarray:
    return (0.3 * np.random.default_rng(seed).standard_normal((n, int(SR * seconds)))).astype(np.float32)


def add_noise(clips: np.ndarray, snr_db: float, seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).standard_normal(clips.shape)
    power = np.mean(clips.astype(np.float64) ** 2, axis=1, keepdims=True)
    return (clips + noise * np.sqrt(power / 10 ** (snr_db / 10))).astype(np.float32)


def low_pass(clips: np.ndarray, cutoff_hz: float) -> np.ndarray:
    sos = scipy.signal.butter(8, cutoff_hz, fs=SR, output="sos")
    return scipy.signal.sosfiltfilt(sos, clips, axis=1).astype(np.float32)


# Golden values (features embedder, 128 clips of 1 s per set, reference = tones(seed=0)).
GOLDEN_TONES = 34.40671      # tones(seed=1)
GOLDEN_NOISE = 8218.674      # white_noise(seed=2)
GOLDEN_CLEAN = 34.88189      # tones(seed=3), the clean set the distortions start from
GOLDEN_SNR = {40: 260.0578, 30: 912.6953, 20: 2122.775, 10: 3906.940, 0: 6290.400}  # add_noise(…, seed=4)
GOLDEN_LOW_PASS = {3000: 42.92901, 2000: 104.4838, 1000: 430.0633, 500: 1022.094, 250: 1652.723}


@pytest.fixture(scope="module")
def golden():
    embedder = FeatureEmbedder()
    reference = embedder.embed(tones(0), SR)
    clean = tones(3)

    def score(clips):
        result = fad(embedder.embed(clips, SR), reference, embedder=embedder.name, reference="tones(seed=0)")
        assert (result.n_eval, result.n_reference, result.embedder) == (128, 128, "features")
        return result.score

    return score, clean


def test_synthetic_clips_are_the_fixed_ones():
    """If these fail, the *inputs* changed (e.g. numpy's generator), not the metric."""
    assert float(np.abs(tones(0)).sum()) == pytest.approx(217318.19, rel=1e-6)
    assert float(np.abs(white_noise(2)).sum()) == pytest.approx(490101.09, rel=1e-6)
    assert float(np.abs(low_pass(tones(3), 1000)).sum()) == pytest.approx(212618.45, rel=1e-5)
    assert float(np.abs(add_noise(tones(3), 10, 4)).sum()) == pytest.approx(237808.09, rel=1e-6)


def test_golden_sines_versus_noise(golden):
    score, clean = golden
    tone_fad, noise_fad = score(tones(1)), score(white_noise(2))
    assert tone_fad == pytest.approx(GOLDEN_TONES, rel=GOLDEN_REL)
    assert noise_fad == pytest.approx(GOLDEN_NOISE, rel=GOLDEN_REL)
    assert noise_fad > 100 * tone_fad
    assert score(clean) == pytest.approx(GOLDEN_CLEAN, rel=GOLDEN_REL)


def test_golden_added_noise_ranks_by_snr(golden):
    score, clean = golden
    fads = {snr: score(add_noise(clean, snr, seed=4)) for snr in GOLDEN_SNR}
    for snr, expected in GOLDEN_SNR.items():
        assert fads[snr] == pytest.approx(expected, rel=GOLDEN_REL), f"SNR {snr} dB"
    ordered = [fads[snr] for snr in sorted(fads, reverse=True)]  # 40 dB (mild) … 0 dB (severe)
    assert GOLDEN_CLEAN < ordered[0] and all(a < b for a, b in zip(ordered, ordered[1:]))


def test_golden_low_pass_ranks_by_cutoff(golden):
    score, clean = golden
    fads = {cutoff: score(low_pass(clean, cutoff)) for cutoff in GOLDEN_LOW_PASS}
    for cutoff, expected in GOLDEN_LOW_PASS.items():
        assert fads[cutoff] == pytest.approx(expected, rel=GOLDEN_REL), f"cutoff {cutoff} Hz"
    ordered = [fads[c] for c in sorted(fads, reverse=True)]  # 3 kHz (mild) … 250 Hz (severe)
    assert GOLDEN_CLEAN < ordered[0] and all(a < b for a, b in zip(ordered, ordered[1:]))


def test_features_embedder_inputs_resampling_and_determinism():
    embedder = build_embedder("features")
    clips = tones(0, n=4)
    emb = embedder.embed(clips, SR)
    assert emb.shape == (4, embedder.dim) == (4, 86) and emb.dtype == np.float64 and np.isfinite(emb).all()
    assert np.array_equal(emb, embedder.embed(torch.from_numpy(clips), SR))
    ragged = embedder.embed([clips[0], clips[1][: SR // 2]], SR)  # a list of clips of different lengths
    assert np.allclose(ragged[0], emb[0], rtol=1e-9, atol=1e-12) and not np.allclose(ragged[1], emb[1])
    upsampled = [scipy.signal.resample_poly(c, 441, 320).astype(np.float32) for c in clips]  # 16 → 22.05 kHz
    assert np.linalg.norm(embedder.embed(upsampled, 22050) - emb) < 0.02 * np.linalg.norm(emb)
    assert np.isfinite(embedder.embed(np.zeros((2, SR), np.float32), SR)).all()  # digital silence
    with pytest.raises(ValueError, match="1024 samples"):
        embedder.embed(np.zeros((1, 500), np.float32), SR)


def test_unknown_embedder_lists_the_names():
    with pytest.raises(UnknownNameError, match="features, laion_clap, vggish"):
        build_embedder("openl3")


@pytest.mark.parametrize("name, env_var, must_mention", [
    ("vggish", VGGISH_ENV, ["vggish-10086976.pth", "github.com/harritaylor/torchvggish"]),
    ("laion_clap", LAION_CLAP_ENV, ["music_audioset_epoch_15_esc_90.14.pt", "huggingface.co/lukewys/laion_clap",
                                    "pip install 'melody-lab[laion-clap]'"]),
])
def test_adapters_without_checkpoint_say_what_to_download(monkeypatch, tmp_path, name, env_var, must_mention):
    monkeypatch.delenv(env_var, raising=False)
    with pytest.raises(UserError) as missing:
        build_embedder(name)
    for text in [env_var, *must_mention]:
        assert text in str(missing.value)
    monkeypatch.setenv(env_var, str(tmp_path / "nowhere.pt"))
    with pytest.raises(UserError, match=f"nowhere.pt \\(from \\${env_var}\\) does not exist"):
        build_embedder(name)


def test_laion_clap_without_its_package_says_how_to_install(monkeypatch, tmp_path):
    import importlib.util
    if importlib.util.find_spec("laion_clap") is not None:
        pytest.skip("laion_clap is installed here; this checks the message when it is not")
    checkpoint = tmp_path / "music_audioset_epoch_15_esc_90.14.pt"
    checkpoint.write_bytes(b"not read")
    monkeypatch.setenv(LAION_CLAP_ENV, str(checkpoint))
    with pytest.raises(UserError, match="cannot import the optional package laion_clap.*pip install"):
        build_embedder("laion_clap")


def test_vggish_rejects_a_checkpoint_that_is_not_vggish(tmp_path):
    from safetensors.torch import save_file
    path = tmp_path / "other.safetensors"
    save_file({"weight": torch.zeros(2)}, str(path))
    with pytest.raises(UserError, match="not a VGGish state dict"):
        build_embedder("vggish", checkpoint=path)


def test_vggish_front_end_and_network_shapes():
    examples = vggish_examples(np.zeros(2 * SR, np.float32))
    assert examples.shape == (2, 96, 64)  # 2 s → 198 frames of 10 ms → two 0.96 s examples
    assert vggish_examples(np.zeros(SR // 4, np.float32)).shape == (1, 96, 64)  # padded to one
    mel = vggish_mel_matrix()
    assert mel.shape == (257, 64) and not mel[0].any() and mel.max() <= 1.0
    torch.manual_seed(0)
    out = VGGishNet()(torch.from_numpy(examples).float()[:, None])
    assert out.shape == (2, 128) and torch.isfinite(out).all()


def test_vggish_loads_a_full_state_dict_and_embeds(tmp_path):
    """Random weights with the real key names and shapes (a ~290 MB file, ~3 s): the full load path works."""
    from safetensors.torch import save_file
    torch.manual_seed(0)
    path = tmp_path / "vggish.safetensors"
    save_file(VGGishNet().state_dict(), str(path))
    embedder = build_embedder("vggish", checkpoint=path)
    assert embedder.name == "vggish:vggish.safetensors"
    emb = embedder.embed(tones(0, n=2, seconds=2.0), SR)
    assert emb.shape == (2, 128) and np.isfinite(emb).all()
    assert [f.shape for f in embedder.embed_frames(tones(0, n=2, seconds=2.0), SR)] == [(2, 128), (2, 128)]


# -- every embedder is a registry component: a config class, a preset table, built from them ------
@pytest.mark.parametrize("name", EMBEDDERS.names())
def test_every_embedder_has_a_config_class_and_a_preset_table(name):
    cls, config_class = EMBEDDERS.get(name), EMBEDDERS.config_class(name)
    assert issubclass(config_class, Config) and cls.kind == "embedder" and cls.name == name
    presets = EMBEDDERS.presets[name]
    assert "default" in presets and all(type(c) is config_class for c in presets.values())
    for config in presets.values():
        assert config_class.from_dict(config.to_dict()) == config
        assert config_class.from_dict(json.loads(config.to_json())) == config
    assert EMBEDDERS.config(name, "default") == presets["default"]
    assert EMBEDDERS.config(name, "default") is not presets["default"]  # a copy: the table stays as it is
    with pytest.raises(ConfigError, match="bogus"):
        EMBEDDERS.config(name, "default", bogus=1)


def test_features_builds_from_name_and_config_with_the_same_numbers():
    clips = tones(0, n=3)
    reference = FeatureEmbedder().embed(clips, SR)
    config = EMBEDDERS.config("features", "default", batch_size=2)  # batch size changes speed only
    round_tripped = type(config).from_dict(json.loads(config.to_json()))
    for embedder in (build_embedder("features"), EMBEDDERS.build("features", "default"),
                     FeatureEmbedder.from_config(round_tripped), build_embedder("features", batch_size=2)):
        assert embedder.name == "features" and np.array_equal(embedder.embed(clips, SR), reference)
    assert build_embedder("features", sample_rate=22050).sample_rate == 22050
    with pytest.raises(TypeError, match="not saved by melody_lab"):
        build_embedder("features").save_pretrained("unused")


@pytest.mark.skipif(not (EVALCLAP_TINY_DIR / "config.json").is_file(),
                    reason="the evaluation CLAP asset is not in this checkout (see docs/ablations.md)")
def test_evalclap_builds_from_its_config_with_the_same_numbers():
    clips = tones(0, n=2)
    default = build_embedder("evalclap-tiny")
    config = EMBEDDERS.config("evalclap-tiny", "default", folder=EVALCLAP_TINY_DIR)
    assert config.folder == str(EVALCLAP_TINY_DIR) and config.to_dict()["folder"] == str(EVALCLAP_TINY_DIR)
    explicit = EMBEDDERS.get("evalclap-tiny").from_config(type(config).from_dict(config.to_dict()))
    assert default.name == explicit.name == "evalclap-tiny" and default.fingerprint == explicit.fingerprint
    assert np.array_equal(default.embed(clips, SR), explicit.embed(clips, SR))


@pytest.mark.parametrize("name", ["vggish", "laion_clap"])
def test_adapters_take_their_checkpoint_from_the_config(monkeypatch, tmp_path, name):
    monkeypatch.delenv(VGGISH_ENV, raising=False)
    monkeypatch.delenv(LAION_CLAP_ENV, raising=False)
    config = EMBEDDERS.config(name, "default", checkpoint=tmp_path / "absent.pt")
    assert config.to_dict()["checkpoint"] == str(tmp_path / "absent.pt")  # a plain string, JSON-ready
    with pytest.raises(UserError, match=r"absent\.pt \(from the checkpoint argument\) does not exist"):
        EMBEDDERS.get(name).from_config(config)
