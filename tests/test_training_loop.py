"""The shared loop: exact resume, atomic checkpoints, non-finite stop, config guard."""
import json

import pytest
import torch

from melody_lab.train.checkpoint import latest_checkpoint, load_checkpoint
from melody_lab.train.loop import LoopConfig, NonFiniteLossError, run_training


class ToyTask:
    """Linear regression with dropout, so both the per-step generator and global RNG matter."""

    name = "toy"

    def __init__(self, nan_at: int | None = None):
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.2), torch.nn.Linear(8, 1))
        self.opt = torch.optim.Adam(self.net.parameters(), lr=1e-2)
        self.nan_at = nan_at
        self.w = torch.tensor([[1.0], [-2.0], [0.5], [3.0]])

    def modules(self):
        return {"net": self.net}

    def optimizers(self):
        return {"opt": self.opt}

    def train_step(self, step, generator):
        x = torch.randn(16, 4, generator=generator)
        loss = ((self.net(x) - x @ self.w) ** 2).mean()
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        value = float("nan") if step == self.nan_at else loss.item()
        return {"loss": value}

    def validate(self):
        x = torch.randn(64, 4, generator=torch.Generator().manual_seed(123))
        return {"mse": ((self.net(x) - x @ self.w) ** 2).mean().item()}


def _params(task):
    return torch.cat([p.detach().flatten() for p in task.net.parameters()])


def test_interrupted_then_resumed_equals_uninterrupted(tmp_path):
    cfg = LoopConfig(max_steps=30, ckpt_every=10, val_every=10, progress=False)
    straight = ToyTask()
    run_training(straight, tmp_path / "a", cfg)

    interrupted = ToyTask()
    run_training(interrupted, tmp_path / "b", cfg.replace(max_steps=20))
    resumed = ToyTask()  # a fresh process: new objects, state only from disk
    state = run_training(resumed, tmp_path / "b", cfg)
    assert state["step"] == 30
    assert torch.equal(_params(straight), _params(resumed))
    with torch.no_grad():
        initial = ToyTask().validate()["mse"]
    assert state["val"]["mse"] < 0.7 * initial  # and it learned something


def test_checkpoints_are_safetensors_and_pruned(tmp_path):
    run_training(ToyTask(), tmp_path, LoopConfig(max_steps=40, ckpt_every=10, keep_checkpoints=2,
                                                 progress=False))
    ckpts = sorted(p.name for p in tmp_path.glob("ckpt-*"))
    assert ckpts == ["ckpt-00000030", "ckpt-00000040"]
    latest = latest_checkpoint(tmp_path)
    assert latest.name == "ckpt-00000040"
    assert {p.name for p in latest.iterdir()} == {"net.safetensors", "opt.optim.safetensors",
                                                 "opt.optim.json", "state.json"}
    assert not list(tmp_path.glob(".ckpt-*"))
    state = load_checkpoint(latest, ToyTask().modules())
    assert state["step"] == 40
    lines = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert any("val" in line for line in lines) and any("loss" in line for line in lines)


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    with pytest.raises(NonFiniteLossError, match="step 15"):
        run_training(ToyTask(nan_at=15), tmp_path, LoopConfig(max_steps=30, ckpt_every=10,
                                                              progress=False))
    assert latest_checkpoint(tmp_path).name == "ckpt-00000010"


def test_resume_with_different_settings_is_refused(tmp_path):
    run_training(ToyTask(), tmp_path, LoopConfig(max_steps=5, progress=False, seed=1))
    with pytest.raises(ValueError, match="different configuration"):
        run_training(ToyTask(), tmp_path, LoopConfig(max_steps=10, progress=False, seed=2))


def test_refusal_names_the_changed_setting_and_newer_settings_are_recorded(tmp_path, capsys):
    run_training(ToyTask(), tmp_path, LoopConfig(max_steps=5, progress=False),
                 {"model": {"width": 8}})
    with pytest.raises(ValueError, match=r"model\.width: 8 → 16"):
        run_training(ToyTask(), tmp_path, LoopConfig(max_steps=10, progress=False),
                     {"model": {"width": 16}})
    # a setting the saved run predates (written by an older version) does not block the resume
    state = run_training(ToyTask(), tmp_path, LoopConfig(max_steps=10, progress=False),
                         {"model": {"width": 8, "dropout": 0.0}})
    assert state["step"] == 10 and "model.dropout = 0.0" in capsys.readouterr().out
    assert json.loads((tmp_path / "config.json").read_text())["model"]["dropout"] == 0.0
    with pytest.raises(ValueError, match=r"model\.dropout: 0\.0 → \(absent\)"):
        run_training(ToyTask(), tmp_path, LoopConfig(max_steps=12, progress=False),
                     {"model": {"width": 8}})
