"""Time-chunked inference (samba.nn.time_chunks): chunk by chunk, carrying the conv tail and the SSM state, equals
the one-call path; automatic above a size, never when training."""

import pytest
import torch

from samba import SAMBA, SAMBAConfig
from samba.nn import DiffMamba, Mamba2
from samba.nn import time_chunks
from samba.nn.time_chunks import time_chunk_steps, time_chunking
from samba.ops import KernelConfig

TORCH = KernelConfig(backend="torch")
TOL = dict(rtol=1e-4, atol=1e-5)  # float32; the scan's sums are grouped differently across chunk boundaries


@pytest.mark.parametrize("steps", [64, 100, 257])
@pytest.mark.parametrize("d_conv", [2, 4])
def test_mamba2_chunked_equals_one_call(steps, d_conv):
    torch.manual_seed(0)
    layer = Mamba2(16, d_state=8, d_conv=d_conv, expand=4, headdim=16, chunk_size=32, kernels=TORCH).eval()
    u = torch.randn(2, 1000, 16)
    with torch.no_grad(), time_chunking(0):
        ref = layer(u)
    with torch.no_grad(), time_chunking(steps):
        out = layer(u)
    torch.testing.assert_close(out, ref, **TOL)


@pytest.mark.parametrize("projections", ["einsum", "dense"])
def test_diff_mamba_chunked_equals_one_call(projections):
    torch.manual_seed(0)
    layer = DiffMamba(32, head_dim=16, d_state=8, d_conv=2, expand=2, headdim=16, kernels=TORCH,
                      projections=projections).eval()
    u = torch.randn(2, 700, 32)
    with torch.no_grad(), time_chunking(0):
        ref = layer(u)
    with torch.no_grad(), time_chunking(96):
        out = layer(u)
    torch.testing.assert_close(out, ref, **TOL)


def test_samba_encode_and_forward_chunked_equal_one_call():
    torch.manual_seed(0)
    model = SAMBA(SAMBAConfig(), kernels=TORCH).eval()
    x = torch.randn(1, 19, 4000)  # a few thousand samples; 4000 is not a multiple of the chunk
    coords = torch.randn(19, 3) * 0.08
    with torch.no_grad():
        z_ref = model.encode(x, coords, time_chunk=0)
        z = model.encode(x, coords, time_chunk=128)
        y_ref = model(x, coords, time_chunk=0)
        y = model(x, coords, time_chunk=128)
    assert z.shape == (1, 128, 500)
    torch.testing.assert_close(z, z_ref, **TOL)
    torch.testing.assert_close(y, y_ref, **TOL)


def test_chunked_gradients_match():
    """An explicit time_chunk also works under autograd (same gradients), though only inference is automatic."""
    torch.manual_seed(0)
    layer = Mamba2(16, d_state=8, d_conv=2, expand=4, headdim=16, chunk_size=32, kernels=TORCH)
    u = torch.randn(1, 300, 16, requires_grad=True)
    with time_chunking(0):
        (g_ref,) = torch.autograd.grad(layer(u).square().sum(), u)
    with time_chunking(64):
        (g,) = torch.autograd.grad(layer(u).square().sum(), u)
    torch.testing.assert_close(g, g_ref, **TOL)


def test_automatic_only_under_inference_and_above_the_size(monkeypatch):
    monkeypatch.setattr(time_chunks, "CPU_AUTO_ELEMENTS", 1000 * 64)
    u = torch.zeros(1, 4096, 8)
    with torch.no_grad():
        assert time_chunk_steps(u, 64) == 768  # 1000 steps fit, rounded down to whole 256-step blocks
        assert time_chunk_steps(u[:, :1000], 64) is None  # small: one call
        with time_chunking(0):
            assert time_chunk_steps(u, 64) is None
        with time_chunking(512):
            assert time_chunk_steps(u, 64) == 512
    assert time_chunk_steps(u, 64) is None  # training: one call


def test_bad_time_chunk_is_a_clear_error():
    with pytest.raises(ValueError, match="time_chunk"):
        with time_chunking(-1):
            pass
