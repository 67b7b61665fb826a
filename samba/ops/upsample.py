"""The decoder's skip join ``cat([skip, upsample2x(h)], dim=1)``: the reference, a stencil version, and the call the
model makes.

* `upsample2x_linear`: the decoder's x2 linear upsampling (``F.interpolate(mode="linear",
  align_corners=False)``). PyTorch's CUDA kernel gives each thread one output time step and loops over
  batch and channels (strided, uncoalesced); its backward scatters with atomics. Measured on an H200
  (batch 32 x 60 s train step, torch 2.11): ~1.2 ms per call forward and backward, ~7 ms of a step. For
  an exact factor of 2 the interpolation is a fixed two-tap stencil:

      out[2m]   = 0.75 h[m] + 0.25 h[m-1]      (h[-1] := h[0])
      out[2m+1] = 0.75 h[m] + 0.25 h[m+1]      (h[L] := h[L-1])

* `upsample_concat`: the skip join; on CUDA one Triton kernel each way (`samba.ops.triton.upsample`) instead of
  six passes (``KernelConfig.triton_upsample``); `upsample_concat_ref` is what it is tested against.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .config import KernelConfig

__all__ = ["upsample2x_linear", "upsample_linear", "upsample_concat", "upsample_concat_ref"]

DEFAULT = KernelConfig()


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


def upsample_concat(skip: Tensor, h: Tensor, impl: str = "auto", kernels: KernelConfig = DEFAULT) -> Tensor:
    """`upsample_concat_ref`, as one Triton kernel each way (`samba.ops.triton.upsample`) when ``impl`` is
    "triton", or "auto" with CUDA tensors, an exact x2 factor, no float64, Triton importable, a backend other than
    "torch" and ``kernels.triton_upsample``."""
    if impl == "auto":
        impl = "triton" if (skip.is_cuda and skip.shape[-1] == 2 * h.shape[-1] and torch.float64 not in
                            (skip.dtype, h.dtype) and kernels.triton_upsample and kernels.backend != "torch"
                            and _triton()) else "torch"
    if impl == "triton":
        from .triton.upsample import upsample_concat_triton

        return upsample_concat_triton(skip, h)
    if impl != "torch":
        raise ValueError(f"impl must be 'auto', 'triton' or 'torch', got {impl!r}")
    return upsample_concat_ref(skip, h)


def _triton() -> bool:
    from .backend import triton_available

    return triton_available()
