"""Which device a run uses: one place that turns a user-typed name into a ``torch.device``.

``resolve_device(None)`` picks CUDA when it is usable, else the CPU. A name that is not a device
(``"gpu"``, ``"cuda:7"`` on a one-GPU host, ``"cuda"`` on a CPU-only build) is a
:class:`samba.errors.UsageError` naming the valid choices, raised before any data is loaded, instead of
a silent fall-back to the CPU or an ``AttributeError`` deep inside torch.
"""

from __future__ import annotations

import torch

from .errors import UsageError

__all__ = ["resolve_device", "valid_devices"]


def _cuda_usable() -> bool:
    try:
        return bool(torch.cuda.is_available()) and torch.cuda.device_count() > 0
    except Exception:  # a broken driver install reads as "no CUDA", never as a crash
        return False


def valid_devices() -> list[str]:
    """The device names this machine accepts, e.g. ``["cpu", "cuda", "cuda:0"]``."""
    names = ["cpu"]
    if _cuda_usable():
        names += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return names


def resolve_device(name: str | torch.device | None = None) -> torch.device:
    """``torch.device`` for a user-typed ``name`` (``None`` or ``"auto"``: CUDA when usable, else CPU)."""
    if isinstance(name, torch.device):
        name = str(name)
    text = "auto" if name is None else str(name).strip().lower()
    if text in ("", "auto"):
        return torch.device("cuda" if _cuda_usable() else "cpu")
    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        raise UsageError(f"unknown device {name!r}; valid devices here: {', '.join(valid_devices())}") from None
    if dev.type == "cpu":
        return torch.device("cpu")
    if dev.type != "cuda":
        raise UsageError(f"device {name!r} is not supported; valid devices here: {', '.join(valid_devices())}")
    if not _cuda_usable():
        raise UsageError(f"device {name!r} asked for, but this torch build sees no CUDA GPU "
                         f"(torch {torch.__version__}); use --device cpu or install a CUDA build of torch")
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        raise UsageError(f"device {name!r} does not exist: this machine has {torch.cuda.device_count()} "
                         f"CUDA device(s); valid devices here: {', '.join(valid_devices())}")
    return dev
