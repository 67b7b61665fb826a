"""Mamba2's SSD scan for SAMBA's small state (d_state 16) as one Triton kernel each way.

Why: at the full-rate layer about half of a training step is mamba_ssm's scan (results/profiles/
kernels_h100_train_b64_a6962f7.txt): five kernels forward and about ten backward, each a pass over
(B, L, heads, headdim) tensors plus (Q x Q) float32 buffers per chunk, with tiles chosen for d_state 64-128.
With d_state 16 a head's state is 16 x headdim values: small enough to live in registers for the whole
sequence. So here one program owns one (sample, head) and walks its chunks in order (forward) or in reverse
(backward), carrying the state (forward) or its gradient (backward) on chip; every chunk is a handful of
(64 x 64) matrix products. Each input is read once per direction and each output written once; the only extra
memory is the state at the start of every chunk (saved by the forward for the backward).

The price is parallelism: batch x heads programs (e.g. 64 x 8 = 512 at the training batch), and the chunks of
a sequence run one after another, so it suits large batches and long sequences, not batch 1 of a short window.

Math (per head, chunk of Q steps, a_t = cumsum(dt * A) inside the chunk, h the state entering it):
    y_t   = sum_{s<=t} exp(a_t - a_s) (C_t . B_s) dt_s x_s  +  exp(a_t) C_t h  +  D x_t
    h_out = exp(a_Q) h + sum_s exp(a_Q - a_s) dt_s B_s x_s^T
and the backward is derived from these two lines (see the kernel comments). `dt` comes in already through
softplus(dt + dt_bias) (and its clamp), which the caller leaves to autograd. Reference: `samba.ops.ssd.ssd_chunked`;
the tests compare the two in Triton's interpreter (CPU) and on CUDA.

Status: checked in the interpreter (6e-6 of the float64 reference) and run on an H200: the kernel
tables (batch 64 x 60 s) show 5.5 ms forward and 17.2 ms backward over all of SAMBA's Mamba2 layers (mamba_ssm's
13 scan kernels: 24.5 ms per train step and 5.9 ms per inference in an earlier H200 table, results/profiles/
kernels_h200_*_ef126e4.txt), with far fewer launches: the batch-4 x 60-s train step fell from 34.5-40.4 to
24.1 ms. Its CUDA tests then ran to the end on an H200 and it became the default (KernelConfig.triton_scan
=False turns it off); with its forward at 4 warps and no chunk states stored under
inference, SAMBA's inference at 60 s measured 1.51x BIOT's (results/archive/bench_h200_6b7f506.json).

Three backwards (KernelConfig.scan_backward). "walk": the one measured above; three times the forward's time, and ptxas
reports 592 B of register spills per thread at headdim 64. "split" (the default), written after
those measurements: a light reverse walk that only carries the state gradient (one (N x Q) @ (Q x P) product per
chunk, no spills) and stores it per chunk, then one program per (sample, head, chunk), all independent, doing the
chunk's full backward (36 B of spills at 8 warps). The split costs one more (b*h, chunks, N, P) float32 buffer and a
second read of dt, C and dy; it fills the GPU where batch x heads is small (e.g. batch 4: 32 programs walk 120 chunks
each at 60 s, 1,200 at 600 s). All three share the chunk code (`_bwd_chunk`) and match in the interpreter. Measured
(H200, eager train step batch 128 x 60 s): walk at 8 warps 94.1 ms, split at 4 warps 76.8 ms
(KernelConfig.scan_backward_launch). Its CUDA tests and a whole-model forward/backward check passed at 4 warps on an
H200, and split at 4 warps became the default: the benchmark's 60-s train throughput went from 88,691 to 111,330
EEG-s/s, the 10-minute batch-4 step from 128.8 to 69.8 ms (results/archive/bench_h200_8c594ce.json).
The third, "group" (written later): the split's first pass, then one program per
(sample, group, chunk) that runs the chunk's backward for each of the group's heads and sums their dB and dC on
chip, writing them once in their final dtype. The split writes them per head in float32, (B, L, H, N), and torch
sums each group's heads afterwards: at batch 128 x 60 s about 1 GB each for the bottleneck's 128 heads (8 per
group), 0.5 GB each at enc1. The price: ptxas (sm_90, offline) reports 1,980 B of spills per thread at headdim 64
and 4 warps (the split's kernel: 332 B), 436 B at headdim 16 (split: none). Measured (H200): slower
than the split over every head, faster for the narrow heads only, where it is the default (KernelConfig.scan_backward_narrow,
see the table above BWD_MODES); the benchmark's 60-s train throughput went from 118,829 to 122,023 EEG-s/s at batch 256
(results/archive/bench_h200_7ef1a39.json).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..config import SCAN_BACKWARDS, KernelConfig
from . import available, tl, triton, unit_last_stride

__all__ = ["available", "ssd_scan_triton", "ssd_scan_carry_triton", "ssd_fwd", "ssd_bwd", "supported",
           "grad_needed"]

DEFAULT = KernelConfig()

CHUNK = DEFAULT.scan_chunk  # time steps per chunk by default (KernelConfig.scan_chunk; the compile checks use it)
# The backward's warps (samba.ops.config.SCAN_BACKWARD_LAUNCH_DEFAULT): ptxas for sm_90 (offline, Triton 3.6) reports 592 B of spill stores
# per thread for the walking backward at 8 warps (4 warps: 1.7 kB; 16 warps: 1.4 kB), 36 B for the split's
# per-chunk kernel (4 warps: 332 B). Measured (H200, eager train step, batch 4 / 64 / 128 x 60 s, ms):
# split 4 warps 29.1 / 42.3 / 76.8, split 8 warps 29.7 / 50.5 / 92.1, walk 8 warps 27.7 / 53.7 / 94.1, walk 4 warps
# 25.5 / 51.4 / 93.6. Each backward's default is the launch its CUDA tests passed at. The forward runs
# 4 warps too (KernelConfig.scan_forward_launch, measured faster than 8).
NUM_WARPS = 4


if triton is not None:

    @triton.jit
    def _load_chunk(X, DT, Bm, Cm, b64, h, g, t64, mt, rp, rn, sxb, sxl, sxh, sdb, sdl, sdh, sbb, sbl, sbg,
                    scb, scl, scg, A_h):
        dt = tl.load(DT + b64 * sdb + t64 * sdl + h * sdh, mask=mt, other=0.0).to(tl.float32)  # (Q,)
        a = tl.cumsum(dt * A_h, axis=0)  # (Q,) log-decay from the chunk start, <= 0
        x = tl.load(X + b64 * sxb + t64[:, None] * sxl + h * sxh + rp[None, :], mask=mt[:, None], other=0.0)
        Bc = tl.load(Bm + b64 * sbb + t64[:, None] * sbl + g * sbg + rn[None, :], mask=mt[:, None], other=0.0)
        Cc = tl.load(Cm + b64 * scb + t64[:, None] * scl + g * scg + rn[None, :], mask=mt[:, None], other=0.0)
        return dt, a, x, Bc, Cc

    @triton.jit
    def _program(A, S, n_chunks, H, HPG, Q: tl.constexpr, P: tl.constexpr, N: tl.constexpr):
        """This program's (sample, head): its head h, group g, sample offset, decay rate, index ranges, the causal
        (Q, Q) mask and where its chunk-entry states live in S."""
        pid = tl.program_id(0)
        b, h = pid // H, pid % H
        A_h = tl.load(A + h).to(tl.float32)
        rq = tl.arange(0, Q)
        causal = rq[:, None] >= rq[None, :]
        s_base = S + pid.to(tl.int64) * n_chunks * N * P
        return pid, h, h // HPG, b.to(tl.int64), A_h, rq, tl.arange(0, P), tl.arange(0, N), causal, s_base

    @triton.jit
    def _ssd_fwd_kernel(X, DT, A, Bm, Cm, Dv, Y, S, H0, HF, L, n_chunks, H, HPG,
                        sxb, sxl, sxh, sdb, sdl, sdh, sbb, sbl, sbg, scb, scl, scg, syb, syl, syh,
                        HAS_D: tl.constexpr, D_PER_P: tl.constexpr, Q: tl.constexpr, P: tl.constexpr,
                        N: tl.constexpr, STORE_STATES: tl.constexpr, HAS_INIT: tl.constexpr = False,
                        STORE_FINAL: tl.constexpr = False):
        pid, h, g, b64, A_h, rq, rp, rn, causal, s_base = _program(A, S, n_chunks, H, HPG, Q, P, N)
        # H0 / HF: (b*h, n, p) float32, the state entering the first chunk / leaving the last (time chunks of
        # inference carry it from one call to the next, samba.nn.time_chunks)
        hp = pid.to(tl.int64) * N * P + rn[:, None] * P + rp[None, :]
        if HAS_INIT:
            state = tl.load(H0 + hp)  # the state entering the chunk (n, p)
        else:
            state = tl.zeros((N, P), dtype=tl.float32)
        for c in range(n_chunks):
            t = c * Q + rq
            mt = t < L
            t64 = t.to(tl.int64)
            dt, a, x, Bc, Cc = _load_chunk(X, DT, Bm, Cm, b64, h, g, t64, mt, rp, rn, sxb, sxl, sxh, sdb, sdl, sdh,
                                           sbb, sbl, sbg, scb, scl, scg, A_h)
            if STORE_STATES:  # for the backward; not under inference (at headdim 64, a third of the writes)
                tl.store(s_base + c * N * P + rn[:, None] * P + rp[None, :], state)
            CB = tl.dot(Cc, tl.trans(Bc))  # (Q, Q): C_t . B_s
            E = tl.exp(tl.where(causal, a[:, None] - a[None, :], float("-inf")))
            W = CB * E * dt[None, :]
            y = tl.dot(W.to(x.dtype), x)  # intra-chunk (Q, P)
            y += tl.exp(a)[:, None] * tl.dot(Cc, state.to(Cc.dtype))  # from the entering state
            if HAS_D:
                if D_PER_P:
                    y += tl.load(Dv + h * P + rp).to(tl.float32)[None, :] * x.to(tl.float32)
                else:
                    y += tl.load(Dv + h).to(tl.float32) * x.to(tl.float32)
            tl.store(Y + b64 * syb + t64[:, None] * syl + h * syh + rp[None, :], y.to(Y.dtype.element_ty),
                     mask=mt[:, None])
            a_last = tl.sum(tl.where(rq == Q - 1, a, 0.0), axis=0)  # masked steps have dt = 0: a_last = a_L
            u = tl.exp(a_last - a) * dt  # (Q,)
            state = tl.exp(a_last) * state + tl.dot(tl.trans((Bc.to(tl.float32) * u[:, None]).to(x.dtype)), x)
        if STORE_FINAL:  # after the last chunk, whose masked steps (dt = 0) neither decay nor add
            tl.store(HF + hp, state)

    @triton.jit
    def _bwd_chunk(X, DT, Bm, Cm, DY, DX, DDT, DBH, DCH, b64, h, g, c, h_in, dstate, A_h, d, rq, rp, rn, causal, L, H,
                   sxb, sxl, sxh, sdb, sdl, sdh, sbb, sbl, sbg, scb, scl, scg, syb, syl, syh, sob, sol, soh,
                   HAS_D: tl.constexpr, Q: tl.constexpr, N: tl.constexpr, STORE_BC: tl.constexpr = True):
        """The backward of chunk c of one (sample, head), given the state entering it (h_in, (N, P) fp32) and the
        gradient of the state leaving it (dstate, (N, P) fp32): stores dx, ddt (and, with STORE_BC, this head's dB
        and dC) of its steps and returns (gradient of h_in, dA terms (Q,), dD terms (P,), dB (Q, N), dC (Q, N)).
        Shared by the walking, the chunk-parallel and the group backward."""
        t = c * Q + rq
        mt = t < L
        t64 = t.to(tl.int64)
        dt, a, x, Bc, Cc = _load_chunk(X, DT, Bm, Cm, b64, h, g, t64, mt, rp, rn, sxb, sxl, sxh, sdb, sdl, sdh,
                                       sbb, sbl, sbg, scb, scl, scg, A_h)
        dy = tl.load(DY + b64 * syb + t64[:, None] * syl + h * syh + rp[None, :], mask=mt[:, None], other=0.0)
        dy = dy.to(x.dtype)
        xf, dyf = x.to(tl.float32), dy.to(tl.float32)
        ea = tl.exp(a)
        a_last = tl.sum(tl.where(rq == Q - 1, a, 0.0), axis=0)
        # intra-chunk term y_t += sum_s W_ts x_s, W_ts = E_ts CB_ts dt_s. Ordered so that few (Q, Q) tiles
        # are alive at once (register pressure: ptxas reports spills otherwise).
        G = tl.dot(dy, tl.trans(x))  # (Q, Q): dy_t . x_s
        E = tl.exp(tl.where(causal, a[:, None] - a[None, :], float("-inf")))
        T = G * E * dt[None, :]
        dC = tl.dot(T.to(Bc.dtype), Bc)  # sum_s T_ts B_s
        dB = tl.dot(tl.trans(T.to(Cc.dtype)), Cc)  # sum_t T_ts C_t
        CBE = tl.dot(Cc, tl.trans(Bc)) * E
        ddt = tl.sum(CBE * G, axis=0)  # direct d/d dt_s
        W = CBE * dt[None, :]
        Z = W * G
        da = tl.sum(Z, axis=1) - tl.sum(Z, axis=0)  # exp(a_t - a_s): +t, -s
        dx = tl.dot(tl.trans(W.to(dy.dtype)), dy)  # sum_t W_ts dy_t
        # entering-state term y_t += exp(a_t) C_t h_in
        CH = tl.dot(Cc, h_in.to(Cc.dtype))  # (Q, P)
        da += ea * tl.sum(dyf * CH, axis=1)
        dC += ea[:, None] * tl.dot(dy, tl.trans(h_in.to(dy.dtype)))
        dh_in = tl.dot(tl.trans((Cc.to(tl.float32) * ea[:, None]).to(dy.dtype)), dy)  # (N, P)
        # leaving state h_out = exp(a_last) h_in + sum_s u_s B_s x_s^T, u_s = exp(a_last - a_s) dt_s
        dec = tl.exp(a_last - a)
        u = dec * dt
        BD = tl.dot(Bc, dstate.to(Bc.dtype))  # (Q, P): B_s . dstate
        dx += u[:, None] * BD
        dB += u[:, None] * tl.dot(x, tl.trans(dstate.to(x.dtype)))
        q = tl.sum(xf * BD, axis=1)  # B_s^T dstate x_s
        ddt += dec * q
        da -= u * q
        extra = tl.sum(u * q, axis=0) + tl.exp(a_last) * tl.sum(tl.sum(h_in * dstate, axis=1), axis=0)
        da += tl.where(rq == Q - 1, extra, 0.0)
        dh_in += tl.exp(a_last) * dstate
        # a = cumsum(dt * A): d dt_s += A * sum_{t>=s} da_t; dA += sum_s dt_s * sum_{t>=s} da_t
        rc = tl.cumsum(da, axis=0, reverse=True)
        ddt += A_h * rc
        if HAS_D:
            dx += d * dyf
            dD = tl.sum(dyf * xf, axis=0)
        else:
            dD = tl.zeros_like(tl.sum(dyf, axis=0))
        tl.store(DX + b64 * sob + t64[:, None] * sol + h * soh + rp[None, :], dx.to(DX.dtype.element_ty),
                 mask=mt[:, None])
        tl.store(DDT + (b64 * L + t64) * H + h, ddt, mask=mt)
        if STORE_BC:
            bh = (b64 * L + t64[:, None]) * H * N + h * N + rn[None, :]
            tl.store(DBH + bh, dB, mask=mt[:, None])
            tl.store(DCH + bh, dC, mask=mt[:, None])
        return dh_in, dt * rc, dD, dB, dC

    @triton.jit
    def _skip_weight(Dv, h, rp, HAS_D: tl.constexpr, D_PER_P: tl.constexpr, P: tl.constexpr):
        """The D skip of head h as a (1, P) row or a scalar (0.0 without D)."""
        if HAS_D:
            if D_PER_P:
                d = tl.load(Dv + h * P + rp).to(tl.float32)[None, :]
            else:
                d = tl.load(Dv + h).to(tl.float32)
        else:
            d = 0.0
        return d

    @triton.jit
    def _ssd_bwd_kernel(X, DT, A, Bm, Cm, Dv, DY, S, DX, DDT, DBH, DCH, DAP, DDP, L, n_chunks, H, HPG,
                        sxb, sxl, sxh, sdb, sdl, sdh, sbb, sbl, sbg, scb, scl, scg, syb, syl, syh, sob, sol, soh,
                        HAS_D: tl.constexpr, D_PER_P: tl.constexpr, Q: tl.constexpr, P: tl.constexpr,
                        N: tl.constexpr):
        """The walking backward: one program per (sample, head) walks its chunks in reverse, carrying the state
        gradient on chip. Outputs: DX (B, L, H, P) in X's dtype, strides (sob, sol, soh, 1); DDT (B, L, H) fp32
        contiguous; DBH, DCH (B, L, H, N) fp32 per head (summed over a group's heads afterwards); DAP (B*H,),
        DDP (B*H, P) fp32."""
        pid, h, g, b64, A_h, rq, rp, rn, causal, s_base = _program(A, S, n_chunks, H, HPG, Q, P, N)
        d = _skip_weight(Dv, h, rp, HAS_D, D_PER_P, P)
        dstate = tl.zeros((N, P), dtype=tl.float32)  # d loss / d (state leaving the chunk)
        dA_acc = tl.zeros((Q,), dtype=tl.float32)
        dD_acc = tl.zeros((P,), dtype=tl.float32)
        for i in range(n_chunks):
            c = n_chunks - 1 - i
            h_in = tl.load(s_base + c * N * P + rn[:, None] * P + rp[None, :])  # (N, P) fp32
            dstate, dA_c, dD_c, _, _ = _bwd_chunk(X, DT, Bm, Cm, DY, DX, DDT, DBH, DCH, b64, h, g, c, h_in, dstate,
                                                  A_h, d, rq, rp, rn, causal, L, H, sxb, sxl, sxh, sdb, sdl, sdh, sbb,
                                                  sbl, sbg, scb, scl, scg, syb, syl, syh, sob, sol, soh, HAS_D, Q, N)
            dA_acc += dA_c
            dD_acc += dD_c
        tl.store(DAP + pid, tl.sum(dA_acc, axis=0))
        tl.store(DDP + pid * P + rp, dD_acc)

    @triton.jit
    def _ssd_bwd_dstate_kernel(DT, A, Cm, DY, S, DS, L, n_chunks, H, HPG, sdb, sdl, sdh, scb, scl, scg, syb, syl, syh,
                               Q: tl.constexpr, P: tl.constexpr, N: tl.constexpr):
        """Split backward, pass 1: one program per (sample, head) walks the chunks in reverse and stores the
        gradient of the state leaving each chunk (DS, laid out like S). Per chunk it reads only dt, C and dy and
        does one (N x Q) @ (Q x P) product: dstate <- exp(a_Q) dstate + (C * exp(a))^T dy."""
        pid, h, g, b64, A_h, rq, rp, rn, causal, s_base = _program(A, S, n_chunks, H, HPG, Q, P, N)
        ds_base = DS + pid.to(tl.int64) * n_chunks * N * P
        dstate = tl.zeros((N, P), dtype=tl.float32)
        for i in range(n_chunks):
            c = n_chunks - 1 - i
            tl.store(ds_base + c * N * P + rn[:, None] * P + rp[None, :], dstate)
            t = c * Q + rq
            mt = t < L
            t64 = t.to(tl.int64)
            dt = tl.load(DT + b64 * sdb + t64 * sdl + h * sdh, mask=mt, other=0.0).to(tl.float32)
            a = tl.cumsum(dt * A_h, axis=0)
            Cc = tl.load(Cm + b64 * scb + t64[:, None] * scl + g * scg + rn[None, :], mask=mt[:, None], other=0.0)
            dy = tl.load(DY + b64 * syb + t64[:, None] * syl + h * syh + rp[None, :], mask=mt[:, None], other=0.0)
            dy = dy.to(Cc.dtype)
            a_last = tl.sum(tl.where(rq == Q - 1, a, 0.0), axis=0)
            dstate = (tl.dot(tl.trans((Cc.to(tl.float32) * tl.exp(a)[:, None]).to(dy.dtype)), dy)
                      + tl.exp(a_last) * dstate)

    @triton.jit
    def _ssd_bwd_chunk_kernel(X, DT, A, Bm, Cm, Dv, DY, S, DS, DX, DDT, DBH, DCH, DAP, DDP, L, n_chunks, H, HPG,
                              sxb, sxl, sxh, sdb, sdl, sdh, sbb, sbl, sbg, scb, scl, scg, syb, syl, syh, sob, sol,
                              soh, HAS_D: tl.constexpr, D_PER_P: tl.constexpr, Q: tl.constexpr, P: tl.constexpr,
                              N: tl.constexpr):
        """Split backward, pass 2: one program per (sample, head, chunk), all independent, with the entering
        state from the forward (S) and the leaving state's gradient from pass 1 (DS). DAP (B*H, n_chunks) and
        DDP (B*H, n_chunks, P) hold per-chunk partial sums."""
        pid, h, g, b64, A_h, rq, rp, rn, causal, s_base = _program(A, S, n_chunks, H, HPG, Q, P, N)
        c = tl.program_id(1)
        off = c * N * P + rn[:, None] * P + rp[None, :]
        h_in = tl.load(s_base + off)
        dstate = tl.load(DS + pid.to(tl.int64) * n_chunks * N * P + off)
        d = _skip_weight(Dv, h, rp, HAS_D, D_PER_P, P)
        _, dA_c, dD_c, _, _ = _bwd_chunk(X, DT, Bm, Cm, DY, DX, DDT, DBH, DCH, b64, h, g, c, h_in, dstate, A_h, d,
                                         rq, rp, rn, causal, L, H, sxb, sxl, sxh, sdb, sdl, sdh, sbb, sbl, sbg, scb,
                                         scl, scg, syb, syl, syh, sob, sol, soh, HAS_D, Q, N)
        part = pid.to(tl.int64) * n_chunks + c
        tl.store(DAP + part, tl.sum(dA_c, axis=0))
        tl.store(DDP + part * P + rp, dD_c)

    @triton.jit
    def _ssd_bwd_group_kernel(X, DT, A, Bm, Cm, Dv, DY, S, DS, DX, DDT, DB, DC, DAP, DDP, L, n_chunks, H, HPG,
                              sxb, sxl, sxh, sdb, sdl, sdh, sbb, sbl, sbg, scb, scl, scg, syb, syl, syh, sob, sol, soh,
                              sgb, sgl, sgg, HAS_D: tl.constexpr, D_PER_P: tl.constexpr, Q: tl.constexpr,
                              P: tl.constexpr, N: tl.constexpr):
        """Group backward, pass 2 (after the split's pass 1): one program per (sample, group, chunk) runs the chunk's
        backward for each of the group's HPG heads in turn and sums their dB and dC on chip, then writes them once,
        in DB's dtype, to DB and DC (B, L, G, N; strides (sgb, sgl, sgg, 1), e.g. slices of the conv's gradient):
        no per-head float32 (B, L, H, N) buffers and no summing pass. DAP, DDP as in the split."""
        pid = tl.program_id(0)  # sample * G + group
        c = tl.program_id(1)
        G = H // HPG
        b64 = (pid // G).to(tl.int64)
        g = pid % G
        rq = tl.arange(0, Q)
        rp = tl.arange(0, P)
        rn = tl.arange(0, N)
        causal = rq[:, None] >= rq[None, :]
        off = c * N * P + rn[:, None] * P + rp[None, :]
        dB_g = tl.zeros((Q, N), dtype=tl.float32)
        dC_g = tl.zeros((Q, N), dtype=tl.float32)
        for i in range(HPG):
            h = g * HPG + i
            bh = b64 * H + h  # this (sample, head)'s row of S, DS, DAP, DDP
            A_h = tl.load(A + h).to(tl.float32)
            h_in = tl.load(S + bh * n_chunks * N * P + off)
            dstate = tl.load(DS + bh * n_chunks * N * P + off)
            d = _skip_weight(Dv, h, rp, HAS_D, D_PER_P, P)
            _, dA_c, dD_c, dB, dC = _bwd_chunk(X, DT, Bm, Cm, DY, DX, DDT, DB, DC, b64, h, g, c, h_in, dstate, A_h, d,
                                               rq, rp, rn, causal, L, H, sxb, sxl, sxh, sdb, sdl, sdh, sbb, sbl, sbg,
                                               scb, scl, scg, syb, syl, syh, sob, sol, soh, HAS_D, Q, N, STORE_BC=False)
            dB_g += dB
            dC_g += dC
            part = bh * n_chunks + c
            tl.store(DAP + part, tl.sum(dA_c, axis=0))
            tl.store(DDP + part * P + rp, dD_c)
        t64 = (c * Q + rq).to(tl.int64)
        mt = (t64 < L)[:, None]
        o = b64 * sgb + t64[:, None] * sgl + g * sgg + rn[None, :]
        tl.store(DB + o, dB_g.to(DB.dtype.element_ty), mask=mt)
        tl.store(DC + o, dC_g.to(DC.dtype.element_ty), mask=mt)


def _pow2_at_least_16(v: int) -> bool:
    return v >= 16 and v & (v - 1) == 0


def supported(x: Tensor, B: Tensor) -> bool:
    """Shapes the kernels handle: headdim and d_state powers of two >= 16 (SAMBA: 64 / 16 and 16 / 16)."""
    return triton is not None and _pow2_at_least_16(x.shape[-1]) and _pow2_at_least_16(B.shape[-1])


def ssd_fwd(x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor | None,
            states: bool = True, kernels: KernelConfig = DEFAULT) -> tuple[Tensor, Tensor | None]:
    """Forward kernel: y (b, l, h, p) in x's dtype and the states entering each chunk (b*h, chunks, n, p) fp32
    (kept for `ssd_bwd`; None with ``states=False``, for inference). x, B, C need a unit last stride; dt (b, l, h)
    float32, any strides. Launch: ``kernels.scan_forward_launch_for(headdim)``."""
    y, S, _ = _fwd(x, dt, A, B, C, D, states, None, False, kernels)
    return y, S


def _fwd(x, dt, A, B, C, D, states: bool, initial_state: Tensor | None, final: bool, kernels: KernelConfig,
         out: Tensor | None = None):
    """The forward launch: (y, S or None, final state (b, h, p, n) fp32 or None); ``initial_state`` (b, h, p, n);
    y written into ``out`` (b, l, h, p) when given (x's dtype, unit last stride, any other strides)."""
    Bsz, L, H, P = x.shape
    G, N = B.shape[2], B.shape[3]
    Q = kernels.scan_chunk_for(P)
    n_chunks = triton.cdiv(L, Q)
    y = torch.empty((Bsz, L, H, P), device=x.device, dtype=x.dtype) if out is None else out
    S = torch.empty((Bsz * H, n_chunks, N, P) if states else (0,), device=x.device, dtype=torch.float32)
    Dc = D.contiguous() if D is not None else A
    # the kernel keeps a state as (n, p): (b, h, p, n) -> (b*h, n, p) and back
    H0 = initial_state.float().transpose(-1, -2).contiguous() if initial_state is not None else A
    HF = torch.empty((Bsz, H, N, P), device=x.device, dtype=torch.float32) if final else A
    _ssd_fwd_kernel[(Bsz * H,)](
        x, dt, A, B, C, Dc, y, S, H0, HF, L, n_chunks, H, H // G,
        x.stride(0), x.stride(1), x.stride(2), dt.stride(0), dt.stride(1), dt.stride(2),
        B.stride(0), B.stride(1), B.stride(2), C.stride(0), C.stride(1), C.stride(2),
        y.stride(0), y.stride(1), y.stride(2),
        HAS_D=D is not None, D_PER_P=D is not None and D.dim() == 2, Q=Q, P=P, N=N, STORE_STATES=states,
        HAS_INIT=initial_state is not None, STORE_FINAL=final, **kernels.scan_forward_launch_for(P))
    return y, (S if states else None), (HF.transpose(-1, -2) if final else None)


# The forward's launch options, measured (H200, eager inference step batch 128 x 60 s, all three fast
# paths on; warps,stages[,maxnreg] -> ms): 4,3 21.1; 8,3,128 25.6; 8,3 26.0; 8,2 27.3; 8,1 31.2; 16,3 33.6.
# ptxas (sm_90, inference variant) spills per thread: 4,3 48 B; 8,3 none but all 255 registers, one program per
# SM; 8,3,128 248 B; 16,3 112 B. So fewer, spilling warps with more programs per SM beat a spill-free one: (4, 3) is
# KernelConfig.scan_forward_launch's default. Each backward's default launch (KernelConfig.scan_backward_launch
# None) is the one its CUDA tests passed at: samba.ops.config.SCAN_BACKWARD_LAUNCH_DEFAULT.
#
# Narrow heads (headdim <= 16: the bottleneck's differential Mamba, 128 heads of 16 in groups of 8 at the paper's
# defaults) do a quarter of a 64-wide head's work per (Q x Q) tile, so their best backward differs: "group", which
# sums a group's heads' dB and dC on chip instead of writing (B, L, H, N) float32 buffers (~1 GB each at batch
# 128 x 60 s) for torch to sum. Measured (H200, eager bf16 train step, batch 128 x 60 s, one
# process): split everywhere 70.76 / 70.27 ms; group for the narrow heads at 4 warps 68.87 ms, at 8 warps 75.03;
# the split at 8 warps there 77.96; group for every head 73.64 vs 72.39 (another run). Its CUDA tests and
# a whole-model forward/backward check passed at 4 warps, so it is the narrow heads' default (KernelConfig.scan_backward_narrow);
# "split" is every other head's (KernelConfig.scan_backward).
BWD_MODES = SCAN_BACKWARDS


def ssd_bwd(dy: Tensor, x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor | None, S: Tensor,
            dx: Tensor | None = None, dB: Tensor | None = None, dC: Tensor | None = None, mode: str | None = None,
            kernels: KernelConfig = DEFAULT):
    """Backward kernels: (dx, ddt float32 (b, l, h), dA, dB, dC, dD). `dx`, `dB`, `dC` may be given as buffers
    to write into (e.g. slices of a larger input gradient; dx with unit last stride). ``mode``: "walk", "split" or
    "group" (default: ``kernels.scan_backward_for(headdim)``); all give the same gradients."""
    Bsz, L, H, P = x.shape
    mode = mode or kernels.scan_backward_for(P)
    if mode not in BWD_MODES:
        raise ValueError(f"mode must be one of {BWD_MODES}, got {mode!r}")
    G, N = B.shape[2], B.shape[3]
    n_chunks = S.shape[1]
    Q = kernels.scan_chunk_for(P)  # the forward's chunk, which laid out S
    if triton.cdiv(L, Q) != n_chunks:
        raise ValueError(f"S holds {n_chunks} chunk states; {L} steps in chunks of {Q} need {triton.cdiv(L, Q)} "
                         "(the forward ran with another scan_chunk)")
    dy = dy.contiguous()  # the forward's y layout
    if dx is None:
        dx = torch.empty((Bsz, L, H, P), device=x.device, dtype=x.dtype)
    ddt = torch.empty((Bsz, L, H), device=x.device, dtype=torch.float32)
    if mode != "group":  # per-head float32 dB, dC, summed over each group's heads below
        dBh = torch.empty((Bsz, L, H, N), device=x.device, dtype=torch.float32)
        dCh = torch.empty_like(dBh)
    parts = 1 if mode == "walk" else n_chunks  # partial sums of dA and dD per program
    dAp = torch.empty((Bsz * H, parts), device=x.device, dtype=torch.float32)
    dDp = torch.empty((Bsz * H, parts, P), device=x.device, dtype=torch.float32)
    Dc = D.contiguous() if D is not None else A
    strides = (x.stride(0), x.stride(1), x.stride(2), dt.stride(0), dt.stride(1), dt.stride(2),
               B.stride(0), B.stride(1), B.stride(2), C.stride(0), C.stride(1), C.stride(2),
               dy.stride(0), dy.stride(1), dy.stride(2), dx.stride(0), dx.stride(1), dx.stride(2))
    flags = dict(HAS_D=D is not None, D_PER_P=D is not None and D.dim() == 2, Q=Q, P=P, N=N,
                 **kernels.scan_backward_launch_for(mode, P))
    if mode == "walk":
        _ssd_bwd_kernel[(Bsz * H,)](x, dt, A, B, C, Dc, dy, S, dx, ddt, dBh, dCh, dAp, dDp, L, n_chunks, H, H // G,
                                    *strides, **flags)
    else:
        dS = torch.empty_like(S)  # (b*h, chunks, n, p) fp32: gradient of the state leaving each chunk
        _ssd_bwd_dstate_kernel[(Bsz * H,)](dt, A, C, dy, S, dS, L, n_chunks, H, H // G, *strides[3:6], *strides[9:15],
                                           Q=Q, P=P, N=N, num_warps=4)
    if mode == "split":
        _ssd_bwd_chunk_kernel[(Bsz * H, n_chunks)](x, dt, A, B, C, Dc, dy, S, dS, dx, ddt, dBh, dCh, dAp, dDp, L,
                                                   n_chunks, H, H // G, *strides, **flags)
    if mode == "group":  # dB, dC written once per group, in their final dtype, into the given buffers if they allow
        fits = (dB is not None and dC is not None and dB.stride() == dC.stride() and dB.stride(-1) == 1)
        dBo = dB if fits else torch.empty((Bsz, L, G, N), device=x.device, dtype=B.dtype)
        dCo = dC if fits else torch.empty_like(dBo)
        _ssd_bwd_group_kernel[(Bsz * G, n_chunks)](x, dt, A, B, C, Dc, dy, S, dS, dx, ddt, dBo, dCo, dAp, dDp, L,
                                                   n_chunks, H, H // G, *strides, *dBo.stride()[:3], **flags)
        dB = dBo if dB is None else (dB if fits else dB.copy_(dBo))
        dC = dCo if dC is None else (dC if fits else dC.copy_(dCo))
    else:
        sum_group = lambda t: t.view(Bsz, L, G, H // G, N).sum(3)  # noqa: E731  (heads of a group share B, C)
        dB = sum_group(dBh).to(B.dtype) if dB is None else dB.copy_(sum_group(dBh))
        dC = sum_group(dCh).to(C.dtype) if dC is None else dC.copy_(sum_group(dCh))
    dA = dAp.view(Bsz, H, parts).sum((0, 2)).to(A.dtype)
    dD = None
    if D is not None:
        dDh = dDp.view(Bsz, H, parts, P).sum((0, 2))
        dD = (dDh if D.dim() == 2 else dDh.sum(-1)).to(D.dtype)
    return dx, ddt, dA, dB, dC, dD


class _SSDScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor | None,
                states: bool, kernels: KernelConfig) -> Tensor:
        x, B, C = unit_last_stride(x), unit_last_stride(B), unit_last_stride(C)
        y, S = ssd_fwd(x, dt, A, B, C, D, states=states, kernels=kernels)
        ctx.save_for_backward(x, dt, A, B, C, D, S)
        ctx.kernels = kernels
        return y

    @staticmethod
    def backward(ctx, dy: Tensor):
        x, dt, A, B, C, D, S = ctx.saved_tensors
        dx, ddt, dA, dB, dC, dD = ssd_bwd(dy, x, dt, A, B, C, D, S, kernels=ctx.kernels)
        return dx, ddt.to(dt.dtype), dA, dB, dC, dD, None, None


def grad_needed(*tensors: Tensor | None) -> bool:
    """Will autograd call the backward of a Function applied to these now? (Inside `forward` grad mode is off and
    `ctx.needs_input_grad` ignores no_grad, so callers decide before `apply`.) False under no_grad and
    inference_mode: then the forward skips what only the backward needs (the chunk states)."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def ssd_scan_triton(x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor | None = None,
                    kernels: KernelConfig = DEFAULT) -> Tensor:
    """y (b, l, h, p) of the Mamba2 SSM from zero state, like `samba.ops.ssd.ssd_chunked` (whose chunk size does
    not change the result). x (b, l, h, p); dt (b, l, h) already softplus'd; A (h,); B, C (b, l, g, n);
    D None, (h,) or (h, p). Launches and backward mode from ``kernels``."""
    if triton is None:
        raise RuntimeError("Triton is not installed; use samba.ops.ssd.ssd_chunked")
    if not supported(x, B):
        raise ValueError(f"headdim {x.shape[-1]} and d_state {B.shape[-1]} must be powers of two >= 16")
    if x.shape[2] % B.shape[2]:
        raise ValueError(f"nheads ({x.shape[2]}) must be divisible by ngroups ({B.shape[2]})")
    return _SSDScan.apply(x, dt, A, B, C, D, grad_needed(x, dt, A, B, C, D), kernels)


def ssd_scan_carry_triton(x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor | None,
                          initial_state: Tensor | None, kernels: KernelConfig = DEFAULT,
                          out: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """``(y, final_state)`` of the scan started from ``initial_state`` (b, h, p, n; None: zero), like
    ``ssd_chunked(..., initial_state=..., return_final_state=True)``; the final state is (b, h, p, n) float32. For
    time-chunked inference only: it has no backward, and refuses inputs that need one. ``out`` (b, l, h, p), x's
    dtype, unit last stride: y is written there (a view of a larger buffer, as `samba.ops.segments` passes)."""
    if triton is None:
        raise RuntimeError("Triton is not installed; use samba.ops.ssd.ssd_chunked")
    if grad_needed(x, dt, A, B, C, D, initial_state):
        raise RuntimeError("ssd_scan_carry_triton has no backward; under autograd use samba.ops.ssd.ssd_chunked")
    if not supported(x, B):
        raise ValueError(f"headdim {x.shape[-1]} and d_state {B.shape[-1]} must be powers of two >= 16")
    if x.shape[2] % B.shape[2]:
        raise ValueError(f"nheads ({x.shape[2]}) must be divisible by ngroups ({B.shape[2]})")
    Bsz, _, H, P = x.shape
    if initial_state is not None and tuple(initial_state.shape) != (Bsz, H, P, B.shape[-1]):
        raise ValueError(f"initial_state must be (b, h, p, n)=({Bsz}, {H}, {P}, {B.shape[-1]}), "
                         f"got {tuple(initial_state.shape)}")
    if out is not None and (out.shape != x.shape or out.dtype != x.dtype or out.stride(-1) != 1):
        raise ValueError(f"out must be {tuple(x.shape)} {x.dtype} with a unit last stride, got "
                         f"{tuple(out.shape)} {out.dtype} strides {out.stride()}")
    y, _, final = _fwd(unit_last_stride(x), dt, A, unit_last_stride(B), unit_last_stride(C), D, False,
                       initial_state, True, kernels, out)
    return y, final
