"""Saving and loading, for every component and for bundles: one layout, one resolver, one set of checks.

A **component** (codec, denoiser, mulan, rvq, tokenizer, lm) is a registered ``nn.Module`` with a
``config`` (see ``registry.py``: registering stamps the class with ``kind`` and ``name``). It is
saved as an **export folder**::

    DIR/config.json            {"kind": "codec", "name": "vaegan", "config": {...}, ...extra}
    DIR/<kind>.safetensors     its tensors (parameters fp16 when saved with ``half``; buffers as they are)

A **training run folder** (``melody-lab train <stage>``, see ``train/checkpoint.py``) holds the same
record under ``"model"`` in ``DIR/config.json`` and the weights in the checkpoint ``DIR/latest``
names (``<kind>.safetensors``, or the module named by the record's ``"weights"``, e.g. ``ema``).
:func:`resolve` is the one function that tells the two apart (it also takes a whole bundle,
verified, or the name of a shipped bundle, ``tiny``, and returns that bundle's ``<kind>/`` export).

A **bundle** is one export folder per component plus ``melody.json`` and a SHA-256
``manifest.json`` that also covers its ``MODEL_CARD.md`` (:func:`model_card`).
:func:`load_bundle` loads only files the manifest lists and verifies.

Everything read is checked before it is used — JSON that parses, configs whose fields have the
declared types (``Config.from_dict``), safetensors headers of sane size whose tensors fit the
file and the model — and any failure is a :class:`~melody_lab.errors.BundleError` naming the
file. Loading reads only JSON and safetensors, so it never executes code. This module knows
the run-folder layout that ``train/checkpoint.py`` writes, but imports nothing of training.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import secrets
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from safetensors.torch import load_file, save_file

from .config import ConfigError
from .errors import BundleError, CheckpointError
from .registry import REGISTRIES, Registry, UnknownNameError

FORMAT = "melody_lab.bundle/2"  # /2: every component folder is config.json {kind, name, config}
MANIFEST = "manifest.json"
CONFIG_FILE = "config.json"
MODEL_CARD = "MODEL_CARD.md"
SHIPPED_BUNDLES = Path(__file__).resolve().parent / "assets" / "bundles"  # ``tiny`` lives here
MAX_HEADER_BYTES = 16 << 20  # a safetensors header (JSON index of the tensors) above 16 MiB is refused
_DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2,
                "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}


# -- atomic writes ------------------------------------------------------------------------------
def atomic_write(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """Write ``path`` by ``write(tmp)`` into a temporary file beside it (a name unique to this
    process and call), then ``os.replace``: readers see the old file or the new one, never half."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.partial")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """:func:`atomic_write` of UTF-8 text."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


@contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """``with atomic_folder(out) as tmp:`` fill ``tmp``; on success it replaces ``out`` (else is removed)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if path.exists():
        shutil.rmtree(path)
    os.replace(tmp, path)


def read_json(path: str | Path) -> Any:
    """Parse a JSON file; a missing or malformed file is a :class:`BundleError` naming it."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{path} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BundleError(f"{path} is not valid JSON: {err}") from None


# -- safetensors, checked -----------------------------------------------------------------------
def read_safetensors(path: str | Path,
                     expected: dict[str, torch.Size] | None = None) -> dict[str, torch.Tensor]:
    """The tensors of ``path`` after checking its header: a sane header size, known dtypes, each
    tensor's bytes inside the file and matching its shape, and (``expected``: name → shape) exactly
    the names and shapes the model has. Fails with :class:`BundleError` before allocating."""
    path = Path(path)
    if not path.is_file():
        raise BundleError(f"weights file {path} is missing")
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(8)
        length = int.from_bytes(head, "little") if len(head) == 8 else -1
        if length < 2 or length > MAX_HEADER_BYTES or 8 + length > size:
            raise BundleError(f"{path} is not a valid safetensors file (its header claims "
                              f"{length} bytes; the file has {size}, the limit is "
                              f"{MAX_HEADER_BYTES})")
        try:
            header = json.loads(handle.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise BundleError(f"{path}: the safetensors header is not valid JSON ({err})") from None
    if not isinstance(header, dict):
        raise BundleError(f"{path}: the safetensors header is not a mapping")
    data_bytes = size - 8 - length
    shapes = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (start, end) = info["dtype"], info["shape"], info["data_offsets"]
            ok = (dtype in _DTYPE_BYTES and all(isinstance(d, int) and d >= 0 for d in shape)
                  and isinstance(start, int) and isinstance(end, int) and 0 <= start <= end <= data_bytes
                  and end - start == math.prod(shape) * _DTYPE_BYTES[dtype])
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            raise BundleError(f"{path}: tensor {name!r} has an invalid entry in the safetensors "
                              f"header (dtype, shape or byte range does not fit the file)")
        shapes[name] = tuple(shape)
    if expected is not None:
        want = {k: tuple(v) for k, v in expected.items()}
        missing, unexpected = sorted(set(want) - set(shapes)), sorted(set(shapes) - set(want))
        wrong = [f"{k}: file {shapes[k]} vs model {want[k]}" for k in sorted(set(want) & set(shapes))
                 if shapes[k] != want[k]]
        if missing or unexpected or wrong:
            details = "; ".join(filter(None, [f"missing {missing[:5]}" if missing else "",
                                              f"unexpected {unexpected[:5]}" if unexpected else "",
                                              "; ".join(wrong[:5])]))
            raise BundleError(f"the weights in {path} do not fit the model its config describes "
                              f"({details})")
    try:
        return load_file(str(path))
    except Exception as err:  # safetensors_rust.SafetensorError: anything the checks above missed
        raise BundleError(f"{path} could not be read as safetensors: {err}") from None


def save_weights(module: torch.nn.Module, path: str | Path, half: bool = False) -> None:
    """``module``'s state dict to safetensors; ``half`` stores *parameters* as fp16 (buffers — norm
    statistics, k-means centres, codebooks — keep their dtype: rounding them moves boundaries)."""
    params = {name for name, _ in module.named_parameters()}
    tensors = {}
    for name, value in module.state_dict().items():
        value = value.detach().cpu().contiguous()
        tensors[name] = value.half() if half and name in params and value.is_floating_point() else value
    save_file(tensors, str(path))


def load_weights(module: torch.nn.Module, path: str | Path) -> torch.nn.Module:
    """Load checked safetensors strictly into ``module`` (fp16 tensors are cast to its dtypes)."""
    own = module.state_dict()
    tensors = read_safetensors(path, {k: v.shape for k, v in own.items()})
    module.load_state_dict({k: v.to(own[k].dtype) for k, v in tensors.items()}, strict=True)
    return module


# -- components ---------------------------------------------------------------------------------
def component_record(module: torch.nn.Module, **extra: Any) -> dict[str, Any]:
    """What identifies a component wherever it is stored: ``{"kind", "name", "config", **extra}``."""
    return {"kind": module.kind, "name": module.name, "config": module.config.to_dict(), **extra}


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint folder of a training run (``run_dir/latest``), or None."""
    run_dir = Path(run_dir)
    pointer = run_dir / "latest"
    if not pointer.exists():
        return None
    path = run_dir / pointer.read_text().strip()
    if not (path / "state.json").exists():
        raise CheckpointError(f"{pointer} names {path.name}, which is missing or incomplete")
    return path


def locate(path: str | Path) -> Path:
    """``path`` as a folder: itself, or — when no such folder exists and it is a plain name —
    the bundle of that name shipped in the package (``"tiny"`` → ``assets/bundles/tiny``)."""
    text = str(path)
    if not Path(text).exists() and text and "/" not in text and (SHIPPED_BUNDLES / text).is_dir():
        return SHIPPED_BUNDLES / text
    return Path(path)


def resolve(path: str | Path, kind: str, run_folders: bool = True) -> tuple[dict[str, Any], Path]:
    """``(component record, weights file)`` of an export folder or a training run folder of ``kind``.

    The one place that tells the layouts apart (module docstring); ``run_folders=False``
    accepts export folders only (bundles). ``path`` may also be a whole bundle folder (its
    ``<kind>/`` export, after the manifest is verified) or the name of a shipped bundle
    (``"tiny"``, :func:`locate`).
    """
    path = locate(path)
    if (path / MANIFEST).is_file() and not (path / CONFIG_FILE).is_file():  # a whole bundle
        verify_manifest(path, [f"{kind}/{CONFIG_FILE}", f"{kind}/{kind}.safetensors"])
        path, run_folders = path / kind, False
    if not (path / CONFIG_FILE).is_file():
        raise BundleError(f"{path} holds no {kind}: expected {CONFIG_FILE} + {kind}.safetensors "
                          f"(an export) or {CONFIG_FILE} + latest (a `melody-lab train` run)")
    record = read_json(path / CONFIG_FILE)
    if not isinstance(record, dict):
        raise BundleError(f"{path / CONFIG_FILE} is not a JSON object")
    run = "kind" not in record and isinstance(record.get("model"), dict)
    component = record["model"] if run and run_folders else record
    if component.get("kind") != kind or not isinstance(component.get("config"), dict):
        found = (f"a {component['kind']!r}" if component.get("kind") else
                 "a training run" if run else "no component record")
        raise BundleError(f"{path} holds {found}, not a {kind} ({path / CONFIG_FILE} needs "
                          f'"kind": "{kind}", "name" and "config")')
    if not run:
        return component, path / f"{kind}.safetensors"
    ckpt = latest_checkpoint(path)
    if ckpt is None:
        raise BundleError(f"run folder {path} has no checkpoint yet (train it first)")
    return component, ckpt / f"{component.get('weights', kind)}.safetensors"


def save_pretrained(module: torch.nn.Module, folder: str | Path, half: bool = False,
                    extra: dict[str, Any] | None = None) -> Path:
    """Write ``module`` as an export folder (atomically); ``extra`` keys go into ``config.json``."""
    folder = Path(folder)
    with atomic_folder(folder) as tmp:
        save_weights(module, tmp / f"{module.kind}.safetensors", half)
        record = component_record(module, **(extra or {}))
        (tmp / CONFIG_FILE).write_text(json.dumps(record, indent=2, sort_keys=True))
    return folder


def build_from_record(registry: Registry, record: dict[str, Any], where: Path) -> torch.nn.Module:
    """An untrained module from a component record (its config is type-checked)."""
    try:
        cls = registry.get(record.get("name"))
        config = registry.config_class(record["name"]).from_dict(record["config"])
        return cls.from_config(config)
    except (UnknownNameError, ConfigError) as err:
        raise BundleError(f"{where}: {err}") from None


def load_pretrained(registry: Registry | str, path: str | Path, device: str | torch.device = "cpu",
                    run_folders: bool = True) -> torch.nn.Module:
    """Load the component in ``path`` (export or run folder, :func:`resolve`) in eval mode."""
    registry = REGISTRIES[registry] if isinstance(registry, str) else registry
    record, weights = resolve(path, registry.kind, run_folders)
    module = build_from_record(registry, record, Path(path) / CONFIG_FILE)
    return load_weights(module, weights).to(device).eval()


def load_init(registry: Registry | str, source: str | Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """``(module, provenance)`` to fine-tune from: the ``registry.kind`` component of ``source``
    (a bundle folder, a shipped bundle's name, an export or a training run folder of that stage;
    :func:`resolve`) in train mode, and ``{"init_from", "init_weights_sha256"[,
    "init_manifest_sha256"]}`` for the new run's record. The module's config is the source's:
    fine-tuning keeps the architecture."""
    registry = REGISTRIES[registry] if isinstance(registry, str) else registry
    folder = locate(source)
    if not folder.is_dir():
        raise BundleError(f"--init-from {source}: no such folder (give a bundle folder, the name "
                          f"'tiny', or a `melody-lab train {registry.kind}` run folder)")
    _, weights = resolve(folder, registry.kind)
    module = load_pretrained(registry, folder).train()
    provenance = {"init_from": str(folder.resolve()), "init_weights_sha256": sha256(weights)}
    if (folder / MANIFEST).is_file():
        provenance["init_manifest_sha256"] = sha256(folder / MANIFEST)
    return module, provenance


def check_same_config(what: str, source: dict[str, Any], target: dict[str, Any],
                      fields: list[str] | None = None) -> None:
    """Refuse (:class:`BundleError`, naming the first differing field) a fine-tuning source whose
    config differs from the ``target`` config in ``fields`` (None: every field of either)."""
    names = fields if fields is not None else sorted(set(source) | set(target))
    for name in names:
        if source.get(name) != target.get(name):
            raise BundleError(f"{what}: config mismatch in {name!r}: the source has "
                              f"{source.get(name)!r}, this run needs {target.get(name)!r} (another "
                              f"preset or architecture; fine-tune from a source of the same one)")


class Pretrained:
    """The methods every registered component gets (``Registry.register`` adds them to the class)."""

    kind: str
    name: str

    @classmethod
    def from_config(cls, config: Any):
        """A fresh module of ``config`` (override when the constructor takes something else)."""
        return cls(config)

    def save_pretrained(self, folder: str | Path, half: bool = False,
                        extra: dict[str, Any] | None = None) -> Path:
        return save_pretrained(self, folder, half, extra)

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | torch.device = "cpu"):
        """Load from an export folder or a ``melody-lab train`` run folder."""
        module = load_pretrained(REGISTRIES[cls.kind], path, device)
        if not isinstance(module, cls):
            raise BundleError(f"{path} holds a {module.kind} {module.name!r}, not a {cls.__name__}")
        return module


# -- bundles ------------------------------------------------------------------------------------
def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(folder: str | Path) -> Path:
    """Hash every file under ``folder`` (except the manifest) into ``folder/manifest.json``."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)
    manifest = {"format": FORMAT,
                "files": {p.relative_to(folder).as_posix(): sha256(p) for p in files}}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return folder / MANIFEST


def verify_manifest(folder: str | Path, required: list[str]) -> dict:
    """Check ``folder`` against its manifest: every file in ``required`` (all that will be loaded)
    must be listed, and every listed file must exist inside the folder with its SHA-256."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise BundleError(f"{folder} is not a melody_lab bundle (no {MANIFEST})")
    manifest = read_json(path)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise BundleError(f"{folder} has bundle format {found!r}; this melody_lab reads {FORMAT!r}")
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        raise BundleError(f"{path}: 'files' must map each file to its SHA-256")
    unlisted = [name for name in required if name not in files]
    if unlisted:
        raise BundleError(f"bundle {folder}: {', '.join(unlisted)} not listed in {MANIFEST} "
                          f"(every file that is loaded must be listed and verified)")
    root = folder.resolve()
    for name, expected in files.items():
        file = folder / name
        if Path(name).is_absolute() or root not in file.resolve().parents:
            raise BundleError(f"{path} lists {name!r}, which lies outside the bundle")
        if not file.is_file():
            raise BundleError(f"bundle {folder} is incomplete: {name} is missing")
        if sha256(file) != expected:
            raise BundleError(f"bundle file {file} is corrupted or was modified (SHA-256 does "
                              f"not match {MANIFEST}); re-download or re-export the bundle")
    return manifest


ESSEN_LICENCE = ("Corpora built by `melody-lab data build` contain songs of the Essen Folksong "
                 "Collection (via music21), which may be used for **non-commercial purposes only**; "
                 "a model trained on them inherits that restriction (docs/corpus.md, 'Sources and "
                 "licences').")
DEFAULT_LIMITS = ("An educational CPU-sized model: short (seconds-long), low-fidelity 16-kHz-class "
                  "audio of symbolic folk/classical music rendered by a synthesiser; it knows only "
                  "the styles and captions of its training corpus, follows a prompt's instrument "
                  "and genre loosely, and makes no vocals. Not for production or commercial use. "
                  "See docs/tiny_model.md ('Known limits').")


def model_card(components: dict[str, torch.nn.Module], meta: dict[str, Any],
               info: dict[str, Any] | None = None) -> str:
    """The ``MODEL_CARD.md`` of a bundle: components and their settings, the pipeline config,
    and what ``info`` knows — ``data`` (folder / corpus record), ``training`` ({part: record of
    its run: steps, wall time, recipe, init_from}), ``evaluation`` (numbers with their embedders
    and n), ``limits``, ``intended_use``. Anything unknown is said to be unknown."""
    info = info or {}
    lines = ["# Model card", "", "A MeLoDy bundle written by melody_lab (`MeLoDy.from_pretrained(FOLDER)`, "
             "`melody-lab generate --bundle FOLDER`).", "", "## Components", "",
             "| part | registry name | parameters | settings |", "|---|---|---|---|"]
    for part, module in components.items():
        settings = json.dumps(module.config.to_dict(), sort_keys=True)
        count = sum(p.numel() for p in module.parameters())
        lines.append(f"| {part} | {module.name} | {count:,} | `{settings}` |")
    lines += ["", "## Pipeline settings", "", f"`{json.dumps(meta.get('config', {}), sort_keys=True)}`",
              "", "## Data and licence", ""]
    data = info.get("data")
    lines += [f"Training data: {json.dumps(data) if not isinstance(data, str) else data}." if data
              else "Training data: not recorded (bundle saved from in-memory components).",
              "", ESSEN_LICENCE, "", "## Training", ""]
    training = info.get("training") or {}
    if training:
        for part, record in training.items():
            lines.append(f"- **{part}**: {json.dumps(record, sort_keys=True)}")
    else:
        lines.append("Recipe and wall time: not recorded (see docs/tiny_model.md for the shipped "
                     "`tiny` model's recipe).")
    lines += ["", "## Evaluation", ""]
    evaluation = info.get("evaluation")
    lines.append(json.dumps(evaluation, sort_keys=True) if evaluation else
                 "Not evaluated (run `melody-lab ablate` / scripts/inspect_bundle.py; report the "
                 "numbers with their embedders and n).")
    lines += ["", "## Intended use", "", info.get("intended_use") or
              "Learning and research on text-to-music generation on a CPU; non-commercial.",
              "", "## Known limits", "", info.get("limits") or DEFAULT_LIMITS, ""]
    return "\n".join(lines)


def save_bundle(folder: str | Path, components: dict[str, torch.nn.Module], meta: dict[str, Any],
                half: set[str] = frozenset(), card: dict[str, Any] | None = None) -> Path:
    """``folder/<part>/`` for each component (fp16 parameters for parts in ``half``),
    ``folder/melody.json`` (``meta`` + the format), ``folder/MODEL_CARD.md`` (:func:`model_card`
    of ``card``) and the manifest (which covers the card), written atomically."""
    folder = Path(folder)
    with atomic_folder(folder) as tmp:
        for part, module in components.items():
            save_pretrained(module, tmp / part, half=part in half)
        (tmp / "melody.json").write_text(json.dumps({"format": FORMAT, **meta}, indent=2))
        (tmp / MODEL_CARD).write_text(model_card(components, meta, card), encoding="utf-8")
        write_manifest(tmp)
    return folder


def load_bundle(folder: str | Path, parts: dict[str, Registry]) -> tuple[dict[str, Any], dict]:
    """``({part: module}, melody.json)`` of a bundle; every file is verified before it is read."""
    folder = Path(folder)
    kinds = {part: registry.kind for part, registry in parts.items()}
    required = ["melody.json", *(f"{p}/{f}" for p, k in kinds.items()
                                 for f in (CONFIG_FILE, f"{k}.safetensors"))]
    verify_manifest(folder, required)
    meta = read_json(folder / "melody.json")
    if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict):
        raise BundleError(f"{folder / 'melody.json'} has no pipeline config")
    modules = {part: load_pretrained(registry, folder / part, run_folders=False)
               for part, registry in parts.items()}
    return modules, meta
