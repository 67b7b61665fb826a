"""`samba.allocator.keep_freed_memory`: set on glibc, left alone when the user set it, called by the CLI's
compute commands and not by the benchmark."""
import subprocess
import sys

import pytest

import samba.allocator as allocator
from samba.cli import main

PROBE = "from samba.allocator import keep_freed_memory; print(keep_freed_memory())"


def _probe(env_extra: dict) -> str:
    import os

    env = {k: v for k, v in os.environ.items() if k not in allocator.ENV_VARS} | env_extra
    # in a child process: the setting is process-wide and this test session should keep glibc's defaults
    return subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env,
                          check=True).stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_keep_freed_memory_sets_glibc_parameters():
    assert _probe({}) == "True"


@pytest.mark.parametrize("var", allocator.ENV_VARS)
def test_keep_freed_memory_leaves_a_users_setting_alone(var):
    assert _probe({var: "1048576"}) == "False"


@pytest.mark.parametrize("cmd,called", [("evaluate", True), ("embed", True), ("pretrain", True),
                                        ("finetune", True), ("bench", False), ("data", False)])
def test_cli_compute_commands_keep_freed_memory_and_bench_does_not(cmd, called, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(allocator, "keep_freed_memory", lambda: calls.append(cmd) or True)
    with pytest.raises(SystemExit) as stop:
        main([cmd, "--help"])
    assert stop.value.code == 0
    assert bool(calls) == called
