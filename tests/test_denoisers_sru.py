"""The hand-written SRUs match naive step-by-step references, values and gradients; the parallel
scan of the input-gated SRU equals its loop."""
import os

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from melody_lab.denoisers.sru import (BiGRU, BiSRU, LinearRecurrence, LinearSRULayer, SRUFunction,
                                      SRULayer, build_bidirectional_rnn, linear_recurrence_loop,
                                      linear_recurrence_scan)


def reference_sru_layer(layer: SRULayer, x: torch.Tensor) -> torch.Tensor:
    """Lei et al. (2018), one time step at a time, per direction. x [T, N, in] -> [T, N, 2H]."""
    u = layer.proj(x).unflatten(-1, (8, layer.hidden))
    outputs = []
    for d, steps in ((0, range(x.shape[0])), (1, reversed(range(x.shape[0])))):
        v_f, v_r = layer.v[d]
        c = torch.zeros(x.shape[1], layer.hidden, dtype=x.dtype)
        h = [None] * x.shape[0]
        for t in steps:
            x_tilde, f_pre, r_pre, highway = u[t, :, 4 * d: 4 * d + 4].unbind(1)
            f = torch.sigmoid(f_pre + v_f * c)
            r = torch.sigmoid(r_pre + v_r * c)
            c = f * c + (1 - f) * x_tilde
            h[t] = r * c + (1 - r) * highway
        outputs.append(torch.stack(h))
    return torch.cat(outputs, dim=-1)


def assert_same_values_and_gradients(ours, ref, inputs):
    torch.testing.assert_close(ours, ref)
    weights = torch.randn_like(ref)
    grads = torch.autograd.grad((ours * weights).sum(), inputs)
    ref_grads = torch.autograd.grad((ref * weights).sum(), inputs)
    for ours_g, ref_g in zip(grads, ref_grads):
        torch.testing.assert_close(ours_g, ref_g)


def test_sru_layer_matches_the_step_by_step_reference():
    torch.manual_seed(0)
    layer = SRULayer(6, 5).double()
    x = torch.randn(9, 4, 6, dtype=torch.double, requires_grad=True)
    assert_same_values_and_gradients(layer(x), reference_sru_layer(layer, x), [x, *layer.parameters()])


def test_hand_written_backward_passes_gradcheck():
    torch.manual_seed(0)
    u = torch.randn(8, 5, 3, 4, dtype=torch.double, requires_grad=True)
    v = torch.randn(2, 2, 4, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(SRUFunction.apply, (u, v))


def test_directions_see_only_their_own_side():
    """The forward half of the output at step t depends on inputs ≤ t, the backward half on ≥ t."""
    torch.manual_seed(0)
    layer = SRULayer(3, 2)
    x = torch.randn(7, 1, 3, requires_grad=True)
    out = layer(x)
    fwd_grad = torch.autograd.grad(out[3, 0, :2].sum(), x, retain_graph=True)[0].abs().sum((1, 2))
    bwd_grad = torch.autograd.grad(out[3, 0, 2:].sum(), x)[0].abs().sum((1, 2))
    assert (fwd_grad[4:] == 0).all() and (fwd_grad[:4] > 0).all()
    assert (bwd_grad[:3] == 0).all() and (bwd_grad[3:] > 0).all()


@pytest.mark.parametrize("rnn_type, cls", [("sru", BiSRU), ("sru_linear", BiSRU), ("gru", BiGRU)])
def test_all_fine_paths_have_the_same_interface(rnn_type, cls):
    rnn = build_bidirectional_rnn(rnn_type, 6, 4, num_layers=2)
    assert isinstance(rnn, cls)
    assert rnn(torch.randn(3, 11, 6)).shape == (3, 11, 8)
    with pytest.raises(ValueError, match="sru, sru_linear, gru"):
        build_bidirectional_rnn("lstm", 6, 4)
    with pytest.raises(ValueError, match="loop, scan"):
        build_bidirectional_rnn("sru_linear", 6, 4, recurrence="blelloch")


def _gates(shape, extreme: str, dtype, generator):
    """Forget gates in (0, 1), or saturated: exactly 0 / 1 in places, and 1 ± 1e-7-ish."""
    a = torch.rand(shape, generator=generator, dtype=dtype)
    if extreme == "zeros_and_ones":
        pick = torch.rand(shape, generator=generator, dtype=dtype)
        a = torch.where(pick < 0.3, torch.zeros_like(a), torch.where(pick > 0.7, torch.ones_like(a), a))
    elif extreme == "near_one":
        a = 1 - torch.rand(shape, generator=generator, dtype=dtype) * 1e-6
    return a


@settings(max_examples=60, deadline=None)
@given(steps=st.integers(1, 70), rows=st.integers(1, 5), channels=st.integers(1, 4),
       reverse=st.booleans(), dtype=st.sampled_from([torch.float32, torch.float64]),
       extreme=st.sampled_from(["uniform", "zeros_and_ones", "near_one"]), seed=st.integers(0, 999))
def test_parallel_scan_equals_the_loop(steps, rows, channels, reverse, dtype, extreme, seed):
    g = torch.Generator().manual_seed(seed)
    a = _gates((steps, rows, channels), extreme, dtype, g)
    b = torch.randn(steps, rows, channels, generator=g, dtype=dtype)
    loop, scan = linear_recurrence_loop(a, b, reverse), linear_recurrence_scan(a, b, reverse)
    assert scan.dtype == dtype and scan.shape == b.shape
    tol = 1e-12 if dtype == torch.float64 else 2e-5
    torch.testing.assert_close(scan, loop, rtol=tol, atol=tol * steps)


def test_loop_is_the_recurrence_as_written():
    """c_t = a_t c_{t−1} + b_t from c_{−1} = 0; the reverse direction starts at the last step."""
    a = torch.tensor([[0.5], [0.0], [1.0]], dtype=torch.float64)
    b = torch.tensor([[2.0], [3.0], [4.0]], dtype=torch.float64)
    assert linear_recurrence_loop(a, b).flatten().tolist() == [2.0, 3.0, 7.0]
    assert linear_recurrence_loop(a, b, reverse=True).flatten().tolist() == [2.0 + 0.5 * 3.0, 3.0, 4.0]


@pytest.mark.parametrize("method", ["scan", "loop"])
@pytest.mark.parametrize("reverse", [False, True])
def test_linear_recurrence_backward_passes_gradcheck(method, reverse):
    torch.manual_seed(0)
    a = torch.rand(11, 3, 2, dtype=torch.double, requires_grad=True)
    b = torch.randn(11, 3, 2, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: LinearRecurrence.apply(a, b, reverse, method), (a, b))


def reference_linear_sru_layer(layer: LinearSRULayer, x: torch.Tensor) -> torch.Tensor:
    """Lei et al. (2017), one step at a time, per direction. x [N, T, in] -> [N, T, 2H]."""
    u = layer.proj(x).unflatten(-1, (2, layer.per_direction, layer.hidden))
    outputs = []
    for d, steps in ((0, range(x.shape[1])), (1, reversed(range(x.shape[1])))):
        c = torch.zeros(x.shape[0], layer.hidden, dtype=x.dtype)
        h = [None] * x.shape[1]
        for t in steps:
            x_tilde, f, r = u[:, t, d, 0], torch.sigmoid(u[:, t, d, 1]), torch.sigmoid(u[:, t, d, 2])
            highway = x[:, t, d * layer.hidden:(d + 1) * layer.hidden] if layer.identity_highway else u[:, t, d, 3]
            c = f * c + (1 - f) * x_tilde
            h[t] = r * c + (1 - r) * highway
        outputs.append(torch.stack(h, dim=1))
    return torch.cat(outputs, dim=-1)


@pytest.mark.parametrize("in_dim", [10, 7])  # identity highway (in = 2·hidden) and projected highway
@pytest.mark.parametrize("recurrence", ["scan", "loop"])
def test_linear_sru_layer_matches_the_step_by_step_reference(in_dim, recurrence):
    torch.manual_seed(0)
    layer = LinearSRULayer(in_dim, 5, recurrence).double()
    assert layer.identity_highway == (in_dim == 10)
    x = torch.randn(4, 13, in_dim, dtype=torch.double, requires_grad=True)
    assert_same_values_and_gradients(layer(x), reference_linear_sru_layer(layer, x), [x, *layer.parameters()])


@pytest.mark.parametrize("shape", [(18, 64, 32), (1, 5, 32), (40, 33, 32)])
def test_gru_with_parallel_directions_equals_nn_gru_bit_for_bit(shape):
    """Inference at >= 2 threads runs each layer's two directions in two threads: the same output
    (bit for bit at most shapes; a batch of one differs from nn.GRU's own call by float rounding)."""
    torch.manual_seed(0)
    rnn = BiGRU(shape[-1], 16, num_layers=2).eval()
    x = torch.randn(shape)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        calls = []
        hook = rnn.gru.register_forward_hook(lambda *_: calls.append(1))
        with torch.no_grad():
            parallel = rnn(x)
            assert not calls  # the threaded route ran, not nn.GRU
            BiGRU.parallel_directions = False
            try:
                single = rnn(x)
            finally:
                BiGRU.parallel_directions = True
        assert calls and parallel.shape == (*shape[:2], 32)
        torch.testing.assert_close(parallel, single, rtol=0, atol=1e-6)  # equal, or float rounding
        with torch.no_grad():  # training mode (dropout between layers) always takes nn.GRU
            rnn.train()
            rnn(x)
        hook.remove()
        assert len(calls) == 2
    finally:
        torch.set_num_threads(before)
    torch.set_num_threads(1)
    try:  # one thread: nn.GRU, with gradients as before
        out = rnn.eval()(x.requires_grad_())
        out.sum().backward()
        assert x.grad is not None
        torch.testing.assert_close(out.detach(), parallel, rtol=0, atol=1e-6)
    finally:
        torch.set_num_threads(before)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (POSIX)")
def test_a_forked_child_does_not_inherit_the_direction_pool():
    """The worker thread does not survive a fork: the child must make its own pool, not submit to
    the parent's (which would wait forever). Only the hook is checked in the child — torch's
    OpenMP threads themselves are not fork-safe once used at 2 threads."""
    from melody_lab.denoisers import sru

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with torch.no_grad():
            BiGRU(8, 4).eval()(torch.randn(3, 7, 8))
    finally:
        torch.set_num_threads(before)
    assert sru._DIRECTION_POOL is not None  # the parent made its pool
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write, b"1" if sru._DIRECTION_POOL is None else b"0")
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    answer = os.read(read, 1)
    os.close(read)
    assert answer == b"1" and sru._DIRECTION_POOL is not None
