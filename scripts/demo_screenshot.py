"""Screenshot of ``melody-lab demo`` after one generation → docs/img/demo.png (headless Chromium).

    apt-get update && apt-get install -y chromium          # Debian's browser (as root)
    npm install --prefix /tmp/shot playwright-core          # the driver; it downloads no browser
    NODE_PATH=/tmp/shot/node_modules OMP_NUM_THREADS=1 python scripts/demo_screenshot.py

Starts the demo on a free 127.0.0.1 port with the shipped tiny bundle, lets
``scripts/demo_screenshot.cjs`` press Generate with the page's defaults and capture the page; it
fails if the page asks anything of a host other than 127.0.0.1.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "demo.png")
    parser.add_argument("--bundle", default="tiny")
    args = parser.parse_args()
    from melody_lab.commands.demo import DemoSession, serve

    app, url = serve(DemoSession(args.bundle), port=0, block=False)
    try:
        done = subprocess.run(["node", str(ROOT / "scripts" / "demo_screenshot.cjs"), url, str(args.out)])
    finally:
        app.close()
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
