"""Issue 19 point 3: `generate --prompts/--num-samples/--prompt-audio/--format`, a JSON sidecar
next to every output that regenerates it exactly, and one-line errors for bad new input."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from melody_lab import __version__
from melody_lab.io import sha256
from melody_lab.cli import main
from melody_lab.debug import build_debug_pipeline
from melody_lab.pipeline import MeLoDy


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return str(build_debug_pipeline(seed=0).save_pretrained(tmp_path_factory.mktemp("b") / "micro"))


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    path = tmp_path_factory.mktemp("in") / "song.wav"
    t = np.arange(16000) / 16000
    sf.write(path, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000)
    return str(path)


def _run(argv):
    try:
        return main(argv)
    except SystemExit as exit_:
        return exit_.code


def _regenerate(sidecar: dict) -> torch.Tensor:
    """Redo the pipeline call a sidecar records, and pick its clip."""
    model = MeLoDy.from_pretrained(sidecar["bundle"]["path"])
    call = dict(sidecar["call"])
    api = call.pop("api")
    if api == "generate":
        audio = model.generate(call.pop("prompts"), **call)
    else:
        audio, sr = sf.read(call.pop("prompt_audio")["path"], dtype="float32")
        audio = model.generate_from_audio(audio, sr, **call)
    return audio[sidecar["batch_index"]]


def test_prompts_file_num_samples_batches_and_sidecars(bundle, tmp_path, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a fast reel on fiddle\na slow chorale on organ\na jig on flute\n")
    out = tmp_path / "set.wav"
    assert _run(["generate", "--prompts", str(prompts), "--num-samples", "2", "--batch-size", "2",
                 "--duration", "0.5", "--steps", "2", "--seed", "7", "--bundle", bundle,
                 "--out", str(out)]) == 0
    names = sorted(os.listdir(tmp_path))
    assert names == sorted(["prompts.txt"] + [f"set-{n:03d}.wav{ext}" for n in range(1, 7)
                                              for ext in ("", ".json")])
    cars = [json.loads((tmp_path / f"set-{n:03d}.wav.json").read_text()) for n in range(1, 7)]
    # batches of two prompts, each batch once per seed
    assert [(c["prompt"], c["seed"]) for c in cars] == [
        ("a fast reel on fiddle", 7), ("a slow chorale on organ", 7),
        ("a fast reel on fiddle", 8), ("a slow chorale on organ", 8),
        ("a jig on flute", 7), ("a jig on flute", 8)]
    car = cars[3]
    assert car["format"] == "melody_lab.sidecar/1" and car["melody_lab_version"] == __version__
    assert (car["steps"], car["schedule"], car["guidance"]) == (2, "linear", 2.5)
    assert car["bundle"]["manifest_sha256"] == sha256(Path(bundle) / "manifest.json")
    assert {"mulan", "lm", "diffusion", "decode", "total", "load"} <= set(car["timings"])
    assert car["seconds"] == 0.5 and car["call"]["duration_s"] == 0.5
    # the sidecar regenerates the file exactly (up to the 16-bit PCM of the WAV)
    written, sr = sf.read(tmp_path / "set-004.wav", dtype="float32")
    again = _regenerate(car).numpy()
    assert sr == 16000 and np.abs(written - again).max() <= 1 / 32768 + 1e-6
    assert np.abs(written - sf.read(tmp_path / "set-003.wav", dtype="float32")[0]).max() > 1e-3


def test_prompt_audio_and_format(bundle, song, tmp_path, capsys):
    assert _run(["generate", "--prompt-audio", song, "--duration", "0.5", "--steps", "1",
                 "--format", "flac", "--bundle", bundle, "--out", str(tmp_path / "take")]) == 0
    assert sorted(os.listdir(tmp_path)) == ["take.flac", "take.flac.json"]
    car = json.loads((tmp_path / "take.flac.json").read_text())
    assert car["prompt"] is None and car["call"]["api"] == "generate_from_audio"
    assert car["call"]["prompt_audio"]["sha256"] == sha256(Path(song))
    written, _ = sf.read(tmp_path / "take.flac", dtype="float32")
    assert np.abs(written - _regenerate(car).numpy()).max() <= 1 / 32768 + 1e-6


def test_continue_and_inpaint_write_sidecars(bundle, song, tmp_path, capsys):
    assert _run(["continue", song, "--seconds", "0.5", "--steps", "1", "--bundle", bundle,
                 "--out", str(tmp_path / "c.wav")]) == 0
    assert _run(["inpaint", song, "--start", "0.2", "--end", "0.6", "--steps", "1", "--seed", "3",
                 "--bundle", bundle, "--out", str(tmp_path / "i.ogg")]) == 0
    c = json.loads((tmp_path / "c.wav.json").read_text())
    i = json.loads((tmp_path / "i.ogg.json").read_text())
    assert c["call"]["api"] == "continue_audio" and c["call"]["extra_s"] == 0.5
    assert (i["call"]["start_s"], i["call"]["end_s"], i["seed"]) == (0.2, 0.6, 3)


@pytest.mark.parametrize("content, extra, match", [
    ("", [], "is empty: write one prompt per line"),
    ("a jig\n\na reel\n", [], "prompt on line 2 is empty"),
    ("a jig\n" + "x" * 10_000 + "\n", [], "prompt on line 2 has 10,000 characters"),
    (b"a jig \xff\n", [], "is not UTF-8 text"),
    ("a jig\n", ["--num-samples", "0"], "num-samples must lie in [1, 100]"),
    ("a jig\n", ["--prompt-audio", "CORRUPT"], "cannot read audio file"),
    ("a jig\n", ["a reel"], "exactly one of"),
    ("a jig\n", ["--format", "flac"], "disagree"),
    ("a jig\n", ["--seed", str(2**63 - 1), "--num-samples", "2"], "passes the largest seed"),
])
def test_bad_new_input_is_one_line_and_writes_nothing(content, extra, match, tmp_path, capsys,
                                                      monkeypatch):
    def refuse(*_, **__):
        raise AssertionError("the model was loaded for an input that must fail first")

    monkeypatch.setattr(MeLoDy, "from_pretrained", classmethod(refuse))
    prompts = tmp_path / "p.txt"
    prompts.write_bytes(content if isinstance(content, bytes) else content.encode())
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF0000WAVEfmt not really")
    extra = [str(corrupt) if a == "CORRUPT" else a for a in extra]
    out = tmp_path / "out"
    out.mkdir()
    code = _run(["generate", "--prompts", str(prompts), *extra, "--out", str(out / "x.wav")])
    err = capsys.readouterr().err
    assert code == 2 and match in err and "Traceback" not in err, err
    assert os.listdir(out) == []


def test_unreadable_prompt_audio(tmp_path, capsys):
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF0000WAVEfmt not really")
    for path, match in ((corrupt, "cannot read audio file"), (tmp_path / "none.wav", "file not found"),
                        (tmp_path, "file not found")):
        code = _run(["generate", "--prompt-audio", str(path), "--out", str(tmp_path / "x.wav")])
        err = capsys.readouterr().err
        assert code == 2 and match in err and "Traceback" not in err, err
    assert not (tmp_path / "x.wav").exists()


def test_a_failure_midway_removes_what_the_command_wrote(bundle, tmp_path, capsys, monkeypatch):
    calls = []
    real = MeLoDy.generate

    def second_call_fails(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(MeLoDy, "generate", second_call_fails)
    out = tmp_path / "out"
    out.mkdir()
    code = _run(["generate", "a jig", "--num-samples", "2", "--duration", "0.3", "--steps", "1",
                 "--bundle", bundle, "--out", str(out / "x.wav")])
    err = capsys.readouterr().err
    assert code == 2 and "No space left" in err and "Traceback" not in err
    assert len(calls) == 2 and os.listdir(out) == []
