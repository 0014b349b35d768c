"""Two CPU processes under torchrun (gloo) train the denoiser and stay in sync."""
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

HELPERS = Path(__file__).parent / "helpers"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(script: str, *args) -> None:
    """Run ``script`` on 2 gloo ranks. One CI dry run (2026-12-01) saw rank 1 abort at teardown
    ("terminate called without an active exception") once in ~12 runs, not reproducible since; a
    crashed launch is retried once on a fresh port and the first failure's stderr is printed, so a
    real, repeatable failure still fails and the flake stays visible in the log."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for attempt in (1, 2):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "--master_port", str(_free_port()), str(HELPERS / script), *map(str, args)]
        result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        if result.returncode == 0 or attempt == 2:
            break
        print(f"torchrun {script}: attempt 1 failed (rc {result.returncode}), retrying once:\n"
              f"{result.stderr[:3000]}\n…\n{result.stderr[-2000:]}", file=sys.stderr)
    assert result.returncode == 0, result.stderr[:3000] + "\n…\n" + result.stderr[-3000:]


def test_two_gloo_ranks_stay_in_sync(tmp_path):
    _torchrun("ddp_denoiser.py", tmp_path)
    rank0, rank1 = (load_file(tmp_path / f"rank{r}.safetensors")["flat"] for r in (0, 1))
    assert torch.equal(rank0, rank1)  # DDP kept the replicas identical
    assert (tmp_path / "latest").read_text().strip() == "ckpt-00000006"
    # and training moved the weights away from the common initialisation
    torch.manual_seed(0)
    from melody_lab.denoisers import build_denoiser
    init = torch.cat([p.detach().flatten() for p in build_denoiser("dpd", "micro").parameters()])
    assert not torch.equal(init, rank0)


def test_gradient_averaging_stages_stay_in_sync(micro_corpus, tmp_path):
    """The codec stage (generator + discriminator, no DDP wrapper) under 2 gloo ranks that start
    from different weights and draw different batches: broadcast + averaged gradients keep the
    replicas identical."""
    _torchrun("ddp_codec.py", micro_corpus, tmp_path)
    rank0, rank1 = (load_file(tmp_path / f"codec_rank{r}.safetensors")["flat"] for r in (0, 1))
    assert torch.equal(rank0, rank1)
