"""Loaders for the paper's other datasets, exercised on stand-ins built in tmp_path from mirrored recordings
(the real corpora are not redistributable and not available offline)."""

from __future__ import annotations

import sys
import types

import mne
import numpy as np
import pytest
from scipy.io import savemat

from samba.data import external, readers, split_task


@pytest.fixture(scope="module")
def mi_raw(mirror):
    return readers.read_eegmmidb(mirror / "eegmmidb/S001/S001R04.edf")


def test_moabb_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "moabb", None)
    monkeypatch.setitem(sys.modules, "moabb.datasets", None)
    with pytest.raises(ImportError, match="pip install moabb"):
        external.load_moabb("BNCI2014_001")


def test_load_moabb_with_a_stand_in_dataset(mi_raw, monkeypatch):
    # MOABB hands out Raw objects with a stim channel; build one from EEGMMIDB run 4 (T1 -> 1, T2 -> 2)
    events, _ = mne.events_from_annotations(mi_raw, event_id={"T1": 1, "T2": 2}, verbose="ERROR")
    raw = mi_raw.copy()
    stim = np.zeros((1, raw.n_times))
    stim[0, events[:, 0]] = events[:, 2]
    raw.add_channels([mne.io.RawArray(stim, mne.create_info(["STI"], raw.info["sfreq"], "stim"), verbose="ERROR")],
                     force_update_info=True)

    class FakeMI:
        event_id = {"left_hand": 1, "right_hand": 2}
        interval = (0.0, 4.0)
        subject_list = [1, 2]

        def get_data(self, subjects):
            return {s: {"0train": {"0": raw}} for s in subjects}

    fake = types.ModuleType("moabb.datasets")
    fake.FakeMI = FakeMI
    monkeypatch.setitem(sys.modules, "moabb", types.ModuleType("moabb"))
    monkeypatch.setitem(sys.modules, "moabb.datasets", fake)
    ds = external.load_moabb("FakeMI")
    assert ds.X.shape == (30, 64, 512) and ds.class_counts() == {"left_hand": 16, "right_hand": 14}  # 8 + 7 per run
    assert sorted(ds.meta.subject.unique()) == [1, 2]
    with pytest.raises(KeyError, match="unknown class"):
        external.load_moabb("FakeMI", classes=("feet",))


def test_load_tuab_layout_and_bipolar_montage(mi_raw, tmp_path):
    # TUH names channels "EEG FP1-REF"; put two stand-in recordings into TUAB's folder layout
    src = mi_raw.copy().pick(["Fp1", "Fp2", "F7", "F3", "F4", "F8", "T7", "C3", "C4", "T8", "P7", "P3", "P4", "P8", "O1", "O2"])
    old = {"T7": "T3", "T8": "T4", "P7": "T5", "P8": "T6"}
    src.rename_channels({n: f"EEG {old.get(n, n).upper()}-REF" for n in src.ch_names})
    for label, subject in (("normal", "aaaaaaaa"), ("abnormal", "aaaaaaab")):
        d = tmp_path / "edf" / "train" / label / "01_tcp_ar"
        d.mkdir(parents=True)
        src.save(d / f"{subject}_s001_t000_raw.fif")
    ds = external.load_tuab(tmp_path, pattern="*.fif")
    assert ds.ch_names == list(external.TUH_BIPOLAR) and ds.X.shape[1:] == (16, 1280)
    assert ds.class_counts() == {"normal": 12, "abnormal": 12}
    assert np.all(np.isfinite(ds.positions))
    with pytest.raises(FileNotFoundError, match="no TUAB recordings"):
        external.load_tuab(tmp_path / "nowhere")


def test_load_stew_and_split(mirror, tmp_path):
    x = np.loadtxt(mirror / "eeg_eye_state/eeg-eye-state.csv", delimiter=",", skiprows=1)[:, :14]
    for s in range(1, 6):
        np.savetxt(tmp_path / f"sub{s:02d}_lo.txt", x[:2560] + s)
        np.savetxt(tmp_path / f"sub{s:02d}_hi.txt", x[2560:5120])
    ds = external.load_stew(tmp_path)
    assert ds.X.shape[1:] == (14, 512) and ds.class_counts() == {"rest": 45, "workload": 45}
    sp = split_task(ds, seed=0)  # no fixed test subjects: seed-drawn, by subject
    subj = {k: set(ds.meta.subject.iloc[v]) for k, v in sp.items()}
    assert not (subj["test"] & subj["train"]) and not (subj["val"] & subj["train"]) and all(subj.values())


def _write_dreamer(path, x):
    """A stand-in of DREAMER.mat's layout: 2 subjects x 2 clips of 10 s from real 14-channel EEG ``x``."""
    clips = np.empty(2, dtype=object)
    clips[0], clips[1] = x[:1280], x[1280:2560]
    subj = {"EEG": {"stimuli": clips}, "ScoreValence": np.array([1, 5]), "ScoreArousal": np.array([4, 2]),
            "ScoreDominance": np.array([3, 3])}
    data = np.empty(2, dtype=object)
    data[0], data[1] = subj, subj
    savemat(path, {"DREAMER": {"Data": data}})


def test_load_dreamer_struct(mirror, tmp_path):
    x = np.loadtxt(mirror / "eeg_eye_state/eeg-eye-state.csv", delimiter=",", skiprows=1)[:, :14]
    _write_dreamer(tmp_path / "DREAMER.mat", x)
    ds = external.load_dreamer(tmp_path / "DREAMER.mat", target="valence")
    assert ds.X.shape == (8, 14, 512)  # 2 subjects x 2 clips x two 4-s windows of 10 s
    assert ds.class_counts() == {"low_valence": 4, "high_valence": 4}


def test_resolver_reaches_stew_dreamer_and_tuab(mirror, mi_raw, tmp_path):
    """`--task stew:PATH` / `dreamer:PATH` / `tuab:PATH` go through samba.data.sources to these loaders."""
    from samba.data.sources import load_any_task, split_any

    x = np.loadtxt(mirror / "eeg_eye_state/eeg-eye-state.csv", delimiter=",", skiprows=1)[:, :14]
    stew = tmp_path / "stew"
    stew.mkdir()
    for s in range(1, 6):
        np.savetxt(stew / f"sub{s:02d}_lo.txt", x[:1280] + s)
        np.savetxt(stew / f"sub{s:02d}_hi.txt", x[1280:2560])
    ds = load_any_task(f"stew:{stew}")
    assert ds.task == "stew-workload" and sorted(ds.meta.subject.unique()) == [1, 2, 3, 4, 5]
    assert split_any(ds).rule.startswith("by subject")
    assert sorted(load_any_task(f"stew:{stew}", subjects="1-2").meta.subject.unique()) == [1, 2]

    _write_dreamer(tmp_path / "DREAMER.mat", x)
    assert load_any_task(f"dreamer:{tmp_path / 'DREAMER.mat'}").task == "dreamer-valence"

    src = mi_raw.copy().pick(["Fp1", "Fp2", "F7", "F3", "F4", "F8", "T7", "C3", "C4", "T8", "P7", "P3", "P4", "P8", "O1", "O2"])
    old = {"T7": "T3", "T8": "T4", "P7": "T5", "P8": "T6"}
    src.rename_channels({n: f"EEG {old.get(n, n).upper()}-REF" for n in src.ch_names})
    for split, label, subject in (("train", "normal", "aaaaaaaa"), ("train", "abnormal", "aaaaaaab"),
                                  ("train", "normal", "aaaaaaac"), ("eval", "abnormal", "aaaaaaad")):
        d = tmp_path / "tuab" / "edf" / split / label / "01_tcp_ar"
        d.mkdir(parents=True, exist_ok=True)
        src.save(d / f"{subject}_s001_t000_raw.fif")
    ds = load_any_task(f"tuab:{tmp_path / 'tuab'}", pattern="*.fif")
    sp = split_any(ds)
    assert sp.rule.startswith("TUAB's own split") and set(ds.meta.split.iloc[sp["test"]]) == {"eval"}
    assert set(ds.meta.split.iloc[sp["train"]]) == {"train"}
