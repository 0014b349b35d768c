"""The paper's semantic-token path: k-means on an SSL model's hidden states (``features="ssl"``),
with a tiny randomly initialised wav2vec2 / wav2vec2-conformer saved to a temp folder (no download)."""
import json

import pytest
import torch

from melody_lab.cli import main
from melody_lab.errors import UserError
from melody_lab.semantic.tokenizer import TOKENIZER_PRESETS, SemanticTokenizer

transformers = pytest.importorskip("transformers", reason="the SSL path needs transformers")

CONV = dict(conv_dim=(8,) * 7, conv_kernel=(10, 3, 3, 3, 3, 2, 2), conv_stride=(5, 2, 2, 2, 2, 2, 2),
            num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)  # 16 kHz → 50 Hz frames
SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, **CONV)


def save_model(folder, kind: str = "wav2vec2", extractor_rate: int | None = None):
    """A tiny random SSL model in ``folder`` (+ a feature-extractor config when a rate is given)."""
    torch.manual_seed(0)
    if kind == "wav2vec2":
        model = transformers.Wav2Vec2Model(transformers.Wav2Vec2Config(**SMALL))
    else:  # the paper's architecture family
        model = transformers.Wav2Vec2ConformerModel(transformers.Wav2Vec2ConformerConfig(
            **SMALL, conv_depthwise_kernel_size=3, position_embeddings_type="rotary"))
    model.save_pretrained(folder)
    if extractor_rate is not None:
        transformers.Wav2Vec2FeatureExtractor(sampling_rate=extractor_rate,
                                              do_normalize=True).save_pretrained(folder)
    return model.eval()


@pytest.fixture(scope="module")
def ssl_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ssl_w2v")
    save_model(folder)
    return folder


def tokenizer(path, **kw):
    cfg = TOKENIZER_PRESETS["micro"].replace(features="ssl", ssl_path=str(path), vocab_size=8,
                                             **{"ssl_layer": 1, **kw})
    return SemanticTokenizer(cfg)


def test_mean_pooling_averages_the_two_model_frames_of_each_token(ssl_dir):
    model = transformers.AutoModel.from_pretrained(ssl_dir).eval()
    audio = torch.randn(2, 6400, generator=torch.Generator().manual_seed(1))  # 0.4 s → 10 tokens
    tok = tokenizer(ssl_dir)
    x = (audio - audio.mean(-1, keepdim=True)) / audio.std(-1, keepdim=True)
    x = torch.nn.functional.pad(x, (0, 80))  # receptive field 400 − stride 320: 20 frames exactly
    with torch.no_grad():
        states = model(x, output_hidden_states=True).hidden_states[1]
    assert states.shape == (2, 20, 32)
    feats = tok.raw_features(audio)
    assert torch.allclose(feats, states.reshape(2, 10, 2, 32).mean(2), atol=1e-5)
    centre = tokenizer(ssl_dir, ssl_pooling="centre").raw_features(audio)
    assert torch.allclose(centre, states[:, 1::2], atol=1e-5)


def test_layer_choice_and_its_range(ssl_dir):
    audio = torch.randn(1, 3200, generator=torch.Generator().manual_seed(2))
    f0, f2, last = (tokenizer(ssl_dir, ssl_layer=k).raw_features(audio) for k in (0, 2, -1))
    assert not torch.allclose(f0, f2)
    assert torch.equal(f2, last)
    with pytest.raises(UserError, match=r"ssl_layer 3 .* 2 layers"):
        tokenizer(ssl_dir, ssl_layer=3)
    with pytest.raises(UserError, match="pooling"):
        tokenizer(ssl_dir, ssl_pooling="max")


@pytest.mark.parametrize("kind", ["wav2vec2", "wav2vec2_conformer"])
def test_fit_and_tokenize_at_the_exact_token_rate(tmp_path, kind):
    save_model(tmp_path / "m", kind, extractor_rate=8000)  # the extractor's rate wins: 8 kHz model
    g = torch.Generator().manual_seed(3)
    train = torch.randn(6, 16000, generator=g) * torch.linspace(0, 1, 16000)
    tok = tokenizer(tmp_path / "m").fit(train, seed=0)
    assert (tok.config.ssl_sample_rate, tok.config.ssl_dim, tok.hop) == (8000, 32, 640)
    for samples in (16000, 16001, 700, 100):
        tokens = tok.tokenize(torch.randn(2, samples, generator=g))
        assert tokens.shape == (2, -(-samples // 640)) and tokens.dtype == torch.long
        assert 0 <= tokens.min() and tokens.max() < 8
    assert len(tok.tokenize(train).unique()) > 1
    tok.save_pretrained(tmp_path / "export")
    again = SemanticTokenizer.from_pretrained(tmp_path / "export")
    assert torch.equal(again.tokenize(train), tok.tokenize(train))


def test_train_tokenizer_cli_with_a_local_ssl_folder(micro_corpus, ssl_dir, tmp_path):
    out = tmp_path / "tok"
    assert main(["train", "tokenizer", "--preset", "micro", "--data", str(micro_corpus), "--out",
                 str(out), "--features", "ssl", "--ssl-path", str(ssl_dir), "--ssl-layer", "2",
                 "--ssl-pooling", "centre"]) == 0
    model = json.loads((out / "config.json").read_text())["model"]["config"]
    assert (model["features"], model["ssl_layer"], model["ssl_pooling"], model["ssl_dim"]) == (
        "ssl", 2, "centre", 32)
    tok = SemanticTokenizer.from_pretrained(out)
    assert tok.tokenize(torch.zeros(1, 32000)).shape == (1, 50)
    assert main(["train", "tokenizer", "--preset", "micro", "--data", str(micro_corpus), "--out",
                 str(tmp_path / "bad"), "--ssl-layer", "1"]) == 2
    assert main(["train", "tokenizer", "--preset", "micro", "--data", str(micro_corpus), "--out",
                 str(tmp_path / "none"), "--features", "ssl", "--ssl-path",
                 str(tmp_path / "missing")]) == 2
