"""A classical reference for masked reconstruction: the best linear guess of each masked gap from the visible
samples around it, under an autoregressive model of EEG fitted on the pretraining corpus.

Model. Every channel of every window is treated as one draw of the same zero-mean stationary Gaussian process
(the recordings are median-removed and brought to unit robust scale, so zero mean and a shared scale hold by
construction). Its autocovariance comes from an AR(p) model fitted by Yule-Walker on the corpus: the model
reproduces the corpus autocovariance at lags 0..p exactly and extends it to any lag by its recursion, which
keeps the covariance positive definite at the long lags a 30-s window needs (a raw estimate at lag 2000 is
mostly noise).

Prediction. For a masked gap g and the visible samples v within ``neighbourhood`` samples of either edge, the
conditional mean is ``E[x_g | x_v] = Sigma_gv Sigma_vv^-1 x_v``: the Kalman smoother's answer for this model.
For a true AR(p) process with p visible samples on each side of the gap it uses everything the rest of the
window could tell, because an AR(p) process is Markov of order p. Near the edges it continues the visible
signal; deep inside a long gap it decays to 0, the process mean. The scorer uses L1, whose optimum is the conditional median; for a
Gaussian the two coincide, so this is the natural linear reference even if not the exact L1 optimum for EEG.

One set of coefficients serves every channel and every device: the model knows no more about EEG than its
autocovariance, so what a learned model gains over it is what it learned beyond the power spectrum.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

__all__ = ["GapSmoother", "autocovariance", "yule_walker", "ar_autocovariance", "fit", "fit_on_corpus", "gaps"]

# AR order and neighbourhood (samples at 128 Hz: 2 s), fixed in advance and never tuned on the held-out
# recordings: long enough to span several cycles of the slowest rhythm that matters (delta, 1-4 Hz) and the
# autocorrelation of alpha, short enough that the solve per gap stays cheap.
ORDER = 256
NEIGHBOURHOOD = 256


def autocovariance(windows, max_lag: int) -> np.ndarray:
    """(max_lag + 1,) autocovariance pooled over every row of every ``(..., T)`` array in ``windows``.

    The biased estimate (sum over the row / T), which keeps the Toeplitz matrix positive semi-definite and so
    gives a stable Yule-Walker fit."""
    total, rows = np.zeros(max_lag + 1), 0
    for X in windows:
        x = np.asarray(X, np.float64).reshape(-1, np.shape(X)[-1])  # (rows, T)
        T = x.shape[1]
        n = 1 << int(np.ceil(np.log2(2 * T)))  # zero padding: circular wrap-around would mix the row's ends
        f = np.fft.rfft(x, n=n, axis=1)
        acf = np.fft.irfft(f * f.conj(), n=n, axis=1)[:, :max_lag + 1] / T  # (rows, max_lag + 1)
        if acf.shape[1] < max_lag + 1:
            acf = np.pad(acf, ((0, 0), (0, max_lag + 1 - acf.shape[1])))
        total += acf.sum(axis=0)
        rows += x.shape[0]
    if rows == 0:
        raise ValueError("no window to estimate the autocovariance from")
    return total / rows


def yule_walker(gamma: np.ndarray, order: int) -> tuple[np.ndarray, float]:
    """AR coefficients ``a`` (order,) and innovation variance of ``x_t = sum_i a[i] x_{t-1-i} + e_t`` from the
    autocovariance ``gamma`` at lags 0..order (Levinson-Durbin)."""
    if len(gamma) < order + 1:
        raise ValueError(f"need the autocovariance at lags 0..{order}, got {len(gamma)} lags")
    a, var = np.zeros(0), float(gamma[0])
    for k in range(1, order + 1):
        reflection = (gamma[k] - a @ gamma[1:k][::-1]) / var
        a = np.concatenate([a - reflection * a[::-1], [reflection]])
        var *= 1.0 - reflection ** 2
    return a, var


def ar_autocovariance(a: np.ndarray, gamma: np.ndarray, n_lags: int) -> np.ndarray:
    """(n_lags,) autocovariance of the AR model ``a``: ``gamma`` at lags 0..p (what Yule-Walker matched), then
    ``gamma[k] = sum_i a[i] gamma[k-1-i]`` beyond."""
    p = len(a)
    out = np.zeros(max(n_lags, p + 1))
    out[:p + 1] = gamma[:p + 1]
    for k in range(p + 1, n_lags):
        out[k] = a @ out[k - p:k][::-1]
    return out[:n_lags]


def gaps(visible: np.ndarray) -> list[tuple[int, int]]:
    """``[(start, stop)]`` of the masked runs of one (T,) bool row, True = visible."""
    edges = np.diff(np.concatenate([[1], np.asarray(visible, np.int8), [1]]))
    return list(zip(np.flatnonzero(edges == -1), np.flatnonzero(edges == 1)))


@dataclass(frozen=True)
class GapSmoother:
    """Fill masked gaps with their conditional mean under a stationary Gaussian process (see the module doc)."""

    ar: np.ndarray  # (p,) AR coefficients, for the record: prediction uses only ``autocov``
    autocov: np.ndarray  # (L,) the model's autocovariance at lags 0..L-1, L >= window length + neighbourhood
    neighbourhood: int  # visible samples considered on each side of a gap
    jitter: float = 1e-6  # added to Sigma_vv's diagonal (relative to the variance): EEG band-limited to 45 Hz
    # at 128 Hz sampling has almost no power above, so neighbouring samples are nearly collinear
    # "both": visible samples on either side of a gap; "left": only those before it, the best a model that reads
    # the window forwards in time can do with the same spectrum (SAMBA's Mamba layers scan forwards; only its
    # convolutions and poolings see a few samples ahead)
    sides: str = "both"

    def fill(self, x: np.ndarray, visible: np.ndarray) -> np.ndarray:
        """One window: x (C, T), visible (T,) bool -> (C, T) with every masked gap replaced by its prediction.
        Reads x only where visible."""
        T = x.shape[-1]
        if len(self.autocov) < T + self.neighbourhood:
            raise ValueError(f"autocovariance known to lag {len(self.autocov) - 1}, a window of {T} samples "
                             f"needs {T + self.neighbourhood - 1}")
        visible = np.asarray(visible, bool)
        out = np.where(visible, x, 0.0)  # (C, T); masked samples are never read below
        for start, stop in gaps(visible):
            end = min(T, stop + self.neighbourhood) if self.sides == "both" else start  # "left": nothing after it
            near = np.arange(max(0, start - self.neighbourhood), end)
            v = near[visible[near]]  # (V,) visible samples within reach of the edge(s)
            if len(v) == 0:
                continue  # nothing visible nearby: the process mean, 0
            g = np.arange(start, stop)  # (G,)
            cov_vv = self.autocov[np.abs(v[:, None] - v[None, :])]  # (V, V)
            cov_vv[np.diag_indices(len(v))] += self.jitter * self.autocov[0]
            cov_gv = self.autocov[np.abs(g[:, None] - v[None, :])]  # (G, V)
            weights = np.linalg.solve(cov_vv, cov_gv.T).T  # (G, V) = Sigma_gv Sigma_vv^-1 (symmetric Sigma_vv)
            out[:, start:stop] = out[:, v] @ weights.T  # (C, G)
        return out

    def __call__(self, X, visible) -> torch.Tensor:
        """X (B, C, T) array or tensor, visible (B, T) bool -> (B, C, T) float32 tensor: the reconstruction."""
        X = np.asarray(X, np.float64)
        visible = np.asarray(visible, bool)
        return torch.from_numpy(np.stack([self.fill(x, m) for x, m in zip(X, visible)]).astype(np.float32))

    def __post_init__(self):
        if self.sides not in ("both", "left"):
            raise ValueError(f"sides must be 'both' or 'left', got {self.sides!r}")

    def left_only(self) -> "GapSmoother":
        """The same model, predicting each gap from the visible samples before it alone."""
        return replace(self, sides="left")

    def describe(self) -> dict:
        return {"order": len(self.ar), "neighbourhood": self.neighbourhood, "jitter": self.jitter, "sides": self.sides}


def fit(windows, order: int = ORDER, neighbourhood: int = NEIGHBOURHOOD, window_length: int = 3840) -> GapSmoother:
    """Yule-Walker AR(``order``) on ``windows`` (arrays ``(..., T)``, every row one realisation), its
    autocovariance extended far enough for windows of ``window_length`` samples."""
    if neighbourhood < order:
        raise ValueError(f"a neighbourhood of {neighbourhood} samples cannot hold the AR order {order}")
    gamma = autocovariance(windows, order)
    a, _ = yule_walker(gamma, order)
    return GapSmoother(a, ar_autocovariance(a, gamma, window_length + neighbourhood), neighbourhood)


def fit_on_corpus(mirror=None, window_s: float = 30.0, order: int = ORDER,
                  neighbourhood: int = NEIGHBOURHOOD) -> tuple[GapSmoother, dict]:
    """The smoother fitted on the pretraining corpus (never on held-out recordings), and what it was fitted on.

    The corpus windows are brought to unit robust scale per recording by ``scale_of`` with the generator that
    cuts the held-out windows (``samba.train.batches.recording_windows``: seed 0, whatever the masks' seed), so
    both sides of the comparison see one normalisation and the pooled autocovariance weights recordings alike."""
    from samba.data.corpus import pretraining_corpus
    from samba.errors import UsageError
    from samba.train.batches import scale_of

    windows, recordings = [], 0
    for montage in pretraining_corpus(mirror, window_s=window_s):
        files = montage.meta.file.to_numpy()
        for name in dict.fromkeys(files):
            X = montage.X[files == name].copy()  # (N, C, T) one recording's windows
            X *= np.float32(scale_of(X, np.random.default_rng(0)))  # as recording_windows scales
            windows.append(X)
            recordings += 1
    if not windows:
        raise UsageError("the pretraining corpus is empty here, so the AR reference cannot be fitted; pass --mirror "
                         "DIR or set SAMBA_DATA_MIRROR")
    T = windows[0].shape[-1]
    smoother = fit(windows, order, neighbourhood, window_length=T)
    return smoother, {**smoother.describe(), "corpus_recordings": recordings,
                      "corpus_windows": int(sum(len(X) for X in windows)),
                      "corpus_channel_windows": int(sum(X.shape[0] * X.shape[1] for X in windows)),
                      "window_samples": int(T)}
