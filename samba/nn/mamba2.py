"""Mamba2 layer with mamba_ssm's exact parameters, on any backend of `samba.ops`.

SAMBA (Hong, Mackellar, Ghane, arXiv 2511.18571) builds its encoder, decoder and differential bottleneck
from `mamba_ssm.Mamba2` blocks. This module is parameter-compatible with `mamba_ssm.modules.mamba2.Mamba2`
(v2.2/2.3): same constructor arguments, parameter names, shapes and initialisation, so state dicts load
either way, whichever backend runs. It computes

    in_proj -> [z | x B C | dt] -> causal depthwise conv1d + SiLU on (x B C) -> SSD scan with
    dt = softplus(dt + dt_bias) (clamped to dt_limit), A = -exp(A_log), skip D -> gated RMSNorm with z -> out_proj

with one `samba.ops` call per operation (`causal_depthwise_conv`, `ssm_scan`, `rms_norm_gated`); which kernel runs
each is the layer's `KernelConfig` (`self.kernels`) and the backend resolved for the input's device:
"torch" (the plain-PyTorch references, any device), "triton" (our kernels, CUDA; there the whole
conv -> scan -> norm -> out_proj is one fused Function, `samba.ops.mamba_split_conv_scan`, whose reference is the
layer-by-layer code below), "mamba_ssm" (the upstream kernels, CUDA), "auto" (triton on CUDA when Triton imports,
else torch).

No inference cache / `step` (SAMBA encodes whole windows). Long inputs under inference run in time chunks
carrying the conv tail and the SSM state (`samba.nn.time_chunks`): same output, bounded memory.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ..ops import (KernelConfig, aligned_in_proj, causal_depthwise_conv, check_backend_name, fused_block_applies,
                   mamba_split_conv_scan, resolve_backend, rms_norm_gated, ssm_scan)
from ..ops.mamba_block import Spec
from .time_chunks import conv_with_tail, time_chunk_steps

__all__ = ["Mamba2", "RMSNormGated", "cpu_microbatch", "init_dt_bias", "init_A_log", "skip_dtype", "layer_kernels"]

DEFAULT_TORCH_CHUNK_SIZE = 64  # the torch scan is fastest with chunks of 32-64 on CPU (measured); same result


def layer_kernels(kernels: KernelConfig | None, backend: str | None) -> KernelConfig:
    """A layer's kernel settings: ``kernels`` (default: `KernelConfig.from_env()`), its backend replaced by
    ``backend`` when given."""
    kernels = KernelConfig.from_env() if kernels is None else kernels
    return kernels.with_backend(None if backend is None else check_backend_name(backend))


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

    def forward(self, x: Tensor, z: Tensor | None = None, *, backend: str = "torch",
                kernels: KernelConfig | None = None) -> Tensor:
        """x, z (..., d) -> (..., d) on a resolved backend ("torch" | "triton" | "mamba_ssm")."""
        return rms_norm_gated(x, z, self.weight, self.eps, self.group_size, self.norm_before_gate, backend,
                              kernels or KernelConfig())

    def extra_repr(self) -> str:
        return (f"{self.weight.shape[0]}, eps={self.eps}, group_size={self.group_size}, "
                f"norm_before_gate={self.norm_before_gate}")


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
    `kernels`: the `KernelConfig` (default `KernelConfig.from_env()`); `backend`, when given, replaces its
    backend ("auto" | "torch" | "triton" | "mamba_ssm"). `forward(u, *, backend=None)`: `backend` overrides the
    layer's for one call.
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
        backend: str | None = None,
        torch_chunk_size: int | None = None,
        layer_idx: int | None = None,  # absorbed, like mamba_ssm
        kernels: KernelConfig | None = None,
        device=None,
        dtype=None,
    ):
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.kernels = layer_kernels(kernels, backend)
        self.backend = self.kernels.backend
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
        be = resolve_backend(self.backend if backend is None else backend, u)
        per_call = cpu_microbatch(u, self.nheads) if be == "torch" else None
        if per_call is not None:
            return torch.cat([self._run(part, be) for part in u.split(per_call)])
        return self._run(u, be)

    def _run(self, u: Tensor, be: str) -> Tensor:
        steps = time_chunk_steps(u, self.in_proj.out_features)
        return self._forward(u, be) if steps is None else self._forward_chunked(u, be, steps)

    def _forward_chunked(self, u: Tensor, be: str, steps: int) -> Tensor:
        """`_forward` over time chunks of ``steps``, carrying the conv tail and the SSM state between them: only one
        chunk's wide tensors exist at a time. The scan runs per chunk on the backend `ssm_scan` picks for a carried
        state (the reference on CPU; on CUDA our Triton scan without autograd, else mamba_ssm's kernel when
        importable, else the reference)."""
        out = tail = state = None
        for t0 in range(0, u.shape[1], steps):
            y, tail, state = self._layers(u[:, t0:t0 + steps], be, True, tail, state)  # (B, steps, d_model)
            if out is None:  # in the chunk's dtype (autocast may make it lower than u's)
                out = y.new_empty(u.shape[0], u.shape[1], self.d_model)  # (B, L, d_model)
            out[:, t0:t0 + steps] = y
        return out

    def _forward(self, u: Tensor, be: str) -> Tensor:
        batch, seqlen, _ = u.shape
        h, p, g, n = self.nheads, self.headdim, self.ngroups, self.d_state

        d_mlp = self.d_inner - self.d_ssm
        k = self.kernels
        if be == "triton" and self.rmsnorm and d_mlp == 0 and fused_block_applies(u, k, p, n):
            # conv -> scan -> gated norm -> out_proj as one Function (samba.ops.mamba_block): same math, stores
            # ~40 % fewer activations, no gradient concatenations; the code below is its reference. Its in_proj
            # output has rows padded to an aligned width (vectorised kernel access).
            zxbcdt = aligned_in_proj(u, self.in_proj)  # (B, L, d_in_proj + padding)

            A = -torch.exp(self.A_log.float())  # (h,)
            spec = Spec(self.d_ssm, p, g, n, self.chunk_size, tuple(self.dt_limit), self.norm.eps,
                        self.norm.group_size, self.norm.norm_before_gate)
            return mamba_split_conv_scan(zxbcdt, self.conv1d.weight, self.conv1d.bias, self.dt_bias, A, self._D(),
                                         self.norm.weight, self.out_proj.weight, self.out_proj.bias, spec, k)
        return self._layers(u, be)[0]

    def _layers(self, u: Tensor, be: str, carry: bool = False, tail: Tensor | None = None,
                state: Tensor | None = None) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """in_proj -> conv -> scan -> gated norm -> out_proj one operation at a time (the fused block's reference).
        With ``carry``: u is one time chunk, ``tail`` (B, <= d_conv-1, conv_dim) the previous chunk's pre-conv rows
        and ``state`` (B, h, p, n) its final SSM state (None: the sequence starts here); returns the next ones too."""
        h, p, g, n = self.nheads, self.headdim, self.ngroups, self.d_state
        d_mlp = self.d_inner - self.d_ssm
        k = self.kernels
        zxbcdt = self.in_proj(u)  # (B, L, d_in_proj)
        z0, x0, z, xBC, dt = torch.split(zxbcdt, [d_mlp, d_mlp, self.d_ssm, self.d_ssm + 2 * g * n, h], dim=-1)
        if carry:
            xBC, tail = conv_with_tail(xBC, tail, self.conv1d.weight, self.conv1d.bias, be, k)  # (B, L, conv_dim)
        else:
            xBC = causal_depthwise_conv(xBC, self.conv1d.weight, self.conv1d.bias, be, k)  # (B, L, conv_dim)
        x, B, C = torch.split(xBC, [self.d_ssm, g * n, g * n], dim=-1)
        x = x.unflatten(-1, (h, p))  # (B, L, h, p)
        B = B.unflatten(-1, (g, n))  # (B, L, g, n)
        C = C.unflatten(-1, (g, n))  # (B, L, g, n)
        A = -torch.exp(self.A_log.to(torch.promote_types(self.A_log.dtype, torch.float32)))  # (h,), never fp16

        gate = None if self.rmsnorm else z.unflatten(-1, (h, p))  # without RMSNorm the scan gates by silu(z)
        y = ssm_scan(x, dt, A, B, C, self._D(), self.dt_bias, self.dt_limit, gate, be, k, self.chunk_size,
                     self.torch_chunk_size, initial_state=state, return_final_state=carry)
        if carry:
            y, state = y
        y = y.flatten(-2)  # (B, L, d_ssm)
        if self.rmsnorm:
            y = self.norm(y, z, backend=be, kernels=k)  # (B, L, d_ssm)
        if d_mlp > 0:
            y = torch.cat([F.silu(z0) * x0, y], dim=-1)  # (B, L, d_inner)
        return self.out_proj(y), tail, state  # (B, L, d_model)
