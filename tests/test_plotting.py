"""melody_lab.plotting: every helper draws what it says on a headless backend and returns its Axes."""
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from melody_lab.diffusion import get_schedule  # noqa: E402
from melody_lab.plotting import plot_frame_angles, plot_latent, plot_schedule_steps, plot_spectrogram  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_plot_spectrogram_spans_the_clip_in_seconds():
    sr = 16000
    t = torch.arange(sr // 2) / sr
    ax = plot_spectrogram(0.5 * torch.sin(2 * math.pi * 440 * t), sr, title="a")
    image = ax.get_images()[0]
    assert image.get_extent() == [0, 0.5, 0, 64]
    assert image.get_array().shape == (64, (sr // 2) // 256 + 1)
    assert ax.get_title() == "a"


def test_plot_latent_draws_dims_by_frames_symmetric_colours():
    latent = torch.linspace(-0.2, 0.5, 30 * 4).reshape(30, 4)
    ax = plot_latent(latent, frame_rate=10.0)
    image = ax.get_images()[0]
    assert image.get_array().shape == (4, 30)
    assert image.get_clim() == (-0.5, 0.5)
    assert image.get_extent()[1] == pytest.approx(3.0)
    with pytest.raises(ValueError, match=r"\[L, D\]"):
        plot_latent(torch.zeros(1, 30, 4))


def test_plot_frame_angles_uses_the_fixed_angle_range_and_draws_on_a_given_axes():
    fig, ax = plt.subplots()
    angles = torch.tensor([[0.0, 0.5, float("nan")], [1.0, 1.2, 0.1]])
    assert plot_frame_angles(angles, ax=ax) is ax
    image = ax.get_images()[0]
    assert image.get_clim() == (0.0, math.pi / 2)
    assert image.get_array().shape == (2, 3)
    assert plot_frame_angles(np.zeros(5)).get_images()[0].get_array().shape == (1, 5)


@pytest.mark.parametrize("schedules", [["uniform", "linear"], {"r": get_schedule("ratio", ratio=2.0)}])
def test_plot_schedule_steps_bars_are_the_step_sizes(schedules):
    ax = plot_schedule_steps(schedules, 5)
    names = list(schedules) if isinstance(schedules, dict) else schedules
    objects = schedules if isinstance(schedules, dict) else {n: get_schedule(n) for n in names}
    heights = [patch.get_height() for patch in ax.patches]
    expected = torch.cat([objects[n].steps(5) for n in names]).tolist()
    assert heights == pytest.approx(expected)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == names
