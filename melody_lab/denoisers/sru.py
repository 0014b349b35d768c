"""A hand-written bidirectional SRU (Lei et al., "Simple Recurrent Units for Highly Parallelizable
Recurrence", EMNLP 2018) — the fine path of MeLoDy's dual-path blocks — and the GRU alternative.

Per layer and direction, with x_t the input and c_t the cell state:

    x̃_t, f̃_t, r̃_t, x'_t = W x_t                   (one matmul for the whole sequence)
    f_t = σ(f̃_t + v_f ⊙ c_{t−1} + b_f)               (forget gate)
    r_t = σ(r̃_t + v_r ⊙ c_{t−1} + b_r)               (reset / highway gate)
    c_t = f_t ⊙ c_{t−1} + (1 − f_t) ⊙ x̃_t
    h_t = r_t ⊙ c_t + (1 − r_t) ⊙ x'_t                (highway: x'_t projects x_t to the state width)

Only the gate and cell lines depend on t, and only elementwise. So one ``nn.Linear`` call computes
the matmuls for every time step, both directions and the whole batch; a TorchScript loop over t then
runs just the forget-gate recurrence (two fused ops per step on ``[N, hidden]`` rows); r_t and h_t
are computed for the whole sequence afterwards. The backward pass is hand-written
(:class:`SRUFunction`): the gradient of the recurrence is itself a 2-op reverse scan. GRU
(``nn.GRU``, oneDNN kernels) is the alternative fine path; docs/denoisers.md compares them.

``"sru_linear"`` is the SRU of Lei et al.'s first version ("Training RNNs as fast as CNNs", 2017),
whose gates read the input only — f_t = σ(W_f x_t + b_f), r_t = σ(W_r x_t + b_r) — with the
identity highway h_t = r_t ⊙ c_t + (1 − r_t) ⊙ x_t when the input is as wide as the output (a
projection otherwise). Its cell line c_t = f_t ⊙ c_{t−1} + (1 − f_t) ⊙ x̃_t is then a *linear*
recurrence c_t = a_t ⊙ c_{t−1} + b_t, which a parallel scan computes in ⌈log₂ T⌉ rounds of
whole-sequence ops (:func:`linear_recurrence_scan`); :func:`linear_recurrence_loop` is the readable
step-by-step reference, and :class:`LinearRecurrence` gives either one the exact backward (itself a
linear recurrence run the other way). One matmul per layer (6·hidden outputs instead of 8) and a
handful of elementwise kernels make it the cheapest fine path.
Shapes: ``x [N, T, in_dim] -> [N, T, 2·hidden]`` (both directions concatenated).
"""
from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor

import torch
from torch import nn

RNN_TYPES = ("sru", "sru_linear", "gru")
RECURRENCES = ("loop", "scan")


def _script(fn):
    """TorchScript-compile a per-step loop (~10-25% faster than eager here); eager if unavailable."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # jit.script is deprecated in 2.13
            return torch.jit.script(fn)
    except Exception:  # noqa: BLE001 - any scripting failure just means eager mode
        return fn


@_script
def _forget_scan(x_tilde: torch.Tensor, f_pre: torch.Tensor, v_f: torch.Tensor, reverse: bool):
    """c_t = f_t ⊙ (c_{t−1} − x̃_t) + x̃_t with f_t = σ(f̃_t + v_f ⊙ c_{t−1}); inputs [T, N, C].

    ``reverse`` runs from t = T−1 down to 0 (the backward direction; "t−1" is then t+1).
    Returns (c, f), each [T, N, C] in time order.
    """
    c = torch.zeros_like(x_tilde[0])
    states, gates = [], []
    steps = x_tilde.shape[0]
    for i in range(steps):
        t = steps - 1 - i if reverse else i
        f = torch.sigmoid(torch.addcmul(f_pre[t], v_f, c))
        c = torch.addcmul(x_tilde[t], f, c - x_tilde[t])
        states.append(c)
        gates.append(f)
    if reverse:
        states.reverse()
        gates.reverse()
    return torch.stack(states), torch.stack(gates)


@_script
def _gradient_scan(grad: torch.Tensor, decay: torch.Tensor, reverse: bool) -> torch.Tensor:
    """dL/dc_t = grad_t + decay_{t+1} ⊙ dL/dc_{t+1}, run against the direction of the forward
    scan (``reverse`` as in :func:`_forget_scan`); inputs [T, N, C]."""
    total = torch.zeros_like(grad[0])
    out = []
    steps = grad.shape[0]
    for i in range(steps):
        t = i if reverse else steps - 1 - i
        total = grad[t] + total
        out.append(total)
        total = total * decay[t]
    if not reverse:
        out.reverse()
    return torch.stack(out)


def _shift(x: torch.Tensor, reverse: bool, back: bool = True) -> torch.Tensor:
    """x_{t−1} (``back``) or x_{t+1} in the scan's own direction, zero beyond the ends; [T, N, C]."""
    zero = torch.zeros_like(x[:1])
    if back != reverse:
        return torch.cat([zero, x[:-1]])
    return torch.cat([x[1:], zero])


class SRUFunction(torch.autograd.Function):
    """Everything of a bidirectional SRU layer after its matmul, with a hand-written backward.

    apply(u [8, T, N, H], v [2, 2, H]) -> h [T, N, 2H] (forward-direction states, then backward).
    u[4·d + k] holds direction d's x̃, f̃, r̃, x' (k = 0…3); v[d] = (v_f, v_r). Autograd
    through the per-step loop would record every step's ops and replay them one by one; here the
    gradient of the recurrence is a 2-op reverse scan and all else is whole-sequence elementwise.
    """

    @staticmethod
    def forward(ctx, u, v):
        outputs, saved = [], []
        for d, reverse in ((0, False), (1, True)):
            x_tilde, f_pre, r_pre, highway = u[4 * d: 4 * d + 4]
            c, f = _forget_scan(x_tilde, f_pre, v[d, 0], reverse)
            r = torch.sigmoid(torch.addcmul(r_pre, v[d, 1], _shift(c, reverse)))
            outputs.append(torch.addcmul(highway, r, c - highway))  # r ⊙ c + (1 − r) ⊙ x'
            saved += [c, f, r]
        ctx.save_for_backward(u, v, *saved)
        return torch.cat(outputs, dim=-1)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_h):
        u, v, *saved = ctx.saved_tensors
        grad_u, grad_v = torch.empty_like(u), torch.empty_like(v)
        for d, (reverse, g) in enumerate(zip((False, True), grad_h.chunk(2, dim=-1))):
            c, f, r = saved[3 * d: 3 * d + 3]
            x_tilde, _, _, highway = u[4 * d: 4 * d + 4]
            v_f, v_r = v[d]
            c_prev = _shift(c, reverse)
            grad_r_pre = g * (c - highway) * r * (1 - r)
            # c_t reaches the loss through h_t directly and through the gate r_{t+1}
            grad_c = g * r + _shift(grad_r_pre, reverse, back=False) * v_r
            d_f_pre = (c_prev - x_tilde) * f * (1 - f)            # ∂c_t/∂f̃_t
            decay = f + d_f_pre * v_f                               # ∂c_t/∂c_{t−1} inside the scan
            grad_total = _gradient_scan(grad_c, decay, reverse)     # dL/dc_t through all later steps
            grad_f_pre = grad_total * d_f_pre
            for k, grad in enumerate((grad_total * (1 - f), grad_f_pre, grad_r_pre, g * (1 - r))):
                grad_u[4 * d + k] = grad
            grad_v[d, 0] = (grad_f_pre * c_prev).sum((0, 1))
            grad_v[d, 1] = (grad_r_pre * c_prev).sum((0, 1))
        return grad_u, grad_v


class SRULayer(nn.Module):
    """One bidirectional SRU layer, time-first: [T, N, in_dim] -> [T, N, 2·hidden]."""

    def __init__(self, in_dim: int, hidden: int):
        super().__init__()
        self.hidden = hidden
        # One matmul yields, for every step and both directions, x̃, f̃, r̃ and x' (the highway
        # projection of x): output column block 4·d + k is direction d (0 fwd, 1 bwd), output k.
        self.proj = nn.Linear(in_dim, 8 * hidden)
        self.v = nn.Parameter(torch.empty(2, 2, hidden).uniform_(-0.5, 0.5))  # [direction, (v_f, v_r)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = self.proj(x).unflatten(-1, (8, self.hidden)).permute(2, 0, 1, 3).contiguous()
        return SRUFunction.apply(u, self.v)                     # u: [8, T, N, hidden]


def linear_recurrence_loop(a: torch.Tensor, b: torch.Tensor, reverse: bool = False) -> torch.Tensor:
    """c_t = a_t ⊙ c_{t−1} + b_t with c_{−1} = 0, one step at a time along dim 0 (the reference).

    a, b [T, ...] -> c [T, ...]. ``reverse`` runs from t = T−1 down to 0 ("t−1" is then t+1).
    """
    c = torch.zeros_like(b[0])
    states = []
    for t in (reversed(range(b.shape[0])) if reverse else range(b.shape[0])):
        c = torch.addcmul(b[t], a[t], c)
        states.append(c)
    return torch.stack(states[::-1] if reverse else states)


def linear_recurrence_scan(a: torch.Tensor, b: torch.Tensor, reverse: bool = False) -> torch.Tensor:
    """The same recurrence as :func:`linear_recurrence_loop`, as a Hillis–Steele parallel scan.

    Round k combines every step with the one 2^k before it: (a, b)_t ← (a_t a_{t−s}, b_t + a_t b_{t−s}),
    s = 2^k. After ⌈log₂ T⌉ rounds b_t holds c_t. Each round is two whole-tensor ops; products of
    gates in [0, 1] never overflow, so no log space is needed. a, b [T, ...] -> c [T, ...].
    """
    a, b = a.clone(), b.clone()
    steps, span = b.shape[0], 1
    while span < steps:
        n = steps - span
        later, earlier = (slice(0, n), slice(span, steps)) if reverse else (slice(span, steps), slice(0, n))
        b[later] += a[later] * b[earlier]          # the product is formed before b is written
        if 2 * span < steps:
            a[later] *= a[earlier].clone()
        span *= 2
    return b


_RECURRENCE = {"loop": linear_recurrence_loop, "scan": linear_recurrence_scan}


def _shifted(x: torch.Tensor, reverse: bool, earlier: bool) -> torch.Tensor:
    """x_{t−1} (``earlier``) or x_{t+1} in the recurrence's own direction, zero beyond the ends."""
    zero = torch.zeros_like(x[:1])
    if earlier != reverse:
        return torch.cat([zero, x[:-1]])
    return torch.cat([x[1:], zero])


class LinearRecurrence(torch.autograd.Function):
    """apply(a [T, ...], b [T, ...], reverse: bool, method: "scan" | "loop") -> c [T, ...].

    Backward: dL/dc_t collects grad_t and a_{t+1} ⊙ dL/dc_{t+1}, the same linear recurrence run in the
    opposite direction, so it uses the same ``method``; then dL/db_t = dL/dc_t (total) and
    dL/da_t = dL/dc_t ⊙ c_{t−1}.
    """

    @staticmethod
    def forward(ctx, a, b, reverse, method):
        c = _RECURRENCE[method](a, b, reverse)
        ctx.save_for_backward(a, c)
        ctx.reverse, ctx.method = reverse, method
        return c

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_c):
        a, c = ctx.saved_tensors
        grad_b = _RECURRENCE[ctx.method](_shifted(a, ctx.reverse, earlier=False), grad_c, not ctx.reverse)
        return grad_b * _shifted(c, ctx.reverse, earlier=True), grad_b, None, None


class LinearSRULayer(nn.Module):
    """One bidirectional input-gated SRU layer (``"sru_linear"``), batch-first: [N, T, in] -> [N, T, 2·hidden].

    ``recurrence``: ``"scan"`` (parallel over time) or ``"loop"`` (the step-by-step reference);
    both compute the same function.
    """

    def __init__(self, in_dim: int, hidden: int, recurrence: str = "loop"):
        super().__init__()
        if recurrence not in RECURRENCES:
            raise ValueError(f"unknown recurrence {recurrence!r}; choose one of {', '.join(RECURRENCES)}")
        self.hidden, self.recurrence = hidden, recurrence
        self.identity_highway = in_dim == 2 * hidden
        # output column block 3·d + k (or 4·d + k with a highway projection): direction d, k = x̃, f̃, r̃(, x')
        self.per_direction = 3 if self.identity_highway else 4
        self.proj = nn.Linear(in_dim, 2 * self.per_direction * hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = self.proj(x).unflatten(-1, (2, self.per_direction, self.hidden))   # [N, T, 2, k, hidden]
        x_tilde = u[..., 0, :]
        gates = torch.sigmoid(u[..., 1:3, :])                                  # f, r: [N, T, 2, 2, hidden]
        f, r = gates[..., 0, :], gates[..., 1, :]
        b = x_tilde - f * x_tilde                                              # (1 − f) ⊙ x̃
        c = torch.stack([LinearRecurrence.apply(f[:, :, d].transpose(0, 1), b[:, :, d].transpose(0, 1),
                                                d == 1, self.recurrence)
                         for d in (0, 1)], dim=2).transpose(0, 1)               # [N, T, 2, hidden]
        highway = x.unflatten(-1, (2, self.hidden)) if self.identity_highway else u[..., 3, :]
        return torch.addcmul(highway, r, c - highway).flatten(-2)              # r ⊙ c + (1 − r) ⊙ x


class BiSRU(nn.Module):
    """A stack of bidirectional SRU layers: [N, T, in_dim] -> [N, T, 2·hidden].

    ``cell="sru"``: :class:`SRULayer` (Lei et al. 2018; runs time-first); ``"sru_linear"``:
    :class:`LinearSRULayer` (batch-first, no transposes).
    """

    def __init__(self, in_dim: int, hidden: int, num_layers: int = 2, cell: str = "sru",
                 recurrence: str = "loop"):
        super().__init__()
        self.time_first = cell == "sru"
        self.layers = nn.ModuleList(
            SRULayer(d, hidden) if cell == "sru" else LinearSRULayer(d, hidden, recurrence)
            for d in (in_dim if i == 0 else 2 * hidden for i in range(num_layers)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.time_first:
            x = x.transpose(0, 1)  # each step of the scripted loop reads contiguous rows
        for layer in self.layers:
            x = layer(x)
        return x.transpose(0, 1) if self.time_first else x


_DIRECTION_POOL: ThreadPoolExecutor | None = None


def _direction_pool() -> ThreadPoolExecutor:
    """One worker thread (made on first use) that runs the backward direction of a GRU layer."""
    global _DIRECTION_POOL
    if _DIRECTION_POOL is None:
        _DIRECTION_POOL = ThreadPoolExecutor(1, thread_name_prefix="melody-lab-gru")
    return _DIRECTION_POOL


def _forget_pool_after_fork() -> None:
    """A forked child has no copy of the worker thread: it makes its own pool on first use."""
    global _DIRECTION_POOL
    _DIRECTION_POOL = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_after_fork)


class BiGRU(nn.Module):
    """``nn.GRU`` (bidirectional, batch-first) with the same call signature as :class:`BiSRU`.

    ``parallel_directions`` (inference only: no grad, CPU, ≥ 2 torch threads): each layer runs its
    forward direction in the calling thread and its backward direction in a worker thread at the
    same time. One ``aten::gru`` call is a single C++ loop over the K steps that releases the GIL,
    so the two directions really run on two cores; the outputs equal ``nn.GRU``'s (bit for bit at
    most shapes, float rounding ≤ 1e-7 at others: the same per-direction kernel;
    tests/test_denoisers_sru.py). Set ``BiGRU.parallel_directions
    = False`` to always call ``nn.GRU`` once (docs/denoisers.md has the measured difference).
    """

    parallel_directions: bool = True

    def __init__(self, in_dim: int, hidden: int, num_layers: int = 2):
        super().__init__()
        self.gru = nn.GRU(in_dim, hidden, num_layers, batch_first=True, bidirectional=True)

    def _direction(self, x: torch.Tensor, layer: int, reverse: bool) -> torch.Tensor:
        """One direction of one layer: [N, T, in] -> [N, T, hidden]."""
        suffix = "_reverse" if reverse else ""
        weights = [getattr(self.gru, f"{name}_l{layer}{suffix}")
                   for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        x = x.flip(1) if reverse else x
        h0 = x.new_zeros(1, x.shape[0], self.gru.hidden_size)
        out = torch._VF.gru(x, h0, weights, True, 1, 0.0, False, False, True)[0]
        return out.flip(1) if reverse else out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.parallel_directions and not self.training and not torch.is_grad_enabled()
                and x.device.type == "cpu" and torch.get_num_threads() >= 2 and self.gru.bias):
            return self.gru(x)[0]
        pool = _direction_pool()
        for layer in range(self.gru.num_layers):
            backward = pool.submit(self._direction, x, layer, True)
            x = torch.cat([self._direction(x, layer, False), backward.result()], dim=-1)
        return x


def build_bidirectional_rnn(rnn_type: str, in_dim: int, hidden: int, num_layers: int = 2,
                            recurrence: str = "loop") -> nn.Module:
    """``"sru"``, ``"sru_linear"`` or ``"gru"``: [N, T, in_dim] -> [N, T, 2·hidden].

    ``recurrence`` (``"scan"`` | ``"loop"``) selects how ``"sru_linear"`` runs its recurrence.
    """
    if rnn_type in ("sru", "sru_linear"):
        return BiSRU(in_dim, hidden, num_layers, cell=rnn_type, recurrence=recurrence)
    if rnn_type == "gru":
        return BiGRU(in_dim, hidden, num_layers)
    raise ValueError(f"unknown fine-path RNN {rnn_type!r}; choose one of {', '.join(RNN_TYPES)}")
