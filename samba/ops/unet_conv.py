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
(the stage input's gradient, taken back through the pooling or the skip join by autograd on their ops),
one batched product per tap for the weight gradient and a sum for the bias's. The model takes this path under
inference (`KernelConfig.channels_last_unet`) and, when asked, in training (`channels_last_unet_train`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from .backend import triton_available
from .config import KernelConfig
from .upsample import upsample_concat, upsample_concat_ref

__all__ = ["MODES", "conv_cl", "conv_cl_ref", "max_pool2x_cl", "stage_input"]

MODES = ("plain", "pool", "upcat")
DEFAULT = KernelConfig()


def stage_input(a: Tensor, mode: str, up: Tensor | None = None, kernels: KernelConfig | None = None) -> Tensor:
    """The conv's input that ``mode`` makes from ``a (B, L_a, C_a)`` (and ``up``), channels-first as the model's
    default path makes it: ``(B, C_in, L_out)``. The skip join is the reference's ops, or with ``kernels`` the
    dispatching `upsample_concat` (one Triton kernel each way on CUDA)."""
    x = a.transpose(1, 2)  # (B, C_a, L_a)
    if mode == "pool":
        return F.max_pool1d(x, 2)  # (B, C_a, L_a / 2)
    if mode == "upcat":
        u = up.transpose(1, 2)  # (B, C_up, L_a / 2)
        if kernels is None:
            return upsample_concat_ref(x, u)  # (B, C_a + C_up, L_a)
        return upsample_concat(x, u, kernels=kernels)
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
        k, L = weight.shape[-1], dout.shape[1]
        acc = torch.promote_types(dout.dtype, torch.float32)
        da = dw = db = dup = None
        with torch.enable_grad():  # the stage input again, from the saved a and up (no conv: cheap)
            a_ = a.detach().requires_grad_(need_a)
            up_ = up.detach().requires_grad_(need_up) if up is not None else None
            x = stage_input(a_, ctx.mode, up_, ctx.kernels).transpose(1, 2)  # (B, L, C_in), a view
        if need_a or need_up:
            # out = conv(x, w) with 'same' padding, so dx = conv(dout, w') with w'[c, n, j] = w[n, c, k - 1 - j]
            dx = conv_cl_triton(dout, weight.detach().transpose(0, 1).flip(-1), None)  # (B, L, C_in)
            wrt = [t for t, need in ((a_, need_a), (up_, need_up)) if need]
            grads = iter(torch.autograd.grad(x, wrt, dx.to(x.dtype)))
            da = next(grads) if need_a else None
            dup = next(grads) if need_up else None
        if need_w:  # dw[n, c, j] = sum over samples and steps of x[t + j - k // 2, c] * dout[t, n]: a product per tap
            xp = F.pad(x.detach().to(dout.dtype), (0, 0, k // 2, k // 2))  # (B, L + k - 1, C_in), zeros outside
            dw = torch.stack([torch.bmm(xp[:, j:j + L].transpose(1, 2), dout).sum(0, dtype=acc)
                              for j in range(k)], -1)  # (C_in, C_out, k)
            dw = dw.transpose(0, 1).to(weight.dtype)  # (C_out, C_in, k)
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
