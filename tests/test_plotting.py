"""melody_lab.plotting: every helper draws what it says on a headless backend and returns its Axes."""
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from melody_lab.diffusion import get_schedule  # noqa: E402
from melody_lab.plotting import (  # noqa: E402
    plot_frame_angles, plot_latent, plot_loss_curves, plot_schedule_steps, plot_segments, plot_similarity,
    plot_spectrogram, plot_token_image,
)


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


def test_plot_segments_blanks_padding_and_annotates():
    from melody_lab.denoisers import segment

    frames = torch.arange(1, 11, dtype=torch.float32)[None, :, None]  # frame numbers 1 … 10
    segs = segment(frames, 4)[0, :, :, 0]                              # [S, K] with zero padding
    ax = plot_segments(segs, title="s")
    array = ax.get_images()[0].get_array()
    assert array.shape == tuple(segs.shape)
    assert array.mask[0, :2].all() and not array.mask[0, 2:].any()     # the left hop is padding
    assert len(ax.texts) == 2 * 10                                     # every frame appears twice
    assert ax.get_title() == "s"
    with pytest.raises(ValueError, match=r"\[S, K\]"):
        plot_segments(torch.zeros(2, 3, 4))


def test_plot_loss_curves_smooths_with_a_trailing_mean():
    ax = plot_loss_curves({"a": [4.0, 2.0, 6.0, 0.0], "b": [1.0, 1.0, 1.0, 1.0]}, smooth=2)
    lines = ax.get_lines()
    assert len(lines) == 4                                             # raw + smoothed per curve
    np.testing.assert_allclose(lines[1].get_ydata(), [4.0, 3.0, 4.0, 3.0])
    assert ax.get_yscale() == "log"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b"]


def test_plot_token_image_rows_time_axis_and_vocab_range():
    tokens = torch.tensor([[0, 1, 2, 3, 4], [5, 5, 5, 5, 5]])
    ax = plot_token_image(tokens, token_rate=25.0, vocab_size=256)
    image = ax.get_images()[0]
    assert image.get_array().shape == (2, 5)
    assert image.get_clim() == (0, 255)
    assert image.get_extent()[1] == pytest.approx(0.2)
    assert ax.get_xlabel() == "time (s)"
    assert plot_token_image(torch.tensor([3, 7])).get_images()[0].get_array().shape == (1, 2)


def test_plot_similarity_marks_each_rows_best_column():
    sim = torch.tensor([[0.1, 0.9, -0.2], [0.5, 0.0, 0.3]])
    ax = plot_similarity(sim)
    assert ax.get_images()[0].get_clim() == pytest.approx((-0.9, 0.9))
    marks = ax.get_lines()[0]
    assert list(marks.get_xdata()) == [1, 0] and list(marks.get_ydata()) == [0, 1]
