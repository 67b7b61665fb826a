"""The Mamba2 state-space model in plain PyTorch: the executable specification of SSD.

Mamba2 (Dao & Gu, "Transformers are SSMs", 2024) runs, per head h with a scalar decay A_h < 0,

    state_t = exp(dt_t * A_h) * state_{t-1} + dt_t * x_t ⊗ B_t        state: (headdim p, d_state n)
    y_t     = state_t · C_t + D_h * x_t

where B_t, C_t are shared by the heads of one group. SAMBA (Hong, Mackellar, Ghane, arXiv 2511.18571)
uses Mamba2 in its encoder, decoder and differential-Mamba bottleneck; this file is the reference that
every faster path (our Triton kernel, `samba.ops.triton.ssd`, and mamba_ssm's) is tested against.

- `ssd_recurrent` is the definition above, one time step at a time (slow; float64 friendly).
- `ssd_chunked` is the state-space-duality algorithm ("SSD", Listing 1 of the Mamba2 paper, mamba_ssm's
  `ssd_minimal_discrete`), extended with ngroups, D, initial states and lengths that are not a multiple of
  the chunk size. Inside a chunk of Q steps it is a masked (Q x Q) matrix product; between chunks the
  states are passed by a scan over chunks that is itself blocked (see `_pass_states`), so time and memory
  are linear in L for a fixed chunk size. It is the CPU path and the torch backend of `Mamba2`.
- `ssm_scan` is what a Mamba2 layer calls: dt through softplus, then the SSD on the backend the layer resolved
  (`samba.ops.backend`): this reference, our Triton kernel, or mamba_ssm's `mamba_chunk_scan_combined`.

Shapes: b batch, l length, h heads, p headdim, g groups (h % g == 0), n d_state, c chunks, q chunk_size.
"""

from __future__ import annotations

import math
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor

from .config import KernelConfig
from .segments import scan_in_segments, segments_for
from .upstream import mamba_ssm_kernels, require_mamba_ssm

__all__ = ["ssd_recurrent", "ssd_chunked", "ssd_chunked_lean", "segsum", "ssm_scan", "softplus_dt", "use_triton_scan"]


def _check_shapes(x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor | None,
                  initial_state: Tensor | None) -> tuple[int, int, int, int, int, int]:
    if x.dim() != 4:
        raise ValueError(f"x must be (batch, length, nheads, headdim), got shape {tuple(x.shape)}")
    b, l, h, p = x.shape
    if dt.shape != (b, l, h):
        raise ValueError(f"dt must be (batch, length, nheads) = {(b, l, h)}, got {tuple(dt.shape)}")
    if A.shape != (h,):
        raise ValueError(f"A must be (nheads,) = ({h},), got {tuple(A.shape)}")
    if B.dim() != 4 or B.shape[:2] != (b, l) or B.shape != C.shape:
        raise ValueError(f"B and C must both be (batch, length, ngroups, d_state) with batch, length = {(b, l)}, "
                         f"got {tuple(B.shape)} and {tuple(C.shape)}")
    g, n = B.shape[2], B.shape[3]
    if h % g != 0:
        raise ValueError(f"nheads ({h}) must be divisible by ngroups ({g})")
    if D is not None and D.shape not in ((h,), (h, p)):
        raise ValueError(f"D must be (nheads,) = ({h},) or (nheads, headdim) = {(h, p)}, got {tuple(D.shape)}")
    if initial_state is not None and initial_state.shape != (b, h, p, n):
        raise ValueError(f"initial_state must be (batch, nheads, headdim, d_state) = {(b, h, p, n)}, "
                         f"got {tuple(initial_state.shape)}")
    return b, l, h, p, g, n


def _skip(x: Tensor, D: Tensor | None) -> Tensor | None:
    """D * x with D (h,) or (h, p); x (b, l, h, p)."""
    if D is None:
        return None
    return x * (D[:, None] if D.dim() == 1 else D)


def ssd_recurrent(x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor | None = None,
                  initial_state: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """The Mamba2 SSM, one step at a time (the plain definition).

    Args:
        x: (b, l, h, p) inputs.  dt: (b, l, h) step sizes, already softplus'd and biased.
        A: (h,) negative decay rates.  B, C: (b, l, g, n) with h divisible by g; head i uses group i // (h/g).
        D: None, (h,) or (h, p) skip.  initial_state: None or (b, h, p, n).
    Returns:
        y (b, l, h, p) and the final state (b, h, p, n), both in x's dtype.
    """
    b, l, h, p, g, n = _check_shapes(x, dt, A, B, C, D, initial_state)
    Bh = B.repeat_interleave(h // g, dim=2)  # (b, l, h, n)
    Ch = C.repeat_interleave(h // g, dim=2)  # (b, l, h, n)
    decay = torch.exp(dt * A)  # (b, l, h)
    state = x.new_zeros(b, h, p, n) if initial_state is None else initial_state.to(x.dtype)
    ys = []
    for t in range(l):
        inp = (dt[:, t, :, None] * x[:, t])[..., None] * Bh[:, t, :, None, :]  # (b, h, p, n)
        state = decay[:, t, :, None, None] * state + inp
        ys.append(torch.einsum("bhpn,bhn->bhp", state, Ch[:, t]))
    y = torch.stack(ys, dim=1) if ys else x.new_zeros(b, 0, h, p)  # (b, l, h, p)
    skip = _skip(x, D)
    if skip is not None:
        y = y + skip
    return y, state


def segsum(a: Tensor) -> Tensor:
    """Stable segment sums: out[..., i, j] = a[..., j+1] + ... + a[..., i] for i >= j, -inf above the diagonal.

    exp(segsum(a)) is the (T x T) lower-triangular decay matrix of a scalar linear recurrence. Summing the
    masked values (instead of subtracting two cumulative sums) avoids cancellation when the sums are large.
    a: (..., T) -> (..., T, T)
    """
    T = a.shape[-1]
    strictly_lower = torch.ones(T, T, dtype=torch.bool, device=a.device).tril(-1)
    lower = torch.ones(T, T, dtype=torch.bool, device=a.device).tril(0)
    rep = a[..., :, None].expand(*a.shape, T)  # (..., T [k], T [j]) = a[k]
    rep = rep.masked_fill(~strictly_lower, 0.0)  # keep a[k] for k > j
    out = torch.cumsum(rep, dim=-2)  # (..., i, j) = sum_{j < k <= i} a[k]
    return out.masked_fill(~lower, float("-inf"))


class _ContiguousGrad(torch.autograd.Function):
    """Identity whose backward makes the incoming gradient contiguous.

    The gradient of the final (chunk-major -> time-major) permute arrives as a permuted view; CPU bmm then
    falls back to a per-matrix loop in the backward (measured 20x slower). One copy here avoids that.
    """

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # noqa: D102
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # noqa: D102
        return grad.contiguous()


def _contiguous_grad(x: Tensor) -> Tensor:
    return _ContiguousGrad.apply(x) if torch.is_grad_enabled() and x.requires_grad else x


def _intra_chunk_decay(dA: Tensor) -> Tensor:
    """exp(segsum(dA)) with ones instead of zeros above the diagonal (callers apply the causal mask).

    Same stable term-by-term sums as `segsum`, in three passes over the (T x T) tensor instead of five.
    dA: (..., T) -> (..., T, T)
    """
    T = dA.shape[-1]
    strictly_lower = torch.ones(T, T, dtype=torch.bool, device=dA.device).tril(-1)
    terms = torch.where(strictly_lower, dA[..., :, None], 0.0)  # (..., T [k], T [j]) = dA[k] if k > j
    return torch.exp(torch.cumsum(terms, dim=-2))  # (..., i, j) = exp(sum_{j < k <= i} dA[k])


def _pass_states(inc: Tensor, log_decay: Tensor, initial: Tensor | None, block: int = 64) -> tuple[Tensor, Tensor]:
    """Scalar-decay linear scan s_k = exp(a_k) s_{k-1} + inc_k over the chunk axis.

    inc: (..., c, d) per-chunk state increments; log_decay a: (..., c); initial s_{-1}: (..., d) or None.
    Returns (entering (..., c, d) = s_{k-1} for every k, final (..., d) = s_{c-1}).

    Up to `block` chunks this is one masked (c x c) matrix product, the matrix form of SSD. Beyond that the
    chunks are grouped into blocks and the same function is applied to the blocks' totals (recursively), so
    the cost stays linear in c instead of quadratic.
    """
    c, d = inc.shape[-2], inc.shape[-1]
    if c <= block:
        mat = torch.exp(segsum(log_decay))  # (..., c, c)
        after = mat @ inc  # (..., c, d) state after each chunk from a zero start
        if initial is None:
            initial = inc.new_zeros(inc.shape[:-2] + (d,))
        else:
            after = after + torch.exp(torch.cumsum(log_decay, dim=-1))[..., None] * initial[..., None, :]
        entering = torch.cat([initial[..., None, :], after[..., :-1, :]], dim=-2)
        return entering, after[..., -1, :]
    m = math.ceil(c / block)
    pad = m * block - c  # zero increments with zero log-decay leave the final state unchanged
    inc_b = F.pad(inc, (0, 0, 0, pad)).unflatten(-2, (m, block))  # (..., m, block, d)
    a_b = F.pad(log_decay, (0, pad)).unflatten(-1, (m, block))  # (..., m, block)
    local_entering, block_inc = _pass_states(inc_b, a_b, None, block)  # (..., m, block, d), (..., m, d)
    block_entering, final = _pass_states(block_inc, a_b.sum(-1), initial, block)  # (..., m, d), (..., d)
    decay_before = torch.exp(torch.cumsum(F.pad(a_b[..., :-1], (1, 0)), dim=-1))  # (..., m, block)
    entering = local_entering + decay_before[..., None] * block_entering[..., None, :]
    return entering.flatten(-3, -2)[..., :c, :], final


def ssd_chunked(x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, chunk_size: int,
                D: Tensor | None = None, initial_state: Tensor | None = None,
                return_final_state: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """The Mamba2 SSM by state-space duality, chunk by chunk, in plain PyTorch (same result as `ssd_recurrent`).

    Args: as `ssd_recurrent`, plus `chunk_size` (any L works: the sequence is zero-padded internally, with
    dt = 0 on the padding so the final state is exact). float16/bfloat16 inputs are computed in float32.
    Returns:
        y (b, l, h, p) in x's dtype, and the final state (b, h, p, n) when return_final_state.
    """
    b, l, h, p, g, n = _check_shapes(x, dt, A, B, C, D, initial_state)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    with torch.autocast(device_type=x.device.type, enabled=False):  # the reference scan always runs in >= fp32
        return _ssd_chunked(x, dt, A, B, C, chunk_size, D, initial_state, return_final_state)


def _ssd_chunked(x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, chunk_size: int, D: Tensor | None,
                 initial_state: Tensor | None, return_final_state: bool) -> Tensor | tuple[Tensor, Tensor]:
    b, l, h, p = x.shape
    g, n = B.shape[2], B.shape[3]
    out_dtype = x.dtype
    work = torch.promote_types(x.dtype, torch.float32)
    x_, dt_, A_, B_, C_ = (t.to(work) for t in (x, dt, A, B, C))
    r = h // g  # heads per group
    q = chunk_size
    c = max(1, math.ceil(l / q))
    pad = c * q - l
    if pad:
        x_ = F.pad(x_, (0, 0, 0, 0, 0, pad))
        dt_ = F.pad(dt_, (0, 0, 0, pad))
        B_ = F.pad(B_, (0, 0, 0, 0, 0, pad))
        C_ = F.pad(C_, (0, 0, 0, 0, 0, pad))

    # Work layout: heads split as (g, r) so that B and C broadcast over the r heads of their group;
    # states are kept as (n, p) so that every matrix product below reads its operands without a copy.
    xdt = x_.view(b, c, q, g, r, p).permute(0, 1, 3, 4, 2, 5) * dt_.view(b, c, q, g, r, 1).permute(
        0, 1, 3, 4, 2, 5)  # (b, c, g, r, q, p) = dt_s * x_s
    dtc = dt_.view(b, c, q, g, r).permute(0, 1, 3, 4, 2)  # (b, c, g, r, q)
    Bc = B_.view(b, c, q, g, n).permute(0, 1, 3, 2, 4)  # (b, c, g, q, n)
    Cc = C_.view(b, c, q, g, n).permute(0, 1, 3, 2, 4)  # (b, c, g, q, n)
    dA = dtc * A_.view(g, r, 1)  # (b, c, g, r, q) log-decay of each step
    dA_cum = torch.cumsum(dA, dim=-1)  # (b, c, g, r, q)

    # 1. Within each chunk: y = (C B^T ∘ decay) (dt x), a causally masked (q x q) "attention".
    #    decay[t, s] = exp(dA[s+1] + ... + dA[t]) summed term by term (no cancellation); above the diagonal it
    #    is exp(0) = 1 and the causal mask on C B^T zeroes it (no -inf, so no NaN in the backward).
    decay = _intra_chunk_decay(dA)  # (b, c, g, r, q [t], q [s])
    scores = (Cc @ Bc.transpose(-1, -2)).tril().unsqueeze(3)  # (b, c, g, 1, q, q)
    y = (decay * scores) @ xdt  # (b, c, g, r, q, p)

    # 2. Each chunk's own contribution to the state at its end: sum_s decay(s -> end) B_s ⊗ dt_s x_s.
    B_to_end = Bc.unsqueeze(3) * decay[..., -1, :, None]  # (b, c, g, r, q, n)
    inc = B_to_end.transpose(-1, -2) @ xdt  # (b, c, g, r, n, p)

    # 3. Pass states across chunks (linear scan over c with decay exp(sum of the chunk's dA)).
    init = None if initial_state is None else initial_state.to(work).reshape(b, g, r, p, n).transpose(-1, -2)
    entering, final = _pass_states(
        inc.flatten(-2).permute(0, 2, 3, 1, 4),  # (b, g, r, c, n*p)
        dA_cum[..., -1].permute(0, 2, 3, 1),  # (b, g, r, c)
        None if init is None else init.flatten(-2),  # (b, g, r, n*p)
    )
    entering = entering.permute(0, 3, 1, 2, 4).unflatten(-1, (n, p))  # (b, c, g, r, n, p)

    # 4. The entering state's contribution to every step of the chunk: exp(dA_cum_t) C_t · state.
    C_from_start = Cc.unsqueeze(3) * torch.exp(dA_cum)[..., None]  # (b, c, g, r, q, n)
    y = y + C_from_start @ entering  # (b, c, g, r, q, p)

    y = _contiguous_grad(y).permute(0, 1, 4, 2, 3, 5).reshape(b, c * q, h, p)[:, :l]  # (b, l, h, p)
    skip = _skip(x_[:, :l], None if D is None else D.to(work))
    if skip is not None:
        y = y + skip
    final = final.reshape(b, h, n, p).transpose(-1, -2)  # (b, h, p, n)
    y = y.to(out_dtype)
    if return_final_state:
        return y, final.to(out_dtype)
    return y


def ssd_chunked_lean(x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, chunk_size: int,
                     D: Tensor | None = None, initial_state: Tensor | None = None,
                     return_final_state: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """`ssd_chunked` for inference on CPU: the same chunked algorithm in fewer passes over memory (no autograd).

    What differs from the reference, and why it is faster on a CPU where these passes are memory-bound:
    heads-first, time-contiguous layouts (b, h, l, p) made once, so every matrix product reads contiguous
    operands (no hidden copies); the intra-chunk decay as exp(min(cum_t - cum_s, 0)) of the within-chunk
    cumulative log-decay, written once and then scaled in place by the masked C B^T (the reference sums the
    terms one by one to avoid cancellation: here the difference of two float32 sums of one chunk, an absolute
    error of about 1e-7 |cum| in the exponent); the entering state's contribution and the D skip added in
    place. Result equal to `ssd_chunked` within float32 rounding (tests/ops/test_ssd.py). Returns y (b, l, h, p)
    as a time-major view of a heads-first buffer, float32 (or float64).
    """
    b, l, h, p, g, n = _check_shapes(x, dt, A, B, C, D, initial_state)
    work = torch.promote_types(x.dtype, torch.float32)
    r, q = h // g, chunk_size
    c = max(1, math.ceil(l / q))
    lp = c * q
    # autocast off: under CPU bf16 autocast the products below would come out bf16 and the in-place baddbmm_ into
    # the float32 y would refuse the mix; the scan runs in `work` precision whatever the caller's autocast
    with torch.no_grad(), torch.autocast("cpu", enabled=False):
        xdt = x.new_zeros(b, h, lp, p, dtype=work)  # (b, h, lp, p), zero on the padding
        torch.mul(x.permute(0, 2, 1, 3), dt.permute(0, 2, 1).unsqueeze(-1), out=xdt[:, :, :l])
        dA = F.pad((dt.to(work) * A.to(work)).permute(0, 2, 1), (0, lp - l))  # (b, h, lp), dt = 0 on the padding
        cum = dA.view(b, g, r, c, q).cumsum(-1)  # (b, g, r, c, q) within-chunk cumulative log-decay
        Bt = F.pad(B.to(work).permute(0, 2, 1, 3), (0, 0, 0, lp - l)).view(b, g, c, q, n)  # (b, g, c, q, n)
        Ct = F.pad(C.to(work).permute(0, 2, 1, 3), (0, 0, 0, lp - l)).view(b, g, c, q, n)
        xdt6 = xdt.view(b, g, r, c, q, p)

        # 1. within chunks: (C B^T masked, times the decay) @ (dt x)
        scores = (Ct @ Bt.transpose(-1, -2)).tril_()  # (b, g, c, q, q), causal
        decay = (cum[..., :, None] - cum[..., None, :]).clamp_(max=0.0).exp_()  # (b, g, r, c, q, q)
        decay.mul_(scores.unsqueeze(2))
        y = decay @ xdt6  # (b, g, r, c, q, p)
        del decay, scores

        # 2. each chunk's state increment, 3. passed across chunks, 4. read by every step of the next chunk
        to_end = torch.exp(cum[..., -1:] - cum)  # (b, g, r, c, q)
        inc = (Bt.unsqueeze(2) * to_end[..., None]).transpose(-1, -2) @ xdt6  # (b, g, r, c, n, p)
        init = None if initial_state is None else initial_state.to(work).reshape(b, g, r, p, n).transpose(-1, -2)
        entering, final = _pass_states(inc.flatten(-2), cum[..., -1],
                                       None if init is None else init.flatten(-2))  # (b, g, r, c, n*p), (b, g, r, n*p)
        from_start = Ct.unsqueeze(2) * torch.exp(cum).unsqueeze(-1)  # (b, g, r, c, q, n)
        y.view(-1, q, p).baddbmm_(from_start.reshape(-1, q, n), entering.reshape(-1, n, p))

        y = y.view(b, h, lp, p)[:, :, :l]  # (b, h, l, p)
        if D is not None:
            y.addcmul_(x.permute(0, 2, 1, 3), (D[:, None, None] if D.dim() == 1 else D[:, None, :]).to(work))
        y = y.permute(0, 2, 1, 3)  # (b, l, h, p) view
        if return_final_state:
            return y, final.reshape(b, h, n, p).transpose(-1, -2)  # (b, h, p, n)
        return y


def _lean_applies(x: Tensor) -> bool:
    """The lean scan runs the torch backend's inference on CPU (no autograd graph to keep), eagerly: under
    `torch.compile` the reference scan runs instead, which inductor fuses (its lowering of the lean scan's
    in-place, strided 6-D product fails)."""
    return not x.is_cuda and not (torch.is_grad_enabled() and x.requires_grad) and not torch.compiler.is_compiling()


# ---------------------------------------------------------------------------------------------- dispatch
def softplus_dt(dt: Tensor, dt_bias: Tensor, dt_limit: tuple[float, float]) -> Tensor:
    """softplus(dt + dt_bias) clamped to dt_limit, in at least float32 (as the Triton kernels compute it)."""
    work = torch.promote_types(dt.dtype, torch.float32)
    dt = F.softplus(dt.to(work) + dt_bias.to(work))  # threshold 20 like mamba's kernel
    if tuple(dt_limit) != (0.0, float("inf")):
        dt = dt.clamp(min=dt_limit[0], max=dt_limit[1])
    return dt


def use_triton_scan(x: Tensor, B: Tensor, kernels: KernelConfig) -> bool:
    """Our Triton scan for x (b, l, h, p), B (b, l, g, n) on the triton backend: switched on, CUDA, not float64
    (it accumulates in float32), headdim and d_state powers of two >= 16, and at least
    ``kernels.scan_min_programs`` (sample, head) programs.

    Why a program threshold: our scan runs one program per (sample, head) along the whole sequence; mamba_ssm's
    spreads the chunks over the GPU. The 10-minute train step, checkpointed one sample per piece, runs 8 programs
    walking 1,200 chunks each; with the walking backward it measured 128.8 ms on ours vs 53.6 ms on mamba_ssm's
    kernels (H200). The chunk-parallel backward (the default) brought it to 68.2 ms; what is left is the forward's
    walk. A threshold that helps there without slowing small batches of short windows is not yet measured (0)."""
    if not (kernels.triton_scan and x.is_cuda and x.dtype != torch.float64):
        return False
    from .triton.ssd import supported

    return supported(x, B) and x.shape[0] * x.shape[2] >= kernels.scan_min_programs


def ssm_scan(x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor, dt_bias: Tensor, dt_limit,
             z: Tensor | None, backend: str, kernels: KernelConfig, chunk_size: int, torch_chunk_size: int,
             initial_state: Tensor | None = None, return_final_state: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """Mamba2's selective scan on a resolved backend: dt -> softplus(dt + dt_bias) (clamped to dt_limit), the SSD
    with the D skip, then y * silu(z) when z is given (the variant without RMSNorm). Shared by Mamba2 and DiffMamba.

    x, z (b, l, h, p); dt (b, l, h) raw; A (h,); B, C (b, l, g, n); D (h,) or (h, p) -> y (b, l, h, p).
    triton: our kernel where `use_triton_scan`, else mamba_ssm's when importable, else the reference;
    mamba_ssm: its kernel; torch: ssd_chunked with chunks of ``torch_chunk_size`` (the result does not depend on it);
    on CPU `ssd_chunked_lean` without autograd and `ssd_train.ssd_chunked_train` with it.

    Carrying a state (time-chunked inference): ``initial_state`` (b, h, p, n) starts the scan from it and
    ``return_final_state`` returns ``(y, final_state)``. Without autograd our Triton scan carries it
    (`triton.ssd.ssd_scan_carry_triton`); its backward starts from zero only, so a carried state under autograd
    runs on mamba_ssm's kernel when it is importable (CUDA), else on the reference ``ssd_chunked``.
    Without autograd on our scan, fewer (sample, head) programs than ``kernels.scan_segment_programs`` run the
    sequence as segments side by side (`samba.ops.segments.scan_in_segments`).
    """
    carry = initial_state is not None or return_final_state
    ours = backend == "triton" and use_triton_scan(x, B, kernels)
    inference = False  # on our scan without autograd: what its carrying and segmented forms need (no backward)
    if ours:
        from .triton.ssd import grad_needed

        inference = not grad_needed(x, dt, A, B, C, D, dt_bias, z, initial_state)
        ours = inference or not carry
    upstream = backend == "mamba_ssm" or (backend == "triton" and not ours and mamba_ssm_kernels() is not None)
    if upstream:
        limit = {} if tuple(dt_limit) == (0.0, float("inf")) else {"dt_limit": dt_limit}
        scan = require_mamba_ssm(kernels.autotune).mamba_chunk_scan_combined
        if carry:
            limit.update(initial_states=initial_state, return_final_states=True)
            y, final = scan(x, dt, A, B, C, chunk_size=chunk_size, D=D, z=z, dt_bias=dt_bias, dt_softplus=True,
                            **limit)
            return (y, final) if return_final_state else y
        return scan(x, dt, A, B, C, chunk_size=chunk_size, D=D, z=z, dt_bias=dt_bias, dt_softplus=True, **limit)
    dt = softplus_dt(dt, dt_bias, dt_limit)  # (b, l, h) float32; autograd differentiates the softplus
    final = None
    segments = segments_for(x, kernels.scan_segment_programs, kernels.scan_segment_min_steps) if inference else 1
    if ours and (carry or segments > 1):  # our carrying scan: a carried state, and / or few (sample, head)
        from .triton.ssd import ssd_scan_carry_triton  # programs run as segments side by side (1: one call)

        y, final = scan_in_segments(partial(ssd_scan_carry_triton, kernels=kernels), x, dt, A, B, C, D,
                                    initial_state, segments)
    elif ours:
        from .triton.ssd import ssd_scan_triton

        y = ssd_scan_triton(x, dt, A, B, C, D, kernels=kernels)
    elif carry:
        scan = ssd_chunked_lean if _lean_applies(x) and not dt.requires_grad else ssd_chunked
        y, final = scan(x, dt, A, B, C, torch_chunk_size, D=D, initial_state=initial_state, return_final_state=True)
    elif _lean_applies(x) and not dt.requires_grad:
        y = ssd_chunked_lean(x, dt, A, B, C, torch_chunk_size, D=D)
    elif not x.is_cuda:  # CPU training: the same scan with a hand-written backward (fewer memory-bound passes)
        from . import ssd_train

        y = ssd_train.ssd_chunked_train(x, dt, A, B, C, torch_chunk_size, D=D)
    else:
        y = ssd_chunked(x, dt, A, B, C, torch_chunk_size, D=D)
    y = y if z is None else y * F.silu(z)
    return (y, final) if return_final_state else y
