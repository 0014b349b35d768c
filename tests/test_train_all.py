"""`train all` end to end at the micro preset, and the bring-your-own-data importer."""
import json

import numpy as np
import pytest
import soundfile as sf
import torch

from melody_lab.data import ClipDataset, load_metadata
from melody_lab.data.folder import import_audio_folder, read_captions_table
from melody_lab.errors import UserError
from melody_lab.pipeline import MeLoDy
from melody_lab.train.all import train_all


def test_train_all_micro_then_generate_and_skip(micro_corpus, tmp_path, capsys):
    bundle = train_all("micro", micro_corpus, tmp_path / "runs", progress=False)
    for stage in ("codec", "mulan", "tokenizer", "lm", "denoiser"):
        assert (tmp_path / "runs" / stage / "latest").is_file()
    assert (tmp_path / "runs" / "denoiser" / "cache" / "train.safetensors").is_file()
    model = MeLoDy.from_pretrained(bundle)
    assert model.window_frames == round(2.0 * model.frame_rate)  # micro clips are 2 s
    audio = model.generate(["a reel"], 1.0, steps=2)
    assert audio.shape == (1, model.sample_rate) and torch.isfinite(audio).all()
    capsys.readouterr()
    train_all("micro", micro_corpus, tmp_path / "runs", progress=False)
    out = capsys.readouterr().out
    assert out.count("finished earlier, skipped") == 5
    # `melody-lab bundle` from the same runs stores the sampling defaults it is given
    from melody_lab.cli import main

    runs = tmp_path / "runs"
    stages = [f"--{s}={runs / s}" for s in ("codec", "mulan", "tokenizer", "lm", "denoiser")]
    assert main(["bundle", *stages, "--out", str(tmp_path / "b"), "--steps", "3",
                 "--context-chunks", "1", "--schedule", "uniform"]) == 0
    config = MeLoDy.from_pretrained(tmp_path / "b").config
    assert (config.steps, config.context_chunks, config.schedule) == (3, 1, "uniform")
    for bad in (["--context-chunks", "9"], ["--schedule", "cosine"], ["--steps", "0"]):
        assert main(["bundle", *stages, "--out", str(tmp_path / "c"), *bad]) == 2
        assert not (tmp_path / "c").exists()


@pytest.fixture
def audio_folder(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    rows = ["path,caption"]
    for i in range(6):
        rate = 22050 if i % 2 else 16000  # odd files are resampled on import
        t = np.arange(int(rate * 7.2)) / rate
        tone = 0.3 * np.sin(2 * np.pi * (220 + 40 * i) * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 2 * t))
        sf.write(folder / f"song{i}.wav", np.stack([tone, tone], 1).astype(np.float32), rate)
        rows.append(f"song{i}.wav,\"a steady tone number {i}, with vibrato\"")
    sf.write(folder / "quiet.wav", np.zeros(16000 * 3, np.float32), 16000)
    rows.append("quiet.wav,silence")
    (folder / "captions.csv").write_text("\n".join(rows) + "\n")
    return folder


def test_import_audio_folder(audio_folder, tmp_path):
    out = import_audio_folder(audio_folder, audio_folder / "captions.csv", tmp_path / "corpus",
                              clip_seconds=2.0, progress=False)
    rows = load_metadata(out)
    info = json.loads((out / "corpus.json").read_text())
    # 7.2 s (resampled if needed) → 4 clips of 2 s (the 1.2 s rest is ≥ half a clip: padded)
    assert len(rows) == 6 * 4 and len({r["work_id"] for r in rows}) == 6
    assert any("quiet" in r["clip_id"] and "silent" in r["reason"] for r in info["rejected_clips"])
    by_work: dict[str, set] = {}
    for r in rows:
        by_work.setdefault(r["work_id"], set()).add(r["split"])
    assert all(len(s) == 1 for s in by_work.values())  # no source file in two splits
    ds = ClipDataset(out, "all")
    assert ds.sample_rate == 16000 and ds.load_all_audio().shape == (24, 32000)
    again = import_audio_folder(audio_folder, audio_folder / "captions.csv", tmp_path / "corpus",
                                clip_seconds=2.0, progress=False)
    assert load_metadata(again) == rows  # re-import is stable


def test_captions_table_errors(tmp_path):
    bad = tmp_path / "captions.csv"
    bad.write_text("file,text\na.wav,hello\n")
    with pytest.raises(UserError, match="row 1 needs"):
        read_captions_table(bad)
    with pytest.raises(UserError, match="neither a built corpus"):
        from melody_lab.data.folder import find_captions_table
        find_captions_table(tmp_path / "..")
