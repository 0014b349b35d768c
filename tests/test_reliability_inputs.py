"""Issue 17 items 1–3, 9, 11, 12: bad prompts, seeds, guidance, audio shapes and output paths are
one-line errors (exit 2) found *before* the model loads; concurrent writers of one file never
collide; over-long inputs are refused before anything is read."""
from __future__ import annotations

import os
import threading

import numpy as np
import pytest
import soundfile as sf

from melody_lab.cli import main
from melody_lab.debug import build_debug_pipeline
from melody_lab.errors import UserError
from melody_lab.pipeline import MeLoDy


@pytest.fixture(scope="module")
def micro():
    return build_debug_pipeline(seed=0)


@pytest.fixture(scope="module")
def bundle(micro, tmp_path_factory):
    return str(micro.save_pretrained(tmp_path_factory.mktemp("b") / "micro"))


@pytest.fixture
def no_model(monkeypatch):
    """Fail the test if a command loads the model (its input had to be refused before)."""
    def refuse(*_, **__):
        raise AssertionError("the model was loaded for an input that must fail first")

    monkeypatch.setattr(MeLoDy, "from_pretrained", classmethod(refuse))


def _run(argv):
    try:
        return main(argv)
    except SystemExit as exit_:
        return exit_.code


def _fails(capsys, argv, match, folder):
    before = set(os.listdir(folder))
    code = _run(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and match in err, err
    assert len([line for line in err.splitlines() if "error" in line]) == 1, err
    assert set(os.listdir(folder)) == before  # nothing written, no .partial left behind


def test_non_utf8_prompt_is_refused_by_cli_and_api(micro, tmp_path, capsys, no_model):
    bad = os.fsdecode(b"a jig \xff")  # what Python makes of a non-UTF-8 argv byte
    _fails(capsys, ["generate", bad, "--out", str(tmp_path / "o.wav")], "not valid UTF-8", tmp_path)
    with pytest.raises(UserError, match="not valid UTF-8"):
        micro.generate([bad], 0.5, steps=1)
    with pytest.raises(UserError, match="not valid UTF-8"):
        micro.continue_audio(np.full(8000, 0.1, np.float32), 16000, 0.5, prompt=bad, steps=1)


@pytest.mark.parametrize("seed", ["18446744073709551616", "-1", "1.5", str(2**63)])
def test_seed_out_of_range_is_refused_before_loading(seed, tmp_path, capsys, no_model):
    _fails(capsys, ["generate", "a jig", "--seed", seed, "--out", str(tmp_path / "o.wav")],
           "seed", tmp_path)


@pytest.mark.parametrize("seed", [1.5, 2**64, -1, True])
def test_api_seed_must_be_an_integer_in_range(micro, seed):
    with pytest.raises(UserError, match="seed must"):
        micro.generate(["a jig"], 0.5, steps=1, seed=seed)


def test_api_largest_seed_works(micro):
    assert micro.generate(["a jig"], 0.2, steps=1, seed=2**63 - 1).shape == (1, 3200)


def test_output_path_problems_are_found_before_generating(tmp_path, capsys, no_model):
    (tmp_path / "dir.wav").mkdir()
    (tmp_path / "file").write_text("x")
    for out, match in ((tmp_path / "dir.wav", "is a folder"),
                       (tmp_path / "file" / "o.wav", "is a file"),
                       (tmp_path / "missing" / "o.wav", "does not exist"),
                       (tmp_path / "o.mp4", "use a .wav")):
        _fails(capsys, ["generate", "a jig", "--out", str(out)], match, tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only folder")
def test_read_only_output_folder(tmp_path, capsys, no_model):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        _fails(capsys, ["generate", "a jig", "--out", str(folder / "o.wav")], "not writable", folder)
    finally:
        folder.chmod(0o700)


def test_write_failure_is_a_user_error_and_leaves_no_partial(tmp_path):
    from melody_lab.audio import save_audio

    (tmp_path / "x.wav").mkdir()  # the rename onto a folder fails
    with pytest.raises(UserError, match="cannot write"):
        save_audio(tmp_path / "x.wav", np.zeros(100, np.float32), 16000)
    assert os.listdir(tmp_path) == ["x.wav"]


def test_concurrent_writers_of_one_file_never_collide(tmp_path):
    from melody_lab.audio import save_audio

    target, errors = tmp_path / "same.wav", []
    clips = [np.full(2000, v, np.float32) for v in (0.25, -0.5)]

    def writer(clip):
        for _ in range(60):
            try:
                save_audio(target, clip, 16000)
            except Exception as err:  # noqa: BLE001 - any failure is the defect
                errors.append(err)

    threads = [threading.Thread(target=writer, args=(c,)) for c in clips * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    audio, _ = sf.read(target, dtype="float32")
    assert any(np.allclose(audio, c, atol=1e-4) for c in clips)  # one writer's file, never mixed
    assert os.listdir(tmp_path) == ["same.wav"]


@pytest.mark.parametrize("argv, match", [
    (["generate", "a jig", "--duration", "1e-9"], "seconds must lie in [0.01, 600]"),
    (["generate", "a jig", "--steps", "2.5"], "steps: expected an integer, got '2.5'"),
    (["generate", "a jig", "--guidance=-1e9"], "guidance must lie in [0, 50]"),
    (["generate", "a jig", "--guidance", "nan"], "guidance must lie in [0, 50]"),
])
def test_minor_number_checks(argv, match, tmp_path, capsys, no_model):
    _fails(capsys, argv + ["--out", str(tmp_path / "o.wav")], match, tmp_path)


def test_api_minor_checks(micro):
    with pytest.raises(UserError, match="shorter than one sample"):
        micro.generate(["a jig"], 1e-9, steps=1)
    with pytest.raises(UserError, match="guidance must"):
        micro.generate(["a jig"], 0.5, steps=1, guidance=-1e9)
    stereo = np.zeros((16000, 2), np.float32) + 0.1
    for call in (lambda: micro.continue_audio(stereo, 16000, 0.5, steps=1),
                 lambda: micro.generate_from_audio(stereo, 16000, 0.5, steps=1)):
        with pytest.raises(UserError, match=r"looks like \[T, C\]"):
            call()
    with pytest.raises(UserError, match="the limit is 600 s"):  # refused before any work
        micro.continue_audio(np.zeros(8000 * 601, np.float32), 8000, 0.5, steps=1)
    with pytest.raises(UserError, match="limit is 1,000"):
        micro.generate(["x" * 10_000], 0.5, steps=1)


@pytest.mark.parametrize("command", ["continue", "inpaint"])
def test_over_long_input_is_refused_before_reading(command, tmp_path, capsys, no_model):
    long = tmp_path / "long.wav"
    sf.write(long, np.zeros(121 * 8000, np.int16), 8000, subtype="PCM_16")  # 121 s, 1.9 MB
    extra = ["--seconds", "1"] if command == "continue" else ["--start", "1", "--end", "2"]
    _fails(capsys, [command, str(long), *extra, "--out", str(tmp_path / "o.wav")],
           "the limit is 120 s", tmp_path)


def test_file_names_that_are_not_utf8(tmp_path):
    from melody_lab.audio import load_audio, save_audio

    path = tmp_path / os.fsdecode(b"caf\xe9.wav")  # a Latin-1 name on a UTF-8 system
    save_audio(path, np.full(800, 0.1, np.float32), 16000)
    assert load_audio(path)[0].shape == (800,)


def test_output_names_that_are_not_utf8_are_printed_escaped(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    t = np.arange(16000) / 16000
    sf.write(src / "a.wav", (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), 16000)
    (src / "captions.csv").write_text("path,caption\na.wav,a tone\n")
    out = tmp_path / os.fsdecode(b"corpus\xff")
    assert _run(["data", "import", str(src), "--quiet", "--clip-seconds", "1", "--out", str(out)]) == 0
    assert "corpus\\udcff" in capsys.readouterr().out and (out / "metadata.jsonl").is_file()
