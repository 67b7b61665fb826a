"""Mamba2's gated RMSNorm: its plain-PyTorch reference and the one call a layer makes.

Per group of ``group_size`` consecutive channels (mamba's `rms_norm_ref`):

    norm_before_gate=False:  out = rmsnorm(x * silu(z)) * w
    norm_before_gate=True:   out = rmsnorm(x) * w * silu(z)

`rms_norm_gated` runs it on a resolved backend: on "triton" our two kernels (`samba.ops.triton.norm`, several rows
per program) when ``KernelConfig.triton_norm``, else mamba_ssm's `rmsnorm_fn` when importable, else the reference;
on "mamba_ssm" mamba_ssm's kernel; on "torch" the reference (on CPU without autograd `gated_rms_norm_lean`, the same
computation in fewer passes).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .config import KernelConfig
from .upstream import mamba_ssm_kernels

__all__ = ["gated_rms_norm", "gated_rms_norm_lean", "rms_norm_gated"]


def gated_rms_norm(x: Tensor, z: Tensor | None, weight: Tensor, eps: float, group_size: int,
                   norm_before_gate: bool) -> Tensor:
    """The reference. x, z: (..., d); weight: (d,); groups of `group_size` channels normalised separately.
    Computed in at least float32; returns x's dtype."""
    dtype = x.dtype
    work = torch.promote_types(dtype, torch.float32)
    x = x.to(work)
    if z is not None:
        z = z.to(work)
        if not norm_before_gate:
            x = x * F.silu(z)
    xg = x.unflatten(-1, (-1, group_size))  # (..., groups, group_size)
    rstd = torch.rsqrt(xg.square().mean(dim=-1, keepdim=True) + eps)
    out = (xg * rstd).flatten(-2) * weight.to(work)
    if z is not None and norm_before_gate:
        out = out * F.silu(z)
    return out.to(dtype)


def gated_rms_norm_lean(x: Tensor, z: Tensor | None, weight: Tensor, eps: float, group_size: int,
                        norm_before_gate: bool) -> Tensor:
    """`gated_rms_norm` for inference (no autograd) in fewer passes: the gate in place on one new buffer and the
    mean square from ``vector_norm`` (no squared copy). On a 2-core CPU the reference's six full-size temporaries
    are memory-bound passes; same result within float32 rounding (tests/ops/test_norm.py)."""
    dtype = x.dtype
    work = torch.promote_types(dtype, torch.float32)
    with torch.no_grad():
        if z is not None and not norm_before_gate:
            out = F.silu(z.to(work)).mul_(x)  # (..., d) = x * silu(z)
        else:
            out = x.to(work, copy=True)
        xg = out.unflatten(-1, (-1, group_size))  # (..., groups, group_size), a view
        ms = torch.linalg.vector_norm(xg, dim=-1, keepdim=True).square_().div_(group_size)  # (..., groups, 1)
        xg.mul_(ms.add_(eps).rsqrt_())
        out.mul_(weight.to(work))
        if z is not None and norm_before_gate:
            out.mul_(F.silu(z.to(work)))
    return out.to(dtype)


def rms_norm_gated(x: Tensor, z: Tensor | None, weight: Tensor, eps: float, group_size: int,
                   norm_before_gate: bool, backend: str, kernels: KernelConfig) -> Tensor:
    """`gated_rms_norm` on a resolved backend ("torch" | "triton" | "mamba_ssm"); x, z (..., d) -> (..., d)."""
    if backend == "triton" and kernels.triton_norm and x.is_cuda and x.dtype != torch.float64:
        from .triton.norm import gated_rms_norm_triton

        return gated_rms_norm_triton(x, z, weight, eps, group_size, norm_before_gate, kernels=kernels)
    if backend in ("triton", "mamba_ssm"):
        upstream = mamba_ssm_kernels()
        if upstream is not None and upstream.rmsnorm_fn is not None:
            from .upstream import apply_autotune

            apply_autotune(kernels.autotune)
            return upstream.rmsnorm_fn(x, weight, None, z=z, eps=eps, group_size=group_size,
                                       norm_before_gate=norm_before_gate)
    if not x.is_cuda and not (torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, z, weight))):
        return gated_rms_norm_lean(x, z, weight, eps, group_size, norm_before_gate)  # CPU inference
    return gated_rms_norm(x, z, weight, eps, group_size, norm_before_gate)
