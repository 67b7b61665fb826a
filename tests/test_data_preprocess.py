"""Preprocessing: scaling, spike clipping, NaN / flat channels, sampling rate checks."""

from __future__ import annotations

import logging

import mne
import numpy as np
import pytest

from samba.data import readers
from samba.data.preprocess import BadChannelError, Preprocessing, SamplingRateError, preprocess


@pytest.fixture(scope="module")
def eye_raw(mirror):
    return readers.read_eye_state_csv(mirror / "eeg_eye_state/eeg-eye-state.csv")


def test_eye_state_offset_and_spikes_handled(eye_raw):
    rec = preprocess(eye_raw.copy())
    assert rec.sfreq == 128 and rec.data.shape == (14, 14980) and rec.data.dtype == np.float32
    assert np.abs(np.median(rec.data, axis=1)).max() < 0.05  # offset removed
    assert np.abs(rec.data).max() <= 10.0  # spikes clipped
    assert rec.report["spike_clipped_samples"] > 0
    q75, q25 = np.percentile(rec.data, [75, 25], axis=1)
    assert np.allclose(q75 - q25, 1.0, atol=0.05)  # robust scaling: unit IQR


def test_resampling_to_128(mirror):
    raw = readers.read_eegmat(mirror / "eegmat/Subject00_2.edf")
    rec = preprocess(raw)
    assert rec.sfreq == 128 and rec.data.shape == (19, int(62 * 128))


def test_nan_samples_repaired_and_counted(eye_raw, caplog):
    raw = eye_raw.copy()
    raw._data[2, 1000:1010] = np.nan
    with caplog.at_level(logging.WARNING):
        rec = preprocess(raw)
    assert rec.report["nan_repaired"] == {"F3": 10}
    assert "repaired 10 NaN" in caplog.text
    assert np.all(np.isfinite(rec.data))


def test_mostly_nan_channel_dropped(eye_raw, caplog):
    raw = eye_raw.copy()
    raw._data[0, :5000] = np.nan
    with caplog.at_level(logging.WARNING):
        rec = preprocess(raw)
    assert "AF3" not in rec.ch_names and rec.report["dropped_nan"] == ["AF3"]
    assert "dropped 1 channel" in caplog.text


def test_flat_channel_dropped_with_warning(eye_raw, caplog):
    raw = eye_raw.copy()
    raw._data[4] = 4e-3  # constant 4000 uV
    with caplog.at_level(logging.WARNING):
        rec = preprocess(raw)
    assert "T7" not in rec.ch_names and len(rec.ch_names) == 13
    assert "flat" in caplog.text


def test_all_channels_bad_is_an_error(eye_raw):
    raw = eye_raw.copy()
    raw._data[:] = 0.0
    with pytest.raises(BadChannelError, match="no usable EEG channel"):
        preprocess(raw)


def test_sampling_rate_too_low(mirror):
    x = np.random.default_rng(0).standard_normal((3, 100 * 30)) * 1e-5
    raw = mne.io.RawArray(x, mne.create_info(["Cz", "C3", "C4"], 100.0, "eeg"), verbose="ERROR")
    with pytest.raises(SamplingRateError, match="100 Hz is below the pipeline's 128 Hz"):
        preprocess(raw)
    rec = preprocess(raw, Preprocessing(allow_upsample=True))
    assert rec.sfreq == 128 and rec.data.shape == (3, 128 * 30)
    rec = preprocess(raw, Preprocessing(sfreq=64.0))
    assert rec.data.shape == (3, 64 * 30)


def test_too_short_recording(mirror):
    raw = mne.io.RawArray(np.ones((2, 100)) * 1e-6, mne.create_info(["Cz", "Pz"], 128.0, "eeg"), verbose="ERROR")
    with pytest.raises(ValueError, match="need >= 2 s"):
        preprocess(raw)
