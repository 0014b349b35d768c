"""How much of each attribute do a tokenizer's semantic tokens carry?  A bag-of-tokens probe.

For the train clips (the first ``--n-train``) and every test clip of a corpus: tokenize with the
tokenizer of a bundle, count each clip's tokens (a histogram over the vocabulary, square-rooted),
fit a logistic regression per attribute on the train clips and report its accuracy on the test
clips (works never used in training) next to the majority-class rate. Attributes: instrument (the
first instrument), key, mode, genre, tempo word. Also: the share of each feature block's variance
the nearest-centre quantisation loses, and token changes per second.

A high probe accuracy says the information reaches the tokens (so a stage downstream loses it);
it is an upper bound of nothing: a bag of tokens ignores order.

With ``--plan-corpus C`` the key probe (fitted on real train clips' tokens) also reads the LM's
*plans*: for every test clip of corpus ``C`` one of whose captions names its key, the tokens the
bundle's LM writes for that caption (5 s, seed = clip index, the bundle's LM sampling) — does the
plan carry the key the caption asks for? — next to the same clips' own tokens. And one stage up:
a logistic regression on the one-hot RVQ codes of MuLan's text embedding (what the LM is
conditioned on), fitted on every train caption of ``--corpus`` that names its clip's key and
tested on the same test captions — does the LM's input carry the key? And a probe-free check: each
caption's key moved a tritone (``D major`` → ``Ab major``, same seed) — does the plan's pitch-class
profile (the mean chroma of its tokens' k-means centres) turn by 6 semitones (chance 1/12)? The
same check on real tokens (``--corpus`` with transposed copies, e.g. ``tiny_keys``: originals vs
their copies, the copy's shift) says how well the measure can see a key change at all.

    python scripts/probe_tokens.py --bundle tiny --corpus /work/data/tiny --n-train 1200
    python scripts/probe_tokens.py --bundle tiny --corpus /work/data/tiny --plan-corpus /work/data/evalclap
"""
from __future__ import annotations

import argparse
import json
import re

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from tqdm.auto import tqdm

from melody_lab.data import ClipDataset
from melody_lab.data.arrangement import transposed_tonic
from melody_lab.pipeline import MeLoDy

ATTRIBUTES = ("instrument", "key", "mode", "genre", "tempo_word")


def label(row: dict, attribute: str) -> str:
    if attribute == "instrument":
        return row["instruments"][0]["name"] if row.get("instruments") else "none"
    return row.get(attribute) or "none"


@torch.no_grad()
def tokens_of(tokenizer, corpus: str, split: str, n: int | None, batch: int = 32):
    """``(rows, audio [N, T], tokens [N, T_st])`` of the first ``n`` clips of ``split`` (all: None)."""
    dataset = ClipDataset(corpus, split)
    rows = dataset.rows[:n] if n else dataset.rows
    audio = dataset.load_all_audio()[: len(rows)]
    tokens = [tokenizer.tokenize(audio[i:i + batch])
              for i in tqdm(range(0, len(audio), batch), desc=f"tokenize {split}")]
    return rows, audio, torch.cat(tokens)


def histogram(tokens: torch.Tensor, vocab: int) -> np.ndarray:
    h = torch.zeros(len(tokens), vocab).scatter_add_(1, tokens, torch.ones_like(tokens, dtype=torch.float))
    return (h / h.sum(1, keepdim=True)).sqrt().numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", default="tiny")
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--n-train", type=int, default=1200)
    parser.add_argument("--plan-corpus", default=None,
                        help="also probe the LM's plans for this corpus's key-naming test captions")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = MeLoDy.from_pretrained(args.bundle)
    tokenizer = model.tokenizer
    cfg = tokenizer.config
    train_rows, _, train_tokens = tokens_of(tokenizer, args.corpus, "train", args.n_train)
    test_rows, test_audio, test_tokens = tokens_of(tokenizer, args.corpus, "test", None)
    h_train, h_test = histogram(train_tokens, cfg.vocab_size), histogram(test_tokens, cfg.vocab_size)
    result = {"bundle": args.bundle, "n_train": len(train_rows), "n_test": len(test_rows)}
    for attribute in ATTRIBUTES:
        y_train = [label(r, attribute) for r in train_rows]
        y_test = np.array([label(r, attribute) for r in test_rows])
        probe = LogisticRegression(max_iter=2000, C=10.0).fit(h_train, y_train)
        if attribute == "key":
            key_probe = probe
        majority = max(set(y_test.tolist()), key=y_test.tolist().count)
        result[attribute] = round(float((probe.predict(h_test) == y_test).mean()), 3)
        result[attribute + "_majority"] = round(float((y_test == majority).mean()), 3)
    if cfg.features == "mel_chroma_onset":  # the frames the tokens quantise, in the centres' units
        x = torch.cat([tokenizer._standardise(tokenizer.raw_features(test_audio[i:i + 32]))
                       for i in range(0, len(test_audio), 32)]).flatten(0, 1)
        q = tokenizer.centres[test_tokens.flatten()]
        start = 0
        for block, width in (("mel", cfg.n_mels), ("chroma", 12), ("onset", 2)):
            part, centre = x[:, start:start + width], q[:, start:start + width]
            lost = ((part - centre) ** 2).sum() / ((part - part.mean(0)) ** 2).sum()
            result[f"{block}_variance_lost"] = round(float(lost), 3)
            start += width
    result["token_changes_per_s"] = round(float((test_tokens[:, 1:] != test_tokens[:, :-1]).float().mean())
                                          * cfg.token_rate, 2)
    if args.plan_corpus:
        result["plans"] = plan_key_accuracy(model, key_probe, args.plan_corpus, args.corpus)
    print(json.dumps(result, indent=1))


def turns_by(tokenizer, a: torch.Tensor, b: torch.Tensor, semitones: int) -> bool:
    """Whether the pitch-class profile of tokens ``b [T]`` is that of ``a [T]`` turned by
    ``semitones`` (the best of the 12 rotations; profile = mean chroma of the tokens' centres)."""
    start = tokenizer.config.n_mels
    chroma = tokenizer.centres[:, start:start + 12].numpy()
    pa, pb = chroma[a.numpy()].mean(0), chroma[b.numpy()].mean(0)
    pa, pb = pa - pa.mean(), pb - pb.mean()
    return int(np.argmax([np.dot(np.roll(pa, k), pb) for k in range(12)])) == semitones % 12


@torch.no_grad()
def caption_codes(model, captions: list[str]) -> np.ndarray:
    """One-hot RVQ codes of MuLan's text embeddings ``[N, levels · codebook]`` (the LM's input)."""
    emb = torch.cat([model.mulan.embed_text(captions[i:i + 256]) for i in range(0, len(captions), 256)])
    codes = model.rvq.quantize(emb)
    return torch.nn.functional.one_hot(codes, model.rvq.config.codebook_size).flatten(1).float().numpy()


@torch.no_grad()
def plan_key_accuracy(model, key_probe, corpus: str, train_corpus: str | None = None) -> dict:
    """The key probe on the LM's plans for ``corpus``'s test clips whose captions name the key
    (the first such caption per clip), and on the same clips' own tokens; with ``train_corpus``,
    also a probe of the same captions' RVQ codes (fitted on its key-naming train captions)."""
    from melody_lab.ablation.diagnostic import names_key

    rows, _, own = tokens_of(model.tokenizer, corpus, "test", None)
    first_naming = [next((c for c in row["captions"] if names_key(row, c)), None) for row in rows]
    picked = [(i, caption) for i, caption in enumerate(first_naming) if caption is not None]
    keys = np.array([rows[i]["key"] for i, _ in picked])
    vocab = model.tokenizer.config.vocab_size
    codes_acc = None
    train_set = ClipDataset(train_corpus, "train") if train_corpus is not None else None
    if train_set is not None:
        train_rows = train_set.rows
        named = [(c, row["key"]) for row in train_rows for c in row["captions"] if names_key(row, c)]
        x_train = caption_codes(model, [c for c, _ in named])
        codes_probe = LogisticRegression(max_iter=3000, C=10.0).fit(x_train, [k for _, k in named])
        codes_acc = float((codes_probe.predict(caption_codes(model, [c for _, c in picked])) == keys).mean())
    plans = torch.cat([model.plan([caption], duration_s=5.0, seed=k)
                       for k, (_, caption) in enumerate(tqdm(picked, desc="plans"))])
    swapped = [re.sub(rf"(?<![\w#]){re.escape(rows[i]['tonic'])} ",
                      transposed_tonic(rows[i]["tonic"], rows[i]["mode"], 6) + " ", caption, count=1)
               for i, caption in picked]
    swapped_plans = torch.cat([model.plan([caption], duration_s=5.0, seed=k)
                               for k, caption in enumerate(tqdm(swapped, desc="key-swapped plans"))])
    follows = [turns_by(model.tokenizer, a, b, 6) for a, b in zip(plans, swapped_plans)]
    own_acc = (key_probe.predict(histogram(own[[i for i, _ in picked]], vocab)) == keys).mean()
    majority = max(set(keys.tolist()), key=keys.tolist().count)
    copies = None
    if train_set is not None:
        by_id = {row["clip_id"]: row for row in train_set.rows}
        pairs = [(by_id[r["clip_id"].replace("_t1_", "_")], r) for r in by_id.values()
                 if "transposed_semitones" in r and r["clip_id"].replace("_t1_", "_") in by_id][:64]
        if pairs:
            index = {row["clip_id"]: i for i, row in enumerate(train_set.rows)}
            hits = []
            for original, copy in pairs:
                audio = torch.stack([train_set[index[original["clip_id"]]]["audio"],
                                     train_set[index[copy["clip_id"]]]["audio"]])
                a, b = model.tokenizer.tokenize(audio)
                hits.append(turns_by(model.tokenizer, a, b, copy["transposed_semitones"]))
            copies = {"n": len(pairs), "follows": round(float(np.mean(hits)), 3)}
    return {"n": len(picked), "caption_codes": None if codes_acc is None else round(codes_acc, 3),
            "key_swap_plan_follows": round(float(np.mean(follows)), 3),
            "key_swap_real_copies_follow": copies,
            "own_tokens": round(float(own_acc), 3),
            "plans": round(float((key_probe.predict(histogram(plans, vocab)) == keys).mean()), 3),
            "majority": round(float((keys == majority).mean()), 3)}


if __name__ == "__main__":
    main()
