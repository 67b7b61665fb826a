"""Labelled user recordings (samba.data.user_tasks) and the one resolver (samba.data.sources).

Real recordings from the mirror (EEGMMIDB S001 runs), copied into tmp_path in the layouts users have: a file
with annotations, a CSV of onsets, a BIDS folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from samba.data.sources import load_any_task, split_any
from samba.data.user_tasks import file_ids, load_user_task, parse_labels, split_user
from samba.errors import InputError, UsageError

REPO = Path(__file__).resolve().parents[1]
PICK = ["Fz", "C3", "Cz", "C4", "Pz", "O1"]


def test_parse_labels():
    assert parse_labels("left=T1,right=T2|T3") == {"left": ["T1"], "right": ["T2", "T3"]}
    assert parse_labels("T1, T2") == {"T1": ["T1"], "T2": ["T2"]}
    for bad in ("left=T1", "=T1,b=T2", ""):
        with pytest.raises(UsageError):
            parse_labels(bad)


def test_file_ids_from_names():
    assert file_ids(Path("S001R04.edf")) == {"subject": 1, "session": 1, "run": 4}
    assert file_ids(Path("sub-07/ses-2/eeg/sub-07_ses-2_task-x_run-3_eeg.vhdr")) == {"subject": 7, "session": 2, "run": 3}
    assert file_ids(Path("Subject12_2.edf"))["subject"] == 12
    assert file_ids(Path("night.edf")) == {"subject": 1, "session": 1, "run": 1}


@pytest.fixture(scope="module")
def r04(mirror):
    return mirror / "eegmmidb/S001/S001R04.edf"


def test_annotation_mapping_gives_a_windowdataset_like_load_task(r04):
    ds = load_user_task(r04, labels="left=T1,right=T2", window_s=4.0)
    assert ds.X.shape == (15, 64, 512) and ds.class_names == ["left", "right"]
    assert ds.class_counts() == {"left": 8, "right": 7}  # the same trials as the built-in eegmmidb-mi run 4
    assert {"dataset", "subject", "session", "run", "file", "onset_s", "window_s", "label"} <= set(ds.meta.columns)
    assert ds.meta.run.unique().tolist() == [4]
    with pytest.raises(InputError, match="match none"):
        load_user_task(r04, labels="a=X1,b=X2")


def test_long_blocks_are_tiled_and_split_by_time_with_a_gap(r04):
    ds = load_user_task(r04, labels="rest=T0,imagery=T1|T2", window_s=2.0)
    sp = split_user(ds, seed=0)
    assert sp.rule.startswith("by time") and "gap" in sp.rule
    on = ds.meta.onset_s.to_numpy()
    for a, b in (("train", "test"), ("val", "test"), ("train", "val")):
        # no window of one split within one window length (2 s) of a window of another
        d = np.abs(on[sp[a]][:, None] - on[sp[b]][None, :])
        assert d.min() >= 2.0 + 2.0 - 1e-9, (a, b, d.min())


def test_events_csv_labels(r04, tmp_path):
    pd.DataFrame({"onset": [10.0, 40.0, 70.0, 100.0], "duration": [20.0, 20.0, 20.0, 20.0],
                  "label": ["calm", "busy", "calm", "busy"]}).to_csv(tmp_path / "ev.csv", index=False)
    ds = load_user_task(r04, labels=tmp_path / "ev.csv", window_s=5.0)
    assert ds.class_names == ["busy", "calm"] and ds.class_counts() == {"busy": 8, "calm": 8}
    (tmp_path / "bad.csv").write_text("start,what\n1,a\n")
    with pytest.raises(InputError, match="onset,duration,label"):
        load_user_task(r04, labels=tmp_path / "bad.csv")


def _bids(mirror, root: Path):
    import mne
    import mne_bids

    from samba.data.readers import read_eegmmidb

    for subject in ("01", "02", "03"):
        raw = read_eegmmidb(mirror / "eegmmidb/S001/S001R04.edf").pick(PICK)
        raw.set_channel_types({n: "eeg" for n in raw.ch_names})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            path = root.parent / f"src_{subject}.vhdr"
            mne.export.export_raw(path, raw, fmt="brainvision", overwrite=True, verbose="ERROR")
            raw = mne.io.read_raw_brainvision(path, verbose="ERROR")
            bp = mne_bids.BIDSPath(subject=subject, task="mi", run=4, datatype="eeg", root=root)
            mne_bids.write_raw_bids(raw, bp, overwrite=True, verbose="ERROR", allow_preload=False)
    return root


def test_bids_folder_split_by_subject(mirror, tmp_path):
    root = _bids(mirror, tmp_path / "bids")
    ds = load_any_task(data=root, labels="left=T1,right=T2", window_s=4.0)
    assert sorted(ds.meta.subject.unique()) == [1, 2, 3] and ds.ch_names == PICK
    assert ds.class_counts() == {"left": 24, "right": 21}
    sp = split_any(ds, seed=0)
    subj = {k: set(ds.meta.subject.iloc[v]) for k, v in sp.items()}
    assert sp.rule.startswith("by subject") and not (subj["test"] & (subj["train"] | subj["val"]))


def test_sessions_are_held_out_before_runs(r04, mirror, tmp_path):
    import shutil

    for ses, run in ((1, 4), (2, 8)):
        d = tmp_path / f"ses-{ses}"
        d.mkdir()
        shutil.copy(mirror / f"eegmmidb/S001/S001R{run:02d}.edf", d / f"S001R{run:02d}.edf")
    ds = load_user_task(tmp_path, labels="left=T1,right=T2", window_s=4.0)
    sp = split_user(ds)
    assert sp.rule.startswith("by session") and set(ds.meta.session.iloc[sp["test"]]) != set(ds.meta.session.iloc[sp["train"]])


def test_resolver_routes_and_errors(mirror, r04):
    ds = load_any_task("eyes-open-closed", mirror=mirror)
    assert ds.task == "eyes-open-closed" and "fixed test set" in split_any(ds).rule
    assert load_any_task(data=r04, labels="left=T1,right=T2").task == "user"
    for kw, err in (({"task": "nope"}, UsageError), ({}, UsageError), ({"labels": "a=1,b=2"}, UsageError),
                    ({"task": "stew:/no/such/folder"}, InputError), ({"task": "tuab:"}, UsageError),
                    ({"task": "eyes-open-closed", "data": r04, "labels": "a=T1,b=T2"}, UsageError)):
        with pytest.raises(err):
            load_any_task(**kw)


def test_moabb_absent_is_an_input_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "moabb", None)
    monkeypatch.setitem(sys.modules, "moabb.datasets", None)
    with pytest.raises(InputError, match="pip install moabb"):
        load_any_task("moabb:BNCI2014_001")


# ------------------------------------------------------------------------------------------------
# the command line, once fine-tuning takes user data (skipped until `finetune` accepts data=)
# ------------------------------------------------------------------------------------------------


def _samba(*args, cwd):
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "samba", *map(str, args)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def test_cli_finetune_on_user_data(mirror, tmp_path):
    r = _samba("finetune", "--data", mirror / "eegmmidb/S001/S001R04.edf", "--labels", "rest=T0,imagery=T1|T2",
               "--init", "scratch", "--out", tmp_path / "ft", "--epochs", "1", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert 0.0 <= result["balanced_accuracy"] <= 1.0


def test_cli_finetune_bad_labels_is_one_line(mirror, tmp_path):
    r = _samba("finetune", "--data", mirror / "eegmmidb/S001/S001R04.edf", "--labels", "a=X1,b=X2",
               "--init", "scratch", "--out", tmp_path / "ft", cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr and r.stderr.strip().splitlines()[-1].startswith("samba: error:")


def test_evaluate_scores_new_recordings_whole_and_trained_ones_on_their_test_split(r04, mirror, tmp_path):
    """A recording fine-tuning never saw has no training windows to leave out: every window is scored.
    The recording it was fine-tuned on is scored on its test split only, and a mix of both is refused."""
    from samba.train.finetuning import evaluate, finetune, test_indices

    labels = "rest=T0,imagery=T1|T2"
    r08 = mirror / "eegmmidb/S001/S001R08.edf"
    finetune(None, data=str(r04), labels=labels, init="scratch", model="eegnet", epochs=1, out=str(tmp_path / "ft"))
    new = evaluate(tmp_path / "ft", None, data=str(r08), labels=labels)
    assert new["n_windows"] == len(load_user_task(r08, labels, window_s=4.0).y)
    same = evaluate(tmp_path / "ft", None, data=str(r04), labels=labels)
    assert same["n_windows"] == len(test_indices(load_user_task(r04, labels, window_s=4.0))) < new["n_windows"]
    both = tmp_path / "both"
    both.mkdir()
    for path in (r04, r08):
        (both / path.name).symlink_to(path)
    with pytest.raises(UsageError, match="not a mix"):
        evaluate(tmp_path / "ft", None, data=str(both), labels=labels)
    # recordings are told apart by content: an unseen recording under a trained-on name is still new
    renamed = tmp_path / "other" / "sub2"
    renamed.mkdir(parents=True)
    (renamed / r04.name).symlink_to(r08)
    assert evaluate(tmp_path / "ft", None, data=str(renamed.parent), labels=labels)["n_windows"] == new["n_windows"]
    finetune(None, data=str(both), labels=labels, init="scratch", model="eegnet", epochs=1, out=str(tmp_path / "ft2"))
    with pytest.raises(UsageError, match="some of the recordings"):
        evaluate(tmp_path / "ft2", None, data=str(r04), labels=labels)


def test_finetune_refuses_numbers_out_of_range_before_loading(tmp_path):
    from samba.train.finetuning import finetune

    for bad in ({"epochs": 0}, {"epochs": -1}, {"batch_size": 0}, {"lr": -1.0}, {"lr": float("nan")},
                {"window_s": float("inf")}):
        with pytest.raises(UsageError):
            finetune("eegmat-workload", out=str(tmp_path / "run"), **bad)
    assert not (tmp_path / "run").exists()


def test_ear_to_ear_derivation_is_not_kept_as_scalp_eeg(mirror):
    """EEGMAT's "EEG A2-A1" reads as "A2 against A1"; it is the difference of the two references and is
    dropped, as the EEGMAT reader of the task pipeline drops it."""
    from samba.data.user import open_recording

    rec = open_recording(mirror / "eegmat/Subject00_1.edf")
    assert "A2" not in rec.ch_names and "A1" not in rec.ch_names and len(rec.ch_names) == 19
