"""Mamba2's causal depthwise convolution + SiLU over time: the reference, a lean PyTorch version, and the one call
a layer makes.

`causal_conv1d_silu` works on the ``(B, L, channels)`` layout the layer already has (no transposes, no
depthwise-conv kernel). For a kernel of k taps it is k multiply-adds of time-shifted views; the backward recomputes
the pre-activation instead of storing it (one saved tensor: the input, a view of in_proj's output). With
``impl="triton"`` the same function runs as two fused Triton kernels (`samba.ops.triton.conv`).
`causal_conv1d_silu_ref` (``F.conv1d`` on the transpose) is what both are tested against.

`causal_depthwise_conv` is what a Mamba2 layer calls on a resolved backend: "triton" our kernels when
``KernelConfig.triton_conv`` (else the PyTorch version); "mamba_ssm" the `causal_conv1d` CUDA extension when
importable (else the PyTorch version); "torch" the PyTorch version.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .config import KernelConfig
from .upstream import mamba_ssm_kernels

__all__ = ["causal_conv1d_silu", "causal_conv1d_silu_ref", "causal_depthwise_conv"]

DEFAULT = KernelConfig()


def _taps(x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
    """Causal depthwise conv on (B, L, ch): out[t] = b + sum_j w[:, j] * x[t - (k - 1 - j)]."""
    k = w.shape[1]
    out = x * w[:, k - 1] if b is None else torch.addcmul(b, x, w[:, k - 1])
    for j in range(k - 1):
        s = k - 1 - j  # tap j looks s steps back
        out[:, s:].addcmul_(x[:, :-s], w[:, j])  # no (B, L, ch) temporary
    return out


class _CausalConv1dSiLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        w = weight.to(x.dtype)
        b = None if bias is None else bias.to(x.dtype)
        ctx.save_for_backward(x, weight, bias)
        return F.silu(_taps(x, w, b), inplace=True)  # the backward recomputes the pre-activation from x

    @staticmethod
    def backward(ctx, g: Tensor):
        x, weight, bias = ctx.saved_tensors
        w = weight.to(x.dtype)
        b = None if bias is None else bias.to(x.dtype)
        k = w.shape[1]
        pre = _taps(x, w, b)  # recomputed, not stored
        dpre = torch.ops.aten.silu_backward(g.to(x.dtype), pre)  # (B, L, ch)
        del pre
        acc = torch.promote_types(x.dtype, torch.float32)  # reductions over B*L in at least float32
        dx = dpre * w[:, k - 1]
        dw = torch.empty_like(weight)
        dw[:, k - 1] = (dpre * x).sum((0, 1), dtype=acc).to(weight.dtype)
        for j in range(k - 1):
            s = k - 1 - j
            dx[:, :-s] += dpre[:, s:] * w[:, j]
            dw[:, j] = (dpre[:, s:] * x[:, :-s]).sum((0, 1), dtype=acc).to(weight.dtype)
        db = None if bias is None else dpre.sum((0, 1), dtype=acc).to(bias.dtype)
        return dx, dw, db


def causal_conv1d_silu(x: Tensor, weight: Tensor, bias: Tensor | None, impl: str = "auto",
                       kernels: KernelConfig = DEFAULT) -> Tensor:
    """SiLU(causal depthwise conv) over time. x: (B, L, ch) any strides; weight (ch, 1, k) or (ch, k) -> (B, L, ch).

    ``impl``: "triton" (two fused kernels, `samba.ops.triton.conv`, launched as ``kernels`` says), "torch"
    (shifted multiply-adds here) or "auto": Triton for CUDA tensors (not float64) when it is importable and
    ``kernels.triton_conv``.
    """
    w = weight.reshape(weight.shape[0], -1)
    if x.shape[-1] != w.shape[0]:
        raise ValueError(f"x has {x.shape[-1]} channels, the conv weight {w.shape[0]}")
    if impl == "auto":  # the kernels accumulate in float32: float64 stays on the exact torch path
        impl = "triton" if x.is_cuda and x.dtype != torch.float64 and kernels.triton_conv and _triton() else "torch"
    if impl == "triton":
        from .triton.conv import causal_conv1d_silu_triton

        return causal_conv1d_silu_triton(x, w, bias, kernels=kernels)
    if impl != "torch":
        raise ValueError(f"impl must be 'auto', 'triton' or 'torch', got {impl!r}")
    return _CausalConv1dSiLU.apply(x, w, bias)


def causal_conv1d_silu_ref(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """The reference: ``F.conv1d`` with left padding k-1 on the (B, ch, L) transpose, then SiLU."""
    w = weight.reshape(weight.shape[0], 1, -1)
    k = w.shape[-1]
    out = F.conv1d(x.transpose(1, 2), w.to(x.dtype), None if bias is None else bias.to(x.dtype),
                   padding=k - 1, groups=w.shape[0])[..., :x.shape[1]]
    return F.silu(out).transpose(1, 2)


def _triton() -> bool:
    from .backend import triton_available

    return triton_available()


def causal_depthwise_conv(xBC: Tensor, weight: Tensor, bias: Tensor | None, backend: str,
                          kernels: KernelConfig = DEFAULT) -> Tensor:
    """Causal depthwise conv1d + SiLU over time on a resolved backend. xBC: (B, L, ch); weight: (ch, 1, k)
    -> (B, L, ch)."""
    k = weight.shape[-1]
    if backend == "mamba_ssm":
        upstream = mamba_ssm_kernels()
        if upstream is not None and upstream.causal_conv1d_fn is not None and 2 <= k <= 4:
            return upstream.causal_conv1d_fn(xBC.transpose(1, 2), weight.squeeze(1), bias=bias,
                                             activation="silu").transpose(1, 2)
    # On (B, L, ch): no transposes, no depthwise-conv kernel. The triton backend runs our fused kernels on CUDA
    # (when switched on); everything else the PyTorch shifted multiply-adds, so the reference stays PyTorch end to
    # end. On CPU these beat F.conv1d on the transpose: oneDNN's depthwise conv plus the two layout copies took
    # 32 of a SAMBA Mamba2 layer's 200 ms (2-core AMD EPYC, 3,840 steps x 544 channels, k=2); float64 there
    # even fell back to one conv per channel.
    impl = "auto" if backend == "triton" and xBC.is_cuda else "torch"
    return causal_conv1d_silu(xBC, weight, bias, impl=impl, kernels=kernels)
