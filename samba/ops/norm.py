"""Mamba2's gated RMSNorm: its plain-PyTorch reference and the one call a layer makes.

Per group of ``group_size`` consecutive channels (mamba's `rms_norm_ref`):

    norm_before_gate=False:  out = rmsnorm(x * silu(z)) * w
    norm_before_gate=True:   out = rmsnorm(x) * w * silu(z)

`rms_norm_gated` runs it on a resolved backend: on "triton" our two kernels (`samba.ops.triton.norm`, several rows
per program) when ``KernelConfig.triton_norm``, else mamba_ssm's `rmsnorm_fn` when importable, else the reference;
on "mamba_ssm" mamba_ssm's kernel; on "torch" the reference (on CPU without autograd `gated_rms_norm_lean`, the same
computation in fewer passes; on CPU under autograd `_GatedRMSNormTrain`, that forward with a backward derived by
hand).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

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


def _normalised(x: Tensor, z: Tensor | None, eps: float, group_size: int, norm_before_gate: bool):
    """The lean forms' shared first half, without autograd: n = u / rms(u) per group for u = x * silu(z) (gate
    first) or x, built in one new buffer of at least float32 (the gate in place, the mean square from
    ``vector_norm``: no squared copy). Returns n (..., d) and 1 / rms (..., groups, 1)."""
    work = torch.promote_types(x.dtype, torch.float32)
    with torch.no_grad():
        if z is not None and not norm_before_gate:
            n = F.silu(z.to(work)).mul_(x)  # (..., d) = x * silu(z)
        else:
            n = x.to(work, copy=True)
        ng = n.unflatten(-1, (-1, group_size))  # (..., groups, group_size), a view
        rstd = torch.linalg.vector_norm(ng, dim=-1, keepdim=True).square_().div_(group_size).add_(eps).rsqrt_()
        ng.mul_(rstd)
    return n, rstd


def gated_rms_norm_lean(x: Tensor, z: Tensor | None, weight: Tensor, eps: float, group_size: int,
                        norm_before_gate: bool) -> Tensor:
    """`gated_rms_norm` for inference (no autograd) in fewer passes (`_normalised`, then the weight and the gate in
    place). On a 2-core CPU the reference's six full-size temporaries are memory-bound passes; same result within
    float32 rounding (tests/ops/test_norm.py)."""
    out, _ = _normalised(x, z, eps, group_size, norm_before_gate)
    with torch.no_grad():
        out.mul_(weight.to(out.dtype))
        if z is not None and norm_before_gate:
            out.mul_(F.silu(z.to(out.dtype)))
    return out.to(x.dtype)


class _GatedRMSNormTrain(torch.autograd.Function):
    """`gated_rms_norm` for CPU training: the same forward in fewer passes (`_normalised`, as the lean form) and a
    backward derived by hand, so autograd keeps none of the reference's six full-size temporaries and runs none of
    their backward passes. With n = u * rstd the normalised input of each group, u = x * silu(z) (gate first) or x:

        dn = dout * w (* silu(z) with the gate after);  dw = sum over rows of dout * n (* silu(z))
        du = rstd * (dn - n * mean_group(dn * n))
        dx = du * silu(z) (gate first) or du;  dz = du * x * silu'(z) (gate first) or dout * n * w * silu'(z)

    with silu'(z) = s + silu(z) (1 - s), s = sigmoid(z). Saves n, rstd, x and z. Once differentiable: a second
    derivative raises (the reference, which the CUDA torch backend keeps, has them)."""

    @staticmethod
    def forward(ctx, x, z, weight, eps, group_size, norm_before_gate):
        n, rstd = _normalised(x, z, eps, group_size, norm_before_gate)  # (..., d), (..., groups, 1)
        out = n * weight.to(n.dtype)
        if z is not None and norm_before_gate:
            out.mul_(F.silu(z.to(n.dtype)))
        ctx.save_for_backward(n, rstd, x, z, weight)
        ctx.group_size, ctx.norm_before_gate = group_size, norm_before_gate
        return out.to(x.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, dout):
        n, rstd, x, z, weight = ctx.saved_tensors
        gs, work = ctx.group_size, n.dtype
        d = n.shape[-1]
        dout = dout.to(work)
        w = weight.to(work)
        sig = torch.sigmoid(z.to(work)) if z is not None else None
        g = z.to(work) * sig if z is not None else None  # silu(z)
        gate_after = z is not None and ctx.norm_before_gate
        dpre = dout * g if gate_after else dout  # the gradient of n * w
        dw = (dpre * n).reshape(-1, d).sum(0)
        dn = dpre * w
        dng = dn.unflatten(-1, (-1, gs))
        ng = n.unflatten(-1, (-1, gs))
        c = (dng * ng).mean(-1, keepdim=True)  # (..., groups, 1)
        du = dng.sub_(ng * c).mul_(rstd).flatten(-2)  # in dn's buffer
        dx = dz = None
        if z is None:
            dx = du
        elif not ctx.norm_before_gate:  # u = x * silu(z)
            dx = du * g
            if ctx.needs_input_grad[1]:
                dz = (1 - sig).mul_(g).add_(sig).mul_(du).mul_(x)
        else:  # out = n * w * silu(z)
            dx = du
            if ctx.needs_input_grad[1]:
                dz = (1 - sig).mul_(g).add_(sig).mul_(dout).mul_(n).mul_(w)
        return (dx.to(x.dtype) if ctx.needs_input_grad[0] else None,
                dz.to(z.dtype) if dz is not None else None,
                dw.to(weight.dtype) if ctx.needs_input_grad[2] else None, None, None, None)


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
    if not x.is_cuda:  # CPU training
        return _GatedRMSNormTrain.apply(x, z, weight, eps, group_size, norm_before_gate)
    return gated_rms_norm(x, z, weight, eps, group_size, norm_before_gate)
