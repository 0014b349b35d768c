"""Build a captioned corpus: plan works → parse → arrange → render → check → FLAC + metadata.

Layout of ``out``::

    audio/<clip_id>.flac   mono 16-bit FLAC at the preset's sample rate, fixed length
    metadata.jsonl         one row per clip (clip_id, work_id, split, caption, attributes …)
    corpus.json            build config, renderer, counts, rejected clips and skipped works
    .build/                resume state (one marker per finished work); safe to delete afterwards

Deterministic: every random choice comes from a generator seeded by (seed, work or clip id), so
the same seed, preset and renderer give the same bytes, whatever the number of workers.
Resumable: a work's marker is written (atomically) only after all its clips are on disk; a re-run
skips works with a marker, and FLAC files are written under a temporary name and renamed.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import multiprocessing
import os
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..audio import resample, save_audio
from ..errors import UserError
from ..io import atomic_write_text
from .arrangement import attribute_record, choose_arrangement, choose_key_shift
from .captions import make_captions
from .checks import normalise_and_check
from .presets import CorpusConfig
from .render import SoundfontRenderer, find_soundfont, tinysoundfont_available, to_pretty_midi
from .scores import ScoreError, parse_work
from .sources import SOURCE_NOTE, Work, works_by_group
from .synth import BuiltinRenderer

GOLDEN = (math.sqrt(5) - 1) / 2


def rng_for(seed: int, *parts: str) -> np.random.Generator:
    """A generator that depends only on ``seed`` and ``parts`` (stable across runs and machines)."""
    digest = hashlib.sha256(":".join([str(seed), *parts]).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _order_key(seed: int, work_id: str) -> str:
    return hashlib.sha256(f"{seed}:{work_id}".encode()).hexdigest()


def plan_works(config: CorpusConfig, seed: int) -> list[tuple[Work, str, int]]:
    """→ ``[(work, split, clips), …]`` sorted by work id. Splits are by work (never shared).

    Works are drawn per group in a seed-dependent order; the chosen works of all groups are then
    interleaved round-robin and split with a low-discrepancy sequence, so every split gets a
    spread of genres and the split sizes follow the fractions closely even for tiny corpora.
    """
    from .presets import EXCLUDE_WORKS_OF, get_preset

    excluded = set()
    if config.preset in EXCLUDE_WORKS_OF:  # e.g. evalclap: never a work of tiny (same seed)
        excluded = {w.work_id for w, _, _ in plan_works(get_preset(EXCLUDE_WORKS_OF[config.preset]), seed)}
    groups = works_by_group()
    per_group: list[list[tuple[Work, int]]] = []
    for group, target in sorted(config.group_clips.items()):
        if group not in groups:
            raise UserError(f"unknown work group {group!r}; known: {sorted(groups)}")
        candidates = sorted((w for w in groups[group] if w.work_id not in excluded),
                            key=lambda w: _order_key(seed, w.work_id))
        n_works = min(len(candidates), target)
        base, extra = divmod(target, max(n_works, 1))
        per_group.append([(w, min(config.max_clips_per_work, base + (i < extra)))
                          for i, w in enumerate(candidates[:n_works])])
    interleaved = [entry for round_ in _round_robin(per_group) for entry in round_]
    plan = []
    for rank, (work, clips) in enumerate(interleaved):
        u = (rank * GOLDEN) % 1.0
        split = "test" if u < config.test_fraction else (
            "valid" if u < config.test_fraction + config.valid_fraction else "train")
        plan.append((work, split, clips))
    return sorted(plan, key=lambda entry: entry[0].work_id)


def _round_robin(lists: list[list]) -> list[list]:
    longest = max((len(x) for x in lists), default=0)
    return [[x[i] for x in lists if i < len(x)] for i in range(longest)]


def make_renderer(soundfont: str | None, renderer: str, render_rate: int, announce=print):
    """``renderer``: ``auto`` (soundfont if one is found, else built-in), ``soundfont``, ``builtin``."""
    if renderer == "builtin":
        return BuiltinRenderer(render_rate)
    if soundfont is not None:
        return SoundfontRenderer(soundfont, render_rate)
    found = find_soundfont()
    if found is not None and (renderer == "soundfont" or tinysoundfont_available()):
        return SoundfontRenderer(found, render_rate)
    if renderer == "soundfont":
        raise UserError("no General-MIDI soundfont found; pass --soundfont PATH or install one "
                        "(apt-get install fluid-soundfont-gm)")
    missing = "no General-MIDI soundfont found (install fluid-soundfont-gm or timgm6mb-soundfont, " \
        "or pass --soundfont)" if found is None else "tinysoundfont is not installed " \
        "(pip install --no-deps tinysoundfont)"
    announce(f"melody-lab: {missing}; using the built-in synthesiser")
    return BuiltinRenderer(render_rate)


def _clip_starts(score, spq: float, clip_seconds: float, count: int, rng) -> list[float]:
    """Up to ``count`` bar-aligned window starts (seconds), spread over the piece."""
    end = score.end_quarters * spq
    bars = np.arange(0.0, score.end_quarters, score.bar_quarters) * spq
    candidates = bars[bars + clip_seconds <= end + 0.25]
    if len(candidates) == 0:
        return []
    count = min(count, len(candidates))
    edges = np.linspace(0, len(candidates), count + 1)
    picks = [int(edges[i] + rng.random() * (edges[i + 1] - edges[i])) for i in range(count)]
    return [float(candidates[min(p, len(candidates) - 1)]) for p in sorted(set(picks))]


def job_name(work: Work, copy: int) -> str:
    """A build job's name (its marker file's stem; its clips' id prefix): ``<work>``, and
    ``<work>_t<copy>`` for transposed copies (``CorpusConfig.transposed_copies``)."""
    return work.work_id if copy == 0 else f"{work.work_id}_t{copy}"


def build_jobs(config: CorpusConfig, plan: list[tuple[Work, str, int]]) -> list[tuple[Work, str, int, int]]:
    """``plan`` → ``[(work, split, clips, copy), …]``: every work as copy 0, then each train
    work's ``config.transposed_copies`` transposed copies."""
    jobs = [(work, split, clips, 0) for work, split, clips in plan]
    jobs += [(work, split, clips, copy) for work, split, clips in plan if split == "train"
             for copy in range(1, config.transposed_copies + 1)]
    return jobs


def build_work(work: Work, split: str, clips: int, config: CorpusConfig, seed: int, renderer,
               out: Path, copy: int = 0) -> dict:
    """Render one work's clips to ``out/audio`` → marker dict (rows, rejected, skipped).

    ``copy > 0``: a transposed copy — the same arrangement, clip windows and performance draws as
    the original (the same generator), every note shifted by :func:`choose_key_shift` semitones
    (drawn from a generator of its own) and the key and captions changed to match."""
    rng = rng_for(seed, work.work_id)
    try:
        score = parse_work(work)
    except ScoreError as err:
        return {"rows": [], "rejected": [], "skipped": str(err) if copy == 0 else None}
    arrangement = choose_arrangement(work, score, rng)
    shift = 0
    if copy:
        shift = choose_key_shift(score, arrangement, rng_for(seed, work.work_id, f"transpose{copy}"))
        arrangement = dataclasses.replace(arrangement, transpose=arrangement.transpose + shift)
    attributes = attribute_record(work, score, arrangement, key_shift=shift)
    spq = 60.0 / arrangement.quarter_bpm
    starts = _clip_starts(score, spq, config.clip_seconds, clips, rng)
    if not starts:
        return {"rows": [], "rejected": [], "skipped": None if copy else f"{work.work_id}: shorter than one clip"}
    until = starts[-1] + config.clip_seconds
    midi = to_pretty_midi(score, arrangement, until, rng)
    audio = resample(renderer.render(midi, until), config.render_rate, config.sample_rate)
    rows, rejected = [], []
    n = config.clip_samples
    for index, start in enumerate(starts):
        clip_id = f"{job_name(work, copy)}_c{index}"
        first = int(round(start * config.sample_rate))
        clip = np.zeros(n, dtype=np.float32)
        segment = audio[first:first + n]
        clip[: len(segment)] = segment
        clip, reason = normalise_and_check(clip, config.sample_rate, config.target_rms_db, config.max_peak)
        if reason is not None:
            rejected.append({"clip_id": clip_id, "reason": reason})
            continue
        save_audio(out / "audio" / f"{clip_id}.flac", clip, config.sample_rate, subtype="PCM_16")
        captions = make_captions(attributes, rng_for(seed, clip_id, "caption"), config.captions_per_clip)
        rows.append({"clip_id": clip_id, "work_id": work.work_id, "split": split,
                     "caption": captions[0], "captions": captions, **attributes,
                     "start_seconds": round(start, 4), "audio": f"audio/{clip_id}.flac",
                     **({"transposed_semitones": shift} if copy else {})})
    return {"rows": rows, "rejected": rejected, "skipped": None}


def _write_json(path: Path, data) -> None:
    atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n")


_WORKER: dict = {}


def _init_worker(config_dict: dict, seed: int, renderer_args: tuple, out: str) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    config = CorpusConfig.from_dict(config_dict)
    _WORKER.update(config=config, seed=seed, out=Path(out),
                   renderer=make_renderer(*renderer_args, announce=lambda _: None))


def _run_job(job: tuple[Work, str, int, int]) -> str:
    work, split, clips, copy = job
    state = _WORKER
    marker = build_work(work, split, clips, state["config"], state["seed"], state["renderer"],
                        state["out"], copy)
    _write_json(state["out"] / ".build" / "done" / f"{job_name(work, copy)}.json", marker)
    return job_name(work, copy)


def build_corpus(out: str | Path, config: CorpusConfig, seed: int = 0, soundfont: str | None = None,
                 renderer: str = "auto", workers: int = 1, progress: bool = True) -> dict:
    """Build (or finish building) a corpus in ``out``; returns the ``corpus.json`` record."""
    if not str(out).strip():  # Path("") is the current folder: never build there by accident
        raise UserError("the corpus folder (--out) is empty; name a folder, e.g. --out data/tiny")
    out = Path(out)
    engine = make_renderer(soundfont, renderer, config.render_rate,
                           announce=lambda msg: print(msg, file=sys.stderr))
    identity = {"config": config.to_dict(), "seed": seed, "renderer": engine.describe()}
    (out / ".build" / "done").mkdir(parents=True, exist_ok=True)
    (out / "audio").mkdir(exist_ok=True)
    identity_path = out / ".build" / "identity.json"
    if identity_path.exists():
        previous = json.loads(identity_path.read_text())
        # a corpus built before a config field existed was built with its default
        previous["config"] = CorpusConfig.from_dict(previous["config"]).to_dict()
        if previous != identity:
            raise UserError(f"{out} holds a corpus built with other settings ({previous['config']['preset']}, "
                            f"seed {previous['seed']}, {previous['renderer']}); use another --out or delete it")
    else:
        _write_json(identity_path, identity)

    jobs = build_jobs(config, plan_works(config, seed))
    done_dir = out / ".build" / "done"
    todo = [job for job in jobs if not (done_dir / f"{job_name(job[0], job[3])}.json").exists()]
    bar = tqdm(total=len(jobs), initial=len(jobs) - len(todo), desc=f"corpus {config.preset}",
               unit="work", disable=not progress, mininterval=2.0, file=sys.stderr)
    renderer_args = (soundfont if soundfont is None else str(soundfont), renderer, config.render_rate)
    if workers > 1 and len(todo) > 1:
        context = multiprocessing.get_context("spawn")
        with context.Pool(workers, _init_worker, (config.to_dict(), seed, renderer_args, str(out))) as pool:
            for _ in pool.imap_unordered(_run_job, todo, chunksize=4):
                bar.update()
    else:
        _WORKER.update(config=config, seed=seed, out=out, renderer=engine)
        for job in todo:
            _run_job(job)
            bar.update()
    bar.close()
    return _finish(out, jobs, identity)


def _finish(out: Path, jobs, identity: dict) -> dict:
    rows, rejected, skipped = [], [], []
    for work, _, _, copy in jobs:
        marker = json.loads((out / ".build" / "done" / f"{job_name(work, copy)}.json").read_text())
        rows += marker["rows"]
        rejected += marker["rejected"]
        if marker["skipped"]:
            skipped.append(marker["skipped"])
    rows.sort(key=lambda r: r["clip_id"])
    atomic_write_text(out / "metadata.jsonl",
                      "".join(json.dumps(row, sort_keys=True, ensure_ascii=False) + "\n" for row in rows))
    config = identity["config"]
    counts = {s: sum(r["split"] == s for r in rows) for s in ("train", "valid", "test")}
    record = {**config, "seed": identity["seed"], "renderer": identity["renderer"],
              "clip_samples": int(round(config["sample_rate"] * config["clip_seconds"])),
              "clips": len(rows), "works": len({r["work_id"] for r in rows}), "split_clips": counts,
              "rejected_clips": rejected, "skipped_works": skipped, "sources": SOURCE_NOTE}
    _write_json(out / "corpus.json", record)
    return record
