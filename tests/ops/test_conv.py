"""The causal depthwise conv + SiLU that CPU layers now run (shifted multiply-adds) against F.conv1d."""

import pytest
import torch

from samba.ops import causal_conv1d_silu, causal_conv1d_silu_ref, causal_depthwise_conv


@pytest.mark.parametrize("k", [1, 2, 4])
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
def test_taps_equal_reference_forward_and_backward(k, dtype, tol):
    gen = torch.Generator().manual_seed(k)
    wide = torch.randn(2, 40, 24, generator=gen, dtype=dtype)
    x = wide[..., 3:19].detach().requires_grad_(True)  # a strided view, as a split of in_proj's output is
    w = torch.randn(16, 1, k, generator=gen, dtype=dtype, requires_grad=True)
    b = torch.randn(16, generator=gen, dtype=dtype, requires_grad=True)
    g = torch.randn(2, 40, 16, generator=gen, dtype=dtype)
    ref = causal_conv1d_silu_ref(x, w, b)
    grads_ref = torch.autograd.grad((ref * g).sum(), (x, w, b))
    out = causal_conv1d_silu(x, w, b, impl="torch")
    grads = torch.autograd.grad((out * g).sum(), (x, w, b))
    torch.testing.assert_close(out, ref, rtol=tol, atol=tol)
    for a, r in zip(grads, grads_ref):
        torch.testing.assert_close(a, r, rtol=tol, atol=tol)


def test_cpu_layer_call_equals_reference():
    x = torch.randn(3, 30, 8)
    w, b = torch.randn(8, 1, 2), torch.randn(8)
    with torch.no_grad():
        torch.testing.assert_close(causal_depthwise_conv(x, w, b, "torch"), causal_conv1d_silu_ref(x, w, b))


def test_triton_conv_refuses_an_out_buffer_it_cannot_write():
    """``conv_fwd(out=...)`` writes into a slice of a wider buffer in the fused block's backward; a buffer of the
    wrong shape, dtype or channel stride is refused before any kernel runs."""
    from samba.ops.triton.conv import conv_fwd

    x = torch.randn(2, 16, 8)
    w = torch.randn(8, 2)
    strided = torch.empty(2, 8, 16).transpose(1, 2)  # (2, 16, 8) with channel stride 16
    for bad in (torch.empty(2, 16, 7), torch.empty(2, 16, 8, dtype=torch.float64), strided):
        with pytest.raises(ValueError, match="unit channel stride"):
            conv_fwd(x, w, None, out=bad)
