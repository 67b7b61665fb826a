"""Preprocessing: one ``mne.io.Raw`` -> a ``Recording`` (float32 array at the model's rate + events).

Defaults (``Preprocessing()``), close to the paper's recipe for a 128 Hz model:
1. reject a sampling rate below the target (``SamplingRateError``; pass ``allow_upsample=True`` to interpolate);
2. NaN samples: a channel with at most ``max_nan_fraction`` (5 %) NaNs is repaired by linear interpolation
   (logged, counted in ``Recording.report``); a channel with more is dropped (warning); no channel left -> error;
3. flat channels (robust spread < ``flat_uv`` = 0.1 uV) are dropped with a warning;
4. per-channel median removal (kills DC offsets such as Eye State's ~4000 uV) and spike clipping at
   ``spike_sigma`` = 20 robust SDs (1.4826 x MAD) *before* filtering, so a 1e5 uV spike cannot ring through
   the filter;
5. zero-phase FIR band-pass ``l_freq``-``h_freq`` = 0.5-45 Hz (h_freq lowered to 0.45 x the input rate when
   that is lower);
6. polyphase resampling to ``sfreq`` = 128 Hz (scipy ``resample_poly``, anti-aliased);
7. per-channel robust scaling (x - median) / IQR over the whole recording, then clipping to +-``clip`` = 10 IQR
   (about 13 SDs of Gaussian data).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from fractions import Fraction

import mne
import numpy as np
import pandas as pd
from scipy.signal import resample_poly

from samba.errors import InputError

log = logging.getLogger(__name__)


class SamplingRateError(InputError):
    """The recording's sampling rate is too low for the pipeline."""


class BadChannelError(InputError):
    """No usable channel is left (all NaN or flat)."""


@dataclass(frozen=True)
class Preprocessing:
    sfreq: float = 128.0
    l_freq: float | None = 0.5
    h_freq: float | None = 45.0
    max_nan_fraction: float = 0.05
    flat_uv: float = 0.1
    spike_sigma: float = 20.0
    clip: float = 10.0
    allow_upsample: bool = False

    def key(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


@dataclass
class Recording:
    """A preprocessed continuous recording."""

    data: np.ndarray  # (C, T) float32, robust-scaled units
    sfreq: float
    ch_names: list[str]
    events: pd.DataFrame  # onset_s, duration_s, description (seconds from the first sample)
    report: dict = field(default_factory=dict)  # counts of repairs / drops / clipped samples
    positions: np.ndarray | None = None  # (C, 3) float32; None when the channels cannot be placed

    @property
    def duration_s(self) -> float:
        return self.data.shape[1] / self.sfreq


def _events_of(raw: mne.io.BaseRaw) -> pd.DataFrame:
    ann = raw.annotations
    offset = raw.first_time if ann.orig_time is not None else 0.0
    return pd.DataFrame(
        {
            "onset_s": np.asarray(ann.onset, dtype=float) - offset,
            "duration_s": np.asarray(ann.duration, dtype=float),
            "description": [str(d) for d in ann.description],
        }
    )


def preprocess(raw: mne.io.BaseRaw, params: Preprocessing = Preprocessing(), source: str = "") -> Recording:
    """Apply the pipeline above to ``raw`` (EEG channels only, volts)."""
    where = source or (raw.filenames[0] if raw.filenames and raw.filenames[0] else "recording")
    fs_in = float(raw.info["sfreq"])
    if fs_in < params.sfreq and not params.allow_upsample:
        raise SamplingRateError(
            f"{where}: sampling rate {fs_in:g} Hz is below the pipeline's {params.sfreq:g} Hz; "
            "pass sfreq=<= that rate, or Preprocessing(allow_upsample=True) to interpolate"
        )
    x = raw.get_data().astype(np.float64) * 1e6  # (C, T) in uV
    names = list(raw.ch_names)
    report = {"n_channels_in": len(names), "nan_repaired": {}, "dropped_nan": [], "dropped_flat": []}
    if x.shape[1] < 2 * fs_in:
        raise InputError(f"{where}: only {x.shape[1]} samples ({x.shape[1] / fs_in:.2f} s); need >= 2 s")

    keep = np.ones(len(names), dtype=bool)
    for c in range(len(names)):
        bad = ~np.isfinite(x[c])
        n_bad = int(bad.sum())
        if n_bad == 0:
            continue
        if n_bad > params.max_nan_fraction * x.shape[1]:
            keep[c] = False
            report["dropped_nan"].append(names[c])
            continue
        good = np.flatnonzero(~bad)
        x[c, bad] = np.interp(np.flatnonzero(bad), good, x[c, good])
        report["nan_repaired"][names[c]] = n_bad
    if report["nan_repaired"]:
        log.warning("%s: repaired %d NaN/inf samples by interpolation in %s", where,
                    sum(report["nan_repaired"].values()), sorted(report["nan_repaired"]))
    if report["dropped_nan"]:
        log.warning("%s: dropped %d channel(s) with > %.0f%% NaN: %s", where, len(report["dropped_nan"]),
                    100 * params.max_nan_fraction, report["dropped_nan"])

    med = np.zeros(len(names))
    med[keep] = np.median(x[keep], axis=1)
    x -= med[:, None]
    for c in np.flatnonzero(keep):
        lo, hi = np.percentile(x[c], [1, 99])
        if hi - lo < params.flat_uv:
            keep[c] = False
            report["dropped_flat"].append(names[c])
    if report["dropped_flat"]:
        log.warning("%s: dropped %d flat channel(s): %s", where, len(report["dropped_flat"]), report["dropped_flat"])
    if not keep.any():
        raise BadChannelError(f"{where}: no usable EEG channel (all NaN or flat)")
    x = x[keep]
    names = [n for n, k in zip(names, keep) if k]

    # spike clipping before filtering
    sigma = 1.4826 * np.median(np.abs(x), axis=1, keepdims=True)
    limit = params.spike_sigma * np.maximum(sigma, 1e-12)
    n_spikes = int((np.abs(x) > limit).sum())
    np.clip(x, -limit, limit, out=x)
    report["spike_clipped_samples"] = n_spikes

    h_freq = params.h_freq
    if h_freq is not None:
        h_freq = min(h_freq, 0.45 * min(fs_in, params.sfreq))
    if params.l_freq is not None or h_freq is not None:
        x = mne.filter.filter_data(x, fs_in, params.l_freq, h_freq, method="fir", phase="zero",
                                   fir_design="firwin", verbose="ERROR")
    if fs_in != params.sfreq:
        frac = Fraction(params.sfreq / fs_in).limit_denominator(1000)
        x = resample_poly(x, frac.numerator, frac.denominator, axis=1)

    med = np.median(x, axis=1, keepdims=True)
    q75, q25 = np.percentile(x, [75, 25], axis=1)
    iqr = np.maximum(q75 - q25, 1e-12)[:, None]
    x = (x - med) / iqr
    report["channel_iqr"] = [float(v) for v in iqr[:, 0]]  # lets a task rescale per subject (tasks.py)
    report["clipped_samples"] = int((np.abs(x) > params.clip).sum())
    np.clip(x, -params.clip, params.clip, out=x)
    report["n_channels_out"] = len(names)
    return Recording(np.ascontiguousarray(x, dtype=np.float32), float(params.sfreq), names, _events_of(raw), report)
