"""The one optional import of Triton for our own kernels (`triton_conv`, `triton_upsample`, `triton_norm`,
`triton_ssd`), and the two layout helpers they share.

CPU-only installs have no Triton: then `triton` and `tl` are None and `available()` is False, and callers
take the PyTorch paths of `samba.nn.fast_ops`.
"""

from __future__ import annotations

from torch import Tensor

try:
    import triton
    import triton.language as tl
except Exception:  # pragma: no cover - depends on the install
    triton = tl = None

__all__ = ["triton", "tl", "available", "unit_last_stride", "rows"]


def available() -> bool:
    return triton is not None


def unit_last_stride(t: Tensor) -> Tensor:
    """``t`` itself when its last dimension is contiguous (a slice of a wider buffer is fine), else a copy."""
    return t if t.stride(-1) == 1 else t.contiguous()


def rows(t: Tensor) -> Tensor:
    """(..., n) -> (M, n) with unit channel stride; a view (any row stride) whenever the strides allow it."""
    return unit_last_stride(t).reshape(-1, t.shape[-1])
