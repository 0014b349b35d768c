"""Write ``notebooks/07_train_your_own.ipynb`` (no outputs) from the cells below.

    python scripts/make_notebook_07.py

Edit the cells here, not in Jupyter, so the notebook stays reviewable as code.
"""
from __future__ import annotations

from pathlib import Path

import nbformat

md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell

CELLS = [
    md("""# 07 · Train your own MeLoDy, every stage, end to end

**What it teaches.** nanoGPT's lesson for this model family: the whole recipe, small enough to
run on a laptop CPU while you watch it. You build a corpus, train each of MeLoDy's five stages
with the same command-line tool you would use for a real run, read their loss curves from the
runs' `log.jsonl`, see the spectrograms change as training goes on, assemble a bundle and generate
with it.

| stage | what it learns | command |
|---|---|---|
| codec (VAE-GAN) | audio ↔ a continuous latent (notebook 02) | `melody-lab train codec` |
| MuLan + RVQ | text and audio in one embedding space, then 12 discrete codes (notebook 04) | `melody-lab train mulan` |
| semantic tokenizer | k-means over audio features: 25 tokens per second (notebook 04) | `melody-lab train tokenizer` |
| semantic LM | MuLan codes → semantic tokens, the plan (notebook 04) | `melody-lab train lm` |
| dual-path denoiser | tokens + noise → latent, by angle diffusion (notebooks 01, 03) | `melody-lab train denoiser` |

`melody-lab train all` runs the five in order and writes the bundle. Here every stage is run on its
own, so each one can be looked at, and `train all` comes last. It skips what is already trained.

**What to expect.** The model is the **micro** preset (about 240 k parameters in all: a 54 k
denoiser, a 45 k codec, an 86 k LM, a 54 k MuLan) trained for minutes on 32 clips of 2 s. It learns loudness, rhythm and
a rough spectral shape, not a tune. The point is to see every moving part work, and the curves
move. The shipped tiny model (notebook 05) is the same recipe with a 36× larger denoiser, 3,619 clips
and about 5 hours of CPU time.

**Cost.** Full size (the default) about 6 minutes on 2 CPU cores with one thread; CI runs it
with `MELODY_LAB_NOTEBOOK_SIZE=ci` (a few training steps per stage) in about a minute. Nothing is
downloaded: the corpus is rendered from scores inside the `music21` wheel."""),
    code("""%matplotlib inline
import json
import os
import tempfile
import time
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Audio, display

from melody_lab.cli import main as melody_lab
from melody_lab.codecs import load_codec
from melody_lab.data import ClipDataset, load_metadata
from melody_lab.pipeline import MeLoDy
from melody_lab.plotting import plot_spectrogram

SIZE = os.environ.get("MELODY_LAB_NOTEBOOK_SIZE", "full")   # "full" (default) or "ci" (smaller, for tests)
CI = SIZE == "ci"
# optimisation steps per stage: (first pass, total); the second pass resumes the first
STEPS = ({"codec": (10, 20), "mulan": 20, "lm": 20, "denoiser": (10, 20)} if CI
         else {"codec": (300, 1500), "mulan": 150, "lm": 300, "denoiser": (100, 600)})
DURATION = 2.0                      # seconds per generated clip (the micro clips are 2 s)

warnings.filterwarnings("ignore", message="IProgress not found")   # tqdm in a notebook without widgets
plt.rcParams.update({"figure.dpi": 90})
torch.manual_seed(0)
notebook_start = time.perf_counter()


def run(*args):
    \"\"\"Run one `melody-lab` command in this process (the same code as the shell command).\"\"\"
    args = [str(a) for a in args]
    print("$ melody-lab", " ".join(args))
    started = time.perf_counter()
    code = melody_lab(args)
    assert code == 0, f"melody-lab exited with {code}"
    print(f"  … {time.perf_counter() - started:.1f} s")


def show(clips, sample_rate=16000):
    \"\"\"Spectrograms of {label: audio [T]} side by side, then a player for each.\"\"\"
    fig, axes = plt.subplots(1, len(clips), figsize=(15, 2.8), sharey=True)
    for ax, (label, audio) in zip(axes, clips.items()):
        plot_spectrogram(audio, sample_rate, ax=ax, title=label[:40])
    fig.tight_layout()
    plt.show()
    for label, audio in clips.items():
        print(label)
        display(Audio(np.asarray(audio), rate=sample_rate))


print(f"size = {SIZE!r}, steps = {STEPS}")"""),
    md("""## 1 · A corpus

`melody-lab data build --preset micro` renders 32 clips of 2 s at 16 kHz from folk-tune and chorale
scores, each with captions made from its attributes (genre, instrument, tempo, key, mood). With a
General-MIDI soundfont installed (README, corpus section) it sounds like instruments; without
one a small built-in synthesiser is used and the build says so. For your own audio,
`melody-lab data import FOLDER --out DIR` reads a folder with a `captions.csv`."""),
    code("""work = tempfile.TemporaryDirectory(prefix="melody_lab_train_")   # removed when the kernel exits
WORK = Path(work.name)
CORPUS, RUNS = WORK / "corpus", WORK / "runs"
run("data", "build", "--preset", "micro", "--out", CORPUS, "--seed", "0", "--quiet")

rows = load_metadata(CORPUS)
corpus = ClipDataset(CORPUS, "all")
print(f"{len(rows)} clips; splits: { {s: sum(r['split'] == s for r in rows) for s in ('train', 'valid', 'test')} }")
for i in range(3):
    print(f"  {corpus[i]['clip_id']}: {corpus[i]['caption']}")
show({corpus[i]["caption"]: corpus[i]["audio"] for i in range(3)}, corpus.sample_rate)"""),
    md("""## 2 · The codec, in two passes

The codec is a VAE-GAN: an encoder to a continuous latent, a decoder back, trained on
multi-resolution STFT reconstruction, a small KL term, and (from step 3 at micro size) an
adversarial loss from two discriminators. Training stops at `--steps`; running the same command
with a larger `--steps` **resumes** from the newest checkpoint in `--out` (the loop checks the
settings are the same: change `--val-every` between the two and it refuses, naming the change).
So we train a little, listen, and train on."""),
    code("""def log_rows(run_dir):
    \"\"\"The loss rows (not the validation rows) of a run's log.jsonl, as a dict of arrays.\"\"\"
    rows = [json.loads(line) for line in (Path(run_dir) / "log.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "val" not in r]
    return {k: np.array([r[k] for r in rows]) for k in rows[0] if k != "time"}


def reconstruct(run_dir, audio):
    codec = load_codec(run_dir)
    with torch.no_grad():
        return codec.reconstruct(audio[None])[0]


clip = corpus[0]["audio"]
heard = {"original": clip}
for steps in STEPS["codec"]:
    run("train", "codec", "--preset", "micro", "--data", CORPUS, "--out", RUNS / "codec",
        "--steps", steps, "--val-every", STEPS["codec"][0], "--ckpt-every", STEPS["codec"][0])
    heard[f"codec after {steps} steps"] = reconstruct(RUNS / "codec", clip)

log = log_rows(RUNS / "codec")
fig, (ax, ax2) = plt.subplots(1, 2, figsize=(14, 3.2))
ax.plot(log["step"], log["stft"], label="multi-resolution STFT loss")
ax.set(xlabel="step", ylabel="loss", yscale="log", title="codec: reconstruction loss")
ax.axvline(STEPS["codec"][0], color="grey", ls=":", label="first pass ends (resume)")
ax.legend()
ax2.plot(log["step"], log["disc"], label="discriminator")
ax2.plot(log["step"], log["adv"], label="generator (adversarial)")
ax2.set(xlabel="step", ylabel="loss", title="codec: the GAN game")
ax2.legend()
fig.tight_layout()
plt.show()

show(heard, corpus.sample_rate)"""),
    md("""**Reading it.** The STFT loss falls steeply in the first few hundred steps, then slowly; the
discriminator and generator losses hover near each other, which is what a balanced GAN looks
like (a discriminator loss falling to zero would mean the decoder lost the game). The first
reconstruction is a smear of energy with the clip's loudness envelope; after the second pass
the harmonics start to show as horizontal lines. At this size it stays noisy: the shipped tiny
codec (notebook 02) trained for 2.4 hours."""),
    md("""## 3 · The semantic stack: MuLan, tokenizer, LM

**MuLan** learns a joint text–audio embedding with a contrastive loss (matching caption and clip
pairs score higher than all other pairs in the batch), then fits the residual vector quantiser
that turns an embedding into 12 discrete codes. The **tokenizer** has no gradient steps: it fits
k-means on frame features, so audio becomes 25 tokens per second. The **LM** learns to predict
those tokens from the MuLan codes of the clip: the *plan* the denoiser will render."""),
    code("""run("train", "mulan", "--preset", "micro", "--data", CORPUS, "--out", RUNS / "mulan",
    "--max-steps", STEPS["mulan"], "--no-progress")
run("train", "tokenizer", "--preset", "micro", "--data", CORPUS, "--out", RUNS / "tokenizer")
run("train", "lm", "--preset", "micro", "--data", CORPUS, "--out", RUNS / "lm", "--mulan", RUNS / "mulan",
    "--tokenizer", RUNS / "tokenizer", "--max-steps", STEPS["lm"], "--no-progress")

fig, axes = plt.subplots(1, 2, figsize=(14, 3.2))
for ax, stage, title in [(axes[0], "mulan", "MuLan: contrastive loss"),
                         (axes[1], "lm", "semantic LM: next-token cross-entropy")]:
    log = log_rows(RUNS / stage)
    ax.plot(log["step"], log["loss"])
    ax.set(xlabel="step", ylabel="loss", title=title)
vocab = json.loads((RUNS / "tokenizer" / "config.json").read_text())["model"]["vocab_size"]
axes[1].axhline(np.log(vocab), color="grey", ls=":", label=f"ln {vocab}: a uniform guess over {vocab} tokens")
axes[1].legend()
fig.tight_layout()
plt.show()"""),
    md("""**Reading it.** The MuLan loss starts near ln(batch) (every pair equally likely) and falls as it
learns which caption goes with which clip; on 28 training clips it soon memorises them, which
is why a real run needs thousands of clips (`tiny`: 3,619). The LM's cross-entropy falls below a
uniform guess within a few dozen steps: semantic tokens are very predictable from their
neighbours (notebook 04 compares it with unigram and bigram baselines)."""),
    md("""## 4 · The denoiser, and what it makes as it trains

The dual-path denoiser learns to predict the *velocity* of angle diffusion (notebook 01) on the
codec's latents of the corpus, conditioned on the semantic tokens. Its first run encodes the
corpus once with the trained codec and tokenizer and caches the result in `OUT/cache`, so the
resumed pass starts straight away. After each pass `melody-lab bundle` assembles the five stages
into a model folder, and we generate the same prompt with the same seed from each."""),
    code("""prompt = corpus[0]["caption"]                  # the caption of `clip`, the clip of section 2
print("prompt:", prompt)
stages = [f"--{s}={RUNS / s}" for s in ("codec", "mulan", "tokenizer", "lm", "denoiser")]
made = {}
for steps in STEPS["denoiser"]:
    run("train", "denoiser", "--preset", "micro", "--data", CORPUS, "--codec", RUNS / "codec",
        "--tokenizer", RUNS / "tokenizer", "--out", RUNS / "denoiser", "--steps", steps, "--no-progress")
    run("bundle", *stages, "--out", WORK / f"bundle_{steps}")
    model = MeLoDy.from_pretrained(WORK / f"bundle_{steps}")
    made[f"denoiser after {steps} steps"] = model.generate([prompt], DURATION, steps=10, seed=0)[0]
    print(f"  generated {DURATION:g} s: {model.last_timings['total']:.2f} s, RTF {model.last_timings['rtf']:.3f}")

log = log_rows(RUNS / "denoiser")
val = [json.loads(line)["val"] for line in (RUNS / "denoiser" / "log.jsonl").read_text().splitlines()
       if '"val"' in line]
fig, ax = plt.subplots(figsize=(8, 3.2))
ax.plot(log["step"], log["loss"], label="multi-chunk velocity loss")
ax.axvline(STEPS["denoiser"][0], color="grey", ls=":", label="first pass ends (resume)")
ax.set(xlabel="step", ylabel="loss", yscale="log", title="denoiser: training loss")
ax.legend()
plt.show()
print("validation after each pass:", [{k: round(v, 3) for k, v in v_.items()} for v_ in val])

show({"a real clip with this caption": clip, **made}, model.sample_rate)"""),
    md("""**Reading it.** The velocity loss falls fast and then flattens; the validation velocity MSE and
SI-SNRi (how much a single denoising pass improves a noisy latent, notebook 03) move the same
way. In the spectrograms, the early model makes nearly uniform noise through the codec; the later
one puts energy where the corpus has it (low bands, a pulse from the note onsets). The denoiser
can only be as good as the codec's latent allows, and here both are tiny."""),
    md("""## 5 · `train all`, and where the model lives

`melody-lab train all` is the five commands above in order. Pointed at the same folder, it finds
every stage finished (each has a checkpoint at or past the preset's steps), skips them, and only
assembles `RUNS/bundle`. A killed run restarts where it stopped the same way. `--max-minutes`
pauses a stage cleanly, and `--tensorboard` writes TensorBoard event files next to each
`log.jsonl` (with the optional extra, `pip install -e '.[tensorboard]'`)."""),
    code("""run("train", "all", "--preset", "micro", "--data", CORPUS, "--out", RUNS, "--no-progress")
bundle = RUNS / "bundle"
for path in sorted(bundle.iterdir()):
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size
    print(f"  {path.name + ('/' if path.is_dir() else ''):16s} {size / 1e3:8.1f} kB")
model = MeLoDy.from_pretrained(bundle)
print(f"parameters: { {k: sum(p.numel() for p in m.parameters()) for k, m in [('codec', model.codec), ('denoiser', model.denoiser), ('lm', model.lm), ('mulan', model.mulan)]} }")
audio = model.generate(["a calm chorale on organ"], DURATION, seed=1)
display(Audio(audio[0].numpy(), rate=model.sample_rate))
print(f"From a shell: melody-lab generate \\"a calm chorale on organ\\" --bundle {bundle} --out chorale.wav")
print(f"notebook ran in {time.perf_counter() - notebook_start:.0f} s wall-clock (size {SIZE!r})")"""),
    md("""## 6 · Going further

- **Bigger.** `--preset tiny` everywhere, on the tiny corpus (`melody-lab data build --preset tiny
  --out data/tiny`, 7 minutes): this is how the shipped model was trained; `docs/tiny_model.md`
  lists every command and its wall time (about 5 hours of CPU in all).
- **Your own music.** `melody-lab train all --preset micro --data MY_FOLDER --out runs/mine` with a
  `captions.csv` (`path,caption`) in the folder imports it first.
- **Watch a long run.** `--tensorboard` on any `train` command, then `tensorboard --logdir RUNS`.
- **Play with it.** `melody-lab demo --bundle RUNS/bundle` opens the local web page
  (text → music, audio prompt, continuation, inpainting) on your model."""),
]


def main() -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = CELLS
    nb.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                   "language_info": {"name": "python"}}
    out = Path(__file__).resolve().parents[1] / "notebooks" / "07_train_your_own.ipynb"
    nbformat.write(nb, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
