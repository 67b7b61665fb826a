"""The scripts import names that exist: the shell scripts' inline Python (they run only on a GPU machine, where a
stale module path shows up as a traceback in the middle of the setup output) and the Python scripts' imports,
most of them inside functions that only a long measurement reaches."""
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
IMPORT = re.compile(r"from (samba[\w.]*) import ([\w, ]+)")


def _imports():
    for path in sorted([*(ROOT / "scripts").rglob("*.sh"), *(ROOT / "scripts").rglob("*.py")]):
        for module, names in IMPORT.findall(path.read_text()):
            yield pytest.param(module, [n.strip() for n in names.split(",") if n.strip()],
                               id=f"{path.relative_to(ROOT)}:{module}")


@pytest.mark.parametrize("module, names", list(_imports()))
def test_shell_script_imports_exist(module, names):
    mod = importlib.import_module(module)
    missing = [n for n in names if not hasattr(mod, n)]
    assert not missing, f"{module} has no {missing}"


def test_the_scripts_have_inline_imports_to_check():
    assert len(list(_imports())) >= 3
