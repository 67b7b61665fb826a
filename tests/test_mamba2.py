"""Mamba2: mamba_ssm-identical parameters, init recipe, state dicts, backends, dt_limit, linear scaling."""

import math
import time

import pytest
import torch
import torch.nn.functional as F

import samba.nn.mamba2 as mamba2_module
from samba.nn import Mamba2
import samba.ops.ssd as ssd_module
from samba.ops import resolve_backend
from samba.ops.upstream import mamba_ssm_unavailable_reason


def expected_params(d_model, d_state=128, d_conv=4, expand=2, headdim=64, d_ssm=None, ngroups=1,
                    D_has_hdim=False, rmsnorm=True, bias=False, conv_bias=True):
    """Names and shapes of mamba_ssm.modules.mamba2.Mamba2 (v2.2 / 2.3), from its constructor."""
    d_inner = expand * d_model
    d_ssm = d_inner if d_ssm is None else d_ssm
    nheads = d_ssm // headdim
    d_in_proj = 2 * d_inner + 2 * ngroups * d_state + nheads
    conv_dim = d_ssm + 2 * ngroups * d_state
    shapes = {
        "dt_bias": (nheads,),
        "A_log": (nheads,),
        "D": (d_ssm,) if D_has_hdim else (nheads,),
        "in_proj.weight": (d_in_proj, d_model),
        "conv1d.weight": (conv_dim, 1, d_conv),
        "out_proj.weight": (d_model, d_inner),
    }
    if bias:
        shapes["in_proj.bias"] = (d_in_proj,)
        shapes["out_proj.bias"] = (d_model,)
    if conv_bias:
        shapes["conv1d.bias"] = (conv_dim,)
    if rmsnorm:
        shapes["norm.weight"] = (d_ssm,)
    return shapes


PARAM_CONFIGS = [
    dict(d_model=64),
    dict(d_model=64, d_state=16, d_conv=2, expand=8),
    dict(d_model=16, d_state=16, d_conv=2, expand=8, headdim=16),
    dict(d_model=32, d_state=8, headdim=16, ngroups=2, D_has_hdim=True, bias=True, conv_bias=False),
    dict(d_model=32, d_state=8, headdim=16, d_ssm=32, rmsnorm=False),
]


@pytest.mark.parametrize("cfg", PARAM_CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_parameter_names_and_shapes_match_mamba_ssm(cfg):
    m = Mamba2(**cfg)
    got = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    assert got == expected_params(**cfg)


def test_parameter_count_samba_encoder_layer():
    m = Mamba2(64, d_state=16, d_conv=2, expand=8)
    # in_proj 64*1064 + conv 544*2 + 544 + dt_bias/A_log/D 3*8 + norm 512 + out_proj 512*64
    assert sum(p.numel() for p in m.parameters()) == 64 * 1064 + 544 * 3 + 3 * 8 + 512 + 512 * 64 == 103032


def test_init_recipe():
    torch.manual_seed(0)
    m = Mamba2(32, d_state=16, expand=8, headdim=8, dt_min=0.001, dt_max=0.1, A_init_range=(1, 16))
    dt = F.softplus(m.dt_bias)
    assert dt.min() >= 0.001 * 0.999 and dt.max() <= 0.1 * 1.001
    A = torch.exp(m.A_log)
    assert A.min() >= 1 and A.max() <= 16
    assert torch.equal(m.D, torch.ones_like(m.D))
    assert torch.equal(m.norm.weight, torch.ones_like(m.norm.weight))
    for name in ("dt_bias", "A_log", "D"):
        assert getattr(getattr(m, name), "_no_weight_decay", False) is True
    assert not getattr(m.in_proj.weight, "_no_weight_decay", False)
    m = Mamba2(32, conv_init=0.01)
    assert m.conv1d.weight.abs().max() <= 0.01


def test_state_dict_round_trip():
    torch.manual_seed(0)
    a = Mamba2(16, d_state=8, d_conv=2, expand=4, headdim=8, backend="torch")
    torch.manual_seed(1)
    b = Mamba2(16, d_state=8, d_conv=2, expand=4, headdim=8, backend="torch")
    x = torch.randn(2, 33, 16)
    assert not torch.allclose(a(x), b(x))
    b.load_state_dict(a.state_dict())  # strict
    assert torch.equal(a(x), b(x))


def test_shapes_odd_lengths_and_backward():
    m = Mamba2(16, d_state=8, d_conv=4, expand=2, headdim=8, chunk_size=16, backend="torch")
    for L in (1, 3, 17, 64):
        x = torch.randn(3, L, 16, requires_grad=True)
        y = m(x)
        assert y.shape == (3, L, 16)
        y.sum().backward()
        assert torch.isfinite(x.grad).all()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())


def test_causality():
    m = Mamba2(8, d_state=4, d_conv=4, expand=2, headdim=4, backend="torch").double()
    x = torch.randn(1, 40, 8, dtype=torch.float64)
    x2 = x.clone()
    x2[:, 25:] += 1.0
    assert torch.allclose(m(x)[:, :25], m(x2)[:, :25], atol=1e-12)


def test_bad_backend_errors():
    with pytest.raises(ValueError, match="unknown backend"):
        Mamba2(8, backend="cuda")
    m = Mamba2(8, d_state=4, headdim=4)
    with pytest.raises(ValueError, match="unknown backend"):
        m(torch.randn(1, 4, 8), backend="fast")
    with pytest.raises(RuntimeError, match="Triton|CUDA"):  # "triton" is a backend now; its kernels need CUDA
        m(torch.randn(1, 4, 8), backend="triton")
    with pytest.raises(ValueError, match=r"\(batch, length, 8\)"):
        m(torch.randn(1, 4, 9))


def test_mamba_ssm_backend_unavailable_or_cpu_is_a_clear_error():
    m = Mamba2(8, d_state=4, headdim=4, backend="mamba_ssm")  # constructing is fine (move to CUDA later)
    with pytest.raises(RuntimeError) as err:
        m(torch.randn(1, 4, 8))
    msg = str(err.value)
    if mamba_ssm_unavailable_reason() is not None:
        assert "install" in msg and "mamba-ssm" in msg
    else:
        assert "CUDA" in msg


def test_auto_backend_on_cpu_is_torch():
    assert resolve_backend("auto", torch.randn(2)) == "torch"
    m = Mamba2(8, d_state=4, headdim=4)
    torch.testing.assert_close(m(torch.randn(1, 4, 8)).shape, torch.Size([1, 4, 8]))


def test_dt_limit_clamps(monkeypatch):
    import samba.ops.ssd_train as ssd_train

    seen = {}

    def spy_on(real):
        def spy(x, dt, *args, **kwargs):
            seen["dt"] = dt.detach().clone()
            return real(x, dt, *args, **kwargs)
        return spy

    monkeypatch.setattr(ssd_module, "ssd_chunked", spy_on(ssd_module.ssd_chunked))
    monkeypatch.setattr(ssd_train, "ssd_chunked_train", spy_on(ssd_train.ssd_chunked_train))  # CPU training
    torch.manual_seed(0)
    m = Mamba2(16, d_state=4, headdim=8, backend="torch", dt_limit=(0.02, 0.05))
    x = 3 * torch.randn(2, 50, 16)
    y_clamped = m(x)
    assert seen["dt"].min() >= 0.02 and seen["dt"].max() <= 0.05
    assert (seen["dt"] == 0.02).any() or (seen["dt"] == 0.05).any()
    m.dt_limit = (0.0, float("inf"))
    y_free = m(x)
    assert not (seen["dt"].min() >= 0.02 and seen["dt"].max() <= 0.05)
    assert not torch.allclose(y_clamped, y_free)


def test_torch_chunk_size_does_not_change_result():
    torch.manual_seed(0)
    a = Mamba2(16, d_state=8, headdim=8, backend="torch", torch_chunk_size=8).double()
    b = Mamba2(16, d_state=8, headdim=8, backend="torch", torch_chunk_size=256).double()
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 100, 16, dtype=torch.float64)
    assert (a(x) - b(x)).abs().max().item() < 1e-10


def test_chunked_path_scales_linearly_in_length():
    """Time per token is flat: L=8192 costs < 3x L=4096 (CPU time of one thread, robust to a shared machine)."""
    torch.manual_seed(0)
    m = Mamba2(16, d_state=16, d_conv=4, expand=2, headdim=16, backend="torch")
    x4, x8 = torch.randn(1, 4096, 16), torch.randn(1, 8192, 16)
    best = {4096: math.inf, 8192: math.inf}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            m(x4), m(x8)  # warm-up of both sizes (the first call at a new size pays its page faults)
            for _ in range(5):  # interleaved minima
                for L, x in ((4096, x4), (8192, x8)):
                    t0 = time.process_time()
                    m(x)
                    best[L] = min(best[L], time.process_time() - t0)
    finally:
        torch.set_num_threads(threads)
    assert best[8192] / best[4096] < 3.0, best


def test_bf16_autocast_cpu_runs():
    m = Mamba2(16, d_state=8, headdim=8, backend="torch")
    x = torch.randn(2, 20, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = m(x)
    ref = m(x)
    assert torch.isfinite(y).all()
    assert (y.float() - ref).abs().max() < 0.1 * ref.abs().max() + 0.05


def _saved_activation_bytes(m, x):
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        m(x)
    return total


def test_chunked_path_memory_scales_linearly_in_length():
    """Activations saved for backward grow like L (x2 per doubling), not like L^2."""
    m = Mamba2(16, d_state=16, d_conv=4, expand=2, headdim=16, backend="torch")
    sizes = [_saved_activation_bytes(m, torch.randn(1, L, 16, requires_grad=True)) for L in (2048, 4096, 8192)]
    assert 1.8 < sizes[1] / sizes[0] < 2.2 and 1.8 < sizes[2] / sizes[1] < 2.2, sizes


# ---------------------------------------------------------------- the mamba_ssm branch, with stand-in kernels
def _fake_kernels():
    """CPU stand-ins with mamba_ssm's exact signatures and input checks (from ssd_combined.py and
    layernorm_gated.py of mamba-ssm 2.3.2), computing the documented math with our reference code."""
    from samba.ops.upstream import MambaSSMKernels
    from samba.ops.ssd import ssd_recurrent

    calls = []

    def mamba_chunk_scan_combined(x, dt, A, B, C, chunk_size, D=None, z=None, dt_bias=None, initial_states=None,
                                  seq_idx=None, cu_seqlens=None, dt_softplus=False,
                                  dt_limit=(0.0, float("inf")), return_final_states=False,
                                  return_varlen_states=False):
        batch, seqlen, nheads, headdim = x.shape
        _, _, ngroups, dstate = B.shape
        assert nheads % ngroups == 0
        assert B.shape == (batch, seqlen, ngroups, dstate) and C.shape == B.shape
        assert dt.shape == (batch, seqlen, nheads) and A.shape == (nheads,)
        assert z is None or z.shape == x.shape
        assert D is None or D.shape in ((nheads, headdim), (nheads,))
        assert dt_bias is None or dt_bias.shape == (nheads,)
        assert x.stride(-1) == 1 or x.stride(1) == 1
        calls.append(dict(nheads=nheads, ngroups=ngroups, chunk_size=chunk_size))
        dt = dt.double() + (0 if dt_bias is None else dt_bias.double())
        if dt_softplus:
            dt = F.softplus(dt)
        dt = dt.clamp(min=dt_limit[0], max=dt_limit[1])
        y, _ = ssd_recurrent(x.double(), dt, A.double(), B.double(), C.double(),
                             None if D is None else D.double())
        if z is not None:
            y = y * F.silu(z.double())
        return y.to(x.dtype)

    def rmsnorm_fn(x, weight, bias, z=None, eps=1e-6, group_size=None, norm_before_gate=True):
        assert bias is None and x.shape[-1] == weight.shape[0]
        calls.append(dict(norm_group_size=group_size))
        xg = x.double()
        if z is not None and not norm_before_gate:
            xg = xg * F.silu(z.double())
        xg = xg.unflatten(-1, (-1, group_size or x.shape[-1]))
        out = (xg * torch.rsqrt(xg.square().mean(-1, keepdim=True) + eps)).flatten(-2) * weight.double()
        if z is not None and norm_before_gate:
            out = out * F.silu(z.double())
        return out.to(x.dtype)

    fake = MambaSSMKernels(mamba_chunk_scan_combined=mamba_chunk_scan_combined, rmsnorm_fn=rmsnorm_fn,
                           causal_conv1d_fn=None, module=None, stubbed_selective_scan_cuda=False)
    return fake, calls


@pytest.mark.parametrize("cfg", [
    dict(d_model=16, d_state=8, d_conv=2, expand=8, headdim=64),
    dict(d_model=16, d_state=4, d_conv=4, expand=2, headdim=4, ngroups=2, rmsnorm=False, D_has_hdim=True),
    dict(d_model=16, d_state=4, d_conv=3, expand=2, headdim=8, norm_before_gate=True, dt_limit=(0.01, 0.05)),
])
def test_mamba_ssm_branch_calls_kernels_correctly(monkeypatch, cfg):
    """The 'mamba_ssm' code path (argument names, shapes, layouts) checked on CPU with stand-in kernels."""
    import samba.ops.upstream as guard
    from samba.nn import DiffMamba

    fake, calls = _fake_kernels()
    monkeypatch.setattr(guard, "_cache", fake)
    monkeypatch.setattr(mamba2_module, "resolve_backend", lambda backend, x: backend)
    import samba.nn.diff_mamba as dm
    monkeypatch.setattr(dm, "resolve_backend", lambda backend, x: backend)

    torch.manual_seed(0)
    m = Mamba2(**cfg).double()
    with torch.no_grad():
        m.D.normal_()
    x = torch.randn(2, 21, cfg["d_model"], dtype=torch.float64)
    assert (m(x, backend="mamba_ssm") - m(x, backend="torch")).abs().max().item() < 1e-10
    assert calls[0]["nheads"] == m.nheads and calls[0]["ngroups"] == m.ngroups

    team = {k: v for k, v in cfg.items() if k != "d_model"}
    for projections in ("einsum", "dense"):
        torch.manual_seed(0)
        d = DiffMamba(32, head_dim=16, projections=projections, **team).double()
        calls.clear()
        x2 = x.repeat(1, 1, 2)
        assert (d(x2, backend="mamba_ssm") - d(x2, backend="torch")).abs().max() < 1e-10
        assert calls[0]["nheads"] == 4 * d.nheads and calls[0]["ngroups"] == 4 * d.ngroups  # ONE call, 4 teams
