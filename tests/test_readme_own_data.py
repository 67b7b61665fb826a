"""The README's "Your own data" commands run as written (CI runs what users copy).

The section sits between ``<!-- own-data:begin -->`` and ``<!-- own-data:end -->`` in README.md. Each
``samba ...`` line of its ```` ```bash ```` blocks runs in a temporary folder (``checkpoints/`` linked from the
repository) with ``$SAMBA_DATA_MIRROR`` set; it must exit 0 and print what the command promises last.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- own-data:begin -->", "<!-- own-data:end -->"


def section() -> str:
    for path in (REPO / "README.md",):
        text = path.read_text() if path.is_file() else ""
        if BEGIN in text and END in text:
            return text.split(BEGIN, 1)[1].split(END, 1)[0]
    raise AssertionError("no own-data section in README.md")


def commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", section(), flags=re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip().startswith("samba ")]


def test_section_has_the_commands_users_need():
    cmds = commands()
    assert any(c.startswith("samba embed ") for c in cmds)
    assert any(c.startswith("samba finetune ") and "--data" in c and "--labels" in c for c in cmds)
    assert all("$SAMBA_DATA_MIRROR" in c for c in cmds), "examples must use mirror-relative paths"


@pytest.mark.parametrize("cmd", commands())
def test_command_runs(cmd, mirror, tmp_path):
    (tmp_path / "checkpoints").symlink_to(REPO / "checkpoints", target_is_directory=True)
    env = dict(os.environ, SAMBA_DATA_MIRROR=str(mirror),
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    argv = shlex.split(os.path.expandvars(cmd.replace("$SAMBA_DATA_MIRROR", str(mirror))))
    if cmd.startswith("samba finetune"):
        argv += ["--epochs", "1"]  # the quick profile; one epoch is enough to check the command works
    r = subprocess.run([sys.executable, "-m", "samba", *argv[1:]], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, f"{cmd}\n{r.stderr[-2000:]}"
    last = r.stdout.strip().splitlines()[-1]
    if argv[1] == "embed":
        out = Path(last)
        assert out.is_file() and tmp_path in out.parents
        z = np.load(out)
        assert z["features"].ndim == 3 and z["pooled"].shape == z["features"].shape[:2]
        assert len(z["times_s"]) == len(z["pooled"])
        weights = (REPO / "checkpoints" / "samba_pretrained" / "model.safetensors").read_bytes()
        assert str(z["checkpoint_sha256"]) == hashlib.sha256(weights).hexdigest()  # what sha256sum prints
    else:
        assert "balanced_accuracy" in json.loads(last)
