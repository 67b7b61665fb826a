"""Classical references, fitted on the same folds as the networks (numpy / scipy / scikit-learn only).

* ``band_power``   log band power (Welch) of every channel in delta..gamma -> standardised logistic regression;
                   the textbook reference for spectral effects (eyes closed = alpha, workload = theta/alpha).
* ``tangent_space`` 8-30 Hz covariance matrices projected to the tangent space at their Riemannian (here
                   log-Euclidean) mean -> logistic regression (Barachant et al. 2012), for motor imagery.
* ``erp``          the time-locked waveform itself, decimated to 32 Hz -> shrinkage LDA (the classic P300
                   classifier; band power throws the phase-locked P300 away).

``REFERENCE_OF`` names each task's reference.
"""

from __future__ import annotations

import numpy as np
from scipy import signal
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

BANDS = ((1, 4), (4, 8), (8, 13), (13, 30), (30, 45))  # Hz: delta, theta, alpha, beta, gamma
REFERENCE_OF = {"eegmmidb-mi": "tangent_space", "eyes-open-closed": "band_power",
                "eegmat-workload": "band_power", "muse-p300": "erp"}


def band_power(X: np.ndarray, sfreq: float) -> np.ndarray:
    """(N, C, T) -> (N, C * 5) log mean power per band."""
    nper = min(X.shape[-1], int(2 * sfreq))
    f, p = signal.welch(X, fs=sfreq, nperseg=nper, axis=-1)  # p: (N, C, F)
    feats = [p[..., (f >= lo) & (f < hi)].mean(-1) for lo, hi in BANDS]
    return np.log(np.stack(feats, -1) + 1e-12).reshape(len(X), -1)


def covariances(X: np.ndarray, sfreq: float, band=(8.0, 30.0), shrink: float = 0.05) -> np.ndarray:
    """(N, C, T) -> (N, C, C) shrunk covariances of the band-passed windows."""
    sos = signal.butter(4, band, btype="bandpass", fs=sfreq, output="sos")
    Xf = signal.sosfiltfilt(sos, X.astype(np.float64), axis=-1)
    Xf = Xf - Xf.mean(-1, keepdims=True)
    C = np.einsum("nct,ndt->ncd", Xf, Xf) / Xf.shape[-1]
    tr = np.trace(C, axis1=1, axis2=2)[:, None, None] / C.shape[1]
    return (1 - shrink) * C + shrink * tr * np.eye(C.shape[1])


def _powm(C: np.ndarray, fn) -> np.ndarray:
    w, V = np.linalg.eigh(C)
    return (V * fn(np.maximum(w, 1e-12))[..., None, :]) @ np.swapaxes(V, -1, -2)


def tangent_space(C: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """(N, C, C) SPD -> (N, C(C+1)/2) tangent vectors at ``ref`` (off-diagonal entries weighted by sqrt 2)."""
    isq = _powm(ref, lambda w: w ** -0.5)
    T = _powm(isq @ C @ isq, np.log)
    iu = np.triu_indices(C.shape[1])
    weight = np.where(iu[0] == iu[1], 1.0, np.sqrt(2.0))
    return T[:, iu[0], iu[1]] * weight


def log_euclidean_mean(C: np.ndarray) -> np.ndarray:
    return _powm(_powm(C, np.log).mean(0), np.exp)


def erp_features(X: np.ndarray, sfreq: float, target_hz: float = 32.0) -> np.ndarray:
    q = max(1, int(round(sfreq / target_hz)))
    return signal.decimate(X.astype(np.float64), q, axis=-1, zero_phase=True).reshape(len(X), -1) if q > 1 \
        else X.reshape(len(X), -1).astype(np.float64)


def fit_predict(kind: str, X_train, y_train, X_test, sfreq: float, seed: int = 0) -> np.ndarray:
    """Class probabilities (N_test, 2) of reference ``kind`` trained on ``X_train``."""
    X_train, X_test = np.asarray(X_train), np.asarray(X_test)
    if kind == "band_power":
        F_tr, F_te = band_power(X_train, sfreq), band_power(X_test, sfreq)
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000,
                                                                 random_state=seed))
    elif kind == "tangent_space":
        C_tr, C_te = covariances(X_train, sfreq), covariances(X_test, sfreq)
        ref = log_euclidean_mean(C_tr)  # from training windows only
        F_tr, F_te = tangent_space(C_tr, ref), tangent_space(C_te, ref)
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, class_weight="balanced", max_iter=2000,
                                                                 random_state=seed))
    elif kind == "erp":
        F_tr, F_te = erp_features(X_train, sfreq), erp_features(X_test, sfreq)
        clf = make_pipeline(StandardScaler(), LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto"))
    else:
        raise ValueError(f"unknown reference {kind!r}; choose band_power, tangent_space or erp")
    clf.fit(F_tr, y_train)
    proba = clf.predict_proba(F_te)
    out = np.zeros((len(X_test), 2))
    out[:, clf.classes_.astype(int)] = proba  # a class absent from training keeps probability 0
    return out
