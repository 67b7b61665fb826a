"""Pretraining augmentations: shapes, what they preserve, the electrode subsets, determinism."""

from __future__ import annotations

import torch

from samba.train.augment import augment


def _gens(seed=0):
    return torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed + 1)


def test_augment_keeps_power_spectrum_up_to_gain_and_picks_electrode_subsets():
    x = torch.randn(64, 8, 256)
    coords = torch.randn(8, 3)
    sizes = set()
    for seed in range(20):
        y, c = augment(x, coords, *_gens(seed), max_log_gain=0.0)
        B, C, T = y.shape
        assert B == 64 and T == 256 and c.shape == (C, 3) and 4 <= C <= 8
        sizes.add(C)
        # every output channel is an input channel (same position), sign-flipped and/or time-reversed
        idx = [int(torch.nonzero((coords == row).all(1))[0]) for row in c]
        assert idx == sorted(idx)
        spec_in = torch.fft.rfft(x[:, idx], dim=-1).abs()
        assert torch.allclose(torch.fft.rfft(y, dim=-1).abs(), spec_in, atol=1e-3)
    assert len(sizes) > 2  # the subset size varies


def test_augment_flips_and_reverses_about_half_the_windows_and_is_seeded():
    x = torch.cumsum(torch.randn(400, 1, 64), dim=-1)  # one electrode: never subset
    y, _ = augment(x, torch.zeros(1, 3), *_gens(), max_log_gain=0.0)
    flipped = torch.isclose(y, -x).all(-1).squeeze(1) | torch.isclose(y, -x.flip(-1)).all(-1).squeeze(1)
    reversed_ = torch.isclose(y, x.flip(-1)).all(-1).squeeze(1) | torch.isclose(y, -x.flip(-1)).all(-1).squeeze(1)
    assert 0.4 < flipped.float().mean() < 0.6 and 0.4 < reversed_.float().mean() < 0.6
    y2, _ = augment(x, torch.zeros(1, 3), *_gens(), max_log_gain=0.0)
    assert torch.equal(y, y2)
    g, _ = augment(x, torch.zeros(1, 3), *_gens(), max_log_gain=0.4)
    ratio = (g.abs().amax(-1) / x.abs().amax(-1)).squeeze(1)
    assert ratio.min() >= torch.exp(torch.tensor(-0.4)) - 1e-4 and ratio.max() <= torch.exp(torch.tensor(0.4)) + 1e-4
    assert ratio.std() > 0.1
