"""CLI: help for every command; bad input gives one clear line, exit code 2, and no output file."""
import math
import re

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from melody_lab.cli import main
from melody_lab.debug import build_debug_pipeline


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return str(build_debug_pipeline().save_pretrained(tmp_path_factory.mktemp("b") / "micro"))


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    path = tmp_path_factory.mktemp("in") / "song.wav"
    t = np.arange(32000) / 16000
    sf.write(path, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000)
    return str(path)


def _fails_cleanly(capsys, argv, out_path, match=None):
    code = _run(argv)
    err = capsys.readouterr().err
    assert code != 0
    assert "Traceback" not in err
    if match:
        assert match in err
    assert not out_path.exists()


def _run(argv):
    try:
        return main(argv)
    except SystemExit as exit_:  # argparse errors exit(2) with a usage line
        return exit_.code


@pytest.mark.parametrize("argv", [["--help"], ["data", "build", "--help"], ["generate", "--help"],
                                  ["continue", "--help"], ["inpaint", "--help"], ["train", "--help"]])
def test_help_exits_zero(argv, capsys):
    assert _run(argv) == 0
    assert "usage:" in capsys.readouterr().out


def test_generate_writes_a_file(bundle, tmp_path, capsys):
    out = tmp_path / "x.wav"
    assert _run(["generate", "a reel", "--duration", "1.5", "--steps", "2", "--bundle", bundle,
                 "--out", str(out)]) == 0
    audio, sr = sf.read(out)
    assert sr == 16000 and len(audio) == 24000
    err = capsys.readouterr().err
    assert "real-time factor" in err and "loading the model took" in err
    # the progress bar's total (windows × steps) is exactly what the sampler ran
    assert re.search(r"diffusion: 100%\|[^|]*\| (\d+)/\1 ", err), err[-500:]


@pytest.mark.parametrize("argv, match", [
    (["generate", "   ", "--duration", "1"], "prompt is empty"),
    (["generate", "a reel", "--duration", "0"], "must lie in [0.01, 600]"),
    (["generate", "a reel", "--duration", "1e9"], "must lie in [0.01, 600]"),
    (["generate", "a reel", "--steps", "0"], "steps must lie in [1, 1000]"),
    (["generate", "a reel", "--schedule", "cosine"], "invalid choice"),
    (["generate", "a reel", "--bundle", "/nonexistent/bundle"], "no bundle"),
    (["continue", "/nonexistent.wav", "--seconds", "1"], "not found"),
    (["inpaint", "SONG", "--start", "1", "--end", "9"], "inside the audio"),
    (["inpaint", "SONG", "--start", "1.5", "--end", "1"], "must be after"),
])
def test_bad_input(argv, match, bundle, song, tmp_path, capsys):
    out = tmp_path / "out.wav"
    argv = [song if a == "SONG" else a for a in argv]
    if "--bundle" not in argv:
        argv += ["--bundle", bundle]
    _fails_cleanly(capsys, argv + ["--out", str(out)], out, match)


def test_silent_and_corrupt_inputs(bundle, tmp_path, capsys):
    silent, corrupt = tmp_path / "silent.wav", tmp_path / "corrupt.wav"
    sf.write(silent, np.zeros(16000, np.float32), 16000)
    corrupt.write_bytes(b"RIFF not really a wav file")
    out = tmp_path / "out.wav"
    _fails_cleanly(capsys, ["continue", str(silent), "--seconds", "1", "--bundle", bundle,
                            "--out", str(out)], out, "silent")
    _fails_cleanly(capsys, ["inpaint", str(corrupt), "--start", "0", "--end", "0.5", "--bundle",
                            bundle, "--out", str(out)], out, "corrupt.wav")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prompt=st.text(alphabet=" \t\n", max_size=5),
       duration=st.one_of(st.floats(max_value=0), st.just(math.inf), st.just(math.nan),
                          st.floats(min_value=601, max_value=1e12)),
       steps=st.integers(max_value=0))
def test_hypothesis_bad_prompts_and_numbers(prompt, duration, steps, bundle, tmp_path, capsys):
    out = tmp_path / "h.wav"
    for argv in (["generate", prompt or " ", "--duration", "1"],
                 ["generate", "a reel", "--duration", repr(duration)],
                 ["generate", "a reel", "--steps", str(steps)]):
        _fails_cleanly(capsys, argv + ["--bundle", bundle, "--out", str(out)], out)
