"""The codecs' inference route (autograd off: folded weight norm, channels-last rows, in-place Snake,
polyphase up-sampling; see melody_lab/codecs/blocks.py) against the training route it replaces."""
import pytest
import torch

from melody_lab.codecs import build_codec
from melody_lab.codecs.blocks import (Decoder, Encoder, MultiReceptiveField, PaddedConv, Snake,
                                      Upsample)
from melody_lab.io import SHIPPED_BUNDLES, load_pretrained

TINY = SHIPPED_BUNDLES / "tiny"


def _randomise(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Move every parameter off its initial value (weight-norm gains, Snake α, biases)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    return module


def _both_routes(module, x):
    """(training route, inference route) outputs of ``module(x)``."""
    with torch.enable_grad():
        reference = module(x).detach()
    with torch.no_grad():
        fast = module(x)
    return reference, fast


def test_snake_inference_is_bit_identical():
    snake = _randomise(Snake(6))
    x = torch.randn(2, 6, 3000) * 4
    snake.block_elements = 600  # several blocks, the last one short
    reference, fast = _both_routes(snake, x)
    assert torch.equal(reference, fast)


@pytest.mark.parametrize("stride, kernel", [(4, 7), (2, 5), (4, 9), (3, 4), (2, 1)])
def test_polyphase_upsample_equals_repeat_then_conv(stride, kernel):
    up = _randomise(Upsample(5, 3, stride, kernel), seed=stride * 10 + kernel)
    x = torch.randn(2, 5, 37)
    reference, fast = _both_routes(up, x)
    assert fast.shape == reference.shape == (2, 3, 37 * stride)
    torch.testing.assert_close(fast, reference, rtol=0, atol=1e-5)


@pytest.mark.parametrize("kernel, stride, dilation", [(3, 1, 9), (7, 3, 1), (8, 4, 1), (4, 2, 1)])
def test_padded_conv_folded_weight(kernel, stride, dilation):
    conv = _randomise(PaddedConv(4, 6, kernel, stride, dilation))
    x = torch.randn(3, 4, 96)
    reference, fast = _both_routes(conv, x)
    assert fast.shape == reference.shape
    torch.testing.assert_close(fast, reference, rtol=0, atol=1e-5)


def test_folded_weight_follows_training_updates():
    """An optimiser step (in place on g and v) invalidates the cached fold."""
    conv = _randomise(PaddedConv(4, 4, 3))
    x = torch.randn(1, 4, 50)
    with torch.no_grad():
        before = conv(x)
    optimizer = torch.optim.SGD(conv.parameters(), lr=0.5)
    conv(x).pow(2).mean().backward()
    optimizer.step()
    reference, fast = _both_routes(conv, x)
    assert (fast - before).abs().max() > 1e-3
    torch.testing.assert_close(fast, reference, rtol=0, atol=1e-5)


def test_decoder_and_encoder_routes_agree_on_random_weights():
    """Both layouts of the encoder, a two-kernel MRF, and an odd-padded strided conv (paper's 3/7)."""
    torch.manual_seed(0)
    decoder = _randomise(Decoder(8, (24, 12), (4, 2), (7, 5), (3, 5), (1, 3), "snake"), seed=1)
    z = torch.randn(2, 8, 20)
    reference, fast = _both_routes(decoder, z)
    assert fast.shape == (2, 1, 160)
    torch.testing.assert_close(fast, reference, rtol=0, atol=1e-5)
    for layout in ("widen", "stage"):
        encoder = _randomise(Encoder((4, 8), (3, 2), (7, 4), (3,), (1, 3), "snake", 6, layout), seed=2)
        reference, fast = _both_routes(encoder, torch.randn(2, 1, 120))
        assert fast.shape == (2, 6, 20) and fast.is_contiguous()
        torch.testing.assert_close(fast, reference, rtol=0, atol=1e-5)
    mrf = _randomise(MultiReceptiveField(5, (3, 5), (1, 2), "leaky_relu"), seed=3)
    reference, fast = _both_routes(mrf, torch.randn(1, 5, 40))
    torch.testing.assert_close(fast, reference, rtol=0, atol=1e-5)


def test_codec_encode_decode_routes_agree():
    codec = _randomise(build_codec("vaegan", "micro"), seed=4).eval()
    audio = torch.randn(2, 1000) * 0.3
    with torch.enable_grad():
        z_ref = codec.encode(audio).detach()
        y_ref = codec.decode(z_ref).detach()
    with torch.no_grad():
        z, y = codec.encode(audio), codec.decode(z_ref)
    torch.testing.assert_close(z, z_ref, rtol=0, atol=1e-5)
    torch.testing.assert_close(y, y_ref, rtol=0, atol=1e-5)


@pytest.mark.skipif(not (TINY / "manifest.json").is_file(), reason="this checkout has no shipped tiny bundle")
def test_shipped_codec_audio_unchanged():
    """2 s of the shipped bundle's decoder: the inference route within 1e-4 of the training route."""
    codec = load_pretrained("codec", TINY).eval()
    torch.manual_seed(0)
    z = torch.rand(1, 2 * codec.sample_rate // codec.hop_length, codec.latent_dim) * 2 - 1
    with torch.enable_grad():
        reference = codec.decode(z).detach()
    with torch.no_grad():
        fast = codec.decode(z)
    assert reference.abs().max() > 0.01  # real audio, not silence
    assert (fast - reference).abs().max() <= 1e-4
