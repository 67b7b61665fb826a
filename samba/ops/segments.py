"""Segment-parallel inference scan: more programs for a scan that walks each (sample, head) in one program.

Why: our Triton scan (`samba.ops.triton.ssd`) runs one program per (sample, head) along the whole sequence. At
batch 1 SAMBA's full-rate Mamba2 layer has 8 heads, so a whole night runs as 8 programs on a GPU of 132 SMs, each
walking millions of time steps one chunk after another. The scan is linear in its state, so the sequence can be cut
into S segments that are scanned side by side from a zero state (batch x S x heads programs), and the true state
entering each segment passed on afterwards, the chunked SSD's own state passing one level up. Per segment k, with
``a_k`` its summed ``dt * A`` (per head), ``F_k`` its final state from zero and ``cum_t`` the ``dt * A`` summed from the
segment's start to step t (inclusive):

    state entering segment k + 1:   E_{k+1} = exp(a_k) E_k + F_k          (E_0: the initial state, or zero)
    its outputs:                    y_t    += exp(cum_t) (C_t . E_k)       (the D skip needs no state)

Equal to one call in exact arithmetic; in floating point up to rounding (the corrections are computed in float32).
Inference only: there is no backward. Reference: `samba.ops.ssd.ssd_chunked` (tests/ops/test_segments.py holds
this to it with the reference as the inner scan, float64 inputs; tests/ops/test_triton_kernels.py with our Triton
scan, in Triton's interpreter and on CUDA). `samba.ops.ssd.ssm_scan` uses it where
`KernelConfig.scan_segment_programs` asks for more programs than batch x heads, and so does the fused Mamba2 block
(`samba.ops.mamba_block`) in inference.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

__all__ = ["CORRECTION_BYTES", "MIN_SEGMENT_STEPS", "pass_states", "scan_in_segments", "segments_for"]

#: the shortest segment worth a program of its own: 64 of the Triton scan's 64-step chunks
MIN_SEGMENT_STEPS = 4096

#: ``scan(x, dt, A, B, C, D, initial_state, out=None) -> (y, final_state)``, y written into ``out`` (x's dtype)
#: when it is given: e.g. `samba.ops.triton.ssd.ssd_scan_carry_triton`
CarryingScan = Callable[..., "tuple[Tensor, Tensor]"]


def segments_for(x: Tensor, programs: int, min_steps: int | None = None) -> int:
    """How many segments an inference scan of x (b, l, h, p) runs as to have about ``programs`` programs of one
    (sample, head, segment) each: 1 (one plain call) when batch x heads already reaches it, when ``programs`` is 0, or
    when the segments would be shorter than ``min_steps`` (None: `MIN_SEGMENT_STEPS`)."""
    b, l, h = x.shape[:3]
    if programs <= 0:
        return 1
    return max(1, min(math.ceil(programs / (b * h)), l // (min_steps or MIN_SEGMENT_STEPS)))


def pass_states(final: Tensor, decay: Tensor, initial_state: Tensor | None) -> Tensor:
    """The state entering every segment, and the one leaving the last, in one product (no loop over segments).

    final (b, s, h, p, n): each segment's final state scanned from zero; decay (b, s, h): each segment's summed
    ``dt * A``; initial_state (b, h, p, n) or None -> E (b, s + 1, h, p, n), float32: E[:, k] enters segment k,
    E[:, s] leaves the last. With F' = [E_0, F_0, ..., F_{s-1}] and a' = [0, a_0, ..., a_{s-1}]:

        E_k = sum_{j <= k} exp(a'_{j+1} + ... + a'_k) F'_j

    the recursion E_{k+1} = exp(a_k) E_k + F_k unrolled. The exponents are sums over the segments between j and k
    (Mamba2's "segsum", `samba.ops.ssd.segsum`), never differences of long cumulative sums, so no precision is
    lost on long sequences."""
    from .ssd import segsum  # here, not at the top: ssd imports this module

    b, s, h, p, n = final.shape
    first = final.new_zeros(b, 1, h, p, n, dtype=torch.float32) if initial_state is None else initial_state.float().unsqueeze(1)
    states = torch.cat([first, final.float()], 1)  # F' (b, S, h, p, n), S = s + 1
    a = torch.cat([decay.new_zeros(b, 1, h), decay.float()], 1).transpose(1, 2)  # a' (b, h, S)
    weights = segsum(a).exp()  # (b, h, S, S) [k, j]: exp(a'_{j+1} + ... + a'_k), 0 where j > k, 1 on the diagonal
    return torch.einsum("bhkj,bjhpn->bkhpn", weights, states)  # (b, S, h, p, n)


#: the float32 bytes one group of segments' state corrections may take at once
CORRECTION_BYTES = 32 << 20


@torch.no_grad()
def scan_in_segments(scan: CarryingScan, x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor | None,
                     initial_state: Tensor | None, segments: int) -> tuple[Tensor, Tensor]:
    """``scan`` over the time axis cut into ``segments`` pieces run side by side, their states passed on afterwards.

    x (b, l, h, p); dt (b, l, h) after softplus; A (h,); B, C (b, l, g, n); D (h,), (h, p) or None; initial_state
    (b, h, p, n) or None -> y (b, l, h, p) in the scan's output dtype, final state (b, h, p, n) float32.
    ``segments`` segments of ``l // segments`` steps cover the sequence but for a remainder of fewer than
    ``segments`` steps, scanned after them from the state they pass on. At batch 1 the segments are views of the
    inputs and the scan writes every piece into one output buffer: no copies. The states are passed in one product
    (`pass_states`) and the corrections added in float32, in place, a group of segments at a time (at most
    `CORRECTION_BYTES` each): a few kernel launches in all, not a few per segment."""
    b, l, h, p = x.shape
    g, n = B.shape[2], B.shape[3]
    s = max(1, min(segments, l))
    if s == 1:
        y, final = scan(x, dt, A, B, C, D, initial_state)
        return y, final.float()
    m = l // s
    main = s * m

    def fold(t: Tensor) -> Tensor:  # (b, l, ...) -> (b * s, m, ...): a view at batch 1 or without a remainder
        return t[:, :main].reshape(b * s, m, *t.shape[2:])

    # at batch 1 with a remainder, one buffer for the segments' and the remainder's outputs (else torch.cat)
    buf = x.new_empty(b, l, h, p) if main < l and b == 1 else None
    out = {} if buf is None else {"out": buf[:, :main].view(b * s, m, h, p)}
    y, final = scan(fold(x), fold(dt), A, fold(B), fold(C), D, None, **out)  # (b*s, m, h, p), (b*s, h, p, n)
    y = (out["out"] if out else y).reshape(b, s, m, h, p)  # a view (of buf at batch 1 with a remainder)
    with torch.autocast(x.device.type, enabled=False):  # float32 corrections, also under the caller's autocast
        cum = (dt[:, :main].float() * A.float()).reshape(b, s, m, h).cumsum(2)  # (b, s, m, h) within each segment
        entering = pass_states(final.reshape(b, s, h, p, n), cum[:, :, -1], initial_state)  # (b, s + 1, h, p, n)
        decay = cum.exp_()  # (b, s, m, h): exp(cum_t), the entering state's decay to step t
        Cs = C[:, :main].reshape(b, s, m, g, n)
        group = max(1, CORRECTION_BYTES // (b * m * h * p * 4))
        for k0 in range(0 if initial_state is not None else 1, s, group):  # segment 0 enters from zero without one
            k1 = min(s, k0 + group)
            # (b, k, m, g, n) . (b, k, g, h/g, p, n) -> (b, k, m, h, p), times the decay from each segment's start
            enter = torch.einsum("bkmgn,bkgrpn->bkmgrp", Cs[:, k0:k1].float(),
                                 entering[:, k0:k1].reshape(b, k1 - k0, g, h // g, p, n))
            y[:, k0:k1] += enter.reshape(b, k1 - k0, m, h, p).mul_(decay[:, k0:k1, :, :, None])
    state = entering[:, s]  # (b, h, p, n), leaving the last segment
    if main == l:
        return y.reshape(b, l, h, p), state
    tail = {} if buf is None else {"out": buf[:, main:]}
    y_tail, state = scan(x[:, main:], dt[:, main:], A, B[:, main:], C[:, main:], D, state, **tail)
    if buf is not None:
        return buf, state.float()
    return torch.cat([y.reshape(b, main, h, p), y_tail.to(y.dtype)], 1), state.float()
