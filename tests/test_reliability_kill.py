"""Issue 17: SIGKILL each resumable job (corpus build, codec training, the ablation runner) at
random moments, resume it, and compare with an uninterrupted run: the same bytes for the corpus
and the weights, the same value in every metric column of the ablation rows (timing aside).

Each job runs as ``python -m melody_lab.cli`` in a subprocess and is killed once some of its
output exists, after a random extra delay (seeded, so a failure can be replayed). CI kills each
job once; MELODY_LAB_KILLS=5 kills it up to five times, at random moments from a fresh seed."""
from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
KILLS = int(os.environ.get("MELODY_LAB_KILLS", "1"))
SEED = random.randrange(10**6) if "MELODY_LAB_KILLS" in os.environ else 0
TIMING = ("rtf", "seconds", "speed_x_realtime", "peak_memory", "memory_kind", "threads",
          "finished_at", "time")


def _start(argv: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "melody_lab.cli", *argv], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _kill_when(argv, ready, rng: random.Random, timeout: float = 120) -> bool:
    """Start ``argv``, wait until ``ready()``, sleep a random 0–0.6 s, SIGKILL. False if the job
    finished first (then there was nothing to interrupt)."""
    proc = _start(argv)
    deadline = time.monotonic() + timeout
    while not ready() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(rng.uniform(0, 0.6))
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return True


def _finish(argv, in_process: bool = False) -> None:
    if in_process:  # the uninterrupted reference: no interpreter start-up to pay
        from melody_lab.cli import main

        assert main(argv) == 0
        return
    proc = _start(argv)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()[-2000:]


def _tree(folder: Path, skip=()) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not any(part in skip for part in p.relative_to(folder).parts)}


def test_corpus_build_killed_and_resumed_is_byte_identical(micro_corpus, tmp_path):
    rng, out = random.Random(SEED + 17), tmp_path / "corpus"
    argv = ["data", "build", "--preset", "micro", "--out", str(out), "--quiet"]
    kills = 0
    for wanted in sorted(rng.sample(range(2, 28), KILLS)):  # killed after ~wanted clips are on disk
        kills += _kill_when(argv, lambda: len(list((out / "audio").glob("*.flac"))) >= wanted
                            if (out / "audio").is_dir() else False, rng)
    assert kills >= 1
    _finish(argv)
    assert _tree(out, skip={".build"}) == _tree(micro_corpus, skip={".build"})


def _weights(run: Path) -> dict[str, bytes]:
    ckpt = run / (run / "latest").read_text().strip()
    return {p.name: p.read_bytes() for p in sorted(ckpt.glob("*.safetensors"))}


def _log(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k != "time"} for row in rows]


def test_codec_training_killed_and_resumed_gives_identical_weights(micro_corpus, tmp_path):
    rng = random.Random(SEED + 7)
    argv = lambda out: ["train", "codec", "--preset", "micro", "--data", str(micro_corpus),  # noqa: E731
                        "--out", str(out), "--steps", "12", "--ckpt-every", "3", "--val-every", "6"]
    _finish(argv(tmp_path / "straight"), in_process=True)
    killed = tmp_path / "killed"
    kills = 0
    for _ in range(KILLS):
        before = len(list(killed.glob("ckpt-*"))) if killed.exists() else 0
        kills += _kill_when(argv(killed), lambda: (killed / "latest").exists()
                            and len(list(killed.glob("ckpt-*"))) > before, rng)
    assert kills >= 1
    _finish(argv(killed))
    assert _weights(killed) == _weights(tmp_path / "straight")
    assert _log(killed) == _log(tmp_path / "straight")  # every step logged once, same values


GRID = {
    "name": "kill-test",
    "train": {"preset": "micro", "steps": {"codec": 4, "mulan": 4, "lm": 4, "denoiser": 4}},
    "eval": {"prompts": 2, "seeds": [0], "duration_s": 0.5, "split": "all", "batch_size": 2,
             "rtf_warmup": 0, "rtf_repeats": 1, "bootstrap_resamples": 10},
    "axes": {"schedule": ["linear"], "steps": [2], "guidance": [2.5],
             "denoiser": ["dpd/micro"], "codec": ["vaegan"]},
}


def _metrics(out: Path) -> list[dict]:
    with open(out / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [{k: v for k, v in row.items() if not any(t in k for t in TIMING)} for row in rows]


@pytest.mark.timeout(600)
def test_ablation_killed_and_resumed_gives_the_same_numbers(micro_corpus, tmp_path):
    rng = random.Random(SEED + 3)
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump({**GRID, "data": {"corpus": str(micro_corpus)}}))
    argv = lambda out: ["ablate", str(grid), "--out", str(out), "--no-plots"]  # noqa: E731
    _finish(argv(tmp_path / "straight"), in_process=True)
    killed = tmp_path / "killed"
    moments = [lambda: (killed / "runs").is_dir() and any((killed / "runs").glob("codec-*/latest")),
               lambda: any((killed / "runs").glob("denoiser-*")),
               lambda: any((killed / "rows").glob("*.json")) if (killed / "rows").is_dir() else False]
    kills = sum(_kill_when(argv(killed), ready, rng) for ready in rng.sample(moments, min(KILLS, 3)))
    assert kills >= 1
    _finish(argv(killed))
    straight, resumed = _metrics(tmp_path / "straight"), _metrics(killed)
    assert len(straight) == 1 and resumed == straight
