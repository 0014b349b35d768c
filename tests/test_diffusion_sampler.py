"""The sampler: exact with an oracle, consumes exactly its angles, known frames, guidance, seeds."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from melody_lab.diffusion import (
    NULL_TOKEN,
    OracleDenoiser,
    add_noise,
    drop_tokens,
    get_schedule,
    inpaint,
    multichunk_target,
    null_rows,
    sample,
)

SCHEDULES = [("uniform", {}), ("linear", {}), ("ratio", {"ratio": 3.0}), ("ratio", {"ratio": 0.5}), ("logsnr", {})]
B, L, D = 2, 12, 4


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class ToyDenoiser:
    """Row-wise and token-aware, like a real denoiser; records every call.

    v = tanh(z·W + angle) + c(tokens), where c is the mean token embedding of a row, or a learned
    "null" vector for tokens=None and for rows that are all NULL_TOKEN (the convention).
    """

    def __init__(self, seed: int = 0, scale: float = 1.0):
        g = gen(seed)
        self.weight = torch.randn(D, D, generator=g) * 0.5
        self.table = torch.randn(1024, D, generator=g)
        self.null = torch.randn(D, generator=g)
        self.scale = scale
        self.calls = []

    def __call__(self, z, angles, tokens):
        self.calls.append((z.clone(), angles.clone(), None if tokens is None else tokens.clone()))
        v = torch.tanh(z @ self.weight.to(z.dtype) + angles[..., None])
        if tokens is None:
            cond = self.null.expand(z.shape[0], D)
        else:
            embedded = self.table[tokens.clamp_min(0)].mean(1)
            cond = torch.where(null_rows(tokens)[:, None], self.null, embedded)
        return self.scale * (v + cond.to(z.dtype)[:, None, :])


def clean_latent(seed: int, dtype=torch.float64):
    return (torch.rand(B, L, D, generator=gen(seed), dtype=dtype) * 1.8 - 0.9)


# --- exactness with an oracle --------------------------------------------------------------


def _check_oracle_path(name, params, num_steps, dtype=torch.float64, atol=1e-12):
    x0 = clean_latent(1, dtype)
    noise = torch.randn(B, L, D, generator=gen(2), dtype=dtype)
    angles = get_schedule(name, **params).angles(num_steps)
    seen = []
    out = sample(OracleDenoiser(x0), noise, angles, callback=lambda *args: seen.append(args))
    torch.testing.assert_close(out, x0, rtol=0, atol=atol)
    assert [s[0] for s in seen] == list(range(num_steps))
    for step, z, v_hat, z_hat in seen:  # every intermediate state lies on the true path
        torch.testing.assert_close(z, add_noise(x0, noise, angles[step + 1].item()), rtol=0, atol=atol)
        torch.testing.assert_close(z_hat, x0, rtol=0, atol=atol * 100)


@pytest.mark.parametrize("name,params", SCHEDULES)
@pytest.mark.parametrize("num_steps", [1, 2, 3, 5, 10, 20, 50, 200])
def test_oracle_denoiser_is_recovered_exactly(name, params, num_steps):
    _check_oracle_path(name, params, num_steps)


@settings(max_examples=25, deadline=None)
@given(spec=st.sampled_from(SCHEDULES), num_steps=st.integers(1, 1000))
def test_oracle_exactness_for_any_step_count(spec, num_steps):
    _check_oracle_path(*spec, num_steps)


@pytest.mark.parametrize("name,params", SCHEDULES)
def test_oracle_exactness_in_float32(name, params):
    _check_oracle_path(name, params, 25, dtype=torch.float32, atol=2e-5)


def test_stopping_early_leaves_the_latent_on_the_true_path():
    x0 = clean_latent(3) * 0.3
    noise = 0.3 * torch.randn(B, L, D, generator=gen(4), dtype=torch.float64)  # stays inside the clamp
    angles = get_schedule("linear").angles(10)[:6]  # π/2 … 0.5474: a partial run
    out = sample(OracleDenoiser(x0), noise, angles)
    torch.testing.assert_close(out, add_noise(x0, noise, angles[-1].item()), rtol=0, atol=1e-12)


# --- the sampler consumes exactly the angles it is given ------------------------------------


def test_denoiser_sees_exactly_the_given_angles_one_call_per_step():
    angles = torch.tensor([1.5, 1.2, 0.31, 0.3, 0.001, 0.0], dtype=torch.float64)  # hand-made, irregular
    denoiser = ToyDenoiser()
    sample(denoiser, torch.randn(B, L, D, generator=gen(0)), angles)
    assert len(denoiser.calls) == 5
    for (z, frame_angles, tokens), delta in zip(denoiser.calls, angles[:-1].tolist()):
        assert frame_angles.shape == (B, L) and tokens is None
        assert torch.equal(frame_angles, torch.full((B, L), delta, dtype=torch.float32))


def test_each_step_is_the_rotation_by_the_angle_difference():
    angles = torch.tensor([1.5, 0.9, 0.2, 0.0], dtype=torch.float64)
    denoiser, seen = ToyDenoiser(scale=0.05), []
    noise = 0.2 * torch.randn(B, L, D, generator=gen(1), dtype=torch.float64)
    sample(denoiser, noise, angles, callback=lambda *args: seen.append(args))
    z = noise
    for step, (z_next, v_hat, _) in enumerate(s[1:] for s in seen):
        omega = (angles[step] - angles[step + 1]).item()
        torch.testing.assert_close(z_next, math.cos(omega) * z - math.sin(omega) * v_hat, rtol=0, atol=0)
        z = z_next


@pytest.mark.parametrize(
    "angles",
    [[0.0, 0.5], [1.0, 1.0, 0.0], [1.0], [[1.5, 0.0]], [1.0, -0.1], [2.0, 0.0], [1.0, float("nan"), 0.0]],
)
def test_invalid_angle_sequences_are_rejected(angles):
    with pytest.raises(ValueError, match="angles"):
        sample(ToyDenoiser(), torch.zeros(B, L, D), torch.tensor(angles, dtype=torch.float64))


# --- known frames, clamp ---------------------------------------------------------------------


@pytest.mark.parametrize("per_example_mask", [False, True])
def test_known_frames_are_untouched_bit_for_bit(per_example_mask):
    known = torch.rand(B, L, D, generator=gen(5)) * 2 - 1
    known[0, 0, 0], known[0, 1, 1], known[1, 2, 0] = 1.0, -1.0, 1.5  # even outside the clamp range
    if per_example_mask:
        mask = torch.rand(B, L, generator=gen(6)) < 0.5
        mask[:, :3] = True
    else:
        mask = torch.zeros(L, dtype=torch.bool)
        mask[:3] = mask[8:] = True
    denoiser = ToyDenoiser()
    out = sample(denoiser, torch.randn(B, L, D, generator=gen(7)), get_schedule("linear").angles(8),
                 known=known, known_mask=mask)
    full_mask = mask.expand(B, L)
    assert torch.equal(out[full_mask], known[full_mask])
    assert not torch.equal(out[~full_mask], known[~full_mask])
    assert out[~full_mask].abs().max().item() <= 1.0
    for (z, frame_angles, _), delta in zip(denoiser.calls, get_schedule("linear").angles(8)[:-1].tolist()):
        assert bool((frame_angles[full_mask] == 0).all()), "known frames have angle 0"
        assert bool((frame_angles[~full_mask] == torch.tensor(delta, dtype=torch.float32)).all())
        assert torch.equal(z[full_mask], known[full_mask]), "re-imposed before every step"


def test_final_latent_is_clamped_to_unit_range():
    noise = torch.randn(B, L, D, generator=gen(8))
    out = sample(ToyDenoiser(scale=20.0), noise, get_schedule("uniform").angles(4))
    assert out.abs().max().item() == 1.0


# --- guidance ---------------------------------------------------------------------------------


def _tokens(seed=9):
    return torch.randint(0, 1024, (B, 5), generator=gen(seed))


def test_guidance_one_is_exactly_the_conditional_path_in_one_unbatched_call():
    tokens, noise, angles = _tokens(), torch.randn(B, L, D, generator=gen(10)), get_schedule("linear").angles(6)
    denoiser = ToyDenoiser()
    guided = sample(denoiser, noise, angles, tokens=tokens, guidance=1.0)
    assert all(t.shape[0] == B and not null_rows(t).any() for _, _, t in denoiser.calls)
    plain = ToyDenoiser()
    conditional = sample(lambda z, a, _: plain(z, a, tokens), noise, angles)
    assert torch.equal(guided, conditional)


def _reference_cfg(denoiser, noise, angles, tokens, w):
    """Two separate passes per step, written out: v = v_u + w·(v_c − v_u)."""
    z = noise
    for i in range(len(angles) - 1):
        a = torch.full((B, L), angles[i].item())
        v_c, v_u = denoiser(z, a, tokens), denoiser(z, a, None)
        omega = (angles[i] - angles[i + 1]).item()
        z = math.cos(omega) * z - math.sin(omega) * (v_u + w * (v_c - v_u))
    return z.clamp(-1, 1)


@pytest.mark.parametrize("w", [0.0, 2.5, 7.0])
def test_guidance_batches_cond_and_null_rows_into_one_call(w):
    tokens, noise, angles = _tokens(), torch.randn(B, L, D, generator=gen(11)), get_schedule("linear").angles(5)
    denoiser = ToyDenoiser(scale=0.2)
    out = sample(denoiser, noise, angles, tokens=tokens, guidance=w)
    assert len(denoiser.calls) == 5
    for z, frame_angles, call_tokens in denoiser.calls:
        assert z.shape[0] == frame_angles.shape[0] == call_tokens.shape[0] == 2 * B
        assert torch.equal(z[:B], z[B:]) and torch.equal(frame_angles[:B], frame_angles[B:])
        assert torch.equal(call_tokens[:B], tokens)
        assert bool((call_tokens[B:] == NULL_TOKEN).all())
    reference = _reference_cfg(ToyDenoiser(scale=0.2), noise, angles, tokens, w)
    torch.testing.assert_close(out, reference, rtol=0, atol=1e-5)


def test_no_tokens_means_one_unconditional_call_whatever_the_guidance():
    denoiser = ToyDenoiser()
    sample(denoiser, torch.randn(B, L, D, generator=gen(12)), get_schedule("linear").angles(3), guidance=2.5)
    assert len(denoiser.calls) == 3 and all(t is None and z.shape[0] == B for z, _, t in denoiser.calls)


# --- determinism, inputs, errors ---------------------------------------------------------------


def test_same_generator_seed_gives_identical_output():
    angles, tokens = get_schedule("linear").angles(6), _tokens()
    run = lambda seed: sample(ToyDenoiser(), (B, L, D), angles, tokens=tokens, guidance=2.5, generator=gen(seed))
    first, second, other = run(21), run(21), run(22)
    assert torch.equal(first, second)
    assert not torch.equal(first, other)
    assert first.shape == (B, L, D) and first.dtype == torch.float32


def test_inputs_are_not_modified_and_no_gradients_are_built():
    noise, known = torch.randn(B, L, D, generator=gen(13)), torch.rand(B, L, D, generator=gen(14))
    mask = torch.arange(L) < 4
    noise_copy, known_copy = noise.clone(), known.clone()
    layer = torch.nn.Linear(D, D)
    out = sample(lambda z, a, t: layer(z), noise, get_schedule("logsnr").angles(4), known=known, known_mask=mask)
    assert torch.equal(noise, noise_copy) and torch.equal(known, known_copy)
    assert not out.requires_grad


def test_argument_errors_say_what_is_wrong():
    noise, angles = torch.zeros(B, L, D), get_schedule("linear").angles(2)
    with pytest.raises(ValueError, match="generator"):
        sample(ToyDenoiser(), (B, L, D), angles)
    with pytest.raises(ValueError, match="tokens have batch"):
        sample(ToyDenoiser(), noise, angles, tokens=torch.zeros(B + 1, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="together"):
        sample(ToyDenoiser(), noise, angles, known=noise)
    with pytest.raises(ValueError, match="shape"):
        short = torch.zeros(B, L - 1, D)
        sample(ToyDenoiser(), noise, angles, known=short, known_mask=torch.ones(L, dtype=torch.bool))


@pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs CUDA: checks that nothing silently stays on the CPU"
)
def test_latents_on_cuda_work_with_cpu_and_cuda_generators():
    x0 = clean_latent(1, torch.float32).cuda()
    target = multichunk_target(x0, 4, gen(0))  # a CPU generator (the training loop's) with CUDA latents
    assert target.noisy.is_cuda and target.angles.is_cuda
    assert drop_tokens(_tokens().cuda(), 0.5, gen(0)).is_cuda
    cuda_gen = torch.Generator(device="cuda").manual_seed(0)
    out = sample(OracleDenoiser(x0), (B, L, D), get_schedule("linear").angles(10), generator=cuda_gen)
    assert out.is_cuda
    torch.testing.assert_close(out, x0, rtol=0, atol=2e-5)
    mask_on_cpu = torch.arange(L) < 3
    out = sample(OracleDenoiser(x0), torch.randn(B, L, D, device="cuda"), get_schedule("linear").angles(4),
                 known=x0, known_mask=mask_on_cpu)
    assert torch.equal(out[:, :3], x0[:, :3])
    assert inpaint(OracleDenoiser(x0), x0, 2, 5, get_schedule("linear").angles(4), generator=gen(1)).is_cuda
