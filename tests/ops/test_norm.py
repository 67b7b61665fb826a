"""The gated RMSNorm's CPU inference form against the reference."""

import pytest
import torch

from samba.ops import KernelConfig, rms_norm_gated
from samba.ops.norm import gated_rms_norm, gated_rms_norm_lean


@pytest.mark.parametrize("norm_before_gate", [False, True])
@pytest.mark.parametrize("with_z", [False, True])
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-12), (torch.bfloat16, 2e-2)])
def test_lean_equals_reference(norm_before_gate, with_z, dtype, tol):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 50, 64, generator=gen).to(dtype)
    z = torch.randn(2, 50, 64, generator=gen).to(dtype) if with_z else None
    w = torch.rand(64, generator=gen).to(dtype) + 0.5
    ref = gated_rms_norm(x, z, w, 1e-5, 16, norm_before_gate)
    out = gated_rms_norm_lean(x, z, w, 1e-5, 16, norm_before_gate)
    assert out.dtype == ref.dtype
    torch.testing.assert_close(out, ref, rtol=tol, atol=tol)


def test_dispatch_keeps_the_reference_under_autograd():
    x = torch.randn(3, 8, requires_grad=True)
    out = rms_norm_gated(x, torch.randn(3, 8), torch.ones(8), 1e-5, 4, False, "torch", KernelConfig())
    out.sum().backward()  # the lean form is no_grad: a gradient here means the reference ran
    assert x.grad is not None
