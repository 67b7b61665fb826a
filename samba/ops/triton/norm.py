"""Mamba2's gated RMSNorm as two Triton kernels, several rows per program.

What it replaces: mamba_ssm's `_layer_norm_bwd` walks its rows one at a time (each program loops over
M / (2 x SM count) rows of 512 values, one 1-kB row in flight per program), so at the full-rate layer it runs
far below the memory bandwidth: 1.3 ms per call on an H200 at batch 64 x 60 s, the largest single kernel of
the train step (results/archive/profiles/kernels_h200_train_b64_ef126e4.txt). Here a program holds a (BLOCK_M, group)
tile, so tens of rows are in flight per program; the backward keeps per-program partial sums of the weight
gradient (reduced in float32 by torch afterwards: deterministic, no atomics).

Semantics are those of the reference `samba.ops.norm.gated_rms_norm` (mamba's `rms_norm_ref`), per group of
`group_size` consecutive channels:
    norm_before_gate=False:  out = rmsnorm(x * silu(z)) * w
    norm_before_gate=True:   out = rmsnorm(x) * w * silu(z)
Rows are (M, N) with unit channel stride and any row stride (a slice of in_proj's output is fine for z);
float32 math, output in x's dtype. `gated_rms_norm_fwd` / `gated_rms_norm_bwd` are also called directly by
the fused Mamba2 block (`samba.ops.mamba_block`), which writes dz straight into its input-gradient buffer.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..config import KernelConfig, launch_options
from . import available, rows, tl, triton

__all__ = ["available", "gated_rms_norm_triton", "gated_rms_norm_fwd", "gated_rms_norm_bwd"]

DEFAULT = KernelConfig()

TILE = 8192  # values per (BLOCK_M, group) tile of the forward (H100, batch 64 x 60 s: 1.33 ms for SAMBA's four
#              norms vs 1.60 ms for mamba_ssm's one-row-per-program kernel)
BWD_TILE = 2048  # (KernelConfig.norm_backward_tiles) the backward holds ~10 tiles (plus their pointers) at once: at 8192 the fused block's train
#                  step went from 63 to 95 ms (H100, batch 64 x 60 s; ptxas: 7.7 kB spilled per thread). At
#                  2048 (4 x 512) ptxas reports no spills, and the fused block with it (and mamba_ssm's scan)
#                  measured 104.7 vs 108.5 ms layer by layer (H200, batch 128 x 60 s); on by
#                  default since then (KernelConfig.triton_norm=False turns it off).
BWD_ITERS = 8  # row blocks per backward program (fewer partial sums of dw)
# Alternatives (not yet measured) are KernelConfig settings: norm_backward_tiles = (tile, iters) and
# norm_backward_launch = (warps, stages[, maxnreg]).


if triton is not None:

    @triton.jit
    def _gnorm_fwd_kernel(X, Z, W, Y, RSTD, M, N, sx, sz, sy, eps,
                          HAS_Z: tl.constexpr, NORM_BEFORE_GATE: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr):
        g = tl.program_id(1)
        rows = tl.program_id(0) * BM + tl.arange(0, BM)
        cols = tl.arange(0, BN)
        mr, mc = rows < M, cols < N
        m = mr[:, None] & mc[None, :]
        r64 = rows[:, None].to(tl.int64)
        c = g * N + cols[None, :]
        x = tl.load(X + r64 * sx + c, mask=m, other=0.0).to(tl.float32)
        if HAS_Z:
            z = tl.load(Z + r64 * sz + c, mask=m, other=0.0).to(tl.float32)
            if not NORM_BEFORE_GATE:
                x = x * z * tl.sigmoid(z)
        rstd = 1.0 / tl.sqrt(tl.sum(x * x, axis=1) / N + eps)  # (BM,)
        w = tl.load(W + g * N + cols, mask=mc, other=0.0).to(tl.float32)
        y = x * rstd[:, None] * w[None, :]
        if HAS_Z and NORM_BEFORE_GATE:
            y = y * z * tl.sigmoid(z)
        tl.store(Y + r64 * sy + c, y.to(Y.dtype.element_ty), mask=m)
        tl.store(RSTD + g * M + rows, rstd, mask=mr)

    @triton.jit
    def _gnorm_bwd_kernel(X, Z, W, DY, DX, DZ, Y, RSTD, DWP, M, N, sx, sz, sdy, sdx, sdz, sy,
                          HAS_Z: tl.constexpr, NORM_BEFORE_GATE: tl.constexpr, RECOMPUTE: tl.constexpr, ITERS: tl.constexpr,
                          BM: tl.constexpr, BN: tl.constexpr):
        pid = tl.program_id(0)
        g = tl.program_id(1)
        cols = tl.arange(0, BN)
        mc = cols < N
        c = g * N + cols[None, :]
        w = tl.load(W + g * N + cols, mask=mc, other=0.0).to(tl.float32)
        dw = tl.zeros((BN,), dtype=tl.float32)
        for it in range(ITERS):
            rows = (pid * ITERS + it) * BM + tl.arange(0, BM)
            mr = rows < M
            m = mr[:, None] & mc[None, :]
            r64 = rows[:, None].to(tl.int64)
            x = tl.load(X + r64 * sx + c, mask=m, other=0.0).to(tl.float32)
            dy = tl.load(DY + r64 * sdy + c, mask=m, other=0.0).to(tl.float32)
            rstd = tl.load(RSTD + g * M + rows, mask=mr, other=0.0)
            if HAS_Z:
                z = tl.load(Z + r64 * sz + c, mask=m, other=0.0).to(tl.float32)
                sg = tl.sigmoid(z)
                if not NORM_BEFORE_GATE:
                    x_og = x
                    x = x_og * z * sg
            xhat = x * rstd[:, None]
            if HAS_Z and NORM_BEFORE_GATE:
                y = xhat * w[None, :]
                if RECOMPUTE:
                    tl.store(Y + r64 * sy + c, (y * z * sg).to(Y.dtype.element_ty), mask=m)
                dz = dy * y * sg * (1.0 + z * (1.0 - sg))
                tl.store(DZ + r64 * sdz + c, dz.to(DZ.dtype.element_ty), mask=m)
                dy = dy * z * sg
            elif RECOMPUTE:
                tl.store(Y + r64 * sy + c, (xhat * w[None, :]).to(Y.dtype.element_ty), mask=m)
            wdy = w[None, :] * dy
            c1 = tl.sum(xhat * wdy, axis=1) / N
            dx = (wdy - xhat * c1[:, None]) * rstd[:, None]
            dw += tl.sum(dy * xhat, axis=0)
            if HAS_Z and not NORM_BEFORE_GATE:
                dz = dx * x_og * sg * (1.0 + z * (1.0 - sg))
                tl.store(DZ + r64 * sdz + c, dz.to(DZ.dtype.element_ty), mask=m)
                dx = dx * z * sg
            tl.store(DX + r64 * sdx + c, dx.to(DX.dtype.element_ty), mask=m)
        tl.store(DWP + pid * (N * tl.num_programs(1)) + g * N + cols, dw, mask=mc)


def _block_rows(group: int, tile: int = TILE) -> tuple[int, int]:
    bn = triton.next_power_of_2(group)
    return max(1, min(64, tile // bn)), bn


def gated_rms_norm_fwd(x: Tensor, z: Tensor | None, weight: Tensor, eps: float, group_size: int,
                       norm_before_gate: bool, out: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """x, z: (M, N) rows (unit channel stride) -> (out (M, N) in x's dtype, rstd (N // group_size * M,) fp32)."""
    M, N = x.shape
    ngroups = N // group_size
    if out is None:
        out = torch.empty((M, N), device=x.device, dtype=x.dtype)
    rstd = torch.empty((ngroups * M,), device=x.device, dtype=torch.float32)
    bm, bn = _block_rows(group_size)
    grid = (triton.cdiv(M, bm), ngroups)
    _gnorm_fwd_kernel[grid](x, z if z is not None else x, weight, out, rstd, M, group_size,
                            x.stride(0), z.stride(0) if z is not None else 0, out.stride(0), eps,
                            HAS_Z=z is not None, NORM_BEFORE_GATE=norm_before_gate, BM=bm, BN=bn, num_warps=4)
    return out, rstd


def gated_rms_norm_bwd(dy: Tensor, x: Tensor, z: Tensor | None, weight: Tensor, rstd: Tensor, group_size: int,
                       norm_before_gate: bool, dz: Tensor | None = None, recompute_out: Tensor | None = None,
                       kernels: KernelConfig = DEFAULT) -> tuple[Tensor, Tensor, Tensor | None]:
    """Gradients (dx (M, N) in x's dtype, dweight, dz) of `gated_rms_norm_fwd`; dz / recompute_out may be given
    as (M, N) buffers to write into (any row stride); `recompute_out` also receives the forward output."""
    M, N = x.shape
    ngroups = N // group_size
    dx = torch.empty((M, N), device=x.device, dtype=x.dtype)
    if z is not None and dz is None:
        dz = torch.empty((M, N), device=x.device, dtype=z.dtype)
    tile, iters = kernels.norm_backward_tiles
    bm, bn = _block_rows(group_size, tile)
    n_prog = triton.cdiv(M, bm * iters)
    dwp = torch.empty((n_prog, N), device=x.device, dtype=torch.float32)
    y = recompute_out
    _gnorm_bwd_kernel[(n_prog, ngroups)](
        x, z if z is not None else x, weight, dy, dx, dz if dz is not None else dx, y if y is not None else dx,
        rstd, dwp, M, group_size, x.stride(0), z.stride(0) if z is not None else 0, dy.stride(0), dx.stride(0),
        dz.stride(0) if dz is not None else 0, y.stride(0) if y is not None else 0,
        HAS_Z=z is not None, NORM_BEFORE_GATE=norm_before_gate, RECOMPUTE=y is not None, ITERS=iters,
        BM=bm, BN=bn, **launch_options(kernels.norm_backward_launch))
    return dx, dwp.sum(0).to(weight.dtype), dz


class _GatedRMSNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, z: Tensor | None, weight: Tensor, eps: float, group_size: int,
                norm_before_gate: bool, kernels: KernelConfig) -> Tensor:
        shape = x.shape
        x2, z2 = rows(x), (rows(z) if z is not None else None)
        out, rstd = gated_rms_norm_fwd(x2, z2, weight.contiguous(), eps, group_size, norm_before_gate)
        ctx.save_for_backward(x2, z2, weight, rstd)
        ctx.cfg = (group_size, norm_before_gate, shape, kernels)
        return out.view(shape)

    @staticmethod
    def backward(ctx, g: Tensor):
        x2, z2, weight, rstd = ctx.saved_tensors
        group_size, nbg, shape, kernels = ctx.cfg
        dx, dw, dz = gated_rms_norm_bwd(rows(g), x2, z2, weight.contiguous(), rstd, group_size, nbg, kernels=kernels)
        return dx.view(shape), (dz.view(shape) if dz is not None else None), dw, None, None, None, None


def gated_rms_norm_triton(x: Tensor, z: Tensor | None, weight: Tensor, eps: float, group_size: int,
                          norm_before_gate: bool, kernels: KernelConfig = DEFAULT) -> Tensor:
    """`samba.ops.norm.gated_rms_norm` with the Triton kernels. x, z: (..., d); weight (d,)."""
    if triton is None:
        raise RuntimeError("Triton is not installed; use samba.ops.norm.gated_rms_norm")
    d = x.shape[-1]
    if weight.shape != (d,) or d % group_size or (z is not None and z.shape != x.shape):
        raise ValueError(f"gated RMSNorm: x {tuple(x.shape)}, z {None if z is None else tuple(z.shape)}, "
                         f"weight {tuple(weight.shape)}, group_size {group_size}")
    return _GatedRMSNorm.apply(x, z, weight, eps, group_size, norm_before_gate, kernels)
