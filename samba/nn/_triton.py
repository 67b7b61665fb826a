"""The one optional import of Triton for our own kernels (`triton_conv`, `triton_upsample`).

CPU-only installs have no Triton: then `triton` and `tl` are None and `available()` is False, and callers
take the PyTorch paths of `samba.nn.fast_ops`.
"""

from __future__ import annotations

try:
    import triton
    import triton.language as tl
except Exception:  # pragma: no cover - depends on the install
    triton = tl = None

__all__ = ["triton", "tl", "available"]


def available() -> bool:
    return triton is not None
