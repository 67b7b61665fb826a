"""samba.evaluation.gap_smoother: the AR conditional-mean reference that masked reconstruction is compared with."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.signal import lfilter

from samba.evaluation import gap_smoother, reconstruction

AR2 = np.array([1.5, -0.75])  # x_t = 1.5 x_{t-1} - 0.75 x_{t-2} + e_t: a damped oscillation, poles of modulus 0.87


def ar2_windows(n: int, channels: int = 4, length: int = 1024, seed: int = 0) -> np.ndarray:
    """(n, channels, length) float32 draws of the AR(2) process, burn-in dropped."""
    rng = np.random.default_rng(seed)
    e = rng.standard_normal((n, channels, length + 200))
    return lfilter([1.0], np.r_[1.0, -AR2], e, axis=-1)[..., 200:].astype(np.float32)


def test_recovers_known_ar2_coefficients_and_beats_the_baselines():
    smoother = gap_smoother.fit([ar2_windows(32)], order=2, neighbourhood=16, window_length=1024)
    assert smoother.ar == pytest.approx(AR2, abs=0.02)
    # a higher order finds nothing beyond lag 2
    high = gap_smoother.fit([ar2_windows(32)], order=6, neighbourhood=16, window_length=1024)
    assert high.ar[:2] == pytest.approx(AR2, abs=0.03) and np.abs(high.ar[2:]).max() < 0.03

    X = ar2_windows(8, seed=1)  # fresh draws, scored as the held-out windows are
    vis = reconstruction.masks_for(len(X), X.shape[-1], seed=0)
    x = torch.from_numpy(X)
    l_zero = reconstruction.masked_l1(torch.zeros_like(x), x, vis)
    l_line = reconstruction.masked_l1(reconstruction.interpolate(x, vis), x, vis)
    l_ar = reconstruction.masked_l1(smoother(X, vis), x, vis)
    assert l_ar < 0.97 * l_zero and l_ar < l_line


def test_an_ar2_model_needs_only_two_samples_either_side():
    # an AR(p) process is Markov of order p: beyond p samples on each side, more context changes nothing
    windows = [ar2_windows(16)]
    narrow = gap_smoother.fit(windows, order=2, neighbourhood=2, window_length=1024)
    wide = gap_smoother.fit(windows, order=2, neighbourhood=64, window_length=1024)
    X = ar2_windows(2, seed=3)
    vis = np.ones((2, 1024), bool)
    vis[:, 300:340] = False
    vis[:, 600:601] = False
    np.testing.assert_allclose(narrow(X, vis).numpy(), wide(X, vis).numpy(), atol=1e-3)


def test_a_one_sample_gap_in_a_smooth_signal_is_nearly_exact():
    rng = np.random.default_rng(0)
    t = np.arange(1024) / 128.0
    train = np.sin(2 * np.pi * rng.uniform(1, 4, (64, 1)) * t + rng.uniform(0, 6.3, (64, 1)))  # (64, 1024)
    train += 1e-3 * rng.standard_normal(train.shape)
    smoother = gap_smoother.fit([train], order=8, neighbourhood=8, window_length=1024)
    x = np.sin(2 * np.pi * 2.5 * t + 0.3)[None, None].astype(np.float32)  # (1, 1, 1024)
    vis = np.ones((1, 1024), bool)
    hidden = [100, 411, 777]
    vis[0, hidden] = False
    pred = smoother(x, vis).numpy()[0, 0]
    assert np.abs(pred[hidden] - x[0, 0, hidden]).max() < 0.01  # amplitude 1


def test_never_reads_a_masked_sample():
    smoother = gap_smoother.fit([ar2_windows(8)], order=4, neighbourhood=32, window_length=1024)
    X = ar2_windows(3, seed=2)
    vis = reconstruction.masks_for(3, 1024, seed=5).numpy()
    tampered = X.copy()
    tampered[np.broadcast_to(~vis[:, None, :], X.shape)] = 1e3 * np.random.default_rng(0).standard_normal(
        (~vis).sum() * X.shape[1])
    np.testing.assert_array_equal(smoother(X, vis).numpy(), smoother(tampered, vis).numpy())


def test_gaps_and_levinson_agree_with_direct_forms():
    assert gap_smoother.gaps(np.array([0, 0, 1, 1, 0, 1, 0], bool)) == [(0, 2), (4, 5), (6, 7)]
    assert gap_smoother.gaps(np.ones(5, bool)) == []
    gamma = gap_smoother.autocovariance([ar2_windows(4)], 5)
    a, _ = gap_smoother.yule_walker(gamma, 5)
    toeplitz = gamma[np.abs(np.arange(5)[:, None] - np.arange(5)[None, :])]
    np.testing.assert_allclose(a, np.linalg.solve(toeplitz, gamma[1:6]), rtol=1e-8, atol=1e-10)
    with pytest.raises(ValueError, match="neighbourhood"):
        gap_smoother.fit([ar2_windows(1)], order=8, neighbourhood=4, window_length=1024)


def test_left_only_reads_nothing_after_a_gap_and_does_worse_than_both_sides():
    smoother = gap_smoother.fit([ar2_windows(16)], order=2, neighbourhood=32, window_length=1024)
    left = smoother.left_only()
    assert left.sides == "left" and left.describe()["sides"] == "left" and smoother.sides == "both"
    X = ar2_windows(4, seed=3)
    vis = reconstruction.masks_for(4, 1024, seed=7).numpy()
    after = X.copy()  # change every visible sample after the first gap of each row: the fill of that gap stays
    firsts = [gap_smoother.gaps(v)[0] for v in vis]
    for i, (_, stop) in enumerate(firsts):
        after[i, :, stop:] += 5.0
    p, q = left(X, vis).numpy(), left(after, vis).numpy()
    for i, (start, stop) in enumerate(firsts):
        np.testing.assert_array_equal(p[i, :, start:stop], q[i, :, start:stop])
    # the right edge carries information: two sides beat one on masked L1
    x = torch.from_numpy(X)
    visible = torch.from_numpy(vis)
    assert reconstruction.masked_l1(smoother(X, vis), x, visible) < reconstruction.masked_l1(left(X, vis), x, visible)
    with pytest.raises(ValueError, match="sides"):
        gap_smoother.GapSmoother(smoother.ar, smoother.autocov, 32, sides="right")


def test_left_only_fills_a_gap_at_the_window_start_with_the_mean():
    """Nothing is visible before a gap that opens the window: the conditional mean is the process mean, 0."""
    smoother = gap_smoother.fit([ar2_windows(8)], order=2, neighbourhood=16, window_length=1024).left_only()
    X = ar2_windows(1, seed=4)
    vis = np.ones((1, 1024), bool)
    vis[0, :40] = False  # a gap at t = 0
    vis[0, 500:540] = False  # and one with a left edge
    pred = smoother(X, vis).numpy()
    assert np.all(pred[0, :, :40] == 0.0)
    assert np.abs(pred[0, :, 500:540]).max() > 0  # the other gap is predicted from its left edge
