"""The ablation runner: a micro grid end to end, resume after a crash, grid validation."""
from __future__ import annotations

import csv
import json
import math

import pytest
import torch
import yaml

from melody_lab.ablation import grid_from_dict, load_grid, load_pipeline, run_ablation
from melody_lab.ablation.plots import pareto_front
from melody_lab.ablation.report import summary_markdown
from melody_lab.errors import UserError

MICRO_GRID = {
    "name": "micro-test",
    "train": {"preset": "micro", "steps": {"codec": 6, "mulan": 6, "lm": 6, "denoiser": 6}},
    "eval": {"prompts": 4, "seeds": [0], "duration_s": 1.0, "split": "all", "batch_size": 4,
             "rtf_warmup": 0, "rtf_repeats": 1, "bootstrap_resamples": 20},
    "axes": {"schedule": ["uniform", "linear"], "steps": [2], "guidance": [2.5],
             "denoiser": ["dpd/micro", "unet/micro"], "codec": ["vaegan"]},
}


class Crash(RuntimeError):
    pass


def _read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def crashed_then_resumed(micro_corpus, tmp_path_factory):
    """Run the micro grid, crash after its first row, then run it again to the end."""
    out = tmp_path_factory.mktemp("ablation")
    grid_file = out / "grid.yaml"
    grid_file.write_text(yaml.safe_dump({**MICRO_GRID, "data": {"corpus": str(micro_corpus)}}))
    first_calls = []

    def crash_after_first(row):
        first_calls.append(row["key"])
        raise Crash("killed after row 1")

    with pytest.raises(Crash):
        run_ablation(grid_file, out, on_row=crash_after_first)
    after_crash = _read_csv(out / "results.csv")
    row_file = out / "rows" / f"{first_calls[0]}.json"
    first_mtime = row_file.stat().st_mtime_ns
    second_calls = []
    rows = run_ablation(grid_file, out, on_row=lambda row: second_calls.append(row["key"]))
    return dict(out=out, grid_file=grid_file, first=first_calls, second=second_calls,
                after_crash=after_crash, rows=rows, row_file=row_file, first_mtime=first_mtime)


def test_micro_grid_end_to_end(crashed_then_resumed):
    out = crashed_then_resumed["out"]
    table = _read_csv(out / "results.csv")
    assert len(table) == 4 and len({r["key"] for r in table}) == 4
    for row in table:
        assert int(row["n_eval"]) == 4 and int(row["n_reference"]) > 4
        for column in ("fad_features", "fad_features_low", "fad_features_high", "mcc", "rtf",
                       "rtf_diffusion", "velocity_mse", "codec_mr_stft"):
            assert math.isfinite(float(row[column])), column
        assert float(row["fad_features_low"]) <= float(row["fad_features_high"])
        # the CLAP score is either measured by the evaluation CLAP or skipped with its reason
        assert row["clap_model"] == "evalclap-tiny"
        assert (row["clap_status"] == "ok" and math.isfinite(float(row["clap"]))) or \
            (row["clap_status"].startswith("skipped:") and row["clap"] == "")
        # attribute accuracy (zero-shot under the evaluation CLAP): fractions, with the real ceiling
        if row["clap_status"] == "ok":
            for column in ("attr_mean", "attr_mean_real", "attr_instrument", "attr_instrument_real"):
                assert 0.0 <= float(row[column]) <= 1.0, column
        assert row["attr_mean_real"] == table[0]["attr_mean_real"]  # one ceiling for the grid
    info = json.loads((out / "results.json").read_text())
    assert info["embedders"]["features"] == "ok"
    assert info["reference"]["n"] == int(table[0]["n_reference"])
    assert info["provenance"]["torch"] and info["provenance"]["cpu"]
    assert len(info["rows"]) == 4 and info["rows"][0]["detail"]["fad"]["features"]["n_eval"] == 4
    # shared stages: one semantic set, one codec, one denoiser per (codec, denoiser, preset)
    runs = sorted(p.name.rsplit("-", 1)[0] for p in (out / "runs").iterdir())
    assert runs == ["cache-vaegan", "codec-vaegan", "denoiser-vaegan-dpd-micro",
                    "denoiser-vaegan-unet-micro", "semantic"]  # both denoisers read one latent cache
    assert not any((p / "cache").exists() for p in (out / "runs").glob("denoiser-*"))
    # sampling-only axes share one model: same denoiser numbers for both schedules
    by_denoiser = {}
    for row in table:
        by_denoiser.setdefault(row["denoiser"], set()).add(row["velocity_mse"])
    assert all(len(values) == 1 for values in by_denoiser.values())


def test_resume_after_crash_loses_nothing_and_recomputes_nothing(crashed_then_resumed):
    r = crashed_then_resumed
    assert len(r["after_crash"]) == 1 and r["after_crash"][0]["key"] == r["first"][0]
    assert len(r["second"]) == 3 and r["first"][0] not in r["second"]  # row 1 was not recomputed
    assert r["row_file"].stat().st_mtime_ns == r["first_mtime"]
    table = _read_csv(r["out"] / "results.csv")
    assert table[0] == r["after_crash"][0]  # byte-for-byte the same finished row
    # a third run computes nothing and trains nothing
    calls = []
    run_ablation(r["grid_file"], r["out"], on_row=calls.append)
    assert calls == [] and _read_csv(r["out"] / "results.csv") == table


def test_cli_resumes_and_renders_plots_and_summary(crashed_then_resumed, capsys):
    from melody_lab.cli import main

    out = crashed_then_resumed["out"]
    assert main(["ablate", str(crashed_then_resumed["grid_file"]), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| configuration |" in text and "0 to run" in text
    for name in ("fad_vs_steps.png", "clap_vs_steps.png", "rtf_vs_steps.png", "pareto.png", "summary.md"):
        assert (out / name).stat().st_size > 0, name
    summary = (out / "summary.md").read_text()
    assert "n = 4 generated clips" in summary and "`features`" in summary


def test_load_pipeline_rebuilds_the_model_behind_a_row(crashed_then_resumed):
    row = next(r for r in crashed_then_resumed["rows"] if r["config"]["denoiser"] == "unet")
    model = load_pipeline(row)
    assert model.config.names == {"codec": "vaegan", "denoiser": "unet"}
    from melody_lab.train.stages import recipe  # the row records the recipe it sampled with

    saved = json.loads((crashed_then_resumed["out"] / "rows" / f"{row['key']}.json").read_text())
    assert row["sampling"] == saved["sampling"] == recipe("micro").sampling()
    assert sum(p.numel() for p in model.denoiser.parameters()) == row["columns"]["denoiser_params"]
    c = row["config"]
    audio = model.generate(["a jig"], duration_s=0.5, steps=c["steps"], schedule=c["schedule"],
                           guidance=c["guidance"], seed=0)
    assert audio.shape == (1, model.sample_rate // 2) and torch.isfinite(audio).all()


def test_eval_context_chunks_replaces_the_models_continuation(crashed_then_resumed, micro_corpus):
    from melody_lab.ablation.stages import Stages

    plain = grid_from_dict({**MICRO_GRID, "data": {"corpus": str(micro_corpus)}})
    assert "context_chunks" not in plain.fixed_settings()["eval"]  # absent: old row keys stay
    raw = {**MICRO_GRID, "data": {"corpus": str(micro_corpus)},
           "eval": {**MICRO_GRID["eval"], "context_chunks": 1}}
    grid = grid_from_dict(raw)
    config = grid.configurations()[0]
    assert grid.row_key(config) != plain.row_key(config)
    out = crashed_then_resumed["out"]  # its stages are trained: nothing trains here
    own, _ = Stages(plain, micro_corpus, out).pipeline(config)
    model, _ = Stages(grid, micro_corpus, out).pipeline(config)
    assert own.config.context_chunks != 1 and model.config.context_chunks == 1
    too_many = grid_from_dict({**raw, "eval": {**raw["eval"], "context_chunks": model.config.num_chunks}})
    with pytest.raises(UserError, match="eval.context_chunks must be below"):
        Stages(too_many, micro_corpus, out).pipeline(config)


def _grid(**changes) -> dict:
    raw = {**MICRO_GRID, "data": {"preset": "micro"}}
    for section, value in changes.items():
        raw[section] = value if not isinstance(value, dict) else {**raw.get(section, {}), **value}
    return raw


@pytest.mark.parametrize("changes, message", [
    ({"extra": 1}, "unknown section"),
    ({"eval": {"promts": 4}}, "unknown key.*'promts'.*in eval"),
    ({"axes": {"schedule": ["cosine"]}}, "unknown schedule 'cosine'"),
    ({"axes": {"steps": [0]}}, "axes.steps must be an integer >= 1"),
    ({"axes": {"steps": [4, 4]}}, "lists a value twice"),
    ({"axes": {"denoiser": ["dpd/huge"]}}, "unknown dpd preset 'huge'"),
    ({"axes": {"denoiser": ["transformer"]}}, "unknown denoiser 'transformer'"),
    ({"axes": {"codec": ["encodec"]}}, "unknown codec 'encodec'"),
    ({"train": {"steps": {"vocoder": 3}}}, "unknown key.*'vocoder'.*train.steps"),
    ({"train": {"preset": "large"}}, "unknown train.preset"),
    ({"train": {"crop_seconds": 0}}, "train.crop_seconds"),
    ({"data": {"corpus": "/nowhere"}}, "exactly one of corpus"),
    ({"eval": {"split": "dev"}}, "eval.split must be one of"),
    ({"eval": {"prompts": 1}}, "eval.prompts must be an integer >= 2"),
    ({"reuse": {"bundle": "/no/such/bundle"}}, "reuse.bundle = /no/such/bundle does not exist"),
])
def test_grid_validation_names_the_bad_key_or_value(changes, message):
    with pytest.raises(UserError, match=message):
        grid_from_dict(_grid(**changes))


def test_bundle_grids_may_only_vary_sampling_axes(tmp_path):
    with pytest.raises(UserError, match="only the sampling axes"):
        grid_from_dict(_grid(reuse={"bundle": str(tmp_path)}))


def test_quick_section_and_row_keys(tmp_path):
    raw = _grid(quick={"axes": {"steps": [1]}, "eval": {"prompts": 2}})
    full, quick = grid_from_dict(raw), grid_from_dict(raw, quick=True)
    assert [c.steps for c in quick.configurations()] == [1] * 4 and quick.eval.prompts == 2
    assert len(full.configurations()) == 4
    # keys: stable, distinct per configuration, and changed by any fixed setting
    keys = [full.row_key(c) for c in full.configurations()]
    assert len(set(keys)) == 4 and keys == [full.row_key(c) for c in grid_from_dict(raw).configurations()]
    other = grid_from_dict(_grid(eval={"seeds": [1]}))
    assert other.row_key(other.configurations()[0]) != keys[0]
    path = tmp_path / "g.yaml"
    path.write_text("axes: [unclosed")
    with pytest.raises(UserError, match="not valid YAML"):
        load_grid(path)


def test_shipped_grids_are_valid():
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "ablations"
    files = sorted(root.glob("*.yaml"))
    assert {f.stem for f in files} >= {"schedules", "denoisers", "codecs", "paper"}
    for path in files:
        for quick in (False, True):
            try:
                grid = load_grid(path, quick=quick)
            except UserError as err:  # a full grid may reference a bundle that is not built here
                assert not quick and "does not exist" in str(err), (path, err)
                continue
            assert grid.configurations(), path


def test_pareto_front_and_summary():
    mask = pareto_front([1.0, 2.0, 3.0, 2.5], [5.0, 3.0, 1.0, 4.0])
    assert mask.tolist() == [True, True, True, False]
    assert "no finished configurations" in summary_markdown({"rows": []})


def test_cli_bad_grid_is_one_line_error(tmp_path, capsys):
    from melody_lab.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(_grid(eval={"seeds": [-1]})))
    assert main(["ablate", str(bad), "--out", str(tmp_path / "out")]) == 2
    assert "eval.seeds must be an integer >= 0" in capsys.readouterr().err
    assert main(["ablate", str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "out")]) == 2


def test_attribute_accuracy_columns_follow_the_labels(micro_corpus):
    """The zero-shot attribute classifier scores the real clips against their own attributes;
    relabelling every clip with one wrong class drops that attribute's accuracy to zero."""
    from melody_lab.ablation.evaluate import (ATTRIBUTES, attribute_accuracy_columns,
                                              attribute_class_prompts, evaluation_set,
                                              real_attribute_accuracy)
    from melody_lab.data import ClipDataset
    from melody_lab.metrics import build_embedder

    clap = build_embedder("evalclap-tiny")
    prompts, labels = evaluation_set(micro_corpus, "all", 6)
    assert len(prompts) == len(labels) == 6 and set(labels[0]) == set(ATTRIBUTES)
    classes = attribute_class_prompts(micro_corpus)
    assert "instrument" in classes and len(classes["instrument"]) >= 2
    ceiling, detail = real_attribute_accuracy(micro_corpus, "all", clap, classes)
    assert 0.0 <= ceiling["attr_mean_real"] <= 1.0 and detail["instrument"]["n"] > 0
    dataset = ClipDataset(micro_corpus, "all")
    audio = dataset.load_all_audio()
    truth = [{key: read(r) for key, (read, _) in ATTRIBUTES.items()} for r in dataset.rows]
    same, _ = attribute_accuracy_columns(clap, audio, dataset.sample_rate, truth, classes)
    assert same["attr_instrument"] == ceiling["attr_instrument_real"]
    # with two classes every clip is predicted as exactly one: labelling all clips A, then all B,
    # gives accuracies that sum to one
    a, b = sorted(classes["instrument"])[:2]
    two = {"instrument": {a: classes["instrument"][a], b: classes["instrument"][b]}}
    all_a, _ = attribute_accuracy_columns(clap, audio, dataset.sample_rate,
                                          [{**row, "instrument": a} for row in truth], two)
    all_b, _ = attribute_accuracy_columns(clap, audio, dataset.sample_rate,
                                          [{**row, "instrument": b} for row in truth], two)
    assert all_a["attr_instrument"] + all_b["attr_instrument"] == pytest.approx(1.0)
    assert math.isnan(all_a["attr_genre"]) and all_a["attr_mean"] == all_a["attr_instrument"]
    none, _ = attribute_accuracy_columns(None, audio, dataset.sample_rate, truth, classes)
    assert all(math.isnan(v) for v in none.values())


def test_quick_section_can_clear_reuse(tmp_path):
    from melody_lab.ablation.grid import deep_merge

    assert deep_merge({"reuse": {"bundle": "b"}, "eval": {"a": 1, "b": 2}},
                      {"reuse": {}, "eval": {"b": 3}}) == {"reuse": {}, "eval": {"a": 1, "b": 3}}
    raw = {**_grid(), "reuse": {"bundle": str(tmp_path / "missing")}, "quick": {"reuse": {}}}
    with pytest.raises(UserError, match="does not exist"):
        grid_from_dict(raw)
    assert grid_from_dict(raw, quick=True).reuse.paths() == {}


def test_plots_never_average_two_configurations(tmp_path):
    """A grid that varies guidance draws one line per (schedule, guidance), each point one row."""
    from melody_lab.ablation.plots import _frame, render_plots

    rows = [{"codec": "vaegan", "denoiser": "dpd", "denoiser_preset": "bundle", "schedule": schedule,
             "steps": steps, "guidance": guidance, "n_eval": 4, "rtf": 0.1 * steps,
             "fad_features": (100 if guidance else 300) + steps + (5 if schedule == "linear" else 0)}
            for schedule in ("uniform", "linear") for steps in (1, 2, 5) for guidance in (0.0, 2.5)]
    with open(tmp_path / "results.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    frame = _frame(tmp_path / "results.csv")
    assert sorted(frame["model"].unique()) == ["vaegan/dpd-bundle w=0", "vaegan/dpd-bundle w=2.5"]
    assert not frame.duplicated(["schedule", "model", "steps"]).any()
    import matplotlib.pyplot as plt

    drawn = []
    real_save = plt.Figure.savefig

    def keep(fig, *args, **kwargs):  # the y values of every line seaborn drew on the FAD figure
        drawn.append([sorted(map(float, line.get_ydata())) for ax in fig.axes for line in ax.lines
                      if len(line.get_xdata()) == 3])
        return real_save(fig, *args, **kwargs)

    plt.Figure.savefig = keep
    try:
        written = render_plots(tmp_path)
    finally:
        plt.Figure.savefig = real_save
    assert {p.name for p in written} >= {"fad_vs_steps.png", "pareto.png"}
    assert sorted(drawn[0]) == sorted(sorted(float(r["fad_features"]) for r in rows
                                             if (r["schedule"], r["guidance"]) == key)
                                      for key in {(r["schedule"], r["guidance"]) for r in rows})
