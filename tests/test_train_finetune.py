"""Fine-tuning end to end on a real task, evaluate, the CLI functions' last lines, the results table."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from samba.train.cli import evaluate_main, finetune_main, pretrain_main
from samba.train.finetuning import evaluate, finetune, load_finetuned
from test_train_pretrain import tiny_model_config

TASK = "eyes-open-closed"  # the smallest real task: EEGMMIDB R01/R02, 2 s windows


@pytest.fixture(scope="module")
def task_data(mirror):
    from samba.data import load_task, split_task

    ds = load_task(TASK, mirror=mirror, profile="quick")
    return ds, split_task(ds, seed=0)


def _finite(m, keys=("balanced_accuracy", "auroc", "kappa", "f1")):
    return all(isinstance(m[k], float) and math.isfinite(m[k]) for k in keys)


def test_finetune_real_task_end_to_end(tmp_path, task_data, mirror):
    ds, split = task_data
    out = tmp_path / "ft"
    r = finetune(TASK, init="scratch", out=out, profile="quick", epochs=2, dataset=ds, split=split,
                 samba_config=tiny_model_config())
    assert _finite(r) and 0 <= r["balanced_accuracy"] <= 1
    assert r["n_train"] > 0 and r["n_test"] > 0 and r["subjects"]
    assert {"finetuned.safetensors", "manifest.json", "samba_encoder", "spatial_weights.npz", "result.json"} <= {p.name for p in out.iterdir()}
    sw = np.load(out / "spatial_weights.npz")
    assert sw["weights"].shape[0] == r["epochs_run"] + 1 and sw["weights"].shape[-1] == len(ds.ch_names)
    assert np.allclose(sw["weights"].sum(-1), 1, atol=1e-4)
    # the saved model reproduces its test metrics through `evaluate`
    net, obj = load_finetuned(out)
    e = evaluate(out, TASK, mirror=str(mirror))
    assert set(e) == {"task", "balanced_accuracy", "auroc", "n_windows", "subjects"}
    # one code path: the same test windows and the same numbers
    assert e["n_windows"] == r["n_test"] and e["subjects"] == r["subjects"]
    assert e["balanced_accuracy"] == pytest.approx(r["balanced_accuracy"]) and e["auroc"] == pytest.approx(r["auroc"])


def test_probe_and_baselines_share_the_loop(tmp_path, task_data, mirror):
    ds, split = task_data
    p = finetune(TASK, init="scratch", mode="probe", profile="quick", epochs=5, dataset=ds, split=split,
                 samba_config=tiny_model_config())
    assert _finite(p) and p["mode"] == "probe"
    try:
        from samba.train.baselines import import_braindecode

        import_braindecode()
    except Exception as e:  # pragma: no cover
        pytest.skip(f"braindecode not importable: {e}")
    for model in ("eegnet", "shallow"):
        r = finetune(TASK, model=model, profile="quick", epochs=1, dataset=ds, split=split, out=tmp_path / model)
        assert _finite(r) and r["n_test"] == p["n_test"]
        assert evaluate(tmp_path / model, TASK, mirror=str(mirror))["n_windows"] > 0


def test_cli_functions_print_the_promised_last_line(tmp_path, capsys, mirror, monkeypatch):
    monkeypatch.setenv("SAMBA_DATA_MIRROR", str(mirror))
    # pretrain: last line is the checkpoint path (tiny run on the real quick corpus)
    import samba.train.pretraining as P

    monkeypatch.setitem(P.PROFILES["quick"], "max_windows_per_montage", 16)
    orig = P.PretrainConfig.resolved

    def tiny(self):  # the CLI builds the paper model; shrink it for CPU test time
        cfg = orig(self)
        cfg.model = tiny_model_config()
        return cfg

    monkeypatch.setattr(P.PretrainConfig, "resolved", tiny)
    assert pretrain_main(["--out", str(tmp_path / "pt"), "--steps", "2", "--batch-size", "4", "--window-s", "2",
                          "--no-progress"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last == str(tmp_path / "pt" / P.MODEL_FILE)

    # finetune from that checkpoint: last line is one JSON object of test metrics
    import samba.train.finetuning as F

    monkeypatch.setitem(F.PROFILES["quick"], "max_train_windows", 32)
    ft_out = tmp_path / "ft"
    assert finetune_main(["--task", TASK, "--init", last, "--out", str(ft_out), "--profile", "quick",
                          "--epochs", "1", "--mode", "probe"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    metrics = json.loads(line)
    assert metrics["task"] == TASK and {"balanced_accuracy", "auroc", "kappa", "f1"} <= set(metrics)

    # evaluate: last line is {"task", "balanced_accuracy", "auroc", "n_windows", "subjects"}
    assert evaluate_main(["--model", str(ft_out), "--task", TASK, "--subjects", "1"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert list(out) == ["task", "balanced_accuracy", "auroc", "n_windows", "subjects"]
    assert out["subjects"] == [1] and out["n_windows"] > 0


def test_small_training_splits_train_in_smaller_batches():
    """At batch 64 an 88-window split made 2 optimizer steps an epoch (EEGNet stayed at chance on eyes open/closed);
    a small split now trains at a batch that gives at least MIN_STEPS_PER_EPOCH steps, never below MIN_BATCH."""
    from samba.train.finetuning import MIN_BATCH, MIN_STEPS_PER_EPOCH, batch_for

    assert batch_for(88, 64) == 11 and -(-88 // batch_for(88, 64)) >= MIN_STEPS_PER_EPOCH
    assert batch_for(30, 64) == MIN_BATCH
    assert batch_for(5000, 64) == 64  # a large split keeps the requested batch
    assert batch_for(100, 4) == 4  # and a requested batch below the floor is kept
