"""Seaborn plots of a results table (PNG files next to it).

    fad_vs_steps.png     every FAD embedder vs sampling steps, one line per schedule
    clap_vs_steps.png    CLAP score (when measured) and MCC vs steps, one line per schedule
    rtf_vs_steps.png     real-time factor vs steps (log scale)
    pareto.png           quality (FAD, first embedder) vs RTF, with the Pareto front highlighted

Lines are split by ``schedule`` (colour) and by model (``codec/denoiser-preset``, and the guidance
when it varies; line style) and carry the bootstrap intervals as error bars; nothing is averaged
across configurations (tests/test_ablation.py).
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402


def pareto_front(cost: np.ndarray, loss: np.ndarray) -> np.ndarray:
    """Boolean mask of points no other point beats on both (lower cost and lower loss)."""
    cost, loss = np.asarray(cost, float), np.asarray(loss, float)
    mask = np.ones(len(cost), dtype=bool)
    for i in range(len(cost)):
        others = (cost <= cost[i]) & (loss <= loss[i]) & ((cost < cost[i]) | (loss < loss[i]))
        mask[i] = not others.any()
    return mask


def _frame(csv_path: Path) -> pd.DataFrame:
    """The table, with ``model`` (codec/denoiser-preset, plus ``w=…`` when the grid varies the
    guidance): one line per (schedule, model), so no two configurations share a point."""
    frame = pd.read_csv(csv_path)
    frame["model"] = frame["codec"] + "/" + frame["denoiser"] + "-" + frame["denoiser_preset"].astype(str)
    if frame["guidance"].nunique() > 1:
        frame["model"] += " w=" + frame["guidance"].map(lambda g: f"{g:g}")
    return frame


def _lines(frame: pd.DataFrame, metric: str, ax, title: str) -> None:
    styles = frame["model"].nunique() > 1
    if styles:
        sns.lineplot(data=frame, x="steps", y=metric, hue="schedule", style="model", markers=True,
                     errorbar=None, ax=ax)
    else:
        sns.lineplot(data=frame, x="steps", y=metric, hue="schedule", marker="o", errorbar=None, ax=ax)
    if f"{metric}_low" in frame and frame[f"{metric}_low"].notna().any():
        for _, row in frame.iterrows():
            ax.plot([row["steps"]] * 2, [row[f"{metric}_low"], row[f"{metric}_high"]], color="grey",
                    alpha=0.4, linewidth=1)
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(frame["steps"].unique()), labels=[str(s) for s in sorted(frame["steps"].unique())])
    ax.set_title(title)


def render_plots(out_dir: str | Path) -> list[Path]:
    """Draw every plot that the table has data for into OUT; returns the files written."""
    out = Path(out_dir)
    frame = _frame(out / "results.csv")
    written = []
    n = int(frame["n_eval"].iloc[0])
    fad_cols = [c for c in frame.columns if c.startswith("fad_") and not c.startswith("fad_inf_")
                and not c.endswith(("_low", "_high")) and frame[c].notna().any()]

    def save(fig, name: str) -> None:
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        written.append(out / name)

    if fad_cols:
        fig, axes = plt.subplots(1, len(fad_cols), figsize=(5.5 * len(fad_cols), 4), squeeze=False)
        for ax, col in zip(axes[0], fad_cols):
            _lines(frame, col, ax, f"FAD ({col[4:]}, n = {n}) vs steps")
        save(fig, "fad_vs_steps.png")
    text_cols = [c for c in ("clap", "mcc") if c in frame and frame[c].notna().any()]
    if text_cols:
        fig, axes = plt.subplots(1, len(text_cols), figsize=(5.5 * len(text_cols), 4), squeeze=False)
        for ax, col in zip(axes[0], text_cols):
            label = "CLAP score (evaluation model)" if col == "clap" else "MCC (generator's MuLan)"
            _lines(frame, col, ax, f"{label}, n = {n}")
        save(fig, "clap_vs_steps.png")
    fig, ax = plt.subplots(figsize=(5.5, 4))
    _lines(frame, "rtf", ax, "real-time factor vs steps (lower is faster)")
    save(fig, "rtf_vs_steps.png")
    if fad_cols:
        col = fad_cols[0]
        fig, ax = plt.subplots(figsize=(6, 4.5))
        front = pareto_front(frame["rtf"].to_numpy(), frame[col].to_numpy())
        sns.scatterplot(data=frame, x="rtf", y=col, hue="schedule", style="model", s=60, ax=ax)
        best = frame[front].sort_values("rtf")
        ax.plot(best["rtf"], best[col], color="black", linewidth=1, label="Pareto front")
        for _, row in best.iterrows():
            ax.annotate(f"T={row['steps']}", (row["rtf"], row[col]), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
        if frame["rtf"].max() > 10 * frame["rtf"].min():
            ax.set_xscale("log")
        ax.set_xlabel("RTF (lower is faster)")
        ax.set_ylabel(f"FAD {col[4:]} (lower is better)")
        ax.set_title("quality vs speed")
        ax.legend(fontsize=7)
        save(fig, "pareto.png")
    return written
