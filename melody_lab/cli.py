"""``melody-lab``: the command-line entry point.

Each command lives in its own module under ``melody_lab/commands/`` and defines
``register(subparsers)``; this file only discovers them, parses, and turns expected errors into
a one-line message with a non-zero exit code (never a traceback for bad input).
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from . import __version__, commands
from .commands._args import expected_errors

EXIT_USER_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="melody-lab",
        description="MeLoDy (LM-guided dual-path diffusion for music) as a hands-on lab: build the "
        "corpus, train each stage, generate music, run ablations.",
    )
    parser.add_argument("--version", action="version", version=f"melody-lab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):  # helpers such as _args (argument types), not commands
            continue
        importlib.import_module(f"{commands.__name__}.{info.name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # a path from a non-UTF-8 argv holds lone
        if hasattr(stream, "reconfigure"):   # surrogates: print them escaped, never crash
            stream.reconfigure(errors="backslashreplace")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help (0) or a bad value (2: argparse printed the line)
        return exit_.code if isinstance(exit_.code, int) else EXIT_USER_ERROR
    try:
        if hasattr(args, "threads"):  # commands that run models: the thread policy, applied once
            from .threads import apply_threads, choose_threads

            args.thread_choice = apply_threads(choose_threads(args.threads))
        result = args.func(args)
    except expected_errors() as err:
        message = str(err) or type(err).__name__
        print(f"melody-lab: error: {message}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("melody-lab: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
