"""DiffMamba (one grouped computation) equals DiffMambaLoop (the authors' per-head loop): forward and gradients."""

import math

import pytest
import torch
import torch.nn.functional as F

from samba.nn import DiffMamba, DiffMambaLoop

F64 = torch.float64


def _perturb(module):
    """Move every parameter off its init so that D, norms, lam and biases all matter."""
    gen = torch.Generator().manual_seed(123)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen, dtype=p.dtype))


def _pair(dtype, projections="auto", **cfg):
    torch.manual_seed(0)
    loop = DiffMambaLoop(**cfg, backend="torch").to(dtype)
    _perturb(loop)
    grouped = DiffMamba.from_loop(loop, projections=projections)
    return loop, grouped


CASES = [  # (config, L)
    (dict(d_model=32, head_dim=16), 37),  # L not divisible by the chunk (64)
    (dict(d_model=48, head_dim=16, torch_chunk_size=16), 100),
    (dict(d_model=32, head_dim=8, d_state=8, expand=4, headdim=8, d_conv=4, torch_chunk_size=8), 29),
    (dict(d_model=32, head_dim=16, headdim=16), 70),  # the authors' code passes headdim=head_dim
    (dict(d_model=16, head_dim=8, d_state=4, expand=4, headdim=8, ngroups=2, rmsnorm=False, D_has_hdim=True,
          torch_chunk_size=4), 23),
    (dict(d_model=16, head_dim=8, d_state=4, expand=4, headdim=8, norm_before_gate=True,
          dt_limit=(0.01, 0.2)), 5),
]


def _forward_backward(module, x, w):
    x = x.detach().clone().requires_grad_()
    module.zero_grad()
    y = module(x)
    (y * w).sum().backward()
    return y.detach(), x.grad, {n: p.grad for n, p in module.named_parameters()}


@pytest.mark.parametrize("dtype,tol", [(F64, 1e-10), (torch.float32, 2e-5)])
@pytest.mark.parametrize("cfg,L,projections", [(c, L, "einsum") for c, L in CASES]
                         + [(c, L, "dense") for c, L in (CASES[0], CASES[3], CASES[4])],
                         ids=[f"einsum{i}" for i in range(len(CASES))] + ["dense0", "dense3", "dense4"])
def test_grouped_equals_loop_forward_and_gradients(cfg, L, projections, dtype, tol):
    """Both projection layouts of the grouped form ("einsum": CPU default, "dense": CUDA default)."""
    loop, grouped = _pair(dtype, projections=projections, **cfg)
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(2, L, cfg["d_model"], generator=gen, dtype=dtype)
    w = torch.randn(2, L, cfg["d_model"], generator=gen, dtype=dtype)
    y_loop, gx_loop, gp_loop = _forward_backward(loop, x, w)
    y_grp, gx_grp, gp_grp = _forward_backward(grouped, x, w)

    scale = y_loop.abs().max().item()
    assert (y_grp - y_loop).abs().max().item() <= tol * max(1.0, scale)
    assert (gx_grp - gx_loop).abs().max().item() <= tol * max(1.0, gx_loop.abs().max().item())
    mapped = grouped.to_loop_state_dict(gp_grp)  # gradients through the same renaming as the weights
    assert set(mapped) == set(gp_loop)
    for name, g_loop in gp_loop.items():
        err = (mapped[name] - g_loop).abs().max().item()
        assert err <= tol * max(1.0, g_loop.abs().max().item()), (name, err)


def test_round_trip_and_authors_names():
    loop, grouped = _pair(F64, d_model=32, head_dim=16)
    names = set(loop.state_dict())
    assert {"lam", "out_proj.weight", "out_proj.bias", "head_norms.0.weight", "head_norms.1.bias",
            "team1.0.in_proj.weight", "team2.1.A_log", "team2.1.norm.weight"} <= names
    back = grouped.to_loop()
    for k, v in loop.state_dict().items():
        assert torch.equal(back.state_dict()[k], v), k
    again = DiffMamba(32, head_dim=16).double()
    again.load_loop_state_dict(loop.state_dict())
    for k, v in grouped.state_dict().items():
        assert torch.equal(again.state_dict()[k], v), k
    with pytest.raises(KeyError, match="missing"):
        again.load_loop_state_dict({k: v for k, v in loop.state_dict().items() if k != "lam"})


def test_parameter_layout_and_count():
    m = DiffMamba(128)  # 8 heads x 16 channels, 16 teams of Mamba2(16, d_state=16, d_conv=2, expand=8, headdim=64)
    G, di, nh, n = 16, 128, 2, 16
    conv_dim, d_in_proj = di + 2 * n, 2 * di + 2 * n + nh
    shapes = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    assert shapes == {
        "team_in_proj_weight": (G, d_in_proj, 16), "team_conv1d_weight": (G * conv_dim, 1, 2),
        "team_conv1d_bias": (G * conv_dim,), "team_dt_bias": (G * nh,), "team_A_log": (G * nh,),
        "team_D": (G * nh,), "team_norm_weight": (G * di,), "team_out_proj_weight": (G, 16, di),
        "lam": (128,), "head_norm_weight": (128,), "head_norm_bias": (128,),
        "out_proj.weight": (128, 128), "out_proj.bias": (128,),
    }
    count = sum(p.numel() for p in m.parameters())
    assert count == sum(p.numel() for p in DiffMambaLoop(128).parameters()) == 133728


def test_init_like_mamba2():
    torch.manual_seed(0)
    m = DiffMamba(64, head_dim=16)
    dt = F.softplus(m.team_dt_bias)
    assert dt.min() >= 0.001 * 0.999 and dt.max() <= 0.1 * 1.001
    A = torch.exp(m.team_A_log)
    assert A.min() >= 1 and A.max() <= 16
    for name in ("team_D", "team_norm_weight", "lam", "head_norm_weight"):
        assert torch.equal(getattr(m, name), torch.ones_like(getattr(m, name)))
    assert torch.equal(m.head_norm_bias, torch.zeros_like(m.head_norm_bias))
    assert m.team_in_proj_weight.abs().max() <= 1 / math.sqrt(16)
    assert m.team_in_proj_weight.abs().max() > 0.9 / math.sqrt(16)  # uniform over the whole nn.Linear range
    assert m.team_conv1d_weight.abs().max() <= 1 / math.sqrt(2)
    assert m.team_out_proj_weight.abs().max() <= 1 / math.sqrt(128)
    for name in ("team_dt_bias", "team_A_log", "team_D"):
        assert getattr(m, name)._no_weight_decay is True


def test_residual_shape_and_errors():
    m = DiffMamba(32, head_dim=16, backend="torch")
    x = torch.randn(3, 11, 32)
    assert m(x).shape == x.shape
    with pytest.raises(ValueError, match="divisible"):
        DiffMamba(30, head_dim=16)
    with pytest.raises(ValueError, match="unknown backend"):
        DiffMamba(32, backend="fast")
    with pytest.raises(ValueError, match="projections"):
        DiffMamba(32, projections="sparse")
    with pytest.raises(ValueError, match=r"\(batch, length, 32\)"):
        m(torch.randn(3, 11, 16))


def test_cpu_microbatching_is_exact(monkeypatch):
    import samba.nn.mamba2 as mamba2_module

    loop, grouped = _pair(F64, d_model=32, head_dim=16)
    x = torch.randn(5, 40, 32, dtype=F64)
    whole = grouped(x)
    monkeypatch.setattr(mamba2_module, "CPU_HEAD_TOKENS_PER_CALL", 2 * 40 * grouped.n_teams * grouped.nheads)
    assert mamba2_module.cpu_microbatch(x, grouped.n_teams * grouped.nheads) == 2
    assert (grouped(x) - whole).abs().max().item() < 1e-12
    assert (loop(x) - whole).abs().max().item() < 1e-10
