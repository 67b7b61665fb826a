"""Pretraining: kill + resume == uninterrupted, corrupt-checkpoint handling, DDP (gloo, 2 processes)."""

from __future__ import annotations

import csv
import os
import socket
import warnings
from dataclasses import fields

import pytest
import torch
import torch.multiprocessing as mp

from samba.train.pretraining import (METRIC_COLUMNS, MODEL_FILE, PretrainConfig, SimulatedKill, pretrain,
                                     synthetic_corpus)
from samba.errors import SambaError
from samba.train.state import CheckpointError, load_train_state

# A small SAMBA (same code paths as the paper model) so CPU tests take seconds.
TINY = dict(cdse_hidden=8, target_channels=("Fp1", "Fz", "C3", "Cz", "C4", "Pz", "O1", "O2"),
            embed_kernels=(1, 3), embed_branch_dim=8, embed_dim=8, enc_dims=(8, 16), dec_dims=(16, 8, 8),
            dec_dim=8, bottleneck_dim=16, diff_head_dim=8, diff_mamba_headdim=8, d_state=8, expand=2, headdim=8,
            chunk_size=16, backend="torch")


def tiny_model_config() -> dict:
    from samba.model import SAMBAConfig

    names = {f.name for f in fields(SAMBAConfig)}
    return {k: v for k, v in TINY.items() if k in names}


def run(out, **kw):
    base = dict(out=str(out), profile="quick", steps=6, batch_size=4, ckpt_every=2, log_every=1, val_every=3,
                val_batches=1, progress=False, device="cpu", model=tiny_model_config())
    base.update(kw)
    return pretrain(PretrainConfig(**base), datasets=synthetic_corpus(n_montages=2, n_windows=20, n_times=64))


def params(path):
    from samba.checkpoint import load_checkpoint

    return load_checkpoint(path)["state_dict"]


def test_kill_and_resume_matches_uninterrupted(tmp_path):
    ref = run(tmp_path / "ref")
    with pytest.raises(SimulatedKill):
        run(tmp_path / "cut", kill_at_step=5)  # dies after step 5; last checkpoint is step 4
    assert load_train_state(tmp_path / "cut")["step"] == 4
    resumed = run(tmp_path / "cut")  # the very same command
    a, b = params(ref), params(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    with open(tmp_path / "cut" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == METRIC_COLUMNS
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5, 6]  # no duplicated steps after the resume
    with open(tmp_path / "ref" / "metrics.csv") as f:
        ref_rows = list(csv.DictReader(f))
    assert [r["loss"] for r in rows] == [r["loss"] for r in ref_rows]


def test_checkpoint_is_a_loadable_model(tmp_path):
    from samba.checkpoint import load_model

    path = run(tmp_path / "m", steps=2)
    assert path.name == MODEL_FILE
    model, extra = load_model(path)
    assert extra["step"] == 2 and extra["mask"] == "tsr"
    x = torch.randn(2, 3, 64)
    assert model(x, torch.randn(3, 3) * 0.09).shape == x.shape


def test_corrupt_latest_falls_back_then_clear_error(tmp_path):
    out = tmp_path / "c"
    run(out, steps=4)  # checkpoints at steps 2 and 4
    (out / "train_state" / "state.pt").write_bytes(b"not a checkpoint")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        state = load_train_state(out)
    assert state["step"] == 2 and any("corrupt" in str(x.message) for x in w)
    (out / "train_state.prev" / "state.pt").write_bytes(b"\x00" * 10)
    with pytest.raises(CheckpointError, match="no readable training checkpoint"):
        load_train_state(out)
    with pytest.raises(CheckpointError):
        run(out, steps=6)  # resume refuses to silently start over ...
    with pytest.raises(SambaError, match="--overwrite"):
        run(out, steps=2, resume=False)  # ... and a fresh start does not discard a run by accident ...
    run(out, steps=2, resume=False, overwrite=True)  # ... unless asked to


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world, port, out, result_dir, model_cfg):
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        cfg = PretrainConfig(out=out, profile="quick", steps=3, batch_size=4, ckpt_every=2, log_every=1, val_every=3,
                             val_batches=1, progress=False, device="cpu", model=model_cfg)
        _, model = pretrain(cfg, datasets=synthetic_corpus(n_montages=2, n_windows=20, n_times=64), return_model=True)
        torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, f"{result_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_ddp_gloo_two_processes_keep_parameters_identical(tmp_path):
    out, res = tmp_path / "ddp", tmp_path / "res"
    res.mkdir()
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(out), str(res), tiny_model_config()), nprocs=2, join=True)
    p0, p1 = torch.load(res / "rank0.pt"), torch.load(res / "rank1.pt")
    for k in p0:
        assert torch.equal(p0[k], p1[k]), k
    assert (out / MODEL_FILE).is_dir() and (out / "train_state" / "state.pt").is_file()
    state = load_train_state(out)
    assert state["step"] == 3 and len(state["rng"]) == 2  # every rank's RNG is in the checkpoint
    with open(out / "metrics.csv") as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == [1, 2, 3]


def test_max_minutes_fits_the_schedule_to_the_budget(tmp_path, monkeypatch):
    import itertools

    import samba.train.pretraining as P

    ticks = itertools.count()
    monkeypatch.setattr(P.time, "perf_counter", lambda: next(ticks) * 0.05)  # a deterministic clock
    out = tmp_path / "budget"
    # 24 steps asked; timed over steps 6..12; only 2 s of (fake) budget -> fewer steps fit
    run(out, steps=24, max_minutes=2.0 / 60, ckpt_every=1000, val_every=1000)
    state = load_train_state(out)
    assert state["calibrated"] and 12 < state["total_steps"] < 24  # schedule refitted to the budget
    assert state["step"] <= state["total_steps"]
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert int(rows[-1]["step"]) == state["step"]


def test_batch_plan_gives_full_proportional_batches_and_resumes_exactly():
    """Every batch is full (a small montage used to give one small batch a pass: launch-bound on a GPU), montages
    come in proportion to their windows, each pass of a montage visits each of its windows once, a saved position
    resumes the same stream, ranks split it without overlap, and a state of the earlier plan is refused."""
    from collections import Counter

    import numpy as np

    from samba.errors import InputError
    from samba.train.batches import BatchPlan

    train = [np.arange(245), np.arange(300, 498), np.arange(600, 643), np.arange(700, 712), np.arange(800, 811)]
    plan = BatchPlan(train, 128, seed=0)
    drawn = [plan.next() for _ in range(1000)]
    assert {len(idx) for _, idx in drawn} == {128}
    counts = Counter(d for d, _ in drawn)
    for d, idx in enumerate(train):
        assert abs(counts[d] / 1000 - len(idx) / 509) < 0.01
    seen = Counter(np.concatenate([idx for d, idx in drawn if d == 2]).tolist())  # montage 2's batches so far
    full = counts[2] * 128 // 43  # whole passes over its 43 windows; the last pass may be partial
    assert set(seen) == set(range(600, 643)) and set(seen.values()) <= {full, full + 1}

    again = BatchPlan(train, 128, seed=0)
    again.load_state_dict(plan.state_dict())
    for (d1, i1), (d2, i2) in zip([plan.next() for _ in range(7)], [again.next() for _ in range(7)]):
        assert d1 == d2 and np.array_equal(i1, i2)

    ranks = [BatchPlan(train, 16, seed=1, rank=r, world=2) for r in range(2)]
    single = BatchPlan(train, 16, seed=1)
    both = [b for pair in zip(*[[p.next() for _ in range(20)] for p in ranks]) for b in pair]
    for (d1, i1), (d2, i2) in zip(both, [single.next() for _ in range(40)]):
        assert d1 == d2 and np.array_equal(i1, i2)

    with pytest.raises(InputError, match="earlier batch plan"):
        BatchPlan(train, 128, seed=0).load_state_dict({"epoch": 3, "cursor": 2, "seed": 0})


def test_augmented_kill_and_resume_matches_uninterrupted(tmp_path):
    """The electrode-subset generator is part of the training state: a resumed augmented run draws the same."""
    ref = run(tmp_path / "ref", augment=True)
    with pytest.raises(SimulatedKill):
        run(tmp_path / "cut", augment=True, kill_at_step=5)
    resumed = run(tmp_path / "cut", augment=True)
    a, b = params(ref), params(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    plain = params(run(tmp_path / "plain"))
    assert any(not torch.equal(a[k], plain[k]) for k in a)  # the augmentation changed what was learned


def test_select_best_releases_the_lowest_validation_loss(tmp_path):
    from samba.checkpoint import load_checkpoint

    path = run(tmp_path / "r", steps=9, val_every=1, select="best", lr=5e-2)
    with open(tmp_path / "r" / "metrics.csv") as f:
        vals = {int(r["step"]): float(r["val_loss"]) for r in csv.DictReader(f) if r["val_loss"]}
    best_step = min(vals, key=vals.get)
    extra = load_checkpoint(path)["extra"]
    assert extra["selected"]["step"] == extra["step"] == best_step
    assert extra["selected"]["last_step"] == 9 and abs(extra["val_loss"] - vals[best_step]) < 1e-5
    best = params(tmp_path / "r" / "best")
    assert all(torch.equal(best[k], v) for k, v in params(path).items())
    last = load_train_state(tmp_path / "r")["model"]
    assert (best_step == 9) == all(torch.equal(last[k], v) for k, v in params(path).items())


def test_a_run_moved_without_its_best_model_is_refused(tmp_path):
    """train_state/ alone holds no lowest-validation model: continuing would release the last step as the best."""
    import shutil

    from samba.checkpoint import load_checkpoint

    out = tmp_path / "r"
    with pytest.raises(SimulatedKill):
        run(out, steps=9, val_every=1, select="best", ckpt_every=1, kill_at_step=5)
    assert load_train_state(out)["best"] is not None
    shutil.rmtree(out / "best")
    with pytest.raises(CheckpointError, match="best is missing.*--select last"):
        run(out, steps=9, val_every=1, select="best", ckpt_every=1)
    path = run(out, steps=9, val_every=1, select="last", ckpt_every=1, allow_change=("select",))
    assert load_checkpoint(path)["extra"]["step"] == 9


def test_recording_windows_cut_whole_recordings_at_unit_scale():
    from types import SimpleNamespace

    import numpy as np

    from samba.train.batches import recording_windows

    rng = np.random.default_rng(0)
    rec = SimpleNamespace(data=50.0 * rng.standard_normal((3, 1000)).astype(np.float32), sfreq=100.0,
                          positions=np.eye(3, dtype=np.float32))
    short = SimpleNamespace(data=np.ones((3, 50), np.float32), sfreq=100.0, positions=np.eye(3, dtype=np.float32))
    (name, X, pos), = recording_windows([("a", rec), ("short", short)], window_s=2.0)  # too short: left out
    assert name == "a" and X.shape == (5, 3, 200) and pos.shape == (3, 3)
    assert abs(np.median(np.abs(X)) - 0.6745) < 0.07  # robust s.d. 1 after scaling: median |x| of N(0, 1)
    (_, Xh, _), = recording_windows([("a", rec)], window_s=2.0, hop_s=0.5)
    assert Xh.shape == (17, 3, 200)  # (1000 - 200) // 50 + 1
    np.testing.assert_allclose(Xh[4] / Xh[4].std(), X[1] / X[1].std(), rtol=1e-5)  # window 4 at hop 0.5 s = window 1
    assert len(recording_windows([("a", rec)], window_s=2.0, hop_s=0.5, max_windows=3)[0][1]) == 3


def test_stop_after_minutes_keeps_the_schedule_and_the_same_command_continues(tmp_path, monkeypatch):
    import itertools

    import samba.train.pretraining as P

    ticks = itertools.count()
    monkeypatch.setattr(P.time, "perf_counter", lambda: next(ticks) * 0.05)  # a deterministic clock
    out = tmp_path / "long"
    kw = dict(steps=24, stop_after_minutes=1.0 / 60, ckpt_every=1000, val_every=1000)
    run(out, **kw)  # 1 s of (fake) time: stops early, checkpointed, the 24-step schedule untouched
    first = load_train_state(out)
    assert first["total_steps"] == 24 and 0 < first["step"] < 24 and not first["calibrated"]
    while load_train_state(out)["step"] < 24:  # the same command, again and again, finishes the run
        run(out, **kw)
    with open(out / "metrics.csv") as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == list(range(1, 25))
