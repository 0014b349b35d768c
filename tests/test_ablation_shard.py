"""Issue 18.6: ``ablate --shard i/N``: a grid split across two local processes (submitit's
LocalExecutor, as on a cluster) into one OUT gives the table of a single run, timing aside; the
shared stages are trained once (under file locks) while both shards start at the same time."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from melody_lab.ablation import run_ablation
from melody_lab.ablation.runner import shard_of
from melody_lab.cli import main
from melody_lab.errors import UserError

BUNDLE_GRID = Path(__file__).resolve().parents[1] / "ablations" / "tiny_bundle.yaml"
GRID = {
    "name": "shard-test",
    "train": {"preset": "micro", "steps": {"codec": 4, "mulan": 4, "lm": 4, "denoiser": 4}},
    "eval": {"prompts": 2, "seeds": [0], "duration_s": 0.5, "split": "all", "batch_size": 2,
             "rtf_warmup": 0, "rtf_repeats": 1, "bootstrap_resamples": 10},
    "axes": {"schedule": ["uniform", "linear"], "steps": [1, 2], "guidance": [2.5],
             "denoiser": ["dpd/micro"], "codec": ["vaegan"]},
}
TIMING = ("rtf", "seconds", "speed_x_realtime", "peak_memory", "memory_kind", "threads",
          "finished_at", "time")


def _metrics(out) -> list[dict]:
    with open(out / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [{k: v for k, v in row.items() if not any(t in k for t in TIMING)} for row in rows]


@pytest.mark.timeout(300)
def test_two_shards_in_two_processes_give_the_single_run_table(micro_corpus, tmp_path):
    submitit = pytest.importorskip("submitit", reason="the [cluster] extra (submitit) is not installed")
    from melody_lab.ablation.launch import launch_shards

    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump({**GRID, "data": {"corpus": str(micro_corpus)}}))
    single = run_ablation(grid, tmp_path / "single")
    out = tmp_path / "sharded"
    jobs = launch_shards(grid, out, 2, executor="local", plots=False, timeout_min=5)
    assert all(isinstance(job, submitit.local.local.LocalJob) for job in jobs)
    counts = [job.result() for job in jobs]  # rows in the table as each shard finished
    assert max(counts) == 4

    assert _metrics(out) == _metrics(tmp_path / "single")  # same rows, order and values
    keys = [row["key"] for row in single]
    assert sorted(p.stem for p in (out / "rows").glob("*.json")) == sorted(keys)
    logs = [job.stdout() for job in jobs]
    for index, log in enumerate(logs):  # each process computed exactly its own rows
        assert f"shard {index}/2: {sum(shard_of(k, 2) == index for k in keys)} of them" in log
    # every shared stage was trained by exactly one of the two processes
    trained = [line for log in logs for line in log.splitlines() if line.startswith("[ablate] training ")]
    assert len(trained) == len(set(trained)) == 5, trained  # mulan, tokenizer, lm, codec, denoiser
    assert json.loads((out / "results.json").read_text())["rows"][0]["key"] == keys[0]
    assert (out / "summary.md").is_file()


@pytest.mark.parametrize("value", ["0/0", "3/2", "a/b", "-1/2", "2/2", "1"])
def test_bad_shard_values_are_refused(value, tmp_path, capsys):
    assert main(["ablate", str(BUNDLE_GRID), "--out", str(tmp_path / "o"), f"--shard={value}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if "error:" in line]  # argparse: usage, then one error line
    assert len(errors) == 1 and "--shard" in errors[0] and errors[0] == err[-1]
    assert "Traceback" not in "\n".join(err)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("shard", [(2, 2), (-1, 2), (0, 0), ("0", 2), (0.0, 1)])
def test_run_ablation_refuses_bad_shards(shard, tmp_path):
    with pytest.raises(UserError, match="shard"):
        run_ablation(BUNDLE_GRID, tmp_path, shard=shard)


def test_launch_without_submitit_names_the_extra(monkeypatch, tmp_path):
    import sys

    from melody_lab.ablation.launch import launch_shards

    monkeypatch.setitem(sys.modules, "submitit", None)  # as if not installed
    with pytest.raises(UserError, match=r"melody-lab\[cluster\]"):
        launch_shards(BUNDLE_GRID, tmp_path, 2, executor="local")
    with pytest.raises(UserError, match="shards"):
        launch_shards(BUNDLE_GRID, tmp_path, 0)
