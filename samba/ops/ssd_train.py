"""`ssd_chunked` for training on CPU: the chunked SSD as one autograd Function with a hand-written backward.

Autograd through the reference `ssd_chunked` keeps a dozen full-size (q x q)-per-step temporaries and replays the
term-by-term decay sums backwards (masked fill, flip, cumsum, flip, products); on a 2-core CPU these
memory-bound passes, not the matrix products, dominate the scan's cost. Here the forward is the lean layout of
`ssd_chunked_lean` (heads-first, time-contiguous, decay from differences of the within-chunk cumulative
log-decay) and the backward touches each (q x q) tensor a few times:

    y      = (L ∘ S) @ xdt + (C ∘ exp(cum)) @ E          L[t, s] = exp(cum_t - cum_s), S = tril(C B^T)
    inc    = (B ∘ exp(cum_end - cum))^T @ xdt            E = states entering each chunk, from `_pass_states`

    d cum_t += sum_s G[t, s] - sum_s G[s, t]   with G = dM ∘ L ∘ S, dM = dy @ xdt^T

The inter-chunk pass acts on (c x n*p) tensors only; its backward is autograd's on a recomputation.
Result equal to `ssd_chunked` (gradients included) up to rounding: tests/ops/test_ssd_train.py, in float64.

Shapes: b batch, l length, h heads (g groups of r), p headdim, n d_state, c chunks of q steps, lp = c*q.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .ssd import _check_shapes, _pass_states, _skip

__all__ = ["ssd_chunked_train"]


def _heads_first(t: Tensor, lp: int) -> Tensor:
    """(b, l, k, ...) -> (b, k, lp, ...) contiguous, zero-padded along time to lp steps."""
    t = t.movedim(1, 2)
    pad = [0, 0] * (t.dim() - 3) + [0, lp - t.shape[2]]
    return F.pad(t, pad).contiguous()


class _SSDChunked(torch.autograd.Function):
    """y (b, l, h, p) of the scan without the D skip, from x (b, l, h, p), dt (b, l, h), A (h,), B, C (b, l, g, n)."""

    @staticmethod
    def forward(ctx, x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, q: int) -> Tensor:  # noqa: D102
        b, l, h, p = x.shape
        g, n = B.shape[2], B.shape[3]
        r = h // g
        c = max(1, math.ceil(l / q))
        lp = c * q
        X = _heads_first(x, lp).view(b, g, r, c, q, p)  # zero on the padding
        dtl = _heads_first(dt, lp).view(b, g, r, c, q)  # dt = 0 on the padding: no decay
        Bt = _heads_first(B, lp).view(b, g, c, q, n)
        Ct = _heads_first(C, lp).view(b, g, c, q, n)
        xdt = X * dtl[..., None]  # (b, g, r, c, q, p)
        cum = (dtl * A.view(g, r, 1, 1)).cumsum(-1)  # (b, g, r, c, q) within-chunk cumulative log-decay

        # within chunks; L above the diagonal is clamped to exp(0) (finite) and masked by S
        S = (Ct @ Bt.transpose(-1, -2)).tril_()  # (b, g, c, q, q)
        L = (cum[..., :, None] - cum[..., None, :]).clamp_(max=0.0).exp_()  # (b, g, r, c, q [t], q [s])
        M = L * S[:, :, None]
        y = M @ xdt  # (b, g, r, c, q, p)

        # each chunk's state increment, passed across chunks, read by every step of the chunk
        W = Bt[:, :, None] * torch.exp(cum[..., -1:] - cum)[..., None]  # (b, g, r, c, q, n)
        inc = W.transpose(-1, -2) @ xdt  # (b, g, r, c, n, p)
        entering, _ = _pass_states(inc.flatten(-2), cum[..., -1], None)  # (b, g, r, c, n*p)
        E = entering.view(b, g, r, c, n, p)
        from_start = Ct[:, :, None] * torch.exp(cum)[..., None]  # (b, g, r, c, q, n)
        y.view(-1, q, p).baddbmm_(from_start.reshape(-1, q, n), E.reshape(-1, n, p))

        ctx.save_for_backward(X, dtl, A, Bt, Ct, xdt, cum, S, L, M, W, inc, E, from_start)
        ctx.dims = (b, l, h, p, g, n, r, c, q)
        return y.view(b, h, lp, p)[:, :, :l].permute(0, 2, 1, 3)  # (b, l, h, p) view of a heads-first buffer

    @staticmethod
    def backward(ctx, dy: Tensor):  # noqa: D102
        X, dtl, A, Bt, Ct, xdt, cum, S, L, M, W, inc, E, from_start = ctx.saved_tensors
        b, l, h, p, g, n, r, c, q = ctx.dims
        lp = c * q
        dy = _heads_first(dy, lp).view(b, g, r, c, q, p)  # heads-first, contiguous

        # the entering states' term: y += from_start @ E
        d_from = dy @ E.transpose(-1, -2)  # (b, g, r, c, q, n)
        dE = from_start.transpose(-1, -2) @ dy  # (b, g, r, c, n, p)
        dCt = (d_from * torch.exp(cum)[..., None]).sum(2)  # (b, g, c, q, n)
        dcum = (d_from * from_start).sum(-1)  # (b, g, r, c, q)

        # the inter-chunk pass (small: c x n*p), differentiated by autograd on a recomputation
        with torch.enable_grad():
            inc_ = inc.detach().flatten(-2).requires_grad_()
            end_ = cum[..., -1].detach().requires_grad_()
            entering, _ = _pass_states(inc_, end_, None)
            d_inc, d_end = torch.autograd.grad(entering, (inc_, end_), dE.flatten(-2))
        d_inc = d_inc.view(b, g, r, c, n, p)

        # the increments: inc = W^T @ xdt, W = B ∘ exp(cum_end - cum)
        dW = xdt @ d_inc.transpose(-1, -2)  # (b, g, r, c, q, n)
        dxdt = W @ d_inc  # (b, g, r, c, q, p)
        G_w = (dW * W).sum(-1)  # (b, g, r, c, q)
        dBt = (dW.mul_(torch.exp(cum[..., -1:] - cum)[..., None])).sum(2)  # (b, g, c, q, n)
        dcum -= G_w
        d_end = d_end + G_w.sum(-1)

        # within chunks: y += (L ∘ S) @ xdt
        dM = dy @ xdt.transpose(-1, -2)  # (b, g, r, c, q, q)
        dxdt.add_(M.transpose(-1, -2) @ dy)
        P = dM.mul_(L)  # dM ∘ L
        dS = P.sum(2).tril_()  # (b, g, c, q, q)
        G = P.mul_(S[:, :, None])  # dM ∘ L ∘ S
        dcum += G.sum(-1) - G.sum(-2)
        dCt += dS @ Bt
        dBt += dS.transpose(-1, -2) @ Ct
        dcum[..., -1] += d_end

        # cum = cumsum(dt * A), xdt = x * dt
        d_dA = dcum.flip(-1).cumsum(-1).flip(-1)  # (b, g, r, c, q) reverse cumulative sum
        ddt = d_dA * A.view(g, r, 1, 1) + (dxdt * X).sum(-1)
        dA = (d_dA * dtl).sum((0, 3, 4)).reshape(h)
        dX = dxdt.mul_(dtl[..., None])

        dx = dX.view(b, h, lp, p)[:, :, :l].permute(0, 2, 1, 3)  # (b, l, h, p)
        ddt = ddt.view(b, h, lp)[:, :, :l].permute(0, 2, 1)  # (b, l, h)
        dB = dBt.view(b, g, lp, n)[:, :, :l].permute(0, 2, 1, 3)  # (b, l, g, n)
        dC = dCt.view(b, g, lp, n)[:, :, :l].permute(0, 2, 1, 3)
        return dx, ddt, dA, dB, dC, None


def ssd_chunked_train(x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, chunk_size: int,
                      D: Tensor | None = None) -> Tensor:
    """`ssd_chunked` (zero initial state, no final state) with a hand-written backward, in at least float32.
    Args and result as `ssd_chunked`; the D skip is added by autograd outside the Function."""
    _check_shapes(x, dt, A, B, C, D, None)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    work = torch.promote_types(x.dtype, torch.float32)
    with torch.autocast(device_type=x.device.type, enabled=False):
        x_, dt_, A_, B_, C_ = (t.to(work) for t in (x, dt, A, B, C))
        y = _SSDChunked.apply(x_, dt_, A_, B_, C_, chunk_size)
        skip = _skip(x_, None if D is None else D.to(work))
        if skip is not None:
            y = y + skip
        return y.to(x.dtype)
