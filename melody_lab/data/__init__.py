"""The captioned music corpus: build it from music21 scores, read it back.

Build: ``melody-lab data build --preset tiny --out DIR`` (or :func:`build_corpus`).
Read: :func:`load_metadata` (list of row dicts) and :class:`ClipDataset` (torch dataset).
See docs/corpus.md for sources, licences, presets and the attribute schema.
"""
from .dataset import ATTRIBUTE_KEYS, ClipDataset, load_corpus_info, load_metadata
from .presets import CorpusConfig, get_preset

__all__ = ["ATTRIBUTE_KEYS", "ClipDataset", "CorpusConfig", "build_corpus", "get_preset",
           "load_corpus_info", "load_metadata"]


def build_corpus(*args, **kwargs):
    """See :func:`melody_lab.data.build.build_corpus` (imported lazily: it pulls in music21)."""
    from .build import build_corpus as _build

    return _build(*args, **kwargs)
