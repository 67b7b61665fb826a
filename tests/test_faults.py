"""Fault injection: kills during checkpoint writes, flipped bytes, truncated and garbled inputs, malicious
pickles, two runs on one folder, and bad options. Nothing may end in a traceback (only ``SambaError``s),
run code, or lose the last good state.

The tally (faults injected, runs resumed identically, bad inputs tried, states lost) is printed at the end
of the module (``pytest -s``) and written to ``build/fault_report.json``.
"""

from __future__ import annotations

import json
import os
import pathlib
import pickle
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter

import numpy as np
import pytest
import torch

from samba.errors import SambaError
from samba.train.pretraining import PretrainConfig, pretrain, synthetic_corpus
from samba.train.state import load_train_state
from test_train_pretrain import tiny_model_config

FIGURES: Counter = Counter()
REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", autouse=True)
def fault_report():
    yield
    from samba.paths import build_dir

    summary = {k: FIGURES[k] for k in ("faults_injected", "runs_resumed_identically", "bad_inputs_tried",
                                       "states_lost", "code_executed")}
    (build_dir() / "fault_report.json").write_text(json.dumps(summary, indent=1) + "\n")
    print("\nfault injection:", ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in summary.items()))


def _cfg(out, **kw):
    base = dict(out=str(out), profile="quick", steps=4, batch_size=4, ckpt_every=1, log_every=1, val_every=4,
                val_batches=1, progress=False, device="cpu", model=tiny_model_config())
    base.update(kw)
    return PretrainConfig(**base)


def _corpus():
    return synthetic_corpus(n_montages=2, n_windows=12, n_times=32)


def _run(out, **kw):
    return pretrain(_cfg(out, **kw), datasets=_corpus())


def _weights(folder):
    from samba.checkpoint import load_checkpoint

    return load_checkpoint(folder)["state_dict"]


def _same(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return _weights(_run(tmp_path_factory.mktemp("ref") / "run"))


# ---------------------------------------------------------------------------------------------- kills
class _Killed(BaseException):
    """Stands in for SIGKILL at one filesystem operation (BaseException: no `except Exception` swallows it)."""


def _inject_kill(monkeypatch, kill_at: int | None):
    """Count the filesystem operations of every training-state save; at operation ``kill_at`` raise _Killed,
    after which every such operation is a no-op (a killed process cleans nothing up)."""
    import samba.train.pretraining as P
    import samba.train.state as S

    box = {"in_save": False, "ops": 0, "dead": False, "per_save": []}

    def wrap(fn):
        def op(*a, **k):
            if box["dead"]:
                return None
            if box["in_save"]:
                box["ops"] += 1
                if kill_at is not None and box["ops"] == kill_at:
                    box["dead"] = True
                    raise _Killed(f"killed at filesystem operation {kill_at}")
            return fn(*a, **k)
        return op

    for mod, name in ((os, "replace"), (os, "fsync"), (shutil, "rmtree"), (pathlib.Path, "rename"),
                      (pathlib.Path, "unlink"), (pathlib.Path, "mkdir")):
        monkeypatch.setattr(mod, name, wrap(getattr(mod, name)))
    real_save = S.save_train_state

    def save(*a, **k):
        box["in_save"], start = True, box["ops"]
        try:
            return real_save(*a, **k)
        finally:
            box["in_save"] = False
            box["per_save"].append(box["ops"] - start)

    monkeypatch.setattr(P, "save_train_state", save)
    return box


def test_kill_during_checkpoint_writes_then_resume_is_identical(tmp_path, reference, monkeypatch):
    """Kill at seeded-random filesystem operations inside the training-state writes; the same command then
    resumes from what is on disk and ends bit-identical to the uninterrupted run."""
    with monkeypatch.context() as m:  # count the operations of one clean run
        box = _inject_kill(m, None)
        _run(tmp_path / "count")
    total = box["ops"]
    assert total > 10 and len(box["per_save"]) == 4
    rng = random.Random(0)
    for seed in range(4):
        kill_at = rng.randint(1, total)
        out = tmp_path / f"kill{seed}"
        with monkeypatch.context() as m:
            _inject_kill(m, kill_at)
            with pytest.raises(_Killed):
                _run(out)
        FIGURES["faults_injected"] += 1
        # an in-process "kill" leaves this process's own lock behind; a real one is stale (tested below)
        (out / "run.lock").unlink(missing_ok=True)
        state = load_train_state(out)  # a state is always there after the first save completed
        if kill_at > box["per_save"][0] and state is None:
            FIGURES["states_lost"] += 1
        resumed = _weights(_run(out))  # the very same command
        assert _same(resumed, reference), f"kill at operation {kill_at}"
        FIGURES["runs_resumed_identically"] += 1


_CHILD = """
import sys, time
import torch
torch.set_num_threads({threads})  # as in the parent: bit-identical float reductions
sys.path.insert(0, {tests!r})
from test_faults import _cfg, _corpus
from samba.train.pretraining import pretrain
import samba.train.step as S
real = S.PretrainStep.__call__
def slow(self, *a, **k):
    time.sleep(1.0)  # time to be killed at any point of a step or a checkpoint write
    return real(self, *a, **k)
S.PretrainStep.__call__ = slow
pretrain(_cfg({out!r}), datasets=_corpus())
"""


def test_sigkill_second_run_refused_then_stale_lock_resume_identical(tmp_path, reference):
    """A real SIGKILL at a seeded-random moment. While the first run is alive a second run in the folder is
    refused naming its pid; after the kill its lock is stale and the resumed run matches the reference."""
    env = dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    rng = random.Random(1)
    for seed in range(2):
        out = tmp_path / f"sig{seed}"
        child = subprocess.Popen([sys.executable, "-c", _CHILD.format(tests=str(REPO / "tests"), out=str(out),
                                                                  threads=torch.get_num_threads())],
                                 env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.time() + 120
            while not (out / "train_state").exists() and child.poll() is None and time.time() < deadline:
                time.sleep(0.05)
            assert child.poll() is None, child.stderr.read().decode()[-2000:]
            with pytest.raises(SambaError, match=f"in use by process {child.pid}"):
                _run(out)  # two runs, one folder: the second is refused
            FIGURES["bad_inputs_tried"] += 1
            time.sleep(rng.uniform(0.0, 2.5))
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
            child.stderr.close()
        FIGURES["faults_injected"] += 1
        if load_train_state(out) is None:
            FIGURES["states_lost"] += 1
        with pytest.warns(RuntimeWarning, match="stale lock"):
            resumed = _weights(_run(out))
        assert _same(resumed, reference)
        FIGURES["runs_resumed_identically"] += 1


# ---------------------------------------------------------------------------------------------- corruption
def _flip(path: pathlib.Path, where: float = 0.5):
    data = bytearray(path.read_bytes())
    data[int(len(data) * where) % len(data)] ^= 0x5A
    path.write_bytes(bytes(data))


def test_flipped_bytes_in_every_checkpoint_file_name_the_file(tmp_path):
    """Every file of the model and training-state folders: a flipped byte is a SambaError naming the file
    (or, for the latest state, a fallback to the previous good one); the good backup is never lost."""
    from samba.checkpoint import load_model

    out = tmp_path / "run"
    model_dir = _run(out, steps=2)
    for name in ("model.safetensors", "config.json", "manifest.json"):
        saved = (model_dir / name).read_bytes()
        for where in (0.1, 0.5, 0.9):
            _flip(model_dir / name, where)
            with pytest.raises(SambaError) as err:
                load_model(model_dir)
            assert any(n in str(err.value) for n in ("model.safetensors", "config.json", "manifest.json"))
            (model_dir / name).write_bytes(saved)
            FIGURES["faults_injected"] += 1
    for name in ("state.pt", "manifest.json"):
        saved = (out / "train_state" / name).read_bytes()
        _flip(out / "train_state" / name)
        with pytest.warns(RuntimeWarning, match="corrupt training checkpoint skipped"):
            assert load_train_state(out)["step"] == 1  # the previous good state
        (out / "train_state" / name).write_bytes(saved)
        FIGURES["faults_injected"] += 1


def test_corrupt_latest_is_not_rotated_over_the_good_backup(tmp_path):
    """Before: a corrupt latest state was moved to .prev on the next save, deleting the good backup. Now it
    is discarded and the good .prev stays until a new verified state exists."""
    from samba.train.state import save_train_state

    out = tmp_path / "run"
    _run(out, steps=2)  # states at steps 1 (prev) and 2 (latest)
    _flip(out / "train_state" / "state.pt")
    killed = {}

    def hook():  # stop right after the new state is verified, before any rename
        killed["prev_step"] = torch.load(out / "train_state.prev" / "state.pt", weights_only=True)["step"]
        raise _Killed()

    with pytest.raises(_Killed):
        save_train_state(out, {"step": 3, "model": {}}, before_rotate=hook)
    assert killed["prev_step"] == 1
    with pytest.warns(RuntimeWarning, match="discarding corrupt"):
        save_train_state(out, {"step": 3, "model": {}})
    assert torch.load(out / "train_state.prev" / "state.pt", weights_only=True)["step"] == 1  # backup kept
    assert load_train_state(out)["step"] == 3
    FIGURES["faults_injected"] += 1


def test_truncated_data_files_are_clear_errors(mirror, tmp_path):
    from samba.data import readers, registry

    edf = tmp_path / "eegmmidb" / "S001" / "S001R04.edf"
    edf.parent.mkdir(parents=True)
    data = (mirror / "eegmmidb/S001/S001R04.edf").read_bytes()
    for frac in (0.0, 0.01, 0.3, 0.999):
        edf.write_bytes(data[: int(len(data) * frac)])
        with pytest.raises(SambaError):
            readers.read_raw(edf)
        with pytest.raises(SambaError):
            registry.fetch("eegmmidb", "S001/S001R04.edf", mirror=tmp_path, download=False)
        FIGURES["bad_inputs_tried"] += 2


# ---------------------------------------------------------------------------------------------- no code runs
class _Evil:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def test_malicious_pickle_never_runs_in_any_loader(tmp_path):
    """A pickle whose unpickling would create a marker file, handed to every loader, even with a manifest
    that vouches for it (an attacker can rewrite the manifest too): refused, and the marker never appears."""
    from samba.checkpoint import (convert_legacy, load_finetuned_state, load_model, save_finetuned, save_model,
                                  write_manifest)
    from samba.data import cache
    from samba.model import SAMBA, SAMBAConfig

    marker = tmp_path / "code-ran"
    evil = pickle.dumps({"format": "samba-model", "state_dict": _Evil(marker), "step": 1, "model": _Evil(marker)})
    assert not marker.exists()

    (tmp_path / "evil.pt").write_bytes(evil)
    attempts = [lambda: load_model(tmp_path / "evil.pt"), lambda: convert_legacy(tmp_path / "evil.pt")]

    def each_file_replaced(folder, files, loader):
        """One copy of ``folder`` per file, that file replaced by the pickle (manifest rewritten to match)."""
        for name in files:
            d = tmp_path / f"{folder.name}-{name}"
            shutil.copytree(folder, d)
            (d / name).write_bytes(evil)
            write_manifest(d, list(files))
            attempts.append(lambda d=d: loader(d))

    model_dir = save_model(tmp_path / "m", SAMBA(SAMBAConfig(**tiny_model_config())))
    each_file_replaced(model_dir, ("model.safetensors", "config.json"), load_model)
    ft = tmp_path / "ft"
    save_finetuned(ft, {"w": torch.zeros(1)}, {"model": "eegnet"})
    each_file_replaced(ft, ("finetuned.safetensors", "finetuned.json"), load_finetuned_state)
    run = tmp_path / "run" / "train_state"
    run.mkdir(parents=True)
    torch.save({"step": 1, "model": {}, "x": _Evil(marker)}, run / "state.pt")  # a torch pickle with a global
    write_manifest(run, ["state.pt"])
    attempts.append(lambda: load_train_state(tmp_path / "run") or pytest.fail("loaded"))
    for attempt in attempts:
        with pytest.raises(SambaError):
            attempt()
        FIGURES["bad_inputs_tried"] += 1
    # the preprocessing cache: a pickled object array in place of a signal is ignored, not unpickled
    np.save(tmp_path / "k.npy", np.array([_Evil(marker)], dtype=object), allow_pickle=True)
    (tmp_path / "k.json").write_text(json.dumps({"ch_names": ["Cz"], "sfreq": 128.0, "events": [], "report": {}}))
    assert cache.load("k", tmp_path) is None
    FIGURES["bad_inputs_tried"] += 1
    if marker.exists():
        FIGURES["code_executed"] += 1
    assert not marker.exists()


# ---------------------------------------------------------------------------------------------- readers fuzz
def _mutations(data: bytes, rng: random.Random, n: int):
    for _ in range(n):
        kind = rng.choice(["truncate", "flip", "garbage", "splice", "header"])
        b = bytearray(data)
        if kind == "truncate":
            b = b[: rng.randint(0, len(b) - 1)]
        elif kind == "flip":
            for _ in range(rng.randint(1, 50)):
                b[rng.randrange(len(b))] = rng.randrange(256)
        elif kind == "garbage":
            b = bytearray(rng.randbytes(rng.randint(1, 4096)))
        elif kind == "splice":
            i = rng.randrange(len(b))
            b[i:i] = rng.randbytes(rng.randint(1, 300))
        else:  # the header: where parsers make their decisions
            for _ in range(rng.randint(1, 8)):
                b[rng.randrange(min(len(b), 512))] = rng.randrange(256)
        yield kind, bytes(b)


def test_readers_fuzzed_with_truncated_and_garbled_files(mirror, tmp_path):
    """EDF, Eye-State CSV and Muse CSV readers on a seeded corpus of damaged files: each either reads or
    raises a SambaError; no other exception escapes."""
    from samba.data import readers

    csv_lines = (mirror / "eeg_eye_state/eeg-eye-state.csv").read_text().splitlines()[:400]
    muse = sorted((mirror / "muse_p300").rglob("*.csv"))[0].read_text().splitlines()[:600]
    sources = {".edf": (mirror / "eegmmidb/S001/S001R01.edf").read_bytes(),
               "eye.csv": ("\n".join(csv_lines) + "\n").encode(), "muse.csv": ("\n".join(muse) + "\n").encode()}
    rng = random.Random(1234)
    escaped = []
    for suffix, data in sources.items():
        for i, (kind, blob) in enumerate(_mutations(data, rng, 14)):
            path = tmp_path / f"f{i}{suffix if suffix == '.edf' else '.csv'}"
            path.write_bytes(blob)
            FIGURES["bad_inputs_tried"] += 1
            try:
                readers.read_raw(path)
            except SambaError:
                pass
            except Exception as err:  # noqa: BLE001 - what the test hunts for
                escaped.append(f"{suffix} {kind}: {type(err).__name__}: {err}")
            path.unlink()
    assert not escaped, escaped


# ---------------------------------------------------------------------------------------------- options
def test_resume_with_changed_options_is_refused_listing_them(tmp_path):
    """Before: resuming with other hyperparameters continued silently and rewrote config.json. Now the
    differences are listed; --allow-change lets budgets change, and config.json records the change."""
    out = tmp_path / "run"
    _run(out, steps=2)
    with pytest.raises(SambaError, match=r"lr: 0.0005 -> 0.001.*mask_ratio: 0.5 -> 0.6"):
        _run(out, steps=2, lr=1e-3, mask_ratio=0.6)
    with pytest.raises(SambaError, match="--allow-change steps"):
        _run(out, steps=3)
    with pytest.raises(SambaError, match="accepts only"):
        _run(out, steps=3, allow_change=("lr",))
    _run(out, steps=3, allow_change=("steps",))
    record = json.loads((out / "config.json").read_text())
    assert record["steps"] == 3 and record["changes_on_resume"] == [
        {"at_step": 2, "field": "steps", "from": 2, "to": 3}]
    assert load_train_state(out)["step"] == 3
    FIGURES["bad_inputs_tried"] += 3


def test_no_resume_refuses_a_folder_holding_a_run(tmp_path):
    """Before: --no-resume truncated metrics.csv of the run in the folder. Now it needs --overwrite."""
    out = tmp_path / "run"
    _run(out, steps=2)
    rows = (out / "metrics.csv").read_text()
    with pytest.raises(SambaError, match="--overwrite"):
        _run(out, steps=2, resume=False)
    assert (out / "metrics.csv").read_text() == rows
    (out / "notes.txt").write_text("mine")
    _run(out, steps=1, resume=False, overwrite=True)
    assert (out / "notes.txt").read_text() == "mine"  # only the run's own files are removed
    FIGURES["bad_inputs_tried"] += 1


@pytest.mark.parametrize("argv, message", [
    (["--ckpt-every", "0"], "--ckpt-every must be >= 1"),
    (["--steps", "-3"], "--steps must be >= 1"),
    (["--mask-ratio", "1.5"], "--mask-ratio must be in"),
    (["--device", "gpu"], "unknown device 'gpu'"),
    (["--device", "cuda:7"], "cuda:7"),
    (["--window-s", "0.01"], "8 samples"),
])
def test_bad_pretrain_options_fail_before_any_work(tmp_path, argv, message, monkeypatch):
    """Before: --ckpt-every 0 raised ZeroDivisionError after a step, --device gpu ran on the CPU and
    --device cuda on a CPU build raised AttributeError. Now each is one clear line before any work."""
    from samba.train import cli

    monkeypatch.setattr("samba.train.pretraining.split_corpus", lambda *a, **k: pytest.fail("work started"))
    with pytest.raises(SambaError, match=message):
        cli.pretrain_main(["--out", str(tmp_path / "o"), "--no-progress", *argv])
    FIGURES["bad_inputs_tried"] += 1


def test_out_that_cannot_be_written_fails_before_training(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("x")
    monkeypatch.setattr("samba.train.pretraining.split_corpus", lambda *a, **k: pytest.fail("work started"))
    with pytest.raises(SambaError, match="is a file, not a folder"):
        _run(tmp_path / "file")
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        with pytest.raises(SambaError, match="cannot be written"):
            _run(ro / "run")
    FIGURES["bad_inputs_tried"] += 1


def test_evaluate_refuses_a_model_trained_for_other_classes(mirror, tmp_path):
    """Before: a 3-class model evaluated on a 2-class task exited 0 with metrics. Now it names the mismatch."""
    from samba.checkpoint import save_finetuned
    from samba.train.baselines import build_model
    from samba.train.finetuning import evaluate

    from samba.data import load_task

    ds = load_task("eyes-open-closed", mirror=mirror, profile="quick")
    kwargs = dict(n_chans=int(ds.X.shape[1]), n_outputs=3, n_times=int(ds.X.shape[2]), sfreq=float(ds.sfreq))
    net = build_model("eegnet", **kwargs)
    save_finetuned(tmp_path, net.state_dict(), {"format": "samba-finetuned", "model": "eegnet", "kwargs": kwargs,
                                                "task": "other", "class_names": ["a", "b", "c"], "profile": "quick"})
    with pytest.raises(SambaError, match="classes"):
        evaluate(tmp_path, "eyes-open-closed", mirror=str(mirror))
    FIGURES["bad_inputs_tried"] += 1


def test_finetune_batch_size_one_is_refused(mirror):
    """Before: --batch-size 1 skipped every batch (batch norm needs two windows) yet printed metrics."""
    from samba.train.finetuning import finetune

    with pytest.raises(SambaError, match="--batch-size 1"):
        finetune("eyes-open-closed", model="eegnet", batch_size=1, mirror=str(mirror), profile="quick")
    FIGURES["bad_inputs_tried"] += 1


def test_device_names_are_checked():
    """Before: --device gpu silently ran on the CPU, and cuda on a CPU-only build raised AttributeError."""
    from samba.devices import resolve_device

    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(SambaError, match="valid devices here: cpu"):
        resolve_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(SambaError, match="sees no CUDA GPU"):
            resolve_device("cuda")
    FIGURES["bad_inputs_tried"] += 2
