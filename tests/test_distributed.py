"""Two CPU processes under torchrun (gloo) train the denoiser and stay in sync."""
import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

HELPERS = Path(__file__).parent / "helpers"


def _torchrun(script: str, *args, port: int) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_port", str(port), str(HELPERS / script), *map(str, args)]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


def test_two_gloo_ranks_stay_in_sync(tmp_path):
    _torchrun("ddp_denoiser.py", tmp_path, port=29517)
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
    _torchrun("ddp_codec.py", micro_corpus, tmp_path, port=29518)
    rank0, rank1 = (load_file(tmp_path / f"codec_rank{r}.safetensors")["flat"] for r in (0, 1))
    assert torch.equal(rank0, rank1)
