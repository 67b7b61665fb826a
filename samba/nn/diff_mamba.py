"""Multi-head differential Mamba: SAMBA's bottleneck, all heads and both teams in one grouped Mamba2 call.

SAMBA (Hong, Mackellar, Ghane, arXiv 2511.18571, "Multi-Head Differential Mamba") splits the d_model
channels into n_heads = d_model // head_dim heads. Each head runs two independent Mamba2 "teams" on its
own head_dim channels and keeps their difference, which cancels what both teams see (common-mode noise)
and keeps what only one does, in the spirit of the Differential Transformer:

    out_h = Y1_h - lambda_h * Y2_h          lambda: learnable per channel (d_model,), init 1
    out   = x + Linear(GroupNorm_per_head(concat_h out_h))     (each head normalised over its channels and time)

- `DiffMambaLoop` is the authors' formulation (github.com/anon1280/SAMBA, Models/SAMBA.py): ModuleLists
  `team1`, `team2` of n_heads `Mamba2(head_dim, ...)`, `lam`, per-head `head_norms` (GroupNorm(1, head_dim),
  i.e. GroupNorm(n_heads, d_model) over the concatenation), `out_proj`. Same parameter names as the authors,
  so their checkpoints load. It runs 2 * n_heads small Mamba2 modules one after another: on a GPU that is
  launch-bound.
- `DiffMamba` computes the same function with every team's parameters stacked along a team axis
  G = 2 * n_heads (team-major: g = t * n_heads + h, t = 0 for team1, 1 for team2): one batched in_proj
  einsum, one depthwise conv over G * conv_dim channels, ONE scan over G * nheads_per_team SSM heads with
  ngroups = G (each team's heads read that team's B and C), one grouped gated RMSNorm, one batched out_proj
  einsum. Each operation is one `samba.ops` call on the module's `KernelConfig` (`self.kernels`), as in `Mamba2`.
  `from_loop` / `to_loop` / `load_loop_state_dict` move weights between forms.

Both take ``residual`` (default True, the paper's block): False returns ``Linear(GroupNorm(...))`` without ``x +``,
the form the bottleneck's reverse-time twin takes (`samba.model.SAMBAConfig.bidirectional`).
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ..ops import (KernelConfig, causal_depthwise_conv, fused_block_applies, mamba_split_conv_scan, resolve_backend,
                   rms_norm_gated, ssm_scan)
from ..ops.mamba_block import Spec
from .time_chunks import conv_with_tail, time_chunk_steps
from .mamba2 import DEFAULT_TORCH_CHUNK_SIZE, Mamba2, cpu_microbatch, init_A_log, init_dt_bias, layer_kernels, skip_dtype

__all__ = ["DiffMamba", "DiffMambaLoop"]


def _config(d_model: int, head_dim: int, d_state: int, d_conv: int, expand: int, headdim: int, ngroups: int,
            A_init_range, D_has_hdim: bool, rmsnorm: bool, norm_before_gate: bool, dt_min: float, dt_max: float,
            dt_init_floor: float, dt_limit, conv_init, chunk_size: int, backend: str | None,
            torch_chunk_size: int | None, kernels: KernelConfig | None, residual: bool = True) -> dict[str, Any]:
    if d_model % head_dim:
        raise ValueError(f"d_model ({d_model}) must be divisible by head_dim ({head_dim})")
    kernels = layer_kernels(kernels, backend)
    return dict(d_model=d_model, head_dim=head_dim, d_state=d_state, d_conv=d_conv, expand=expand,
                headdim=headdim, ngroups=ngroups, A_init_range=tuple(A_init_range), D_has_hdim=D_has_hdim,
                rmsnorm=rmsnorm, norm_before_gate=norm_before_gate, dt_min=dt_min, dt_max=dt_max,
                dt_init_floor=dt_init_floor, dt_limit=tuple(dt_limit), conv_init=conv_init,
                chunk_size=chunk_size, backend=kernels.backend, torch_chunk_size=torch_chunk_size, kernels=kernels,
                residual=bool(residual))


_TEAM_KEYS = ("d_state", "d_conv", "expand", "headdim", "ngroups", "A_init_range", "D_has_hdim", "rmsnorm",
              "norm_before_gate", "dt_min", "dt_max", "dt_init_floor", "dt_limit", "conv_init", "chunk_size",
              "backend", "torch_chunk_size", "kernels")


class DiffMambaLoop(nn.Module):
    """The authors' multi-head differential Mamba: a Python loop over heads and teams (the reference).

    (B, L, d_model) -> (B, L, d_model), residual inside. Team Mamba2s are `Mamba2(head_dim, d_state, d_conv,
    expand, headdim, ...)` (bias-free projections, conv bias, as mamba_ssm's defaults).
    """

    def __init__(self, d_model: int, head_dim: int = 16, d_state: int = 16, d_conv: int = 2, expand: int = 8,
                 headdim: int = 64, ngroups: int = 1, A_init_range=(1, 16), D_has_hdim: bool = False,
                 rmsnorm: bool = True, norm_before_gate: bool = False, dt_min: float = 0.001, dt_max: float = 0.1,
                 dt_init_floor: float = 1e-4, dt_limit=(0.0, float("inf")), conv_init: float | None = None,
                 chunk_size: int = 256, backend: str | None = None, torch_chunk_size: int | None = None,
                 kernels: KernelConfig | None = None, residual: bool = True, device=None, dtype=None):
        super().__init__()
        self.config = _config(d_model, head_dim, d_state, d_conv, expand, headdim, ngroups, A_init_range,
                              D_has_hdim, rmsnorm, norm_before_gate, dt_min, dt_max, dt_init_floor, dt_limit,
                              conv_init, chunk_size, backend, torch_chunk_size, kernels, residual)
        factory = {"device": device, "dtype": dtype}
        team_kwargs = {k: self.config[k] for k in _TEAM_KEYS}
        self.d_model, self.head_dim, self.num_heads = d_model, head_dim, d_model // head_dim
        self.residual = self.config["residual"]
        self.team1 = nn.ModuleList([Mamba2(head_dim, **team_kwargs, **factory) for _ in range(self.num_heads)])
        self.team2 = nn.ModuleList([Mamba2(head_dim, **team_kwargs, **factory) for _ in range(self.num_heads)])
        self.lam = nn.Parameter(torch.ones(d_model, **factory))
        self.head_norms = nn.ModuleList([nn.GroupNorm(1, head_dim, **factory) for _ in range(self.num_heads)])
        self.out_proj = nn.Linear(d_model, d_model, **factory)

    def forward(self, x: Tensor, *, backend: str | None = None) -> Tensor:
        """x: (B, L, d_model) -> (B, L, d_model)."""
        heads = torch.split(x, self.head_dim, dim=-1)  # n_heads x (B, L, head_dim)
        outs = []
        for i, xh in enumerate(heads):
            xh = xh.contiguous()
            y1 = self.team1[i](xh, backend=backend)  # (B, L, head_dim)
            y2 = self.team2[i](xh, backend=backend)
            lam = self.lam[i * self.head_dim:(i + 1) * self.head_dim]
            diff = y1 - lam * y2
            outs.append(self.head_norms[i](diff.transpose(1, 2)).transpose(1, 2))  # over channels and time
        out = self.out_proj(torch.cat(outs, dim=-1))  # (B, L, d_model)
        return x + out if self.residual else out


class DiffMamba(nn.Module):
    """Multi-head differential Mamba with all 2 * n_heads team Mamba2s as one grouped computation.

    (B, L, d_model) -> (B, L, d_model), residual inside; the same function (and init recipe) as
    `DiffMambaLoop`. With G = 2 * n_heads teams (team-major), d_inner = expand * head_dim,
    nh = d_inner // headdim SSM heads per team, conv_dim = d_inner + 2 * ngroups * d_state and
    d_in_proj = 2 * d_inner + 2 * ngroups * d_state + nh, the parameters are
        team_in_proj_weight (G, d_in_proj, head_dim)    team_out_proj_weight (G, head_dim, d_inner)
        team_conv1d_weight (G * conv_dim, 1, d_conv)    team_conv1d_bias (G * conv_dim,)
        team_dt_bias, team_A_log (G * nh,)              team_D (G * nh,) or (G * d_inner,) if D_has_hdim
        team_norm_weight (G * d_inner,) if rmsnorm
        lam, head_norm_weight, head_norm_bias (d_model,)    out_proj: Linear(d_model, d_model)
    """

    def __init__(self, d_model: int, head_dim: int = 16, d_state: int = 16, d_conv: int = 2, expand: int = 8,
                 headdim: int = 64, ngroups: int = 1, A_init_range=(1, 16), D_has_hdim: bool = False,
                 rmsnorm: bool = True, norm_before_gate: bool = False, dt_min: float = 0.001, dt_max: float = 0.1,
                 dt_init_floor: float = 1e-4, dt_limit=(0.0, float("inf")), conv_init: float | None = None,
                 chunk_size: int = 256, backend: str | None = None, torch_chunk_size: int | None = None,
                 projections: str = "auto", kernels: KernelConfig | None = None, residual: bool = True,
                 device=None, dtype=None):
        super().__init__()
        self.config = _config(d_model, head_dim, d_state, d_conv, expand, headdim, ngroups, A_init_range,
                              D_has_hdim, rmsnorm, norm_before_gate, dt_min, dt_max, dt_init_floor, dt_limit,
                              conv_init, chunk_size, backend, torch_chunk_size, kernels, residual)
        factory = {"device": device, "dtype": dtype}
        self.kernels = self.config["kernels"]
        self.backend = self.kernels.backend
        self.residual = self.config["residual"]
        if projections not in ("auto", "einsum", "dense"):
            raise ValueError(f"projections must be 'auto', 'einsum' or 'dense', got {projections!r}")
        self.projections = projections  # "auto": dense block-diagonal GEMMs on CUDA, batched einsums on CPU
        self.d_model, self.head_dim, self.num_heads = d_model, head_dim, d_model // head_dim
        self.n_teams = G = 2 * self.num_heads
        self.d_state, self.d_conv, self.ngroups, self.headdim = d_state, d_conv, ngroups, headdim
        self.d_inner = expand * head_dim
        if self.d_inner % headdim:
            raise ValueError(f"expand * head_dim ({self.d_inner}) must be divisible by headdim ({headdim})")
        self.nheads = self.d_inner // headdim  # SSM heads per team
        if self.nheads % ngroups:
            raise ValueError(f"nheads per team ({self.nheads}) must be divisible by ngroups ({ngroups})")
        self.conv_dim = self.d_inner + 2 * ngroups * d_state
        self.d_in_proj = 2 * self.d_inner + 2 * ngroups * d_state + self.nheads
        self.D_has_hdim, self.rmsnorm, self.norm_before_gate = D_has_hdim, rmsnorm, norm_before_gate
        self.dt_limit = tuple(dt_limit)
        self.chunk_size = chunk_size
        self.torch_chunk_size = torch_chunk_size or min(chunk_size, DEFAULT_TORCH_CHUNK_SIZE)
        self.norm_eps = 1e-5  # mamba's RMSNormGated eps in Mamba2

        self.team_in_proj_weight = nn.Parameter(torch.empty(G, self.d_in_proj, head_dim, **factory))
        self.team_conv1d_weight = nn.Parameter(torch.empty(G * self.conv_dim, 1, d_conv, **factory))
        self.team_conv1d_bias = nn.Parameter(torch.empty(G * self.conv_dim, **factory))
        self.team_dt_bias = nn.Parameter(torch.empty(G * self.nheads, **factory))
        self.team_A_log = nn.Parameter(torch.empty(G * self.nheads, **factory))
        self.team_D = nn.Parameter(torch.empty(G * (self.d_inner if D_has_hdim else self.nheads), device=device,
                                               dtype=skip_dtype(dtype)))
        for p in (self.team_dt_bias, self.team_A_log, self.team_D):
            p._no_weight_decay = True
        if rmsnorm:
            self.team_norm_weight = nn.Parameter(torch.empty(G * self.d_inner, **factory))
        self.team_out_proj_weight = nn.Parameter(torch.empty(G, head_dim, self.d_inner, **factory))
        self.lam = nn.Parameter(torch.empty(d_model, **factory))
        self.head_norm_weight = nn.Parameter(torch.empty(d_model, **factory))
        self.head_norm_bias = nn.Parameter(torch.empty(d_model, **factory))
        self.out_proj = nn.Linear(d_model, d_model, **factory)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Each team initialised exactly like a fresh Mamba2 (nn.Linear / nn.Conv1d defaults + mamba's recipe)."""
        cfg = self.config
        G = self.n_teams
        bound = 1 / math.sqrt(self.head_dim)  # nn.Linear default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
        self.team_in_proj_weight.uniform_(-bound, bound)
        conv_bound = 1 / math.sqrt(self.d_conv)  # depthwise conv: fan_in = d_conv
        if cfg["conv_init"] is not None:
            self.team_conv1d_weight.uniform_(-cfg["conv_init"], cfg["conv_init"])
        else:
            self.team_conv1d_weight.uniform_(-conv_bound, conv_bound)
        self.team_conv1d_bias.uniform_(-conv_bound, conv_bound)
        self.team_dt_bias.copy_(init_dt_bias(G * self.nheads, cfg["dt_min"], cfg["dt_max"], cfg["dt_init_floor"]))
        self.team_A_log.copy_(init_A_log(G * self.nheads, cfg["A_init_range"]))
        self.team_D.fill_(1.0)
        if self.rmsnorm:
            self.team_norm_weight.fill_(1.0)
        out_bound = 1 / math.sqrt(self.d_inner)
        self.team_out_proj_weight.uniform_(-out_bound, out_bound)
        self.lam.fill_(1.0)
        self.head_norm_weight.fill_(1.0)
        self.head_norm_bias.zero_()
        self.out_proj.reset_parameters()

    def extra_repr(self) -> str:
        return (f"d_model={self.d_model}, heads={self.num_heads} x {self.head_dim}, teams={self.n_teams}, "
                f"d_inner/team={self.d_inner}, ssm heads/team={self.nheads}, d_state={self.d_state}, "
                f"backend={self.backend!r}")

    # ------------------------------------------------------------------ forward
    def forward(self, u: Tensor, *, backend: str | None = None) -> Tensor:
        """u: (B, L, d_model) -> (B, L, d_model). `backend` overrides self.backend for this call."""
        if u.dim() != 3 or u.shape[-1] != self.d_model:
            raise ValueError(f"DiffMamba expects (batch, length, {self.d_model}), got {tuple(u.shape)}")
        be = resolve_backend(self.backend if backend is None else backend, u)
        per_call = cpu_microbatch(u, self.n_teams * self.nheads) if be == "torch" else None
        if per_call is not None:  # exact: samples are independent (GroupNorm is per sample)
            return torch.cat([self._forward(part, be) for part in u.split(per_call)])
        return self._forward(u, be)

    def _forward(self, u: Tensor, be: str) -> Tensor:
        steps = time_chunk_steps(u, self.n_teams * self.d_in_proj)
        if steps is None and self._fused_applies(u, be):
            diff = self._fused_difference(u)  # (b, L, d_model)
        elif steps is None:
            diff = self._difference(u, be)[0]  # (b, L, d_model)
        else:  # time chunks (samba.nn.time_chunks): the teams' wide tensors exist for one chunk at a time
            diff, tail, state = None, None, None
            for t0 in range(0, u.shape[1], steps):
                part, tail, state = self._difference(u[:, t0:t0 + steps], be, True, tail, state)
                if diff is None:
                    diff = part.new_empty(u.shape[0], u.shape[1], self.d_model)  # (b, L, d_model)
                diff[:, t0:t0 + steps] = part
        # each head normalised over its channels and the whole time axis: after the loop, on the narrow tensor
        normed = F.group_norm(diff.transpose(1, 2), self.num_heads, self.head_norm_weight, self.head_norm_bias,
                              eps=1e-5)
        out = self.out_proj(normed.transpose(1, 2))  # (b, L, d_model)
        return u + out if self.residual else out

    def _A_D(self) -> tuple[Tensor, Tensor]:
        """The scan's A = -exp(A_log) (G*nh,), never below float32, and its skip D ((G*nh,) or (G*nh, p))."""
        A = -torch.exp(self.team_A_log.to(torch.promote_types(self.team_A_log.dtype, torch.float32)))
        D = self.team_D.view(self.n_teams * self.nheads, self.headdim) if self.D_has_hdim else self.team_D
        return A, D

    def _difference(self, u: Tensor, be: str, carry: bool = False, tail: Tensor | None = None,
                    state: Tensor | None = None) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """Every team's Mamba2 and the differential combination, before the head norm: (b, L, d_model). With
        ``carry``: u is one time chunk; ``tail`` / ``state`` are the previous chunk's conv tail and SSM state
        (None at the start), and the next ones are returned too."""
        b, L, _ = u.shape
        H, G, nh, p = self.num_heads, self.n_teams, self.nheads, self.headdim
        ng, n, di = self.ngroups, self.d_state, self.d_inner

        dense = self.projections == "dense" or (self.projections == "auto" and u.is_cuda)
        def conv(xBC, weight, bias):  # (b, L, ch) -> (b, L, ch); with carry, continues the previous chunk
            nonlocal tail
            if not carry:
                return causal_depthwise_conv(xBC, weight, bias, be, self.kernels)
            xBC, tail = conv_with_tail(xBC, tail, weight, bias, be, self.kernels)
            return xBC

        if dense:
            x, B, C, dt, z = self._project_in_dense(u, be, conv)
        else:
            # One batched in_proj for all teams: head h feeds team1[h] and team2[h].
            w_in = self.team_in_proj_weight.view(2, H, self.d_in_proj, self.head_dim)
            zxbcdt = torch.einsum("blhk,thok->bltho", u.view(b, L, H, self.head_dim), w_in)  # (b, L, 2, H, d_in_proj)
            zxbcdt = zxbcdt.reshape(b, L, G, self.d_in_proj)  # team-major g = t * H + h
            z, xBC, dt = torch.split(zxbcdt, [di, self.conv_dim, nh], dim=-1)

            # One depthwise causal conv over all teams' (x, B, C) channels.
            xBC = conv(xBC.reshape(b, L, G * self.conv_dim), self.team_conv1d_weight,
                       self.team_conv1d_bias).view(b, L, G, self.conv_dim)
            x, B, C = torch.split(xBC, [di, ng * n, ng * n], dim=-1)
            x = x.reshape(b, L, G * nh, p)  # (b, L, G*nh, p): team g owns SSM heads g*nh ... g*nh + nh - 1
            B = B.reshape(b, L, G * ng, n)  # (b, L, G*ng, n): so each team's heads read that team's B, C
            C = C.reshape(b, L, G * ng, n)
            dt = dt.reshape(b, L, G * nh)
            z = z.reshape(b, L, G * di)
        A, D = self._A_D()

        # ONE scan over every SSM head of every team.
        gate = None if self.rmsnorm else z.view(b, L, G * nh, p)
        y = ssm_scan(x, dt, A, B, C, D, self.team_dt_bias, self.dt_limit, gate, be, self.kernels, self.chunk_size,
                     self.torch_chunk_size, initial_state=state, return_final_state=carry)
        if carry:
            y, state = y
        y = y.reshape(b, L, G * di)  # (b, L, G*di)
        if self.rmsnorm:  # grouped gated RMSNorm: every team's groups normalised on their own
            y = rms_norm_gated(y, z, self.team_norm_weight, self.norm_eps, di // ng, self.norm_before_gate, be,
                               self.kernels)

        if dense:  # out_proj, lambda and the difference folded into one (d_model, G*di) matrix
            diff = F.linear(y, self._out_matrix_dense())  # (b, L, d_model)
        else:  # one batched out_proj, then the differential combination per head
            y = torch.einsum("blgi,goi->blgo", y.view(b, L, G, di), self.team_out_proj_weight)  # (b, L, G, hd)
            y = y.reshape(b, L, 2, self.d_model)  # team-major: [:, :, 0] = team1 heads, [:, :, 1] = team2 heads
            diff = y[:, :, 0] - self.lam * y[:, :, 1]  # (b, L, d_model)
        return diff, tail, state

    # ------------------------------------------------------------------ dense projections (CUDA)
    # On a GPU the per-head projections are tiny, memory-bound matmuls whose outputs need permute copies. There
    # the block-diagonal weights are assembled once per call (a few hundred kB) and applied as ONE dense GEMM
    # whose output rows are ordered by type ([z | x | B | C | dt], each team-major), so that every tensor the
    # scan and the norm read is a view: 8x the (negligible) FLOPs, several full-size copies fewer. Same math.
    def _dense_weights(self) -> tuple[Tensor, Tensor, Tensor]:
        """in_proj rows (G*d_in_proj, d_model) and the conv's weight (G*conv_dim, 1, d_conv) and bias, reordered by
        type: [z | x | B | C | dt] and [x | B | C], each team-major (the layout a Mamba2 layer's in_proj has)."""
        H, G, nh = self.num_heads, self.n_teams, self.nheads
        ng, n, di, cd, k = self.ngroups, self.d_state, self.d_inner, self.conv_dim, self.d_conv
        eye = torch.eye(H, device=self.team_in_proj_weight.device, dtype=self.team_in_proj_weight.dtype)
        w = self.team_in_proj_weight.view(2, H, self.d_in_proj, self.head_dim)
        blocks = torch.einsum("thok,hj->thojk", w, eye).reshape(G, self.d_in_proj, self.d_model)  # 0 off-head
        rows = torch.cat([part.reshape(-1, self.d_model)
                          for part in blocks.split([di, di, ng * n, ng * n, nh], dim=1)])  # (G*d_in_proj, d_model)
        conv_w = torch.cat([part.reshape(-1, k) for part in
                            self.team_conv1d_weight.view(G, cd, k).split([di, ng * n, ng * n], dim=1)])
        conv_b = torch.cat([part.reshape(-1) for part in
                            self.team_conv1d_bias.view(G, cd).split([di, ng * n, ng * n], dim=1)])
        return rows, conv_w.unsqueeze(1), conv_b

    def _project_in_dense(self, u: Tensor, be: str, conv=None) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        G, nh, p = self.n_teams, self.nheads, self.headdim
        ng, n, di, cd = self.ngroups, self.d_state, self.d_inner, self.conv_dim
        rows, conv_w, conv_b = self._dense_weights()
        zxbcdt = F.linear(u, rows)  # (b, L, G*d_in_proj) = [z | x | B | C | dt], each (G, width) team-major
        z, xBC, dt = zxbcdt.split([G * di, G * cd, G * nh], dim=-1)
        if conv is None:
            xBC = causal_depthwise_conv(xBC, conv_w, conv_b, be, self.kernels)  # (b, L, G*cd) type-major
        else:  # the caller's conv (time-chunked inference carries the conv tail)
            xBC = conv(xBC, conv_w, conv_b)
        x, B, C = xBC.split([G * di, G * ng * n, G * ng * n], dim=-1)
        return (x.unflatten(-1, (G * nh, p)), B.unflatten(-1, (G * ng, n)), C.unflatten(-1, (G * ng, n)),
                dt, z)  # (b, L, G*nh, p), (b, L, G*ng, n) x2, (b, L, G*nh), (b, L, G*di)

    # In that layout the teams are one wide Mamba2 layer with G groups (each team's heads read that team's B and C),
    # a gated norm over groups of d_inner // ngroups and an out_proj without bias: the fused block of the full
    # Mamba2 layers (`samba.ops.mamba_split_conv_scan`) computes it as is. It saves in_proj's output and the scan
    # output only and writes every part of the input gradient into one buffer, where the layer path above keeps
    # the conv output and concatenates its gradients twice (the backward of its two splits).
    def _fused_applies(self, u: Tensor, be: str) -> bool:
        k = self.kernels
        return (be == "triton" and k.fused_bottleneck and self.rmsnorm and self.projections != "einsum"
                and fused_block_applies(u, k, self.headdim, self.d_state))

    def _fused_difference(self, u: Tensor) -> Tensor:
        """`_difference` (no carried state) through the fused block: (b, L, d_model) -> (b, L, d_model)."""
        G, p, di = self.n_teams, self.headdim, self.d_inner
        rows, conv_w, conv_b = self._dense_weights()
        zxbcdt = F.linear(u, rows)  # (b, L, G*d_in_proj) = [z | x | B | C | dt]
        A, D = self._A_D()
        spec = Spec(G * di, p, G * self.ngroups, self.d_state, self.chunk_size, self.dt_limit, self.norm_eps,
                    di // self.ngroups, self.norm_before_gate)
        return mamba_split_conv_scan(zxbcdt, conv_w, conv_b, self.team_dt_bias, A, D, self.team_norm_weight,
                                     self._out_matrix_dense(), None, spec, self.kernels)

    def _out_matrix_dense(self) -> Tensor:
        """(d_model, G*di): row h*hd+j reads team1[h] with W1[j] and team2[h] with -lam[h*hd+j] * W2[j]."""
        H, hd, di = self.num_heads, self.head_dim, self.d_inner
        w = self.team_out_proj_weight.view(2, H, hd, di)
        signed = torch.stack([w[0], -self.lam.view(H, hd, 1) * w[1]])  # (2, H, hd, di)
        eye = torch.eye(H, device=w.device, dtype=w.dtype)
        return torch.einsum("thji,hk->hjtki", signed, eye).reshape(self.d_model, self.n_teams * di)

    # ------------------------------------------------------------------ loop <-> grouped
    def _team_slices(self) -> list[tuple[str, str, Any]]:
        """(grouped name, loop suffix, function g -> index into the grouped tensor) for the team params."""
        cd, nh, di = self.conv_dim, self.nheads, self.d_inner
        nD = di if self.D_has_hdim else nh
        rows = [
            ("team_in_proj_weight", "in_proj.weight", lambda g: g),
            ("team_conv1d_weight", "conv1d.weight", lambda g: slice(g * cd, (g + 1) * cd)),
            ("team_conv1d_bias", "conv1d.bias", lambda g: slice(g * cd, (g + 1) * cd)),
            ("team_dt_bias", "dt_bias", lambda g: slice(g * nh, (g + 1) * nh)),
            ("team_A_log", "A_log", lambda g: slice(g * nh, (g + 1) * nh)),
            ("team_D", "D", lambda g: slice(g * nD, (g + 1) * nD)),
            ("team_out_proj_weight", "out_proj.weight", lambda g: g),
        ]
        if self.rmsnorm:
            rows.append(("team_norm_weight", "norm.weight", lambda g: slice(g * di, (g + 1) * di)))
        return rows

    def _team_name(self, g: int) -> str:
        return f"team{g // self.num_heads + 1}.{g % self.num_heads}"

    def to_loop_state_dict(self, tensors: Mapping[str, Tensor] | None = None) -> dict[str, Tensor]:
        """Grouped tensors (default: this module's state) renamed/sliced into `DiffMambaLoop` names.

        Pass e.g. {name: p.grad} to map gradients the same way.
        """
        src = dict(self.state_dict()) if tensors is None else dict(tensors)
        out: dict[str, Tensor] = {}
        for name, suffix, index in self._team_slices():
            for g in range(self.n_teams):
                out[f"{self._team_name(g)}.{suffix}"] = src[name][index(g)]
        hd = self.head_dim
        out["lam"] = src["lam"]
        for h in range(self.num_heads):
            out[f"head_norms.{h}.weight"] = src["head_norm_weight"][h * hd:(h + 1) * hd]
            out[f"head_norms.{h}.bias"] = src["head_norm_bias"][h * hd:(h + 1) * hd]
        out["out_proj.weight"] = src["out_proj.weight"]
        out["out_proj.bias"] = src["out_proj.bias"]
        return out

    @torch.no_grad()
    def load_loop_state_dict(self, sd: Mapping[str, Tensor]) -> None:
        """Load a `DiffMambaLoop` (or the authors' DiffMamba) state dict into the grouped parameters."""
        own = dict(self.named_parameters())
        expected = set(self.to_loop_state_dict().keys())
        missing, unexpected = expected - set(sd), set(sd) - expected
        if missing or unexpected:
            raise KeyError(f"loop state dict does not match this DiffMamba: missing {sorted(missing)[:6]}, "
                           f"unexpected {sorted(unexpected)[:6]}")
        for name, suffix, index in self._team_slices():
            for g in range(self.n_teams):
                target = own[name][index(g)]
                value = sd[f"{self._team_name(g)}.{suffix}"]
                if target.shape != value.shape:
                    raise ValueError(f"{self._team_name(g)}.{suffix}: shape {tuple(value.shape)} != "
                                     f"{tuple(target.shape)}")
                target.copy_(value)
        hd = self.head_dim
        self.lam.copy_(sd["lam"])
        for h in range(self.num_heads):
            self.head_norm_weight[h * hd:(h + 1) * hd].copy_(sd[f"head_norms.{h}.weight"])
            self.head_norm_bias[h * hd:(h + 1) * hd].copy_(sd[f"head_norms.{h}.bias"])
        self.out_proj.weight.copy_(sd["out_proj.weight"])
        self.out_proj.bias.copy_(sd["out_proj.bias"])

    @classmethod
    def from_loop(cls, loop: DiffMambaLoop, **overrides: Any) -> "DiffMamba":
        """A grouped DiffMamba with `loop`'s configuration and weights (same device and dtype)."""
        ref = loop.lam
        module = cls(**{**loop.config, **overrides}, device=ref.device, dtype=ref.dtype)
        module.load_loop_state_dict(loop.state_dict())
        return module

    def to_loop(self, **overrides: Any) -> DiffMambaLoop:
        """The equivalent `DiffMambaLoop` (same weights, device and dtype)."""
        ref = self.lam
        loop = DiffMambaLoop(**{**self.config, **overrides}, device=ref.device, dtype=ref.dtype)
        loop.load_state_dict(self.to_loop_state_dict())
        return loop
