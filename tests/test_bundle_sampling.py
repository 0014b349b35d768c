"""The sampling settings a bundle stores: `melody-lab bundle --lm-step`, kept when re-bundling, and
`ablation.load_pipeline` rebuilding a row's model with the settings the runner sampled it with.
The components come from the shipped tiny bundle (`tiny` for every stage), so nothing trains."""
import json

import pytest

from melody_lab.ablation import load_pipeline
from melody_lab.cli import main
from melody_lab.io import SHIPPED_BUNDLES
from melody_lab.pipeline import MeLoDy

pytestmark = pytest.mark.skipif(not (SHIPPED_BUNDLES / "tiny").is_dir(),
                                reason="needs the shipped tiny bundle")
TINY = {s: "tiny" for s in ("codec", "mulan", "tokenizer", "lm", "denoiser")}


def _bundle(out, *extra, parts=TINY):
    return main(["bundle", *(f"--{s}={p}" for s, p in parts.items()), "--out", str(out), *extra])


def test_lm_step_is_stored_checked_and_kept_when_rebundling(tmp_path, capsys):
    assert _bundle(tmp_path / "a", "--lm-step", "40") == 0
    model = MeLoDy.from_pretrained(tmp_path / "a")
    assert model.config.lm_step_tokens == 40
    saved = json.loads((tmp_path / "a" / "melody.json").read_text())["config"]
    assert saved["lm_step_tokens"] == 40
    # re-bundling from that bundle's parts keeps its LM step unless told otherwise
    parts = {s: tmp_path / "a" / s for s in TINY}
    assert _bundle(tmp_path / "b", parts=parts) == 0
    assert MeLoDy.from_pretrained(tmp_path / "b").config.lm_step_tokens == 40
    assert _bundle(tmp_path / "c", "--lm-step", "125", parts=parts) == 0
    assert MeLoDy.from_pretrained(tmp_path / "c").config.lm_step_tokens == 125
    capsys.readouterr()
    for bad in ("0", "126"):  # the tiny LM's max_tokens is 125
        assert _bundle(tmp_path / "bad", "--lm-step", bad) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "--lm-step must be between 1 and 125" in err, err
        assert not (tmp_path / "bad").exists()


def test_load_pipeline_applies_the_rows_sampling_settings():
    row = {"runs": dict(TINY),
           "sampling": {"context_chunks": 3, "lm_step_tokens": 50, "guidance": 4.0}}
    config = load_pipeline(row).config
    assert (config.context_chunks, config.lm_step_tokens, config.guidance) == (3, 50, 4.0)
    # a row written before rows recorded their sampling, from runs whose LM record names no
    # preset (here: bundle parts): the bundle's own settings, as before
    config = load_pipeline({"runs": dict(TINY)}).config
    shipped = MeLoDy.from_pretrained("tiny").config
    assert (config.context_chunks, config.lm_step_tokens, config.lm_guidance) == (
        shipped.context_chunks, shipped.lm_step_tokens, shipped.lm_guidance)
