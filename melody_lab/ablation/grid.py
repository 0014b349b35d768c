"""An ablation grid: a YAML file → validated fixed settings + the list of configurations it spans.

    name: schedules
    data:  {corpus: /work/data/tiny}        # a built corpus, or {preset: micro, seed: 0} → OUT/data
    train: {preset: tiny, seed: 0, steps: {codec: 20000, mulan: 2000, lm: 3000, denoiser: 20000}}
                                            # (+ codec_preset: the codec's size, default preset)
    reuse: {bundle: melody_lab/assets/bundles/tiny}   # optional: already-trained stages
    eval:  {prompts: 32, seeds: [0], duration_s: 5.0, split: test, embedders: [features, evalclap-tiny],
            controls: true}                 # + known-good/bad control rows (ablation/controls.py)
    axes:                                   # the configurations are the product of these lists
      schedule: [uniform, linear, logsnr]   # sampling only: never retrains
      steps: [4, 5, 10, 20]                 # sampling only
      guidance: [2.5]                       # sampling only
      denoiser: [dpd/tiny]                  # NAME/PRESET: one denoiser trained per (codec, denoiser)
      codec: [vaegan]                       # one codec trained per name, shared by its configurations
    baseline: {schedule: uniform}           # optional: each row vs the row that differs only in
                                            # these axis values (paired intervals in summary.md);
                                            # a list of such mappings gives one comparison each
    quick: {…}                              # overrides deep-merged into the above by --quick

Every key is checked: an unknown key or a bad value raises a :class:`UserError` that names it.
"""
from __future__ import annotations

import copy
import hashlib
import itertools
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from ..errors import UserError

SECTIONS = {"name", "description", "data", "train", "reuse", "eval", "axes", "baseline", "quick"}
DATA_KEYS = {"corpus", "preset", "seed"}
TRAIN_KEYS = {"preset", "codec_preset", "seed", "steps", "max_minutes", "crop_seconds"}
STAGE_KEYS = {"codec", "mulan", "lm", "denoiser"}
REUSE_KEYS = {"bundle", "mulan", "rvq", "tokenizer", "lm", "codec", "denoiser"}
EVAL_KEYS = {"prompts", "seeds", "duration_s", "split", "batch_size", "embedders", "clap",
             "rtf_warmup", "rtf_repeats", "bootstrap_resamples", "confidence", "fad_infinity_min_n",
             "controls"}
AXES = ("schedule", "steps", "guidance", "denoiser", "codec")
SPLITS = ("train", "valid", "test", "all")
PRESETS = ("micro", "tiny", "paper")


@dataclass(frozen=True)
class Configuration:
    """One row of the results table: a point of the grid."""

    schedule: str
    steps: int
    guidance: float
    denoiser: str          # architecture name: dpd | unet
    denoiser_preset: str   # micro | tiny | tiny_compute | paper (or "bundle")
    codec: str             # vaegan | vqvae

    def label(self) -> str:
        return (f"{self.codec}/{self.denoiser}-{self.denoiser_preset}/{self.schedule}"
                f"/T={self.steps}/w={self.guidance:g}")


@dataclass
class Grid:
    """Validated grid settings (see the module docstring for the file format)."""

    name: str
    description: str = ""
    data: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    reuse: dict = field(default_factory=dict)
    eval: dict = field(default_factory=dict)
    axes: dict = field(default_factory=dict)
    source: str = ""
    baseline: list = field(default_factory=list)  # [{axis: value}] (see ablation/report.py)

    def configurations(self) -> list[Configuration]:
        """The product of the axes, in file order (codec, denoiser outermost: training order)."""
        rows = []
        for codec, denoiser, schedule, steps, guidance in itertools.product(
                self.axes["codec"], self.axes["denoiser"], self.axes["schedule"],
                self.axes["steps"], self.axes["guidance"]):
            name, preset = denoiser
            rows.append(Configuration(schedule, steps, guidance, name, preset, codec))
        return rows

    def fixed_settings(self) -> dict:
        """Everything besides the axes that changes a row's numbers (part of every row's key)."""
        return {"data": self.data, "train": self.train, "reuse": self.reuse, "eval": self.eval}

    def row_key(self, config: Configuration, metric_models: dict | None = None) -> str:
        """Stable 16-hex-digit hash of the configuration, the fixed settings and ``metric_models``
        (fingerprints of the evaluation models: a changed or newly installed one recomputes)."""
        blob = json.dumps({"config": asdict(config), **self.fixed_settings(),
                           **({"metric_models": metric_models} if metric_models else {})}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def deep_merge(base: dict, override: dict) -> dict:
    """``base`` with ``override`` merged in (nested dicts merged, everything else replaced; an
    empty dict replaces, so ``quick: {reuse: {}}`` clears the full grid's ``reuse``)."""
    out = copy.deepcopy(base)
    for key, value in (override or {}).items():
        merge = isinstance(value, dict) and value and isinstance(out.get(key), dict)
        out[key] = deep_merge(out[key], value) if merge else copy.deepcopy(value)
    return out


def _check_keys(where: str, value, allowed: set) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UserError(f"grid: {where} must be a mapping, got {type(value).__name__}")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise UserError(f"grid: unknown key(s) {', '.join(map(repr, unknown))} in {where}; "
                        f"allowed: {', '.join(sorted(allowed))}")
    return dict(value)


def _int(where: str, value, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UserError(f"grid: {where} must be an integer >= {minimum}, got {value!r}")
    return value


def _number(where: str, value, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value \
            or (positive and value <= 0):
        raise UserError(f"grid: {where} must be a {'positive ' if positive else ''}number, got {value!r}")
    return float(value)


def _list(where: str, value) -> list:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise UserError(f"grid: {where} must list at least one value")
    if len(set(map(str, values))) != len(values):
        raise UserError(f"grid: {where} lists a value twice: {values}")
    return values


def _validate_axes(axes: dict) -> dict:
    from ..codecs.build import PRESETS as CODEC_PRESETS  # noqa: F401  (import check only)
    from ..denoisers import PRESETS as DENOISER_PRESETS
    from ..diffusion import SCHEDULES

    axes = _check_keys("axes", axes, set(AXES))
    missing = [a for a in ("schedule", "steps") if a not in axes]
    if missing:
        raise UserError(f"grid: axes needs {', '.join(missing)} (at least one value each)")
    out = {"schedule": _list("axes.schedule", axes["schedule"]),
           "steps": [_int("axes.steps", s, 1) for s in _list("axes.steps", axes["steps"])],
           "guidance": [_number("axes.guidance", g) for g in _list("axes.guidance", axes.get("guidance", [2.5]))],
           "codec": _list("axes.codec", axes.get("codec", ["vaegan"])), "denoiser": []}
    for name in out["schedule"]:
        if name not in SCHEDULES.names():
            raise UserError(f"grid: unknown schedule {name!r} in axes.schedule; "
                            f"choose from: {', '.join(SCHEDULES.names())}")
    for name in out["codec"]:
        if name not in ("vaegan", "vqvae"):
            raise UserError(f"grid: unknown codec {name!r} in axes.codec; choose from: vaegan, vqvae")
    for entry in _list("axes.denoiser", axes.get("denoiser", ["dpd/tiny"])):
        name, _, preset = str(entry).partition("/")
        if name not in DENOISER_PRESETS:
            raise UserError(f"grid: unknown denoiser {name!r} in axes.denoiser (write NAME/PRESET); "
                            f"choose from: {', '.join(DENOISER_PRESETS)}")
        if preset and preset not in (*DENOISER_PRESETS[name], "bundle"):
            raise UserError(f"grid: unknown {name} preset {preset!r} in axes.denoiser; "
                            f"choose from: {', '.join(DENOISER_PRESETS[name])}")
        out["denoiser"].append((name, preset))
    return out


def _validate_sections(raw: dict, where: Path) -> Grid:
    data = _check_keys("data", raw.get("data"), DATA_KEYS)
    if ("corpus" in data) == ("preset" in data):
        raise UserError("grid: data needs exactly one of corpus (a built corpus folder) or "
                        "preset (a corpus preset to build, e.g. micro)")
    if "corpus" in data:
        corpus = Path(str(data["corpus"])).expanduser()
        data["corpus"] = str(corpus if corpus.is_absolute() else (where.parent / corpus).resolve())
    elif data["preset"] not in ("micro", "tiny", "evalclap"):
        raise UserError(f"grid: unknown data.preset {data['preset']!r}; choose from: micro, tiny")
    data["seed"] = _int("data.seed", data.get("seed", 0))

    train = _check_keys("train", raw.get("train"), TRAIN_KEYS)
    train.setdefault("preset", "tiny")
    if train["preset"] not in PRESETS:
        raise UserError(f"grid: unknown train.preset {train['preset']!r}; choose from: {', '.join(PRESETS)}")
    train.setdefault("codec_preset", train["preset"])
    if train["codec_preset"] not in PRESETS:
        raise UserError(f"grid: unknown train.codec_preset {train['codec_preset']!r}; "
                        f"choose from: {', '.join(PRESETS)}")
    train["seed"] = _int("train.seed", train.get("seed", 0))
    steps = _check_keys("train.steps", train.get("steps"), STAGE_KEYS)
    train["steps"] = {k: _int(f"train.steps.{k}", v, 1) for k, v in steps.items()}
    if train.get("crop_seconds") is not None:  # denoisers train on random crops of this length
        train["crop_seconds"] = _number("train.crop_seconds", train["crop_seconds"], positive=True)
    if train.get("max_minutes") is not None:
        train["max_minutes"] = _number("train.max_minutes", train["max_minutes"], positive=True)

    reuse = _check_keys("reuse", raw.get("reuse"), REUSE_KEYS)
    for key, value in reuse.items():
        paths = value if isinstance(value, dict) else {"": value}
        for sub, path in paths.items():
            full = Path(str(path)).expanduser()
            full = full if full.is_absolute() else (where.parent / full).resolve()
            if not full.exists():
                raise UserError(f"grid: reuse.{key}{'.' + sub if sub else ''} = {path} does not exist")
            paths[sub] = str(full)
        reuse[key] = paths if isinstance(value, dict) else paths[""]

    ev = _check_keys("eval", raw.get("eval"), EVAL_KEYS)
    ev = {"prompts": 16, "seeds": [0], "duration_s": 5.0, "split": "test", "batch_size": 8,
          "embedders": ["features", "evalclap-tiny"], "clap": "evalclap-tiny", "rtf_warmup": 1,
          "rtf_repeats": 3, "bootstrap_resamples": 200, "confidence": 0.95,
          "fad_infinity_min_n": 10, **ev}
    _int("eval.prompts", ev["prompts"], 2)
    ev["seeds"] = [_int("eval.seeds", s) for s in _list("eval.seeds", ev["seeds"])]
    ev["duration_s"] = _number("eval.duration_s", ev["duration_s"], positive=True)
    if ev["split"] not in SPLITS:
        raise UserError(f"grid: eval.split must be one of {', '.join(SPLITS)}, got {ev['split']!r}")
    for key in ("batch_size", "rtf_repeats", "bootstrap_resamples"):
        _int(f"eval.{key}", ev[key], 1)
    _int("eval.rtf_warmup", ev["rtf_warmup"])
    _int("eval.fad_infinity_min_n", ev["fad_infinity_min_n"], 4)
    if not 0 < _number("eval.confidence", ev["confidence"]) < 1:
        raise UserError(f"grid: eval.confidence must lie in (0, 1), got {ev['confidence']}")
    ev["embedders"] = [str(e) for e in _list("eval.embedders", ev["embedders"])]
    ev["clap"] = None if ev["clap"] in (None, "none") else str(ev["clap"])
    if not isinstance(ev.get("controls", False), bool):  # control rows: ablation/controls.py
        raise UserError(f"grid: eval.controls must be true or false, got {ev['controls']!r}")

    axes = _validate_axes(raw.get("axes"))
    default_preset = "bundle" if "bundle" in reuse else train["preset"]
    axes["denoiser"] = [(n, p or default_preset) for n, p in axes["denoiser"]]
    if "bundle" not in reuse and any(p == "bundle" for _, p in axes["denoiser"]):
        raise UserError("grid: the denoiser preset 'bundle' needs reuse.bundle (a trained bundle folder)")
    if "bundle" in reuse and (len(axes["codec"]) > 1 or len(axes["denoiser"]) > 1):
        raise UserError("grid: with reuse.bundle only the sampling axes (schedule, steps, guidance) "
                        "may vary; list one codec and one denoiser (those of the bundle)")
    baselines = raw.get("baseline") if isinstance(raw.get("baseline"), list) else [raw.get("baseline")]
    baseline = [_check_keys("baseline", b, set(AXES)) for b in baselines if b is not None]
    for axis, value in ((a, v) for b in baseline for a, v in b.items()):
        listed = [f"{n}/{p}" for n, p in axes[axis]] if axis == "denoiser" else axes[axis]
        if str(value) not in map(str, listed) and value not in listed:
            raise UserError(f"grid: baseline.{axis} = {value!r} is not one of axes.{axis}: {listed}")
    name = raw.get("name") or where.stem
    return Grid(str(name), str(raw.get("description", "")), data, train, reuse, ev,
                {k: axes[k] for k in AXES}, str(where), baseline)


def load_grid(path: str | Path, quick: bool = False, corpus: str | Path | None = None) -> Grid:
    """Read and validate a grid file; ``quick`` deep-merges its ``quick:`` section first and
    ``corpus`` (a built corpus folder) replaces its ``data`` section."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no grid file at {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise UserError(f"grid {path} is not valid YAML: {err}") from None
    return grid_from_dict(raw, path, quick, corpus)


def grid_from_dict(raw: dict, where: str | Path = "grid.yaml", quick: bool = False,
                   corpus: str | Path | None = None) -> Grid:
    """Validate a grid given as a dict (``where`` resolves relative paths and names errors)."""
    if not isinstance(raw, dict):
        raise UserError(f"grid {where} must be a YAML mapping")
    unknown = sorted(set(raw) - SECTIONS)
    if unknown:
        raise UserError(f"grid: unknown section(s) {', '.join(map(repr, unknown))}; "
                        f"allowed: {', '.join(sorted(SECTIONS))}")
    quick_overrides = _check_keys("quick", raw.get("quick"), SECTIONS - {"quick", "name", "description"})
    raw = {k: v for k, v in raw.items() if k != "quick"}
    if quick:
        raw = deep_merge(raw, quick_overrides)
        if "corpus" in quick_overrides.get("data", {}) or "preset" in quick_overrides.get("data", {}):
            raw["data"] = quick_overrides["data"]
        if "reuse" in quick_overrides:
            raw["reuse"] = quick_overrides["reuse"]
    if corpus is not None:
        raw = {**raw, "data": {"corpus": str(Path(corpus).resolve())}}
    return _validate_sections(raw, Path(where))
