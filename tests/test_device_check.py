"""scripts/device_check.sh, the prepared GPU check, in its CPU variant (`--cpu --quick`: the same
code at the paper_micro sizes), and its loud failure when asked for a GPU that is not there."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def test_quick_cpu_check_trains_every_stage_generates_and_reduces(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OUT": str(tmp_path), "PYTHON": sys.executable}
    result = subprocess.run(["bash", str(ROOT / "scripts" / "device_check.sh"), "--cpu", "--quick"],
                            env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + "\n" + result.stderr[-3000:]
    summary = json.loads((tmp_path / "device_check.json").read_text())
    assert summary["ok"] and summary["failures"] == []
    assert (summary["device"], summary["preset"]) == ("cpu", "paper_micro")
    assert set(summary["stages"]) == {"codec", "mulan", "lm", "denoiser"}
    for name, stage in summary["stages"].items():
        assert stage["steps"] == 3 and stage["step_s"] > 0 and stage["parameters"] > 0, name
        assert math.isfinite(stage["loss"]) and stage["val"], name
    rows = summary["generation"]["steps"]
    assert {k: r["paper_v100_x_real_time"] for k, r in rows.items()} == {"5": 7.5, "10": 4.4, "20": 2.4}
    assert all(r["x_real_time"] > 0 and r["stage_seconds"]["diffusion"] > 0 for r in rows.values())
    dist = json.loads((tmp_path / "device_check_distributed.json").read_text())["distributed"]
    assert dist["backend"] == "gloo" and dist["world_size"] == 1 and dist["lm_steps"] == 3
    assert dist["checkpoint_loads_on_cpu"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the failure without a GPU")
def test_asking_for_the_gpu_check_without_a_gpu_fails_loudly(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    env.pop("MELODY_LAB_DEVICE", None)
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "device_check.py"), "--quick",
                             "--summary", str(tmp_path / "s.json")], env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 1
    summary = json.loads((tmp_path / "s.json").read_text())
    assert not summary["ok"] and "no CUDA device" in summary["failures"][0]
