"""`samba ...` as a user meets it: fast help, one clear line for every mistake, paths from the user's cwd.

Each test runs the real command line in a subprocess from a scratch directory (not the repository), with
this checkout first on the path.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Help must feel instant; 1.5 s leaves room for a loaded 2-core machine, and the import check below is exact.
HELP_SECONDS = 1.5
HEAVY = ("torch", "mne", "numpy", "sklearn", "pandas")


def samba(*args, cwd, env=None, importtime=False):
    # no mirror unless the test names one: each test sets exactly the environment it is about
    environ = {k: v for k, v in os.environ.items() if k != "SAMBA_DATA_MIRROR"}
    environ.update({"PYTHONPATH": str(REPO), **(env or {})})
    cmd = [sys.executable] + (["-X", "importtime"] if importtime else []) + ["-m", "samba", *args]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=environ, capture_output=True, text=True, timeout=600)
    return proc, time.perf_counter() - t0


def assert_one_line_error(proc):
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("samba: error: "), proc.stderr


@pytest.mark.parametrize("args", [["--help"], ["data", "--help"], ["data", "verify", "--help"],
                                  ["pretrain", "--help"], ["finetune", "--help"], ["evaluate", "--help"]],
                         ids=lambda a: " ".join(a))
def test_help_is_fast_and_light(args, tmp_path):
    proc, seconds = samba(*args, cwd=tmp_path, importtime=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "usage: samba" in proc.stdout
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    heavy = sorted(m for m in imported if m.split(".")[0] in HEAVY)
    assert not heavy, f"`samba {' '.join(args)}` imports {heavy[:5]} before parsing"
    proc, seconds = samba(*args, cwd=tmp_path)
    assert seconds < HELP_SECONDS, f"`samba {' '.join(args)}` took {seconds:.2f} s"


def test_unknown_command(tmp_path):
    proc, _ = samba("frobnicate", cwd=tmp_path)
    assert_one_line_error(proc)
    assert "unknown command 'frobnicate'" in proc.stderr


def test_unknown_task(tmp_path):
    proc, _ = samba("finetune", "--task", "no-such-task", "--out", "run", cwd=tmp_path)
    assert_one_line_error(proc)
    assert "eegmat-workload" in proc.stderr  # the message lists the tasks there are
    assert not (tmp_path / "run").exists()


def test_missing_model_folder(tmp_path):
    proc, _ = samba("evaluate", "--model", "no_such_run", "--task", "eegmat-workload", cwd=tmp_path)
    assert_one_line_error(proc)
    assert str(tmp_path / "no_such_run") in proc.stderr  # resolved against the user's directory


def test_missing_init_checkpoint(tmp_path):
    proc, _ = samba("finetune", "--task", "eegmat-workload", "--init", "nope.pt", "--out", "run", cwd=tmp_path)
    assert_one_line_error(proc)


def test_verify_missing_mirror_fails(tmp_path):
    proc, _ = samba("data", "verify", "--mirror", "no_such_mirror", cwd=tmp_path)
    assert_one_line_error(proc)
    assert "no_such_mirror" in proc.stderr


def test_verify_missing_mirror_from_environment_fails(tmp_path):
    proc, _ = samba("data", "verify", cwd=tmp_path, env={"SAMBA_DATA_MIRROR": "no_such_mirror"})
    assert_one_line_error(proc)


def test_verify_nothing_checked_fails(tmp_path):
    """No mirror and an empty cache: '0 ok' must not read as success."""
    proc, _ = samba("data", "verify", cwd=tmp_path, env={"SAMBA_DATA_DIR": str(tmp_path / "empty_cache")})
    assert proc.returncode != 0
    assert "0 ok" in proc.stdout
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("samba: error: ")


def test_verify_relative_mirror_from_the_users_directory(mirror, tmp_path):
    """A relative SAMBA_DATA_MIRROR is read from where the command was typed."""
    work = tmp_path / "somewhere"
    work.mkdir()
    relative = os.path.relpath(mirror, work)
    proc, _ = samba("data", "verify", cwd=work,
                    env={"SAMBA_DATA_MIRROR": relative, "SAMBA_DATA_DIR": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    ok = int(last.split(" ok")[0])
    assert ok > 0 and last.endswith(" 0 bad"), last


@pytest.fixture
def afile(tmp_path):
    """A plain file where a folder is expected."""
    path = tmp_path / "afile"
    path.write_text("not a folder\n")
    return path


CKPT = str(REPO / "checkpoints" / "samba_pretrained")
MISTAKES = {
    # numbers out of range are refused when parsed, never replaced by a default or run with
    "finetune --epochs -1": ["finetune", "--task", "eegmat-workload", "--out", "run", "--epochs", "-1"],
    "finetune --epochs 0": ["finetune", "--task", "eegmat-workload", "--out", "run", "--epochs", "0"],
    "finetune --batch-size 0": ["finetune", "--task", "eegmat-workload", "--out", "run", "--batch-size", "0"],
    "finetune --lr -1": ["finetune", "--task", "eegmat-workload", "--out", "run", "--lr", "-1"],
    "finetune --lr nan": ["finetune", "--task", "eegmat-workload", "--out", "run", "--lr", "nan"],
    "finetune --out under a file": ["finetune", "--task", "eegmat-workload", "--out", "afile/sub"],
    "finetune --out is a file": ["finetune", "--task", "eegmat-workload", "--out", "afile"],
    "finetune --model eegnet --init": ["finetune", "--task", "eegmat-workload", "--out", "run", "--model", "eegnet",
                                       "--init", CKPT],
    "finetune --mode probe --model eegnet": ["finetune", "--task", "eegmat-workload", "--out", "run", "--model",
                                             "eegnet", "--mode", "probe"],
    "finetune missing --out": ["finetune", "--task", "eegmat-workload"],
    "embed --window-s nan": ["embed", "rec.csv", "--window-s", "nan"],
    "embed --window-s inf": ["embed", "rec.csv", "--window-s", "inf"],
    "embed --sfreq nan": ["embed", "rec.csv", "--sfreq", "nan"],
    "embed --device bogus": ["embed", "rec.csv", "--device", "bogus"],
    "embed --out under a file": ["embed", "rec.csv", "--out", "afile/x.npz"],
    "embed a missing file into a new folder": ["embed", "missing.csv", "--out", "newdir/x.npz"],
    "finetune --device bogus": ["finetune", "--task", "eegmat-workload", "--out", "run", "--device", "bogus"],
    "embed missing recording argument": ["embed"],
    "embed a folder": ["embed", "."],
    "embed --checkpoint a weights file": ["embed", "rec.csv", "--checkpoint", CKPT + "/model.safetensors"],
    "bench --contexts -10": ["bench", "--device", "cpu", "--quick", "--contexts", "-10", "--out", "b.json"],
    "bench --batches 0": ["bench", "--device", "cpu", "--quick", "--batches", "0", "--out", "b.json"],
    "bench --budget-s -1": ["bench", "--device", "cpu", "--quick", "--budget-s", "-1", "--out", "b.json"],
    "bench --out under a file": ["bench", "--device", "cpu", "--quick", "--out", "afile/b.json"],
    "data verify --bogus": ["data", "verify", "--bogus"],
    "evaluate a pretrained checkpoint": ["evaluate", "--model", CKPT, "--task", "eegmat-workload"],
}


@pytest.mark.parametrize("args", MISTAKES.values(), ids=MISTAKES.keys())
def test_mistake_is_one_line_and_writes_nothing(args, tmp_path, afile):
    (tmp_path / "rec.csv").write_text("time,Cz,Pz\n" + "".join(f"{i / 128},0.0,0.0\n" for i in range(128 * 8)))
    before = sorted(p.name for p in tmp_path.iterdir())
    proc, _ = samba(*args, cwd=tmp_path)
    assert_one_line_error(proc)
    assert proc.returncode == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no run folder, no output, no partial file


def test_finetune_that_fails_on_its_data_leaves_no_folder(tmp_path):
    """The output folder is checked before the data load but made only when there is a model to save."""
    (tmp_path / "rec.edf").write_text("not an EDF file\n")  # exists, so only reading it fails
    proc, _ = samba("finetune", "--data", "rec.edf", "--labels", "a=T1,b=T2", "--out", "runs/own", cwd=tmp_path)
    assert_one_line_error(proc)
    assert not (tmp_path / "runs").exists()


def test_profile_help_states_the_profiles_numbers():
    """The --profile help (and the README, docs/your_own_data.md) quote PROFILES; they must not drift apart."""
    from samba.train.cli import finetune_parser
    from samba.train.finetuning import PROFILES

    q, f = PROFILES["quick"], PROFILES["full"]
    text = " ".join(finetune_parser().format_help().split())
    assert f"{q['epochs']} epochs ({q['probe_epochs']} for --mode probe) on at most {q['max_train_windows']}" in text
    assert f"{f['epochs']} epochs ({f['probe_epochs']} for --mode probe) on every training window" in text
    for doc in ("README.md", "docs/your_own_data.md"):
        body = " ".join((REPO / doc).read_text().split())
        assert f"{q['epochs']} epochs" in body and f"at most {q['max_train_windows']}" in body, doc
