"""Cheap enumeration of the source works in music21's bundled corpus (no music21 parsing here).

A :class:`Work` is one piece (one ABC tune or one Bach chorale) with the attributes that are known
from its collection and headers alone: genre, origin, title. Parsing into notes happens later, per
work, in :mod:`melody_lab.data.scores`. Enumerating all ~6000 candidate works takes well under a
second because ABC files are only split at their ``X:`` lines and their header lines read with
regular expressions.

Groups (``Work.group``) are the units the presets balance: e.g. ``reel``, ``folk_chinese``,
``chorale``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

ESSEN_FILES = {
    # file stem prefix: (genre, origin, group); ``None`` origin → read from the ``O:`` header
    "altdeu": ("folk song", "German", "folk_german"),
    "boehme": ("folk song", "German", "folk_german"),
    "dva": ("folk song", "German", "folk_german"),
    "erk": ("folk song", "German", "folk_german"),
    "fink": ("folk song", "German", "folk_german"),
    "zuccal": ("folk song", "German", "folk_german"),
    "han": ("folk song", "Chinese", "folk_chinese"),
    "lux": ("folk song", "Luxembourgish", "folk_west_european"),
    "lot": ("folk song", "Lorrainian", "folk_west_european"),
    "irl": ("folk song", "Irish", "folk_west_european"),
    "ballad": ("ballad", None, "ballad"),
    "kinder": ("children's song", "German", "childrens_song"),
}
ESSEN_REGIONS = {"Mitteleuropa": "Central European", "Osteuropa": "Eastern European",
                 "Suedosteuropa": "Southeast European"}

DANCE_RHYTHMS = {  # normalised ``R:`` header → genre
    "reel": "reel", "jig": "jig", "double jig": "jig", "hornpipe": "hornpipe",
    "slip jig": "slip jig", "slipjig": "slip jig", "strathspey": "strathspey",
    "highland fling": "highland fling", "fling": "highland fling", "air": "air",
    "march": "march", "clog": "clog",
}
GENRE_GROUP = {"reel": "reel", "jig": "jig", "hornpipe": "hornpipe", "slip jig": "slip_jig",
               "strathspey": "strathspey", "highland fling": "strathspey", "air": "air",
               "march": "march", "clog": "hornpipe"}
AIRDS_TITLE_GENRES = [  # (title regex, genre) for Aird's airs, which have no ``R:`` headers
    (r"quick ?step|march", "march"), (r"strathspey", "strathspey"), (r"hornpipe", "hornpipe"),
    (r"\breel\b", "reel"), (r"\bjig\b", "jig"),
]


@dataclass(frozen=True)
class Work:
    """One source piece. ``locator`` is an ABC tune's text or a chorale's corpus path."""

    work_id: str
    collection: str
    title: str
    genre: str
    origin: str
    group: str
    kind: str  # "abc" or "score"
    locator: str
    key_header: str = ""


def corpus_root() -> Path:
    """Folder of music21's bundled corpus."""
    import music21

    return Path(music21.__path__[0]) / "corpus"


def _header(text: str, field: str) -> str:
    match = re.search(rf"(?m)^{field}:\s*(.*)$", text)
    return match.group(1).strip() if match else ""


def split_abc(path: Path) -> list[tuple[str, str]]:
    """An ABC file → ``[(reference number, tune text), …]`` (split at ``X:`` lines)."""
    text = path.read_text(encoding="latin-1")
    tunes = re.split(r"(?m)^(?=X:)", text)[1:]
    return [(_header(t, "X").split()[0] if _header(t, "X") else str(i), t) for i, t in enumerate(tunes)]


def _clean_id(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")


def _dance_genre(rhythm: str) -> str | None:
    rhythm = re.sub(r"\s+", " ", rhythm.lower()).strip(" .")
    return DANCE_RHYTHMS.get(rhythm)


def _title(text: str) -> str:
    return _header(text, "T").strip(" .") or "untitled"


def _oneills(root: Path) -> list[Work]:
    works = []
    for path in sorted((root / "oneills1850").glob("*.abc")):
        for ref, text in split_abc(path):
            genre = _dance_genre(_header(text, "R"))
            if genre in GENRE_GROUP:
                works.append(Work(f"oneills_{_clean_id(path.stem)}_{_clean_id(ref)}", "O'Neill's Music of Ireland (1850 tunes)",
                                  _title(text), genre, "Scottish" if genre in ("strathspey", "highland fling") else "Irish",
                                  GENRE_GROUP[genre], "abc", text, _header(text, "K")))
    return works


def _ryans(root: Path) -> list[Work]:
    works = []
    for path in sorted((root / "ryansMammoth").glob("*.abc")):
        for ref, text in split_abc(path):
            genre = _dance_genre(_header(text, "R"))
            if genre in GENRE_GROUP:
                origin = "Scottish" if genre in ("strathspey", "highland fling") else "Celtic"
                title = re.sub(r"\s*--.*$", "", _title(text))
                works.append(Work(f"ryans_{_clean_id(path.stem)}_{_clean_id(ref)}", "Ryan's Mammoth Collection",
                                  title, genre, origin, GENRE_GROUP[genre], "abc", text, _header(text, "K")))
    return works


def _airds(root: Path) -> list[Work]:
    works = []
    for path in sorted((root / "airdsAirs").glob("*.abc")):
        for ref, text in split_abc(path):
            title = _title(text)
            genre = _dance_genre(_header(text, "R")) or next(
                (g for pattern, g in AIRDS_TITLE_GENRES if re.search(pattern, title, re.I)), "air")
            if genre in GENRE_GROUP:
                works.append(Work(f"airds_{_clean_id(path.stem)}_{_clean_id(ref)}", "Aird's Selection of Airs",
                                  title, genre, "Scottish", GENRE_GROUP[genre], "abc", text, _header(text, "K")))
    return works


def _essen(root: Path) -> list[Work]:
    works = []
    for path in sorted((root / "essenFolksong").glob("*.abc")):
        prefix = re.sub(r"\d+$", "", path.stem)
        if prefix not in ESSEN_FILES:
            continue  # test files and small mixed collections
        genre, origin, group = ESSEN_FILES[prefix]
        for ref, text in split_abc(path):
            tune_origin = origin or ESSEN_REGIONS.get(_header(text, "O").split(",")[0].strip())
            if tune_origin is None:
                continue
            works.append(Work(f"essen_{path.stem}_{_clean_id(ref)}", "Essen Folksong Collection",
                              _title(text), genre, tune_origin, group, "abc", text, _header(text, "K")))
    return works


def _chorales(root: Path) -> list[Work]:
    works = []
    for path in sorted((root / "bach").iterdir()):
        if path.suffix in (".mxl", ".xml", ".krn") and path.stem.startswith("bwv"):
            works.append(Work(f"bach_{_clean_id(path.stem)}", "J. S. Bach, 371 chorales",
                              path.stem.replace("bwv", "BWV "), "chorale", "German", "chorale",
                              "score", str(path.relative_to(root))))
    return works


@lru_cache(maxsize=1)
def all_works() -> tuple[Work, ...]:
    """Every usable work, sorted by ``work_id`` (unique)."""
    root = corpus_root()
    works = _oneills(root) + _ryans(root) + _airds(root) + _essen(root) + _chorales(root)
    unique = {w.work_id: w for w in works}
    return tuple(sorted(unique.values(), key=lambda w: w.work_id))


def works_by_group() -> dict[str, list[Work]]:
    groups: dict[str, list[Work]] = {}
    for work in all_works():
        groups.setdefault(work.group, []).append(work)
    return groups


SOURCE_NOTE = {
    "music21 corpus": "scores bundled with the music21 package (BSD/LGPL package; see each collection)",
    "O'Neill's Music of Ireland (1850)": "public domain tunes; ABC transcription by Norbert Paap",
    "Ryan's Mammoth Collection (1883)": "public domain tunes; ABC transcriptions contributed to the abc community",
    "Aird's Selection of Airs (1778-)": "public domain tunes; ABC transcription by Jack Campin",
    "Essen Folksong Collection": "NON-COMMERCIAL use only (permission of Ewa Dahlig-Turek for music21)",
    "Bach chorales": "public domain compositions; encodings distributed with music21",
}
