"""``melody-lab data build | import``: build the captioned corpus, or import your own audio."""
from __future__ import annotations

import argparse
import time
from collections import Counter

from ..data.presets import PRESETS
from ..errors import UserError
from . import _args


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "data", help="build the captioned music corpus, or import your own audio",
        description="Corpus tools. The corpus is rendered from scores bundled with music21 "
        "(Irish/Scottish dance tunes, Essen folk songs, Bach chorales); see docs/corpus.md.")
    actions = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    build = actions.add_parser(
        "build", help="render scores into captioned audio clips",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Parse scores with music21, write the notes through pretty_midi, render them "
        "with a General-MIDI soundfont (tinysoundfont) or the built-in synthesiser, reject silent, "
        "clipped or non-finite clips, and write DIR/audio/*.flac, DIR/metadata.jsonl and "
        "DIR/corpus.json. Re-running with the same options finishes an interrupted build; the "
        "same seed gives the same bytes.")
    build.add_argument("--preset", choices=list(PRESETS),
                       default="tiny",
                       help="micro: ~30 clips of 2 s (tests, seconds to build); "
                       "tiny: ~3,600 clips of 5 s at 16 kHz (the CPU models' corpus); "
                       "tiny_keys: tiny plus a transposed copy of each train work (~6,900 clips; "
                       "no key dominates, for training the LM on every key); "
                       "paper: 10-s clips at 24 kHz (the paper's operating point); "
                       "paper_micro: 24 clips of 2 s at 24 kHz (the paper recipe's test twin); "
                       "evalclap: ~1,240 clips of 5 s from works disjoint from tiny's (same seed), "
                       "for the evaluation CLAP")
    build.add_argument("--out", required=True, metavar="DIR", type=_args.out_folder,
                       help="output folder (created if missing)")
    build.add_argument("--soundfont", metavar="PATH", default=None,
                       help="General-MIDI .sf2 file to render with; default: $MELODY_LAB_SOUNDFONT or "
                       "the first of /usr/share/sounds/sf2/{FluidR3_GM,TimGM6mb,default-GM}.sf2 that "
                       "exists, else the built-in synthesiser")
    build.add_argument("--renderer", choices=["auto", "soundfont", "builtin"], default="auto",
                       help="auto: soundfont when one is given or found, else built-in; soundfont: "
                       "fail if none is found; builtin: always the built-in synthesiser")
    build.add_argument("--seed", type=_args.seed, default=0,
                       help="seed for work selection, splits, instruments, tempi and captions")
    build.add_argument("--workers", type=_args.positive_int("workers", 256), default=1,
                       help="parallel worker processes (the output does not depend on it)")
    build.add_argument("--quiet", action="store_true", help="no progress bar")
    build.set_defaults(func=run_build)

    imp = actions.add_parser(
        "import", help="turn your own audio folder + captions table into a corpus",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Cut every file listed in a captions table (CSV with columns path,caption or "
        "JSONL with the same keys; paths relative to the table) into fixed-length mono clips, check "
        "them, and write a corpus that every `melody-lab train` command reads. Splits are by source "
        "file. (`train all --data FOLDER` does this by itself when FOLDER has captions.csv/jsonl.)")
    imp.add_argument("folder", help="folder with the audio files")
    imp.add_argument("--captions", default=None, type=_args.existing_file,
                     help="captions table (default: FOLDER/captions.csv or captions.jsonl)")
    imp.add_argument("--out", required=True, metavar="DIR", type=_args.out_folder,
                     help="corpus folder to write")
    imp.add_argument("--sample-rate", type=_args.bounded(int, 1000, 192000, "sample-rate"),
                     default=16000, help="clip sample rate in Hz (1000 to 192000)")
    imp.add_argument("--clip-seconds", type=_args.bounded(float, 0.1, 600, "clip-seconds"),
                     default=5.0, help="clip length in seconds (0.1 to 600)")
    imp.add_argument("--seed", type=_args.seed, default=0, help="seed of the split assignment")
    imp.add_argument("--quiet", action="store_true", help="no progress bar")
    imp.set_defaults(func=run_import)


def run_import(args: argparse.Namespace) -> int:
    from ..data.folder import find_captions_table, import_audio_folder

    table = args.captions or find_captions_table(args.folder)
    out = import_audio_folder(args.folder, table, args.out, args.sample_rate, args.clip_seconds,
                              args.seed, progress=not args.quiet)
    print(f"imported {args.folder} into corpus {out}")
    return 0


def run_build(args: argparse.Namespace) -> int:
    from ..data.build import build_corpus
    from ..data.presets import get_preset

    if args.renderer == "builtin" and args.soundfont:
        raise UserError("--soundfont and --renderer builtin contradict each other; drop one")
    config = get_preset(args.preset)
    started = time.perf_counter()
    record = build_corpus(args.out, config, seed=args.seed, soundfont=args.soundfont,
                          renderer=args.renderer, workers=args.workers, progress=not args.quiet)
    elapsed = time.perf_counter() - started
    splits = ", ".join(f"{k} {v}" for k, v in record["split_clips"].items())
    print(f"corpus {config.preset}: {record['clips']} clips from {record['works']} works "
          f"({splits}) in {args.out}; renderer: {record['renderer']}; {elapsed:.1f} s")
    for item in record["rejected_clips"][:10]:
        print(f"  rejected {item['clip_id']}: {item['reason']}")
    if len(record["rejected_clips"]) > 10:
        print(f"  … {len(record['rejected_clips']) - 10} more rejected clips listed in corpus.json")
    if record["skipped_works"]:
        reasons = Counter(s.split(": ", 1)[-1].split(" (")[0][:60] for s in record["skipped_works"])
        print(f"  skipped {len(record['skipped_works'])} works: "
              + "; ".join(f"{n}× {r}" for r, n in reasons.most_common(3)))
    return 0
