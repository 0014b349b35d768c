"""Schedules: exact endpoints, strictly decreasing, steps sum to π/2, the paper's numbers."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from melody_lab.diffusion import SCHEDULES, RatioSchedule, get_schedule
from melody_lab.errors import UserError
from melody_lab.registry import UnknownNameError

PAPER_LINEAR_T10 = [1.5708, 1.3280, 1.1043, 0.8996, 0.7140, 0.5474, 0.3998, 0.2713, 0.1618, 0.0714, 0.0]

# Every registered family, with default and non-default parameters.
SCHEDULE_SPECS = [
    ("uniform", {}),
    ("linear", {}),
    ("ratio", {}),
    ("ratio", {"ratio": 0.25}),
    ("ratio", {"ratio": 40.0}),
    ("logsnr", {}),
    ("logsnr", {"lambda_min": -3.0, "lambda_max": 3.0}),
]


def test_every_registered_schedule_is_covered_here():
    assert sorted({name for name, _ in SCHEDULE_SPECS}) == SCHEDULES.names()
    assert set(SCHEDULES.names()) >= {"uniform", "linear"}


def test_linear_matches_the_papers_sequence_at_ten_steps():
    angles = get_schedule("linear").angles(10)
    assert angles.tolist() == pytest.approx(PAPER_LINEAR_T10, abs=1e-4)


@pytest.mark.parametrize("name,params", SCHEDULE_SPECS)
@settings(max_examples=60, deadline=None)
@given(num_steps=st.integers(1, 1000))
def test_angle_sequence_invariants(name, params, num_steps):
    angles = get_schedule(name, **params).angles(num_steps)
    assert angles.dtype == torch.float64
    assert angles.shape == (num_steps + 1,)
    assert angles[0].item() == math.pi / 2  # exactly, not approximately
    assert angles[-1].item() == 0.0
    steps = angles[:-1] - angles[1:]
    assert bool((steps > 0).all()), "strictly decreasing"
    assert steps.sum().item() == pytest.approx(math.pi / 2, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(num_steps=st.integers(1, 1000))
def test_linear_steps_are_the_papers_formula_largest_first(num_steps):
    T = num_steps
    t = torch.arange(T, 0, -1, dtype=torch.float64)  # the sampler applies t = T first
    expected = math.pi / (6 * T) + 2 * math.pi * t / (3 * T * (T + 1))
    torch.testing.assert_close(get_schedule("linear").steps(T), expected, rtol=0, atol=1e-13)


@settings(max_examples=40, deadline=None)
@given(num_steps=st.integers(1, 1000))
def test_uniform_steps_are_all_equal(num_steps):
    steps = get_schedule("uniform").steps(num_steps)
    torch.testing.assert_close(steps, torch.full_like(steps, math.pi / (2 * num_steps)), rtol=0, atol=1e-13)


@settings(max_examples=40, deadline=None)
@given(num_steps=st.integers(1, 1000))
def test_ratio_family_contains_uniform_and_linear(num_steps):
    uniform = get_schedule("uniform").angles(num_steps)
    linear = get_schedule("linear").angles(num_steps)
    torch.testing.assert_close(get_schedule("ratio", ratio=1.0).angles(num_steps), uniform, rtol=0, atol=1e-13)
    paper = RatioSchedule(ratio=RatioSchedule.paper_ratio(num_steps))
    torch.testing.assert_close(paper.angles(num_steps), linear, rtol=0, atol=1e-13)


@settings(max_examples=60, deadline=None)
@given(num_steps=st.integers(2, 1000), ratio=st.floats(0.05, 50.0))
def test_ratio_family_has_the_requested_first_to_last_ratio_and_equal_increments(num_steps, ratio):
    steps = get_schedule("ratio", ratio=ratio).steps(num_steps)
    assert (steps[0] / steps[-1]).item() == pytest.approx(ratio, rel=1e-9)
    increments = steps[:-1] - steps[1:]  # arithmetic progression: constant difference
    torch.testing.assert_close(increments, torch.full_like(increments, increments[0].item()), rtol=0, atol=1e-12)


def test_linear_first_step_is_largest_and_steps_shrink_linearly():
    steps = get_schedule("linear").steps(20)
    assert steps.argmax().item() == 0 and steps.argmin().item() == 19
    second_difference = steps[:-2] - 2 * steps[1:-1] + steps[2:]
    assert second_difference.abs().max().item() < 1e-14


@settings(max_examples=40, deadline=None)
@given(num_steps=st.integers(2, 1000), low=st.floats(-15.0, 0.0), width=st.floats(0.5, 25.0))
def test_logsnr_interior_points_are_equally_spaced_in_log_snr(num_steps, low, width):
    angles = get_schedule("logsnr", lambda_min=low, lambda_max=low + width).angles(num_steps)
    interior = angles[1:-1]
    log_snr = 2 * torch.log(torch.cos(interior) / torch.sin(interior))
    expected = low + width * torch.arange(1, num_steps, dtype=torch.float64) / num_steps
    torch.testing.assert_close(log_snr, expected, rtol=0, atol=1e-8)


def test_schedules_are_pure_data():
    schedule = get_schedule("ratio", ratio=4.0)
    assert schedule.name == "ratio" and schedule.to_dict() == {"ratio": 4.0}
    assert RatioSchedule.from_dict(schedule.to_dict()) == schedule
    first = schedule.angles(7)
    first[3] = 123.0  # a caller mutating its copy must not change the schedule
    assert torch.equal(schedule.angles(7), get_schedule("ratio", ratio=4.0).angles(7))
    assert schedule.angles(7)[3].item() != 123.0


def test_unknown_schedule_names_the_choices():
    with pytest.raises(UnknownNameError, match="linear, logsnr, ratio, uniform"):
        get_schedule("cosine")


@pytest.mark.parametrize(
    "name,params,match",
    [
        ("ratio", {"ratio": 0.0}, "positive"),
        ("ratio", {"ratio": float("inf")}, "positive"),
        ("logsnr", {"lambda_min": 2.0, "lambda_max": 1.0}, "lambda_min < lambda_max"),
        ("uniform", {"ratio": 2.0}, "unknown field"),
    ],
)
def test_bad_parameters_are_user_errors(name, params, match):
    with pytest.raises(UserError, match=match):
        get_schedule(name, **params)


@pytest.mark.parametrize("num_steps", [0, -3, 2.5, True])
def test_bad_step_counts_are_user_errors(num_steps):
    with pytest.raises(UserError, match="positive integer"):
        get_schedule("linear").angles(num_steps)
