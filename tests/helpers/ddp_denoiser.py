"""Run by tests/test_distributed.py under torchrun: 2 CPU ranks (gloo) train a micro DPD."""
import sys

import torch
from safetensors.torch import save_file

from melody_lab.train import distributed
from melody_lab.train.denoiser import DenoiserTask, DenoiserTrainConfig
from melody_lab.train.loop import LoopConfig, run_training

distributed.setup()
torch.manual_seed(0)  # identical initial weights on every rank (DDP also broadcasts rank 0's)
g = torch.Generator().manual_seed(1)
cache = {"latents": torch.randn(12, 40, 8, generator=g).clamp(-1, 1).half(),
         "tokens": torch.randint(0, 16, (12, 8), generator=g, dtype=torch.int32)}
task = DenoiserTask(DenoiserTrainConfig(preset="micro", batch_size=2, val_clips=4, num_chunks=4),
                    cache, cache)
run_training(task, sys.argv[1], LoopConfig(max_steps=6, ckpt_every=3, val_every=3, progress=False))
flat = torch.cat([p.detach().flatten() for p in task.net.parameters()])
save_file({"flat": flat}, f"{sys.argv[1]}/rank{distributed.rank()}.safetensors")
distributed.cleanup()
