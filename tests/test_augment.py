"""Pretraining augmentations: shapes, what they preserve, the electrode subsets, determinism."""

from __future__ import annotations

import torch

from samba.train.augment import augment, augment_masked


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


def test_masked_subset_draws_the_same_and_gives_the_subset_step_loss_and_gradients():
    """What the CUDA-graph step computes (full montage + channel mask) equals the eager step's subset."""
    from samba import SAMBA, SAMBAConfig
    from samba.losses import reconstruction_loss
    from samba.montage import DEVICE_PRESETS, positions

    coords = torch.from_numpy(positions(list(DEVICE_PRESETS["10-20"]))).double()  # (19, 3)
    x = torch.randn(3, 19, 96, dtype=torch.float64)
    visible = torch.rand(3, 96, generator=torch.Generator().manual_seed(5)) < 0.5
    torch.manual_seed(0)
    model = SAMBA(SAMBAConfig(backend="torch")).double()
    for seed in range(4):  # some seeds keep every electrode, most keep a subset
        xs, cs = augment(x, coords, *_gens(seed))
        xm, keep = augment_masked(x, *_gens(seed))
        assert keep.shape == (1, 19) and keep.dtype == torch.bool and int(keep.sum()) == xs.shape[1]
        torch.testing.assert_close(xm[:, keep[0]], xs, rtol=0, atol=0)
        torch.testing.assert_close(coords[keep[0]], cs, rtol=0, atol=0)
        losses, grads = [], []
        for inp, c, mask in ((xs, cs, None), (xm, coords, keep)):
            model.zero_grad()
            pred = model(inp * visible[:, None, :], c, mask)
            ch = None if mask is None else mask.expand(3, -1)
            loss, _ = reconstruction_loss(pred, inp, visible, on="masked", channel_mask=ch)
            loss.backward()
            losses.append(loss.detach())
            grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
        # float64 model; the spectral term runs its FFT in float32 (samba.losses), hence float32 tolerances
        torch.testing.assert_close(losses[1], losses[0], rtol=1e-6, atol=1e-7)
        for n in grads[0]:
            torch.testing.assert_close(grads[1][n], grads[0][n], rtol=1e-4, atol=1e-7, msg=n)
