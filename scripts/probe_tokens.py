"""How much of each attribute do a tokenizer's semantic tokens carry?  A bag-of-tokens probe.

For the train clips (the first ``--n-train``) and every test clip of a corpus: tokenize with the
tokenizer of a bundle, count each clip's tokens (a histogram over the vocabulary, square-rooted),
fit a logistic regression per attribute on the train clips and report its accuracy on the test
clips (works never used in training) next to the majority-class rate. Attributes: instrument (the
first instrument), key, mode, genre, tempo word. Also: the share of each feature block's variance
the nearest-centre quantisation loses, and token changes per second.

A high probe accuracy says the information reaches the tokens (so a stage downstream loses it);
it is an upper bound of nothing: a bag of tokens ignores order.

    python scripts/probe_tokens.py --bundle tiny --corpus /work/data/tiny --n-train 1200
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from tqdm.auto import tqdm

from melody_lab.data import ClipDataset
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
    args = parser.parse_args()
    torch.set_num_threads(1)
    tokenizer = MeLoDy.from_pretrained(args.bundle).tokenizer
    cfg = tokenizer.config
    train_rows, _, train_tokens = tokens_of(tokenizer, args.corpus, "train", args.n_train)
    test_rows, test_audio, test_tokens = tokens_of(tokenizer, args.corpus, "test", None)
    h_train, h_test = histogram(train_tokens, cfg.vocab_size), histogram(test_tokens, cfg.vocab_size)
    result = {"bundle": args.bundle, "n_train": len(train_rows), "n_test": len(test_rows)}
    for attribute in ATTRIBUTES:
        y_train = [label(r, attribute) for r in train_rows]
        y_test = np.array([label(r, attribute) for r in test_rows])
        probe = LogisticRegression(max_iter=2000, C=10.0).fit(h_train, y_train)
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
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
