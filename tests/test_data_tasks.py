"""The four tasks on the real mirror: window counts, labels, splits, the cache, and bad inputs."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from samba.data import TASKS, EmptySplitError, WindowDataset, load_task, readers, split_task
from samba.data import test_mask, test_subjects  # marked __test__ = False: pytest does not collect them
from samba.data import cache as cache_mod


@pytest.fixture(scope="session")
def task_data(mirror, data_cache):
    """Every task loaded once (cold), with its load time."""
    out = {}
    for task in TASKS:
        t0 = time.perf_counter()
        ds = load_task(task, mirror=mirror, cache_dir=data_cache)
        out[task] = (ds, time.perf_counter() - t0)
    return out


def test_contract_of_every_task(task_data):
    for task, (ds, _) in task_data.items():
        assert isinstance(ds, WindowDataset) and ds.task == task
        n, c, t = ds.X.shape
        assert ds.X.dtype == np.float32 and ds.y.dtype == np.int64 and t >= 8 and t % 8 == 0
        assert ds.positions.shape == (c, 3) and ds.positions.dtype == np.float32
        assert len(ds.ch_names) == c and ds.sfreq == 128.0 and len(ds.meta) == n
        assert set(np.unique(ds.y)) == {0, 1} and len(ds.class_names) == 2
        for col in ("subject", "session", "run", "file", "onset_s", "label"):
            assert col in ds.meta
        assert np.all(np.isfinite(ds.X)) and np.abs(ds.X).max() <= 10.0
        x, y = ds[0]
        assert isinstance(x, torch.Tensor) and x.shape == (c, t) and x.dtype == torch.float32 and isinstance(y, int)
        sub = ds.subset(np.arange(0, n, 2))
        assert len(sub) == (n + 1) // 2 and sub.ch_names == ds.ch_names


def test_eegmmidb_mi_trials_per_run(task_data):
    ds, _ = task_data["eegmmidb-mi"]
    assert ds.X.shape[1:] == (64, 512)
    counts = ds.meta.groupby(["run", "label"]).size().unstack()
    # the real EDF+ annotations: runs 4 and 8 have 8 T1 (left) and 7 T2 (right); run 12 the reverse
    assert counts.loc[4].to_dict() == {"left": 8, "right": 7}
    assert counts.loc[8].to_dict() == {"left": 8, "right": 7}
    assert counts.loc[12].to_dict() == {"left": 7, "right": 8}


def test_eegmat_rest_and_task_per_subject(task_data):
    ds, _ = task_data["eegmat-workload"]
    assert sorted(ds.meta.subject.unique()) == list(range(20))
    per = ds.meta.groupby(["subject", "label"]).size().unstack()
    # ~182 s rest / ~62 s task (a few recordings differ by seconds), 4 s windows every 2 s
    assert per["rest"].between(80, 95).all() and per["arithmetic"].between(28, 31).all()
    assert set(ds.meta[ds.meta.run == 1].label) == {"rest"} and set(ds.meta[ds.meta.run == 2].label) == {"arithmetic"}


def test_eyes_open_closed_is_eegmmidb_r01_vs_r02(task_data):
    ds, _ = task_data["eyes-open-closed"]
    assert ds.X.shape[1:] == (64, 256) and set(ds.meta.run) == {1, 2}
    assert set(ds.meta[ds.meta.run == 1].label) == {"open"} and set(ds.meta[ds.meta.run == 2].label) == {"closed"}
    assert abs((ds.y == 0).sum() - (ds.y == 1).sum()) <= 2  # 59 s runs, 2 s windows every 1 s


def test_muse_p300_epochs(task_data):
    ds, _ = task_data["muse-p300"]
    assert ds.X.shape[1:] == (4, 128) and ds.ch_names == ["TP9", "AF7", "AF8", "TP10"]
    frac_target = ds.y.mean()
    assert 0.1 < frac_target < 0.25  # roughly 1 target in 6 stimuli
    assert sorted(ds.meta.subject.unique()) == [1, 2]


@pytest.mark.parametrize("task", list(TASKS))
def test_split_never_leaks_and_is_deterministic(task_data, task):
    ds, _ = task_data[task]
    sp = split_task(ds, seed=0)
    assert all(len(sp[k]) > 0 for k in ("train", "val", "test"))
    allidx = np.concatenate(list(sp.values()))
    assert len(np.unique(allidx)) == len(allidx)  # disjoint
    assert all(len(np.unique(ds.y[sp[k]])) == 2 for k in ("train", "test"))
    again = split_task(ds, seed=0)
    assert all(np.array_equal(sp[k], again[k]) for k in sp)
    assert np.array_equal(split_task(ds, seed=1)["test"], sp["test"])  # the test set does not depend on the seed
    touches_test = test_mask(task, ds.meta)
    assert touches_test[sp["test"]].all() and not touches_test[sp["train"]].any() and not touches_test[sp["val"]].any()
    subj = {k: set(ds.meta.subject.iloc[v]) for k, v in sp.items()}
    if task == "eegmat-workload":
        assert not subj["test"] & (subj["train"] | subj["val"]) and not subj["train"] & subj["val"]
        assert subj["test"] == set(range(15, 20))  # none of the held-out 20-35 is mirrored
    if task == "eegmmidb-mi":
        assert set(ds.meta.run.iloc[sp["test"]]) == {12}
        assert set(ds.meta.run.iloc[sp["train"]]) | set(ds.meta.run.iloc[sp["val"]]) == {4, 8}


@pytest.mark.parametrize("task", ["eyes-open-closed", "muse-p300"])
def test_time_blocks_keep_the_gap(task_data, task):
    ds, _ = task_data[task]
    gap = TASKS[task].gap_s
    sp = split_task(ds, seed=0)
    m = ds.meta
    for f in m.file.unique():
        te = [i for i in sp["test"] if m.file.iloc[i] == f]
        tr = [i for i in sp["train"] if m.file.iloc[i] == f]
        assert te and tr
        t0, t1 = m.onset_s.iloc[te].min(), (m.onset_s + m.window_s).iloc[te].max()
        for i in tr:  # every training window of the recording stays gap_s away from the test span
            s0, s1 = m.onset_s.iloc[i], m.onset_s.iloc[i] + m.window_s.iloc[i]
            assert s1 <= t0 - gap + 1e-6 or s0 >= t1 + gap - 1e-6


def test_eegmat_is_normalised_per_subject(task_data):
    """Rest and arithmetic of a subject share one scale, so their loudness difference survives."""
    ds, _ = task_data["eegmat-workload"]
    spread = {}
    for (s, run), idx in ds.meta.groupby(["subject", "run"]).groups.items():
        x = ds.X[np.asarray(idx)]
        spread[s, run] = float(np.percentile(x, 75) - np.percentile(x, 25))
    ratios = [spread[s, 2] / spread[s, 1] for s in range(20)]
    assert np.std(ratios) > 0.05  # per-recording scaling would make every ratio ~1
    assert not np.allclose(ratios, 1.0, atol=0.02)


def test_cached_load_reads_no_file_and_is_fast(task_data, mirror, data_cache, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("a raw file was read although the cache is warm")

    for name in list(readers.READERS):
        monkeypatch.setitem(readers.READERS, name, boom)
    for task in TASKS:
        t0 = time.perf_counter()
        ds = load_task(task, mirror=mirror, cache_dir=data_cache)
        dt = time.perf_counter() - t0
        cold, cold_dt = task_data[task]
        assert np.array_equal(ds.X, cold.X) and np.array_equal(ds.y, cold.y)
        assert dt < 5.0, f"{task}: cached load took {dt:.1f} s"


def test_cache_entries_are_memmapped_and_keyed(mirror, data_cache, task_data):
    entries = list(data_cache.glob("*.npy"))
    assert entries and not list(data_cache.glob("*.tmp"))
    arr = np.load(entries[0], mmap_mode="r")
    assert isinstance(arr, np.memmap) and arr.dtype == np.float32
    from samba.data.preprocess import Preprocessing

    k1 = cache_mod.cache_key("abc", "eegmat", Preprocessing())
    assert k1 != cache_mod.cache_key("abc", "eegmat", Preprocessing(h_freq=40.0))
    assert k1 != cache_mod.cache_key("abd", "eegmat", Preprocessing())


def test_subjects_and_quick_profile(mirror, data_cache):
    ds = load_task("eegmat-workload", mirror=mirror, subjects="0-2,15", cache_dir=data_cache)
    assert sorted(ds.meta.subject.unique()) == [0, 1, 2, 15]
    quick = load_task("eegmat-workload", mirror=mirror, profile="quick", cache_dir=data_cache)
    assert sorted(quick.meta.subject.unique()) == [0, 1, 2, 3, 4, 5, 15, 16]
    sp = split_task(quick)
    assert set(quick.meta.subject.iloc[sp["test"]]) == {15, 16}
    mq = load_task("muse-p300", mirror=mirror, profile="quick", cache_dir=data_cache)
    assert mq.meta.file.nunique() == 6
    assert all(len(v) for v in split_task(mq).values())


def test_unavailable_subjects_are_a_clear_error(mirror, data_cache):
    from samba.data import DataNotAvailableError

    with pytest.raises(DataNotAvailableError, match="no file available for subjects"):
        load_task("eegmat-workload", mirror=mirror, subjects=[25, 26], cache_dir=data_cache)
    with pytest.raises(DataNotAvailableError, match=r"subject\(s\) \[39, 40\] do not exist"):
        load_task("eegmat-workload", mirror=mirror, subjects="39-40", cache_dir=data_cache)
    # named subjects bypass the quick profile (subject 7 is not among the quick files)
    assert set(load_task("eegmat-workload", mirror=mirror, subjects="7", profile="quick",
                         cache_dir=data_cache).meta.subject) == {7}
    with pytest.raises(KeyError, match="unknown task"):
        load_task("sleep-staging", mirror=mirror)


def test_empty_split_is_an_error(mirror, data_cache):
    only_test = load_task("eegmat-workload", mirror=mirror, subjects=[15, 16], cache_dir=data_cache)
    assert isinstance(EmptySplitError("x"), ValueError)
    with pytest.raises(EmptySplitError, match="every loaded subject is a test subject"):
        split_task(only_test)


def test_registry_names_and_fixed_test_rules():
    assert list(TASKS) == ["eegmmidb-mi", "eyes-open-closed", "eegmat-workload", "muse-p300"]
    assert test_subjects("eegmat-workload") == tuple(range(20, 36))
    assert test_subjects("muse-p300") == () and test_subjects("eyes-open-closed") == ()
    assert TASKS["eegmmidb-mi"].test_runs == (12,) and TASKS["eegmmidb-mi"].runs == (4, 8, 12)
    assert TASKS["eyes-open-closed"].dataset == "eegmmidb" and TASKS["eyes-open-closed"].runs == (1, 2)


def test_damaged_cache_entry_is_rebuilt(mirror, tmp_path):
    ds = load_task("eyes-open-closed", mirror=mirror, cache_dir=tmp_path)
    npy = sorted(tmp_path.glob("*.npy"))[0]  # one of the two runs' entries
    npy.write_bytes(npy.read_bytes()[:1000])  # e.g. a disk filled up mid-write by another tool
    again = load_task("eyes-open-closed", mirror=mirror, cache_dir=tmp_path)
    assert np.array_equal(again.X, ds.X)


def test_subject_spellings(mirror, data_cache):
    a = load_task("eegmmidb-mi", mirror=mirror, subjects=["S001"], cache_dir=data_cache)
    b = load_task("eegmmidb-mi", mirror=mirror, subjects="1", cache_dir=data_cache)
    assert len(a) == len(b) == 45


def test_window_overrides(mirror, data_cache):
    ds = load_task("muse-p300", mirror=mirror, profile="quick", cache_dir=data_cache, window_s=0.75, tmin_s=-0.125)
    assert ds.X.shape[2] == 96
    eyes = load_task("eyes-open-closed", mirror=mirror, cache_dir=data_cache, window_s=1.0, stride_s=1.0)
    assert len(eyes) > 100
    assert eyes.X.shape[2] == 128 and np.allclose(np.diff(eyes.meta.onset_s) % 1.0, 0)
    assert all(len(v) for v in split_task(eyes).values())
    with pytest.raises(ValueError, match="event-locked"):
        load_task("muse-p300", mirror=mirror, cache_dir=data_cache, stride_s=0.5)
