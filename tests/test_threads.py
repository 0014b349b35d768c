"""The thread policy: one thread per free core, never fewer than 1; --threads and OMP_NUM_THREADS win."""
import pytest
import soundfile as sf
import torch

from melody_lab import threads
from melody_lab.cli import main
from melody_lab.debug import build_debug_pipeline
from melody_lab.threads import apply_threads, choose_threads


@pytest.mark.parametrize("cores, busy, expected", [
    (2, 0.05, 2),    # idle 2-core machine: both cores
    (2, 1.0, 1),     # one other busy process: the other core only
    (2, 0.35, 1),    # a core only 65 % idle is not free (a spinning partner costs far more)
    (2, 11.0, 1),    # heavily overloaded: still one thread
    (16, 3.0, 13),   # 16 usable cores, 3 busy
])
def test_measured_choice_counts_free_cores(monkeypatch, cores, busy, expected):
    monkeypatch.setattr(threads.os, "cpu_count", lambda: cores)
    choice = choose_threads(environ={}, cores=cores, busy=busy)
    assert (choice.threads, choice.source) == (expected, "measured")
    assert choice.summary() == f"threads {expected} ({cores} usable cores, {busy:.1f} busy)"


def test_affinity_limits_the_choice(monkeypatch):
    """A process pinned to 2 of 16 cores uses at most 2 threads however idle the machine is."""
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {4, 5}, raising=False)
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 16)
    assert threads.usable_cores() == 2
    assert choose_threads(environ={}, busy=0.0).threads == 2


def test_busy_cores_falls_back_to_the_load_average(monkeypatch):
    monkeypatch.setattr(threads, "_cpu_times", lambda: None)
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (1.0, 0.5, 0.2))
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    assert threads.busy_cores() == 1.0
    assert choose_threads(environ={}, cores=2).threads == 1


def test_busy_cores_measures_proc_stat(monkeypatch):
    samples = iter([(100, 1000), (100 + 150, 1000 + 200)])  # 75 % of all CPUs busy in the window
    monkeypatch.setattr(threads, "_cpu_times", lambda: next(samples))
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 4)
    assert threads.busy_cores(window_s=0.0) == pytest.approx(3.0)


def test_explicit_request_and_environment_override_the_measurement():
    assert choose_threads(requested=3, environ={"OMP_NUM_THREADS": "1"}, cores=2, busy=2.0).summary() \
        == "threads 3 (set by --threads)"
    assert choose_threads(environ={"OMP_NUM_THREADS": "2"}, cores=2, busy=2.0).summary() \
        == "threads 2 (set by OMP_NUM_THREADS)"
    assert choose_threads(environ={"OMP_NUM_THREADS": "lots"}, cores=2, busy=0.0).source == "measured"
    with pytest.raises(ValueError, match="at least 1"):
        choose_threads(requested=0)


def test_apply_sets_torch_threads():
    before = torch.get_num_threads()
    try:
        assert apply_threads(choose_threads(requested=1)).threads == torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_cli_applies_and_reports_the_choice(tmp_path, capsys):
    bundle = str(build_debug_pipeline().save_pretrained(tmp_path / "micro"))
    out = tmp_path / "x.wav"
    before = torch.get_num_threads()
    try:
        assert main(["generate", "a reel", "--duration", "0.5", "--steps", "1", "--bundle", bundle,
                     "--threads", "1", "--out", str(out)]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    assert sf.info(out).frames > 0
    assert "threads 1 (set by --threads)" in capsys.readouterr().err
    assert main(["generate", "a reel", "--threads", "0", "--bundle", bundle, "--out", str(out)]) == 2
    assert "--threads: threads must lie in [1, 1024], got 0" in capsys.readouterr().err
