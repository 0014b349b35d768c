"""Multi-chunk training target, masked loss, and classifier-free-guidance token dropout."""
import math

import pytest
import torch
from scipy import stats

from melody_lab.diffusion import (
    NULL_TOKEN,
    chunk_bounds,
    chunk_index,
    drop_tokens,
    frame_angles,
    multichunk_target,
    null_rows,
    predict_clean,
    velocity_loss,
)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize(
    "num_frames,num_chunks,expected",
    [(10, 4, [0, 2, 5, 7, 10]), (625, 4, [0, 156, 312, 468, 625]), (2500, 4, [0, 625, 1250, 1875, 2500]),
     (7, 1, [0, 7]), (3, 3, [0, 1, 2, 3])],
)
def test_chunk_bounds_are_floor_m_l_over_m(num_frames, num_chunks, expected):
    assert chunk_bounds(num_frames, num_chunks) == expected
    index = chunk_index(num_frames, num_chunks)
    assert index.shape == (num_frames,)
    for m in range(num_chunks):
        assert bool((index[expected[m]:expected[m + 1]] == m).all())


@pytest.mark.parametrize("num_chunks", [0, 11])
def test_chunk_counts_outside_one_to_l_are_rejected(num_chunks):
    with pytest.raises(ValueError, match="num_chunks"):
        chunk_bounds(10, num_chunks)


def test_target_is_built_from_one_angle_per_chunk():
    z = torch.rand(3, 50, 4, generator=gen(0)) * 2 - 1
    target = multichunk_target(z, num_chunks=4, generator=gen(1))
    assert target.chunk_angles.shape == (3, 4) and target.angles.shape == (3, 50)
    bounds = chunk_bounds(50, 4)
    for m in range(4):
        chunk = target.angles[:, bounds[m]:bounds[m + 1]]
        assert torch.equal(chunk, target.chunk_angles[:, m:m + 1].expand_as(chunk))
    assert torch.equal(target.angles, frame_angles(target.chunk_angles, 50))
    assert bool((target.angles >= 0).all() and (target.angles <= math.pi / 2).all())
    c, s = torch.cos(target.angles)[..., None], torch.sin(target.angles)[..., None]
    torch.testing.assert_close(target.noisy, c * z + s * target.noise)
    torch.testing.assert_close(target.velocity, c * target.noise - s * z)
    torch.testing.assert_close(predict_clean(target.noisy, target.velocity, target.angles), z, rtol=0, atol=1e-6)
    for t in (target.angles, target.noise, target.noisy, target.velocity):
        assert t.dtype == z.dtype


def test_same_generator_seed_gives_the_same_target_and_other_seeds_do_not():
    z = torch.rand(2, 40, 3, generator=gen(0))
    a, b, c = (multichunk_target(z, 4, gen(seed)) for seed in (7, 7, 8))
    assert torch.equal(a.angles, b.angles) and torch.equal(a.noise, b.noise)
    assert not torch.equal(a.angles, c.angles) and not torch.equal(a.noise, c.noise)


def test_chunk_angles_are_uniform_and_independent_per_chunk_and_per_example():
    z = torch.zeros(4000, 8, 1)
    angles = multichunk_target(z, num_chunks=4, generator=gen(3)).chunk_angles.double()  # [4000, 4]
    t = angles / (math.pi / 2)
    assert stats.kstest(t.flatten().numpy(), "uniform").pvalue > 1e-3
    # Independent across chunks: the 4×4 correlation matrix is the identity up to sampling noise
    # (standard error 1/√4000 ≈ 0.016).
    corr = torch.corrcoef(t.T)
    assert (corr - torch.eye(4)).abs().max().item() < 0.06
    # Independent across examples: neighbouring examples are uncorrelated, and no two rows agree.
    for m in range(4):
        assert abs(torch.corrcoef(torch.stack([t[:-1, m], t[1:, m]]))[0, 1].item()) < 0.06
    assert torch.unique(angles, dim=0).shape[0] == 4000
    # Not one angle broadcast across chunks, nor one angle per chunk shared across the batch.
    assert (t[:, 0] != t[:, 1]).all() and (t[0] != t[1]).all()


def test_one_chunk_means_one_angle_per_example():
    target = multichunk_target(torch.zeros(5, 12, 2), num_chunks=1, generator=gen(4))
    assert torch.equal(target.angles, target.chunk_angles.expand(5, 12))


def test_loss_without_mask_is_plain_mse():
    g = gen(5)
    v_hat, v = torch.randn(2, 9, 3, generator=g), torch.randn(2, 9, 3, generator=g)
    torch.testing.assert_close(velocity_loss(v_hat, v), torch.nn.functional.mse_loss(v_hat, v))


def test_masked_loss_averages_over_selected_frames_only():
    g = gen(6)
    v_hat, v = torch.randn(2, 9, 3, generator=g), torch.randn(2, 9, 3, generator=g)
    mask = torch.zeros(2, 9, dtype=torch.bool)
    mask[0, 2:5] = True
    mask[1, 7] = True
    selected = torch.cat([(v_hat - v)[0, 2:5], (v_hat - v)[1, 7:8]])
    torch.testing.assert_close(velocity_loss(v_hat, v, mask), selected.pow(2).mean())
    changed = v_hat.clone()
    changed[~mask] += 100.0  # frames outside the mask cannot move the loss
    torch.testing.assert_close(velocity_loss(changed, v, mask), velocity_loss(v_hat, v, mask))
    # Float weights: a weighted mean.
    weights = torch.rand(2, 9, generator=g)
    expected = ((v_hat - v).pow(2).mean(-1) * weights).sum() / weights.sum()
    torch.testing.assert_close(velocity_loss(v_hat, v, weights), expected)


def test_all_zero_mask_gives_zero_loss_with_finite_gradient():
    v_hat = torch.randn(1, 4, 2, requires_grad=True)
    loss = velocity_loss(v_hat, torch.zeros(1, 4, 2), torch.zeros(1, 4, dtype=torch.bool))
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(v_hat.grad).all()


def test_mask_of_the_wrong_shape_is_rejected():
    with pytest.raises(ValueError, match=r"\[B, L\]"):
        velocity_loss(torch.zeros(1, 4, 2), torch.zeros(1, 4, 2), torch.ones(4, dtype=torch.bool))


def test_token_dropout_replaces_whole_rows_with_the_null_token():
    tokens = torch.randint(0, 1024, (10000, 6), generator=gen(7))
    before = tokens.clone()
    dropped = drop_tokens(tokens, p=0.1, generator=gen(8))
    assert torch.equal(tokens, before), "the input is not modified"
    null = null_rows(dropped)
    assert torch.equal(dropped[~null], tokens[~null])
    assert bool((dropped[null] == NULL_TOKEN).all())
    assert abs(null.float().mean().item() - 0.1) < 0.01  # 10000 rows: standard error 0.003
    assert torch.equal(dropped, drop_tokens(tokens, 0.1, gen(8)))
    assert not torch.equal(dropped, drop_tokens(tokens, 0.1, gen(9)))


def test_token_dropout_edge_cases():
    tokens = torch.randint(0, 1024, (50, 3), generator=gen(10))
    assert torch.equal(drop_tokens(tokens, 0.0, gen(0)), tokens)
    assert bool(null_rows(drop_tokens(tokens, 1.0, gen(0))).all())
    assert drop_tokens(None, 0.1, gen(0)) is None
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        drop_tokens(tokens, 1.5, gen(0))


def test_null_rows_needs_every_token_null():
    tokens = torch.tensor([[NULL_TOKEN, NULL_TOKEN], [NULL_TOKEN, 3], [0, 1]])
    assert null_rows(tokens).tolist() == [True, False, False]
