"""Work done once per window (bound tokens, cached cross-attention keys/values) gives the same velocities.

- ``bind_tokens`` (token embedding + cross-attention keys/values computed once) == ``forward``.
- the sampler, which binds through ``guided_denoiser``, == a sampler over the plain callable.
"""
import pytest
import torch

from melody_lab.denoisers import build_denoiser
from melody_lab.diffusion import NULL_TOKEN, get_schedule, guided_denoiser, guided_velocity, sample


def _inputs(cfg, batch=3, length=40, generator=None):
    g = generator or torch.Generator().manual_seed(0)
    z = torch.randn(batch, length, cfg.latent_dim, generator=g)
    angles = torch.full((batch, length), 0.9)
    angles[:, :7] = 0.0                                      # known frames, as in continuation
    tokens = torch.randint(0, cfg.vocab_size, (batch, 8), generator=g)
    tokens[-1] = NULL_TOKEN
    return z, angles, tokens


@pytest.mark.parametrize("name", ["dpd", "unet"])
def test_bound_tokens_give_the_same_velocities_at_every_step(name):
    torch.manual_seed(0)
    model = build_denoiser(name, "micro").eval()
    z, angles, tokens = _inputs(model.config)
    with torch.no_grad():
        velocity = model.bind_tokens(tokens)
        for delta in (1.4, 0.9, 0.2):                        # later calls reuse the cached keys/values
            step_angles = angles.masked_fill(angles > 0, delta)
            torch.testing.assert_close(velocity(z, step_angles), model(z, step_angles, tokens),
                                       rtol=0, atol=1e-6)
        # a second length in the same window gets its own rotary keys, not the first one's
        torch.testing.assert_close(velocity(z[:, :24], angles[:, :24]), model(z[:, :24], angles[:, :24], tokens),
                                   rtol=0, atol=1e-6)


def test_guided_denoiser_binds_once_and_matches_guided_velocity():
    torch.manual_seed(0)
    model = build_denoiser("dpd", "micro").eval()
    z, angles, tokens = _inputs(model.config)
    binds = []
    original = model.bind_tokens
    model.bind_tokens = lambda t: binds.append(t) or original(t)
    with torch.no_grad():
        velocity = guided_denoiser(model, tokens, 2.5)
        first, second = velocity(z, angles), velocity(z, angles * 0.5)
    assert len(binds) == 1 and binds[0].shape == (6, 8) and (binds[0][3:] == NULL_TOKEN).all()
    del model.bind_tokens
    with torch.no_grad():
        torch.testing.assert_close(first, guided_velocity(model, z, angles, tokens, 2.5), rtol=0, atol=1e-6)
        torch.testing.assert_close(second, guided_velocity(model, z, angles * 0.5, tokens, 2.5), rtol=0, atol=1e-6)


def test_sampler_with_bound_tokens_equals_the_plain_callable():
    torch.manual_seed(0)
    model = build_denoiser("dpd", "micro").eval()
    z, _, tokens = _inputs(model.config)
    angles = get_schedule("linear").angles(4)
    known, mask = torch.zeros_like(z), torch.arange(z.shape[1]) < 7
    calls = []
    hook = model.register_forward_hook(lambda *_: calls.append(1))  # what the CLI's progress bar uses
    bound = sample(model, z, angles, tokens, guidance=2.5, known=known, known_mask=mask)
    hook.remove()
    assert len(calls) == 4                                     # one (batched CFG) call per step
    plain = sample(lambda *a: model(*a), z, angles, tokens, guidance=2.5, known=known, known_mask=mask)
    torch.testing.assert_close(bound, plain, rtol=0, atol=1e-6)
