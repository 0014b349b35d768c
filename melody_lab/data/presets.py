"""Corpus presets: how many clips of which groups, at what sample rate and clip length.

``micro`` is for unit tests (a few dozen 2 s clips, seconds to build); ``tiny`` is the corpus the
CPU models train on (about 3,600 clips of 5 s at 16 kHz from about 3,000 distinct works); ``paper``
is the paper's operating point (24 kHz, 10-s clips: 2,500 latent frames at the paper codec's hop
96), with tiny's work groups and targets; ``paper_micro`` is its twin for tests (24 kHz, 2-s clips:
500 latent frames, 50 tokens; two dozen clips).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..config import Config
from ..errors import UserError

ALL_GROUPS = ("reel", "jig", "hornpipe", "slip_jig", "strathspey", "march", "air", "folk_german",
              "folk_chinese", "folk_west_european", "ballad", "childrens_song", "chorale")


@dataclass
class CorpusConfig(Config):
    """Everything that determines a corpus's content (together with the seed and the renderer).

    ``group_clips``: target clip count per work group (see ``melody_lab.data.sources``); each group
    takes as many distinct works as it can (one clip per work) and only re-uses works, up to
    ``max_clips_per_work``, when the group has fewer works than its target.
    """

    preset: str = "tiny"
    sample_rate: int = 16000
    clip_seconds: float = 5.0
    render_rate: int = 32000  # synthesis rate before resampling to sample_rate (less aliasing)
    group_clips: dict[str, int] = field(default_factory=lambda: {g: 280 for g in ALL_GROUPS})
    max_clips_per_work: int = 4
    valid_fraction: float = 0.05
    test_fraction: float = 0.05
    captions_per_clip: int = 4  # the first is `caption`, all are in `captions`
    # each *train* work is rendered this many more times, each copy transposed by a random
    # −5 … +6 semitones (key, tonic and captions follow; instrument, tempo and clip windows are the
    # original's), clip ids ``<work>_t<k>_c<i>``; valid and test are untouched
    transposed_copies: int = 0
    target_rms_db: float = -20.0
    max_peak: float = 0.9

    @property
    def clip_samples(self) -> int:
        return int(round(self.sample_rate * self.clip_seconds))


PRESETS = {
    "micro": CorpusConfig(preset="micro", clip_seconds=2.0, max_clips_per_work=1,
                          group_clips={g: 4 for g in ("reel", "jig", "hornpipe", "air", "folk_german",
                                                      "folk_chinese", "ballad", "chorale")},
                          captions_per_clip=2),
    "tiny": CorpusConfig(preset="tiny"),
    # tiny plus one transposed copy of every train work: the keys the semantic LM learns from
    # spread over all twelve tonics (tiny itself is 32 % G major, 22 % D major); the tiny clips
    # are byte-identical to tiny's (the same seed draws the same works, splits and renders)
    "tiny_keys": CorpusConfig(preset="tiny_keys", transposed_copies=1),
    # The paper's sample rate and training-clip length; synthesised at 48 kHz, twice the output
    # rate as for tiny. Works shorter than 10 s are skipped (more of them than at 5 s).
    "paper": CorpusConfig(preset="paper", sample_rate=24000, clip_seconds=10.0, render_rate=48000),
    # The paper's rate at micro's size (train all --preset paper_micro in the tests).
    "paper_micro": CorpusConfig(preset="paper_micro", sample_rate=24000, clip_seconds=2.0,
                                render_rate=48000, max_clips_per_work=1, captions_per_clip=2,
                                group_clips={g: 3 for g in ("reel", "jig", "hornpipe", "air",
                                                            "folk_german", "folk_chinese",
                                                            "ballad", "chorale")}),
    # Clips for the *evaluation* CLAP (melody_lab.metrics "evalclap-tiny"): works disjoint from the
    # tiny corpus at the same seed (see EXCLUDE_WORKS_OF), so the metric never scores generators
    # on what they were trained on. childrens_song, march, slip_jig and strathspey have no works
    # left after tiny and are absent.
    "evalclap": CorpusConfig(preset="evalclap", max_clips_per_work=1, test_fraction=0.1,
                             group_clips={**{g: 140 for g in ("air", "ballad", "folk_chinese",
                                                                "folk_german", "folk_west_european",
                                                                "hornpipe", "jig", "reel")},
                                          "chorale": 120}),
}

#: preset → the preset whose works (chosen at the same seed) it must not use
EXCLUDE_WORKS_OF = {"evalclap": "tiny"}


def get_preset(name: str) -> CorpusConfig:
    if name not in PRESETS:
        raise UserError(f"unknown corpus preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]
