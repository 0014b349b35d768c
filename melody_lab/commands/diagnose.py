"""``melody-lab diagnose --bundle B --corpus C [--split test] [--n 64] --out DIR``: the stage diagnostic."""
from __future__ import annotations

import sys
import time
from pathlib import Path

from . import _args


def register(subparsers) -> None:
    from ..ablation.diagnostic import CAPTION_CHOICES, PATHS

    p = subparsers.add_parser(
        "diagnose", help="where the prompt is lost: attribute measures of real clips after each stage",
        description="For n held-out clips of a corpus split (clip i: seed i), measure the real clip, "
        "its codec round trip, its own semantic tokens rendered by the DPD, a generation planned "
        "from its audio (MuLan audio tower) and one from its caption: zero-shot attribute accuracy "
        "under the evaluation CLAP, key/mode/tempo adherence and note rate from the basic-pitch "
        "transcription, slow vs lively — each with a 95 % bootstrap interval. Writes "
        "OUT/diagnostic.csv (tidy), OUT/diagnostic.md (tables), OUT/per_clip.csv and "
        "OUT/diagnostic.json (and OUT/audio/ with --save-audio). See docs/tiny_model.md.")
    p.add_argument("--bundle", default="tiny",
                   help="model bundle folder, or 'tiny' for the one shipped in the package (default)")
    p.add_argument("--corpus", required=True, type=Path,
                   help="a built corpus, e.g. data/evalclap (works never used to train the tiny bundle)")
    p.add_argument("--split", default="test", choices=["train", "valid", "test", "all"],
                   help="the corpus split the clips come from (default test)")
    p.add_argument("--n", type=_args.bounded(int, 2, 100_000, "n"), default=64,
                   help="clips (default 64; all of the split when it has fewer)")
    p.add_argument("--paths", nargs="+", choices=PATHS, default=list(PATHS),
                   help=f"paths to run (default all: {' '.join(PATHS)})")
    p.add_argument("--caption", choices=CAPTION_CHOICES, default="first",
                   help="the text prompt of each clip: its first caption (default), or the first of "
                   "its captions that names its key (names_key: 'key match named' then covers most "
                   "clips instead of about one in five)")
    p.add_argument("--out", required=True, type=_args.out_folder, help="output folder")
    _args.add_threads(p)
    p.add_argument("--save-audio", action="store_true",
                   help="also write every path's clips to OUT/audio/<path>/<clip_id>.flac")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)


def _run(args) -> int:
    from ..ablation.diagnostic import run_diagnostic, write_diagnostic
    from ..data import load_corpus_info
    from ..pipeline import MeLoDy

    load_corpus_info(args.corpus)  # a missing corpus is an error before the model loads
    started = time.perf_counter()
    model = MeLoDy.from_pretrained(args.bundle)
    result = run_diagnostic(model, args.corpus, args.split, args.n, paths=args.paths,
                            progress=not args.no_progress, keep_audio=args.save_audio,
                            caption=args.caption)
    result.info["bundle_arg"] = args.bundle
    result.info["command_seconds"] = time.perf_counter() - started
    files = write_diagnostic(result, args.out)
    print(files["markdown"].read_text())
    print(f"[diagnose] {result.info['n']} clips × {len(args.paths)} paths in "
          f"{result.info['command_seconds']:.0f} s; table: {files['csv']}, {files['markdown']}",
          file=sys.stderr)
    return 0
