"""SAMBA's building blocks: modules only, each readable top to bottom in plain PyTorch.

- `CDSE` (cdse.py): coordinate-driven spatial embedding, any montage -> fixed target montage.
- `Mamba2` (mamba2.py): Mamba2 layer, parameter-compatible with mamba_ssm, on any backend of `samba.ops`.
- `DiffMamba` (diff_mamba.py): SAMBA's multi-head differential Mamba bottleneck, all heads in one call;
  `DiffMambaLoop` is the authors' per-head loop it is tested against.
- `time_chunking` (time_chunks.py): long inputs under inference run through Mamba2 / DiffMamba in time chunks
  that carry the conv tail and the SSM state, so whole nights fit in bounded memory.

The operations these modules call (the SSD scan, the gated RMSNorm, the causal conv, the skip join), their
plain-PyTorch references and their Triton kernels live in `samba.ops`, with `KernelConfig`.
"""

from .cdse import CDSE, InverseCDSE, pad_montages
from .diff_mamba import DiffMamba, DiffMambaLoop
from .mamba2 import Mamba2
from .time_chunks import time_chunking

__all__ = ["CDSE", "InverseCDSE", "pad_montages", "Mamba2", "DiffMamba", "DiffMambaLoop", "time_chunking"]
