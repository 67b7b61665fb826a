"""Pretraining data: the corpus, its per-montage train/validation split and input scale, the batch plan.

Batches are drawn per montage: every batch comes from one WindowDataset (one device), every batch is full, and
devices appear in proportion to their window counts (:class:`BatchPlan`). Why per-montage and not padded mixed
batches: the CDSE spatial map is built once per batch for a single coordinate set (the fused fast path), and no
compute is spent on padding channels. Why full batches: a GPU step costs nearly the same few hundred kernel
launches at any batch, so the small batches a small montage used to give (one a pass: 43, 12 and 11 windows of 30 s
in the mirrored corpus, three of every five steps) left the GPU mostly idle (`results/pretrain_throughput.json`).
"""

from __future__ import annotations

import heapq
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


def recording_windows(recs, window_s: float, max_windows: int = 64, hop_s: float | None = None
                      ) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``[(name, X (N, C, T) float32, positions (C, 3))]``: windows of whole recordings (every ``hop_s``, default
    no overlap), at unit robust scale per recording (:func:`scale_of`), as pretraining feeds the model. The
    held-out evaluation and pretraining's validation recordings are cut this way."""
    out = []
    for name, rec in recs:
        win = int(round(window_s * rec.sfreq))
        hop = int(round((hop_s or window_s) * rec.sfreq))
        n = min(max_windows, (rec.data.shape[1] - win) // hop + 1) if rec.data.shape[1] >= win else 0
        if n == 0:
            continue
        X = np.stack([np.asarray(rec.data[:, i * hop:i * hop + win], np.float32) for i in range(n)])  # (N, C, T)
        X *= np.float32(scale_of(X, np.random.default_rng(0)))
        out.append((name, X, np.asarray(rec.positions, np.float32)))
    return out


def scale_of(X, rng, n=64) -> float:
    """1 / robust std of a dataset (from up to n windows): every montage enters the model at unit scale."""
    idx = np.sort(rng.choice(len(X), size=min(n, len(X)), replace=False))
    sample = np.asarray(X[idx], dtype=np.float64)
    s = float(np.median(np.abs(sample - np.median(sample, axis=-1, keepdims=True)))) * 1.4826
    return 1.0 / s if s > 0 and np.isfinite(s) else 1.0


class BatchPlan:
    """Full batches from every montage, in proportion to its windows, sharded across ranks; exactly resumable.

    Montage d's training windows form an endless stream: the permutation of its pass 0, then of its pass 1, ...
    (each seeded by (seed, d, pass)), and its k-th batch is the stream's windows [kB, (k + 1)B). So every batch
    holds B windows (a montage with fewer than B windows repeats them within a batch, each copy with its own mask),
    and no window is dropped. Montages take turns by due time: montage d's k-th batch is due once (k + 1) B / n_d
    passes over it have elapsed, the earliest due goes next (ties: the lower index), so each montage contributes
    batches in proportion to its n_d windows. Global batch g goes to rank g % world. The position in the run is
    the number of global batches taken; a checkpoint stores it and resuming replays the turns up to it.
    """

    VERSION = 2  # 1: one pass at a time, ragged tails dropped, a small montage's batch smaller than B

    def __init__(self, train_indices: list[np.ndarray], batch_size: int, seed: int, rank=0, world=1):
        self.train_indices = [np.asarray(i, dtype=np.int64) for i in train_indices]
        self.sizes = [len(i) for i in self.train_indices]
        if not any(self.sizes):
            raise InputError("the corpus has no training windows")
        self.batch_size, self.seed = int(batch_size), int(seed)
        self.rank, self.world = rank, world
        self._reset()

    def _reset(self) -> None:
        B = self.batch_size
        self.cursor = 0  # global batches taken (every rank's)
        self._taken = [0] * len(self.sizes)  # batches taken per montage
        self._turns = [((B / n), d) for d, n in enumerate(self.sizes) if n]  # (due, montage): a heap
        heapq.heapify(self._turns)
        self._perms: dict[tuple[int, int], np.ndarray] = {}

    def _turn(self) -> tuple[int, int]:
        """The next global batch: (montage, its batch number)."""
        _, d = heapq.heappop(self._turns)
        k = self._taken[d]
        self._taken[d] += 1
        heapq.heappush(self._turns, ((k + 2) * self.batch_size / self.sizes[d], d))
        self.cursor += 1
        return d, k

    def _perm(self, d: int, p: int) -> np.ndarray:
        if (d, p) not in self._perms:
            if len(self._perms) > 4 * len(self.sizes):  # only the current passes are read again
                self._perms.clear()
            rng = np.random.default_rng([self.seed, d, p])
            self._perms[(d, p)] = self.train_indices[d][rng.permutation(self.sizes[d])]
        return self._perms[(d, p)]

    def _windows(self, d: int, k: int) -> np.ndarray:
        n, B = self.sizes[d], self.batch_size
        pos = np.arange(k * B, (k + 1) * B)  # places in montage d's stream
        passes, offsets = np.divmod(pos, n)
        out = np.empty(B, dtype=np.int64)
        for p in np.unique(passes):
            sel = passes == p
            out[sel] = self._perm(d, int(p))[offsets[sel]]
        return np.sort(out)

    @property
    def epoch(self) -> int:
        """Whole passes over the training windows so far (all montages together)."""
        return int(self.cursor * self.batch_size // sum(self.sizes))

    def next(self):
        """This rank's next batch: (montage index, sorted window indices)."""
        while True:
            g = self.cursor
            d, k = self._turn()
            if g % self.world == self.rank:
                return d, self._windows(d, k)

    def state_dict(self):
        return {"version": self.VERSION, "cursor": self.cursor, "seed": self.seed}

    def load_state_dict(self, s):
        if s.get("version") != self.VERSION:
            raise InputError("this training state was written with an earlier batch plan (one pass at a time, "
                             "small batches for small montages); resume it with the SAMBA version that wrote it, "
                             "or start over with --no-resume --overwrite")
        self._reset()
        for _ in range(int(s["cursor"])):
            self._turn()


@dataclass
class PretrainData:
    """The corpus split for one run: per montage, training / validation indices, input scale, coordinates.

    ``val_recordings``: ``[(name, x (N, C, T), coords (C, 3))]`` on the training device, windows of whole recordings
    that are never trained on (``recording_windows``); when given, validation uses them instead of the ``val_idx``
    windows of the training recordings."""

    datasets: list
    train_idx: list[np.ndarray]
    val_idx: list[np.ndarray]
    scales: list[float]
    coords: list[torch.Tensor]  # (C, 3) per montage, on the training device
    val_recordings: list | None = None

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
