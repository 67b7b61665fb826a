"""Readers on the real mirrored files, and on broken copies of them."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from samba.data import readers
from samba.data.readers import CorruptFileError


def test_eegmmidb_names_and_events(mirror):
    raw = readers.read_eegmmidb(mirror / "eegmmidb/S001/S001R04.edf")
    assert len(raw.ch_names) == 64 and raw.info["sfreq"] == 160
    assert raw.ch_names[:3] == ["FC5", "FC3", "FC1"] and "Fpz" in raw.ch_names
    assert set(raw.annotations.description) == {"T0", "T1", "T2"}


def test_eegmat_drops_non_eeg_and_renames(mirror):
    raw = readers.read_eegmat(mirror / "eegmat/Subject00_2.edf")
    assert len(raw.ch_names) == 19
    assert "T7" in raw.ch_names and "P7" in raw.ch_names  # T3 / T5 in the file
    assert not any("A2" in n or "ECG" in n for n in raw.ch_names)
    assert raw.info["sfreq"] == 500


def test_eye_state_csv(mirror):
    raw = readers.read_eye_state_csv(mirror / "eeg_eye_state/eeg-eye-state.csv")
    assert raw.ch_names[5] == "P7" and len(raw.ch_names) == 14
    assert raw.n_times == 14980 and raw.info["sfreq"] == 128
    desc = set(raw.annotations.description)
    assert desc == {"eyes_open", "eyes_closed"}
    assert np.isclose(raw.annotations.duration.sum(), raw.n_times / 128)
    assert np.median(raw.get_data()) > 3e-3  # the ~4000 uV DC offset is still there (volts)


def test_muse_csv(mirror):
    raw = readers.read_muse_csv(mirror / "muse_p300/subject2/session2/data_2018-05-04-01.50.45.csv")  # "Marker0"
    assert raw.ch_names == ["TP9", "AF7", "AF8", "TP10"]
    assert raw.info["sfreq"] == 256
    d = list(raw.annotations.description)
    assert d.count("target") == 32 and d.count("nontarget") == 161


def test_fif_reference_suffix_dropped(mirror):
    raw = readers.read_fif(mirror / "yasa/data_resting_EO_200Hz_raw.fif")
    assert raw.ch_names == ["F4", "Cz"]


def test_eeglab_without_locations_cannot_be_placed(mirror):
    raw = readers.read_eeglab(mirror / "eeglab_sample/test_raw.set")
    assert len(raw.ch_names) == 32 and raw.info["sfreq"] == 128
    with pytest.raises(ValueError, match="EEG 000"):
        readers.channel_positions(raw)


def test_read_raw_generic_with_device_preset(mirror, tmp_path):
    # a user's Emotiv recording with anonymous channel names, placed through the device preset
    src = readers.read_eye_state_csv(mirror / "eeg_eye_state/eeg-eye-state.csv")
    anon = src.copy().rename_channels({n: f"ch{i}" for i, n in enumerate(src.ch_names)})
    path = tmp_path / "mine_raw.fif"
    anon.save(path)
    with pytest.raises(ValueError, match="unknown channel name"):
        readers.read_raw(path)
    raw = readers.read_raw(path, montage="emotiv_epoc")
    assert raw.ch_names == src.ch_names
    pos = readers.channel_positions(raw)
    assert pos.shape == (14, 3) and np.all(np.isfinite(pos))


def test_unknown_channel_dropped_on_request(mirror, tmp_path, caplog):
    src = readers.read_fif(mirror / "yasa/data_resting_EO_200Hz_raw.fif")
    src.rename_channels({"Cz": "XYZ9"})
    path = tmp_path / "odd_raw.fif"
    src.save(path)
    with pytest.raises(ValueError, match="XYZ9"):
        readers.read_raw(path)
    with caplog.at_level(logging.WARNING):
        raw = readers.read_raw(path, on_unknown="drop")
    assert raw.ch_names == ["F4"] and "XYZ9" in caplog.text


def test_truncated_edf_is_rejected(mirror, tmp_path):
    path = tmp_path / "S001R01.edf"
    data = (mirror / "eegmmidb/S001/S001R01.edf").read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptFileError, match="truncated"):
        readers.read_eegmmidb(path)


def test_garbage_edf_is_rejected(tmp_path):
    path = tmp_path / "junk.edf"
    path.write_bytes(b"this is not an EDF file" * 20)
    with pytest.raises(CorruptFileError):
        readers.read_eegmmidb(path)
    empty = tmp_path / "empty.edf"
    empty.write_bytes(b"")
    with pytest.raises(CorruptFileError, match="empty"):
        readers.read_eegmat(empty)


def test_broken_csvs_are_rejected(mirror, tmp_path):
    bad = tmp_path / "muse.csv"
    bad.write_text("timestamps,TP9\n1,2\n")
    with pytest.raises(CorruptFileError, match="lacks column"):
        readers.read_muse_csv(bad)
    lines = (mirror / "eeg_eye_state/eeg-eye-state.csv").read_text().splitlines()
    cut = tmp_path / "eye.csv"
    cut.write_text("\n".join([lines[0].replace("AF3,", "")] + lines[1:50]))
    with pytest.raises(CorruptFileError):
        readers.read_eye_state_csv(cut)


def test_read_raw_generic_edf_and_set(mirror):
    raw = readers.read_raw(mirror / "eegmmidb/S001/S001R01.edf")
    assert raw.ch_names[:2] == ["FC5", "FC3"] and len(raw.ch_names) == 64
    with pytest.raises(ValueError, match="no channel has a 10-05 name or a location"):
        readers.read_raw(mirror / "eeglab_sample/test_raw.set", on_unknown="drop")
