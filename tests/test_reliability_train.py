"""Issue 17 items 7, 10 and 12 (log): training is seeded before the model is built, training
arguments are range-checked when parsed, and a resumed run logs every step once."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from melody_lab.cli import main
from melody_lab.config import ConfigError
from melody_lab.train.loop import LoopConfig, run_training


def _weights(run: Path, name: str) -> bytes:
    return (run / (run / "latest").read_text().strip() / f"{name}.safetensors").read_bytes()


def test_train_codec_same_seed_gives_the_same_weights(micro_corpus, tmp_path):
    from melody_lab.train.codec import CodecStageConfig, train_codec

    loop = LoopConfig(max_steps=1, val_every=1, ckpt_every=1, progress=False)
    for name, seed, noise in (("a", 0, 1), ("b", 0, 2), ("c", 1, 1)):
        torch.manual_seed(noise)  # whatever ran before in this process must not matter
        torch.rand(noise)
        train_codec(CodecStageConfig("vaegan", "micro"), micro_corpus, tmp_path / name,
                    loop.replace(seed=seed))
    for module in ("codec", "discriminator"):
        assert _weights(tmp_path / "a", module) == _weights(tmp_path / "b", module)
        assert _weights(tmp_path / "a", module) != _weights(tmp_path / "c", module)


def test_train_denoiser_same_seed_gives_the_same_weights(micro_corpus, tmp_path):
    from melody_lab.codecs import build_codec, save_codec
    from melody_lab.semantic import SemanticTokenizer
    from melody_lab.semantic.tokenizer import TOKENIZER_PRESETS
    from melody_lab.train.denoiser import DenoiserTrainConfig, train_denoiser

    torch.manual_seed(0)
    save_codec(build_codec("vaegan", "micro"), tmp_path / "codec")
    SemanticTokenizer(TOKENIZER_PRESETS["micro"]).fit(torch.randn(4, 32000) * 0.1, seed=0) \
        .save_pretrained(tmp_path / "tokenizer")
    loop = LoopConfig(max_steps=1, val_every=1, ckpt_every=1, progress=False)
    config = DenoiserTrainConfig(denoiser="dpd", preset="micro", batch_size=2, val_clips=1)
    for name, noise in (("a", 1), ("b", 2)):
        torch.manual_seed(noise)
        torch.rand(noise)
        train_denoiser(config, micro_corpus, tmp_path / name, loop, codec=tmp_path / "codec",
                       tokenizer=tmp_path / "tokenizer", cache_dir=tmp_path / "cache")
    assert _weights(tmp_path / "a", "denoiser") == _weights(tmp_path / "b", "denoiser")


def _run(argv):
    try:
        return main(argv)
    except SystemExit as exit_:
        return exit_.code


@pytest.mark.parametrize("argv, match", [
    (["codec", "--steps", "0"], "steps must lie in [1, 1e+09]"),
    (["codec", "--steps", "-1"], "steps must lie in [1, 1e+09]"),
    (["codec", "--steps", "2", "--batch-size", "0"], "batch-size must lie in [1, 4096]"),
    (["codec", "--steps", "2", "--batch-size", "-4"], "batch-size must lie in [1, 4096]"),
    (["codec", "--steps", "2", "--max-minutes", "-1"], "max-minutes must lie in (0,"),
    (["codec", "--steps", "2", "--max-minutes", "nan"], "max-minutes must lie in (0,"),
    (["codec", "--steps", "2", "--val-every", "0"], "val-every must lie in [1,"),
    (["codec", "--steps", "2", "--ckpt-every", "0"], "ckpt-every must lie in [1,"),
    (["codec", "--steps", "2", "--seed", "-3"], "seed must lie in [0,"),
    (["mulan", "--max-steps", "0"], "max-steps must lie in [1,"),
    (["mulan", "--max-steps", "-5"], "max-steps must lie in [1,"),
    (["lm", "--max-steps", "0", "--mulan", "m", "--tokenizer", "t"], "max-steps must lie in [1,"),
    (["lm", "--text-prob", "1.5", "--mulan", "m", "--tokenizer", "t"], "text-prob must lie in [0, 1]"),
    (["denoiser", "--steps", "2", "--batch-size", "0", "--codec", "c", "--tokenizer", "t"],
     "batch-size must lie in [1, 4096]"),
    (["all", "--max-minutes", "0"], "max-minutes must lie in (0,"),
    (["codec", "--steps", "2", "--out", "FILE"], "is a file, not a folder"),
])
def test_training_arguments_are_range_checked(argv, match, micro_corpus, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    out = tmp_path / "run"
    argv = [str(tmp_path / "file") if a == "FILE" else a for a in argv]
    if "--out" not in argv:
        argv += ["--out", str(out)]
    code = _run(["train", *argv, "--data", str(micro_corpus)])
    err = capsys.readouterr().err
    assert code == 2 and match in err and "Traceback" not in err, err
    assert not out.exists()


def test_ablate_grid_that_is_not_utf8(tmp_path, capsys):
    grid = tmp_path / "grid.yaml"
    grid.write_bytes(b"name: caf\xe9\n")
    code = _run(["ablate", str(grid), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "is not UTF-8 text" in err and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()


class _Toy:
    name = "toy"

    def __init__(self, crash_at=None):
        torch.manual_seed(0)
        self.net = torch.nn.Linear(2, 1)
        self.opt = torch.optim.SGD(self.net.parameters(), lr=0.1)
        self.crash_at = crash_at

    def modules(self):
        return {"net": self.net}

    def optimizers(self):
        return {"opt": self.opt}

    def train_step(self, step, generator):
        if step == self.crash_at:
            raise KeyboardInterrupt  # killed: after the log rows of steps 6-7, before a checkpoint
        x = torch.randn(4, 2, generator=generator)
        loss = (self.net(x) ** 2).mean()
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return {"loss": loss.item()}

    def validate(self):
        return {"w": float(self.net.weight.sum())}


def test_resumed_run_logs_each_step_once(tmp_path):
    loop = LoopConfig(max_steps=10, log_every=1, val_every=5, ckpt_every=5, progress=False)
    with pytest.raises(KeyboardInterrupt):
        run_training(_Toy(crash_at=7), tmp_path / "a", loop)
    run_training(_Toy(), tmp_path / "a", loop)
    run_training(_Toy(), tmp_path / "a", loop)  # a finished run, re-run: nothing new
    run_training(_Toy(), tmp_path / "b", loop)  # never interrupted
    read = [[json.loads(line) for line in (tmp_path / run / "log.jsonl").read_text().splitlines()]
            for run in ("a", "b")]
    steps = [[(r["step"], "val" in r) for r in rows] for rows in read]
    assert steps[0] == steps[1] and len(set(steps[0])) == len(steps[0]) == 12
    strip = [[{k: v for k, v in r.items() if k != "time"} for r in rows] for rows in read]
    assert strip[0] == strip[1]  # the same values too: resume is exact


@pytest.mark.parametrize("change", [dict(max_steps=0), dict(val_every=0), dict(ckpt_every=0),
                                    dict(log_every=-1), dict(max_minutes=float("nan")),
                                    dict(max_minutes=-1.0), dict(max_steps=2.5)])
def test_loop_config_is_checked_before_anything_is_written(change, tmp_path):
    with pytest.raises(ConfigError):
        run_training(_Toy(), tmp_path / "run", LoopConfig(progress=False).replace(**change))
    assert not (tmp_path / "run").exists()


def test_api_max_steps_zero_is_refused_not_replaced_by_the_preset(micro_corpus, tmp_path):
    from melody_lab.train.mulan import MuLanStageConfig, train_mulan

    config = MuLanStageConfig("micro")
    with pytest.raises(ConfigError, match="max_steps must be an integer >= 1"):
        train_mulan(config, micro_corpus, tmp_path / "run", config.loop(0, progress=False))
