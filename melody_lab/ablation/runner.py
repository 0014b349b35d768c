"""``run_ablation(grid, out)``: train or reuse, generate, measure; one results row per configuration.

    OUT/rows/<key>.json     one finished configuration (full detail), written atomically: the truth
    OUT/rows/<key>.npz      its per-clip values (embeddings, cosines, adherence) for paired comparisons
    OUT/reference.npz       the reference set's embeddings (same names as in the row .npz files)
    OUT/results.csv         one row per configuration of the grid, rewritten atomically after each row
    OUT/results.json        the rows plus provenance (embedders, reference set, n, seeds, hardware,
                            package version, git commit, what was trained or reused)
    OUT/runs/ OUT/data/     trained stages and built corpora (see ``stages.py``)

Resumable: a row's key hashes its configuration and every fixed setting, so a restarted run skips
every configuration whose row file exists (nothing finished is recomputed, nothing is duplicated)
and a changed setting gives new keys instead of stale rows. Killed mid-row, only that row is redone.

Sharded (``shard=(i, N)``, ``ablate --shard i/N``): the process computes only the rows whose key
falls to it, ``int(key, 16) % N == i`` (:func:`shard_of`: stable, any process can tell), and writes
them into the same OUT. Every process rebuilds results.csv/json from all row files present, under
an exclusive lock on OUT/results.lock, so once every shard has finished the tables are those of a
single run (timing columns aside). Shared stages are trained once (``stages.file_lock``); the
control rows (``eval.controls``) belong to shard 0.
"""
from __future__ import annotations

import csv
import io
import json
import math
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

from ..io import atomic_write, atomic_write_text
from ..errors import UserError
from .grid import Configuration, Grid, load_grid
from .provenance import provenance
from .stages import file_lock

#: leading CSV columns (metric columns follow; FAD columns depend on the grid's embedders)
ID_COLUMNS = ["key", "label", "codec", "denoiser", "denoiser_preset", "schedule", "steps", "guidance",
              "n_eval", "n_reference", "reference", "duration_s", "seeds"]
TAIL_COLUMNS = ["clap", "clap_low", "clap_high", "clap_model", "clap_status", "mcc", "mcc_low",
                "mcc_high", "attr_genre", "attr_mode", "attr_tempo", "attr_instrument", "attr_mean",
                "attr_genre_real", "attr_mode_real", "attr_tempo_real", "attr_instrument_real",
                "attr_mean_real", "rtf", "rtf_mulan", "rtf_lm", "rtf_diffusion",
                "rtf_decode", "speed_x_realtime", "peak_memory_mb", "memory_kind", "threads",
                "denoiser_params", "velocity_mse", "si_snri_db", "codec_mr_stft", "codec_si_sdr",
                "generate_seconds", "row_seconds", "finished_at"]


def shard_of(key: str, count: int) -> int:
    """The shard (0 … count−1) that computes the row with 16-hex-digit ``key``."""
    return int(key, 16) % count


def check_shard(shard) -> tuple[int, int] | None:
    """``shard`` as ``(i, N)`` with 0 ≤ i < N, or None (unsharded); UserError otherwise."""
    if shard is None:
        return None
    try:
        index, count = shard
        valid = all(isinstance(v, int) and not isinstance(v, bool) for v in (index, count)) \
            and 0 <= index < count
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise UserError(f"shard must be (i, N) with 0 <= i < N, got {shard!r}")
    return index, count


def tables_lock(out: Path):
    """The exclusive lock every process holds while it rebuilds OUT's tables (or summary, plots)."""
    return file_lock(Path(out) / "results.lock", "waiting for another shard writing the tables")


def columns_for(grid: Grid) -> list[str]:
    from .evaluate import column_name

    fad = []
    for name in grid.eval.embedders:
        stem = column_name(name)
        fad += [f"fad_{stem}", f"fad_{stem}_low", f"fad_{stem}_high", f"fad_inf_{stem}"]
    if "basic-pitch" in grid.eval.embedders:
        from ..metrics.musicality import STATISTICS
        from ..metrics.transcribed import ADHERENCE

        fad += ["notes_fd", *(f"notes_{s}" for s in STATISTICS), *ADHERENCE]
    return ID_COLUMNS + fad + TAIL_COLUMNS


def save_arrays(path: Path, arrays: dict) -> Path:
    """``arrays`` (name → array) as a compressed ``.npz`` at ``path``, written atomically."""
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez would append .npz to a path
            np.savez_compressed(f, **{k: np.asarray(v) for k, v in arrays.items()})

    return atomic_write(path, write)


def write_tables(grid: Grid, out: Path, rows: list[dict], info: dict) -> None:
    """results.csv (one row per finished configuration, grid order) and results.json."""
    columns = columns_for(grid)
    info = {**info, "grid": {**info.get("grid", {}), "baseline": grid.baseline}}  # not part of row keys
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if isinstance(v, float) and math.isnan(v) else v)
                         for k, v in row["columns"].items()})
    atomic_write_text(out / "results.csv", buffer.getvalue())
    atomic_write_text(out / "results.json", json.dumps({**info, "rows": rows}, indent=1, default=str))


def _clap_model(grid: Grid, embedders: dict, skipped: dict):
    """The evaluation CLAP (an embedder with a text tower) and a status line; never a stand-in."""
    from .evaluate import build_embedders

    name = grid.eval.clap
    if name is None:
        return None, "skipped: eval.clap is none"
    if name not in embedders and name not in skipped:
        built, failed = build_embedders([name])
        embedders, skipped = {**embedders, **built}, {**skipped, **failed}
    if name in skipped:
        return None, skipped[name]
    if not hasattr(embedders[name], "embed_text"):
        return None, f"skipped: embedder {name} has no text tower, so it cannot give a CLAP score"
    return embedders[name], "ok"


def metric_fingerprints(grid: Grid, embedders: dict, skipped: dict, clap_model) -> dict:
    """What each evaluation model is (weights hash, or why it is unavailable): part of row keys."""
    names = list(grid.eval.embedders) + ([grid.eval.clap] if grid.eval.clap else [])
    found = {**embedders, **({grid.eval.clap: clap_model} if clap_model is not None else {})}
    return {n: getattr(found[n], "fingerprint", "built-in") if n in found else "unavailable"
            for n in dict.fromkeys(names)}


def run_ablation(grid: Grid | str | Path, out_dir: str | Path, *, quick: bool = False,
                 corpus: str | Path | None = None, runs_dir: str | Path | None = None,
                 on_row: Callable[[dict], None] | None = None, progress: bool = False,
                 train_only: bool = False, shard: tuple[int, int] | None = None) -> list[dict]:
    """Run (or resume) every configuration of ``grid``; returns the rows in grid order.

    ``grid`` is a :class:`Grid` or a path to a grid file (``quick`` applies its ``quick:`` section;
    ``corpus``, a built corpus folder, replaces its ``data`` section). Trained stages go to
    ``runs_dir`` (default OUT/runs; folders are named by a hash of their settings, so several
    grids may share one runs folder and reuse each other's stages).
    ``on_row(row)`` is called after each newly computed row has been written; ``train_only``
    stops after training what the unfinished configurations need. ``shard=(i, N)`` computes only
    the rows with ``shard_of(key, N) == i`` (see the module docstring); the rows returned are then
    every finished row in OUT, this shard's and the others'.
    """
    from .evaluate import (attribute_class_prompts, build_embedders, column_name, evaluation_set,
                           prompt_targets, real_attribute_accuracy, reference_embeddings)
    from .stages import Stages, prepare_corpus

    shard = check_shard(shard)
    if not isinstance(grid, Grid):
        grid = load_grid(grid, quick=quick, corpus=corpus)
    out = Path(out_dir)
    (out / "rows").mkdir(parents=True, exist_ok=True)
    configs = grid.configurations()
    embedders, skipped = build_embedders(grid.eval.embedders)
    clap_model, clap_status = _clap_model(grid, embedders, skipped)
    fingerprints = metric_fingerprints(grid, embedders, skipped, clap_model)
    keys = [grid.row_key(c, fingerprints) for c in configs]
    mine = [(c, k) for c, k in zip(configs, keys) if shard is None or shard_of(k, shard[1]) == shard[0]]
    todo = [(c, k) for c, k in mine if not (out / "rows" / f"{k}.json").is_file()]
    where = "" if shard is None else f" (shard {shard[0]}/{shard[1]}: {len(mine)} of them)"
    print(f"[ablate] {grid.name}: {len(configs)} configurations{where}, {len(mine) - len(todo)} "
          f"finished earlier, {len(todo)} to run -> {out}")

    def finished_rows() -> list[dict]:
        return [json.loads((out / "rows" / f"{k}.json").read_text()) for k in keys
                if (out / "rows" / f"{k}.json").is_file()]

    info_path = out / "results.json"
    info = {k: v for k, v in json.loads(info_path.read_text()).items() if k != "rows"} \
        if info_path.is_file() and not todo else {}
    if grid.eval.controls and (shard is None or shard[0] == 0):
        from .controls import ROUNDTRIP, SHUFFLED, control_key

        controls_todo = any(not (out / "controls" / f"{control_key(n, grid, fingerprints)}.json").is_file()
                            for n in (ROUNDTRIP, SHUFFLED))
    else:
        controls_todo = False
    if todo or controls_todo:
        corpus = prepare_corpus(grid, out)
        stages = Stages(grid, corpus, out, progress, runs_dir)
        stages.prepare([c for c, _ in todo])
        if train_only:
            return finished_rows()
        prompts, labels = evaluation_set(corpus, grid.eval.split, grid.eval.prompts)
        references, n_reference = reference_embeddings(corpus, grid.eval.split, embedders)
        save_arrays(out / "reference.npz", {
            (f"emb_{column_name(k)}" if "/" not in k else "notes_stats"): v[0] for k, v in references.items()})
        class_prompts = attribute_class_prompts(corpus)
        ceiling, ceiling_detail = real_attribute_accuracy(corpus, grid.eval.split, clap_model,
                                                          class_prompts)
        attributes = {"labels": labels, "class_prompts": class_prompts, "ceiling": ceiling,
                      "targets": prompt_targets(corpus, grid.eval.split, grid.eval.prompts)}
        info = {"grid": {"name": grid.name, "description": grid.description, "file": grid.source,
                         **grid.fixed_settings(), "axes": grid.axes.to_dict()},
                "corpus": str(corpus), "reference": {"set": f"{corpus}:{grid.eval.split}",
                                                     "n": n_reference},
                "embedders": {**{n: "ok" for n in embedders}, **skipped},
                "metric_models": fingerprints,
                "clap": {"model": grid.eval.clap, "status": clap_status},
                "mcc": "cosine(text, audio) under each configuration's own MuLan",
                "attribute_accuracy": {"method": f"zero-shot under {grid.eval.clap}",
                                       "class_prompts": class_prompts, "real_clips": ceiling_detail},
                "seeds": grid.eval.seeds, "prompts": prompts, "training_log": stages.log,
                "provenance": provenance()}
        cache: dict[tuple, tuple] = {}
        for config, key in todo:
            row = _evaluate_row(grid, config, key, stages, corpus, prompts, embedders, references,
                                n_reference, clap_model, clap_status, cache, attributes)
            row["provenance"] = info["provenance"]
            save_arrays(out / "rows" / f"{key}.npz", row["detail"].pop("per_clip"))
            atomic_write_text(out / "rows" / f"{key}.json", json.dumps(row, indent=1, default=str))
            with tables_lock(out):
                write_tables(grid, out, finished_rows(), info)
            c = row["columns"]
            print(f"[ablate] {c['label']}: " + ", ".join(
                f"{k}={c[k]:.4g}" for k in c if k.startswith(("fad_", "mcc", "clap", "rtf"))
                and not k.endswith(("_low", "_high")) and isinstance(c[k], float)))
            if on_row is not None:
                on_row(row)
        if controls_todo:
            from .controls import run_controls

            run_controls(grid, out, configs[0], stages, corpus, prompts, attributes["targets"], embedders,
                         references, clap_model, clap_status, fingerprints, info["provenance"])
    with tables_lock(out):
        rows = finished_rows()
        if not info and info_path.is_file():  # a shard with nothing to do: keep the others' info
            info = {k: v for k, v in json.loads(info_path.read_text()).items() if k != "rows"}
        write_tables(grid, out, rows, info)
    return rows


def _evaluate_row(grid: Grid, config: Configuration, key: str, stages, corpus, prompts, embedders,
                  references, n_reference, clap_model, clap_status, cache, attributes) -> dict:
    from ..train.stages import SAMPLING_FIELDS
    from .evaluate import (attribute_accuracy_columns, generate_set, measure_speed, model_metrics,
                           score_audio)

    started = time.perf_counter()
    ev = grid.eval
    model_key = stages.model_key(config)
    if model_key not in cache:
        cache.clear()  # one assembled pipeline in memory at a time (grid order groups them)
        model, runs = stages.pipeline(config)
        cache[model_key] = (model, runs, model_metrics(model, corpus, ev.split))
    model, runs, model_numbers = cache[model_key]
    gen_start = time.perf_counter()
    audio = generate_set(model, config, prompts, ev.seeds, ev.duration_s, ev.batch_size)
    generate_seconds = time.perf_counter() - gen_start
    quality, detail = score_audio(audio, model.sample_rate, prompts * len(ev.seeds), model,
                                  embedders, references, clap_model, clap_status, ev,
                                  labels=attributes["targets"] * len(ev.seeds))
    accuracy, accuracy_detail = attribute_accuracy_columns(
        clap_model, audio, model.sample_rate, attributes["labels"] * len(ev.seeds),
        attributes["class_prompts"])
    detail["attributes"] = accuracy_detail
    speed = measure_speed(model, config, prompts[0], ev.duration_s, ev.rtf_warmup, ev.rtf_repeats)
    columns = {
        "key": key, "label": config.label(), "codec": config.codec, "denoiser": config.denoiser,
        "denoiser_preset": config.denoiser_preset, "schedule": config.schedule, "steps": config.steps,
        "guidance": config.guidance, "n_eval": len(audio), "n_reference": n_reference,
        "reference": f"{corpus}:{ev.split}", "duration_s": ev.duration_s,
        "seeds": " ".join(map(str, ev.seeds)), **quality, **accuracy, **attributes["ceiling"],
        "rtf": speed.rtf,
        **{f"rtf_{s}": speed.stage_rtf.get(s, math.nan) for s in ("mulan", "lm", "diffusion", "decode")},
        "speed_x_realtime": speed.speed_x_realtime,
        "peak_memory_mb": speed.peak_memory_bytes / 2**20 if speed.peak_memory_bytes else math.nan,
        "memory_kind": speed.memory_kind, "threads": speed.threads, **model_numbers,
        "generate_seconds": generate_seconds, "row_seconds": time.perf_counter() - started,
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return {"key": key, "config": config.__dict__, "columns": columns, "runs": runs,
            "sampling": {name: getattr(model.config, name) for name in SAMPLING_FIELDS},
            "detail": {**detail, "rtf": speed.to_dict()}}
