"""The one optional import of Triton for our own kernels (`triton_conv`, `triton_upsample`, `triton_norm`,
`triton_ssd`), and the two layout helpers they share.

CPU-only installs have no Triton: then `triton` and `tl` are None and `available()` is False, and callers
take the PyTorch paths of `samba.nn.fast_ops`.
"""

from __future__ import annotations

import os

from torch import Tensor

try:
    import triton
    import triton.language as tl
except Exception:  # pragma: no cover - depends on the install
    triton = tl = None

__all__ = ["triton", "tl", "available", "unit_last_stride", "rows", "launch_config", "block_config", "as_setting"]


def available() -> bool:
    return triton is not None


def unit_last_stride(t: Tensor) -> Tensor:
    """``t`` itself when its last dimension is contiguous (a slice of a wider buffer is fine), else a copy."""
    return t if t.stride(-1) == 1 else t.contiguous()


def rows(t: Tensor) -> Tensor:
    """(..., n) -> (M, n) with unit channel stride; a view (any row stride) whenever the strides allow it."""
    return unit_last_stride(t).reshape(-1, t.shape[-1])


def _ints(env: str, default: str) -> tuple[str, list[int]]:
    """The variable's text (else ``default``) and its comma-separated integers ([] if any is not one)."""
    raw = os.environ.get(env, "").strip() or default
    try:
        return raw, [int(v) for v in raw.split(",")]
    except ValueError:
        return raw, []


def launch_config(env: str, default: str) -> dict:
    """Triton launch options from an environment variable "warps,stages[,maxnreg]" (else ``default``): how the
    GPU scripts measure a kernel's alternatives without a code change; the benchmark records them."""
    raw, vals = _ints(env, default)
    if len(vals) not in (2, 3) or vals[0] not in (1, 2, 4, 8, 16) or not 1 <= vals[1] <= 8 \
            or (len(vals) == 3 and not 32 <= vals[2] <= 255):
        raise ValueError(f'{env} must be "warps,stages[,maxnreg]" (warps a power of two <= 16, stages 1-8, '
                         f'maxnreg 32-255; e.g. "4,3"), got {raw!r}')
    return {"num_warps": vals[0], "num_stages": vals[1], **({"maxnreg": vals[2]} if len(vals) == 3 else {})}


def block_config(env: str, default: str, names: tuple[str, ...], lo: int = 1, hi: int = 1024) -> dict:
    """Tile sizes from an environment variable of comma-separated powers of two in [lo, hi] (else ``default``),
    as {name: size}: e.g. block_config("SAMBA_TRITON_CONV_BWD_BLOCK", "64,64", ("BL", "BC"))."""
    raw, vals = _ints(env, default)
    if len(vals) != len(names) or any(v < lo or v > hi or v & (v - 1) for v in vals):
        raise ValueError(f"{env} must be {len(names)} comma-separated powers of two in [{lo}, {hi}] "
                         f"({', '.join(names)}; default {default!r}), got {raw!r}")
    return dict(zip(names, vals))


def as_setting(config: dict) -> str:
    """A config dict as the comma-separated string its environment variable takes."""
    return ",".join(str(v) for v in config.values())
