"""The one stage table (train all + ablations) and grid sections whose names come from registries."""
import inspect
import math

import pytest

from melody_lab.ablation import grid_from_dict
from melody_lab.errors import UserError
from melody_lab.train.stages import PRESETS, STAGES, stage_steps

GRID = {"data": {"preset": "micro"}, "train": {"preset": "micro"},
        "axes": {"schedule": ["linear"], "steps": [2], "denoiser": ["dpd/micro"]}}


def test_the_table_lists_each_stage_after_its_upstream_stages():
    order = list(STAGES)
    assert order == ["codec", "mulan", "tokenizer", "lm", "denoiser"]
    for i, stage in enumerate(STAGES.values()):
        assert all(order.index(u) < i for u in stage.upstream), stage.name
        params = list(inspect.signature(stage.train).parameters)
        assert params[:4] == ["config", "data", "out", "loop"], stage.name
        assert set(stage.upstream) <= set(params), stage.name   # upstream folders by stage name
        config = stage.make_config("micro")
        assert isinstance(config, stage.config) and config.preset == "micro"


@pytest.mark.parametrize("preset", PRESETS)
def test_step_counts_live_in_one_table(preset):
    steps = stage_steps(preset)
    gradient = [name for name, stage in STAGES.items() if stage.gradient]
    assert sorted(steps) == sorted(gradient) and all(isinstance(steps[s], int) for s in gradient)
    loop = STAGES["mulan"].loop(STAGES["mulan"].make_config(preset), seed=3)
    assert (loop.max_steps, loop.seed) == (steps["mulan"], 3)
    assert stage_steps(preset, {"lm": 7})["lm"] == 7
    with pytest.raises(UserError, match="unknown preset"):
        stage_steps("huge")


def test_finished_needs_the_steps_and_the_products(tmp_path):
    import json

    run = tmp_path / "mulan"
    (run / "ckpt-00000005").mkdir(parents=True)
    (run / "ckpt-00000005" / "state.json").write_text(json.dumps({"step": 5}))
    (run / "latest").write_text("ckpt-00000005")
    mulan = STAGES["mulan"]
    assert not mulan.finished(run, 5)                      # no rvq/ yet
    (run / "rvq").mkdir()
    (run / "rvq" / "config.json").write_text("{}")
    assert mulan.finished(run, 5) and not mulan.finished(run, 6)
    assert STAGES["tokenizer"].finished(run, 10**6)        # fitted once: any checkpoint


def test_the_docs_schedule_example_becomes_a_grid_axis_value_with_no_other_change():
    """docs/architecture.md, "Adding a grid axis": the schedule as written there, registered, is
    valid in the grid's axes.schedule (the YAML shown there) and in MeLoDy's schedule argument."""
    import re
    from pathlib import Path

    import yaml

    from melody_lab.diffusion import SCHEDULES, get_schedule, schedules

    text = (Path(__file__).resolve().parents[1] / "docs" / "architecture.md").read_text()
    section = text.split("## Adding a grid axis", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    (axes,) = re.findall(r"```yaml\n(.*?)```", section, flags=re.S)
    assert len(code.strip().splitlines()) < 30
    grid = {**GRID, "axes": {**GRID["axes"], **yaml.safe_load(axes)["axes"]}}
    with pytest.raises(UserError, match="unknown schedule 'cosine'"):
        grid_from_dict(grid)
    exec(code, {**vars(schedules)})                      # as if written in diffusion/schedules.py
    try:
        assert [c.schedule for c in grid_from_dict(grid).configurations()] == \
            ["uniform", "linear", "cosine"]
        angles = get_schedule("cosine").angles(8)
        assert angles[0] == math.pi / 2 and angles[-1] == 0 and bool((angles.diff() < 0).all())
        assert (angles[-2] - angles[-1]) < (angles[0] - angles[1])   # small steps near the data
    finally:
        SCHEDULES._items.pop("cosine")


def test_grid_sections_are_typed_configs():
    grid = grid_from_dict({**GRID, "eval": {"prompts": 4, "seeds": 1, "clap": "none"}})
    assert grid.eval.prompts == 4 and grid.eval.seeds == [1] and grid.eval.clap is None
    assert grid.train.codec_preset == "micro" and grid.axes.denoisers() == [("dpd", "micro")]
    assert grid.fixed_settings()["train"] == {"preset": "micro", "codec_preset": "micro", "seed": 0,
                                              "steps": {}}
    with pytest.raises(UserError, match="eval.seeds must be an integer >= 0"):
        grid_from_dict({**GRID, "eval": {"seeds": [-1]}})
    with pytest.raises(UserError, match="eval.confidence"):
        grid_from_dict({**GRID, "eval": {"confidence": 1.5}})
    with pytest.raises(UserError, match="eval.duration_s must be a positive number"):
        grid_from_dict({**GRID, "eval": {"duration_s": "long"}})
