"""``melody-lab train … --tensorboard``: event files beside log.jsonl (the optional 'tensorboard' extra)."""
from __future__ import annotations

import json
import sys

import pytest

from melody_lab.cli import main


def test_micro_run_writes_tensorboard_events(micro_corpus, tmp_path):
    pytest.importorskip("tensorboard", reason="the 'tensorboard' extra is not installed "
                        "(pip install -e '.[tensorboard]')")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    assert main(["train", "codec", "--preset", "micro", "--data", str(micro_corpus), "--out", str(run),
                 "--steps", "4", "--val-every", "2", "--ckpt-every", "4", "--tensorboard"]) == 0
    events = list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 1
    board = EventAccumulator(str(run / "tensorboard"))
    board.Reload()
    tags = board.Tags()["scalars"]
    logged = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    train_rows = [r for r in logged if "val" not in r]
    val_rows = [r for r in logged if "val" in r]
    assert train_rows and val_rows
    # every loss and metric of log.jsonl is a scalar in TensorBoard, at the same steps and values
    for row in train_rows:
        for key, value in row.items():
            if key not in ("step", "time"):
                points = {e.step: e.value for e in board.Scalars(f"train/{key}")}
                assert points[row["step"]] == pytest.approx(value, rel=1e-6)
    for key in val_rows[-1]["val"]:
        assert f"val/{key}" in tags
        assert [e.step for e in board.Scalars(f"val/{key}")] == [r["step"] for r in val_rows]


def test_without_the_package_it_is_a_one_line_error(micro_corpus, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if not installed
    run = tmp_path / "run"
    assert main(["train", "codec", "--preset", "micro", "--data", str(micro_corpus), "--out", str(run),
                 "--steps", "2", "--tensorboard"]) == 2
    err = capsys.readouterr().err.strip()
    assert "pip install -e '.[tensorboard]'" in err and "\n" not in err
    assert not run.exists()  # refused before anything was written
