"""Classifier-free guidance in the semantic LM (issue 13): the null prefix, its training dropout,
guided sampling (batched, KV-cached), and the old bundle's unchanged behaviour (micro presets)."""
import math

import pytest
import torch

from melody_lab.cli import main
from melody_lab.errors import UserError
from melody_lab.semantic import SemanticLM, build_lm
from melody_lab.semantic.lm import LM_PRESETS, SemanticLMConfig
from melody_lab.train.lm import LMTask, LMTrainConfig
from melody_lab.train.loop import step_generator


def _codes(lm, batch, seed=1):
    c = lm.config
    return torch.randint(0, c.mulan_codebook_size, (batch, c.mulan_levels),
                         generator=torch.Generator().manual_seed(seed))


def _data(lm, n=32, length=60, seed=0):
    """Synthetic pairs whose tokens depend on the codes (token t = code of level t mod L, mod V)."""
    c, g = lm.config, torch.Generator().manual_seed(seed)
    audio = torch.randint(0, c.mulan_codebook_size, (n, c.mulan_levels), generator=g)
    pos = torch.arange(length) % c.mulan_levels
    tokens = (audio[:, pos] + torch.arange(length) // c.mulan_levels) % c.semantic_vocab
    return {"tokens": tokens, "audio_codes": audio, "text_codes": audio[:, None].repeat(1, 2, 1)}


@pytest.fixture(scope="module")
def lm():
    torch.manual_seed(0)
    model = build_lm("micro").eval()
    with torch.no_grad():  # a null prefix unlike the codes' rows, so guidance changes the logits
        model.null_prefix.normal_(generator=torch.Generator().manual_seed(3))
    return model


def test_presets_and_defaults():
    from melody_lab.semantic.lm import LM_PRESETS, SemanticLMConfig

    assert SemanticLMConfig().cond_dropout == 0.0  # old configs (no such field) keep no dropout
    assert all(LM_PRESETS[p].cond_dropout == 0.1 for p in ("micro", "tiny", "paper", "paper_micro"))
    assert not SemanticLM(LM_PRESETS["micro"].replace(cond_dropout=0.0)).has_null_prefix
    with pytest.raises(UserError, match="cond_dropout"):
        SemanticLM(LM_PRESETS["micro"].replace(cond_dropout=1.0))


def _reference_tokens(lm, codes, n, temperature, top_k, seed):
    """Today's sampler written out: full forward on [prefix; tokens so far], pick, append."""
    gen = torch.Generator().manual_seed(seed)
    ids = lm.prefix_ids(codes)
    for _ in range(n):
        with torch.no_grad():
            nxt = lm._pick(lm(ids)[:, -1], temperature, top_k, gen)
        ids = torch.cat([ids, nxt[:, None]], dim=1)
    return ids[:, codes.shape[1]:]


def test_guidance_one_is_the_plain_sampler(lm):
    codes = _codes(lm, 3)
    ref = _reference_tokens(lm, codes, 40, 1.0, 8, seed=5)
    for use_cache in (True, False):
        assert torch.equal(lm.generate(codes, 40, top_k=8, seed=5, use_cache=use_cache), ref)
        assert torch.equal(lm.generate(codes, 40, top_k=8, seed=5, use_cache=use_cache,
                                       guidance=1.0), ref)
    # the same weights without a null prefix sample the same tokens: guidance 1 never uses it
    plain = SemanticLM(lm.config.replace(cond_dropout=0.0)).eval()
    plain.load_state_dict({k: v for k, v in lm.state_dict().items() if k != "null_prefix"})
    assert torch.equal(plain.generate(codes, 40, top_k=8, seed=5), ref)


def test_guided_logits_are_the_cfg_combination(lm):
    codes = _codes(lm, 2)
    ids = torch.cat([lm.prefix_ids(codes), torch.randint(0, 16, (2, 7))], dim=1)
    with torch.no_grad():
        cond = lm(ids)[:, -1]
        uncond = lm(ids, null=torch.ones(2, dtype=torch.bool))[:, -1]
        guided = lm._next_logits(ids, 0, None, 3.0)
    assert not torch.allclose(cond, uncond)
    torch.testing.assert_close(guided, uncond + 3.0 * (cond - uncond), rtol=1e-5, atol=1e-5)
    # guidance 0 samples the unconditional model: the tokens no longer depend on the codes
    other = (codes + 1) % lm.config.mulan_codebook_size
    assert torch.equal(lm.generate(codes, 30, seed=2, guidance=0.0),
                       lm.generate(other, 30, seed=2, guidance=0.0))
    assert not torch.equal(lm.generate(codes, 30, seed=2, guidance=3.0),
                           lm.generate(codes, 30, seed=2))


def test_guided_cached_equals_uncached(lm):
    codes = _codes(lm, 3)
    cached = lm.generate(codes, 80, top_k=8, seed=4, guidance=3.0, use_cache=True)
    assert torch.equal(cached, lm.generate(codes, 80, top_k=8, seed=4, guidance=3.0,
                                           use_cache=False))
    previous = cached[:, :20]  # the sliding window (several chunks) too
    assert torch.equal(lm.continue_tokens(codes, previous, 70, window=10, seed=1, guidance=3.0),
                       lm.continue_tokens(codes, previous, 70, window=10, seed=1, guidance=3.0,
                                          use_cache=False))


def test_guidance_refused_without_a_null_prefix_or_when_not_finite(lm):
    plain = SemanticLM(lm.config.replace(cond_dropout=0.0))
    with pytest.raises(UserError, match="cond_dropout"):
        plain.generate(_codes(lm, 1), 5, guidance=2.0)
    for bad in (math.nan, math.inf, -1.0):
        with pytest.raises(UserError, match="LM guidance"):
            lm.generate(_codes(lm, 1), 5, guidance=bad)


def test_null_prefix_ignores_the_codes(lm):
    tokens = torch.randint(0, 16, (2, 20))
    null = torch.ones(2, dtype=torch.bool)
    a = lm.loss(_codes(lm, 2, seed=1), tokens, null)
    assert torch.equal(a, lm.loss(_codes(lm, 2, seed=2), tokens, null))
    assert not torch.equal(lm.loss(_codes(lm, 2, seed=1), tokens),
                           lm.loss(_codes(lm, 2, seed=2), tokens))


def test_training_dropout_rate_and_its_stream():
    """The null mask of each step comes from the step's generator at rate cond_dropout."""
    torch.manual_seed(0)
    model = build_lm("micro", cond_dropout=0.25)
    data = _data(model)
    task = LMTask(model, LMTrainConfig(batch_size=16, warmup_steps=1), data, data, total_steps=100)
    masks = []
    real_loss = model.loss

    def recording_loss(codes, tokens, null=None):
        masks.append(null.clone())
        return (model.null_prefix * 0).sum()  # no forward pass: only the draws are measured

    model.loss = recording_loss
    for step in range(100):
        task.train_step(step, step_generator(0, step))
    drawn = torch.cat(masks).float()
    n, p = len(drawn), 0.25
    assert abs(drawn.mean().item() - p) < 4.5 * math.sqrt(p * (1 - p) / n), drawn.mean()
    again = []
    model.loss = lambda codes, tokens, null=None: (again.append(null), recording_loss(
        codes, tokens, null))[1]
    task.train_step(37, step_generator(0, 37))  # the same step redraws the same mask (resume)
    assert torch.equal(again[0], masks[37])
    model.loss = real_loss
    # without dropout nothing extra is drawn: the step's stream (and old runs' resume) is unchanged
    off = build_lm("micro", cond_dropout=0.0)
    seen = []
    off.loss = lambda codes, tokens, null=None: (seen.append(null),
                                                 sum(p.sum() * 0 for p in off.parameters()))[1]
    LMTask(off, LMTrainConfig(batch_size=16), data, data, 10).train_step(0, step_generator(0, 0))
    assert seen == [None]


def test_an_lm_with_cond_dropout_trains():
    """Tokens that copy the codes (random, so only the prefix tells them): the conditional model
    learns them, the null prefix learns the marginal, and the loss falls."""
    torch.manual_seed(0)
    model = build_lm("micro", cond_dropout=0.3, max_tokens=4)
    data = _data(model, n=64, length=4)
    task = LMTask(model, LMTrainConfig(batch_size=32, lr=3e-3, warmup_steps=2), data, data,
                  total_steps=100)
    start = model.null_prefix.detach().clone()
    losses = [task.train_step(step, step_generator(0, step))["loss"] for step in range(100)]
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5, losses
    assert not torch.equal(model.null_prefix.detach(), start)  # the null prefix is learnt
    model.eval()
    codes, tokens = data["audio_codes"], data["tokens"]
    with torch.no_grad():
        cond = model.loss(codes, tokens)
        uncond = model.loss(codes, tokens, torch.ones(len(codes), dtype=torch.bool))
    assert cond < 0.5 * uncond, (cond, uncond)


def test_an_lm_without_cond_dropout_refuses_guidance():
    """An LM of an old config (no ``cond_dropout`` field → 0) has no null prefix: guidance 1 only."""
    lm = SemanticLM(SemanticLMConfig.from_dict(
        {k: v for k, v in LM_PRESETS["micro"].to_dict().items() if k != "cond_dropout"}))
    assert lm.config.cond_dropout == 0.0 and not lm.has_null_prefix
    from melody_lab.pipeline import MeLoDyConfig
    assert MeLoDyConfig().lm_guidance == 1.0
    with pytest.raises(UserError, match="cond_dropout"):
        lm.generate(torch.zeros(1, lm.config.mulan_levels, dtype=torch.long), 3, guidance=2.0)


def test_shipped_bundle_samples_with_lm_guidance():
    """The shipped tiny bundle's LM was trained with CFG dropout and samples with guidance 3."""
    from melody_lab.pipeline import MeLoDy

    model = MeLoDy.from_pretrained("tiny")
    assert model.lm.config.cond_dropout == 0.1 and model.lm.has_null_prefix
    assert model.config.lm_guidance == 3.0


def _run(argv):
    try:
        return main(argv)
    except SystemExit as exit_:
        return exit_.code


@pytest.mark.parametrize("value, match", [("25", "lm-guidance must lie in [0, 20]"),
                                          ("-1", "lm-guidance must lie in [0, 20]"),
                                          ("nan", "lm-guidance must lie in [0, 20]"),
                                          ("abc", "expected a number")])
def test_cli_lm_guidance_bounds(value, match, tmp_path, capsys):
    out = tmp_path / "x.wav"
    assert _run(["generate", "a reel", "--lm-guidance", value, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert match in err and "Traceback" not in err and not out.exists()


def _bundle_without_cfg(folder):
    """A debug (micro) bundle whose LM has no null prefix (``cond_dropout`` 0, as before CFG)."""
    from melody_lab.debug import build_debug_pipeline

    model = build_debug_pipeline()
    model.lm = SemanticLM(model.lm.config.replace(cond_dropout=0.0))
    return str(model.save_pretrained(folder))


def test_cli_lm_guidance_needs_a_cfg_lm(tmp_path, capsys):
    out = tmp_path / "x.wav"
    bundle = _bundle_without_cfg(tmp_path / "old")
    assert _run(["generate", "a reel", "--bundle", bundle, "--lm-guidance", "3",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "cond_dropout" in err and "Traceback" not in err and not out.exists()


def test_cli_lm_guidance_reaches_the_plan(tmp_path, capsys):
    """A debug bundle (micro LM with a null prefix): the flag changes the plan and the sidecar."""
    import json

    import soundfile as sf

    from melody_lab.debug import build_debug_pipeline

    bundle = str(build_debug_pipeline().save_pretrained(tmp_path / "micro"))
    clips = {}
    for g in ("1", "4"):
        out = tmp_path / f"g{g}.wav"
        assert _run(["generate", "a reel", "--duration", "1", "--steps", "1", "--lm-guidance", g,
                     "--bundle", bundle, "--out", str(out)]) == 0
        assert json.loads((tmp_path / f"g{g}.wav.json").read_text())["lm_guidance"] == float(g)
        clips[g] = sf.read(out)[0]
    assert (clips["1"] != clips["4"]).any()


def test_bundle_lm_guidance_needs_a_cfg_lm(tmp_path, capsys):
    out = tmp_path / "b"
    old = _bundle_without_cfg(tmp_path / "old")
    parts = [a for s in ("codec", "mulan", "tokenizer", "lm", "denoiser") for a in (f"--{s}", old)]
    assert _run(["bundle", *parts, "--lm-guidance", "2", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "cond_dropout" in err and "Traceback" not in err and not out.exists()


# ------------------------------------------------------- the preallocated KV cache (issue 15, item 3)
@pytest.mark.parametrize("guidance", [1.0, 3.0])
def test_cached_step_logits_equal_the_full_forward(lm, guidance):
    """Every cached step's logits equal the uncached forward's over the same ids (≤ 1e-5)."""
    codes = _codes(lm, 2)
    ids = torch.cat([lm.prefix_ids(codes), torch.randint(0, 16, (2, 30))], dim=1)
    p = lm.config.mulan_levels + 5
    cache = lm.new_cache(ids.shape[1])
    with torch.no_grad():
        steps = [lm._next_logits(ids[:, :p], 0, cache, guidance)]
        steps += [lm._next_logits(ids[:, i:i + 1], i, cache, guidance)
                  for i in range(p, ids.shape[1])]
        full = [lm._next_logits(ids[:, :i + 1], 0, None, guidance)
                for i in range(p - 1, ids.shape[1])]
    assert cache[0].length == ids.shape[1] and cache[0].k.shape[0] == (1 if guidance == 1 else 2) * 2
    for a, b in zip(steps, full):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_kv_cache_bounds_and_rotary_tables(lm):
    cache = lm.new_cache(3)
    with torch.no_grad():
        lm(torch.zeros(1, 3, dtype=torch.long), 0, cache)
        with pytest.raises(ValueError, match="cannot hold"):
            lm(torch.zeros(1, 1, dtype=torch.long), 3, cache)
    longest = lm.config.mulan_levels + lm.config.max_tokens
    assert lm.rope_cos.shape[0] == longest
    probe = build_lm("micro").eval()  # a longer input grows the tables to what direct rotary gives
    with torch.no_grad():
        probe(torch.zeros(1, longest + 7, dtype=torch.long))
    cos, sin = probe.rotary(torch.arange(longest + 7))
    assert torch.equal(probe.rope_cos, cos) and torch.equal(probe.rope_sin, sin)
