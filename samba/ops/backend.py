"""Which backend runs an operation for a given tensor: the one decision made per call (cheap: no environment, no
imports after the first). Names are those of `KernelConfig.backend`:

- "torch": the plain-PyTorch references in `samba.ops` (any device; the executable specification).
- "triton": our Triton kernels (`samba.ops.triton`), CUDA tensors; each piece can hand back to mamba_ssm's kernel
  or to PyTorch (see `KernelConfig`).
- "mamba_ssm": the upstream package's kernels (`samba.ops.upstream`), CUDA tensors.
- "auto": "triton" for CUDA tensors when Triton imports, else "torch"; decided per call, so `.to("cuda")` after
  construction works.
"""

from __future__ import annotations

from torch import Tensor

from ..errors import UsageError
from .config import BACKENDS
from .upstream import require_mamba_ssm

__all__ = ["BACKENDS", "resolve_backend", "check_backend_name", "triton_available"]

_triton: bool | None = None


def triton_available() -> bool:
    """Triton imports (checked once; a CPU-only install has none)."""
    global _triton
    if _triton is None:
        from . import triton as kernels  # the optional import lives there

        _triton = kernels.available()
    return _triton


def check_backend_name(backend: str) -> str:
    if backend not in BACKENDS:
        raise UsageError(f"unknown backend {backend!r}; expected one of {BACKENDS}")
    return backend


def resolve_backend(backend: str, x: Tensor) -> str:
    """'torch', 'triton' or 'mamba_ssm' for this input; raises for unknown names or kernels that cannot run here."""
    check_backend_name(backend)
    if backend == "auto":
        return "triton" if x.is_cuda and triton_available() else "torch"
    if backend == "torch":
        return "torch"
    if backend == "mamba_ssm":
        require_mamba_ssm()
    elif not triton_available():
        raise RuntimeError("backend='triton' needs Triton, which is not importable here; use backend='auto' or 'torch'")
    if not x.is_cuda:
        raise RuntimeError(f"backend={backend!r} runs Triton kernels and needs CUDA tensors; "
                           f"got a tensor on {x.device} (use backend='auto' or 'torch')")
    return backend
