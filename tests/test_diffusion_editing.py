"""Inpainting and slide-by-one-chunk continuation (the paper's Algorithm 2) at the latent level."""
import pytest
import torch

from melody_lab.diffusion import (
    OracleDenoiser,
    chunk_bounds,
    continue_latent,
    frame_range_mask,
    get_schedule,
    inpaint,
)

D = 3
ANGLES = get_schedule("linear").angles(6)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class Recorder:
    """A smooth stand-in denoiser that records its inputs."""

    def __init__(self):
        self.calls = []

    def __call__(self, z, angles, tokens):
        self.calls.append((z.clone(), angles.clone(), tokens))
        return torch.sin(z + angles[..., None])


class SongOracle:
    """Knows the whole 'true song' x_true [B, N, D]; the token provider tells it where the window starts."""

    def __init__(self, x_true):
        self.x_true = x_true

    def provider(self, start, end):
        return torch.tensor([[start, end]] * self.x_true.shape[0])

    def __call__(self, z, angles, tokens):
        start, end = tokens[0].tolist()
        assert end - start == z.shape[1], "the provider's window matches the latent the denoiser sees"
        return OracleDenoiser(self.x_true[:, start:end])(z, angles)


def test_frame_range_mask():
    assert frame_range_mask(6, 2, 4).tolist() == [False, False, True, True, False, False]
    for start, end in [(3, 3), (-1, 2), (2, 7)]:
        with pytest.raises(ValueError, match="start < end"):
            frame_range_mask(6, start, end)


def test_inpainting_keeps_everything_outside_the_gap_bit_for_bit():
    latent = torch.rand(2, 20, D, generator=gen(0)) * 2 - 1
    denoiser = Recorder()
    out = inpaint(denoiser, latent, 5, 11, ANGLES, generator=gen(1))
    assert torch.equal(out[:, :5], latent[:, :5]) and torch.equal(out[:, 11:], latent[:, 11:])
    assert not torch.equal(out[:, 5:11], latent[:, 5:11])
    for _, angles, _ in denoiser.calls:  # only the gap is noisy
        assert bool((angles[:, :5] == 0).all() and (angles[:, 11:] == 0).all() and (angles[:, 5:11] > 0).all())


def test_inpainting_with_an_oracle_restores_the_gap():
    latent = torch.rand(2, 20, D, generator=gen(2), dtype=torch.float64) * 2 - 1
    damaged = latent.clone()
    damaged[:, 5:11] = 0.0
    out = inpaint(OracleDenoiser(latent), damaged, 5, 11, ANGLES, generator=gen(3))
    torch.testing.assert_close(out, latent, rtol=0, atol=1e-12)


def test_inpainting_is_reproducible_from_the_seed():
    latent = torch.rand(1, 16, D, generator=gen(4)) * 2 - 1
    a, b, c = (inpaint(Recorder(), latent, 2, 9, ANGLES, generator=gen(s)) for s in (5, 5, 6))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("num_frames", [0, 1, 7, 10, 23, 40])
def test_continuation_length_and_context_are_exact(num_frames):
    context = torch.rand(2, 25, D, generator=gen(7)) * 2 - 1
    out = continue_latent(Recorder(), context, num_frames, ANGLES, window=40, num_chunks=4, generator=gen(8))
    assert out.shape == (2, 25 + num_frames, D)
    assert torch.equal(out[:, :25], context)


def test_continuation_slides_the_window_by_one_chunk():
    window, num_chunks = 40, 4
    context_frames = chunk_bounds(window, num_chunks)[-2]  # 30: the last M − 1 chunks
    new_frames = window - context_frames  # 10
    context = torch.rand(1, 35, D, generator=gen(9)) * 2 - 1
    denoiser, windows = Recorder(), []
    provider = lambda start, end: windows.append((start, end))
    out = continue_latent(denoiser, context, 23, ANGLES, window, num_chunks, provider, generator=gen(10))
    assert windows == [(5, 45), (15, 55), (25, 65)]  # ⌈23/10⌉ windows, each one chunk further
    steps = len(ANGLES) - 1
    for w, (start, end) in enumerate(windows):
        first_call_z, first_call_angles, _ = denoiser.calls[w * steps]
        assert first_call_z.shape[1] == window
        # The context is the last 30 frames of the output so far, clean (angle 0) and exact...
        assert torch.equal(first_call_z[:, :context_frames], out[:, start:start + context_frames])
        assert bool((first_call_angles[:, :context_frames] == 0).all())
        # ... followed by one fresh chunk at the running angle.
        start_angle = torch.tensor(ANGLES[0].item(), dtype=torch.float32)
        assert bool((first_call_angles[:, context_frames:] == start_angle).all())
    assert len(denoiser.calls) == 3 * steps


def test_continuation_with_less_context_takes_bigger_hops():
    window, num_chunks = 40, 4  # one chunk of context: each window adds 3 chunks = 30 frames
    context = torch.rand(1, 35, D, generator=gen(9)) * 2 - 1
    denoiser, windows = Recorder(), []
    provider = lambda start, end: windows.append((start, end))
    out = continue_latent(denoiser, context, 50, ANGLES, window, num_chunks, provider,
                          generator=gen(10), context_chunks=1)
    assert windows == [(25, 65), (55, 95)]
    assert torch.equal(out[:, :35], context) and out.shape[1] == 85
    first_z, first_angles, _ = denoiser.calls[0]
    assert torch.equal(first_z[:, :10], context[:, 25:]) and bool((first_angles[:, :10] == 0).all())
    with pytest.raises(ValueError, match="context_chunks"):
        continue_latent(Recorder(), context, 5, ANGLES, window, num_chunks, generator=gen(0),
                        context_chunks=4)


def test_continuation_from_a_short_context_uses_what_exists():
    denoiser, windows = Recorder(), []
    provider = lambda start, end: windows.append((start, end))
    out = continue_latent(denoiser, torch.zeros(1, 4, D), 25, ANGLES, 40, 4, provider, generator=gen(11))
    assert out.shape == (1, 29, D)
    assert windows == [(0, 14), (0, 24), (0, 34)]


def test_continuation_with_an_oracle_reproduces_the_true_song():
    x_true = torch.rand(2, 100, D, generator=gen(12), dtype=torch.float64) * 2 - 1
    oracle = SongOracle(x_true)
    out = continue_latent(oracle, x_true[:, :30], 70, ANGLES, window=40, num_chunks=4,
                          token_provider=oracle.provider, generator=gen(13))
    torch.testing.assert_close(out, x_true, rtol=0, atol=1e-12)


def test_continuation_is_reproducible_from_the_seed():
    context = torch.rand(1, 30, D, generator=gen(14)) * 2 - 1
    run = lambda seed: continue_latent(Recorder(), context, 15, ANGLES, 40, 4, generator=gen(seed))
    assert torch.equal(run(1), run(1)) and not torch.equal(run(1), run(2))


def test_continuation_errors():
    with pytest.raises(ValueError, match="generator"):
        continue_latent(Recorder(), torch.zeros(1, 30, D), 5, ANGLES, 40, 4)
    with pytest.raises(ValueError, match=">= 0"):
        continue_latent(Recorder(), torch.zeros(1, 30, D), -1, ANGLES, 40, 4, generator=gen(0))
