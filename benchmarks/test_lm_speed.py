"""Semantic LM sampling speed: tokens/s with the KV cache vs without it (issue 15, item 3).

    OMP_NUM_THREADS=1 .venv/bin/python -m pytest benchmarks/test_lm_speed.py -s          # tiny LM, 250 tokens
    OMP_NUM_THREADS=1 .venv/bin/python -m pytest benchmarks/test_lm_speed.py -s --quick  # micro LM, 20 tokens (CI)

The LM of the ``tiny`` preset (``micro`` with --quick) with random weights (speed does not depend on
them) samples 250 tokens (10 s at 25 Hz; the bundle's sliding window: 125, then 63 + 62 after 62
kept) for one prompt, with and without the KV cache, at LM guidance 1 (plain) and 3 (the [2B]
classifier-free-guidance batch). Cached runs: best of two after a warm-up, taken before and after
the uncached run so a load swing on a shared machine hits both sides. The tokens must be identical;
the speed is printed, not asserted (numbers go to docs/denoisers.md with the machine).
"""
from __future__ import annotations

import time

import torch

from melody_lab.semantic import build_lm


def _timed(fn) -> tuple[float, torch.Tensor]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def test_lm_kv_cache_tokens_per_second(request):
    quick = request.config.getoption("--quick")
    preset, num_tokens = ("micro", 20) if quick else ("tiny", 250)
    torch.manual_seed(0)
    lm = build_lm(preset).eval()
    codes = torch.randint(0, lm.config.mulan_codebook_size, (1, lm.config.mulan_levels),
                          generator=torch.Generator().manual_seed(0))
    print(f"\nLM {preset} ({lm.num_parameters() / 1e6:.2f}M parameters, random weights), "
          f"{num_tokens} tokens, batch 1, {torch.get_num_threads()} thread(s)")
    with torch.no_grad():
        for guidance in (1.0, 3.0):
            def run(use_cache):
                return lambda: lm.generate(codes, num_tokens, top_k=50, seed=0,
                                           use_cache=use_cache, guidance=guidance)
            run(True)()  # warm-up
            cached_s, cached = _timed(run(True))
            plain_s, plain = _timed(run(False))
            cached_s = min(cached_s, _timed(run(True))[0])
            assert torch.equal(cached, plain)
            print(f"  guidance {guidance:g}: cached {cached_s:.3f} s ({num_tokens / cached_s:.0f} "
                  f"tokens/s), uncached {plain_s:.3f} s ({num_tokens / plain_s:.0f} tokens/s): "
                  f"{plain_s / cached_s:.1f}x")
