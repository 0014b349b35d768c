"""Launch one grid as N shard jobs through `submitit` (SLURM on a cluster, local processes here).

    from melody_lab.ablation.launch import launch_shards
    jobs = launch_shards("ablations/denoisers.yaml", "results/denoisers", shards=8,
                         executor="auto", folder="results/denoisers/jobs",
                         slurm_partition="gpu", gpus_per_node=1, timeout_min=240)
    print([job.result() for job in jobs])        # rows in OUT's table as each shard finished

Each job does what ``melody-lab ablate GRID --out OUT --shard i/N`` does (:func:`run_shard`: the
same ``run_ablation(shard=…)``, then the plots and summary.md under the tables lock), so rows,
tables rebuilt from every row file and the shared-stage locks are the CLI's (see
docs/ablations.md, "Grids that outgrow one machine"). ``executor="auto"`` is
``submitit.AutoExecutor`` (SLURM when ``sbatch`` is there, local processes otherwise), ``"local"``
is ``submitit.LocalExecutor`` (what the tests use). Needs the ``[cluster]`` extra.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import UserError


def _submitit():
    try:
        import submitit
    except ImportError:
        raise UserError("launching shard jobs needs submitit: pip install 'melody-lab[cluster]' "
                        "(or pip install submitit)") from None
    return submitit


def run_shard(grid: str, out: str, index: int, count: int, quick: bool = False,
              corpus: str | None = None, runs_dir: str | None = None, plots: bool = True) -> int:
    """One job: shard ``index`` of ``count`` into ``out``, then plots + summary; the number of rows
    in OUT's table when it finished (all of them once the last shard is done)."""
    from .report import write_summary
    from .runner import run_ablation, tables_lock

    rows = run_ablation(grid, out, quick=quick, corpus=corpus, runs_dir=runs_dir,
                        shard=(index, count))
    with tables_lock(Path(out)):
        if plots:
            from .plots import render_plots

            render_plots(Path(out))
        write_summary(Path(out))
    return len(rows)


def launch_shards(grid: str | Path, out: str | Path, shards: int, *, executor: str = "auto",
                  folder: str | Path | None = None, quick: bool = False,
                  corpus: str | Path | None = None, runs_dir: str | Path | None = None,
                  plots: bool = True, **parameters) -> list:
    """Submit ``shards`` jobs (shard 0 … shards−1 of ``grid`` into ``out``); returns the submitit jobs.

    ``folder``: submitit's log/pickle folder (default OUT/jobs). ``parameters`` go to the
    executor's ``update_parameters`` (e.g. ``timeout_min``, ``slurm_partition``, ``gpus_per_node``).
    Paths are made absolute so jobs may start in another working directory.
    """
    if not isinstance(shards, int) or isinstance(shards, bool) or shards < 1:
        raise UserError(f"shards must be an integer >= 1, got {shards!r}")
    if executor not in ("auto", "local"):
        raise UserError(f"executor must be 'auto' or 'local', got {executor!r}")
    submitit = _submitit()
    absolute = lambda p: None if p is None else str(Path(p).resolve())  # noqa: E731
    out = Path(out).resolve()
    folder = Path(folder).resolve() if folder is not None else out / "jobs"
    runner = submitit.AutoExecutor(folder=folder) if executor == "auto" \
        else submitit.LocalExecutor(folder=folder)
    runner.update_parameters(**parameters)
    return [runner.submit(run_shard, absolute(grid), str(out), i, shards, quick, absolute(corpus),
                          absolute(runs_dir), plots) for i in range(shards)]
