"""``melody-lab demo``: the local web page (text → music, audio prompt, continue, inpaint)."""
from __future__ import annotations

import argparse


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must lie in [0, 65535], got {port}")
    return port


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo", help="local web demo on 127.0.0.1 (needs the 'demo' extra: pip install -e '.[demo]')",
        description="Serve a web page on http://127.0.0.1:PORT for text → music, audio prompting, "
        "continuation and inpainting of an uploaded file. Local only: no share link, no analytics, "
        "nothing loaded from the internet. Needs Gradio: pip install -e '.[demo]'.")
    p.add_argument("--bundle", default="tiny",
                   help="model bundle folder, or 'tiny' for the one shipped in the package (default)")
    p.add_argument("--port", type=_port, default=7860, help="port on 127.0.0.1 (default 7860; 0: any free port)")
    p.set_defaults(func=_demo)


def _demo(args) -> int:
    from ..demo import DemoSession, _gradio, serve

    _gradio()  # a missing extra fails before the model is loaded
    serve(DemoSession(args.bundle), port=args.port)
    return 0
