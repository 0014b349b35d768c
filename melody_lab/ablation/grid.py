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

Each section is a :class:`~melody_lab.config.Config` dataclass below (``DataSection``,
``TrainSection``, ``ReuseSection``, ``EvalSection``, ``AxesSection``): its fields are the keys the
file may use, and each field's :func:`setting` says what a valid value is. Names (schedules,
codecs, denoisers and their presets, training presets) come from the registries, so a component
registered there is a valid axis value with no change here. An unknown key or a bad value raises a
:class:`UserError` that names it.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import importlib
import itertools
import json
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from ..config import Config, ConfigError, _convert
from ..errors import UserError

SECTIONS = {"name", "description", "data", "train", "reuse", "eval", "axes", "baseline", "quick"}
SPLITS = ("train", "valid", "test", "all")
REQUIRED = dataclasses.MISSING


def _names_of(module: str, table: str) -> Callable[[], list[str]]:
    """The valid names of a registry (``.names()``) or preset table (its keys), read when a grid
    is checked: whatever is registered then is valid."""
    def names() -> list[str]:
        found = getattr(importlib.import_module(module, __package__), table)
        return found.names() if hasattr(found, "names") else list(found)

    return names


_schedules = _names_of("..diffusion", "SCHEDULES")
_codecs = _names_of("..codecs", "CODECS")
_denoisers = _names_of("..denoisers", "DENOISERS")
_train_presets = _names_of("..train.stages", "PRESETS")
_corpus_presets = _names_of("..data.presets", "PRESETS")


def _gradient_stages() -> list[str]:
    from ..train.stages import STAGES

    return [name for name, stage in STAGES.items() if stage.gradient]


def setting(default: Any = REQUIRED, *, minimum: int | None = None, positive: bool = False,
            below: float | None = None, choices: Callable[[], list[str]] | tuple | None = None,
            keys: Callable[[], list[str]] | None = None, label: str | None = None) -> Any:
    """A grid field: its default and what a valid value is.

    ``minimum``: integers ≥ it; ``positive``: numbers > 0; ``below``: numbers < it; ``choices``:
    one of these names (a function asking a registry, or a tuple); ``keys``: a mapping whose keys
    are such names; ``label``: what one value is called in errors (list fields). A list field
    applies the checks to each value and must list ≥ 1 value, none twice.
    """
    meta = {"minimum": minimum, "positive": positive, "below": below, "choices": choices,
            "keys": keys, "label": label}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return field(default=default, metadata=meta)


def _names(choices) -> list[str]:
    return list(choices()) if callable(choices) else list(choices)


def _check_value(where: str, value: Any, meta: dict, label: str | None) -> None:
    """Apply one field's :func:`setting` checks to one (scalar) value."""
    if value is None:
        return
    if isinstance(value, float) and value != value:
        raise UserError(f"grid: {where} must be a number, got {value!r}")
    if meta["minimum"] is not None and value < meta["minimum"]:
        raise UserError(f"grid: {where} must be an integer >= {meta['minimum']}, got {value!r}")
    if meta["positive"] and not value > 0:
        raise UserError(f"grid: {where} must be a positive number, got {value!r}")
    if meta["below"] is not None and not value < meta["below"]:
        raise UserError(f"grid: {where} must lie in (0, {meta['below']:g}), got {value!r}")
    if meta["choices"] is not None and value not in _names(meta["choices"]):
        names = ", ".join(_names(meta["choices"]))
        if label:
            raise UserError(f"grid: unknown {label} {value!r} in {where}; choose from: {names}")
        raise UserError(f"grid: unknown {where} {value!r}; {where} must be one of: {names}")


def _expected(hint, meta: dict) -> str:
    """What a field's values must be, in words (for errors)."""
    args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    kind = typing.get_args(args[0])[-1] if typing.get_origin(args[0]) in (list, dict) else args[0]
    if kind is bool:
        return "true or false"
    if kind is int:
        return f"an integer >= {meta.get('minimum') or 0}"
    if kind is float:
        return "a positive number" if meta.get("positive") else "a number"
    return "a text" if kind is str else getattr(kind, "__name__", str(kind))


def _check_keys(where: str, value, allowed) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UserError(f"grid: {where} must be a mapping, got {type(value).__name__}")
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise UserError(f"grid: unknown key(s) {', '.join(map(repr, unknown))} in {where}; "
                        f"allowed: {', '.join(sorted(allowed))}")
    return dict(value)


class Section(Config):
    """A grid section: :meth:`parse` reads the file's mapping, checking every key and value."""

    #: fields left out of :meth:`settings` while None (absent from the file: old row keys stay)
    optional: typing.ClassVar[tuple[str, ...]] = ()

    @classmethod
    def parse(cls, where: str, raw) -> "Section":
        raw = _check_keys(where, raw, [f.name for f in dataclasses.fields(cls)])
        hints = typing.get_type_hints(cls)
        values = {}
        for f in dataclasses.fields(cls):
            if f.name not in raw:
                if f.default is REQUIRED and f.default_factory is REQUIRED:
                    raise UserError(f"grid: {where} needs {f.name} (at least one value)")
                continue
            value, key = raw[f.name], f"{where}.{f.name}"
            if typing.get_origin(hints[f.name]) is list and not isinstance(value, list):
                value = [value]  # one value may be written without brackets
            try:
                value = _convert(value, hints[f.name], key)
            except ConfigError as err:
                if "mapping" in str(err) or "list" in str(err):
                    raise UserError(f"grid: {err}") from None
                raise UserError(f"grid: {key} must be {_expected(hints[f.name], f.metadata)}, "
                                f"got {raw[f.name]!r}") from None
            values[f.name] = value
            cls._check_field(key, value, f.metadata)
        return cls(**values)

    @staticmethod
    def _check_field(where: str, value: Any, meta: dict) -> None:
        if not meta:
            return
        label = meta.get("label")
        if isinstance(value, list):
            if not value:
                raise UserError(f"grid: {where} must list at least one value")
            if len(set(map(str, value))) != len(value):
                raise UserError(f"grid: {where} lists a value twice: {value}")
            for item in value:
                _check_value(where, item, meta, label)
        elif isinstance(value, dict):
            if meta.get("keys") is not None:
                _check_keys(where, value, _names(meta["keys"]))
            for item in value.values():
                _check_value(f"{where}", item, {**meta, "choices": None}, label)
        else:
            _check_value(where, value, meta, label)

    def settings(self) -> dict:
        """The section as the plain dict that row keys hash (optional fields only when set)."""
        return {k: v for k, v in self.to_dict().items() if not (k in self.optional and v is None)}


@dataclass
class DataSection(Section):
    """Where the corpus comes from: a built ``corpus`` folder, or a corpus ``preset`` to build."""

    corpus: str | None = None
    preset: str | None = setting(None, choices=_corpus_presets)
    seed: int = setting(0, minimum=0)
    optional = ("corpus", "preset")


@dataclass
class TrainSection(Section):
    """How the stages train: size ``preset`` (the codec's: ``codec_preset``, default the same),
    ``seed``, step counts per gradient stage (default: ``train.stages.STAGE_STEPS``), a per-stage
    time budget and the denoiser's crop length."""

    preset: str = setting("tiny", choices=_train_presets)
    codec_preset: str | None = setting(None, choices=_train_presets)
    seed: int = setting(0, minimum=0)
    steps: dict[str, int] = setting({}, minimum=1, keys=_gradient_stages)
    max_minutes: float | None = setting(None, positive=True)
    crop_seconds: float | None = setting(None, positive=True)
    optional = ("max_minutes", "crop_seconds")

    def __post_init__(self):
        if self.codec_preset is None:
            self.codec_preset = self.preset


@dataclass
class ReuseSection(Section):
    """Already-trained stages to use instead of training: a whole ``bundle``, or run folders
    (``codec`` by codec name, ``denoiser`` by ``CODEC/NAME/PRESET``)."""

    bundle: str | None = None
    mulan: str | None = None
    rvq: str | None = None
    tokenizer: str | None = None
    lm: str | None = None
    codec: dict[str, str] | None = None
    denoiser: dict[str, str] | None = None
    optional = ("bundle", "mulan", "rvq", "tokenizer", "lm", "codec", "denoiser")

    def paths(self) -> dict[str, str | dict[str, str]]:
        """The stages given (``{stage: folder}``, codec/denoiser ``{stage: {key: folder}}``)."""
        return self.settings()


@dataclass
class EvalSection(Section):
    """The fixed evaluation: prompts × seeds clips of ``duration_s`` from ``split``, the FAD
    ``embedders``, the CLAP model (``none``: skipped), speed and confidence-interval settings,
    ``controls``: also score the control rows of :mod:`~melody_lab.ablation.controls`, and
    ``context_chunks``: the continuation setting every configuration samples with (absent: each
    model's own, e.g. a bundle's ``melody.json``)."""

    prompts: int = setting(16, minimum=2)
    seeds: list[int] = setting([0], minimum=0)
    duration_s: float = setting(5.0, positive=True)
    split: str = setting("test", choices=SPLITS)
    batch_size: int = setting(8, minimum=1)
    embedders: list[str] = setting(["features", "evalclap-tiny"])
    clap: str | None = "evalclap-tiny"
    rtf_warmup: int = setting(1, minimum=0)
    rtf_repeats: int = setting(3, minimum=1)
    bootstrap_resamples: int = setting(200, minimum=1)
    confidence: float = setting(0.95, positive=True, below=1)
    fad_infinity_min_n: int = setting(10, minimum=4)
    controls: bool | None = None  # None (absent): no control rows, and the row keys stay those of before
    context_chunks: int | None = setting(None, minimum=0)  # None (absent): each model's own continuation
    optional = ("controls", "context_chunks")

    def __post_init__(self):
        if self.clap == "none":
            self.clap = None


@dataclass
class AxesSection(Section):
    """What varies: the configurations are the product of these lists. ``schedule``, ``steps``
    and ``guidance`` only change sampling; ``denoiser`` (``NAME/PRESET``) and ``codec`` train one
    model per value."""

    schedule: list[str] = setting(choices=_schedules, label="schedule")
    steps: list[int] = setting(minimum=1)
    guidance: list[float] = setting([2.5])
    denoiser: list[str] = setting(["dpd/tiny"])
    codec: list[str] = setting(["vaegan"], choices=_codecs, label="codec")

    def __post_init__(self):
        from ..denoisers import DENOISERS

        for entry in self.denoiser:
            name, _, preset = entry.partition("/")
            if name not in _denoisers():
                raise UserError(f"grid: unknown denoiser {name!r} in axes.denoiser (write "
                                f"NAME/PRESET); choose from: {', '.join(_denoisers())}")
            if preset and preset not in (*DENOISERS.presets[name], "bundle"):
                raise UserError(f"grid: unknown {name} preset {preset!r} in axes.denoiser; "
                                f"choose from: {', '.join(DENOISERS.presets[name])}")

    def denoisers(self) -> list[tuple[str, str]]:
        """``(name, preset)`` of each denoiser value."""
        return [tuple(entry.split("/", 1)) for entry in self.denoiser]


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
    data: DataSection = field(default_factory=DataSection)
    train: TrainSection = field(default_factory=TrainSection)
    reuse: ReuseSection = field(default_factory=ReuseSection)
    eval: EvalSection = field(default_factory=EvalSection)
    axes: AxesSection | None = None
    source: str = ""
    #: ``[{axis: value}]``: the paired comparisons of ``ablation/report.py`` (not part of row keys)
    baseline: list[dict] = field(default_factory=list)

    def configurations(self) -> list[Configuration]:
        """The product of the axes, in file order (codec, denoiser outermost: training order)."""
        rows = []
        for codec, (name, preset), schedule, steps, guidance in itertools.product(
                self.axes.codec, self.axes.denoisers(), self.axes.schedule, self.axes.steps,
                self.axes.guidance):
            rows.append(Configuration(schedule, steps, guidance, name, preset, codec))
        return rows

    def fixed_settings(self) -> dict:
        """Everything besides the axes that changes a row's numbers (part of every row's key)."""
        return {"data": self.data.settings(), "train": self.train.settings(),
                "reuse": self.reuse.settings(), "eval": self.eval.settings()}

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


def _resolve(path, where: Path) -> str:
    full = Path(str(path)).expanduser()
    return str(full if full.is_absolute() else (where.parent / full).resolve())


def _validate_sections(raw: dict, where: Path) -> Grid:
    data = DataSection.parse("data", raw.get("data"))
    if (data.corpus is None) == (data.preset is None):
        raise UserError("grid: data needs exactly one of corpus (a built corpus folder) or "
                        "preset (a corpus preset to build, e.g. micro)")
    if data.corpus is not None:
        data.corpus = _resolve(data.corpus, where)
    train = TrainSection.parse("train", raw.get("train"))
    reuse = ReuseSection.parse("reuse", raw.get("reuse"))
    for key, value in reuse.paths().items():
        paths = value if isinstance(value, dict) else {"": value}
        for sub in paths:
            full = _resolve(paths[sub], where)
            if not Path(full).exists():
                raise UserError(f"grid: reuse.{key}{'.' + sub if sub else ''} = {paths[sub]} "
                                f"does not exist")
            paths[sub] = full
        setattr(reuse, key, paths if isinstance(value, dict) else paths[""])
    ev = EvalSection.parse("eval", raw.get("eval"))
    axes = AxesSection.parse("axes", raw.get("axes"))
    default_preset = "bundle" if reuse.bundle else train.preset
    axes.denoiser = [e if "/" in e and e.split("/", 1)[1] else f"{e.split('/')[0]}/{default_preset}"
                     for e in axes.denoiser]
    if not reuse.bundle and any(p == "bundle" for _, p in axes.denoisers()):
        raise UserError("grid: the denoiser preset 'bundle' needs reuse.bundle (a trained bundle folder)")
    if reuse.bundle and (len(axes.codec) > 1 or len(axes.denoiser) > 1):
        raise UserError("grid: with reuse.bundle only the sampling axes (schedule, steps, guidance) "
                        "may vary; list one codec and one denoiser (those of the bundle)")
    baseline = _validate_baseline(raw.get("baseline"), axes, default_preset)
    name = raw.get("name") or where.stem
    return Grid(str(name), str(raw.get("description", "")), data, train, reuse, ev, axes, str(where),
                baseline)


def _validate_baseline(raw, axes: AxesSection, default_preset: str) -> list[dict]:
    """``baseline:`` (a mapping axis → value, or a list of them) → ``[{axis: value}]``, each value
    one of that axis's values (a denoiser written ``NAME/PRESET``; a bare NAME gets the axis's
    default preset, as in ``axes.denoiser``)."""
    entries = raw if isinstance(raw, list) else [] if raw is None else [raw]
    axis_names = [f.name for f in dataclasses.fields(AxesSection)]
    baseline = []
    for i, entry in enumerate(entries):
        where = f"baseline[{i}]" if isinstance(raw, list) else "baseline"
        entry = _check_keys(where, entry, axis_names)
        if not entry:
            raise UserError(f"grid: {where} must name at least one axis value, e.g. {{schedule: uniform}}")
        for axis, value in entry.items():
            listed = getattr(axes, axis)
            if axis == "denoiser" and isinstance(value, str) and not value.partition("/")[2]:
                value = f"{value.partition('/')[0]}/{default_preset}"
            match = [v for v in listed if not isinstance(value, bool)
                     and (v == value or str(v) == str(value))]
            if not match:
                raise UserError(f"grid: {where}.{axis} = {value!r} is not one of axes.{axis}: {listed}")
            entry[axis] = match[0]
        baseline.append(entry)
    return baseline


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
        if "baseline" in quick_overrides:  # replaced, never merged into the full grid's comparisons
            raw["baseline"] = quick_overrides["baseline"]
    if corpus is not None:
        raw = {**raw, "data": {"corpus": str(Path(corpus).resolve())}}
    return _validate_sections(raw, Path(where))
