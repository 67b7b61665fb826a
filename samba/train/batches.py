"""Pretraining data: the corpus, its per-montage train/validation split and input scale, the batch plan.

Batches are drawn per montage: every batch comes from one WindowDataset (one device), and each epoch
visits every training window once, so devices appear in proportion to their window counts. Why
per-montage and not padded mixed batches: the CDSE spatial map is built once per batch for a single
coordinate set (the fused fast path), no compute is spent on padding channels, and proportional
sampling means no small device is over-fitted by re-sampling.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from samba.errors import InputError


class ArrayWindows:
    """Minimal WindowDataset stand-in (X, y, ch_names, positions, sfreq) for synthetic tests."""

    def __init__(self, X, ch_names, positions, sfreq=128.0, y=None, device="synthetic"):
        self.X = np.asarray(X, dtype=np.float32)
        self.y = np.full(len(self.X), -1, np.int64) if y is None else np.asarray(y, np.int64)
        self.ch_names = list(ch_names)
        self.positions = np.asarray(positions, np.float32)
        self.sfreq = float(sfreq)
        self.device = device

    def __len__(self):
        return len(self.X)

    def subset(self, idx):
        return ArrayWindows(self.X[idx], self.ch_names, self.positions, self.sfreq, self.y[idx], self.device)


def synthetic_corpus(n_montages=2, n_windows=24, n_times=64, seed=0) -> list[ArrayWindows]:
    """Random-phase oscillations on random electrode subsets: a corpus for shape/plumbing tests."""
    rng = np.random.default_rng(seed)
    out = []
    for m in range(n_montages):
        C = 3 + 2 * m
        t = np.arange(n_times) / 128.0
        f = rng.uniform(4, 30, size=(n_windows, C, 1))
        X = np.sin(2 * np.pi * f * t + rng.uniform(0, 6.28, size=(n_windows, C, 1)))
        X += 0.1 * rng.standard_normal(X.shape)
        pos = rng.standard_normal((C, 3))
        pos = 0.09 * pos / np.linalg.norm(pos, axis=1, keepdims=True)
        out.append(ArrayWindows(X, [f"S{m}_{c}" for c in range(C)], pos, device=f"synthetic{m}"))
    return out


def load_corpus(cfg):
    from samba.data import pretraining_corpus

    kw = dict(mirror=cfg.mirror, window_s=cfg.window_s, exclude_test=True, sfreq=cfg.sfreq)
    if cfg.stride_s:
        kw["stride_s"] = cfg.stride_s
    try:
        return pretraining_corpus(profile=cfg.profile, **kw)
    except TypeError:  # data module without the profile argument
        return pretraining_corpus(**kw)


def scale_of(X, rng, n=64) -> float:
    """1 / robust std of a dataset (from up to n windows): every montage enters the model at unit scale."""
    idx = np.sort(rng.choice(len(X), size=min(n, len(X)), replace=False))
    sample = np.asarray(X[idx], dtype=np.float64)
    s = float(np.median(np.abs(sample - np.median(sample, axis=-1, keepdims=True)))) * 1.4826
    return 1.0 / s if s > 0 and np.isfinite(s) else 1.0


class BatchPlan:
    """Deterministic per-epoch batch order over several datasets, sharded across ranks.

    Epoch e: each dataset's training indices are shuffled with a generator seeded by (seed, e) and
    cut into batches; the batches of all datasets are shuffled together; rank r takes batches
    r, r + W, r + 2W, ... (truncated so every rank has the same count). The position in the run is
    just (epoch, cursor), so a checkpoint restores the data stream exactly.
    """

    def __init__(self, train_indices: list[np.ndarray], batch_size: int, seed: int, rank=0, world=1):
        self.train_indices = train_indices
        self.batch_size = batch_size
        self.seed = seed
        self.rank, self.world = rank, world
        self.epoch, self.cursor = 0, 0
        self._plan = None

    def _build(self, epoch):
        rng = np.random.default_rng([self.seed, epoch])
        batches = []
        for d, idx in enumerate(self.train_indices):
            idx = rng.permutation(idx)
            bs = self.batch_size
            if len(idx) < bs:  # a tiny montage still contributes one (smaller) batch per epoch
                if len(idx):
                    batches.append((d, np.sort(idx)))
                continue
            for s in range(0, len(idx) - bs + 1, bs):  # drop the ragged tail: fixed shapes for compile
                batches.append((d, np.sort(idx[s:s + bs])))
        order = rng.permutation(len(batches))
        batches = [batches[i] for i in order]
        n = (len(batches) // self.world) * self.world
        if n == 0:
            raise InputError(f"the corpus has {len(batches)} batches, fewer than the {self.world} ranks; "
                             "use fewer processes or a smaller --batch-size")
        return batches[self.rank:n:self.world]

    def next(self):
        if self._plan is None:
            self._plan = self._build(self.epoch)
        if self.cursor >= len(self._plan):
            self.epoch += 1
            self.cursor = 0
            self._plan = self._build(self.epoch)
        b = self._plan[self.cursor]
        self.cursor += 1
        return b

    def state_dict(self):
        return {"epoch": self.epoch, "cursor": self.cursor, "seed": self.seed}

    def load_state_dict(self, s):
        self.epoch, self.cursor, self._plan = s["epoch"], s["cursor"], None


@dataclass
class PretrainData:
    """The corpus split for one run: per montage, training / validation indices, input scale, coordinates."""

    datasets: list
    train_idx: list[np.ndarray]
    val_idx: list[np.ndarray]
    scales: list[float]
    coords: list[torch.Tensor]  # (C, 3) per montage, on the training device

    @property
    def n_train_windows(self) -> int:
        return int(sum(len(i) for i in self.train_idx))


def split_corpus(datasets, seed: int, max_windows_per_montage, val_fraction: float, device) -> PretrainData:
    """Per-montage train/val split of windows and per-montage input scale (seeded: identical on every rank)."""
    from samba.montage import check_positions

    datasets = [d for d in datasets if len(d) > 0]
    if not datasets:
        raise InputError("the pretraining corpus is empty: check --mirror / SAMBA_DATA_MIRROR")
    split_rng = np.random.default_rng([seed, 12345])
    train_idx, val_idx, scales, coords = [], [], [], []
    for d in datasets:
        idx = split_rng.permutation(len(d))
        if max_windows_per_montage:
            idx = idx[:max_windows_per_montage]
        n_val = max(1, int(round(val_fraction * len(idx)))) if len(idx) >= 4 else 0
        val_idx.append(np.sort(idx[:n_val]))
        train_idx.append(np.sort(idx[n_val:]))
        scales.append(scale_of(d.X, split_rng))
        coords.append(check_positions(np.asarray(d.positions, np.float32), device=device))
    return PretrainData(datasets, train_idx, val_idx, scales, coords)
