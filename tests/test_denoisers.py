"""Denoisers: shapes for any length, conditioning, null tokens, gradients, registry and presets."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from melody_lab.denoisers import (NULL_TOKEN, PRESETS, build_denoiser, count_parameters,
                                  denoiser_config, overlap_add, sandglass_widths, segment)
from melody_lab.errors import UserError
from melody_lab.registry import UnknownNameError

NAMES = ("dpd", "unet")
D, VOCAB = 8, 32  # the micro presets' latent_dim and vocab_size


@pytest.fixture(scope="module")
def micro_models():
    torch.manual_seed(0)
    return {name: build_denoiser(name, "micro").eval() for name in NAMES}


def inputs(batch, length, num_tokens=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(batch, length, D, generator=g)
    angles = torch.rand(batch, length, generator=g) * math.pi / 2
    tokens = torch.randint(0, VOCAB, (batch, num_tokens), generator=g)
    return z, angles, tokens


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=25, deadline=None)
@given(length=st.integers(1, 300), batch=st.sampled_from([1, 3]),
       num_tokens=st.integers(1, 40), with_tokens=st.booleans())
def test_output_shape_equals_input_shape_for_any_length(micro_models, name, length, batch,
                                                        num_tokens, with_tokens):
    z, angles, tokens = inputs(batch, length, num_tokens)
    with torch.no_grad():
        v = micro_models[name](z, angles, tokens if with_tokens else None)
    assert v.shape == z.shape
    assert torch.isfinite(v).all()


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_every_parameter(name):
    torch.manual_seed(0)
    model = build_denoiser(name, "micro")
    z, angles, tokens = inputs(3, 37, 6)
    tokens[2] = NULL_TOKEN  # one unconditional row, so the null embedding is used too
    model(z, angles, tokens).pow(2).mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"no gradient for {missing}"


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_in_eval_mode_and_for_a_seed(micro_models, name):
    z, angles, tokens = inputs(2, 50)
    with torch.no_grad():
        first = micro_models[name](z, angles, tokens)
        second = micro_models[name](z, angles, tokens)
    assert torch.equal(first, second)
    torch.manual_seed(7)
    a = build_denoiser(name, "micro")
    torch.manual_seed(7)
    b = build_denoiser(name, "micro")
    with torch.no_grad():
        assert torch.equal(a.eval()(z, angles, tokens), b.eval()(z, angles, tokens))


@pytest.mark.parametrize("name", NAMES)
def test_changing_tokens_or_angles_changes_the_output(micro_models, name):
    model = micro_models[name]
    z, angles, tokens = inputs(2, 40)
    _, other_angles, other_tokens = inputs(2, 40, seed=1)
    with torch.no_grad():
        base = model(z, angles, tokens)
        assert (model(z, angles, other_tokens) - base).abs().max() > 1e-4
        assert (model(z, other_angles, tokens) - base).abs().max() > 1e-4
        assert (model(z, angles, None) - base).abs().max() > 1e-4


@pytest.mark.parametrize("name", NAMES)
def test_null_rows_equal_unconditional_and_batching_cond_with_uncond(micro_models, name):
    """What classifier-free guidance relies on: rows of NULL_TOKEN behave exactly like tokens=None,
    and a [cond; uncond] batch gives the same rows as two separate calls."""
    model = micro_models[name]
    z, angles, tokens = inputs(2, 45, 9)
    with torch.no_grad():
        cond = model(z, angles, tokens)
        uncond = model(z, angles, None)
        batched = model(torch.cat([z, z]), torch.cat([angles, angles]),
                        torch.cat([tokens, torch.full_like(tokens, NULL_TOKEN)]))
    torch.testing.assert_close(batched[:2], cond, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(batched[2:], uncond, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_bad_tokens_are_rejected_with_a_clear_message(micro_models, name):
    z, angles, tokens = inputs(1, 10)
    with pytest.raises(ValueError, match="token ids must lie in"):
        micro_models[name](z, angles, torch.full_like(tokens, VOCAB))
    with pytest.raises(ValueError, match="token ids must lie in"):
        micro_models[name](z, angles, torch.full_like(tokens, -2))
    with pytest.raises(ValueError, match="tokens must be"):
        micro_models[name](z, angles, tokens[0])


@settings(max_examples=40, deadline=None)
@given(length=st.integers(1, 200), half=st.integers(1, 16), channels=st.integers(1, 4))
def test_segmentation_then_overlap_add_is_exact_for_the_identity(length, half, channels):
    x = torch.randn(2, length, channels)
    segments = segment(x, 2 * half)
    assert segments.shape[:3] == (2, math.ceil(length / half) + 1, 2 * half)
    assert torch.equal(overlap_add(segments, length), x)


def test_segments_overlap_by_half():
    x = torch.arange(10.0).reshape(1, 10, 1)
    segments = segment(x, 4)[0, :, :, 0]  # hop 2, one hop of zero padding on the left
    assert segments[0].tolist() == [0, 0, 0, 1]
    assert segments[1].tolist() == [0, 1, 2, 3]
    assert segments[-1].tolist() == [8, 9, 0, 0]


def test_sandglass_is_narrow_in_the_middle():
    assert sandglass_widths(64, 8) == (16, 8, 4, 2, 2, 4, 8, 16)
    assert sandglass_widths(32, 4) == (8, 4, 4, 8)
    assert sandglass_widths(8, 2) == (2, 2)
    with pytest.raises(ValueError, match="divisible"):
        build_denoiser("dpd", "micro", merge_widths=(3, 3))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("preset", ["micro", "tiny", "paper"])
def test_every_preset_builds_by_name(name, preset):
    with torch.device("meta"):  # shapes only: the paper presets have ~300M parameters
        model = build_denoiser(name, preset)
    assert count_parameters(model) > 0
    assert type(model).__name__ == {"dpd": "DPD", "unet": "UNet1D"}[name]


def test_tiny_presets_are_parameter_matched_within_ten_percent():
    with torch.device("meta"):
        dpd = count_parameters(build_denoiser("dpd", "tiny"))
        unet = count_parameters(build_denoiser("unet", "tiny"))
        compute = count_parameters(build_denoiser("unet", "tiny_compute"))
        paper_dpd = count_parameters(build_denoiser("dpd", "paper"))
    assert abs(unet / dpd - 1) < 0.10
    assert compute > unet  # the compute-matched U-Net is wider (DPD is slower per parameter)
    assert 250e6 < paper_dpd < 330e6  # the paper: 296.6M


def test_micro_builds_fast_and_overrides_apply():
    import time
    start = time.perf_counter()
    model = build_denoiser("dpd", "micro", rnn_type="gru", angle_interpolation="slerp",
                           cross_attention="position")
    assert time.perf_counter() - start < 1.0
    assert model.config.rnn_type == "gru"
    z, angles, tokens = inputs(2, 20)
    assert model(z, angles, tokens).shape == z.shape


def test_unknown_names_list_the_choices():
    with pytest.raises(UnknownNameError, match="dpd, unet"):
        build_denoiser("transformer", "micro")
    with pytest.raises(UserError, match="micro"):
        build_denoiser("dpd", "huge")
    assert set(PRESETS["unet"]) >= {"micro", "tiny", "tiny_compute", "paper"}


@pytest.mark.parametrize("name", NAMES)
def test_config_round_trips_through_json(name, tmp_path):
    cfg = denoiser_config(name, "micro")
    cfg.save(tmp_path / "cfg.json")
    assert type(cfg).load(tmp_path / "cfg.json") == cfg


@pytest.mark.parametrize("interpolation", ["cossin", "slerp"])
def test_angle_embedding_interpolates_between_its_two_learned_vectors(interpolation):
    from melody_lab.denoisers.conditioning import AngleEmbedding

    emb = AngleEmbedding(8, base_dim=16, interpolation=interpolation)
    ends = emb.interpolate(torch.tensor([0.0, math.pi / 2]))
    torch.testing.assert_close(ends[0], emb.e_start.detach(), atol=1e-5, rtol=0)
    torch.testing.assert_close(ends[1], emb.e_end.detach(), atol=1e-5, rtol=0)
    middle = emb.interpolate(torch.tensor(math.pi / 4))
    assert middle.shape == (16,) and not torch.allclose(middle, ends[0])
    with pytest.raises(ValueError, match="cossin, slerp"):
        AngleEmbedding(8, interpolation="linear")
