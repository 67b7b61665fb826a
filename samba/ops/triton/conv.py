"""Mamba2's causal depthwise conv1d + SiLU as two Triton kernels (forward; backward with recompute).

What it replaces: `samba.ops.conv.causal_conv1d_silu` in plain PyTorch takes ~4 passes over the
(B, L, channels) tensor forward and ~12 backward (shifted multiply-adds, SiLU, reductions for the weight
gradient); at the full-rate layer of a batch-64 x 60-s step each pass moves ~0.5 GB (measured on an H200:
the element-wise kernels were the largest item of the step). Here the forward reads x once and writes
the output once; the backward reads x and the incoming gradient once, writes dx once and per-block
partial sums of dw and db (reduced in float32 by torch afterwards: deterministic, no atomics). The backward
evaluates the gradient through the SiLU at every output once per tap that reads it (k times, each with k loads of
x): computing it once per step and shifting the tile along time in registers was measured slower (docs/performance.md,
"Tried and not kept").

Semantics, layout and dtype are those of the reference (`samba.ops.conv.causal_conv1d_silu_ref`):
x (B, L, C) with unit channel stride (a slice of in_proj's output is fine), weight (C, k), bias (C,);
accumulation in float32, output in x's dtype. The kernels run wherever Triton runs (CUDA here; the
tests also run them on CPU through TRITON_INTERPRET=1 when Triton is installed).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..config import KernelConfig, launch_options
from . import available, tl, triton, unit_last_stride

__all__ = ["available", "causal_conv1d_silu_triton", "conv_fwd", "conv_bwd"]

DEFAULT = KernelConfig()

BLOCK_L = 64
BLOCK_C = 64
# The backward's tiles and launch are KernelConfig settings, for measuring alternatives (not yet measured):
# conv_backward_tiles = (BL, BC) (time steps x channels per program; default (BLOCK_L, BLOCK_C)) and
# conv_backward_launch (default (4, 3), Triton's defaults on NVIDIA). A longer BL writes fewer partial sums of the
# weight gradient: (B * L / BL, C, k) float32, ~126 MB at the full-rate layer of a batch-128 x 60-s step with BL 64.


if triton is not None:

    @triton.jit
    def _load_shifted(x_ptr, bi, sxb, sxl, ts, c, mc, L):
        """x[bi, ts, c] as a float32 (BL, BC) tile, zero outside 0 <= ts < L (the causal left padding)."""
        m = ((ts >= 0) & (ts < L))[:, None] & mc[None, :]
        return tl.load(x_ptr + bi * sxb + ts[:, None].to(tl.int64) * sxl + c[None, :], mask=m, other=0.0).to(tl.float32)

    @triton.jit
    def _pre_activation(x_ptr, w_ptr, bi, sxb, sxl, u, c, mc, L, bias, K: tl.constexpr):
        """bias + sum_j w[:, j] * x[u - (K-1-j)]: the conv output at time steps u, float32."""
        pre = bias[None, :] + tl.zeros((u.shape[0], c.shape[0]), dtype=tl.float32)
        for j in tl.static_range(K):  # tap j looks K-1-j steps back
            wv = tl.load(w_ptr + c * K + j, mask=mc, other=0.0).to(tl.float32)
            pre += _load_shifted(x_ptr, bi, sxb, sxl, u - (K - 1 - j), c, mc, L) * wv[None, :]
        return pre

    @triton.jit
    def _load_bias(b_ptr, c, mc, HAS_BIAS: tl.constexpr):
        if HAS_BIAS:
            return tl.load(b_ptr + c, mask=mc, other=0.0).to(tl.float32)
        return tl.zeros(c.shape, dtype=tl.float32)

    @triton.jit
    def _conv_fwd_kernel(x_ptr, w_ptr, b_ptr, out_ptr, L, C, sxb, sxl, sob, sol,
                         K: tl.constexpr, HAS_BIAS: tl.constexpr, BL: tl.constexpr, BC: tl.constexpr):
        bi = tl.program_id(2).to(tl.int64)
        t = tl.program_id(0) * BL + tl.arange(0, BL)
        c = tl.program_id(1) * BC + tl.arange(0, BC)
        mc = c < C
        pre = _pre_activation(x_ptr, w_ptr, bi, sxb, sxl, t, c, mc, L, _load_bias(b_ptr, c, mc, HAS_BIAS), K)
        out = pre * tl.sigmoid(pre)
        mo = (t < L)[:, None] & mc[None, :]
        tl.store(out_ptr + bi * sob + t[:, None].to(tl.int64) * sol + c[None, :], out.to(out_ptr.dtype.element_ty),
                 mask=mo)

    @triton.jit
    def _conv_bwd_kernel(x_ptr, w_ptr, b_ptr, g_ptr, dx_ptr, dwp_ptr, dbp_ptr, L, C, n_lblocks,
                         sxb, sxl, sgb, sgl, sgc, sdb, sdl,
                         K: tl.constexpr, HAS_BIAS: tl.constexpr, BL: tl.constexpr, BC: tl.constexpr,
                         ITERS: tl.constexpr, KP: tl.constexpr):
        """A program covers ITERS consecutive (BL, BC) tiles of one sample (unrolled) and writes one partial sum of
        the weight and bias gradients for them (KP: the next power of two >= K, the width of its weight accumulator).
        With ITERS 1 it stores each tile's sums directly, as the kernel measured in the benchmark did."""
        pid_l = tl.program_id(0)
        bi = tl.program_id(2).to(tl.int64)
        c = tl.program_id(1) * BC + tl.arange(0, BC)
        mc = c < C
        bias = _load_bias(b_ptr, c, mc, HAS_BIAS)
        part = (bi * n_lblocks + pid_l) * C  # row of the partial-sum buffers
        taps = tl.arange(0, KP)
        dw = tl.zeros((BC, KP), dtype=tl.float32)  # column j: tap j's weight gradient, summed over the tiles
        db = tl.zeros((BC,), dtype=tl.float32)
        for it in tl.static_range(ITERS):
            t = (pid_l * ITERS + it) * BL + tl.arange(0, BL)
            dx = tl.zeros((BL, BC), dtype=tl.float32)
            for s in tl.static_range(K):  # output u = t + s reads x[t] through tap K-1-s
                u = t + s
                mu = (u < L)[:, None] & mc[None, :]
                pre = _pre_activation(x_ptr, w_ptr, bi, sxb, sxl, u, c, mc, L, bias, K)  # recomputed, not stored
                g = tl.load(g_ptr + bi * sgb + u[:, None].to(tl.int64) * sgl + c[None, :] * sgc, mask=mu,
                            other=0.0).to(tl.float32)
                sig = tl.sigmoid(pre)
                dpre = tl.where(mu, g * sig * (1.0 + pre * (1.0 - sig)), 0.0)  # through d silu / d pre
                w_tap = tl.load(w_ptr + c * K + (K - 1 - s), mask=mc, other=0.0).to(tl.float32)
                dx += dpre * w_tap[None, :]
                if s == 0:  # weight and bias gradients from this tile's own outputs u = t
                    for j in tl.static_range(K):
                        xv = _load_shifted(x_ptr, bi, sxb, sxl, t - (K - 1 - j), c, mc, L)
                        if ITERS == 1:
                            tl.store(dwp_ptr + (part + c) * K + j, tl.sum(dpre * xv, axis=0), mask=mc)
                        else:
                            dw += tl.where(taps[None, :] == j, tl.sum(dpre * xv, axis=0)[:, None], 0.0)
                    if ITERS == 1:
                        if HAS_BIAS:
                            tl.store(dbp_ptr + part + c, tl.sum(dpre, axis=0), mask=mc)
                    else:
                        db += tl.sum(dpre, axis=0)
            mt = (t < L)[:, None] & mc[None, :]
            tl.store(dx_ptr + bi * sdb + t[:, None].to(tl.int64) * sdl + c[None, :], dx.to(dx_ptr.dtype.element_ty),
                     mask=mt)
        if ITERS > 1:
            tl.store(dwp_ptr + (part + c)[:, None] * K + taps[None, :], dw, mask=mc[:, None] & (taps[None, :] < K))
            if HAS_BIAS:
                tl.store(dbp_ptr + part + c, db, mask=mc)


def conv_fwd(x: Tensor, weight: Tensor, bias: Tensor | None, out: Tensor | None = None) -> Tensor:
    """SiLU(causal depthwise conv): x (B, L, C) with unit channel stride, weight (C, k) -> new (B, L, C), or into
    `out`: a (B, L, C) buffer with unit channel stride that does not overlap x (e.g. a slice of a wider one)."""
    B, L, C = x.shape
    K = weight.shape[1]
    w = weight.contiguous()
    if out is None:
        out = torch.empty((B, L, C), device=x.device, dtype=x.dtype)
    elif tuple(out.shape) != (B, L, C) or out.dtype != x.dtype or out.stride(-1) != 1:
        raise ValueError(f"out must be ({B}, {L}, {C}) {x.dtype} with unit channel stride; got {tuple(out.shape)} "
                         f"{out.dtype}, strides {out.stride()}")
    grid = (triton.cdiv(L, BLOCK_L), triton.cdiv(C, BLOCK_C), B)
    _conv_fwd_kernel[grid](x, w, bias if bias is not None else w, out, L, C, x.stride(0), x.stride(1),
                           out.stride(0), out.stride(1), K=K, HAS_BIAS=bias is not None, BL=BLOCK_L, BC=BLOCK_C)
    return out


def conv_bwd(x: Tensor, weight: Tensor, bias: Tensor | None, g: Tensor, dx: Tensor | None = None,
             kernels: KernelConfig = DEFAULT) -> tuple[Tensor, Tensor, Tensor | None]:
    """Gradients (dx, dweight, dbias) of `conv_fwd` for the output gradient g (B, L, C), any strides.
    `dx` may be given: a (B, L, C) buffer with unit channel stride (e.g. a slice of a larger gradient)."""
    B, L, C = x.shape
    K = weight.shape[1]
    w = weight.contiguous()
    blocks = dict(zip(("BL", "BC"), kernels.conv_backward_tiles))
    iters = kernels.conv_backward_iters
    launch = launch_options(kernels.conv_backward_launch)
    n_lb = triton.cdiv(L, blocks["BL"] * iters)  # programs along time, each ITERS tiles
    if dx is None:
        dx = torch.empty((B, L, C), device=x.device, dtype=x.dtype)
    dwp = torch.empty((B * n_lb, C, K), device=x.device, dtype=torch.float32)
    dbp = torch.empty((B * n_lb, C), device=x.device, dtype=torch.float32) if bias is not None else dwp
    grid = (n_lb, triton.cdiv(C, blocks["BC"]), B)
    _conv_bwd_kernel[grid](x, w, bias if bias is not None else w, g, dx, dwp, dbp, L, C, n_lb,
                           x.stride(0), x.stride(1), g.stride(0), g.stride(1), g.stride(2),
                           dx.stride(0), dx.stride(1), K=K, HAS_BIAS=bias is not None, **blocks, ITERS=iters,
                           KP=max(2, triton.next_power_of_2(K)), **launch)
    dw = dwp.sum(0).to(weight.dtype)
    db = dbp.sum(0).to(bias.dtype) if bias is not None else None
    return dx, dw, db


class _TritonCausalConv1dSiLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None, kernels: KernelConfig) -> Tensor:
        x = unit_last_stride(x)
        ctx.save_for_backward(x, weight, bias)
        ctx.kernels = kernels
        return conv_fwd(x, weight, bias)

    @staticmethod
    def backward(ctx, g: Tensor):
        x, weight, bias = ctx.saved_tensors
        return (*conv_bwd(x, weight, bias, g, kernels=ctx.kernels), None)


def causal_conv1d_silu_triton(x: Tensor, weight: Tensor, bias: Tensor | None,
                              kernels: KernelConfig = DEFAULT) -> Tensor:
    """SiLU(causal depthwise conv) over time with Triton. x (B, L, C); weight (C, k) or (C, 1, k); bias (C,)."""
    if triton is None:
        raise RuntimeError("Triton is not installed; use samba.ops.conv.causal_conv1d_silu")
    w = weight.reshape(weight.shape[0], -1)
    if x.dim() != 3 or x.shape[-1] != w.shape[0]:
        raise ValueError(f"x must be (B, L, {w.shape[0]}); got {tuple(x.shape)}")
    return _TritonCausalConv1dSiLU.apply(x, w, bias, kernels)
