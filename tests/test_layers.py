"""The layers import downwards only: the import-linter contract in pyproject.toml, run in CI.

base (audio, config, registry, io, errors, nn, devices) → components (codecs, denoisers,
diffusion, semantic, metrics, data) → pipeline → train → ablation → commands/cli; see
docs/architecture.md. Imports inside functions count too.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _lint(tmp_path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    code = ("import sys; from importlinter.cli import lint_imports; "
            f"sys.exit(lint_imports(config_filename={str(ROOT / 'pyproject.toml')!r}, "
            f"no_cache=True, no_logo=True))")
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)


def test_no_module_imports_a_higher_layer(tmp_path):
    pytest.importorskip("importlinter", reason="import-linter comes with the dev extra "
                        "(pip install -e '.[dev]'); CI installs it")
    result = _lint(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout
