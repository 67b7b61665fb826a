"""Our Triton kernels, one file per fused operation, each beside nothing but its launch code; the plain-PyTorch
reference of each lives one level up (`samba.ops.<op>`), and so does the choice of when they run.

Triton is optional: CPU-only installs have none, then `triton` and `tl` are None, `available()` is False, the
kernel files define no kernels, and `samba.ops` takes the PyTorch paths. Nothing here is imported by
`import samba`: `samba.ops` imports a kernel file the first time a CUDA tensor needs it.
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
