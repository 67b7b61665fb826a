"""The decoder's skip connection ``cat([skip, upsample2x(h)], dim=1)`` as one Triton kernel each way.

In PyTorch (`samba.ops.upsample.upsample2x_linear` then `torch.cat`) this is two edge-replicating
concatenations, two lerps, an interleaving stack and the channel concatenation: six passes over tensors at
the decoder's full rate for every skip level. In the H200 kernel tables (results/profiles/, commit ef126e4)
the concatenation copies alone were 8 % of an inference step. Here the forward writes the concatenated
tensor once (skip channels copied, the others computed from h with the x2 linear stencil), and the backward
reads the incoming gradient once: the skip's gradient is a view of it, h's gradient is the stencil's
transpose

    dh[m] = 0.75 (g[2m] + g[2m+1]) + 0.25 (g[max(2m-1, 0)] + g[min(2m+2, 2L-1)])

(the clamps are the edge replication of ``F.interpolate(mode="linear", align_corners=False)``).
The reference is `samba.ops.upsample.upsample_concat_ref`; the tests compare both in Triton's CPU interpreter
and compile the kernels for sm_90 without a GPU.

Layouts: the inputs are made time-contiguous (a channel-contiguous input, e.g. a transposed Mamba output, is
copied: the tiles run along time) and the output is (B, C, 2L) contiguous. A channel-contiguous variant, for an
opt-in channels-last U-Net, was written and removed: the whole model in that layout
gave wrong parameter gradients on an H200 and no faster step.
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import available, tl, triton, unit_last_stride

__all__ = ["available", "upsample_concat_triton"]

BLOCK_C = 16
BLOCK_T = 128


if triton is not None:

    @triton.jit
    def _upcat_fwd_kernel(skip_ptr, h_ptr, out_ptr, Cs, Cu, L, ssb, ssc, shb, shc, sob, soc,
                          BC: tl.constexpr, BT: tl.constexpr):
        bi = tl.program_id(2).to(tl.int64)
        t = tl.program_id(0) * BT + tl.arange(0, BT)  # output time steps, 0 <= t < 2L
        c = tl.program_id(1) * BC + tl.arange(0, BC)  # output channels, 0 <= c < Cs + Cu
        mt = t < 2 * L
        m_out = (c < Cs + Cu)[:, None] & mt[None, :]
        is_skip = (c < Cs)[:, None]
        sv = tl.load(skip_ptr + bi * ssb + c[:, None].to(tl.int64) * ssc + t[None, :],
                     mask=m_out & is_skip, other=0.0).to(tl.float32)
        cu = c - Cs  # channel of h
        m = t // 2
        nb = tl.minimum(tl.maximum(m + tl.where(t % 2 == 0, -1, 1), 0), L - 1)  # the neighbour, edge replicated
        m_h = m_out & (c >= Cs)[:, None]
        base = h_ptr + bi * shb + cu[:, None].to(tl.int64) * shc
        hv = tl.load(base + m[None, :], mask=m_h, other=0.0).to(tl.float32)
        hn = tl.load(base + nb[None, :], mask=m_h, other=0.0).to(tl.float32)
        out = tl.where(is_skip, sv, 0.75 * hv + 0.25 * hn)
        tl.store(out_ptr + bi * sob + c[:, None].to(tl.int64) * soc + t[None, :], out.to(out_ptr.dtype.element_ty),
                 mask=m_out)

    @triton.jit
    def _upcat_bwd_kernel(g_ptr, dh_ptr, Cs, Cu, L, sgb, sgc, sgt, sdb, sdc,
                          BC: tl.constexpr, BT: tl.constexpr):
        bi = tl.program_id(2).to(tl.int64)
        m = tl.program_id(0) * BT + tl.arange(0, BT)  # time steps of h, 0 <= m < L
        cu = tl.program_id(1) * BC + tl.arange(0, BC)
        mask = (cu < Cu)[:, None] & (m < L)[None, :]
        base = g_ptr + bi * sgb + (cu + Cs)[:, None].to(tl.int64) * sgc
        t0 = 2 * m
        g0 = tl.load(base + t0[None, :] * sgt, mask=mask, other=0.0).to(tl.float32)
        g1 = tl.load(base + (t0 + 1)[None, :] * sgt, mask=mask, other=0.0).to(tl.float32)
        gp = tl.load(base + tl.maximum(t0 - 1, 0)[None, :] * sgt, mask=mask, other=0.0).to(tl.float32)
        gn = tl.load(base + tl.minimum(t0 + 2, 2 * L - 1)[None, :] * sgt, mask=mask, other=0.0).to(tl.float32)
        dh = 0.75 * (g0 + g1) + 0.25 * (gp + gn)
        tl.store(dh_ptr + bi * sdb + cu[:, None].to(tl.int64) * sdc + m[None, :], dh.to(dh_ptr.dtype.element_ty),
                 mask=mask)


class _UpsampleConcat(torch.autograd.Function):
    @staticmethod
    def forward(ctx, skip: Tensor, h: Tensor) -> Tensor:
        skip, h = unit_last_stride(skip), unit_last_stride(h)
        B, Cs, T = skip.shape
        Cu, L = h.shape[1], h.shape[2]
        dtype = torch.promote_types(skip.dtype, h.dtype)
        out = torch.empty((B, Cs + Cu, T), device=h.device, dtype=dtype)
        grid = (triton.cdiv(T, BLOCK_T), triton.cdiv(Cs + Cu, BLOCK_C), B)
        _upcat_fwd_kernel[grid](skip, h, out, Cs, Cu, L, skip.stride(0), skip.stride(1), h.stride(0), h.stride(1),
                                out.stride(0), out.stride(1), BC=BLOCK_C, BT=BLOCK_T)
        ctx.meta = (Cs, Cu, L, skip.dtype, h.dtype)
        return out

    @staticmethod
    def backward(ctx, g: Tensor):
        Cs, Cu, L, skip_dtype, h_dtype = ctx.meta
        B = g.shape[0]
        dh = torch.empty((B, Cu, L), device=g.device, dtype=h_dtype)
        grid = (triton.cdiv(L, BLOCK_T), triton.cdiv(Cu, BLOCK_C), B)
        _upcat_bwd_kernel[grid](g, dh, Cs, Cu, L, g.stride(0), g.stride(1), g.stride(2), dh.stride(0), dh.stride(1),
                                BC=BLOCK_C, BT=BLOCK_T)
        return g[:, :Cs].to(skip_dtype), dh


def upsample_concat_triton(skip: Tensor, h: Tensor) -> Tensor:
    """``cat([skip, upsample2x_linear(h)], 1)`` for skip (B, Cs, 2L) and h (B, Cu, L), in one Triton kernel."""
    if triton is None:
        raise RuntimeError("Triton is not installed; use samba.ops.upsample.upsample_concat")
    if skip.dim() != 3 or h.dim() != 3 or skip.shape[0] != h.shape[0] or skip.shape[2] != 2 * h.shape[2]:
        raise ValueError(f"need skip (B, Cs, 2L) and h (B, Cu, L); got {tuple(skip.shape)} and {tuple(h.shape)}")
    return _UpsampleConcat.apply(skip, h)
