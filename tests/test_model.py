"""SAMBA U-Net: shapes, montage independence, fused == reference path, bad input."""
import pytest
import torch

from samba import SAMBA, SAMBAConfig
from samba.montage import DEVICE_PRESETS, positions
from samba.nn.cdse import pad_montages

MUSE = list(DEVICE_PRESETS["muse"])
EPOC = list(DEVICE_PRESETS["emotiv_epoc"])


def small_cfg(**kw):
    """The paper's architecture with a smaller SSM, for fast CPU tests."""
    base = dict(expand=2, d_state=8, chunk_size=16, backend="torch")
    base.update(kw)
    return SAMBAConfig(**base)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return SAMBA(small_cfg()).eval()


def test_default_parameter_count():
    n = SAMBA(SAMBAConfig()).num_parameters()
    assert 0.95e6 < n < 1.15e6, n  # the paper reports about 1.06 M


@pytest.mark.parametrize("C,T", [(1, 8), (4, 100), (14, 256), (64, 131)])
def test_shapes_any_montage_any_length(model, C, T):
    names = (list(DEVICE_PRESETS["eegmmidb"]) if C == 64 else EPOC if C == 14 else MUSE)[:C]
    coords = torch.from_numpy(positions(names))
    x = torch.randn(2, C, T)
    with torch.no_grad():
        y = model(x, coords)
        z = model.encode(x, coords)
    assert y.shape == (2, C, T)
    assert z.shape == (2, model.cfg.bottleneck_dim, -(-T // 8))
    assert torch.isfinite(y).all()
    w = model.spatial_weights(coords)
    assert w.shape == (len(model.target_channels), C)
    torch.testing.assert_close(w.sum(1), torch.ones(w.shape[0]))


def test_fused_equals_reference_path():
    torch.manual_seed(1)
    ref = SAMBA(small_cfg(fuse_spatial=False)).double().eval()
    fast = SAMBA(small_cfg(fuse_spatial=True)).double().eval()
    fast.load_state_dict(ref.state_dict())
    coords = torch.from_numpy(positions(EPOC)).double()
    x = torch.randn(3, 14, 96, dtype=torch.float64)
    torch.testing.assert_close(fast(x, coords), ref(x, coords), rtol=1e-9, atol=1e-9)
    # per-sample montages + padding mask go through the grouped-conv branch
    xs = [torch.randn(14, 96, dtype=torch.float64), torch.randn(4, 96, dtype=torch.float64)]
    cs = [torch.from_numpy(positions(EPOC)).double(), torch.from_numpy(positions(MUSE)).double()]
    xb, cb, mb = pad_montages(list(zip(xs, cs)))
    torch.testing.assert_close(fast(xb, cb, mb), ref(xb, cb, mb), rtol=1e-9, atol=1e-9)


def test_mixed_montage_batch_equals_each_alone(model):
    torch.manual_seed(2)
    xs = [torch.randn(14, 64), torch.randn(4, 64)]
    cs = [torch.from_numpy(positions(EPOC)), torch.from_numpy(positions(MUSE))]
    xb, cb, mb = pad_montages(list(zip(xs, cs)))
    with torch.no_grad():
        yb = model(xb, cb, mb)
        for i, (x, c) in enumerate(zip(xs, cs)):
            alone = model(x[None], c)[0]
            torch.testing.assert_close(yb[i, : x.shape[0]], alone, rtol=1e-4, atol=1e-5)
            assert (yb[i, x.shape[0]:] == 0).all()  # padding channels produce nothing


def test_gradients_reach_every_parameter(model):
    m = SAMBA(small_cfg())
    coords = torch.from_numpy(positions(MUSE))
    y = m(torch.randn(2, 4, 64), coords)
    y.square().mean().backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, missing


def test_bad_input_is_rejected_clearly(model):
    coords = torch.from_numpy(positions(MUSE))
    with pytest.raises(ValueError, match="at least 8"):
        model(torch.randn(1, 4, 7), coords)
    with pytest.raises(ValueError, match="NaN"):
        model(torch.full((1, 4, 16), float("nan")), coords)
    with pytest.raises(ValueError, match="coords"):
        model(torch.randn(1, 5, 16), coords)
    with pytest.raises(ValueError, match=r"\(B, C, T\)"):
        model(torch.randn(4, 16), coords)


def test_config_round_trip():
    cfg = SAMBAConfig(expand=4)
    assert SAMBAConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown"):
        SAMBAConfig.from_dict({"nope": 1})


def test_cpu_bf16_autocast_runs_and_stays_close():
    """Under CPU bf16 autocast the lean inference scan once failed ("Input dtypes must be the same" in baddbmm_):
    its products came out bf16 while its buffer was float32. The scan now runs in float32 whatever the autocast."""
    torch.manual_seed(0)
    m = SAMBA().eval()
    x, coords = torch.randn(2, 5, 256), torch.nn.functional.normalize(torch.randn(5, 3), dim=-1) * 0.09
    with torch.no_grad():
        ref = m(x, coords)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = m(x, coords)
    assert y.shape == ref.shape and torch.isfinite(y).all()
    assert float((y.float() - ref).abs().max() / ref.abs().max()) < 0.05
