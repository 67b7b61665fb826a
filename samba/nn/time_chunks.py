"""Time-chunked inference: a Mamba2 layer over any length in bounded memory.

A Mamba2 layer widens its input many times at full rate: SAMBA's first layer projects 64 channels to 1,064
(``in_proj``), and the scan's chunk tensors are wider still. For 8 h of EEG at 128 Hz (3.69 M steps) that
projection alone is 15.7 GB in float32. Nothing in the layer needs the whole sequence at once: ``in_proj``, the
gated norm and ``out_proj`` act on each time step, the causal conv reads the ``d_conv - 1`` steps before, and the
scan carries a (heads, headdim, d_state) state. So under inference a layer can run chunk by chunk, carrying

    conv tail   the last ``d_conv - 1`` pre-conv (x, B, C) rows     (b, d_conv - 1, conv_dim)
    SSM state   the scan's state at the chunk's end                 (b, h, p, n)

and the output equals the one-call output up to float rounding (the scan's sums are grouped differently).
The chunks are cut inside one layer, over that layer's whole input: a bidirectional model's reverse twins
(`samba.model.SAMBAConfig.bidirectional`) receive the whole time-reversed sequence and chunk it the same way, so
their scans carry the state from the last sample back to the first.

When it runs (`time_chunk_steps`): when the caller asks (``with time_chunking(steps): ...``, any mode: autograd
goes through the chunks; ``steps=0`` turns it off), or automatically, without autograd only (the training path
keeps its one-call kernels), when the layer's widest tensor would be large: on CPU above ``CPU_AUTO_ELEMENTS`` values per sample slice (chunks then stay
cache-sized too), on CUDA above ``CUDA_AUTO_BYTES`` (1 GiB of in_proj output; chunks of ``CUDA_CHUNK_BYTES``).

On CUDA, run chunked inference under ``torch.no_grad()`` (as ``samba.embed`` and the benchmark do), not
``torch.inference_mode()``: under inference_mode the chunked path failed on an H100 with "Inference tensors do not
track version counter" (every eager row of 600 s and longer, commit 2d9fd56); which operation raises it is not yet
found, so that mode is not supported here.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Iterator

import torch
from torch import Tensor

from ..ops import causal_depthwise_conv

__all__ = ["time_chunking", "time_chunk_steps", "conv_with_tail", "CPU_AUTO_ELEMENTS", "CUDA_AUTO_BYTES"]

# None: automatic; 0: never chunk; n > 0: chunks of n steps (under inference).
_STEPS: contextvars.ContextVar[int | None] = contextvars.ContextVar("samba_time_chunk", default=None)

# Values of the in_proj output per call on CPU: 16 MiB in float32. SAMBA inference, batch 8 x 60 s, 2-core AMD EPYC,
# one process: 2^22 989 ms, 2^21 1,077, 2^20 1,190, never 1,019 (smaller chunks cost more per-call overhead in the
# bottleneck than they gain in cache).
CPU_AUTO_ELEMENTS = 1 << 22
# CUDA: chunk once a layer's in_proj output would pass 1 GiB (bf16: 1 h at batch 1 for the 64-wide layers is 0.98 GB,
# 8 h is 7.8 GB), in chunks of a quarter of that. The whole-night target (8 h through the model under 4 GiB) needs
# it; a CUDA graph capture never chunks (its rows are the short-window throughput rows).
CUDA_AUTO_BYTES = 1 << 30
CUDA_CHUNK_BYTES = 256 << 20
ALIGN = 256  # chunk lengths are multiples of this (whole scan chunks of 32, 64, 128 or 256 steps)


@contextlib.contextmanager
def time_chunking(steps: int | None) -> Iterator[None]:
    """Within the block, Mamba2 / DiffMamba inference runs in time chunks of ``steps`` (None: automatic,
    0: never)."""
    if steps is not None and (int(steps) != steps or steps < 0):
        raise ValueError(f"time_chunk must be None, 0 or a positive number of steps; got {steps!r}")
    token = _STEPS.set(None if steps is None else int(steps))
    try:
        yield
    finally:
        _STEPS.reset(token)


def time_chunk_steps(u: Tensor, width: int) -> int | None:
    """Steps per chunk for a layer whose widest per-step tensor has ``width`` values, on input u (b, L, d);
    None: run in one call."""
    b, L = u.shape[0], u.shape[1]
    steps = _STEPS.get()
    if steps == 0:
        return None
    if steps is None:  # automatic: inference only
        if torch.is_grad_enabled():
            return None
        if u.is_cuda:
            if torch.cuda.is_current_stream_capturing() or b * L * width * u.element_size() <= CUDA_AUTO_BYTES:
                return None
            steps = max(ALIGN, CUDA_CHUNK_BYTES // (b * width * u.element_size()) // ALIGN * ALIGN)
        else:
            if b * L * width <= CPU_AUTO_ELEMENTS:
                return None
            steps = max(ALIGN, CPU_AUTO_ELEMENTS // (b * width) // ALIGN * ALIGN)
    return steps if steps < L else None


def conv_with_tail(xBC: Tensor, tail: Tensor | None, weight: Tensor, bias: Tensor | None, backend: str,
                   kernels) -> tuple[Tensor, Tensor | None]:
    """Causal depthwise conv + SiLU of one chunk xBC (b, l, ch) preceded by ``tail`` (b, <= k-1, ch), the previous
    chunk's last pre-conv rows. Returns the chunk's output (b, l, ch) and the tail for the next chunk."""
    k = weight.shape[-1]
    full = xBC if tail is None else torch.cat([tail, xBC], dim=1)  # (b, t + l, ch)
    skip = full.shape[1] - xBC.shape[1]
    out = causal_depthwise_conv(full, weight, bias, backend, kernels)[:, skip:]  # (b, l, ch)
    new_tail = full[:, max(0, full.shape[1] - (k - 1)):].clone() if k > 1 else None  # clone: frees the chunk
    return out, new_tail
