"""Grid ``baseline:`` and the paired-difference table of ablation/report.py, on a synthetic results folder."""
import json

import numpy as np
import pytest

from melody_lab.ablation import grid_from_dict
from melody_lab.ablation.report import baseline_row, paired_differences, write_summary
from melody_lab.errors import UserError

AXES = {"schedule": ["uniform", "linear"], "steps": [2, 4], "guidance": [2.5]}


def _config(schedule, steps):
    return {"schedule": schedule, "steps": steps, "guidance": 2.5, "denoiser": "dpd",
            "denoiser_preset": "micro", "codec": "vaegan"}


def test_grid_baseline_is_validated_and_may_be_a_list():
    assert grid_from_dict({"data": {"preset": "micro"}, "axes": AXES, "baseline": {"schedule": "uniform"}}
                          ).baseline == [{"schedule": "uniform"}]
    two = grid_from_dict({"data": {"preset": "micro"}, "axes": AXES,
                          "baseline": [{"schedule": "uniform"}, {"steps": 4}]})
    assert two.baseline == [{"schedule": "uniform"}, {"steps": 4}]
    assert grid_from_dict({"data": {"preset": "micro"}, "axes": AXES}).baseline == []
    with pytest.raises(UserError, match="baseline.steps = 10 is not one of axes.steps"):
        grid_from_dict({"data": {"preset": "micro"}, "axes": AXES, "baseline": {"steps": 10}})
    with pytest.raises(UserError, match="unknown key.*'sampler'.*baseline"):
        grid_from_dict({"data": {"preset": "micro"}, "axes": AXES, "baseline": {"sampler": "ddim"}})
    bare = grid_from_dict({"data": {"preset": "micro"}, "axes": {**AXES, "denoiser": ["dpd"]},
                           "baseline": {"denoiser": "dpd", "steps": "4"}})   # canonical axis values
    assert bare.baseline == [{"denoiser": "dpd/tiny", "steps": 4}]
    quick = grid_from_dict({"data": {"preset": "micro"}, "axes": AXES, "baseline": {"schedule": "uniform"},
                            "quick": {"baseline": {"steps": 2}}}, quick=True)
    assert quick.baseline == [{"steps": 2}]   # quick: replaces the comparisons, never merges into them


def test_eval_controls_enters_row_keys_only_when_set():
    plain = grid_from_dict({"data": {"preset": "micro"}, "axes": AXES})
    assert plain.eval.controls is None and "controls" not in plain.fixed_settings()["eval"]
    with_controls = grid_from_dict({"data": {"preset": "micro"}, "axes": AXES, "eval": {"controls": True}})
    config = plain.configurations()[0]
    assert with_controls.eval.controls is True
    assert with_controls.row_key(config) != plain.row_key(config)
    with pytest.raises(UserError, match="eval.controls must be true or false"):
        grid_from_dict({"data": {"preset": "micro"}, "axes": AXES, "eval": {"controls": "yes"}})


def test_row_arrays_are_written_atomically_at_exactly_their_path(tmp_path):
    from melody_lab.ablation.runner import save_arrays

    path = save_arrays(tmp_path / "abc.npz", {"clap": [0.1, 0.2], "emb_features": np.ones((2, 3))})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["abc.npz"]   # no temp file, no abc.npz.npz
    loaded = np.load(path)
    assert loaded["clap"].tolist() == [0.1, 0.2] and loaded["emb_features"].shape == (2, 3)


def test_baseline_row_differs_only_on_the_baseline_axes():
    rows = [{"config": _config(s, n)} for s in ("uniform", "linear") for n in (2, 4)]
    assert baseline_row(_config("linear", 4), {"schedule": "uniform"}, rows)["config"] == _config("uniform", 4)
    assert baseline_row(_config("uniform", 4), {"schedule": "uniform"}, rows) is None   # itself
    assert baseline_row(_config("linear", 2), {"steps": 4}, rows)["config"] == _config("linear", 4)


def test_paired_table_finds_the_known_differences(tmp_path):
    rng = np.random.default_rng(0)
    prompts, seeds = 16, 2                                   # n = 32 clips per row, 16 prompt groups
    n = prompts * seeds
    clip_effect = rng.normal(0, 1, n)                        # shared by all rows (same prompts, seeds)
    emb = rng.normal(0, 1, (n, 3))
    (tmp_path / "rows").mkdir()
    np.savez(tmp_path / "reference.npz", emb_features=rng.normal(0, 1, (64, 3)))
    rows = []
    for schedule, clap_shift, emb_shift in (("uniform", 0.0, 0.0), ("linear", 0.1, 1.0)):
        key = f"k{schedule}"
        np.savez(tmp_path / "rows" / f"{key}.npz", emb_features=emb + emb_shift,
                 clap=0.3 + 0.2 * clip_effect + clap_shift + rng.normal(0, 0.01, n),
                 key_match=np.where(np.arange(n) % 5 == 0, np.nan, (clip_effect > 0).astype(float)))
        rows.append({"key": key, "config": _config(schedule, 2),
                     "columns": {"label": f"{schedule}/T=2", "n_eval": n, "reference": "toy",
                                 "n_reference": 64}})
    results = {"grid": {"name": "toy", "eval": {"prompts": prompts, "seeds": [0, 1], "confidence": 0.95,
                                                "bootstrap_resamples": 100},
                        "baseline": [{"schedule": "uniform"}]}, "rows": rows}
    diffs = paired_differences(tmp_path, results, {"schedule": "uniform"}, n_resamples=300)
    assert list(diffs) == ["linear/T=2"] and diffs["linear/T=2"]["baseline"] == "uniform/T=2"
    clap, fad_diff, key = (diffs["linear/T=2"][k] for k in ("clap", "fad_features", "key_match"))
    assert clap["excludes_zero"] and clap["low"] < 0.1 < clap["high"] and clap["n_groups"] == prompts
    assert fad_diff["excludes_zero"] and fad_diff["estimate"] > 1.0            # shifted by 1 in 3 dims
    assert key["estimate"] == 0.0 and not key["excludes_zero"]                  # identical per clip
    (tmp_path / "results.json").write_text(json.dumps(results))
    text = write_summary(tmp_path).read_text()
    assert "Paired differences to the baseline {schedule: uniform}" in text and " *" in text
    assert json.loads((tmp_path / "paired.json").read_text())[0]["rows"]["linear/T=2"]["clap"]["excludes_zero"]


def test_control_rows_expected_order_and_kendall_tau():
    from melody_lab.ablation.controls import ROUNDTRIP, SHUFFLED, control_agreement, expected_rank, shifted

    assert shifted([0, 1, 2, 10, 11, 12], 3) == [1, 2, 0, 11, 12, 10]          # a derangement per seed
    rows = [{"columns": {"label": "T=10", "steps": 10, "guidance": 2.5, "fad_features": 50.0, "clap": 0.30}},
            {"columns": {"label": "T=1", "steps": 1, "guidance": 2.5, "fad_features": 90.0, "clap": 0.25}},
            {"columns": {"label": "w=0", "steps": 10, "guidance": 0.0, "fad_features": 40.0, "clap": 0.10}}]
    controls = [{"columns": {"label": ROUNDTRIP, "fad_features": 5.0, "clap": 0.40}},
                {"columns": {"label": SHUFFLED, "fad_features": 5.0, "clap": 0.05}}]
    assert [expected_rank(r["columns"]) for r in rows + controls] == [1, 2, 2, 0, 2]
    agreement = control_agreement(rows, controls)
    assert agreement["clap"]["tau"] == pytest.approx(1.0) and agreement["clap"]["rows"] == 5
    # FAD leaves shuffled prompts out (same audio as the round trip) and misorders guidance 0
    assert agreement["fad_features"]["rows"] == 4 and 0 < agreement["fad_features"]["tau"] < 1
