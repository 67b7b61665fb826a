"""The U-Net's 'same'-padded convolutions on channels-last activations as one Triton kernel.

One program computes a (BL time steps x BN output channels) tile of ``out (B, L, C_out)``:

    out[t, n] = bias[n] + sum_k sum_c x[t + k - KT // 2, c] * w[k, c, n]       (x zero outside 0 <= t < L)

as a sum of (BL x BK) @ (BK x BN) products over the taps k and blocks of BK input channels, accumulated in
float32. The stage input x is never written: its tiles are made in registers from the loads (``MODE``):
0 plain, ``x = a``; 1 pool, ``x[t] = max(a[2t], a[2t + 1])``; 2 upcat, ``x = [a | up2(u)]`` with the decoder's x2
linear upsampling ``up2(u)[t] = 0.75 u[t // 2] + 0.25 u[neighbour]`` (the neighbour t // 2 - 1 for even t, t // 2 + 1
for odd, clamped to the sequence: ``F.interpolate(mode="linear", align_corners=False)``). The inputs may have any
strides (the fused embedding reads the recording ``(B, C, T)`` as it is stored). The reference is
`samba.ops.unet_conv.conv_cl_ref`; the tests compare the two in Triton's CPU interpreter, compile the kernel for
sm_90 without a GPU and compare them on CUDA.
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import tl, triton

__all__ = ["conv_cl_triton"]

BLOCK_L = 64  # time steps per program
BLOCK_K = 32  # input channels per product
MODE = {"plain": 0, "pool": 1, "upcat": 2}


if triton is not None:

    @triton.jit
    def _dot(x, w, acc, IEEE: tl.constexpr):
        if IEEE:
            return acc + tl.dot(x, w, input_precision="ieee")
        return acc + tl.dot(x, w)

    @triton.jit
    def _conv_cl_kernel(A, U, W, Bias, Out, L, Ca, Cu, Cout, Lu,
                        sab, sal, sac, sub, sul, suc, sob, sol,
                        KT: tl.constexpr, MODE: tl.constexpr, HAS_BIAS: tl.constexpr, IEEE: tl.constexpr,
                        BL: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr):
        bi = tl.program_id(2).to(tl.int64)
        t = tl.program_id(0) * BL + tl.arange(0, BL)  # output time steps
        n = tl.program_id(1) * BN + tl.arange(0, BN)  # output channels
        mn = n < Cout
        rk = tl.arange(0, BK)
        Cin = Ca + Cu
        acc = tl.zeros((BL, BN), dtype=tl.float32)
        for k in tl.static_range(KT):
            ts = t + (k - KT // 2)  # the input step this tap reads
            mt = (ts >= 0) & (ts < L)
            ts64 = ts.to(tl.int64)
            for c0 in range(0, Ca, BK):  # channels of a
                c = c0 + rk
                m = mt[:, None] & (c < Ca)[None, :]
                if MODE == 1:  # max_pool1d by 2: a has 2L steps
                    p = A + bi * sab + (2 * ts64)[:, None] * sal + c[None, :].to(tl.int64) * sac
                    x = tl.maximum(tl.load(p, mask=m, other=0.0), tl.load(p + sal, mask=m, other=0.0),
                                   propagate_nan=tl.PropagateNan.ALL)  # NaN in, NaN out, as max_pool1d
                else:
                    x = tl.load(A + bi * sab + ts64[:, None] * sal + c[None, :].to(tl.int64) * sac, mask=m, other=0.0)
                w = tl.load(W + (k * Cin + c)[:, None].to(tl.int64) * Cout + n[None, :],
                            mask=(c < Ca)[:, None] & mn[None, :], other=0.0)
                acc = _dot(x.to(w.dtype), w, acc, IEEE)
            if MODE == 2:  # then the channels of up2(u): u has Lu = L / 2 steps
                mid = tl.where(ts >= 0, ts, 0) // 2
                nb = tl.minimum(tl.maximum(mid + tl.where(ts % 2 == 0, -1, 1), 0), Lu - 1)
                for c0 in range(0, Cu, BK):
                    c = c0 + rk
                    m = mt[:, None] & (c < Cu)[None, :]
                    base = U + bi * sub + c[None, :].to(tl.int64) * suc
                    um = tl.load(base + mid[:, None].to(tl.int64) * sul, mask=m, other=0.0).to(tl.float32)
                    un = tl.load(base + nb[:, None].to(tl.int64) * sul, mask=m, other=0.0).to(tl.float32)
                    w = tl.load(W + (k * Cin + Ca + c)[:, None].to(tl.int64) * Cout + n[None, :],
                                mask=(c < Cu)[:, None] & mn[None, :], other=0.0)
                    acc = _dot((0.75 * um + 0.25 * un).to(w.dtype), w, acc, IEEE)
        if HAS_BIAS:
            acc += tl.load(Bias + n, mask=mn, other=0.0).to(tl.float32)[None, :]
        tl.store(Out + bi * sob + t[:, None].to(tl.int64) * sol + n[None, :], acc.to(Out.dtype.element_ty),
                 mask=(t < L)[:, None] & mn[None, :])


def conv_cl_triton(a: Tensor, weight: Tensor, bias: Tensor | None, mode: str = "plain",
                   up: Tensor | None = None) -> Tensor:
    """`samba.ops.unet_conv.conv_cl_ref` in one launch: a (B, L_a, C_a) and up (B, L / 2, C_up) with any strides,
    weight (C_out, C_in, k) -> contiguous (B, L, C_out) in the autocast dtype (else a's dtype)."""
    if triton is None:
        raise RuntimeError("Triton is not installed; use samba.ops.unet_conv.conv_cl")
    B, La, Ca = a.shape
    L = La // 2 if mode == "pool" else La
    Cu = up.shape[2] if up is not None else 0
    Cout, Cin, KT = weight.shape
    if Cin != Ca + Cu or KT % 2 == 0:
        raise ValueError(f"weight {tuple(weight.shape)} does not fit {Ca} + {Cu} input channels with an odd kernel")
    if up is not None and (up.shape[0] != B or 2 * up.shape[1] != L):
        raise ValueError(f"up {tuple(up.shape)} must be (B, L / 2, C) for a of shape {tuple(a.shape)}")
    dtype = torch.get_autocast_dtype("cuda") if torch.is_autocast_enabled("cuda") else a.dtype
    w = weight.detach().permute(2, 1, 0).to(dtype).contiguous()  # (k, C_in, C_out): tap-major rows of products
    b = bias.detach() if bias is not None else w
    out = torch.empty((B, L, Cout), device=a.device, dtype=dtype)
    u = up if up is not None else a
    BN = 64 if Cout <= 64 else 128
    grid = (triton.cdiv(L, BLOCK_L), triton.cdiv(Cout, BN), B)
    _conv_cl_kernel[grid](a, u, w, b, out, L, Ca, Cu, Cout, max(u.shape[1], 1),
                          a.stride(0), a.stride(1), a.stride(2), u.stride(0), u.stride(1), u.stride(2),
                          out.stride(0), out.stride(1),
                          KT=KT, MODE=MODE[mode], HAS_BIAS=bias is not None,
                          IEEE=dtype == torch.float32 and not torch.backends.cudnn.allow_tf32,
                          BL=BLOCK_L, BN=BN, BK=BLOCK_K)
    return out
