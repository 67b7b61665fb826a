"""``WindowDataset`` (the unit every trainer consumes) and the windowing of preprocessed recordings."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from .preprocess import Recording

log = logging.getLogger(__name__)


@dataclass(eq=False)
class WindowDataset(Dataset):
    """Windows of EEG with labels and their description (braindecode-style, but plain arrays).

    ``X`` (N, C, T) float32 (ndarray or np.memmap), ``y`` (N,) int64 (-1 = unlabeled), ``ch_names`` canonical
    10-05 names, ``positions`` (C, 3) float32 metres in the MNE head frame (samba.montage), ``meta`` one row
    per window: dataset, subject, session, run, file, onset_s, label.
    ``ds[i]`` -> ``(x, y)``: a (C, T) float32 tensor and an int.
    """

    X: np.ndarray
    y: np.ndarray
    ch_names: list[str]
    positions: np.ndarray
    sfreq: float
    meta: pd.DataFrame
    class_names: list[str] = field(default_factory=list)
    task: str = ""
    device: str = ""

    def __post_init__(self):
        self.y = np.asarray(self.y, dtype=np.int64)
        self.positions = np.asarray(self.positions, dtype=np.float32)
        if self.X.ndim != 3 or self.X.dtype != np.float32:
            raise ValueError(f"X must be (N, C, T) float32, got {self.X.shape} {self.X.dtype}")
        n, c, _ = self.X.shape
        if len(self.y) != n or len(self.meta) != n:
            raise ValueError(f"X has {n} windows but y has {len(self.y)} and meta {len(self.meta)}")
        if len(self.ch_names) != c or self.positions.shape != (c, 3):
            raise ValueError(f"X has {c} channels; ch_names {len(self.ch_names)}, positions {self.positions.shape}")
        self.meta = self.meta.reset_index(drop=True)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i):
        return torch.from_numpy(np.array(self.X[i], dtype=np.float32)), int(self.y[i])

    @property
    def n_channels(self) -> int:
        return self.X.shape[1]

    @property
    def n_times(self) -> int:
        return self.X.shape[2]

    def subset(self, idx) -> "WindowDataset":
        """A new dataset with the windows ``idx`` (index array or boolean mask)."""
        idx = np.asarray(idx)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        return replace(self, X=np.asarray(self.X[idx]), y=self.y[idx], meta=self.meta.iloc[idx].reset_index(drop=True))

    def class_counts(self) -> dict[str, int]:
        names = self.class_names or []
        return {(names[k] if 0 <= k < len(names) else str(k)): int((self.y == k).sum()) for k in np.unique(self.y)}

    def __repr__(self) -> str:
        return (f"WindowDataset(task={self.task!r}, device={self.device!r}, X={tuple(self.X.shape)}, "
                f"sfreq={self.sfreq:g}, classes={self.class_counts()}, subjects={sorted(self.meta['subject'].unique().tolist()) if 'subject' in self.meta else []})")


def sliding_starts(n_samples: int, win: int, stride: int, lo: int = 0, hi: int | None = None) -> np.ndarray:
    """Start samples of full windows of ``win`` samples every ``stride`` within [lo, hi)."""
    hi = n_samples if hi is None else min(hi, n_samples)
    if hi - lo < win:
        return np.zeros(0, dtype=np.int64)
    return np.arange(lo, hi - win + 1, stride, dtype=np.int64)


def event_starts(rec: Recording, onsets_s, tmin_s: float, win: int) -> tuple[np.ndarray, np.ndarray]:
    """Start samples of windows starting ``tmin_s`` after each onset; returns (starts, kept mask)."""
    starts = np.round((np.asarray(onsets_s, dtype=float) + tmin_s) * rec.sfreq).astype(np.int64)
    kept = (starts >= 0) & (starts + win <= rec.data.shape[1])
    return starts[kept], kept


def gather(rec: Recording, starts: np.ndarray, win: int) -> np.ndarray:
    """(N, C, win) float32 copies of the windows (reads only those samples from a memmap)."""
    out = np.empty((len(starts), rec.data.shape[0], win), dtype=np.float32)
    for i, s in enumerate(starts):
        out[i] = rec.data[:, s : s + win]
    return out


def sample_labels(rec: Recording, mapping: dict[str, int], default: int = -1) -> np.ndarray:
    """Per-sample label from segment annotations (onset, duration, description)."""
    lab = np.full(rec.data.shape[1], default, dtype=np.int64)
    for onset, dur, desc in rec.events[["onset_s", "duration_s", "description"]].itertuples(index=False):
        if desc in mapping:
            a = int(round(onset * rec.sfreq))
            b = int(round((onset + dur) * rec.sfreq))
            lab[max(a, 0) : max(b, 0)] = mapping[desc]
    return lab


def concat(parts: list[WindowDataset]) -> WindowDataset:
    """Concatenate datasets with the same channels (first part's attributes are kept)."""
    if not parts:
        raise ValueError("nothing to concatenate")
    first = parts[0]
    for p in parts[1:]:
        if p.ch_names != first.ch_names:
            raise ValueError(f"channel sets differ: {first.ch_names} vs {p.ch_names}")
    return replace(
        first,
        X=np.concatenate([p.X for p in parts]) if len(parts) > 1 else first.X,
        y=np.concatenate([p.y for p in parts]),
        meta=pd.concat([p.meta for p in parts], ignore_index=True),
    )
