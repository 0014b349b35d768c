"""``paper_micro``: the ``paper`` recipe's code paths at micro widths, trained by ``train all``.

The paper preset is too large for CI; its twin shares every setting that selects a code path
(24 kHz, M = 4, SRU fine path, per-position cross-attention, paper_exact codec loss with the stage
encoder layout, LM step of one chunk), so a change that breaks the paper recipe breaks this test.
"""
import dataclasses
import json
import math

import pytest
import torch

from melody_lab.codecs import codec_config
from melody_lab.data.presets import get_preset
from melody_lab.denoisers import denoiser_config
from melody_lab.errors import UserError
from melody_lab.pipeline import MeLoDy
from melody_lab.semantic import LM_PRESETS, MULAN_PRESETS, TOKENIZER_PRESETS
from melody_lab.train.all import train_all
from melody_lab.train.codec import TRAIN_PRESETS as CODEC_TRAIN_PRESETS
from melody_lab.train.denoiser import DenoiserTrainConfig
from melody_lab.train.stages import RECIPES, STAGE_STEPS


def _switches(config) -> dict:
    """The fields of a config that pick a code path (strings and booleans), nested ones too."""
    out = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            out.update({f"{f.name}.{k}": v for k, v in _switches(value).items()})
        elif isinstance(value, (str, bool)) and f.name != "preset":
            out[f.name] = value
    return out


def _configs(preset: str) -> dict:
    return {"codec": codec_config("vaegan", preset), "codec_train": CODEC_TRAIN_PRESETS[preset],
            "dpd": denoiser_config("dpd", preset), "mulan": MULAN_PRESETS[preset],
            "tokenizer": TOKENIZER_PRESETS[preset], "lm": LM_PRESETS[preset]}


@pytest.mark.parametrize("preset", ["paper", "paper_micro"])
def test_recipe_is_the_papers_operating_point(preset):
    recipe, corpus, c = RECIPES[preset], get_preset(RECIPES[preset].corpus), _configs(preset)
    assert recipe.num_chunks == 4 and recipe.context_chunks is None and recipe.guidance == 2.5
    assert DenoiserTrainConfig.for_preset(preset).num_chunks == 4
    assert c["dpd"].rnn_type == "sru" and c["dpd"].cross_attention == "position"
    assert c["codec"].enc_layout == "stage" and c["codec_train"].loss == "paper_exact"
    assert c["codec"].enc_strides == (2, 3, 4, 4)  # hop 96: 250 latent frames per second
    # one sample rate end to end, and the LM's window is one training clip
    rates = {c["codec"].sample_rate, c["mulan"].sample_rate, c["tokenizer"].sample_rate}
    assert rates == {corpus.sample_rate} == {24000}
    tokens = round(corpus.clip_seconds * c["tokenizer"].token_rate)
    assert c["lm"].max_tokens == tokens
    # the LM step is one chunk (62.5 tokens at the paper's 10 s, M = 4), rounded down
    assert recipe.lm_step_tokens == math.floor(tokens / recipe.num_chunks)
    assert STAGE_STEPS[preset]  # train all knows its steps


def test_paper_micro_shares_the_paper_presets_code_paths():
    paper, twin = _configs("paper"), _configs("paper_micro")
    for part in paper:
        assert _switches(twin[part]) == _switches(paper[part]), part
    assert RECIPES["paper"].corpus == "paper" and get_preset("paper").clip_seconds == 10.0


def test_tiny_and_micro_recipes_are_unchanged():
    for preset in ("micro", "tiny"):
        assert DenoiserTrainConfig.for_preset(preset).num_chunks == 5
        assert RECIPES[preset].lm_step_tokens is None
        assert denoiser_config("dpd", preset).cross_attention == "segment"
    assert DenoiserTrainConfig(preset="paper", num_chunks=3).num_chunks == 3  # explicit M wins


@pytest.fixture(scope="module")
def paper_micro_corpus(tmp_path_factory):
    from melody_lab.data.build import build_corpus

    root = tmp_path_factory.mktemp("paper_micro_corpus")
    build_corpus(root, get_preset("paper_micro"), seed=0, progress=False)
    return root


def test_train_all_paper_micro_then_generate(paper_micro_corpus, tmp_path):
    runs = tmp_path / "runs"
    bundle = train_all("paper_micro", paper_micro_corpus, runs, progress=False)
    codec_run = json.loads((runs / "codec" / "config.json").read_text())
    assert codec_run["train"]["loss"] == "paper_exact"
    denoiser_run = json.loads((runs / "denoiser" / "config.json").read_text())
    assert denoiser_run["denoiser_train"]["num_chunks"] == 4

    model = MeLoDy.from_pretrained(bundle)
    assert (model.config.num_chunks, model.config.context_chunks) == (4, None)
    assert (model.config.lm_step_tokens, model.config.guidance) == (12, 2.5)
    assert (model.denoiser.config.rnn_type, model.denoiser.config.cross_attention) == ("sru",
                                                                                       "position")
    assert model.codec.config.enc_layout == "stage"
    assert {model.sample_rate, model.mulan.config.sample_rate,
            model.tokenizer.config.sample_rate} == {24000}
    assert model.window_frames == 500 and model.lm.config.max_tokens == 50  # 2-s windows

    # 5 s: the LM writes 50 tokens, then slides by one chunk (12 new tokens after 38 kept) …
    calls = []
    extend = model.lm._extend

    def record(prompt, num_new, *args):
        calls.append((prompt.shape[1] - model.lm.config.mulan_levels, num_new))
        return extend(prompt, num_new, *args)

    model.lm._extend = record
    done = []
    audio = model.generate(["a reel"], 5.0, steps=2, callback=lambda d, t: done.append((d, t)))
    assert audio.shape == (1, 5 * 24000) and torch.isfinite(audio).all()
    assert calls == [(0, 50)] + [(38, 12)] * 6 + [(38, 3)]  # 50 + 6·12 + 3 = 125 tokens
    # … and the denoiser slides by one chunk (125 frames): 1 + ⌈(1250 − 500) / 125⌉ = 7 windows
    assert model.diffusion_windows(1250) == 7 and done[-1] == (14, 14)

    model.config = model.config.replace(lm_step_tokens=0)
    with pytest.raises(UserError, match="lm_step_tokens must lie in"):
        model.generate(["a reel"], 1.0, steps=1)
