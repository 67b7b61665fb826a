"""Mamba2's inner block as one autograd Function on the triton backend (conv -> scan -> gated norm -> out_proj).

This is mamba_ssm's `mamba_split_conv1d_scan_combined` (its "memory-efficient path") rebuilt on kernels we can
ship without the `causal_conv1d` CUDA extension: our Triton causal conv (`samba.ops.triton.conv`), our scan
(`samba.ops.triton.ssd`, ``KernelConfig.triton_scan``) or mamba_ssm's (`_mamba_chunk_scan_combined_fwd/_bwd`), our
Triton gated-RMSNorm forward (`samba.ops.triton.norm`) and our gated-RMSNorm backward (``KernelConfig.triton_norm``)
or mamba_ssm's. `fused_block_applies` says when it runs (``KernelConfig.fused_block``).

Why it is the default: with our scan and norm backward it was the fastest train step measured (H200, eager:
batch 128 x 60 s 100.7 ms vs 108.5 ms for mamba_ssm layer by layer). In Triton's interpreter every kernel matches
the float64 / torch references (6e-6 to 9e-6); on an H200 the whole CUDA suite passed, among it this block against
mamba_ssm's layer-by-layer path on every parameter gradient (float32 and bf16, both scans, both norm backwards);
on two GPUs the whole model's output and input gradient matched mamba_ssm's path to bf16 rounding (7.5e-3, 1.7e-2).

What it changes against the layer-by-layer path in `Mamba2._forward` (same math, same parameters):
- memory: it saves only in_proj's output `zxbcdt` and the scan output `y` (about 1,064 + 512 values per time
  step for Mamba2(64, expand 8)); the conv output and the normalised output are recomputed in backward
  instead of stored (the layer-by-layer path keeps ~2,600 per time step), each into the columns of the input
  gradient that the conv backward writes last, so they take no memory of their own. This is what the
  10-minute- and 1-hour-context memory targets need.
- time: the input gradient is assembled in one buffer: the norm writes dz, the scan writes ddt, dB, dC and
  dx, the conv backward writes dxBC, each into its slice of `dzxbcdt`, so autograd's two concatenations per
  block (the backward of the two `torch.split`s) disappear.

The reference is the layer-by-layer path of `samba.nn.Mamba2` (and, through it, the pure-PyTorch torch backend);
the tests compare them. Shapes: zxbcdt (B, L, 2*d_ssm + 2*G*N + H) in the order [z, x, B, C, dt], optionally followed by
zero columns that pad its rows to an aligned width (`aligned_in_proj`).
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import KernelConfig
from .segments import scan_in_segments, segments_for
from .ssd import softplus_dt, use_triton_scan
from .upstream import mamba_ssm_kernels, require_mamba_ssm

__all__ = ["Spec", "ALIGN", "aligned_in_proj", "fused_block_applies", "mamba_split_conv_scan"]


class Spec(NamedTuple):
    d_ssm: int
    headdim: int
    ngroups: int
    d_state: int
    chunk_size: int
    dt_limit: tuple
    eps: float
    group_size: int
    norm_before_gate: bool


def fused_block_applies(u: Tensor, kernels: KernelConfig, headdim: int, d_state: int) -> bool:
    """The fused block runs for the block input u (B, L, d_model) on the triton backend: switched on, CUDA, not
    float64 (its kernels accumulate in float32), and every piece it needs can run: our scan for these head
    shapes, or mamba_ssm's; our norm backward, or mamba_ssm's."""
    if not (kernels.fused_block and u.is_cuda and u.dtype != torch.float64):
        return False
    from .triton.ssd import supported

    upstream = mamba_ssm_kernels() is not None
    scan_ours = kernels.triton_scan and supported(u.new_empty(1, 1, 1, headdim), u.new_empty(1, 1, 1, d_state))
    return (scan_ours or upstream) and (kernels.triton_norm or upstream)


def _scan_ops(kernels: KernelConfig):
    """mamba_ssm's un-wrapped scan forward / backward (imported through the guarded loader)."""
    require_mamba_ssm(kernels.autotune)
    from mamba_ssm.ops.triton.ssd_combined import _mamba_chunk_scan_combined_bwd, _mamba_chunk_scan_combined_fwd

    return _mamba_chunk_scan_combined_fwd, _mamba_chunk_scan_combined_bwd


# Row width (in values) that in_proj's output is padded to on the fused path. Triton specializes every integer
# argument on divisibility by 16 and vectorizes a row's loads and stores (128-bit) only when it can prove the row
# stride is such a multiple. SAMBA's Mamba2(64, expand 8) blocks (enc1, dec2: the full- and half-rate layers)
# have 2 * 512 + 2 * 16 + 8 = 1064 values per row, not a multiple of 16: the PTX for sm_90 (Triton 3.6,
# offline) then has the conv backward read its tiles with 224 scalar 16-bit loads where a 1072-wide row gives 22
# 128-bit ones (plus 64 16-bit), its forward 64 scalar loads instead of 10 vector ones, and the gated norm load
# z and store dz 16 bits at a time. Measured (H200, `samba bench`, commits 8c594ce
# -> later): train at 60 s 111,330 -> 118,829 EEG-s/s, inference 415,738 -> 450,132.
ALIGN = 16


def aligned_in_proj(u: Tensor, in_proj: nn.Linear) -> Tensor:
    """``in_proj(u)`` with each row padded by zero columns to a multiple of ALIGN values: (B, L, width + pad).
    The weight (and bias) are padded with zero rows for the product, so the extra columns are exactly zero and
    F.pad's backward drops their gradient rows: same math, same parameters (checkpoints unchanged)."""
    pad = (-in_proj.out_features) % ALIGN
    if pad == 0:
        return in_proj(u)
    bias = F.pad(in_proj.bias, (0, pad)) if in_proj.bias is not None else None
    return F.linear(u, F.pad(in_proj.weight, (0, 0, 0, pad)), bias)


def _widths(s: Spec) -> list[int]:
    return [s.d_ssm, s.d_ssm + 2 * s.ngroups * s.d_state, s.d_ssm // s.headdim]  # z, xBC, dt


def _split(zxbcdt: Tensor, s: Spec):
    """z, xBC, dt: views of zxbcdt (any padding columns after dt left out)."""
    widths = _widths(s)
    pad = zxbcdt.shape[-1] - sum(widths)
    if pad < 0:
        raise ValueError(f"zxbcdt has {zxbcdt.shape[-1]} columns; the block needs {sum(widths)}")
    return torch.split(zxbcdt, widths + [pad] if pad else widths, dim=-1)[:3]


def _xbc(xBC: Tensor, s: Spec):
    """(B, L, d_ssm + 2GN) -> x (B, L, H, P), B and C (B, L, G, N): views."""
    gn = s.ngroups * s.d_state
    x, B, C = torch.split(xBC, [s.d_ssm, gn, gn], dim=-1)
    return (x.unflatten(-1, (s.d_ssm // s.headdim, s.headdim)), B.unflatten(-1, (s.ngroups, s.d_state)),
            C.unflatten(-1, (s.ngroups, s.d_state)))


class _MambaSplitConvScan(torch.autograd.Function):
    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda")
    def forward(ctx, zxbcdt, conv_w, conv_b, dt_bias, A, D, norm_w, out_w, out_b, s: Spec, train: bool,
                kernels: KernelConfig):
        from .triton import rows
        from .triton.conv import conv_fwd
        from .triton.norm import gated_rms_norm_fwd
        from .triton.ssd import ssd_fwd

        Bsz, L, _ = zxbcdt.shape
        z, xBC, dt = _split(zxbcdt, s)
        w2 = conv_w.reshape(conv_w.shape[0], -1)
        x, Bm, Cm = _xbc(conv_fwd(xBC, w2, conv_b), s)  # SiLU(conv): (B, L, d_ssm + 2GN), then views
        ours = use_triton_scan(x, Bm, kernels)
        S = None
        segments = segments_for(x, kernels.scan_segment_programs, kernels.scan_segment_min_steps) if ours and not train else 1
        if segments > 1:  # inference on few (sample, head) programs: segments side by side (samba.ops.segments)
            from .triton.ssd import ssd_scan_carry_triton

            y, _ = scan_in_segments(partial(ssd_scan_carry_triton, kernels=kernels), x,
                                    softplus_dt(dt, dt_bias, s.dt_limit), A, Bm, Cm, D, None, segments)
        elif ours:  # samba.ops.triton.ssd; S: the states entering each chunk, for backward
            y, S = ssd_fwd(x, softplus_dt(dt, dt_bias, s.dt_limit), A, Bm, Cm, D, states=train, kernels=kernels)
        else:
            scan_fwd = _scan_ops(kernels)[0]
            y = scan_fwd(x, dt, A, Bm, Cm, chunk_size=s.chunk_size, D=D, z=None, dt_bias=dt_bias, dt_softplus=True,
                         dt_limit=s.dt_limit)[0]  # (B, L, H, P), includes D * x
        y = y.reshape(Bsz, L, s.d_ssm)
        normed, rstd = gated_rms_norm_fwd(rows(y), rows(z), norm_w, s.eps, s.group_size, s.norm_before_gate)
        dtype = torch.get_autocast_dtype("cuda") if torch.is_autocast_enabled("cuda") else normed.dtype
        W = out_w.to(dtype)
        bo = out_b.to(dtype) if out_b is not None else None
        out = F.linear(normed.to(dtype), W, bo)  # (B*L, d_model)
        ctx.save_for_backward(zxbcdt, conv_w, conv_b, y, A, D, dt_bias, norm_w, rstd, W, bo, S)
        ctx.spec, ctx.ours, ctx.kernels = s, ours, kernels
        return out.view(Bsz, L, -1)

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")
    def backward(ctx, dout):
        from .triton import rows
        from .triton.conv import conv_bwd, conv_fwd
        from .triton.norm import gated_rms_norm_bwd
        from .triton.ssd import ssd_bwd

        kernels = ctx.kernels
        _, scan_bwd = _scan_ops(kernels) if not ctx.ours else (None, None)
        zxbcdt, conv_w, conv_b, y, A, D, dt_bias, norm_w, rstd, W, bo, S = ctx.saved_tensors
        s = ctx.spec
        Bsz, L, _ = zxbcdt.shape
        z, xBC, dt = _split(zxbcdt, s)
        dzxbcdt = torch.empty_like(zxbcdt, memory_format=torch.contiguous_format)
        dzxbcdt[..., sum(_widths(s)):].zero_()  # padding columns (aligned_in_proj): their gradient is zero
        dz, dxBC_in, ddt = _split(dzxbcdt, s)
        # Order matters for the peak (at 1 h the full-rate block's backward is the train step's peak): out_proj and
        # norm first, each buffer dropped as soon as it is used up, then the conv output is recomputed for the scan.
        # The slot dxBC_in of the input gradient receives its values only at the very end (the conv backward), so it
        # first holds the recomputed norm output (d_ssm of its columns), then the recomputed conv output: two
        # full-rate buffers that need no memory of their own.
        dout2 = dout.reshape(-1, dout.shape[-1]).to(W.dtype)  # (B*L, d_model); only matmuls read it: any strides
        dnormed = dout2 @ W  # (B*L, d_ssm)
        normed = rows(dxBC_in[..., :s.d_ssm])  # (B*L, d_ssm) view, recomputed for dW
        if kernels.triton_norm:
            dy, dnorm_w, _ = gated_rms_norm_bwd(dnormed, rows(y), rows(z), norm_w, rstd, s.group_size,
                                                s.norm_before_gate, dz=rows(dz), recompute_out=normed, kernels=kernels)
        else:  # mamba_ssm's kernel (same rstd layout: one float32 per row and group, group-major)
            from mamba_ssm.ops.triton.layernorm_gated import _layer_norm_bwd

            dy, dnorm_w, _, _, _ = _layer_norm_bwd(dnormed, rows(y), norm_w, None, s.eps, None, rstd, rows(z),
                                                   group_size=s.group_size, norm_before_gate=s.norm_before_gate,
                                                   is_rms_norm=True, recompute_output=True, dz=rows(dz),
                                                   out=normed)
        del dnormed
        dW = dout2.t() @ normed.to(W.dtype)  # (d_model, d_ssm)
        dbo = dout2.sum(0) if bo is not None else None
        del normed, dout2
        if ctx.ours:  # y is read by mamba_ssm's scan backward only. Under activation checkpointing the recomputed
            del y  # saved tensors have no other owner than this function: y is freed before the scan's buffers exist
        dy = dy.view(Bsz, L, s.d_ssm // s.headdim, s.headdim)
        w2 = conv_w.reshape(conv_w.shape[0], -1)
        xBC_conv = conv_fwd(xBC, w2, conv_b, out=dxBC_in)  # recomputed, not stored: (B, L, d_ssm + 2GN) view
        x, Bm, Cm = _xbc(xBC_conv, s)
        dxBC = torch.empty(xBC.shape, device=xBC.device, dtype=xBC.dtype)  # (B, L, d_ssm + 2GN)
        dx, dB, dC = _xbc(dxBC, s)
        if ctx.ours:
            with torch.enable_grad():  # softplus(dt + dt_bias) and its clamp, differentiated by autograd
                raw, bias = dt.detach().requires_grad_(), dt_bias.detach().requires_grad_()
                dtp = softplus_dt(raw, bias, s.dt_limit)
            _, ddtp, dA, _, _, dD = ssd_bwd(dy, x, dtp.detach(), A, Bm, Cm, D, S, dx=dx, dB=dB, dC=dC, kernels=kernels)
            d_raw, ddt_bias = torch.autograd.grad(dtp, (raw, bias), ddtp)
            ddt.copy_(d_raw)
        else:
            _, _, dA, _, _, dD, _, ddt_bias, _ = scan_bwd(
                dy, x, dt, A, Bm, Cm, y.view_as(dy), s.chunk_size, D=D, z=None, dt_bias=dt_bias, dt_softplus=True,
                dt_limit=s.dt_limit, dx=dx, ddt=ddt, dB=dB, dC=dC)  # fills dx, dB, dC (in dxBC), ddt (in dzxbcdt)
        del dy, x, Bm, Cm, xBC_conv
        # reads xBC (the conv input) and dxBC, overwrites the slot that held the conv output
        _, dconv_w, dconv_b = conv_bwd(xBC, w2, conv_b, dxBC, dx=dxBC_in, kernels=kernels)  # into dzxbcdt
        return (dzxbcdt, dconv_w.view_as(conv_w), dconv_b, ddt_bias, dA, dD, dnorm_w, dW,
                dbo, None, None, None)


def mamba_split_conv_scan(zxbcdt: Tensor, conv_w: Tensor, conv_b: Tensor | None, dt_bias: Tensor, A: Tensor,
                          D: Tensor, norm_w: Tensor, out_w: Tensor, out_b: Tensor | None, spec: Spec,
                          kernels: KernelConfig | None = None) -> Tensor:
    """out_proj(gated_norm(scan(SiLU(conv(xBC))), z)) for zxbcdt (B, L, *) -> (B, L, d_model); zxbcdt may carry
    zero padding columns after dt (`aligned_in_proj`). Launches and pieces from ``kernels`` (default: defaults)."""
    from .triton.ssd import grad_needed

    train = grad_needed(zxbcdt, conv_w, conv_b, dt_bias, A, D, norm_w, out_w, out_b)  # False: no scan states
    return _MambaSplitConvScan.apply(zxbcdt, conv_w, conv_b, dt_bias, A, D, norm_w, out_w, out_b, spec, train,
                                     kernels or KernelConfig())
