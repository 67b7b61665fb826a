"""SAMBA's building blocks.

- `CDSE` (cdse.py): coordinate-driven spatial embedding, any montage -> fixed target montage.
- `Mamba2` (mamba2.py): Mamba2 layer, parameter-compatible with mamba_ssm, torch or Triton backend.
- `DiffMamba` (diff_mamba.py): SAMBA's multi-head differential Mamba bottleneck, all heads in one call;
  `DiffMambaLoop` is the authors' per-head loop it is tested against.
- ssd.py: the plain-PyTorch SSD scan (`ssd_chunked`) and its step-by-step definition (`ssd_recurrent`).
"""

from .cdse import CDSE, InverseCDSE, pad_montages
from .diff_mamba import DiffMamba, DiffMambaLoop
from .mamba2 import Mamba2
from .ssd import ssd_chunked, ssd_recurrent

__all__ = ["CDSE", "InverseCDSE", "pad_montages", "Mamba2", "DiffMamba", "DiffMambaLoop",
           "ssd_chunked", "ssd_recurrent"]
