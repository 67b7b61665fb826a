"""SAMBA's fused operations: each one's plain-PyTorch reference, our Triton kernel, and the one function a module
calls, which picks between them.

One file per operation; the reference in it is the executable specification its kernel is tested against:

- `ssd.py`: Mamba2's SSD scan. References `ssd_recurrent` (the definition, step by step) and `ssd_chunked` (the
  state-space-duality algorithm); `ssd_chunked_lean` is the same algorithm for CPU inference in fewer memory
  passes; `ssm_scan` is the layer's call (it takes a carried state for time-chunked inference). Kernel: `triton/ssd.py` (one program per
  (sample, head) carrying the state on chip; three backwards: walk, split, group).
- `segments.py`: `scan_in_segments`, an inference scan cut into segments run side by side and their states passed
  on afterwards, for a kernel with one program per (sample, head) where batch x heads is small (whole nights at
  batch 1; `KernelConfig.scan_segment_programs`).
- `ssd_train.py`: `ssd_chunked_train`, the same scan for CPU training: one autograd Function with a hand-written
  backward (fewer memory-bound passes than autograd through `ssd_chunked`).
- `norm.py`: the gated RMSNorm. Reference `gated_rms_norm` (CPU inference form `gated_rms_norm_lean`); call
  `rms_norm_gated`. Kernel: `triton/norm.py`.
- `conv.py`: the causal depthwise conv + SiLU. Reference `causal_conv1d_silu_ref`, a lean PyTorch version
  `causal_conv1d_silu`; call `causal_depthwise_conv`. Kernel: `triton/conv.py`.
- `upsample.py`: the decoder's skip join (x2 linear upsampling + concat). Reference `upsample_concat_ref`; call
  `upsample_concat`. Kernel: `triton/upsample.py`.
- `unet_conv.py`: the U-Net's convolutions on channels-last activations (inference; training when asked), each
  with its stage's max-pooling or skip join folded in. Reference `conv_cl_ref`; call `conv_cl`. Kernel: `triton/unet_conv.py`.
- `mamba_block.py`: a Mamba2 layer's conv -> scan -> gated norm -> out_proj as one autograd Function built on the
  kernels above (`mamba_split_conv_scan`); its reference is the layer-by-layer path of `samba.nn.Mamba2`.
- `upstream.py`: the guarded import of the `mamba_ssm` package's kernels; `backend.py`: which backend runs a call.

Backends (`KernelConfig.backend`): "torch" runs the references anywhere; "triton" runs our kernels on CUDA (Triton
imported lazily, the first time a CUDA tensor needs it); "mamba_ssm" runs the upstream package's kernels on CUDA;
"auto" (default) is "triton" on CUDA when Triton imports, else "torch". The backend is resolved per call from the
tensor's device, so a model moves between CPU and GPU freely.

Choosing settings: a `KernelConfig` (frozen, printable, `to_dict()` for records) is chosen once per model,
``SAMBA(cfg, kernels=KernelConfig(scan_backward="walk"))``, and handed to its Mamba2 layers at construction
(``model.kernels``). It is not saved in checkpoints. Its defaults are the fastest settings measured on H100/H200.
Without ``kernels`` a model takes ``KernelConfig.from_env()``: the defaults changed by the one environment variable
``SAMBA_KERNELS`` (a backend name, e.g. ``SAMBA_KERNELS=torch``, or ``field=value`` pairs, e.g.
``SAMBA_KERNELS="backend=triton,scan_backward=walk,scan_forward_launch=8,3"``).
"""

from .backend import BACKENDS, check_backend_name, resolve_backend, triton_available
from .config import KernelConfig
from .conv import causal_conv1d_silu, causal_conv1d_silu_ref, causal_depthwise_conv
from .mamba_block import aligned_in_proj, fused_block_applies, mamba_split_conv_scan
from .norm import gated_rms_norm, gated_rms_norm_lean, rms_norm_gated
from .ssd import segsum, softplus_dt, ssd_chunked, ssd_chunked_lean, ssd_recurrent, ssm_scan
from .upsample import upsample2x_linear, upsample_concat, upsample_concat_ref, upsample_linear

__all__ = ["KernelConfig", "BACKENDS", "resolve_backend", "check_backend_name", "triton_available",
           "ssd_recurrent", "ssd_chunked", "ssd_chunked_lean", "segsum", "ssm_scan", "softplus_dt",
           "gated_rms_norm", "gated_rms_norm_lean", "rms_norm_gated",
           "causal_conv1d_silu", "causal_conv1d_silu_ref", "causal_depthwise_conv",
           "upsample2x_linear", "upsample_linear", "upsample_concat", "upsample_concat_ref",
           "aligned_in_proj", "fused_block_applies", "mamba_split_conv_scan"]
