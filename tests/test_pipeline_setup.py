"""The pipeline's one setup path: the time grid and the progress callback (micro random model)."""

import pytest
import torch

from melody_lab.debug import build_debug_pipeline
from melody_lab.pipeline import TimeGrid


@pytest.fixture(scope="module")
def micro():
    return build_debug_pipeline(seed=0)


def test_time_grid_conversions():
    grid = TimeGrid(sample_rate=16000, hop_length=128, token_hop=640)   # tiny: 125 Hz, 25 Hz
    assert (grid.frame_rate, grid.token_rate) == (125.0, 25.0)
    assert grid.samples(2.3) == 36800 and grid.frames(36800) == 288 and grid.tokens(288) == 58
    assert grid.frames(0) == 1 and grid.tokens(1) == 1            # never an empty output
    assert grid.window(5.0) == 625
    assert (grid.frame_floor(1.0), grid.frame_ceil(1.001)) == (125, 126)
    assert grid.token_span(5, 10) == (1, 2) and grid.token_span(4, 11) == (0, 3)


@pytest.mark.parametrize("entry", ["generate", "continue", "inpaint"])
def test_callback_counts_every_denoiser_call_and_changes_nothing(micro, entry):
    calls, seen = [], []
    hook = micro.denoiser.register_forward_hook(lambda *_: calls.append(1))
    sr, steps = micro.sample_rate, 3
    source = micro.generate(["a reel"], 1.2, steps=2, seed=1)[0]
    run = {"generate": lambda **kw: micro.generate(["a jig"], 2.5 * micro.config.window_seconds,
                                                   steps=steps, seed=2, **kw),
           "continue": lambda **kw: micro.continue_audio(source, sr, 1.0, steps=steps, seed=2, **kw),
           "inpaint": lambda **kw: micro.inpaint(source, sr, 0.2, 0.6, steps=steps, seed=2, **kw)}[entry]
    try:
        plain = run()
        calls.clear()
        with_callback = run(callback=lambda done, total: seen.append((done, total)))
    finally:
        hook.remove()
    assert torch.equal(plain, with_callback)
    total = seen[-1][1]
    assert seen == [(i + 1, total) for i in range(len(calls))] and total == len(calls)
    assert total % steps == 0 and (entry != "generate" or total > steps)


def test_progress_bar_writes_to_stderr(micro, capsys):
    micro.generate(["a jig"], 0.5, steps=2, seed=0, progress=True)
    assert "diffusion" in capsys.readouterr().err
