"""Ablations: a grid of configurations → trained/reused stages → metrics → a table, plots, a report.

    from melody_lab.ablation import load_grid, run_ablation
    rows = run_ablation("ablations/schedules.yaml", "results/schedules")

or ``melody-lab ablate ablations/schedules.yaml --out results/schedules [--quick]``. See docs/ablations.md.
"""
from .grid import Configuration, Grid, grid_from_dict, load_grid
from .runner import run_ablation

__all__ = ["Configuration", "Grid", "grid_from_dict", "load_grid", "run_ablation"]
