"""Single-pass quality of the DPD fine paths after a short micro overfit (issue 15's comparison).

    OMP_NUM_THREADS=1 .venv/bin/python -m pytest benchmarks/test_fine_path_quality.py -q -s          # ~5 min
    OMP_NUM_THREADS=1 .venv/bin/python -m pytest benchmarks/test_fine_path_quality.py -q -s --quick  # smoke

Micro DPD, 8 sinusoidal latents × 64 frames with random tokens, Adam 2e-3 on the velocity loss at
random angles, then ``single_pass_metrics`` on the same clips (velocity MSE, SI-SNRi). GRU and
``sru_linear`` at equal steps (300), and ``sru_linear`` at the steps that fit in GRU's CPU time
(420: its step is ~1.4x cheaper). Means over seeds are printed; nothing is asserted about the winner.
"""
from __future__ import annotations

import math
import statistics
import time

import torch

from melody_lab.denoisers import build_denoiser, single_pass_metrics
from melody_lab.diffusion.angles import add_noise, velocity_target


def _clips(cfg, generator, count=8, length=64):
    t = torch.arange(length)[None, :, None].float()
    freq = torch.rand(count, 1, cfg.latent_dim, generator=generator) * 0.3
    phase = torch.rand(count, 1, cfg.latent_dim, generator=generator) * 2 * math.pi
    tokens = torch.randint(0, cfg.vocab_size, (count, length // 5), generator=generator)
    return torch.sin(freq * t + phase) * 0.8, tokens


def _train_and_score(rnn_type: str, steps: int, seed: int) -> dict:
    torch.manual_seed(seed)
    model = build_denoiser("dpd", "micro", rnn_type=rnn_type)
    g = torch.Generator().manual_seed(100 + seed)
    z, tokens = _clips(model.config, g)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    start = time.process_time()
    for _ in range(steps):
        noise = torch.randn(z.shape, generator=g)
        angles = (torch.rand(z.shape[0], 1, generator=g) * math.pi / 2).expand(-1, z.shape[1])
        loss = (model(add_noise(z, noise, angles), angles, tokens) - velocity_target(z, noise, angles)).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return {"cpu_s": time.process_time() - start, **single_pass_metrics(model, z, tokens, seed=7)}


def test_fine_path_single_pass_quality(request):
    quick = request.config.getoption("--quick")
    seeds, steps, equal_time = ((0,), 20, 28) if quick else ((0, 1, 2, 3), 300, 420)
    runs = {("gru", steps): [], ("sru_linear", steps): [], ("sru_linear", equal_time): []}
    for seed in seeds:
        for rnn_type, n in runs:
            runs[rnn_type, n].append(_train_and_score(rnn_type, n, seed))
    print()
    for (rnn_type, n), results in runs.items():
        mean = {k: statistics.mean(r[k] for r in results) for k in ("cpu_s", "velocity_mse", "si_snri_db")}
        print(f"{rnn_type:<11} {n:>4} steps, {len(seeds)} seeds: train {mean['cpu_s']:.1f} s CPU, "
              f"velocity MSE {mean['velocity_mse']:.4f}, SI-SNRi {mean['si_snri_db']:.2f} dB")
        assert all(math.isfinite(r["velocity_mse"]) and r["velocity_mse"] > 0 for r in results)
