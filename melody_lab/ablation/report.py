"""A Markdown summary of a results table: one line per configuration, metrics with their CIs,
and a header that says what was measured (embedders, reference set and n, seeds, hardware).

With a ``baseline:`` in the grid (axis → value, or a list of them), every row is also compared with its baseline row —
the row equal to it except on those axes — clip by clip: every row generates the same prompts with
the same seeds, so :func:`paired_differences` gives each metric's difference with a paired bootstrap
interval that resamples prompts jointly (all seeds of a drawn prompt, in both rows), from the per-clip
values in OUT/rows/<key>.npz. Differences whose interval excludes 0 are starred.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..io import atomic_write_text

#: per-clip metrics whose means are compared by paired bootstrap (all: higher is better)
PAIRED_MEANS = ("clap", "mcc", "key_match", "key_score", "mode_match", "tempo_acc1", "tempo_acc2")


def _ci(row: dict, key: str, digits: int = 3) -> str:
    value = row.get(key)
    if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
        return "–"
    low, high = row.get(f"{key}_low"), row.get(f"{key}_high")
    text = f"{value:.{digits}g}"
    if isinstance(low, float) and isinstance(high, float) and not (math.isnan(low) or math.isnan(high)):
        text += f" [{low:.{digits}g}, {high:.{digits}g}]"
    return text


def _number(value, digits: int = 3) -> str:
    if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def summary_markdown(results: dict) -> str:
    """``results`` as written to results.json (``rows`` + provenance) → Markdown text."""
    rows = [r["columns"] for r in results.get("rows", [])]
    if not rows:
        return "_no finished configurations yet_\n"
    prov = results.get("provenance", {})
    grid = results.get("grid", {})
    ev = grid.get("eval", {})
    embedders = [e for e, status in results.get("embedders", {}).items() if status == "ok"]
    skipped = {e: s for e, s in results.get("embedders", {}).items() if s != "ok"}
    confidence = ev.get("confidence", 0.95)
    lines = [
        f"### Ablation `{grid.get('name', '?')}`",
        "",
        f"- n = {rows[0]['n_eval']} generated clips per configuration ({ev.get('prompts')} prompts × "
        f"seeds {ev.get('seeds')}, {ev.get('duration_s')} s each) against the reference set "
        f"`{rows[0]['reference']}` (n = {rows[0]['n_reference']}).",
        f"- FAD embedders: {', '.join(f'`{e}`' for e in embedders) or 'none'}"
        + "".join(f"; `{e}` {s}" for e, s in skipped.items()) + ".",
        f"- CLAP score: {results.get('clap', {}).get('model')} "
        f"({results.get('clap', {}).get('status')}); MCC: under each configuration's own MuLan.",
        "- Attr. acc. = mean zero-shot accuracy of the evaluation CLAP on genre, mode, tempo class "
        "and solo instrument against the prompted clip's attributes (real test clips: "
        f"{_number(rows[0].get('attr_mean_real'))}; blank for rows finished before this column existed).",
        f"- Brackets: {confidence:.0%} percentile-bootstrap intervals "
        f"({ev.get('bootstrap_resamples')} resamples for FAD). RTF = seconds of compute per second "
        f"of audio (median of {ev.get('rtf_repeats')} after {ev.get('rtf_warmup')} warm-up; < 1 is "
        f"faster than real time).",
        f"- Hardware: {prov.get('cpu')} ({prov.get('cpu_count')} cores, torch threads "
        f"{prov.get('torch_threads')}), GPU: {prov.get('gpu') or 'none'}; torch {prov.get('torch')}, "
        f"melody_lab {prov.get('melody_lab')} @ {prov.get('git_commit')}.",
        "",
    ]
    fad_keys = [k for k in rows[0] if k.startswith("fad_") and not k.startswith("fad_inf_")
                and not k.endswith(("_low", "_high"))]
    if "notes_fd" in rows[0]:
        lines.insert(-1, "- basic-pitch (pretrained transcriber): notes FD = Fréchet distance of "
                         "standardised note statistics to the reference; key match / tempo acc2 = share "
                         "of clips in the prompted key / at the prompted tempo (±8 %, metrical errors "
                         "allowed) — see docs/metrics.md.")
    NOTE_COLUMNS = {k: v for k, v in (("notes_fd", "notes FD"), ("key_match", "key match"),
                                      ("tempo_acc2", "tempo acc2")) if k in rows[0]}
    header = ["configuration", *[f"FAD {k[4:]}" for k in fad_keys],
              *[f"FAD∞ {k[4:]}" for k in fad_keys], *NOTE_COLUMNS.values(), "CLAP", "MCC", "attr. acc.",
              "RTF", "×RT", "peak MB"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row["label"], *[_ci(row, k) for k in fad_keys],
                 *[_number(row.get(f"fad_inf_{k[4:]}")) for k in fad_keys],
                 *[_number(row.get(k)) for k in NOTE_COLUMNS],
                 _ci(row, "clap"), _ci(row, "mcc"), _number(row.get("attr_mean")),
                 _number(row.get("rtf")),
                 _number(row.get("speed_x_realtime")), _number(row.get("peak_memory_mb"), 4)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def baseline_row(config: dict, baseline: dict, rows: list[dict]) -> dict | None:
    """The row whose configuration equals ``config`` except on the ``baseline`` axes, where it has
    the baseline's values; None when that row is missing or is the row itself."""
    target = dict(config)
    for axis, value in baseline.items():
        if axis == "denoiser":
            target["denoiser"], _, target["denoiser_preset"] = str(value).partition("/")
        else:
            target[axis] = {"steps": int, "guidance": float}.get(axis, str)(value)
    if target == config:
        return None
    return next((r for r in rows if r["config"] == target), None)


def paired_differences(out_dir: str | Path, results: dict, baseline: dict, n_resamples: int = 1000) -> dict:
    """``{label: {"baseline": label, metric: PairedDifference dict}}`` for every row that has a
    ``baseline`` row (see module docstring); {} without per-clip files. FAD differences use the
    grid's ``bootstrap_resamples`` and resample the reference too (shared by both rows)."""
    from ..metrics.musicality import STATISTICS, statistics_distance
    from ..metrics.stats import paired_bootstrap, paired_fad_difference, paired_mean_difference

    out, grid = Path(out_dir), results.get("grid", {})
    rows = results.get("rows", [])
    if not baseline or not (out / "reference.npz").is_file():
        return {}
    ev = grid.get("eval", {})
    confidence, fad_resamples = ev.get("confidence", 0.95), ev.get("bootstrap_resamples", 200)
    reference = dict(np.load(out / "reference.npz"))

    def per_clip(row):
        path = out / "rows" / f"{row['key']}.npz"
        return dict(np.load(path)) if path.is_file() else None

    found = {}
    for row in rows:
        base = baseline_row(row["config"], baseline, rows)
        mine, theirs = per_clip(row), per_clip(base) if base else None
        if mine is None or theirs is None:
            continue
        n = row["columns"]["n_eval"]
        groups = np.arange(n) % max(1, ev.get("prompts", n))  # clip i is prompt i mod P (all seeds)
        kwargs = {"groups": groups, "confidence": confidence, "seed": 0}
        diffs = {"baseline": base["columns"]["label"]}
        for key in sorted(k for k in mine if k.startswith("emb_") and k in theirs and k in reference):
            diffs[f"fad_{key[4:]}"] = paired_fad_difference(mine[key], theirs[key], reference[key],
                                                            n_resamples=fad_resamples, **kwargs).to_dict()
        for key in PAIRED_MEANS:
            if key in mine and key in theirs:
                diffs[key] = paired_mean_difference(mine[key], theirs[key], n_resamples=n_resamples,
                                                    **kwargs).to_dict()
        stats = [f"notes_{s}" for s in STATISTICS]
        if "notes_stats" in reference and all(k in mine and k in theirs for k in stats):
            a, b = (np.stack([d[k] for k in stats], 1) for d in (mine, theirs))

            def notes_fd(idx, a=a, b=b):
                try:
                    return (statistics_distance(a[idx], reference["notes_stats"]).frechet
                            - statistics_distance(b[idx], reference["notes_stats"]).frechet)
                except ValueError:
                    return math.nan

            diffs["notes_fd"] = paired_bootstrap(notes_fd, n, n_resamples=fad_resamples, **kwargs).to_dict()
        found[row["columns"]["label"]] = diffs
    return found


def _difference(d: dict | None) -> str:
    if not d or d.get("low") is None or math.isnan(d["estimate"]):
        return "–"
    star = " *" if d["excludes_zero"] else ""
    return f"{d['estimate']:+.3g} [{d['low']:+.3g}, {d['high']:+.3g}]{star}"


def paired_markdown(differences: dict, confidence: float = 0.95, baseline: dict | None = None) -> str:
    """The table of :func:`paired_differences`: one line per compared row, one column per metric."""
    if not differences:
        return ""
    metrics = list(dict.fromkeys(k for d in differences.values() for k in d if k != "baseline"))
    spec = ", ".join(f"{k}: {v}" for k, v in (baseline or {}).items())
    lines = ["", f"#### Paired differences to the baseline {{{spec}}} (row − baseline; {confidence:.0%} paired-bootstrap "
             "interval over prompts; * = excludes 0; lower FAD / notes_fd is better, higher is better "
             "for the rest)", "",
             "| configuration | baseline | " + " | ".join(metrics) + " |", "|" + "---|" * (len(metrics) + 2)]
    for label, d in differences.items():
        lines.append(f"| {label} | {d['baseline']} | " + " | ".join(_difference(d.get(m)) for m in metrics) + " |")
    return "\n".join(lines) + "\n"


def controls_markdown(rows: list[dict], controls: list[dict]) -> str:
    """The control rows' main metrics and each metric's Kendall τ against the expected order."""
    from .controls import control_agreement

    agreement = control_agreement(rows, controls)
    metrics = list(agreement)
    lines = ["", "#### Control rows and rank agreement", "",
             "Expected order: codec round trip of the real clips (best) < ordinary configurations < "
             "known-bad rows (shuffled prompts, 1 step, guidance 0); shuffled prompts are left out of "
             "the audio-only metrics (FAD, notes FD). τ = Kendall's τ over the pairs of rows that order "
             "ranks (+1: every such pair in the expected order, −1: all reversed).", "",
             "| row | " + " | ".join(metrics) + " |", "|" + "---|" * (len(metrics) + 1)]
    for c in controls:
        lines.append(f"| {c['columns']['label']} | " + " | ".join(_number(c['columns'].get(m)) for m in metrics) + " |")
    lines.append("| **rank agreement τ** | " + " | ".join(_number(agreement[m]["tau"]) for m in metrics) + " |")
    return "\n".join(lines) + "\n"


def write_summary(out_dir: str | Path) -> Path:
    """Render OUT/results.json into OUT/summary.md (+ OUT/paired.json: one entry per grid baseline)."""
    out = Path(out_dir)
    results = json.loads((out / "results.json").read_text())
    confidence = results.get("grid", {}).get("eval", {}).get("confidence", 0.95)
    text, paired = summary_markdown(results), []
    for baseline in results.get("grid", {}).get("baseline") or []:
        differences = paired_differences(out, results, baseline)
        if differences:
            paired.append({"baseline": baseline, "rows": differences})
            text += paired_markdown(differences, confidence, baseline)
    if paired:
        atomic_write_text(out / "paired.json", json.dumps(paired, indent=1))
    controls = [json.loads(p.read_text()) for p in sorted((out / "controls").glob("*.json"))] \
        if (out / "controls").is_dir() else []
    if controls:
        text += controls_markdown(results.get("rows", []), controls)
    path = out / "summary.md"
    atomic_write_text(path, text)
    return path
