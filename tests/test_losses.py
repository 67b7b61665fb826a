import pytest
import torch

from samba.losses import reconstruction_loss, spectral_loss


def test_zero_for_perfect_reconstruction():
    x = torch.randn(2, 3, 64)
    vis = torch.rand(2, 64) > 0.5
    for on in ("masked", "all", "both"):
        loss, parts = reconstruction_loss(x, x.clone(), vis, on=on)
        assert loss.item() == pytest.approx(0.0, abs=1e-7)


def test_masked_loss_ignores_visible_errors():
    x = torch.randn(2, 3, 64)
    vis = torch.zeros(2, 64, dtype=torch.bool)
    vis[:, :32] = True
    pred = x.clone()
    pred[..., :32] += 5.0  # error only where visible
    loss, _ = reconstruction_loss(pred, x, vis, on="masked")
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    loss_all, _ = reconstruction_loss(pred, x, vis, on="all")
    assert loss_all.item() > 1.0


def test_l1_value_and_parseval_scale():
    x = torch.zeros(1, 1, 100)
    pred = torch.full_like(x, 2.0)
    _, parts = reconstruction_loss(pred, x, None, on="all")
    assert parts["l1"] == pytest.approx(2.0)
    e = torch.randn(4, 5, 256, dtype=torch.float64)
    # orthonormal rFFT: mean |E_k|^2 over the one-sided spectrum is within 2x of mean e^2
    ratio = spectral_loss(e, torch.zeros_like(e)).item() / e.square().mean().item()
    assert 0.9 < ratio < 2.1


def test_padding_channels_do_not_count():
    x = torch.randn(2, 4, 64)
    pred = x.clone()
    pred[:, 3] = 100.0  # garbage on a padded channel
    cm = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 0]], dtype=torch.bool)
    loss, _ = reconstruction_loss(pred, x, None, on="all", channel_mask=cm)
    assert loss.item() == pytest.approx(0.0, abs=1e-6)


def test_bad_shapes():
    with pytest.raises(ValueError):
        reconstruction_loss(torch.zeros(2, 3), torch.zeros(2, 3))
    with pytest.raises(ValueError):
        reconstruction_loss(torch.zeros(1, 2, 8), torch.zeros(1, 2, 8), on="nope")
