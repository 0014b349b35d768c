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
run on a laptop CPU while you watch it. You build a corpus, train MeLoDy's stages with the same
command-line tool (and Python API) you would use for a real run, read their loss curves from the
runs' `log.jsonl`, see the spectrograms change as training goes on, assemble a bundle and generate
with it.

| stage | what it learns | command |
|---|---|---|
| codec (VAE-GAN) | audio ↔ a continuous latent (notebook 02) | `melody-lab train codec` |
| MuLan + RVQ | text and audio in one embedding space, then 12 discrete codes (notebook 04) | `melody-lab train mulan` |
| semantic tokenizer | k-means over audio features: 25 tokens per second (notebook 04) | `melody-lab train tokenizer` |
| semantic LM | MuLan codes → semantic tokens, the plan (notebook 04) | `melody-lab train lm` |
| dual-path denoiser | tokens + noise → latent, by angle diffusion (notebooks 01, 03) | `melody-lab train denoiser` |

**One shortcut, the same one nanoGPT takes.** nanoGPT trains the transformer but borrows GPT-2's
tokenizer. Here the codec is the slow stage: section 2 trains a micro codec for a few minutes so
you see it learn, but a usable one took 2.4 hours (the shipped tiny VAE-GAN, notebook 02), so the
stages after it are trained on the latents of the **shipped tiny codec**. Everything else is
trained from scratch at the **micro** preset on 32 clips of 2 s: it learns loudness, rhythm and a
rough spectral shape, not a tune. The point is to see every moving part work and the curves
move; the shipped tiny model (notebook 05) is the same recipe with a 36× larger denoiser,
3,619 clips and about 5 hours of CPU time.

**Cost.** Full size (the default): 353 s and 424 s in two runs on a 2-core VM shared with other
jobs (load average about 8, one thread), so upper bounds; the codec took about 150 s of it and
the denoiser 150–225 s. CI runs it with `MELODY_LAB_NOTEBOOK_SIZE=ci` (a few training steps per stage) in
about a minute. Nothing is downloaded: the corpus is rendered from scores inside the
`music21` wheel."""),
    code("""%matplotlib inline
import json
import os
import shlex
import tempfile
import time
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Audio, display

warnings.filterwarnings("ignore", message="IProgress not found")   # tqdm in a notebook without widgets
from melody_lab.cli import main as melody_lab
from melody_lab.codecs import ASSETS, load_codec
from melody_lab.data import ClipDataset
from melody_lab.pipeline import MeLoDy
from melody_lab.plotting import plot_spectrogram
from melody_lab.train.denoiser import DenoiserTrainConfig, train_denoiser
from melody_lab.train.loop import LoopConfig

SIZE = os.environ.get("MELODY_LAB_NOTEBOOK_SIZE", "full")   # "full" (default) or "ci" (smaller, for tests)
CI = SIZE == "ci"
# optimisation steps per stage: (first pass, total); the second pass resumes the first
STEPS = ({"codec": (10, 20), "mulan": 20, "lm": 20, "denoiser": (10, 20)} if CI
         else {"codec": (150, 600), "mulan": 150, "lm": 300, "denoiser": (150, 1500)})
DURATION = 2.0                      # seconds per generated clip (the micro clips are 2 s)

plt.rcParams.update({"figure.dpi": 90})
torch.manual_seed(0)
notebook_start = time.perf_counter()


def run(*args):
    \"\"\"Run one `melody-lab` command in this process (the same code as the shell command).\"\"\"
    args = [str(a) for a in args]
    print("$ melody-lab", shlex.join(args))
    started = time.perf_counter()
    code = melody_lab(args)
    assert code == 0, f"melody-lab exited with {code}"
    print(f"  … {time.perf_counter() - started:.1f} s")


def log_rows(run_dir):
    \"\"\"The loss rows and the validation rows of a run's log.jsonl, as dicts of arrays.\"\"\"
    rows = [json.loads(line) for line in (Path(run_dir) / "log.jsonl").read_text().splitlines()]
    train = [r for r in rows if "val" not in r]
    val = [{"step": r["step"], **r["val"]} for r in rows if "val" in r]
    as_arrays = lambda rs: {k: np.array([r[k] for r in rs]) for k in rs[0] if k != "time"}
    return as_arrays(train), as_arrays(val)


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

corpus = ClipDataset(CORPUS, "all")
for i in range(3):
    print(f"  {corpus[i]['clip_id']}: {corpus[i]['caption']}")
show({corpus[i]["caption"]: corpus[i]["audio"] for i in range(3)}, corpus.sample_rate)"""),
    md("""## 2 · A codec, in two passes

The codec is a VAE-GAN: an encoder to a continuous latent, a decoder back, trained on
multi-resolution STFT reconstruction, a small KL term, and (from step 3 at micro size) an
adversarial loss from two discriminators. Training stops at `--steps`; running the same command
with a larger `--steps` **resumes** from the newest checkpoint in `--out`. The loop checks that the
settings are the same: change `--val-every` between the two and it refuses, naming the change.
So we train a little, listen, and train on."""),
    code("""clip = corpus[0]["audio"]
heard = {"original": clip}
for steps in STEPS["codec"]:
    run("train", "codec", "--preset", "micro", "--data", CORPUS, "--out", RUNS / "codec",
        "--steps", steps, "--val-every", STEPS["codec"][0], "--ckpt-every", STEPS["codec"][0])
    with torch.no_grad():
        heard[f"micro codec, {steps} steps"] = load_codec(RUNS / "codec").reconstruct(clip[None])[0]
with torch.no_grad():
    heard["shipped tiny codec (2.4 h)"] = load_codec(ASSETS / "vaegan_tiny").reconstruct(clip[None])[0]

log, val = log_rows(RUNS / "codec")
fig, (ax, ax2) = plt.subplots(1, 2, figsize=(14, 3.2))
ax.plot(log["step"], log["stft"], alpha=0.5, label="train: multi-resolution STFT loss")
ax.plot(val["step"], val["mr_stft"], "o-", label="validation: MR-STFT")
ax.axvline(STEPS["codec"][0], color="grey", ls=":", label="first pass ends (resume)")
ax.set(xlabel="step", ylabel="loss", title="codec: reconstruction")
ax.legend(fontsize=8)
ax2.plot(log["step"], log["disc"], label="discriminator")
ax2.plot(log["step"], log["adv"], label="generator (adversarial)")
ax2.set(xlabel="step", ylabel="loss", title="codec: the GAN game")
ax2.legend(fontsize=8)
fig.tight_layout()
plt.show()
show(heard, corpus.sample_rate)"""),
    md("""**Reading it** (full size, our run). The training STFT loss barely moves in 600 steps: a batch
is two crops of 0.13 s, so each step sees very little, and the curve is mostly noise. The
validation MR-STFT on held-out clips is the number to watch, and it falls only a little (from
about 5.0 to 4.8; the shipped tiny codec reaches 1.3). The adversarial losses both fall from
about 0.7 as the discriminators learn to tell real from decoded audio, and settle with the
discriminator's above zero, so the decoder still gets a useful signal (a discriminator loss
at zero would mean the decoder had lost the game). In the spectrograms the micro codec's output
is quiet and smeared, with faint traces of the harmonics; the shipped tiny codec, trained for
2.4 hours on a 100× larger corpus, keeps the notes. That gap is why the stages below use the
shipped codec."""),
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

vocab = json.loads((RUNS / "tokenizer" / "config.json").read_text())["model"]["config"]["vocab_size"]
fig, axes = plt.subplots(1, 2, figsize=(14, 3.2))
for ax, stage, metric, title in [(axes[0], "mulan", "loss", "MuLan: contrastive loss"),
                                 (axes[1], "lm", "nll", "semantic LM: next-token cross-entropy (nats)")]:
    log, val = log_rows(RUNS / stage)
    ax.plot(log["step"], log["loss"], label="train")
    ax.plot(val["step"], val[metric], "o-", label="validation (2 held-out clips)")
    ax.set(xlabel="step", ylabel="loss", title=title)
axes[0].axhline(np.log(16), color="grey", ls=":", label="ln 16: chance in a batch of 16")
axes[1].axhline(np.log(vocab), color="grey", ls=":", label=f"ln {vocab}: a uniform guess over {vocab} tokens")
for ax in axes:
    ax.legend(fontsize=8)
fig.tight_layout()
plt.show()"""),
    md("""**Reading it: overfitting, the first thing a small run teaches.** Both training losses fall
towards zero: with 28 training clips, MuLan and the LM soon *memorise* them. The validation
curves, on the 2 held-out clips, tell the truth. MuLan's validation loss stops improving, and
the LM's validation cross-entropy is lowest after a few dozen steps and then *rises*, at full
size past a uniform guess (it becomes confidently wrong about music it has not heard). The cures
are the usual ones: more data (the `tiny` corpus has 3,619 clips, and the tiny LM's validation
perplexity is 3.6), a smaller model, or stopping early. The bundle below uses the last
checkpoint anyway; its plans are memorised more than generalised."""),
    md("""## 4 · The denoiser, and what it makes as it trains

The dual-path denoiser learns to predict the *velocity* of angle diffusion (notebook 01) on the
codec's latents of the corpus, conditioned on the semantic tokens. The micro preset is built for
the micro codec's 8-dimensional latent; the shipped codec's has 16, and the CLI has no flag for
that, so this stage uses the Python API the CLI calls, `train_denoiser`, with `latent_dim`
overridden (the ablation runner does the same). Its first run encodes the corpus once and caches
it in `OUT/cache`, so the resumed pass starts straight away. After each pass `melody-lab bundle`
assembles the stages into a model folder, and we generate the same prompt with the same seed."""),
    code("""prompt = corpus[0]["caption"]                  # the caption of `clip`, the clip of section 2
print("prompt:", prompt)
codec_dir = ASSETS / "vaegan_tiny"
stages = [f"--codec={codec_dir}"] + [f"--{s}={RUNS / s}" for s in ("mulan", "tokenizer", "lm", "denoiser")]
made = {}
for steps in STEPS["denoiser"]:
    started = time.perf_counter()
    state = train_denoiser(DenoiserTrainConfig(denoiser="dpd", preset="micro"), CORPUS,
                           RUNS / "denoiser",
                           LoopConfig(max_steps=steps, val_every=STEPS["denoiser"][0], progress=False),
                           codec=codec_dir, tokenizer=RUNS / "tokenizer",
                           latent_dim=load_codec(codec_dir).latent_dim)
    print(f"denoiser: step {state['step']} in {time.perf_counter() - started:.1f} s")
    run("bundle", *stages, "--out", WORK / f"bundle_{steps}")
    model = MeLoDy.from_pretrained(WORK / f"bundle_{steps}")
    made[f"denoiser after {steps} steps"] = model.generate([prompt], DURATION, steps=10, seed=0)[0]

log, val = log_rows(RUNS / "denoiser")
fig, (ax, ax2) = plt.subplots(1, 2, figsize=(14, 3.2))
ax.plot(log["step"], log["loss"], label="train: multi-chunk velocity loss")
ax.axvline(STEPS["denoiser"][0], color="grey", ls=":", label="first pass ends (resume)")
ax.set(xlabel="step", ylabel="loss", yscale="log", title="denoiser: training loss")
ax.legend(fontsize=8)
ax2.plot(val["step"], val["si_snri_db"], "o-")
ax2.set(xlabel="step", ylabel="dB", title="validation: SI-SNR improvement of one denoising pass")
fig.tight_layout()
plt.show()
show({"the real clip with this caption": clip, **made}, model.sample_rate)"""),
    md("""**Reading it** (full size, our run). The velocity loss falls from about 0.8 to below 0.2 in the
first 500 steps and then flattens; the validation SI-SNRi (how much a single denoising pass
improves a noisy latent, notebook 03) rises from about 2 dB to 9 dB, fast at first and slowly
after step 600. In the spectrograms, the denoiser after 150 steps makes broadband noise with
clicks (the vertical stripes); after 1,500 steps the energy sits in the low bands where the
corpus has its notes, with faint horizontal lines, and the clicks are gone. It does not play
the tune: 54 k parameters and 28 training clips are far too few."""),
    md("""## 5 · The bundle, from the shell

The last bundle is a folder like the shipped `tiny` one: safetensors weights and JSON configs
for every stage, and a manifest with their hashes. Every `melody-lab` command takes it with
`--bundle` (here `generate`; also `continue`, `inpaint` and `demo`, the local web page)."""),
    code("""bundle = WORK / f"bundle_{STEPS['denoiser'][-1]}"
for path in sorted(bundle.iterdir()):
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size
    print(f"  {path.name + ('/' if path.is_dir() else ''):16s} {size / 1e3:8.1f} kB")
run("generate", "a calm chorale on organ", "--bundle", bundle, "--duration", DURATION, "--seed", 1,
    "--out", WORK / "chorale.wav")
display(Audio(str(WORK / "chorale.wav")))
print(f"notebook ran in {time.perf_counter() - notebook_start:.0f} s wall-clock (size {SIZE!r})")"""),
    md("""## 6 · Going further

- **Every stage in one command.** `melody-lab train all --preset micro --data CORPUS --out RUNS`
  runs the five stages in order, its own micro codec included, and writes `RUNS/bundle`. Finished
  stages are skipped, an interrupted one resumes, and `--max-minutes` pauses a stage cleanly.
  `tests/test_train_all.py` runs it at micro size.
- **Bigger.** `--preset tiny` on the tiny corpus (`melody-lab data build --preset tiny
  --out data/tiny`, 7 minutes): this is how the shipped model was trained; `docs/tiny_model.md`
  lists every command and its wall time (about 5 hours of CPU in all).
- **Your own music.** `melody-lab train all --preset micro --data MY_FOLDER --out runs/mine` with a
  `captions.csv` (`path,caption`) in the folder imports it first.
- **Watch a long run.** `--tensorboard` on any training command writes TensorBoard event files
  next to `log.jsonl` (`pip install -e '.[tensorboard]'`, then `tensorboard --logdir RUNS`).
- **Play with it.** `melody-lab demo --bundle BUNDLE` (`pip install -e '.[demo]'`) opens the local
  web page: text → music, audio prompt, continuation and inpainting on your model."""),
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
