"""Run by tests/test_distributed.py under torchrun: 2 CPU ranks (gloo) train a micro codec."""
import sys

import torch
from safetensors.torch import save_file

from melody_lab.codecs import build_codec
from melody_lab.train import distributed
from melody_lab.train.codec import CodecTask, load_split_audio, train_config
from melody_lab.train.loop import LoopConfig, run_training

distributed.setup()
corpus, out = sys.argv[1], sys.argv[2]
torch.manual_seed(distributed.rank())  # different initial weights: the broadcast must align them
codec = build_codec("vaegan", "micro")
task = CodecTask(codec, train_config("micro"), load_split_audio(corpus, "train", 16000),
                 load_split_audio(corpus, "valid", 16000))
run_training(task, out, LoopConfig(max_steps=5, ckpt_every=5, val_every=5, progress=False))
flat = torch.cat([p.detach().flatten() for p in (*codec.parameters(),
                                                  *task.discriminator.parameters())])
save_file({"flat": flat}, f"{out}/codec_rank{distributed.rank()}.safetensors")
distributed.cleanup()
