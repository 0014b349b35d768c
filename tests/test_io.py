"""melody_lab.io: one save/load mechanism for every component, and what a bundle load checks.

Every tampering below keeps the manifest's hashes consistent where it matters (re-hashed after
the edit), so only the content checks can catch it; each of them loaded or crashed before.
"""
import json
import shutil

import pytest
import torch

from melody_lab.cli import main
from melody_lab.errors import BundleError
from melody_lab.io import FORMAT, MANIFEST, write_manifest
from melody_lab.pipeline import MeLoDy
from melody_lab.registry import REGISTRIES


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    from melody_lab.debug import build_debug_pipeline

    return build_debug_pipeline(seed=0).save_pretrained(tmp_path_factory.mktemp("b") / "bundle")


@pytest.fixture
def copy(bundle, tmp_path):
    return shutil.copytree(bundle, tmp_path / "bundle")


def _rewrite_header(path, edit):
    """Rewrite a safetensors file's JSON header with ``edit(header) -> header`` (data unchanged)."""
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.dumps(edit(json.loads(data[8:8 + n]))).encode()
    header += b" " * (-len(header) % 8)
    path.write_bytes(len(header).to_bytes(8, "little") + header + data[8 + n:])


def test_every_component_saves_and_loads_the_same_way(bundle, tmp_path):
    model = MeLoDy.from_pretrained(bundle)
    for part in ("codec", "denoiser", "mulan", "rvq", "tokenizer", "lm"):
        module = getattr(model, part)
        folder = module.save_pretrained(tmp_path / part)
        record = json.loads((folder / "config.json").read_text())
        assert record["kind"] == module.kind == REGISTRIES[module.kind].kind
        assert record["name"] == module.name and module.name in REGISTRIES[module.kind]
        loaded = type(module).from_pretrained(folder)
        assert type(loaded) is type(module) and loaded.config == module.config
        own, back = module.state_dict(), loaded.state_dict()
        assert own.keys() == back.keys() and all(torch.equal(own[k], back[k]) for k in own)


def test_a_loaded_file_missing_from_the_manifest_is_refused(copy):
    manifest = json.loads((copy / MANIFEST).read_text())
    del manifest["files"]["codec/codec.safetensors"]
    (copy / MANIFEST).write_text(json.dumps(manifest))
    weights = copy / "codec" / "codec.safetensors"
    weights.write_bytes(weights.read_bytes()[:-2] + b"\xff\xff")  # changed bytes went unnoticed
    with pytest.raises(BundleError, match="codec/codec.safetensors not listed"):
        MeLoDy.from_pretrained(copy)


def test_an_empty_manifest_is_refused(copy):
    (copy / MANIFEST).write_text(json.dumps({"format": FORMAT, "files": {}}))
    with pytest.raises(BundleError, match="not listed"):
        MeLoDy.from_pretrained(copy)


def test_a_manifest_entry_outside_the_bundle_is_refused(copy):
    manifest = json.loads((copy / MANIFEST).read_text())
    manifest["files"]["../elsewhere"] = "0" * 64
    (copy / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="outside the bundle"):
        MeLoDy.from_pretrained(copy)


@pytest.mark.parametrize("part, field, value", [("denoiser", "width", "wide"),
                                                ("codec", "latent_dim", 8.5),
                                                ("lm", "num_layers", True)])
def test_a_config_value_of_the_wrong_type_is_a_bundle_error(copy, part, field, value):
    path = copy / part / "config.json"
    record = json.loads(path.read_text())
    record["config"][field] = value
    path.write_text(json.dumps(record))
    write_manifest(copy)
    with pytest.raises(BundleError, match=rf"{field}: expected int"):
        MeLoDy.from_pretrained(copy)


def test_a_header_claiming_a_huge_tensor_is_a_bundle_error(copy):
    weights = copy / "codec" / "codec.safetensors"

    def huge(header):
        name = next(k for k in header if k != "__metadata__")
        header[name]["shape"] = [1 << 40]
        return header

    _rewrite_header(weights, huge)
    write_manifest(copy)
    with pytest.raises(BundleError, match="invalid entry"):
        MeLoDy.from_pretrained(copy)


def test_a_tensor_of_another_shape_is_a_bundle_error(copy):
    weights = copy / "lm" / "lm.safetensors"

    def reshaped(header):  # same bytes, another (consistent) shape: only the model check sees it
        name = next(k for k, v in header.items() if k != "__metadata__" and len(v["shape"]) == 2)
        a, b = header[name]["shape"]
        header[name]["shape"] = [b, a]
        return header

    _rewrite_header(weights, reshaped)
    write_manifest(copy)
    with pytest.raises(BundleError, match="do not fit the model"):
        MeLoDy.from_pretrained(copy)


def test_a_huge_header_is_a_bundle_error_and_exit_2_in_the_cli(copy, tmp_path, capsys):
    weights = copy / "mulan" / "mulan.safetensors"
    weights.write_bytes((1 << 40).to_bytes(8, "little") + weights.read_bytes()[8:])
    write_manifest(copy)
    with pytest.raises(BundleError, match="header claims"):
        MeLoDy.from_pretrained(copy)
    out = tmp_path / "o.wav"
    assert main(["generate", "a reel", "--bundle", str(copy), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "header claims" in err and "Traceback" not in err and not out.exists()


def test_a_bundle_of_the_old_layout_is_refused_by_its_format(copy):
    manifest = json.loads((copy / MANIFEST).read_text())
    (copy / MANIFEST).write_text(json.dumps({**manifest, "format": "melody_lab.bundle/1"}))
    with pytest.raises(BundleError, match=r"format 'melody_lab.bundle/1'; this melody_lab reads"):
        MeLoDy.from_pretrained(copy)
