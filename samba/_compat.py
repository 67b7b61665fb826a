"""Environment workarounds kept in one place.

braindecode imports torchaudio at module level, for a few filters and resamplers that none of the models
used here (EEGNet, ShallowFBCSPNet, BIOT, CBraMod, LUNA, Labram, EEGPT) calls. torchaudio's wheels lag
torch's: beside a newer torch its compiled extension fails to load (seen on the CPU dev/CI machine:
torchaudio 2.11 with torch 2.13), and with it ``import braindecode``. :func:`import_braindecode` then
registers a stand-in torchaudio whose members raise when used, and imports braindecode again.
"""
from __future__ import annotations

import sys
import types
import warnings

from torch import nn

__all__ = ["import_braindecode", "ensure_torchaudio_importable"]


def ensure_torchaudio_importable() -> bool:
    """Register a stand-in ``torchaudio`` if the real one cannot load; True when the stand-in is used."""
    mod = sys.modules.get("torchaudio")
    if mod is not None:
        return getattr(mod, "__samba_stand_in__", False)
    try:
        import torchaudio  # noqa: F401

        return False
    except (OSError, ImportError):
        pass
    for k in [k for k in sys.modules if k == "torchaudio" or k.startswith("torchaudio.")]:
        del sys.modules[k]

    def unavailable(*args, **kwargs):
        raise RuntimeError("torchaudio is not usable in this environment (stand-in module; version mismatch with torch)")

    def stand_in(name: str) -> types.ModuleType:
        mod = types.ModuleType(name)
        mod.__path__ = []
        mod.__samba_stand_in__ = True
        made: dict = {}

        def __getattr__(attr):
            if attr.startswith("__"):
                raise AttributeError(attr)
            if attr not in made:  # classes may be subclassed at import time; functions are only called
                made[attr] = (type(attr, (nn.Module,), {"__init__": unavailable}) if attr[:1].isupper()
                              else unavailable)
            return made[attr]

        mod.__getattr__ = __getattr__
        return mod

    root = stand_in("torchaudio")
    sys.modules["torchaudio"] = root
    for sub in ("functional", "transforms"):
        m = stand_in(f"torchaudio.{sub}")
        setattr(root, sub, m)
        sys.modules[m.__name__] = m
    warnings.warn("torchaudio failed to import; using a stand-in so braindecode imports", RuntimeWarning, stacklevel=2)
    return True


def import_braindecode():
    """The ``braindecode`` package (with ``braindecode.models`` loaded), whatever state torchaudio is in."""
    ensure_torchaudio_importable()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import braindecode
        import braindecode.models  # noqa: F401
    return braindecode
