"""Host memory reuse for CPU steps: glibc's malloc told to keep freed memory.

SAMBA's CPU step makes many large temporaries (the chunked scan's decay tensors, the gated norm, their gradients).
With glibc's defaults every block above a sliding threshold (128 KiB at start) is a fresh ``mmap`` that goes back
to the kernel when freed, and the heap's free top is trimmed, so each step faults the same memory in again.
`keep_freed_memory` sets the two ``mallopt`` parameters that stop it: blocks up to 32 MiB (glibc's largest
threshold) come from the heap, and the heap is never trimmed. The process then keeps its peak memory until it
exits. Measured in `scripts/cpu_levers.py` (``results/bench_cpu_levers.json``, the "allocator" lever): on two AMD
EPYC cores SAMBA's 10-s inference step ran 59 % faster, its 60-s inference 41 % and its train step 13 %.

The command line (`samba pretrain | finetune | evaluate | embed`) calls it; a library import never does, and
``samba bench`` does not (the benchmark runs every model under the allocator's defaults). A user who has set
either parameter through glibc's environment variables keeps their own setting.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

__all__ = ["keep_freed_memory", "ENV_VARS", "MMAP_THRESHOLD", "TRIM_THRESHOLD"]

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # <malloc.h>
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest (HEAP_MAX_SIZE / 2 on 64-bit)
TRIM_THRESHOLD = 2**31 - 1  # the largest an int parameter holds: never trim
ENV_VARS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")  # glibc's names for the same two parameters


def keep_freed_memory() -> bool:
    """Set both parameters; True when they were set. False (nothing changed) off Linux, without glibc, or when
    the environment sets either of them already."""
    if not sys.platform.startswith("linux") or any(v in os.environ for v in ENV_VARS):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other libcs have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
