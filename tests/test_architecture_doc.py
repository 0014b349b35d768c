"""docs/architecture.md's worked example (a new denoiser) runs as written, in a fresh process
(registering it here would add "mlp" to the DENOISERS of every later test)."""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHECK = '''
import torch
from melody_lab.denoisers import DENOISERS, build_denoiser
net = build_denoiser("mlp", "micro")
z, angles = torch.randn(2, 5, 8), torch.rand(2, 5)
assert net(z, angles).shape == (2, 5, 8) and net.kind == "denoiser" and net.name == "mlp"
folder = net.save_pretrained(FOLDER)
loaded = DENOISERS.get("mlp").from_pretrained(folder)
assert type(loaded) is type(net) and torch.equal(loaded(z, angles), net.eval()(z, angles))
print("ok")
'''


def test_the_new_denoiser_example_builds_saves_and_loads(tmp_path):
    text = (ROOT / "docs" / "architecture.md").read_text()
    section = text.split("## Adding a component", 1)[1].split("\n## ", 1)[0]
    (example,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(example.strip().splitlines()) < 30 + 6  # < 30 lines of code besides imports
    code = example + CHECK.replace("FOLDER", repr(str(tmp_path / "mlp")))
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                            timeout=300, env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
                                              "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
