"""Corpus build end to end: layout, splits by work, datasets, checks, determinism, resume, errors."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

from melody_lab.audio import rms_db
from melody_lab.cli import main
from melody_lab.data import ATTRIBUTE_KEYS, ClipDataset, load_metadata
from melody_lab.data.build import build_corpus, plan_works
from melody_lab.data.checks import normalise_and_check, rejection_reason
from melody_lab.data.presets import get_preset
from melody_lab.errors import UserError

MICRO = get_preset("micro")


def test_micro_build_layout_and_metadata(micro_corpus):
    rows = load_metadata(micro_corpus)
    info = json.loads((micro_corpus / "corpus.json").read_text())
    assert 24 <= len(rows) == info["clips"] <= 40
    assert info["sample_rate"] == 16000 and info["clip_seconds"] == 2.0 and info["clip_samples"] == 32000
    assert {r["genre"] for r in rows} >= {"reel", "jig", "hornpipe", "air", "folk song", "ballad", "chorale"}
    for row in rows:
        audio, sr = sf.read(micro_corpus / row["audio"], dtype="float32")
        assert sr == 16000 and audio.shape == (32000,) and sf.info(micro_corpus / row["audio"]).subtype == "PCM_16"
        assert np.isfinite(audio).all() and rms_db(audio) > -40 and np.abs(audio).max() < 1.0
        assert row["split"] in ("train", "valid", "test") and row["caption"] == row["captions"][0]
        assert all(key in row for key in ATTRIBUTE_KEYS)
        assert row["instruments"] and all(0 <= i["program"] < 128 and i["name"] for i in row["instruments"])
        assert row["tempo_word"] in ("slow", "moderate", "lively", "fast") and 20 < row["tempo_bpm"] < 300
    assert not list(micro_corpus.rglob("*.partial"))


def test_micro_splits_are_by_work_and_nonempty(micro_corpus):
    rows = load_metadata(micro_corpus)
    split_of_work = {}
    for row in rows:
        assert split_of_work.setdefault(row["work_id"], row["split"]) == row["split"]
    assert set(split_of_work.values()) == {"train", "valid", "test"}


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_tiny_plan_splits_never_share_a_work(seed):
    plan = plan_works(get_preset("tiny"), seed)
    ids = [work.work_id for work, _, _ in plan]
    assert len(ids) == len(set(ids)) > 2500
    counts = {s: sum(n for _, split, n in plan if split == s) for s in ("train", "valid", "test")}
    total = sum(counts.values())
    assert 3000 <= total <= 4000
    for split in ("valid", "test"):
        assert 0.04 < counts[split] / total < 0.06
        genres = {work.genre for work, s, _ in plan if s == split}
        assert {"reel", "jig", "chorale", "folk song", "air"} <= genres
    assert plan == plan_works(get_preset("tiny"), seed)  # deterministic
    assert [w.work_id for w, _, _ in plan_works(get_preset("tiny"), seed + 100)] != ids


def test_clip_dataset(micro_corpus):
    train, test = ClipDataset(micro_corpus, "train"), ClipDataset(micro_corpus, "test")
    assert len(train) + len(test) + len(ClipDataset(micro_corpus, "valid")) == len(ClipDataset(micro_corpus, "all"))
    item = train[0]
    assert item["audio"].dtype == torch.float32 and item["audio"].shape == (train.clip_samples,)
    assert isinstance(item["caption"], str) and item["attributes"]["genre"]
    everything = train.load_all_audio()
    assert everything.shape == (len(train), 32000) and train.sample_rate == 16000
    assert train.load_all_audio() is everything
    assert torch.equal(train[0]["audio"], everything[0])
    with pytest.raises(UserError, match="split"):
        ClipDataset(micro_corpus, "dev")


def test_same_seed_same_bytes_and_resume(micro_corpus, tmp_path):
    out = tmp_path / "again"
    build_corpus(out, MICRO, seed=0, progress=False, workers=2)
    for name in ("metadata.jsonl", "corpus.json"):
        assert (out / name).read_bytes() == (micro_corpus / name).read_bytes()
    for flac in (micro_corpus / "audio").glob("*.flac"):
        assert (out / "audio" / flac.name).read_bytes() == flac.read_bytes(), flac.name
    # interrupt: drop two finished works and one clip file, leave a half-written temp file behind
    rows = load_metadata(out)
    lost = [rows[0], rows[-1]]
    for row in lost:
        (out / ".build" / "done" / f"{row['work_id']}.json").unlink()
        (out / row["audio"]).unlink()
    (out / "metadata.jsonl").unlink()
    (out / "audio" / f".{lost[0]['clip_id']}.flac.partial").write_bytes(b"half")
    before = {p.name: p.stat().st_mtime_ns for p in (out / "audio").glob("*.flac")}
    build_corpus(out, MICRO, seed=0, progress=False)
    after = {p.name: p.stat().st_mtime_ns for p in (out / "audio").glob("*.flac")}
    rebuilt = {name for name in after if before.get(name) != after[name]}
    assert rebuilt == {f"{row['clip_id']}.flac" for row in lost}  # only the missing work was redone
    for row in lost:
        assert (out / row["audio"]).read_bytes() == (micro_corpus / row["audio"]).read_bytes()
    assert (out / "metadata.jsonl").read_bytes() == (micro_corpus / "metadata.jsonl").read_bytes()
    with pytest.raises(UserError, match="other settings"):
        build_corpus(out, MICRO, seed=1, progress=False)


def test_both_renderers_make_sound(tmp_path):
    from melody_lab.data.build import make_renderer, rng_for
    from melody_lab.data.arrangement import choose_arrangement
    from melody_lab.data.render import find_soundfont, to_pretty_midi
    from melody_lab.data.scores import parse_work
    from melody_lab.data.sources import works_by_group

    soundfont = find_soundfont()
    if soundfont is None:
        pytest.skip("no General-MIDI soundfont installed (apt-get install fluid-soundfont-gm)")
    work = works_by_group()["reel"][0]
    score = parse_work(work)
    arrangement = choose_arrangement(work, score, rng_for(0, "x"))
    midi = to_pretty_midi(score, arrangement, 2.0, rng_for(0, "y"))
    outputs = {}
    for name in ("soundfont", "builtin"):
        renderer = make_renderer(None, name, 32000)
        audio = renderer.render(midi, 2.0)
        assert audio.shape == (64000,) and np.isfinite(audio).all()
        assert rms_db(audio) > -45, name
        _, reason = normalise_and_check(audio, 32000)
        assert reason is None, (name, reason)
        outputs[name] = audio
    assert not np.allclose(outputs["soundfont"], outputs["builtin"])


def test_builtin_timbres_differ():
    import pretty_midi

    from melody_lab.data.synth import BuiltinRenderer

    spectra = []
    for program in (40, 73, 71, 46, 0, 19, 12):  # bowed, blown, reed, plucked, keys, organ, mallet
        midi = pretty_midi.PrettyMIDI()
        instrument = pretty_midi.Instrument(program)
        instrument.notes.append(pretty_midi.Note(100, 60, 0.0, 0.8))
        midi.instruments.append(instrument)
        audio = BuiltinRenderer(16000).render(midi, 1.0)
        spectrum = np.abs(np.fft.rfft(audio))
        spectra.append(spectrum / np.linalg.norm(spectrum))
    similarity = np.array([[a @ b for b in spectra] for a in spectra])
    assert (similarity[~np.eye(len(spectra), dtype=bool)] < 0.98).all()


def test_checks_reject_silent_clipped_and_non_finite():
    sr = 16000
    tone = 0.3 * np.sin(np.arange(sr) * 2 * np.pi * 440 / sr).astype(np.float32)
    assert rejection_reason(tone, sr) is None
    assert "silent" in rejection_reason(np.zeros(sr, np.float32), sr)
    assert "clipped" in rejection_reason(np.clip(tone * 10, -1, 1), sr)
    assert "non-finite" in rejection_reason(np.where(np.arange(sr) == 5, np.nan, tone), sr)
    gappy = tone.copy()
    gappy[: int(0.7 * sr)] = 0
    assert "mostly silent" in rejection_reason(gappy, sr)
    leveled, reason = normalise_and_check(tone * 1e-2, sr)
    assert reason is None and abs(rms_db(leveled) + 20) < 0.5 and np.abs(leveled).max() <= 0.9
    assert normalise_and_check(np.zeros(sr), sr)[1].startswith("silent")


def test_cli_bad_soundfont_is_a_one_line_error(tmp_path, capsys):
    assert main(["data", "build", "--preset", "micro", "--out", str(tmp_path / "a"),
                 "--soundfont", str(tmp_path / "nope.sf2")]) == 2
    err = capsys.readouterr().err.strip()
    assert "soundfont not found" in err and "nope.sf2" in err and "\n" not in err
    bogus = tmp_path / "bogus.sf2"
    bogus.write_bytes(b"RIFF not really a soundfont" * 20)
    assert main(["data", "build", "--preset", "micro", "--out", str(tmp_path / "b"), "--soundfont", str(bogus)]) == 2
    err = capsys.readouterr().err.strip()
    assert "cannot load soundfont" in err and "bogus.sf2" in err and "\n" not in err


def test_cli_help_explains_every_option(capsys):
    assert main(["data", "build", "--help"]) == 0  # main returns argparse's exit code
    text = capsys.readouterr().out
    for option in ("--preset", "--out", "--soundfont", "--renderer", "--seed", "--workers", "--quiet"):
        assert option in text
    assert "micro" in text and "tiny" in text


def test_without_soundfont_auto_falls_back_to_builtin_and_says_so(monkeypatch):
    from melody_lab.data import render
    from melody_lab.data.build import make_renderer

    monkeypatch.setattr(render, "SOUNDFONT_CANDIDATES", ())
    monkeypatch.delenv(render.SOUNDFONT_ENV, raising=False)
    messages = []
    renderer = make_renderer(None, "auto", 16000, announce=messages.append)
    assert renderer.name == "builtin" and len(messages) == 1 and "built-in" in messages[0]
    with pytest.raises(UserError, match="no General-MIDI soundfont"):
        make_renderer(None, "soundfont", 16000)


@pytest.mark.parametrize("tonic,mode,shift,expected", [
    ("G", "major", 3, "Bb"), ("E", "minor", 4, "G#"), ("D", "major", -5, "A"),
    ("F#", "minor", 6, "C"), ("Bb", "major", 2, "C"), ("A", "dorian", 1, "Bb"), ("C", "major", 12, "C"),
])
def test_transposed_tonic_spells_the_shifted_key(tonic, mode, shift, expected):
    from melody_lab.data.arrangement import transposed_tonic
    from melody_lab.metrics.adherence import pitch_class

    assert transposed_tonic(tonic, mode, shift) == expected
    assert pitch_class(expected) == (pitch_class(tonic) + shift) % 12


def _chroma(path) -> np.ndarray:
    """``[frames, 12]`` chroma of a clip, each frame centred (pitch class 0 = C)."""
    from melody_lab.semantic.features import mel_chroma_onset

    audio, sr = sf.read(path, dtype="float32")
    chroma = mel_chroma_onset(torch.from_numpy(audio), sr, 320, 2048, 64, 55.0, 2000.0)[0, :, 64:76].numpy()
    return chroma - chroma.mean(1, keepdims=True)


def test_transposed_copies_shift_train_works_only_and_keep_the_originals(micro_corpus, tmp_path):
    from melody_lab.data.captions import _KEY_RE
    from melody_lab.metrics.adherence import pitch_class

    out = tmp_path / "keys"
    info = build_corpus(out, MICRO.replace(transposed_copies=1), seed=0, progress=False)
    rows = {r["clip_id"]: r for r in load_metadata(out)}
    originals = {r["clip_id"]: r for r in load_metadata(micro_corpus)}
    copies = [r for r in rows.values() if "transposed_semitones" in r]
    # the original clips are the micro corpus's, row for row and byte for byte
    assert {k: v for k, v in rows.items() if k in originals} == originals
    for clip_id, row in originals.items():
        assert (out / row["audio"]).read_bytes() == (micro_corpus / row["audio"]).read_bytes()
    train_works = {r["work_id"] for r in originals.values() if r["split"] == "train"}
    assert copies and {r["work_id"] for r in copies} <= train_works and len(rows) == info["clips"]
    assert info["split_clips"]["valid"] == sum(r["split"] == "valid" for r in originals.values())
    shifts, heard = set(), []
    for copy in copies:
        source = originals[copy["clip_id"].replace("_t1_", "_")]
        shift = copy["transposed_semitones"]
        shifts.add(shift % 12)
        assert shift % 12 != 0 and copy["split"] == "train" and copy["mode"] == source["mode"]
        assert pitch_class(copy["tonic"]) == (pitch_class(source["tonic"]) + shift) % 12
        assert copy["key"] == f"{copy['tonic']} {copy['mode']}"
        for field in ("instruments", "tempo_bpm", "start_seconds", "genre", "work_id"):
            assert copy[field] == source[field], field
        for caption in copy["captions"]:  # a caption that names a key names the new one
            named = _KEY_RE.search(caption)
            assert named is None or named.group(1) == copy["tonic"], caption
        # the audio is transposed: frame by frame (the same performance), its chroma is the
        # original's rolled by the shift (a 12-bin chroma mistakes a few reedy or plucked timbres'
        # harmonics for the fundamental, so most clips, not all)
        a, b = _chroma(out / source["audio"]), _chroma(out / copy["audio"])
        heard.append(max(range(12), key=lambda k: float((np.roll(a, k, axis=1) * b).sum())) == shift % 12)
    assert np.mean(heard) >= 0.8, heard
    assert len(shifts) > 3  # the shifts are drawn, not one constant


def test_tiny_keys_plans_tinys_works():
    """tiny_keys differs from tiny only by its transposed copies: same works, splits and clips."""
    assert plan_works(get_preset("tiny_keys"), 0) == plan_works(get_preset("tiny"), 0)
    assert get_preset("tiny_keys").replace(preset="tiny", transposed_copies=0) == get_preset("tiny")
