"""The one guarded import of the upstream `mamba_ssm` package's kernels (the "mamba_ssm" backend, and the
pieces the "triton" backend may hand back to it: see `samba.ops.config.KernelConfig`).

Mamba2's scan (`mamba_chunk_scan_combined`) and its gated RMSNorm are Triton code; they need no compiled
extension. But `mamba_ssm/__init__.py` imports the Mamba-1 CUDA extension `selective_scan_cuda`
unconditionally, so a pure-Python install (scripts/gpu/install_mamba_ssm.sh) fails at import. Mamba2 never calls
that extension, so when it is missing `_register_selective_scan_stub` registers an empty module under its name,
once, right before the first import of mamba_ssm, which happens on the first use of the backend, never at
`import samba`. `causal_conv1d` is used only when importable.

    >>> from samba.ops.upstream import mamba_ssm_kernels, mamba_ssm_unavailable_reason
    >>> k = mamba_ssm_kernels()          # None when unavailable
    >>> k.mamba_chunk_scan_combined      # (x, dt, A, B, C, chunk_size, D=..., dt_bias=..., ...)

``KernelConfig(autotune="single")`` gives each of mamba_ssm's autotuned kernels one config (its smallest tiles):
no benchmarking of ~10 configs per kernel and shape family, so a fresh process compiles in seconds instead of
minutes. The tests use it (a kernel's result does not depend on its tile sizes beyond float rounding); never use
it for timings. It is applied to mamba_ssm's kernel objects where this module hands them out (`apply_autotune`),
not by replacing anything of Triton's.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from dataclasses import dataclass
from typing import Any, Callable

INSTALL_HINT = (
    "install the pure-Python part of mamba-ssm (no CUDA build needed for Mamba2): "
    "`pip download --no-deps --no-binary :all: mamba-ssm==2.3.2.post1 -d .whl` where there is internet, "
    "then `bash scripts/gpu/install_mamba_ssm.sh` (it runs "
    "`MAMBA_SKIP_CUDA_BUILD=TRUE MAMBA_FORCE_BUILD=TRUE pip install --no-build-isolation --no-deps ...`), "
    "or use backend='torch'"
)


@dataclass(frozen=True)
class MambaSSMKernels:
    """The pieces of mamba_ssm (and causal_conv1d) the backends call."""

    mamba_chunk_scan_combined: Callable[..., Any]
    rmsnorm_fn: Callable[..., Any] | None  # mamba_ssm.ops.triton.layernorm_gated.rmsnorm_fn
    causal_conv1d_fn: Callable[..., Any] | None  # None -> use torch conv1d
    module: types.ModuleType  # mamba_ssm itself (tests load our weights into mamba_ssm.Mamba2)
    stubbed_selective_scan_cuda: bool


_UNSET = object()
_cache: Any = _UNSET  # MambaSSMKernels | str (the reason it is unavailable)


def _register_selective_scan_stub() -> bool:
    """Make `import selective_scan_cuda` succeed; returns True when a stub was registered."""
    if "selective_scan_cuda" in sys.modules:
        return False
    try:
        importlib.import_module("selective_scan_cuda")
        return False
    except ImportError:
        stub = types.ModuleType("selective_scan_cuda")
        stub.__doc__ = "Empty stand-in registered by samba.ops.upstream: Mamba2 never calls the Mamba-1 scan."
        sys.modules["selective_scan_cuda"] = stub
        return True


def _config_footprint(cfg) -> int:
    """Tile volume x pipeline depth: a proxy for a Triton config's shared memory (smaller fits every GPU)."""
    size = max(1, int(getattr(cfg, "num_stages", 1) or 1))
    for v in getattr(cfg, "kwargs", {}).values():
        if isinstance(v, int) and v > 1:
            size *= v
    return size


_all_configs: dict = {}  # autotuned kernel object -> its full list of configs
_autotune_policy = "full"


def apply_autotune(policy: str) -> None:
    """Give every autotuned kernel of mamba_ssm's Triton modules all its configs ("full") or only its smallest
    ("single"). The smallest, not the first: the first configs of some mamba_ssm kernels need more shared memory
    than a Hopper SM has (measured: 263-296 kB vs 227 kB on an H200), which autotuning would skip but a single
    forced config cannot. Cheap when the policy is unchanged (the common case: called on every use)."""
    global _autotune_policy
    if policy == _autotune_policy or mamba_ssm_kernels() is None:
        return
    try:
        from triton.runtime.autotuner import Autotuner
    except ImportError:  # no Triton, so nothing of mamba_ssm's is autotuned here (e.g. stand-in kernels in tests)
        return

    for name, mod in list(sys.modules.items()):
        if not name.startswith("mamba_ssm.ops.triton") or mod is None:
            continue
        for obj in list(vars(mod).values()):
            if isinstance(obj, Autotuner):
                configs = _all_configs.setdefault(obj, list(obj.configs))
                obj.configs = [min(configs, key=_config_footprint)] if policy == "single" and configs else configs
    _autotune_policy = policy


def _load() -> MambaSSMKernels | str:
    if importlib.util.find_spec("mamba_ssm") is None:
        return "mamba_ssm is not installed"
    if importlib.util.find_spec("triton") is None:
        return "triton is not installed (mamba_ssm's Mamba2 kernels are Triton code)"
    stubbed = _register_selective_scan_stub()
    try:
        import mamba_ssm
        from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined
        from mamba_ssm.ops.triton import layernorm_gated  # noqa: F401  (its kernels: see apply_autotune)
    except Exception as err:  # ImportError, or Triton/CUDA errors raised at import time
        if stubbed:
            sys.modules.pop("selective_scan_cuda", None)
        return f"importing mamba_ssm failed: {type(err).__name__}: {err}"
    try:
        from mamba_ssm.ops.triton.layernorm_gated import rmsnorm_fn
    except Exception:
        rmsnorm_fn = None
    try:
        from causal_conv1d import causal_conv1d_fn
    except Exception:
        causal_conv1d_fn = None
    return MambaSSMKernels(
        mamba_chunk_scan_combined=mamba_chunk_scan_combined,
        rmsnorm_fn=rmsnorm_fn,
        causal_conv1d_fn=causal_conv1d_fn,
        module=mamba_ssm,
        stubbed_selective_scan_cuda=stubbed,
    )


def mamba_ssm_kernels() -> MambaSSMKernels | None:
    """mamba_ssm's Mamba2 kernels, or None when they cannot be imported (reason: see below)."""
    global _cache
    if _cache is _UNSET:
        _cache = _load()
    return _cache if isinstance(_cache, MambaSSMKernels) else None


def mamba_ssm_unavailable_reason() -> str | None:
    """None when mamba_ssm is usable, else a one-line reason."""
    mamba_ssm_kernels()
    return None if isinstance(_cache, MambaSSMKernels) else str(_cache)


def require_mamba_ssm(autotune: str | None = None) -> MambaSSMKernels:
    """The kernels (with ``autotune`` applied when given), or a RuntimeError that says why not and how to install
    them."""
    kernels = mamba_ssm_kernels()
    if kernels is None:
        raise RuntimeError(
            f"backend='mamba_ssm' requested but unavailable ({mamba_ssm_unavailable_reason()}); {INSTALL_HINT}"
        )
    if autotune is not None:
        apply_autotune(autotune)
    return kernels
