"""Captions name only attributes the clip has (hypothesis over attribute combinations)."""
from __future__ import annotations

import re

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from melody_lab.data.arrangement import ENSEMBLES, INSTRUMENTS
from melody_lab.data.captions import SURFACE_FORMS, make_caption, make_captions

METERS = ["2/4", "3/4", "4/4", "6/8", "9/8", "12/8", "2/2", "3/8", "6/4"]
TONICS = ["C", "D", "Eb", "F#", "G", "A", "Bb", "B"]
INSTRUMENT_NAMES = sorted({name for name, _, _ in INSTRUMENTS.values()})


@st.composite
def attributes(draw):
    ensemble = draw(st.sampled_from([None, *sorted(ENSEMBLES)]))
    if ensemble is not None:
        programs = list(dict.fromkeys(ENSEMBLES[ensemble]))
        instruments = [{"program": p, "name": INSTRUMENTS[p][0]} for p in programs]
    else:
        names = draw(st.lists(st.sampled_from(INSTRUMENT_NAMES), min_size=1, max_size=2, unique=True))
        instruments = [{"program": 0, "name": n} for n in names]
    mode = draw(st.sampled_from(sorted(SURFACE_FORMS["mode"])))
    tonic = draw(st.sampled_from(TONICS))
    return {
        "genre": draw(st.sampled_from(sorted(SURFACE_FORMS["genre"]))),
        "origin": draw(st.sampled_from(sorted(SURFACE_FORMS["origin"]))),
        "tonic": tonic, "mode": mode, "key": f"{tonic} {mode}",
        "meter": draw(st.sampled_from([None, *METERS])),
        "tempo_bpm": draw(st.integers(30, 280)),
        "tempo_word": draw(st.sampled_from(sorted(SURFACE_FORMS["tempo_word"]))),
        "instruments": instruments, "ensemble": ensemble,
        "voices": 4 if ensemble else draw(st.sampled_from([1, 4])),
    }


def _true_forms(attrs) -> list[str]:
    values = {"genre": [attrs["genre"]], "origin": [attrs["origin"]], "tempo_word": [attrs["tempo_word"]],
              "mode": [attrs["mode"]], "instrument": [i["name"] for i in attrs["instruments"]],
              "ensemble": [attrs["ensemble"]] if attrs["ensemble"] else []}
    return [form for kind, vals in values.items() for v in vals for form in SURFACE_FORMS[kind].get(v, [])]


def _mentions(text: str, phrase: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(phrase)}(?![\w-])", text, flags=re.IGNORECASE) is not None


@settings(max_examples=300, deadline=None)
@given(attrs=attributes(), seed=st.integers(0, 2**32 - 1))
def test_captions_mention_only_true_attributes(attrs, seed):
    caption = make_caption(attrs, np.random.default_rng(seed))
    true_forms = _true_forms(attrs)
    for kind, table in SURFACE_FORMS.items():
        for value, forms in table.items():
            for form in forms:
                inside_true = any(_mentions(t, form) for t in true_forms)
                if not inside_true and _mentions(caption, form):
                    raise AssertionError(f"caption {caption!r} names {kind}={value!r} ({form!r}); attrs {attrs}")
    # numbers: only the true meter and the true bpm may appear
    for meter in re.findall(r"\d+/\d+", caption):
        assert meter == attrs["meter"], caption
    stripped = re.sub(r"\d+/\d+", "", caption)
    for number in re.findall(r"\d+", stripped):
        assert int(number) in (attrs["tempo_bpm"], attrs["voices"]), caption
    # tonic letters only appear as part of the true key
    for tonic in re.findall(r"\b([A-G][#b]?) (?:major|minor|dorian|mixolydian|lydian|phrygian|locrian)\b",
                            caption, flags=re.IGNORECASE):
        assert tonic == attrs["tonic"], caption


@settings(max_examples=100, deadline=None)
@given(attrs=attributes(), seed=st.integers(0, 2**32 - 1))
def test_captions_always_say_what_or_who_and_are_sentences(attrs, seed):
    caption = make_caption(attrs, np.random.default_rng(seed))
    assert caption[0].isupper() and "  " not in caption and " ," not in caption
    names = [f for f in _true_forms(attrs) if f in sum(SURFACE_FORMS["instrument"].values(), [])
             + sum(SURFACE_FORMS["ensemble"].values(), []) + sum(SURFACE_FORMS["genre"].values(), [])]
    assert any(_mentions(caption, f) for f in names), caption
    assert not re.search(r"\ba [aeiou]", caption, flags=re.IGNORECASE), caption


def test_captions_are_varied():
    attrs = {"genre": "reel", "origin": "Irish", "tonic": "D", "mode": "major", "key": "D major",
             "meter": "4/4", "tempo_bpm": 112, "tempo_word": "fast", "voices": 1, "ensemble": None,
             "instruments": [{"program": 110, "name": "fiddle"}]}
    rng = np.random.default_rng(0)
    captions = [make_caption(attrs, rng) for _ in range(200)]
    assert len(set(captions)) > 150
    first_words = {c.split()[0] for c in captions}
    assert len(first_words) >= 6
    assert len(make_captions(attrs, np.random.default_rng(1), 4)) == 4
