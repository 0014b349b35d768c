"""A Markdown summary of a results table: one line per configuration, metrics with their CIs,
and a header that says what was measured (embedders, reference set and n, seeds, hardware)."""
from __future__ import annotations

import json
import math
from pathlib import Path


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
    header = ["configuration", *[f"FAD {k[4:]}" for k in fad_keys],
              *[f"FAD∞ {k[4:]}" for k in fad_keys], "CLAP", "MCC", "attr. acc.", "RTF", "×RT", "peak MB"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row["label"], *[_ci(row, k) for k in fad_keys],
                 *[_number(row.get(f"fad_inf_{k[4:]}")) for k in fad_keys],
                 _ci(row, "clap"), _ci(row, "mcc"), _number(row.get("attr_mean")),
                 _number(row.get("rtf")),
                 _number(row.get("speed_x_realtime")), _number(row.get("peak_memory_mb"), 4)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_summary(out_dir: str | Path) -> Path:
    """Render OUT/results.json into OUT/summary.md; returns its path."""
    out = Path(out_dir)
    results = json.loads((out / "results.json").read_text())
    path = out / "summary.md"
    path.write_text(summary_markdown(results))
    return path
