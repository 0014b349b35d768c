"""Add ``MODEL_CARD.md`` to the shipped ``tiny`` bundle without touching any other byte of it.

    PYTHONPATH=. python scripts/write_tiny_model_card.py

Writes the card with :func:`melody_lab.io.model_card` (components and settings from the bundle
itself, recipe and evaluation from docs/tiny_model.md) and re-writes the manifest through
:func:`melody_lab.io.write_manifest`; every weight and config file keeps its SHA-256 (checked).
"""
from __future__ import annotations

import json

from melody_lab.io import MANIFEST, MODEL_CARD, SHIPPED_BUNDLES, model_card, read_json, write_manifest
from melody_lab.pipeline import MeLoDy

RECIPE = "docs/tiny_model.md, 'The shipped tiny model: how it was trained' (seed 0 everywhere)"


def _scores(fad_features: float, fad_evalclap: float, clap: float, mcc: float, attributes: float) -> dict:
    """One bundle's row of the one-row evaluation grid (docs/tiny_model.md), as the card names it."""
    return {"FAD (features embedder)": fad_features, "FAD (evalclap embedder)": fad_evalclap,
            "CLAP (evalclap)": clap, "MCC": mcc, "attribute accuracy (zero-shot evalclap)": attributes}


INFO = {
    "data": ("the `tiny` corpus preset, `melody-lab data build --preset tiny --out data/tiny "
             "--seed 0`: 3,619 clips of 5 s at 16 kHz (3,256 train / 178 valid / 185 test) of "
             "music21 works (O'Neill Irish tunes, Essen folk songs, Bach chorales, ...) rendered "
             "with the FluidR3 General-MIDI soundfont"),
    "training": {
        "version": ("4 (issues 13/14): version 3 with the denoiser fine-tuned 4,500 more steps (a full "
                    "warm-up + decay schedule); version 3 fine-tuned the codec's decoder (encoder frozen: "
                    "the same latents and tokens); version 2 retrained MuLan, RVQ and LM; tokenizer of "
                    "version 1"),
        "tokenizer": {"command": "version 1's (melody-lab train tokenizer --preset tiny)", "wall": "1.7 min"},
        "mulan": {"command": "melody-lab train mulan --preset tiny --max-steps 2000 --max-minutes 30 "
                  "(mel + chroma + onset inputs, tempogram, 4 counterfactual hard negatives)",
                  "steps": 2000, "wall": "14 min set-up + 27.8 min (+ RVQ fit)",
                  "validation": "counterfactual accuracy 0.85, text->audio r@1 0.28"},
        "lm": {"command": "melody-lab train lm --preset tiny --max-steps 3000 --max-minutes 55 "
               "(cond_dropout 0.1), stopped by hand at step 1,920; newest checkpoint 1,750",
               "wall": "4 min cache + 50.5 min", "validation": "perplexity 3.80 (best 3.69 at 1,250; unigram 211)"},
        "codec": {"command": "version 1's: melody-lab train codec --codec vaegan --preset tiny, then "
                  "decoder-only fine-tuning --init-from ... --freeze-encoder --gan-start-step 0; version 3: "
                  "melody-lab train codec --codec vaegan --preset tiny --init-from tiny --freeze-encoder "
                  "--gan-start-step 0 --steps 2000 --max-minutes 65 (a fresh discriminator)",
                  "steps": "2,478 + 750 + 1,527 (decoder)", "wall": "about 2 h + 35 min + 65 min",
                  "test": "log-mel L1 0.90 -> 0.84 (version 1) -> 0.80 (version 3), 64 test clips"},
        "denoiser": {"command": "version 1's: melody-lab train denoiser --codec runs/codec_vaegan_tiny "
                     "--tokenizer runs/tokenizer_tiny --crop-seconds 2 --steps 20000 --max-minutes 125 "
                     "(GRU fine path), stopped by hand after step 8,000; version 4: melody-lab train "
                     "denoiser --codec tiny --tokenizer tiny --init-from tiny (version 3's) --crop-seconds 2 "
                     "--steps 4500 --max-minutes 58",
                     "steps": "8,000 + 4,500",
                     "wall": "30 min latent cache + 73 min; version 4: 47 min (latent cache reused)",
                     "validation": "velocity MSE 0.0615 -> 0.0573, SI-SNRi 14.6 -> 15.0 dB (valid latents, EMA)"},
        "sampling": "10 steps, linear, w = 2.5, LM guidance 3, slide by one chunk (the paper's continuation)",
        "recipe": RECIPE,
        "machine": "2-core AMD EPYC VM shared with other jobs, OMP_NUM_THREADS=1, no GPU",
    },
    "evaluation": {
        "command": "melody-lab ablate GRID --corpus data/tiny (one row: the bundle's defaults; docs/tiny_model.md)",
        "n": "64 generated 5-s clips (64 test captions) vs 185 real test clips; 95 % bootstrap",
        "this bundle (version 4)": _scores(128, 0.52, 0.34, 0.25, 0.30),
        "version 3, same evaluation": _scores(134, 0.56, 0.33, 0.23, 0.30),
        "version 2, same evaluation": _scores(143, 0.63, 0.29, 0.21, 0.23),
        "version 1, same evaluation": _scores(144, 0.58, 0.29, 0.20, 0.22),
        "real test clips, attribute accuracy": 0.48,
        "prompt adherence": "docs/tiny_model.md, 'Where the prompt is lost (stage diagnostic)'",
    },
    "limits": ("Trained for about 9 h of CPU time in all (four versions) on synthesised (General-MIDI soundfont) folk "
               "tunes, hymns and songs: it knows those instruments and forms, nothing else. The "
               "codec is the ceiling on audio quality (hiss between harmonics, weak low "
               "fundamentals); melody is the least reliable attribute; 16 kHz mono; no vocals. "
               "See docs/tiny_model.md, 'Known limits'."),
}


def main() -> None:
    folder = SHIPPED_BUNDLES / "tiny"
    before = read_json(folder / MANIFEST)["files"]
    model = MeLoDy.from_pretrained(folder)  # verifies the bundle first
    parts = {p: getattr(model, p) for p in ("codec", "denoiser", "mulan", "rvq", "tokenizer", "lm")}
    meta = read_json(folder / "melody.json")
    (folder / MODEL_CARD).write_text(model_card(parts, meta, INFO), encoding="utf-8")
    write_manifest(folder)
    after = read_json(folder / MANIFEST)["files"]
    changed = [name for name in before if name != MODEL_CARD and after.get(name) != before[name]]
    assert not changed, f"files changed: {changed}"
    print(json.dumps({"added": MODEL_CARD, "sha256": after[MODEL_CARD]}))


if __name__ == "__main__":
    main()
