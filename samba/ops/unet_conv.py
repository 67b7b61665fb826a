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
on CUDA when Triton imports and the backend is not "torch", else the reference. No backward: the model takes this
path only without autograd (`KernelConfig.channels_last_unet`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .backend import triton_available
from .config import KernelConfig
from .upsample import upsample_concat_ref

__all__ = ["MODES", "conv_cl", "conv_cl_ref", "max_pool2x_cl"]

MODES = ("plain", "pool", "upcat")
DEFAULT = KernelConfig()


def conv_cl_ref(a: Tensor, weight: Tensor, bias: Tensor | None, mode: str = "plain",
                up: Tensor | None = None) -> Tensor:
    """``(B, L, C_in) -> (B, L_out, C_out)``: the conv ``weight (C_out, C_in, k)`` (odd k, 'same' padding) of the
    stage input that ``mode`` makes from ``a (B, L_a, C_a)`` (and ``up (B, L_out / 2, C_up)``), as the model's
    channels-first path computes it."""
    x = a.transpose(1, 2)  # (B, C_a, L_a)
    if mode == "pool":
        x = F.max_pool1d(x, 2)  # (B, C_a, L_a / 2)
    elif mode == "upcat":
        x = upsample_concat_ref(x, up.transpose(1, 2))  # (B, C_a + C_up, L_a)
    elif mode != "plain":
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    k = weight.shape[-1]
    return F.conv1d(x, weight, bias, padding=k // 2).transpose(1, 2)  # (B, L_out, C_out), a view


def max_pool2x_cl(a: Tensor) -> Tensor:
    """``max_pool1d`` by 2 along time of ``a (B, L, C)`` (L even) -> contiguous ``(B, L / 2, C)``: one pass."""
    return a.unflatten(1, (a.shape[1] // 2, 2)).amax(2)


def conv_cl(a: Tensor, weight: Tensor, bias: Tensor | None, mode: str = "plain", up: Tensor | None = None,
            kernels: KernelConfig = DEFAULT) -> Tensor:
    """`conv_cl_ref` as one Triton kernel on CUDA (a contiguous ``(B, L_out, C_out)`` output in the autocast dtype,
    or ``a``'s outside autocast), else the reference (a transposed view). Inference only: the kernel records no
    backward."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if (mode == "upcat") != (up is not None):
        raise ValueError("up is given exactly when mode is 'upcat'")
    if a.is_cuda and kernels.backend != "torch" and a.dtype != torch.float64 and triton_available():
        from .triton.unet_conv import conv_cl_triton

        return conv_cl_triton(a, weight, bias, mode, up)
    return conv_cl_ref(a, weight, bias, mode, up)
