"""The gated RMSNorm's CPU inference and training forms against the reference."""

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


def test_dispatch_takes_the_training_form_under_autograd_on_cpu():
    x = torch.randn(3, 8, requires_grad=True)
    out = rms_norm_gated(x, torch.randn(3, 8), torch.ones(8), 1e-5, 4, False, "torch", KernelConfig())
    assert out.grad_fn.name() == "_GatedRMSNormTrainBackward"
    out.sum().backward()  # the lean form is no_grad: a gradient here means a differentiable form ran
    assert x.grad is not None


@pytest.mark.parametrize("norm_before_gate", [False, True])
@pytest.mark.parametrize("with_z", [False, True])
def test_cpu_training_form_equals_the_reference_and_its_gradients(norm_before_gate, with_z):
    """`_GatedRMSNormTrain` (the CPU training form, backward derived by hand) against autograd through the
    reference, float64: output and the gradients of x, z and the weight; and what the dispatch runs under autograd
    on CPU."""
    from samba.ops.norm import _GatedRMSNormTrain

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 9, 32, generator=gen, dtype=torch.float64, requires_grad=True)
    z = torch.randn(2, 9, 32, generator=gen, dtype=torch.float64, requires_grad=True) if with_z else None
    w = (torch.rand(32, generator=gen, dtype=torch.float64) + 0.5).requires_grad_()
    leaves = [t for t in (x, z, w) if t is not None]
    ref = gated_rms_norm(x, z, w, 1e-5, 8, norm_before_gate)
    g = torch.randn(ref.shape, generator=gen, dtype=torch.float64)
    want = torch.autograd.grad(ref, leaves, g)
    for f in (_GatedRMSNormTrain.apply, lambda *a: rms_norm_gated(*a, "torch", KernelConfig())):
        out = f(x, z, w, 1e-5, 8, norm_before_gate)
        torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
        for got, exp in zip(torch.autograd.grad(out, leaves, g), want):
            torch.testing.assert_close(got, exp, rtol=1e-10, atol=1e-12)


def test_cpu_training_form_keeps_the_dtypes():
    from samba.ops.norm import _GatedRMSNormTrain

    x = torch.randn(4, 16, dtype=torch.bfloat16, requires_grad=True)
    z = torch.randn(4, 16, dtype=torch.bfloat16)  # no gradient asked for z
    w = torch.ones(16, requires_grad=True)
    out = _GatedRMSNormTrain.apply(x, z, w, 1e-5, 8, False)
    assert out.dtype == torch.bfloat16
    dx, dw = torch.autograd.grad(out.float().sum(), (x, w))
    assert dx.dtype == torch.bfloat16 and dw.dtype == torch.float32
    ref = torch.autograd.grad(gated_rms_norm(x, z, w, 1e-5, 8, False).float().sum(), (x, w))
    torch.testing.assert_close(dx.float(), ref[0].float(), rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(dw, ref[1], rtol=2e-2, atol=2e-2)
