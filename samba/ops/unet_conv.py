"""The U-Net's 'same'-padded convolutions on channels-last activations, for inference.

The encoder and decoder convolutions (`SAMBA.enc2`, `enc3`, `dec3`, `dec2`, `dec1`, and the fused spatial
embedding) are convolutions on ``(B, C, L)``; every Mamba2 block between them works on ``(B, L, C)``. Run as cuDNN
convolutions, each stage moves its activations between the two layouts, converts them again to cuDNN's native NHWC
and back, and adds the bias in a separate pass: in SAMBA's 60-s inference on an H100 that glue cost several times
what the convolutions' own inputs and outputs take to cross memory (`docs/performance.md`, "The U-Net's convs on
channels-last activations").

`conv_cl` computes one such convolution straight from and into ``(B, L, C)``, with the stage's input transform
folded into its loads:

- ``"plain"``: ``conv(a)``;
- ``"pool"``: ``conv(max_pool1d(a, 2))`` (the encoder's downsampling, ``a`` at twice the output's length);
- ``"upcat"``: ``conv(cat([a, upsample2x_linear(up)], channels))`` (the decoder's skip join, ``up`` at half the
  output's length).

`conv_cl_ref` is its specification in plain PyTorch (the channels-first ops the model's reference path runs);
`samba.ops.triton.unet_conv` is the kernel (one program per (sample, time block, output channels): a sum over
taps and input-channel blocks of small matrix products, nothing written but the output). `conv_cl` runs the kernel
on CUDA when Triton imports and the backend is not "torch", else the reference. Under autograd the kernel runs inside
`_ConvCL`, whose backward is the same kernel on the output gradient with the taps flipped and the weight transposed
(the stage input's gradient, taken back through the pooling by autograd and through the skip join by
`upcat_cl_backward`, both on ``(B, L, C)``), one product per tap over all samples' steps for the weight gradient
(`conv_weight_grad_cl`) and a sum for the bias's. The model takes this path under
inference (`KernelConfig.channels_last_unet`) and, when asked, in training (`channels_last_unet_train`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from .backend import triton_available
from .config import KernelConfig
from .upsample import upsample_concat_ref

__all__ = ["MODES", "conv_cl", "conv_cl_ref", "conv_weight_grad_cl", "max_pool2x_cl", "stage_input", "upcat_cl",
           "upcat_cl_backward"]

MODES = ("plain", "pool", "upcat")
DEFAULT = KernelConfig()


def stage_input(a: Tensor, mode: str, up: Tensor | None = None) -> Tensor:
    """The conv's input that ``mode`` makes from ``a (B, L_a, C_a)`` (and ``up``), channels-first as the model's
    default path makes it: ``(B, C_in, L_out)``, with the reference's ops."""
    x = a.transpose(1, 2)  # (B, C_a, L_a)
    if mode == "pool":
        return F.max_pool1d(x, 2)  # (B, C_a, L_a / 2)
    if mode == "upcat":
        return upsample_concat_ref(x, up.transpose(1, 2))  # (B, C_a + C_up, L_a)
    if mode != "plain":
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return x


def conv_cl_ref(a: Tensor, weight: Tensor, bias: Tensor | None, mode: str = "plain",
                up: Tensor | None = None) -> Tensor:
    """``(B, L, C_in) -> (B, L_out, C_out)``: the conv ``weight (C_out, C_in, k)`` (odd k, 'same' padding) of the
    stage input that ``mode`` makes from ``a (B, L_a, C_a)`` (and ``up (B, L_out / 2, C_up)``), as the model's
    channels-first path computes it."""
    k = weight.shape[-1]
    return F.conv1d(stage_input(a, mode, up), weight, bias, padding=k // 2).transpose(1, 2)  # (B, L_out, C_out), a view


def upcat_cl(a: Tensor, up: Tensor) -> Tensor:
    """The skip join on channels-last activations, ``cat([a (B, L, C_a), upsample2x_linear(up (B, L / 2, C_up))],
    channels)`` -> ``(B, L, C_a + C_up)`` contiguous (no autograd): the stencil of `samba.ops.upsample` along dim 1,
    written straight into the even and odd steps of the output."""
    B, L, Ca = a.shape
    Lu, Cu = up.shape[1], up.shape[2]
    if up.shape[0] != B or L != 2 * Lu:
        raise ValueError(f"upcat_cl: up must be (B, L / 2, C_up) for a (B, L, C_a) = {tuple(a.shape)}, "
                         f"got {tuple(up.shape)}")
    x = torch.empty((B, L, Ca + Cu), device=a.device, dtype=torch.promote_types(a.dtype, up.dtype))
    x[..., :Ca] = a
    even, odd = x[:, 0::2, Ca:], x[:, 1::2, Ca:]  # (B, Lu, C_up) views
    torch.lerp(up[:, 1:], up[:, :-1], 0.25, out=even[:, 1:])  # 0.75 up[m] + 0.25 up[m - 1]
    torch.lerp(up[:, :-1], up[:, 1:], 0.25, out=odd[:, :-1])  # 0.75 up[m] + 0.25 up[m + 1]
    even[:, 0] = up[:, 0]  # the edges replicated: up[-1] := up[0], up[Lu] := up[Lu - 1]
    odd[:, Lu - 1] = up[:, Lu - 1]
    return x


def upcat_cl_backward(g: Tensor, Ca: int, a_dtype, up_dtype, need_a: bool = True, need_up: bool = True):
    """The gradients of `upcat_cl`'s ``a`` and ``up`` from ``g (B, L, C_a + C_up)``: ``a``'s is a view of ``g``'s
    first C_a channels, ``up``'s the stencil's transpose, summed in float32:
    ``dup[m] = 0.75 (g[2m] + g[2m+1]) + 0.25 (g[max(2m-1, 0)] + g[min(2m+2, L-1)])``."""
    da = g[..., :Ca].to(a_dtype) if need_a else None
    dup = None
    if need_up:
        ge, go = g[:, 0::2, Ca:], g[:, 1::2, Ca:]  # (B, Lu, C_up) views: the even and odd steps
        Lu = ge.shape[1]
        acc = torch.promote_types(g.dtype, torch.float32)
        dup = torch.empty(ge.shape, device=g.device, dtype=acc)
        dup.copy_(ge).add_(go).mul_(0.75)  # widened first: the sum itself in float32
        dup[:, 1:].add_(go[:, :-1], alpha=0.25)  # up[m] as the left tap of step 2m - 1
        dup[:, :-1].add_(ge[:, 1:], alpha=0.25)  # up[m] as the right tap of step 2m + 2
        dup[:, 0].add_(ge[:, 0], alpha=0.25)  # the replicated edges
        dup[:, Lu - 1].add_(go[:, Lu - 1], alpha=0.25)
        dup = dup.to(up_dtype)
    return da, dup


def _mm_f32(a: Tensor, b: Tensor) -> Tensor:
    """``a @ b`` accumulated and returned in float32 or wider, for operands of one dtype (bf16/fp16 on CUDA read as
    they are)."""
    if a.is_cuda and a.dtype in (torch.bfloat16, torch.float16):
        return torch.mm(a, b, out_dtype=torch.float32)
    acc = torch.promote_types(a.dtype, torch.float32)
    return torch.mm(a.to(acc), b.to(acc))


def conv_weight_grad_cl(x: Tensor, dout: Tensor, k: int) -> Tensor:
    """The weight gradient of a 'same'-padded conv (odd ``k``) on channels-last activations, in float32 (or wider):
    ``dw[n, c, j] = sum over samples b and steps t of x[b, t + j - k // 2, c] * dout[b, t, n]`` for
    ``x (B, L, C_in)`` and ``dout (B, L, C_out)`` of one dtype -> ``(C_out, C_in, k)``.

    Each tap is one matrix product over all B * L rows at once, ``x`` shifted by s = j - k // 2 rows against
    ``dout``: no padded copy of ``x`` and no per-sample products to sum. Flattening the batch pairs the last |s| steps
    of one sample with the first |s| of the next (where the padded conv sees zeros); those (B - 1) * |s| row pairs
    are one small product, subtracted. Samples shorter than k take the padded per-sample products instead.
    """
    B, L, C = x.shape
    N = dout.shape[-1]
    h = k // 2
    if L < k:  # too short for the shifted rows to stay within neighbouring samples
        xp = F.pad(x, (0, 0, h, h))  # (B, L + k - 1, C_in), zeros outside
        acc = torch.promote_types(x.dtype, torch.float32)
        return torch.stack([torch.bmm(xp[:, j:j + L].transpose(1, 2).to(acc), dout.to(acc)).sum(0)
                            for j in range(k)], -1).transpose(0, 1)  # (C_out, C_in, k)
    x2 = x.reshape(B * L, C)  # a copy only where x is not (B, L, C)-contiguous
    d2 = dout.reshape(B * L, N)
    taps = []
    for j in range(k):
        s = j - h
        if s == 0:
            taps.append(_mm_f32(d2.t(), x2))  # (C_out, C_in)
            continue
        m = abs(s)
        if s > 0:  # rows r of dout against rows r + s of x
            full = _mm_f32(d2[:B * L - m].t(), x2[m:])
            cross = (dout[:-1, L - m:], x[1:, :m])  # dout's last m steps of sample b, x's first m of sample b + 1
        else:
            full = _mm_f32(d2[m:].t(), x2[:B * L - m])
            cross = (dout[1:, :m], x[:-1, L - m:])  # dout's first m steps of sample b, x's last m of sample b - 1
        if B > 1:
            full = full - _mm_f32(cross[0].reshape(-1, N).t(), cross[1].reshape(-1, C))
        taps.append(full)
    return torch.stack(taps, -1)  # (C_out, C_in, k)


class _ConvCL(torch.autograd.Function):
    """`conv_cl_triton` with its backward (any device Triton runs on: CUDA, or its CPU interpreter in the tests)."""

    @staticmethod
    def forward(ctx, a, weight, bias, up, mode, kernels=DEFAULT):
        from .triton.unet_conv import conv_cl_triton

        ctx.save_for_backward(a, weight, up)
        ctx.mode, ctx.kernels, ctx.bias_dtype = mode, kernels, bias.dtype if bias is not None else None
        return conv_cl_triton(a, weight, bias, mode, up)  # (B, L, C_out)

    @staticmethod
    @once_differentiable  # the kernel records no graph: a second derivative raises instead of coming out wrong
    def backward(ctx, dout):  # dout (B, L, C_out) in the forward's output dtype, any strides
        from .triton.unet_conv import conv_cl_triton

        a, weight, up = ctx.saved_tensors
        need_a, need_w, need_b, need_up = ctx.needs_input_grad[:4]
        k = weight.shape[-1]
        acc = torch.promote_types(dout.dtype, torch.float32)
        da = dw = db = dup = None
        # out = conv(x, w) with 'same' padding, so dx = conv(dout, w') with w'[c, n, j] = w[n, c, k - 1 - j]
        flipped = weight.detach().transpose(0, 1).flip(-1)
        if ctx.mode == "upcat":  # the skip join and its gradient on (B, L, C) directly: no layout copies
            x = upcat_cl(a.to(dout.dtype), up.to(dout.dtype)) if need_w else None  # (B, L, C_in), contiguous
            if need_a or need_up:
                da, dup = upcat_cl_backward(conv_cl_triton(dout, flipped, None), a.shape[-1], a.dtype, up.dtype,
                                            need_a, need_up)
        else:
            with torch.enable_grad():  # the stage input again, from the saved a (no conv: cheap)
                a_ = a.detach().requires_grad_(need_a)
                x = stage_input(a_, ctx.mode).transpose(1, 2)  # (B, L, C_in), a view
            if need_a:
                da = torch.autograd.grad(x, a_, conv_cl_triton(dout, flipped, None).to(x.dtype))[0]
        if need_w:  # x in dout's dtype, (B, L, C_in)-contiguous (a copy where it is a view of another layout)
            x = x.detach().to(dout.dtype).contiguous()
            dw = conv_weight_grad_cl(x, dout, k).to(weight.dtype)  # (C_out, C_in, k)
        if need_b and ctx.bias_dtype is not None:
            db = dout.sum((0, 1), dtype=acc).to(ctx.bias_dtype)
        return da, dw, db, dup, None, None


def max_pool2x_cl(a: Tensor) -> Tensor:
    """``max_pool1d`` by 2 along time of ``a (B, L, C)`` (L even) -> ``(B, L / 2, C)``: one pass (contiguous)
    without autograd; with it ``max_pool1d`` itself (a transposed view), whose gradient goes to the first of two tied
    values where ``amax`` would split it."""
    if torch.is_grad_enabled() and a.requires_grad:
        return F.max_pool1d(a.transpose(1, 2), 2).transpose(1, 2)
    return a.unflatten(1, (a.shape[1] // 2, 2)).amax(2)


def conv_cl(a: Tensor, weight: Tensor, bias: Tensor | None, mode: str = "plain", up: Tensor | None = None,
            kernels: KernelConfig = DEFAULT) -> Tensor:
    """`conv_cl_ref` as one Triton kernel on CUDA (a contiguous ``(B, L_out, C_out)`` output in the autocast dtype,
    or ``a``'s outside autocast; under autograd with `_ConvCL`'s backward), else the reference (a transposed
    view)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if (mode == "upcat") != (up is not None):
        raise ValueError("up is given exactly when mode is 'upcat'")
    if a.is_cuda and kernels.backend != "torch" and a.dtype != torch.float64 and triton_available():
        from .triton.unet_conv import conv_cl_triton

        if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (a, weight, bias, up)):
            return _ConvCL.apply(a, weight, bias, up, mode, kernels)
        return conv_cl_triton(a, weight, bias, mode, up)
    return conv_cl_ref(a, weight, bias, mode, up)
