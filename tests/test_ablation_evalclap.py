"""The evaluation CLAP: trained on works disjoint from the generators' corpus, shipped, usable."""
from __future__ import annotations

import numpy as np
import pytest

from melody_lab.data.build import plan_works
from melody_lab.data.presets import get_preset
from melody_lab.errors import UserError
from melody_lab.metrics import build_embedder, clap_score
from melody_lab.metrics.embedders import EVALCLAP_TINY_DIR


@pytest.mark.parametrize("seed", [0, 1])
def test_evalclap_corpus_works_are_disjoint_from_tiny(seed):
    tiny = {work.work_id for work, _, _ in plan_works(get_preset("tiny"), seed)}
    evalclap = plan_works(get_preset("evalclap"), seed)
    assert len(evalclap) > 1000 and len(tiny) > 3000
    assert not tiny & {work.work_id for work, _, _ in evalclap}
    assert {split for _, split, _ in evalclap} == {"train", "valid", "test"}


def test_missing_evalclap_says_what_to_do(tmp_path):
    with pytest.raises(UserError, match="evaluation CLAP is not installed"):
        build_embedder("evalclap-tiny", folder=tmp_path)


@pytest.mark.skipif(not (EVALCLAP_TINY_DIR / "config.json").is_file(),
                    reason="the evaluation CLAP asset is not in this checkout (see docs/ablations.md)")
def test_shipped_evalclap_embeds_and_scores(micro_corpus):
    from melody_lab.data import ClipDataset

    clap = build_embedder("evalclap-tiny")
    assert clap.name == "evalclap-tiny" and clap.fingerprint.startswith("sha256:")
    data = ClipDataset(micro_corpus, "all")
    audio = data.load_all_audio()
    emb = clap.embed(audio, data.sample_rate)
    assert emb.shape == (len(audio), clap.model.config.embed_dim) and np.isfinite(emb).all()
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-4)
    captions = [data[i]["caption"] for i in range(len(data))]
    matched = clap_score(clap, captions, audio, data.sample_rate, name=clap.name)
    shuffled = clap_score(clap, captions[7:] + captions[:7], audio, data.sample_rate, name=clap.name)
    assert matched.n == len(audio) and matched.model == "evalclap-tiny"
    assert matched.score > shuffled.score  # it reads captions (on works it never saw)
