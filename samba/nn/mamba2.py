"""Mamba2 layer with two interchangeable backends and mamba_ssm's exact parameters.

SAMBA (Hong, Mackellar, Ghane, arXiv 2511.18571) builds its encoder, decoder and differential bottleneck
from `mamba_ssm.Mamba2` blocks. This module is parameter-compatible with `mamba_ssm.modules.mamba2.Mamba2`
(v2.2/2.3): same constructor arguments, parameter names, shapes and initialisation, so state dicts load
either way. It runs

    in_proj -> [z | x B C | dt] -> causal depthwise conv1d + SiLU on (x B C) -> SSD scan with
    dt = softplus(dt + dt_bias) (clamped to dt_limit), A = -exp(A_log), skip D -> gated RMSNorm with z -> out_proj

- backend "torch": the scan is `samba.nn.ssd.ssd_chunked` (plain PyTorch, any device; the reference).
- backend "mamba_ssm": the scan is mamba_ssm's Triton `mamba_chunk_scan_combined` and the norm its Triton
  `rmsnorm_fn`, called with this module's own parameters (what `mamba_ssm.Mamba2(use_mem_eff_path=False)`
  computes); the causal conv uses causal_conv1d's CUDA extension when importable, else our Triton kernels
  (`samba.nn.triton_conv`), else the PyTorch version in `samba.nn.fast_ops`.
- backend "auto": "mamba_ssm" for CUDA inputs when importable, else "torch"; decided on every call, so
  `.to("cuda")` after construction works.

No inference cache / `step` (SAMBA encodes whole windows).
"""

from __future__ import annotations

import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ._mamba_ssm import mamba_ssm_kernels, require_mamba_ssm
from ._triton import available as triton_available
from .fast_ops import causal_conv1d_silu
from .ssd import ssd_chunked

__all__ = ["Mamba2", "RMSNormGated", "gated_rms_norm", "rms_norm_gated", "BACKENDS", "resolve_backend", "softplus_dt",
           "causal_depthwise_conv", "cpu_microbatch", "init_dt_bias", "init_A_log"]

BACKENDS = ("auto", "torch", "mamba_ssm")
DEFAULT_TORCH_CHUNK_SIZE = 64  # the torch scan is fastest with chunks of 32-64 on CPU (measured); same result


CPU_HEAD_TOKENS_PER_CALL = 32768


def cpu_microbatch(u: Tensor, nheads: int) -> int | None:
    """Samples per call for the torch scan on CPU, or None to run the batch at once.

    The chunked scan's (chunk x chunk) tensors grow with batch * length * heads; once they fall out of the
    CPU caches every pass over them slows down (measured 2.5x for DiffMamba(128), B=8, L=960). Samples are
    independent, so splitting the batch is exact.
    """
    if u.is_cuda or u.dim() != 3:
        return None
    per_call = max(1, CPU_HEAD_TOKENS_PER_CALL // max(1, u.shape[1] * nheads))
    return per_call if per_call < u.shape[0] else None


def resolve_backend(backend: str, x: Tensor) -> str:
    """'torch' or 'mamba_ssm' for this input; raises for unknown names or unavailable kernels."""
    if backend == "torch":
        return "torch"
    if backend == "mamba_ssm":
        require_mamba_ssm()
        if not x.is_cuda:
            raise RuntimeError("backend='mamba_ssm' runs Triton kernels and needs CUDA tensors; "
                               f"got a tensor on {x.device} (use backend='auto' or 'torch')")
        return "mamba_ssm"
    if backend == "auto":
        return "mamba_ssm" if x.is_cuda and mamba_ssm_kernels() is not None else "torch"
    raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")


def check_backend_name(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")
    return backend


def skip_dtype(dtype: torch.dtype | None) -> torch.dtype:
    """D stays in at least float32 (mamba creates it without the factory dtype); float64 stays float64."""
    return torch.promote_types(dtype or torch.get_default_dtype(), torch.float32)


def init_dt_bias(nheads: int, dt_min: float, dt_max: float, dt_init_floor: float,
                 device=None, dtype=None) -> Tensor:
    """mamba's dt_bias init: dt log-uniform in [dt_min, dt_max], floored, then inverse softplus."""
    dt = torch.exp(torch.rand(nheads, device=device, dtype=dtype) * (math.log(dt_max) - math.log(dt_min))
                   + math.log(dt_min))
    dt = torch.clamp(dt, min=dt_init_floor)
    return dt + torch.log(-torch.expm1(-dt))  # inverse of softplus


def init_A_log(nheads: int, A_init_range: tuple[float, float], device=None, dtype=None) -> Tensor:
    """mamba's A_log init: A uniform in A_init_range, stored as log(A) (the layer uses -exp(A_log))."""
    if not (A_init_range[0] > 0 and A_init_range[1] >= A_init_range[0]):
        raise ValueError(f"A_init_range must satisfy 0 < low <= high, got {A_init_range}")
    A = torch.empty(nheads, dtype=torch.float32, device=device).uniform_(*A_init_range)
    return torch.log(A).to(dtype=dtype)


def gated_rms_norm(x: Tensor, z: Tensor | None, weight: Tensor, eps: float, group_size: int,
                   norm_before_gate: bool) -> Tensor:
    """mamba's RMSNormGated in PyTorch (`rms_norm_ref`): norm(x * silu(z)) or norm(x) * silu(z), per group.

    x, z: (..., d); weight: (d,); groups of `group_size` consecutive channels are normalised separately.
    Computed in at least float32; returns x's dtype.
    """
    dtype = x.dtype
    work = torch.promote_types(dtype, torch.float32)
    x = x.to(work)
    if z is not None:
        z = z.to(work)
        if not norm_before_gate:
            x = x * F.silu(z)
    xg = x.unflatten(-1, (-1, group_size))  # (..., groups, group_size)
    rstd = torch.rsqrt(xg.square().mean(dim=-1, keepdim=True) + eps)
    out = (xg * rstd).flatten(-2) * weight.to(work)
    if z is not None and norm_before_gate:
        out = out * F.silu(z)
    return out.to(dtype)


def rms_norm_gated(x: Tensor, z: Tensor | None, weight: Tensor, eps: float, group_size: int,
                   norm_before_gate: bool, backend: str) -> Tensor:
    """`gated_rms_norm`, through mamba_ssm's Triton kernel when backend == 'mamba_ssm' and it is importable."""
    if backend == "mamba_ssm":
        if x.is_cuda and x.dtype != torch.float64 and _triton_norm_bwd_opted_in():
            from .triton_norm import gated_rms_norm_triton  # several rows per program (samba.nn.triton_norm)

            return gated_rms_norm_triton(x, z, weight, eps, group_size, norm_before_gate)
        kernels = mamba_ssm_kernels()
        if kernels is not None and kernels.rmsnorm_fn is not None:
            return kernels.rmsnorm_fn(x, weight, None, z=z, eps=eps, group_size=group_size,
                                      norm_before_gate=norm_before_gate)
    return gated_rms_norm(x, z, weight, eps, group_size, norm_before_gate)


class RMSNormGated(nn.Module):
    """Same parameters and semantics as `mamba_ssm.ops.triton.layernorm_gated.RMSNorm` (weight only)."""

    def __init__(self, hidden_size: int, eps: float = 1e-5, group_size: int | None = None,
                 norm_before_gate: bool = True, device=None, dtype=None):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(hidden_size, device=device, dtype=dtype))
        self.register_parameter("bias", None)
        self.group_size = hidden_size if group_size is None else group_size
        if hidden_size % self.group_size:
            raise ValueError(f"hidden_size {hidden_size} is not divisible by group_size {self.group_size}")
        self.norm_before_gate = norm_before_gate

    def forward(self, x: Tensor, z: Tensor | None = None, *, backend: str = "torch") -> Tensor:
        return rms_norm_gated(x, z, self.weight, self.eps, self.group_size, self.norm_before_gate, backend)

    def extra_repr(self) -> str:
        return (f"{self.weight.shape[0]}, eps={self.eps}, group_size={self.group_size}, "
                f"norm_before_gate={self.norm_before_gate}")


def softplus_dt(dt: Tensor, dt_bias: Tensor, dt_limit: tuple[float, float]) -> Tensor:
    """softplus(dt + dt_bias) clamped to dt_limit, in at least float32 (as the Triton kernel computes it)."""
    work = torch.promote_types(dt.dtype, torch.float32)
    dt = F.softplus(dt.to(work) + dt_bias.to(work))  # threshold 20 like mamba's kernel
    if tuple(dt_limit) != (0.0, float("inf")):
        dt = dt.clamp(min=dt_limit[0], max=dt_limit[1])
    return dt


def _fused_path_enabled(u: Tensor) -> bool:
    """The fused Mamba2 Function (samba.nn.mamba_fused) applies to the block input u: switched on
    (SAMBA_FUSED_MAMBA, default 1), CUDA, not float64 (its kernels accumulate in float32), Triton and mamba_ssm
    importable.

    With our scan and norm backward it was the fastest train step measured (H200, eager, session 6: batch
    128 x 60 s 100.7 ms vs 108.5 ms for mamba_ssm layer by layer; docs/performance_log.md, section 5). Earlier
    it was slower (batch 64: 95 vs 63 ms, H100) because our first norm-backward tile spilled registers; the
    tile now used does not. On by default since session 7 (FAST_PATH_SWITCHES says why)."""
    return (_switched_on("SAMBA_FUSED_MAMBA") and u.is_cuda and u.dtype != torch.float64
            and mamba_ssm_kernels() is not None)


def _triton_scan_opted_in(x: Tensor, B: Tensor) -> bool:
    """Our Triton SSD scan (samba.nn.triton_ssd) instead of mamba_ssm's (SAMBA_TRITON_SCAN=1): on CUDA, not
    float64, for headdim and d_state powers of two >= 16. H200, eager, session 6: batch-4 x 60-s train step
    24.1 ms vs 34.5-40.4 ms with mamba_ssm's scan, batch 128 106.3 vs 108.5 ms; inference at batch 128 27.7 vs
    28.2 ms."""
    if not (_switched_on("SAMBA_TRITON_SCAN") and x.is_cuda and x.dtype != torch.float64):
        return False
    from .triton_ssd import supported

    return supported(x, B) and enough_scan_programs(x)


def enough_scan_programs(x: Tensor) -> bool:
    """Our scan runs one program per (sample, head) along the whole sequence; mamba_ssm's spreads the chunks over
    the GPU. SAMBA_TRITON_SCAN_MIN_PROGRAMS (default 0: always ours) sends calls with fewer than that many
    programs (batch x heads of x (b, l, h, p)) to mamba_ssm's scan. Why a setting: the 10-minute train step,
    checkpointed one sample per piece, runs 8 programs walking 1,200 chunks each; with the walking backward it
    measured 128.8 ms on ours vs 53.6 ms on mamba_ssm's kernels (H200, session 7). The chunk-parallel backward
    (the default since session 8) brought it to 68.2 ms (results/bench_h200.json); what is left is the forward's
    walk. A threshold that helps there without slowing small batches of short windows is not yet measured."""
    from .triton_ssd import min_programs

    return x.shape[0] * x.shape[2] >= min_programs()


def _triton_norm_bwd_opted_in() -> bool:
    """Our Triton gated-norm backward (samba.nn.triton_norm) instead of mamba_ssm's (SAMBA_TRITON_NORM=1): part
    of the fastest measured configuration (see _fused_path_enabled)."""
    return _switched_on("SAMBA_TRITON_NORM")


# SAMBA's own CUDA kernels, each on unless its environment variable is set to 0 (then mamba_ssm's kernel runs
# that piece; all three on is the fastest configuration measured, H200, sessions 6-7). Parameters do not
# depend on them, so checkpoints move freely between paths.
# Why on by default since session 7: in Triton's interpreter every kernel matches the float64 / torch references
# (6e-6 to 9e-6); on an H200 their whole CUDA suite ran to the end (session 7: 61 passed, none failed, among them
# the fused block against mamba_ssm's layer-by-layer path on every parameter gradient, float32 and bf16, for both
# scans and both norm backwards); and on two GPUs the whole model's output and input gradient matched mamba_ssm's
# path to bf16 rounding (7.5e-3, 1.7e-2; session 6). SAMBA_FUSED_MAMBA=0 SAMBA_TRITON_SCAN=0 SAMBA_TRITON_NORM=0
# gives mamba_ssm's kernels throughout (the path of the benchmarks up to session 6).
FAST_PATH_SWITCHES = ("SAMBA_FUSED_MAMBA", "SAMBA_TRITON_SCAN", "SAMBA_TRITON_NORM")
FAST_PATH_DEFAULT = "1"


def _switched_on(env: str) -> bool:
    """A fast path of FAST_PATH_SWITCHES: its environment variable (default FAST_PATH_DEFAULT) is 1, and Triton
    is importable."""
    return os.environ.get(env, FAST_PATH_DEFAULT).strip() == "1" and triton_available()


def fast_path_switches() -> dict:
    """Which of SAMBA's own CUDA kernels are switched on (where they apply: CUDA, mamba_ssm importable), as recorded
    by the benchmark: {"fused_mamba_block": bool, "triton_scan": bool, "triton_norm_backward": bool}."""
    return {name: _switched_on(env) for name, env in zip(("fused_mamba_block", "triton_scan", "triton_norm_backward"),
                                                         FAST_PATH_SWITCHES)}


def ssm_scan(x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor, dt_bias: Tensor, dt_limit,
             z: Tensor | None, backend: str, chunk_size: int, torch_chunk_size: int) -> Tensor:
    """Mamba2's selective scan on a backend: dt -> softplus(dt + dt_bias) (clamped to dt_limit), the SSD with the
    D skip, then y * silu(z) when z is given (the variant without RMSNorm). Shared by Mamba2 and DiffMamba.

    x, z (b, l, h, p); dt (b, l, h) raw; A (h,); B, C (b, l, g, n); D (h,) or (h, p) -> y (b, l, h, p).
    mamba_ssm: its Triton kernels, or ours (samba.nn.triton_ssd) with SAMBA_TRITON_SCAN=1; torch: ssd_chunked.
    """
    if backend == "mamba_ssm" and not _triton_scan_opted_in(x, B):
        limit = {} if tuple(dt_limit) == (0.0, float("inf")) else {"dt_limit": dt_limit}
        return require_mamba_ssm().mamba_chunk_scan_combined(x, dt, A, B, C, chunk_size=chunk_size, D=D, z=z,
                                                             dt_bias=dt_bias, dt_softplus=True, **limit)
    dt = softplus_dt(dt, dt_bias, dt_limit)  # (b, l, h) float32; autograd differentiates the softplus
    if backend == "mamba_ssm":
        from .triton_ssd import ssd_scan_triton

        y = ssd_scan_triton(x, dt, A, B, C, D)
    else:
        y = ssd_chunked(x, dt, A, B, C, torch_chunk_size, D=D)
    return y if z is None else y * F.silu(z)


def causal_depthwise_conv(xBC: Tensor, weight: Tensor, bias: Tensor | None, backend: str) -> Tensor:
    """Causal depthwise conv1d + SiLU over time. xBC: (B, L, ch); weight: (ch, 1, k) -> (B, L, ch)."""
    k = weight.shape[-1]
    if backend == "mamba_ssm":
        kernels = mamba_ssm_kernels()
        if kernels is not None and kernels.causal_conv1d_fn is not None and 2 <= k <= 4:
            return kernels.causal_conv1d_fn(xBC.transpose(1, 2), weight.squeeze(1), bias=bias,
                                            activation="silu").transpose(1, 2)
    if xBC.is_cuda:  # on (B, L, ch): no transposes, no depthwise-conv kernel (samba.nn.fast_ops)
        # mamba_ssm backend: the fused Triton kernels when importable; torch backend: plain PyTorch
        # shifted multiply-adds, so the reference stays PyTorch end to end.
        return causal_conv1d_silu(xBC, weight, bias, impl="auto" if backend == "mamba_ssm" else "torch")
    L = xBC.shape[1]
    x = xBC.transpose(1, 2)  # (B, ch, L)
    if x.dtype == torch.float64 and not x.is_cuda:
        # CPU float64 depthwise conv1d falls back to one slow conv per channel (10-40x slower, measured):
        # sum the k shifted taps instead (same numbers, any dtype).
        xp = F.pad(x, (k - 1, 0))  # (B, ch, L+k-1)
        out = xp[..., :L] * weight[:, 0, 0, None]
        for j in range(1, k):
            out = out + xp[..., j:j + L] * weight[:, 0, j, None]
        if bias is not None:
            out = out + bias[:, None]
    else:
        out = F.conv1d(x, weight, bias, padding=k - 1, groups=weight.shape[0])[..., :L]  # (B, ch, L)
    return F.silu(out).transpose(1, 2)  # (B, L, ch)


class Mamba2(nn.Module):
    """Mamba2 mixer: (B, L, d_model) -> (B, L, d_model). Parameters identical to mamba_ssm's Mamba2.

    Parameters (names and shapes as mamba_ssm), with d_inner = expand * d_model, d_ssm = d_inner unless
    given, nheads = d_ssm // headdim, conv_dim = d_ssm + 2 * ngroups * d_state:
        in_proj.weight  (2 * d_inner + 2 * ngroups * d_state + nheads, d_model)   order [z, x, B, C, dt]
        conv1d.weight   (conv_dim, 1, d_conv), conv1d.bias (conv_dim,)
        dt_bias (nheads,), A_log (nheads,), D (nheads,) or (d_ssm,) if D_has_hdim
        norm.weight (d_ssm,) if rmsnorm, out_proj.weight (d_model, d_inner)

    `torch_chunk_size` (extension): chunk length of the torch scan (default min(chunk_size, 64), which
    is faster on CPU; the result does not depend on it). `chunk_size` is what the Triton kernels use.
    On CPU the torch backend runs large batches in slices (`cpu_microbatch`): exact, and cache-friendly.
    `forward(u, *, backend=None)`: `backend` overrides the constructor's choice for one call.
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 128,
        d_conv: int = 4,
        conv_init: float | None = None,
        expand: int = 2,
        headdim: int = 64,
        d_ssm: int | None = None,
        ngroups: int = 1,
        A_init_range: tuple[float, float] = (1, 16),
        D_has_hdim: bool = False,
        rmsnorm: bool = True,
        norm_before_gate: bool = False,
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_init_floor: float = 1e-4,
        dt_limit: tuple[float, float] = (0.0, float("inf")),
        bias: bool = False,
        conv_bias: bool = True,
        chunk_size: int = 256,
        backend: str = "auto",
        torch_chunk_size: int | None = None,
        layer_idx: int | None = None,  # absorbed, like mamba_ssm
        device=None,
        dtype=None,
    ):
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.backend = check_backend_name(backend)
        self.d_model = d_model
        self.d_state = d_state
        self.d_conv = d_conv
        self.conv_init = conv_init
        self.expand = expand
        self.d_inner = expand * d_model
        self.headdim = headdim
        self.d_ssm = self.d_inner if d_ssm is None else d_ssm
        self.ngroups = ngroups
        if self.d_ssm % headdim:
            raise ValueError(f"d_ssm ({self.d_ssm}) must be divisible by headdim ({headdim})")
        self.nheads = self.d_ssm // headdim
        if self.nheads % ngroups:
            raise ValueError(f"nheads ({self.nheads}) must be divisible by ngroups ({ngroups})")
        if self.d_ssm > self.d_inner:
            raise ValueError(f"d_ssm ({self.d_ssm}) cannot exceed d_inner = expand * d_model ({self.d_inner})")
        self.D_has_hdim = D_has_hdim
        self.rmsnorm = rmsnorm
        self.norm_before_gate = norm_before_gate
        self.dt_limit = tuple(dt_limit)
        self.activation = "silu"
        self.chunk_size = chunk_size
        self.torch_chunk_size = torch_chunk_size or min(chunk_size, DEFAULT_TORCH_CHUNK_SIZE)
        self.layer_idx = layer_idx

        d_in_proj = 2 * self.d_inner + 2 * ngroups * d_state + self.nheads  # [z, x, B, C, dt]
        self.in_proj = nn.Linear(d_model, d_in_proj, bias=bias, **factory)
        conv_dim = self.d_ssm + 2 * ngroups * d_state
        self.conv1d = nn.Conv1d(conv_dim, conv_dim, kernel_size=d_conv, groups=conv_dim, padding=d_conv - 1,
                                bias=conv_bias, **factory)
        if conv_init is not None:
            nn.init.uniform_(self.conv1d.weight, -conv_init, conv_init)
        self.act = nn.SiLU()

        self.dt_bias = nn.Parameter(init_dt_bias(self.nheads, dt_min, dt_max, dt_init_floor, **factory))
        self.dt_bias._no_weight_decay = True
        self.A_log = nn.Parameter(init_A_log(self.nheads, A_init_range, device=device, dtype=dtype))
        self.A_log._no_weight_decay = True
        self.D = nn.Parameter(torch.ones(self.d_ssm if D_has_hdim else self.nheads, device=device,
                                         dtype=skip_dtype(dtype)))
        self.D._no_weight_decay = True
        if rmsnorm:
            self.norm = RMSNormGated(self.d_ssm, eps=1e-5, norm_before_gate=norm_before_gate,
                                     group_size=self.d_ssm // ngroups, **factory)
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=bias, **factory)

    def extra_repr(self) -> str:
        return (f"d_model={self.d_model}, d_state={self.d_state}, d_conv={self.d_conv}, expand={self.expand}, "
                f"headdim={self.headdim}, nheads={self.nheads}, ngroups={self.ngroups}, backend={self.backend!r}")

    def _D(self) -> Tensor:
        return self.D.view(self.nheads, self.headdim) if self.D_has_hdim else self.D  # (h,) or (h, p)

    def forward(self, u: Tensor, *, backend: str | None = None) -> Tensor:
        """u: (B, L, d_model) -> (B, L, d_model). `backend` overrides self.backend for this call."""
        if u.dim() != 3 or u.shape[-1] != self.d_model:
            raise ValueError(f"Mamba2 expects (batch, length, {self.d_model}), got {tuple(u.shape)}")
        be = resolve_backend(self.backend if backend is None else check_backend_name(backend), u)
        per_call = cpu_microbatch(u, self.nheads) if be == "torch" else None
        if per_call is not None:
            return torch.cat([self._forward(part, be) for part in u.split(per_call)])
        return self._forward(u, be)

    def _forward(self, u: Tensor, be: str) -> Tensor:
        batch, seqlen, _ = u.shape
        h, p, g, n = self.nheads, self.headdim, self.ngroups, self.d_state

        d_mlp = self.d_inner - self.d_ssm
        if be == "mamba_ssm" and self.rmsnorm and d_mlp == 0 and _fused_path_enabled(u):
            # conv -> scan -> gated norm -> out_proj as one Function (samba.nn.mamba_fused, SAMBA_FUSED_MAMBA=1):
            # same math, stores ~40 % fewer activations, no gradient concatenations; the code below is its
            # reference. Its in_proj output has rows padded to an aligned width (vectorised kernel access).
            from .mamba_fused import Spec, aligned_in_proj, mamba_split_conv_scan

            zxbcdt = aligned_in_proj(u, self.in_proj)  # (B, L, d_in_proj + padding)

            A = -torch.exp(self.A_log.float())  # (h,)
            spec = Spec(self.d_ssm, p, g, n, self.chunk_size, tuple(self.dt_limit), self.norm.eps,
                        self.norm.group_size, self.norm.norm_before_gate)
            return mamba_split_conv_scan(zxbcdt, self.conv1d.weight, self.conv1d.bias, self.dt_bias, A, self._D(),
                                         self.norm.weight, self.out_proj.weight, self.out_proj.bias, spec)
        zxbcdt = self.in_proj(u)  # (B, L, d_in_proj)
        z0, x0, z, xBC, dt = torch.split(zxbcdt, [d_mlp, d_mlp, self.d_ssm, self.d_ssm + 2 * g * n, h], dim=-1)
        xBC = causal_depthwise_conv(xBC, self.conv1d.weight, self.conv1d.bias, be)  # (B, L, conv_dim)
        x, B, C = torch.split(xBC, [self.d_ssm, g * n, g * n], dim=-1)
        x = x.unflatten(-1, (h, p))  # (B, L, h, p)
        B = B.unflatten(-1, (g, n))  # (B, L, g, n)
        C = C.unflatten(-1, (g, n))  # (B, L, g, n)
        A = -torch.exp(self.A_log.to(torch.promote_types(self.A_log.dtype, torch.float32)))  # (h,), never fp16

        gate = None if self.rmsnorm else z.unflatten(-1, (h, p))  # without RMSNorm the scan gates by silu(z)
        y = ssm_scan(x, dt, A, B, C, self._D(), self.dt_bias, self.dt_limit, gate, be, self.chunk_size,
                     self.torch_chunk_size).flatten(-2)  # (B, L, d_ssm)
        if self.rmsnorm:
            y = self.norm(y, z, backend=be)  # (B, L, d_ssm)
        if d_mlp > 0:
            y = torch.cat([F.silu(z0) * x0, y], dim=-1)  # (B, L, d_inner)
        return self.out_proj(y)  # (B, L, d_model)
