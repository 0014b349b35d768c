"""Issue 17 item 6: `data import` / `data build` refuse bad values, tables and folders with one
line (exit 2) and leave no empty OUT/audio behind."""
from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf

from melody_lab.cli import main
from melody_lab.errors import UserError


def _run(argv):
    try:
        return main(argv)
    except SystemExit as exit_:
        return exit_.code


@pytest.fixture
def folder(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    t = np.arange(16000) / 16000
    sf.write(src / "a.wav", (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), 16000)
    (src / "captions.csv").write_text("path,caption\na.wav,a test tone\n")
    return src


def _fails(capsys, argv, match, out):
    code = _run(argv)
    err = capsys.readouterr().err
    assert code == 2 and match in err and "Traceback" not in err, err
    assert not out.exists(), sorted(os.listdir(out))  # not even an empty OUT/audio


@pytest.mark.parametrize("seconds, match", [("inf", "clip-seconds must lie in [0.1, 600]"),
                                            ("1e9", "clip-seconds must lie in [0.1, 600]"),
                                            ("1e-6", "clip-seconds must lie in [0.1, 600]"),
                                            ("nan", "clip-seconds must lie in [0.1, 600]")])
def test_clip_seconds_out_of_range(seconds, match, folder, tmp_path, capsys):
    out = tmp_path / "corpus"
    _fails(capsys, ["data", "import", str(folder), "--clip-seconds", seconds, "--out", str(out)],
           match, out)


@pytest.mark.parametrize("name, content, match", [
    ("captions.csv", b"path,caption\na.wav,caf\xe9\n", "is not UTF-8 text"),
    ("captions.jsonl", b'{"path": "a.wav", "caption": "x"}\n{"path": "a.wav"\n', "line 2 is not JSON"),
    ("captions.jsonl", b'["a.wav", "x"]\n', "row 1 needs a non-empty 'path' and 'caption'"),
])
def test_bad_captions_tables(name, content, match, folder, tmp_path, capsys):
    (folder / "captions.csv").unlink()
    (folder / name).write_bytes(content)
    out = tmp_path / "corpus"
    _fails(capsys, ["data", "import", str(folder), "--out", str(out)], match, out)


def test_captions_folder_and_unusable_audio(folder, tmp_path, capsys):
    out = tmp_path / "corpus"
    _fails(capsys, ["data", "import", str(folder), "--captions", str(folder), "--out", str(out)],
           "file not found", out)
    (folder / "a.wav").write_bytes(b"not audio")
    _fails(capsys, ["data", "import", str(folder), "--out", str(out)], "no usable audio", out)


def test_import_still_works(folder, tmp_path, capsys):
    out = tmp_path / "corpus"
    assert _run(["data", "import", str(folder), "--clip-seconds", "0.5", "--quiet",
                 "--out", str(out)]) == 0
    assert sorted(os.listdir(out / "audio")) == ["file000000_a_c0.flac", "file000000_a_c1.flac"]


def test_build_refuses_an_empty_out(tmp_path, capsys, monkeypatch):
    import melody_lab.data.build as build

    def refuse(*_, **__):
        raise AssertionError("build_corpus ran for an empty --out")

    monkeypatch.setattr(build, "build_corpus", refuse)
    (tmp_path / "file").write_text("x")
    for out, match in (("", "--out is empty"), (str(tmp_path / "file"), "is a file")):
        code = _run(["data", "build", "--preset", "micro", "--out", out])
        err = capsys.readouterr().err
        assert code == 2 and match in err and "Traceback" not in err, err
    monkeypatch.undo()
    from melody_lab.data.presets import get_preset

    with pytest.raises(UserError, match="is empty"):
        build.build_corpus("", get_preset("micro"))
