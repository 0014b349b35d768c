"""Shared fixtures. ``micro_corpus``: the ``micro`` corpus preset built once per test session.

It uses the soundfont renderer when a General-MIDI soundfont is installed and the built-in
synthesiser otherwise (about 5 s either way on one core).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def micro_corpus(tmp_path_factory) -> Path:
    """Folder of a built ``micro`` corpus (seed 0): audio/, metadata.jsonl, corpus.json."""
    from melody_lab.data.build import build_corpus
    from melody_lab.data.presets import get_preset

    root = tmp_path_factory.mktemp("micro_corpus")
    build_corpus(root, get_preset("micro"), seed=0, progress=False)
    return root
