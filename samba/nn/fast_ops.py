"""Two small ops of the SAMBA step that PyTorch's stock CUDA kernels run badly, rewritten as coalesced
element-wise passes. Each has its plain-PyTorch reference beside it and a test comparing them.

* `upsample2x_linear`: the decoder's x2 linear upsampling (``F.interpolate(mode="linear",
  align_corners=False)``). PyTorch's CUDA kernel gives each thread one output time step and loops over
  batch and channels (strided, uncoalesced); its backward scatters with atomics. Measured on an H200
  (batch 32 x 60 s train step, torch 2.11): ~1.2 ms per call forward and backward, ~7 ms of a step. For
  an exact factor of 2 the interpolation is a fixed two-tap stencil:

      out[2m]   = 0.75 h[m] + 0.25 h[m-1]      (h[-1] := h[0])
      out[2m+1] = 0.75 h[m] + 0.25 h[m+1]      (h[L] := h[L-1])

* `upsample_concat`: the decoder's skip join ``cat([skip, upsample(h)], 1)``; on CUDA one Triton kernel each
  way (`samba.nn.triton_upsample`) instead of six passes (predicted ~5-8 % of an inference step, not yet
  measured on a GPU: docs/performance_log.md).

* `causal_conv1d_silu`: Mamba2's causal depthwise convolution + SiLU, on the ``(B, L, channels)``
  layout the layer already has (no transposes, no depthwise-conv kernel). For a kernel of k taps it
  is k multiply-adds of time-shifted views; the backward recomputes the pre-activation instead of
  storing it (one saved tensor: the input, a view of in_proj's output). On CUDA the same function
  runs as two fused Triton kernels (`samba.nn.triton_conv`) when Triton is importable.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["upsample2x_linear", "upsample_linear", "upsample_concat", "upsample_concat_ref", "causal_conv1d_silu",
           "causal_conv1d_silu_ref"]


def upsample2x_linear(h: Tensor) -> Tensor:
    """(..., L) -> (..., 2L), equal to ``F.interpolate(h, scale_factor=2, mode="linear", align_corners=False)``."""
    prev = torch.cat([h[..., :1], h[..., :-1]], dim=-1)  # h[m-1], edge replicated
    nxt = torch.cat([h[..., 1:], h[..., -1:]], dim=-1)  # h[m+1], edge replicated
    even = torch.lerp(h, prev, 0.25)  # 0.75 h + 0.25 h[m-1]
    odd = torch.lerp(h, nxt, 0.25)
    return torch.stack([even, odd], dim=-1).flatten(-2)  # interleave: (..., L, 2) -> (..., 2L)


def upsample_linear(h: Tensor, size: int) -> Tensor:
    """Linear upsampling of ``h (B, C, L)`` to ``size`` steps: the stencil for x2 on CUDA, else F.interpolate."""
    if h.is_cuda and size == 2 * h.shape[-1]:
        return upsample2x_linear(h)
    return F.interpolate(h, size=size, mode="linear", align_corners=False)


def upsample_concat_ref(skip: Tensor, h: Tensor) -> Tensor:
    """The decoder's skip join: ``cat([skip (B, Cs, T), upsample_linear(h (B, Cu, L), T)], dim=1)``."""
    return torch.cat([skip, upsample_linear(h, skip.shape[-1])], dim=1)


def upsample_concat(skip: Tensor, h: Tensor, impl: str = "auto") -> Tensor:
    """`upsample_concat_ref`, as one Triton kernel each way (`samba.nn.triton_upsample`) when ``impl`` is
    "triton", or "auto" with CUDA tensors, an exact x2 factor, no float64, Triton importable and
    SAMBA_TRITON_UPCAT not set to 0."""
    if impl == "auto":
        impl = "triton" if (skip.is_cuda and skip.shape[-1] == 2 * h.shape[-1] and torch.float64 not in
                            (skip.dtype, h.dtype) and _triton_enabled("SAMBA_TRITON_UPCAT", "triton_upsample")) \
            else "torch"
    if impl == "triton":
        from .triton_upsample import upsample_concat_triton

        return upsample_concat_triton(skip, h)
    if impl != "torch":
        raise ValueError(f"impl must be 'auto', 'triton' or 'torch', got {impl!r}")
    return upsample_concat_ref(skip, h)


def _taps(x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
    """Causal depthwise conv on (B, L, ch): out[t] = b + sum_j w[:, j] * x[t - (k - 1 - j)]."""
    k = w.shape[1]
    out = x * w[:, k - 1] if b is None else torch.addcmul(b, x, w[:, k - 1])
    for j in range(k - 1):
        s = k - 1 - j  # tap j looks s steps back
        out[:, s:] += x[:, :-s] * w[:, j]
    return out


class _CausalConv1dSiLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        w = weight.to(x.dtype)
        b = None if bias is None else bias.to(x.dtype)
        ctx.save_for_backward(x, weight, bias)
        return F.silu(_taps(x, w, b))

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


def causal_conv1d_silu(x: Tensor, weight: Tensor, bias: Tensor | None, impl: str = "auto") -> Tensor:
    """SiLU(causal depthwise conv) over time. x: (B, L, ch) any strides; weight (ch, 1, k) or (ch, k) -> (B, L, ch).

    ``impl``: "triton" (two fused kernels, `samba.nn.triton_conv`), "torch" (shifted multiply-adds here) or
    "auto": Triton for CUDA tensors (not float64) when it is importable, unless SAMBA_TRITON_CONV=0 is set.
    """
    w = weight.reshape(weight.shape[0], -1)
    if x.shape[-1] != w.shape[0]:
        raise ValueError(f"x has {x.shape[-1]} channels, the conv weight {w.shape[0]}")
    if impl == "auto":  # the kernels accumulate in float32: float64 stays on the exact torch path
        impl = "triton" if x.is_cuda and x.dtype != torch.float64 and _triton_conv_enabled() else "torch"
    if impl == "triton":
        from .triton_conv import causal_conv1d_silu_triton

        return causal_conv1d_silu_triton(x, w, bias)
    if impl != "torch":
        raise ValueError(f"impl must be 'auto', 'triton' or 'torch', got {impl!r}")
    return _CausalConv1dSiLU.apply(x, w, bias)


def _triton_enabled(env: str, module: str) -> bool:
    """Triton importable for samba.nn.<module>, and not switched off by the environment variable ``env`` = 0."""
    import importlib
    import os

    if os.environ.get(env, "1") == "0":
        return False
    return importlib.import_module(f"{__package__}.{module}").available()


def _triton_conv_enabled() -> bool:
    return _triton_enabled("SAMBA_TRITON_CONV", "triton_conv")


def causal_conv1d_silu_ref(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """The reference: ``F.conv1d`` with left padding k-1 on the (B, ch, L) transpose, then SiLU."""
    w = weight.reshape(weight.shape[0], 1, -1)
    k = w.shape[-1]
    out = F.conv1d(x.transpose(1, 2), w.to(x.dtype), None if bias is None else bias.to(x.dtype),
                   padding=k - 1, groups=w.shape[0])[..., :x.shape[1]]
    return F.silu(out).transpose(1, 2)
