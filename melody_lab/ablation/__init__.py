"""Ablations: a grid of configurations → trained/reused stages → metrics → a table, plots, a report.

    from melody_lab.ablation import load_grid, load_pipeline, run_ablation
    rows = run_ablation("ablations/schedules.yaml", "results/schedules")
    model = load_pipeline(rows[0])          # the MeLoDy behind a row, to listen to it

or ``melody-lab ablate ablations/schedules.yaml --out results/schedules [--quick]``. See docs/ablations.md.
"""
from .grid import Configuration, Grid, grid_from_dict, load_grid
from .runner import run_ablation

__all__ = ["Configuration", "Grid", "grid_from_dict", "load_grid", "load_pipeline", "run_ablation"]


def load_pipeline(row: dict):
    """The trained :class:`~melody_lab.MeLoDy` behind a result row (a dict returned by
    :func:`run_ablation`, or ``OUT/rows/<key>.json`` read back): its ``runs`` folders with the
    row's ``sampling`` settings (the recipe's ``context_chunks``, ``lm_step_tokens``, ``guidance``
    the runner sampled with), or the bundle it reused. Sample it with the row's ``config``
    (schedule, steps, guidance)."""
    runs = row["runs"]
    if "bundle" in runs:
        from ..pipeline import MeLoDy

        return MeLoDy.from_pretrained(runs["bundle"])
    from ..train.assemble import pipeline_from_runs

    return pipeline_from_runs(runs["codec"], runs["mulan"], runs["tokenizer"], runs["lm"],
                              runs["denoiser"], rvq=runs.get("rvq"), **_row_sampling(row))


def _row_sampling(row: dict) -> dict:
    """``row["sampling"]``; a row written before rows recorded it gets the recipe of the preset
    its LM run trained at (the grid's ``train.preset``, which the runner's recipe follows)."""
    if "sampling" in row:
        return row["sampling"]
    import json

    from ..io import locate
    from ..train.stages import recipe

    record = locate(row["runs"]["lm"]) / "config.json"
    preset = json.loads(record.read_text()).get("preset") if record.is_file() else None
    return recipe(preset).sampling() if preset else {}
