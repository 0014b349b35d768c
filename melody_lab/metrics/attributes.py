"""Attribute accuracy: does the audio have the attributes its prompt asked for?

Every caption in the corpus is written from known attributes (instrument family, tempo class, mode,
form …), so generated audio can be checked attribute by attribute, two ways:

- **zero-shot**: compare each clip's audio embedding with the text embeddings of one prompt per
  class (``"a reel"``, ``"a jig"`` …) under a joint text–audio model; predict the closest class.
- **probe**: a small logistic regression per attribute (scikit-learn), trained on embeddings of
  *real* clips, applied to embeddings of generated clips.

Report the accuracy against the *prompted* attributes next to the same accuracy on real test clips
(the ceiling) and the majority-class rate (the floor).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
from .clap_score import embed_audio_batches, embed_text_batches, model_name


@dataclass(frozen=True)
class AttributeAccuracy:
    """Accuracy for one attribute over the ``n`` clips that have a label among ``classes``."""

    attribute: str
    accuracy: float
    n: int
    classes: tuple[str, ...]
    majority_baseline: float
    method: str

    def to_dict(self) -> dict:
        return asdict(self)


def attribute_prompts(values: Sequence[str], template: str = "a {value}") -> dict[str, str]:
    """``{value: template.format(value=value)}``, e.g. ``{"reel": "a reel", "jig": "a jig"}``."""
    return {str(v): template.format(value=v) for v in values}


def _labelled(attributes: Sequence[dict], key: str, classes: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Indices of rows whose ``key`` value is one of ``classes``, and those values as strings."""
    allowed = set(classes)
    rows = [(i, str(a[key])) for i, a in enumerate(attributes) if a.get(key) is not None and str(a[key]) in allowed]
    return np.array([i for i, _ in rows], dtype=int), [label for _, label in rows]


def _accuracy(attribute: str, predicted: Sequence[str], truth: Sequence[str], classes, method: str) -> AttributeAccuracy:
    if not truth:
        raise ValueError(f"no clip has a value of {attribute!r} among {sorted(classes)}")
    accuracy = float(np.mean([p == t for p, t in zip(predicted, truth)]))
    majority = Counter(truth).most_common(1)[0][1] / len(truth)
    return AttributeAccuracy(attribute, accuracy, len(truth), tuple(sorted(classes)), majority, method)


def zero_shot_predictions(model, audio, prompts: dict[str, dict[str, str]],
                          sample_rate: int | None = None) -> dict[str, list[str]]:
    """Each clip's closest class per attribute: ``{attribute: [N] class values}``.

    ``audio``: ``[N, T]`` or N clips; ``prompts``: ``{attribute: {class value: prompt text}}``;
    ``model`` has ``embed_text`` / ``embed_audio``. The class whose prompt's text embedding has the
    highest cosine with the clip's audio embedding wins."""
    audio_emb = embed_audio_batches(model, audio, sample_rate)
    predictions = {}
    for key, class_prompts in prompts.items():
        classes = list(class_prompts)
        text_emb = embed_text_batches(model, [class_prompts[c] for c in classes])
        predictions[key] = [classes[j] for j in np.argmax(audio_emb @ text_emb.T, axis=1)]
    return predictions


def zero_shot_attribute_accuracy(model, audio, attributes: Sequence[dict], prompts: dict[str, dict[str, str]],
                                 sample_rate: int | None = None, *, name: str | None = None
                                 ) -> dict[str, AttributeAccuracy]:
    """Zero-shot accuracy per attribute (:func:`zero_shot_predictions` against ``attributes``).

    ``audio``: ``[N, T]`` or N clips; ``attributes``: N dicts (the prompted/true attributes);
    ``prompts``: ``{attribute: {class value: prompt text}}``. ``model`` has ``embed_text`` /
    ``embed_audio``. Clips whose value is missing or not among the classes are left out (``n``).
    """
    if len(attributes) != len(audio):
        raise ValueError(f"{len(attributes)} attribute rows but {len(audio)} clips")
    predictions = zero_shot_predictions(model, audio, prompts, sample_rate)
    method = f"zero-shot:{model_name(model, name)}"
    results = {}
    for key, class_prompts in prompts.items():
        classes = list(class_prompts)
        rows, truth = _labelled(attributes, key, classes)
        results[key] = _accuracy(key, [predictions[key][i] for i in rows], truth, classes, method)
    return results


@dataclass
class AttributeProbe:
    """A standardise → logistic-regression classifier from embeddings ``[N, E]`` to one attribute."""

    attribute: str
    embedder: str
    classes: tuple[str, ...]
    pipeline: object

    def predict(self, embeddings: np.ndarray) -> list[str]:
        return [str(p) for p in self.pipeline.predict(np.asarray(embeddings, dtype=np.float64))]


def fit_attribute_probes(embeddings: np.ndarray, attributes: Sequence[dict], keys: Sequence[str], *,
                         embedder: str, C: float = 1.0, seed: int = 0) -> dict[str, AttributeProbe]:
    """One probe per attribute in ``keys``, fitted on embeddings of *real* clips and their attributes."""
    from sklearn.linear_model import LogisticRegression  # imported here: slow to import, rarely needed
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    embeddings = np.asarray(embeddings, dtype=np.float64)
    probes = {}
    for key in keys:
        values = sorted({str(a[key]) for a in attributes if a.get(key) is not None})
        rows, labels = _labelled(attributes, key, values)
        if len(values) < 2:
            raise ValueError(f"attribute {key!r} needs ≥ 2 classes to train a probe; got {values}")
        pipeline = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=5000, random_state=seed))
        pipeline.fit(embeddings[rows], labels)
        probes[key] = AttributeProbe(key, embedder, tuple(values), pipeline)
    return probes


def probe_attribute_accuracy(probes: dict[str, AttributeProbe], embeddings: np.ndarray,
                             attributes: Sequence[dict]) -> dict[str, AttributeAccuracy]:
    """Accuracy of each probe on ``embeddings`` ``[N, E]`` against ``attributes`` (N dicts)."""
    embeddings = np.asarray(embeddings, dtype=np.float64)
    if len(embeddings) != len(attributes):
        raise ValueError(f"{len(attributes)} attribute rows but {len(embeddings)} embeddings")
    results = {}
    for key, probe in probes.items():
        rows, truth = _labelled(attributes, key, probe.classes)
        predicted = probe.predict(embeddings[rows]) if len(rows) else []
        results[key] = _accuracy(key, predicted, truth, probe.classes, f"probe:{probe.embedder}")
    return results
