"""The fused Mamba2 block's backward (`samba.ops.mamba_block`) on CPU in float64, with and without activation
checkpointing.

The Triton kernels are replaced by stand-ins built on the PyTorch references that, like the kernels, write into the
buffers they are handed. So what is checked is the backward's use of its buffers: the norm output and then the conv
output are recomputed into the slot of the input gradient that the conv backward fills last, and under activation
checkpointing the scan output y is freed before our scan's backward runs (the full-rate block's backward is the peak
of a long train step). The kernels themselves are checked in Triton's interpreter and on the GPU
(`test_triton_kernels.py`, `test_gpu_backends.py`).
"""

from __future__ import annotations

import weakref

import pytest
import torch
from torch.utils.checkpoint import checkpoint, set_checkpoint_early_stop

import samba.ops.mamba_block as mf
from samba.nn import Mamba2
from samba.ops import KernelConfig
from samba.ops.conv import causal_conv1d_silu_ref
from samba.ops.norm import gated_rms_norm
from samba.ops.ssd import softplus_dt, ssd_chunked
from samba.ops.triton import conv as tconv, norm as tnorm, ssd as tssd

EPS = 1e-5  # Mamba2's gated-norm eps


def _grads(f, inputs, g):
    """Gradients of f(*inputs) (one output) for the output gradient g; None where an input is None."""
    with torch.enable_grad():
        ins = [None if t is None else t.detach().requires_grad_() for t in inputs]
        got = iter(torch.autograd.grad(f(*ins), [t for t in ins if t is not None], g))
    return [None if t is None else next(got) for t in ins]


def _into(buf, value):
    return value if buf is None else buf.copy_(value)


def _scan(x, dt, A, B, C, D):
    return ssd_chunked(x, dt, A, B, C, 16, D=D)


class StandIns:
    """The Triton wrappers the fused block calls, on the references; `y_alive_at_scan_backward` records, at each
    scan backward, whether the last scan output y still exists."""

    def __init__(self):
        self.y_ref = None
        self.y_alive_at_scan_backward = []

    def conv_fwd(self, x, w, b, out=None):
        return _into(out, causal_conv1d_silu_ref(x, w, b))

    def conv_bwd(self, x, w, b, g, dx=None, kernels=None):
        gx, gw, gb = _grads(causal_conv1d_silu_ref, (x, w, b), g)
        return _into(dx, gx), gw, gb

    def norm_fwd(self, x, z, w, eps, group_size, norm_before_gate, out=None):
        rstd = x.new_empty(x.shape[0] * (x.shape[1] // group_size))  # the stand-in backward recomputes it
        return _into(out, gated_rms_norm(x, z, w, eps, group_size, norm_before_gate)), rstd

    def norm_bwd(self, dy, x, z, w, rstd, group_size, norm_before_gate, dz=None, recompute_out=None, kernels=None):
        def f(x, z, w):
            return gated_rms_norm(x, z, w, EPS, group_size, norm_before_gate)
        gx, gz, gw = _grads(f, (x, z, w), dy)
        if recompute_out is not None:
            recompute_out.copy_(f(x, z, w))
        return gx, gw, _into(dz, gz)

    def ssd_fwd(self, x, dt, A, B, C, D, states=True, kernels=None):
        y = _scan(x, dt, A, B, C, D)
        self.y_ref = weakref.ref(y)
        return y, None

    def ssd_bwd(self, dy, x, dt, A, B, C, D, S, dx=None, dB=None, dC=None, kernels=None):
        self.y_alive_at_scan_backward.append(self.y_ref() is not None)
        gx, gdt, gA, gB, gC, gD = _grads(_scan, (x, dt, A, B, C, D), dy)
        return _into(dx, gx), gdt, gA, _into(dB, gB), _into(dC, gC), gD

    # mamba_ssm's scan interface (`samba.ops.mamba_block._scan_ops`): its backward also reads y
    def upstream_fwd(self, x, dt, A, B, C, chunk_size, D=None, z=None, dt_bias=None, dt_softplus=False,
                     dt_limit=(0.0, float("inf"))):
        return (_scan(x, softplus_dt(dt, dt_bias, dt_limit), A, B, C, D),)

    def upstream_bwd(self, dout, x, dt, A, B, C, out, chunk_size, D=None, z=None, dt_bias=None, dt_softplus=False,
                     dt_limit=(0.0, float("inf")), dx=None, ddt=None, dB=None, dC=None):
        def f(x, dt, A, B, C, D, bias):
            return _scan(x, softplus_dt(dt, bias, dt_limit), A, B, C, D)
        torch.testing.assert_close(out, f(x, dt, A, B, C, D, dt_bias), rtol=1e-12, atol=1e-12)  # y intact
        gx, gdt, gA, gB, gC, gD, gbias = _grads(f, (x, dt, A, B, C, D, dt_bias), dout)
        dx.copy_(gx), ddt.copy_(gdt), dB.copy_(gB), dC.copy_(gC)
        return dx, ddt, gA, dB, dC, gD, None, gbias, None


@pytest.fixture
def stand_ins(monkeypatch):
    s = StandIns()
    for module, name, fn in ((tconv, "conv_fwd", s.conv_fwd), (tconv, "conv_bwd", s.conv_bwd),
                             (tnorm, "gated_rms_norm_fwd", s.norm_fwd), (tnorm, "gated_rms_norm_bwd", s.norm_bwd),
                             (tssd, "ssd_fwd", s.ssd_fwd), (tssd, "ssd_bwd", s.ssd_bwd)):
        monkeypatch.setattr(module, name, fn)
    monkeypatch.setattr(mf, "_scan_ops", lambda kernels: (s.upstream_fwd, s.upstream_bwd))
    return s


def _fused(m: Mamba2, u, kernels):
    spec = mf.Spec(m.d_ssm, m.headdim, m.ngroups, m.d_state, m.chunk_size, tuple(m.dt_limit), m.norm.eps,
                   m.norm.group_size, m.norm.norm_before_gate)
    zxbcdt = mf.aligned_in_proj(u, m.in_proj)  # (B, L, 164 + 12 zero columns)
    return mf.mamba_split_conv_scan(zxbcdt, m.conv1d.weight, m.conv1d.bias, m.dt_bias, -torch.exp(m.A_log),
                                    m._D(), m.norm.weight, m.out_proj.weight, m.out_proj.bias, spec, kernels)


@pytest.mark.parametrize("scan", ["ours", "mamba_ssm"])
@pytest.mark.parametrize("ckpt", [False, True])
def test_fused_block_backward_matches_the_layer_with_and_without_checkpointing(stand_ins, monkeypatch, scan, ckpt):
    monkeypatch.setattr(mf, "use_triton_scan", lambda x, B, kernels: scan == "ours")
    torch.manual_seed(0)
    m = Mamba2(16, d_state=16, d_conv=2, expand=4, headdim=16, backend="torch").double()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    u = torch.randn(2, 100, 16, dtype=torch.float64, requires_grad=True)  # 100 steps: not a multiple of 16
    params = [u, *m.parameters()]
    ref = m(u)  # the layer by layer torch path
    g = torch.randn_like(ref)
    want = torch.autograd.grad(ref, params, g)

    kernels = KernelConfig(triton_norm=True)
    if ckpt:  # as SAMBA._ckpt runs a block
        with set_checkpoint_early_stop(False):
            out = checkpoint(lambda h: _fused(m, h, kernels), u, use_reentrant=False)
    else:
        out = _fused(m, u, kernels)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)
    got = torch.autograd.grad(out, params, g)
    for name, a, b in zip(["input"] + [n for n, _ in m.named_parameters()], got, want):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12, msg=name)
    if scan == "ours":
        # Without checkpointing autograd keeps y saved until the step ends; with it the block's backward held
        # the only reference and dropped it before the scan's buffers were made.
        assert stand_ins.y_alive_at_scan_backward == [not ckpt]


@pytest.mark.parametrize("ngroups,D_has_hdim", [(1, False), (2, True)])
def test_fused_block_runs_the_differential_mamba_teams(stand_ins, monkeypatch, ngroups, D_has_hdim):
    """The bottleneck's teams through the fused block (KernelConfig.fused_bottleneck): the dense projections'
    [z | x | B | C | dt] rows read as one Mamba2 layer of G = 2 * n_heads groups, equal to the layer path."""
    from samba.nn import DiffMamba

    monkeypatch.setattr(mf, "use_triton_scan", lambda x, B, kernels: True)
    torch.manual_seed(1)
    m = DiffMamba(32, head_dim=16, d_state=16, d_conv=2, expand=2, headdim=8, ngroups=ngroups,
                  D_has_hdim=D_has_hdim, projections="dense", backend="torch").double()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    u = torch.randn(2, 70, 32, dtype=torch.float64, requires_grad=True)
    ref = m._difference(u, "torch")[0]  # (2, 70, 32): every team's Mamba2 and the difference, layer by layer
    out = m._fused_difference(u)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)
    used = [u] + [p for n, p in m.named_parameters() if not n.startswith(("head_norm", "out_proj"))]
    g = torch.randn_like(ref)
    for a, b in zip(torch.autograd.grad(out, used, g), torch.autograd.grad(ref, used, g)):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
