"""Bundles: one folder holding every trained component of a MeLoDy pipeline.

Layout (all JSON + safetensors; loading never executes code)::

    BUNDLE/melody.json                    the pipeline config (MeLoDyConfig) + format version
    BUNDLE/codec/      codec.json  codec.safetensors
    BUNDLE/denoiser/   denoiser.json  denoiser.safetensors
    BUNDLE/mulan/ rvq/ tokenizer/ lm/     config.json  <kind>.safetensors
    BUNDLE/manifest.json                  {"files": {relative path: sha256}}

:func:`verify_manifest` checks every listed file's SHA-256 before anything is loaded, so a
truncated, corrupted or swapped file is a clear :class:`BundleError`, not a confusing shape error.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors.torch import load_model, save_file

from .errors import UserError

FORMAT = "melody_lab.bundle/1"
MANIFEST = "manifest.json"


class BundleError(UserError):
    """A bundle folder is missing, incomplete, corrupted or of another format."""


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


def verify_manifest(folder: str | Path) -> dict:
    """Check the folder against its manifest; returns the manifest or raises :class:`BundleError`."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise BundleError(f"{folder} is not a melody_lab bundle (no {MANIFEST})")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise BundleError(f"{path} is not valid JSON: {err}") from err
    if manifest.get("format") != FORMAT:
        raise BundleError(f"{folder} has bundle format {manifest.get('format')!r}; this "
                          f"melody_lab reads {FORMAT!r}")
    for name, expected in manifest["files"].items():
        file = folder / name
        if not file.is_file():
            raise BundleError(f"bundle {folder} is incomplete: {name} is missing")
        if sha256(file) != expected:
            raise BundleError(f"bundle file {file} is corrupted or was modified (SHA-256 does "
                              f"not match {MANIFEST}); re-download or re-export the bundle")
    return manifest


def save_denoiser(net: torch.nn.Module, name: str, folder: str | Path,
                  dtype: torch.dtype = torch.float32) -> Path:
    """``folder/denoiser.json`` ({name, config}) + ``folder/denoiser.safetensors``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to(dtype if v.is_floating_point() else v.dtype).contiguous()
               for k, v in net.state_dict().items()}
    save_file(tensors, str(folder / "denoiser.safetensors"))
    record = {"name": name, "config": net.config.to_dict()}
    (folder / "denoiser.json").write_text(json.dumps(record, indent=2, sort_keys=True))
    return folder


def load_denoiser(folder: str | Path) -> torch.nn.Module:
    """Inverse of :func:`save_denoiser` (fp16 weights load into a float32 model)."""
    from .denoisers import CONFIG_CLASSES, DENOISERS

    folder = Path(folder)
    record = json.loads((folder / "denoiser.json").read_text())
    net = DENOISERS.get(record["name"])(CONFIG_CLASSES[record["name"]].from_dict(record["config"]))
    load_model(net, str(folder / "denoiser.safetensors"), strict=True)
    return net.eval()
