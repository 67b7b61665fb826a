"""CDSE / InverseCDSE: normalisation, masking, mixed-device batches, equivariance, reference maths."""

import numpy as np
import pytest
import torch

from samba.montage import device_positions, target_positions
from samba.nn.cdse import CDSE, InverseCDSE, pad_montages

T = 32


@pytest.fixture(scope="module")
def cdse():
    torch.manual_seed(0)
    return CDSE()


@pytest.fixture(scope="module")
def montages():
    """Three real devices: EEGMMIDB 64, Emotiv EPOC 14, Muse 4 channels."""
    g = torch.Generator().manual_seed(1)
    out = []
    for name in ("eegmmidb", "emotiv_epoc", "muse"):
        c = torch.as_tensor(device_positions(name))
        out.append((torch.randn(len(c), T, generator=g), c))
    return out


def test_default_targets_are_the_94_montage(cdse):
    assert cdse.target_positions.shape == (94, 3)
    np.testing.assert_array_equal(cdse.target_positions.numpy(), target_positions())
    assert "target_positions" in dict(cdse.named_buffers())
    assert "target_positions" not in dict(cdse.named_parameters())


def test_rows_sum_to_one_and_shapes(cdse, montages):
    x, c = montages[1]
    W = cdse.weights(c)
    assert W.shape == (1, 94, 14)
    torch.testing.assert_close(W.sum(-1), torch.ones(1, 94))
    assert (W > 0).all()
    y = cdse(x[None].repeat(3, 1, 1), c)  # (C, 3) coords broadcast over the batch
    assert y.shape == (3, 94, T)
    Wb = cdse.weights(c[None].repeat(2, 1, 1))
    assert Wb.shape == (2, 94, 14)


def test_masked_channels_get_exactly_zero_weight(cdse, montages):
    x, c = montages[0]
    mask = torch.ones(2, 64, dtype=torch.bool)
    mask[0, 10:20] = False
    mask[1, ::2] = False
    W = cdse.weights(c, mask)  # (2, 94, 64)
    assert W.shape == (2, 94, 64)
    assert (W[~mask[:, None, :].expand_as(W)] == 0).all()
    torch.testing.assert_close(W.sum(-1), torch.ones(2, 94))
    # garbage (even NaN) in masked channels does not leak into the output
    xb = x[None].repeat(2, 1, 1)
    xb[~mask] = float("nan")
    assert torch.isfinite(cdse(xb, c, mask)).all()


def test_all_masked_sample_is_an_error(cdse, montages):
    _, c = montages[2]
    mask = torch.tensor([[True, True, False, False], [False, False, False, False]])
    with pytest.raises(ValueError, match="no real channel"):
        cdse.weights(c, mask)


def test_padded_mixed_device_batch_equals_each_sample_alone(cdse, montages):
    x, coords, mask = pad_montages(montages)
    assert x.shape == (3, 64, T) and coords.shape == (3, 64, 3) and mask.sum(1).tolist() == [64, 14, 4]
    y = cdse(x, coords, mask)  # (3, 94, T)
    inv = InverseCDSE()
    back = inv(y, coords, mask)  # (3, 64, T)
    for b, (xb, cb) in enumerate(montages):
        alone = cdse(xb[None], cb)  # (1, 94, T)
        torch.testing.assert_close(y[b : b + 1], alone, rtol=1e-5, atol=1e-6)
        n = len(cb)
        torch.testing.assert_close(back[b : b + 1, :n], inv(alone, cb), rtol=1e-5, atol=1e-6)
        assert (back[b, n:] == 0).all()  # padded electrodes output zeros


def test_permutation_equivariance(cdse, montages):
    x, c = montages[0]
    perm = torch.randperm(len(c), generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(cdse(x[None], c), cdse(x[perm][None], c[perm]), rtol=1e-5, atol=1e-6)
    # inverse: permuting electrodes permutes the reconstructed channels the same way
    inv = InverseCDSE()
    y = torch.randn(1, 94, T)
    torch.testing.assert_close(inv(y, c)[:, perm], inv(y, c[perm]), rtol=1e-5, atol=1e-6)


def test_gradient_reaches_the_mlp(montages):
    torch.manual_seed(0)
    for module, inp in ((CDSE(), montages[1][0][None]), (InverseCDSE(), torch.randn(1, 94, T))):
        module(inp, montages[1][1]).square().mean().backward()
        for name, p in module.mlp.named_parameters():
            if name != "2.bias":  # a constant score shift: softmax makes its gradient exactly 0
                assert p.grad is not None and p.grad.abs().sum() > 0, name


def _numpy_layer(linear):
    return linear.weight.detach().double().numpy(), linear.bias.detach().double().numpy()


def test_weights_match_a_from_scratch_numpy_reference(cdse, montages):
    c = montages[1][1].numpy().astype(np.float64)
    (W1, b1), (W2, b2) = [_numpy_layer(m) for m in (cdse.mlp[0], cdse.mlp[2])]
    P_out = target_positions().astype(np.float64)
    d = P_out[:, None, :] - c[None, :, :]  # (O, C, 3)
    s = (np.maximum(d @ W1.T + b1, 0) @ W2.T + b2)[..., 0]  # (O, C)
    W_ref = np.exp(s - s.max(1, keepdims=True))
    W_ref /= W_ref.sum(1, keepdims=True)
    np.testing.assert_allclose(cdse.weights(montages[1][1])[0].detach().numpy(), W_ref, rtol=1e-4, atol=1e-6)
    # inverse: same recipe, roles swapped, softmax over targets
    inv = InverseCDSE()
    (V1, a1), (V2, a2) = [_numpy_layer(m) for m in (inv.mlp[0], inv.mlp[2])]
    s = (np.maximum(-d.transpose(1, 0, 2) @ V1.T + a1, 0) @ V2.T + a2)[..., 0]  # (C, O)
    V_ref = np.exp(s - s.max(1, keepdims=True))
    V_ref /= V_ref.sum(1, keepdims=True)
    np.testing.assert_allclose(inv.weights(montages[1][1])[0].detach().numpy(), V_ref, rtol=1e-4, atol=1e-6)


def test_inverse_rows_sum_to_one(montages):
    inv = InverseCDSE(hidden=8)
    V = inv.weights(montages[2][1])
    assert V.shape == (1, 4, 94)
    torch.testing.assert_close(V.sum(-1), torch.ones(1, 4))


def test_custom_targets_and_hidden():
    m = CDSE(target_positions=device_positions("10-20"), hidden=4)
    assert m.n_targets == 19 and m.mlp[0].out_features == 4
    y = m(torch.randn(2, 5, 16), device_positions("emotiv_insight"))
    assert y.shape == (2, 19, 16)


def test_clear_errors(cdse, montages):
    x, c = montages[1]
    bad = c.clone()
    bad[3, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or Inf"):
        cdse(x[None], bad)
    with pytest.raises(ValueError, match=r"\(C, 3\)"):
        cdse(x[None], c[:, :2])
    with pytest.raises(ValueError, match="14 channels but coords describe 4"):
        cdse(x[None], montages[2][1])
    with pytest.raises(ValueError, match=r"\(B, channels, T\)"):
        cdse(x, c)
    with pytest.raises(ValueError, match="bool"):
        cdse.weights(c, torch.ones(1, 14))
    with pytest.raises(ValueError, match="channel_mask"):
        cdse.weights(c, torch.ones(1, 13, dtype=torch.bool))
    with pytest.raises(ValueError, match="O=94"):
        InverseCDSE()(torch.randn(1, 90, T), c)
    with pytest.raises(ValueError, match="target_positions"):
        CDSE(target_positions=torch.zeros(5, 2))
    with pytest.raises(ValueError, match="same length"):
        pad_montages([(torch.randn(3, 10), c[:3]), (torch.randn(3, 11), c[:3])])
    with pytest.raises(ValueError, match="same C"):
        pad_montages([(torch.randn(3, 10), c[:4])])


def test_dtype_follows_the_module(montages):
    """A .double() module (used to check fused vs reference paths at 1e-9) computes in float64,
    whatever dtype the coords arrive in; pad_montages keeps the samples' dtype."""
    m = CDSE().double()
    c64 = montages[1][1].double()
    W = m.weights(c64.numpy())
    assert W.dtype == torch.float64
    torch.testing.assert_close(W, m.weights(c64.float()), rtol=0, atol=1e-7)
    x, coords, _ = pad_montages([(montages[2][0].double(), montages[2][1].double())])
    assert x.dtype == coords.dtype == torch.float64
    assert m(x, coords).dtype == torch.float64
