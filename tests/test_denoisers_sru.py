"""The hand-written SRU matches a naive step-by-step reference, values and gradients."""
import pytest
import torch

from melody_lab.denoisers.sru import BiGRU, BiSRU, SRUFunction, SRULayer, build_bidirectional_rnn


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


def test_sru_layer_matches_the_step_by_step_reference():
    torch.manual_seed(0)
    layer = SRULayer(6, 5).double()
    x = torch.randn(9, 4, 6, dtype=torch.double, requires_grad=True)
    ours = layer(x)
    ref = reference_sru_layer(layer, x)
    torch.testing.assert_close(ours, ref)
    weights = torch.randn_like(ref)
    grads = torch.autograd.grad((ours * weights).sum(), [x, *layer.parameters()])
    ref_grads = torch.autograd.grad((ref * weights).sum(), [x, *layer.parameters()])
    for ours_g, ref_g in zip(grads, ref_grads):
        torch.testing.assert_close(ours_g, ref_g)


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


@pytest.mark.parametrize("rnn_type, cls", [("sru", BiSRU), ("gru", BiGRU)])
def test_both_fine_paths_have_the_same_interface(rnn_type, cls):
    rnn = build_bidirectional_rnn(rnn_type, 6, 4, num_layers=2)
    assert isinstance(rnn, cls)
    assert rnn(torch.randn(3, 11, 6)).shape == (3, 11, 8)
    with pytest.raises(ValueError, match="sru, gru"):
        build_bidirectional_rnn("lstm", 6, 4)
