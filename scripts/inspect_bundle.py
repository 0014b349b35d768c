"""Look at (and score) what a bundle generates: spectrogram grid PNG, WAVs, CLAP vs shuffled.

usage: python scripts/inspect_bundle.py BUNDLE OUT [seconds] [steps]   (BUNDLE may be "tiny")
"""
import json
import sys
import time
from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from melody_lab import MeLoDy
from melody_lab.audio import save_audio
from melody_lab.metrics import build_embedder
from melody_lab.plotting import plot_spectrogram

torch.set_num_threads(1)
bundle, out = sys.argv[1], Path(sys.argv[2])
seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 6.0
steps = int(sys.argv[4]) if len(sys.argv) > 4 else 10
out.mkdir(parents=True, exist_ok=True)
model = MeLoDy.from_pretrained(bundle)
prompts = ["A lively Irish jig on solo fiddle.",
           "A slow chorale for pipe organ.",
           "A Chinese folk song on pan flute.",
           "A march played by a brass section.",
           "A gentle children's song on music box.",
           "A Scottish strathspey on bagpipes."]
t = time.time()
audio = model.generate(prompts, duration_s=seconds, steps=steps, seed=0)
gen_s = time.time() - t
fig, axes = plt.subplots(len(prompts), 1, figsize=(10, 2.2 * len(prompts)), constrained_layout=True)
for i, (ax, p, a) in enumerate(zip(axes, prompts, audio)):
    plot_spectrogram(a, model.sample_rate, ax=ax, title=p)
    save_audio(out / f"gen{i}.wav", a, model.sample_rate)
fig.savefig(out / "generated.png", dpi=70)
clap = build_embedder("evalclap-tiny")
with torch.no_grad():
    ta = clap.embed_text(prompts)
    aa = clap.embed_audio(torch.stack([torch.as_tensor(x) for x in audio]))
ta = torch.nn.functional.normalize(torch.as_tensor(ta, dtype=torch.float32), dim=-1)
aa = torch.nn.functional.normalize(torch.as_tensor(aa, dtype=torch.float32), dim=-1)
sim = (aa @ ta.T).numpy()
report = {"bundle": bundle, "seconds": seconds, "steps": steps, "generate_s": gen_s,
          "timings": model.last_timings,
          "clap_matched": float(np.diag(sim).mean()),
          "clap_mismatched": float((sim.sum() - np.trace(sim)) / (sim.size - len(sim))),
          "argmax_correct": int((sim.argmax(1) == np.arange(len(sim))).sum()),
          "rms_db": [float(20 * np.log10(a.pow(2).mean().sqrt() + 1e-9)) for a in audio]}
print(json.dumps(report, indent=1))
(out / "report.json").write_text(json.dumps(report, indent=1))
