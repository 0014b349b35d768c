"""Natural-language captions made only from a clip's true attributes.

Each caption picks a random subset of the attributes (genre, origin, instrument(s), key, meter,
tempo word and/or bpm), random synonyms for each, and one of several sentence frames, so a text
encoder has to learn what the words mean rather than one template. ``SURFACE_FORMS`` lists every
phrase a caption can use for each attribute value; the tests use it to check that a caption never
names a value the clip does not have.
"""
from __future__ import annotations

import re

import numpy as np

GENRE_FORMS = {
    "reel": ["reel"], "jig": ["jig", "double jig"], "slip jig": ["slip jig"],
    "hornpipe": ["hornpipe"], "clog": ["clog dance", "clog"], "strathspey": ["strathspey"],
    "highland fling": ["highland fling", "fling"], "march": ["march", "quickstep"],
    "air": ["air"], "folk song": ["folk song", "folk melody", "traditional song"],
    "ballad": ["ballad", "folk ballad"], "children's song": ["children's song", "nursery song"],
    "chorale": ["chorale", "four-part chorale", "hymn setting"],
}
DANCE_GENRES = {"reel", "jig", "slip jig", "hornpipe", "clog", "strathspey", "highland fling"}
ORIGIN_FORMS = {
    "Irish": ["Irish"], "Scottish": ["Scottish", "Scots"], "Celtic": ["Celtic"],
    "German": ["German"], "Chinese": ["Chinese"], "Luxembourgish": ["Luxembourgish"],
    "Lorrainian": ["Lorrainian"], "Central European": ["Central European"],
    "Eastern European": ["Eastern European"], "Southeast European": ["Southeast European"],
}
TEMPO_FORMS = {
    "slow": ["slow", "unhurried", "leisurely"], "moderate": ["moderate", "medium-tempo", "steady"],
    "lively": ["lively", "brisk", "bouncy"], "fast": ["fast", "quick", "rapid"],
}
MODE_FORMS = {"major": ["major"], "minor": ["minor"], "dorian": ["Dorian"],
              "mixolydian": ["Mixolydian"], "lydian": ["Lydian"], "phrygian": ["Phrygian"],
              "locrian": ["Locrian"]}
INSTRUMENT_FORMS = {
    "piano": ["piano"], "harpsichord": ["harpsichord"], "glockenspiel": ["glockenspiel"],
    "music box": ["music box"], "marimba": ["marimba"], "xylophone": ["xylophone"],
    "dulcimer": ["dulcimer"], "pipe organ": ["pipe organ", "church organ"],
    "accordion": ["accordion"], "harmonica": ["harmonica"],
    "acoustic guitar": ["acoustic guitar", "guitar"], "violin": ["violin"], "viola": ["viola"],
    "cello": ["cello"], "harp": ["harp"], "string ensemble": ["string ensemble", "string orchestra"],
    "choir": ["choir", "chorus"], "trumpet": ["trumpet"], "trombone": ["trombone"],
    "tuba": ["tuba"], "French horn": ["French horn"], "brass section": ["brass section", "brass band"],
    "oboe": ["oboe"], "bassoon": ["bassoon"], "clarinet": ["clarinet"], "piccolo": ["piccolo"],
    "flute": ["flute"], "recorder": ["recorder"], "pan flute": ["pan flute", "panpipes"],
    "banjo": ["banjo"], "bagpipe": ["bagpipes", "bagpipe"], "fiddle": ["fiddle"],
}
ENSEMBLE_FORMS = {"string quartet": ["string quartet"], "brass quartet": ["brass quartet"],
                  "woodwind quartet": ["woodwind quartet"]}
SURFACE_FORMS = {"genre": GENRE_FORMS, "origin": ORIGIN_FORMS, "tempo_word": TEMPO_FORMS,
                 "mode": MODE_FORMS, "instrument": INSTRUMENT_FORMS, "ensemble": ENSEMBLE_FORMS}
GENERIC_NOUNS = ["tune", "melody", "piece"]

FRAMES = [
    "{np} {played}{extras}.",
    "{Np}, {played}{extras}.",
    "{Inst} playing {np}{extras}.",
    "Solo {inst_bare}: {np}{extras}.",
    "Music for {inst_bare}: {np}{extras}.",
    "This is {np}{extras}, {played}.",
    "A recording of {np} {played}{extras}.",
    "{keywords}",
]


def _pick(rng: np.random.Generator, options: list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _article(phrase: str) -> str:
    return ("an " if phrase[:1].lower() in "aeiou" else "a ") + phrase


def _instrument_phrase(attributes: dict, rng: np.random.Generator) -> tuple[str, str]:
    """→ (phrase with article/determiner, bare phrase) for the instrument(s)."""
    names = [_pick(rng, INSTRUMENT_FORMS[i["name"]]) for i in attributes["instruments"]]
    ensemble = attributes.get("ensemble")
    if ensemble in ENSEMBLE_FORMS:
        bare = _pick(rng, ENSEMBLE_FORMS[ensemble])
        if rng.random() < 0.5:
            bare = f"{bare} ({', '.join(names[:-1])} and {names[-1]})" if len(names) > 1 else bare
        return _article(bare), bare
    bare = " and ".join(names)
    if len(attributes["instruments"]) == 1 and attributes.get("voices", 1) > 1 and rng.random() < 0.5:
        return f"{_article(bare)} in {attributes['voices']} voices", bare
    if len(names) > 1:
        return bare, bare
    determiner = _pick(rng, ["the", "a", "solo"])
    return (_article(bare) if determiner == "a" else f"{determiner} {bare}"), bare


def make_caption(attributes: dict, rng: np.random.Generator) -> str:
    """One caption sentence for ``attributes`` (see :func:`attribute_record`); only true facts."""
    use = {name: rng.random() < p for name, p in
           (("genre", 0.85), ("origin", 0.5), ("instrument", 0.85), ("key", 0.35),
            ("meter", 0.3), ("tempo_word", 0.55), ("bpm", 0.3))}
    use = {k: v and attributes.get({"instrument": "instruments", "bpm": "tempo_bpm"}.get(k, k)) is not None
           for k, v in use.items()}
    if not (use["genre"] or use["instrument"]):
        use["genre" if rng.random() < 0.5 else "instrument"] = True

    genre = attributes["genre"]
    noun = _pick(rng, GENRE_FORMS[genre]) if use["genre"] else _pick(rng, GENERIC_NOUNS)
    adjectives = []
    if use["tempo_word"]:
        adjectives.append(_pick(rng, TEMPO_FORMS[attributes["tempo_word"]]))
    if use["origin"]:
        adjectives.append(_pick(rng, ORIGIN_FORMS[attributes["origin"]]))
    if use["genre"] and genre in DANCE_GENRES and rng.random() < 0.3:
        noun = f"{noun} dance tune" if rng.random() < 0.5 else f"{noun} for dancing"
    np_phrase = _article(" ".join(adjectives + [noun]))

    extras_parts = []
    if use["key"]:
        key = f"{attributes['tonic']} {_pick(rng, MODE_FORMS[attributes['mode']])}"
        extras_parts.append(_pick(rng, [f" in {key}", f" in the key of {key}", f" in {key} key"]))
    if use["meter"]:
        extras_parts.append(_pick(rng, [f" in {attributes['meter']} time", f" in {attributes['meter']}",
                                        f" with a {attributes['meter']} meter"]))
    if use["bpm"]:
        bpm = attributes["tempo_bpm"]
        extras_parts.append(_pick(rng, [f" at {bpm} bpm", f" at about {bpm} beats per minute",
                                        f", tempo {bpm} bpm"]))
    order = rng.permutation(len(extras_parts))
    extras = "".join(extras_parts[i] for i in order)

    if use["instrument"]:
        inst, inst_bare = _instrument_phrase(attributes, rng)
        verb = _pick(rng, ["played on", "performed on", "played by", "on"])
        played = f"{verb} {inst}" if not inst.startswith("solo ") or verb == "on" else f"played on {inst}"
        solo = len(attributes["instruments"]) == 1 and attributes.get("voices", 1) == 1
        frames = FRAMES if solo else [f for f in FRAMES if not f.startswith("Solo")]
    else:
        inst = inst_bare = played = ""
        frames = ["{Np}{extras}.", "{keywords}", "This is {np}{extras}.", "Listen to {np}{extras}."]
    keywords = [w for w in (noun if use["genre"] else "", *adjectives, inst_bare,
                            extras.replace(",", "").strip()) if w]
    frame = _pick(rng, frames)
    text = frame.format(np=np_phrase, Np=np_phrase[:1].upper() + np_phrase[1:], played=played,
                        extras=extras, Inst=inst[:1].upper() + inst[1:], inst_bare=inst_bare,
                        keywords=", ".join(keywords))
    text = " ".join(text.split()).replace(" ,", ",")
    return text[:1].upper() + text[1:]


def make_captions(attributes: dict, rng: np.random.Generator, count: int) -> list[str]:
    """``count`` captions, as distinct as the draws allow (the first is the main caption)."""
    captions: list[str] = []
    for _ in range(count * 4):
        caption = make_caption(attributes, rng)
        if caption not in captions:
            captions.append(caption)
        if len(captions) == count:
            break
    return captions


# -- counterfactual captions (contrastive hard negatives) -----------------------------------------
TONICS = ["C", "C#", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]
_KEY_RE = re.compile(r"\b([A-G][#b]?) (major|minor|Dorian|Mixolydian|Lydian|Phrygian|Locrian)\b")
_BPM_RE = re.compile(r"\b(\d{2,3})( bpm| beats per minute)")
# the swappable vocabularies: attribute → {value: surface forms}
_SWAPS = {"tempo_word": TEMPO_FORMS, "instrument": INSTRUMENT_FORMS, "genre": GENRE_FORMS}
_OPPOSITE_TEMPO = {"slow": ["lively", "fast"], "moderate": ["slow", "fast"],
                   "lively": ["slow"], "fast": ["slow"]}


def _find_form(caption: str, forms: dict[str, list[str]]) -> tuple[str, re.Match] | None:
    """The first (longest) surface form of ``forms`` in ``caption`` → (its value, the match)."""
    best = None
    for value, phrases in forms.items():
        for phrase in phrases:
            m = re.search(rf"(?<![\w-]){re.escape(phrase)}(?![\w-])", caption, flags=re.IGNORECASE)
            if m and (best is None or len(m.group(0)) > len(best[1].group(0))):
                best = (value, m)
    return best


def _splice(caption: str, m: re.Match, new: str) -> str:
    if m.start() == 0:
        new = new[:1].upper() + new[1:]
    return caption[: m.start()] + new + caption[m.end():]


def counterfactual_captions(caption: str, rng: np.random.Generator, count: int) -> list[str]:
    """Up to ``count`` captions that each change ONE attribute ``caption`` names to a false value.

    Found in the text itself: the key (``"D minor"`` → another tonic/mode), the bpm (scaled by
    0.6 or 1.6), the tempo word (to an opposite tempo: slow ↔ lively/fast), the instrument and the
    genre (to another one of the vocabulary). Used as extra negatives for the audio → text
    direction of MuLan's contrastive loss, so that the towers must tell apart captions that
    differ in a single word. Empty when the caption names none of these.
    """
    makers = []
    key = _KEY_RE.search(caption)
    if key:
        def new_key(m=key):
            while True:
                tonic = TONICS[int(rng.integers(len(TONICS)))]
                mode = ["major", "minor"][int(rng.integers(2))]
                if (tonic, mode) != (m.group(1), m.group(2)):
                    return _splice(caption, m, f"{tonic} {mode}")
        makers.append(new_key)
    bpm = _BPM_RE.search(caption)
    if bpm:
        def new_bpm(m=bpm):
            factor = 0.6 if rng.random() < 0.5 else 1.6
            return caption[: m.start(1)] + str(round(int(m.group(1)) * factor)) + caption[m.end(1):]
        makers.append(new_bpm)
    for attribute, forms in _SWAPS.items():
        found = _find_form(caption, forms)
        if not found:
            continue
        value, m = found
        if attribute == "tempo_word":
            choices = _OPPOSITE_TEMPO[value]
        else:
            choices = [v for v in forms if v != value]

        def swap(m=m, forms=forms, choices=choices):
            other = choices[int(rng.integers(len(choices)))]
            return _splice(caption, m, _pick(rng, forms[other]))
        makers.append(swap)
    out: list[str] = []
    for _ in range(4 * count):
        if not makers or len(out) == count:
            break
        text = makers[int(rng.integers(len(makers)))]()
        if text != caption and text not in out:
            out.append(text)
    return out
