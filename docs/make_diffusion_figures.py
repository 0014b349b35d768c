"""Make the figures and tables of docs/diffusion.md.

    .venv/bin/python docs/make_diffusion_figures.py          # writes docs/img/*.png, prints Markdown

Everything here is exact arithmetic (no training; the toy covariance comes from a fixed seed):
the schedules' angles, and the distance between the sampler's output and Gaussian data under the
optimal denoiser.
"""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import torch  # noqa: E402

from melody_lab.diffusion import (  # noqa: E402
    GaussianLatents,
    gaussian_w2,
    get_schedule,
    sampler_output_distribution,
)

IMG = Path(__file__).parent / "img"
SCHEDULES = {  # label -> (registry name, parameters)
    "uniform": ("uniform", {}),
    "linear (paper)": ("linear", {}),
    "ratio r=3": ("ratio", {"ratio": 3.0}),
    "ratio r=10": ("ratio", {"ratio": 10.0}),
    "ratio r=0.5": ("ratio", {"ratio": 0.5}),
    "logsnr [-6, 10]": ("logsnr", {}),
}
TABLE_SCHEDULES = ["uniform", "linear (paper)", "ratio r=3", "logsnr [-6, 10]"]
GAUSSIAN_STEPS = [1, 2, 5, 10, 20, 50, 100, 200, 1000]


def schedule(label: str):
    name, params = SCHEDULES[label]
    return get_schedule(name, **params)


def plot_schedules(path: Path) -> None:
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    axes = axes.flatten()
    for label in SCHEDULES:
        angles = schedule(label).angles(10)
        axes[0].plot(range(11), angles.numpy(), marker="o", ms=3, label=label)
    axes[0].set(title="angle δ_i, T = 10", xlabel="step i", ylabel="δ (rad)")
    for ax, num_steps in zip(axes[1:], (5, 10, 20)):
        for label in SCHEDULES:
            steps = schedule(label).steps(num_steps)
            ax.plot(range(1, num_steps + 1), steps.numpy(), marker="o", ms=3, label=label)
        ax.set(title=f"step size ω_i, T = {num_steps}", xlabel="step i (1 = noisiest)", ylabel="ω (rad)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def gaussian_errors() -> dict[str, list[float]]:
    data = GaussianLatents.random(dim=16, seed=0)
    reference = math.sqrt(data.cov.trace().item())
    errors = {}
    for label in SCHEDULES:
        row = []
        for num_steps in GAUSSIAN_STEPS:
            mean, cov = sampler_output_distribution(data, schedule(label).angles(num_steps))
            row.append(gaussian_w2(mean, cov, data.mean, data.cov) / reference)
        errors[label] = row
    return errors


def scale_table() -> str:
    """Same measurement on isotropic N(0, σ²I) data: which schedule wins depends on the data scale."""
    labels = ["uniform", "linear (paper)", "ratio r=10", "logsnr [-6, 10]"]
    steps = [5, 10, 20, 50]
    title = "**Isotropic Gaussian N(0, σ²I), D = 16**: W₂ / √tr Σ at T = " + ", ".join(map(str, steps))
    lines = ["\n" + title + "\n",
             "| σ | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    for std in (1.0, 0.3, 0.1):
        data = GaussianLatents(mean=torch.zeros(16), cov=std**2 * torch.eye(16))
        cells = []
        for label in labels:
            row = []
            for num_steps in steps:
                mean, cov = sampler_output_distribution(data, schedule(label).angles(num_steps))
                row.append(gaussian_w2(mean, cov, data.mean, data.cov) / (4 * std))
            cells.append(" / ".join(f"{x:.3f}" for x in row))
        lines.append(f"| {std} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_gaussian(errors: dict[str, list[float]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, row in errors.items():
        ax.loglog(GAUSSIAN_STEPS, row, marker="o", ms=3, label=label)
    ax.set(xlabel="sampling steps T", ylabel="W₂(output, data) / √tr Σ",
           title="Gaussian toy, optimal denoiser: discretisation error")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown_tables(errors: dict[str, list[float]]) -> str:
    lines = []
    for num_steps in (5, 10, 20):
        lines += [f"\n**T = {num_steps}** — step sizes ω_i (radians), noisiest step first\n",
                  "| i | " + " | ".join(TABLE_SCHEDULES) + " |", "|---" * (len(TABLE_SCHEDULES) + 1) + "|"]
        columns = [schedule(label).steps(num_steps).tolist() for label in TABLE_SCHEDULES]
        for i in range(num_steps):
            lines.append(f"| {i + 1} | " + " | ".join(f"{col[i]:.4f}" for col in columns) + " |")
    lines += ["\n**Gaussian toy**: W₂(sampler output, data) / √tr Σ\n",
              "| schedule | " + " | ".join(f"T={t}" for t in GAUSSIAN_STEPS) + " |",
              "|---" * (len(GAUSSIAN_STEPS) + 1) + "|"]
    for label, row in errors.items():
        lines.append(f"| {label} | " + " | ".join(f"{x:.4f}" for x in row) + " |")
    return "\n".join(lines)


def main() -> None:
    IMG.mkdir(parents=True, exist_ok=True)
    plot_schedules(IMG / "schedules.png")
    errors = gaussian_errors()
    plot_gaussian(errors, IMG / "gaussian_error.png")
    print(markdown_tables(errors))
    print(scale_table())


if __name__ == "__main__":
    main()
