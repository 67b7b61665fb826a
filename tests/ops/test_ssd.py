"""ssd_chunked against the step-by-step definition, and Mamba2's torch backend against a naive Mamba2 written here."""

import pytest
import torch
import torch.nn.functional as F

from samba.nn import Mamba2
from samba.ops import KernelConfig
from samba.ops.ssd import _pass_states, segsum, ssd_chunked, ssd_chunked_lean, ssd_recurrent, ssm_scan

F64 = torch.float64


def random_ssm(b, l, h, p, g, n, dtype=F64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(b, l, h, p, generator=gen, dtype=dtype)
    dt = F.softplus(torch.randn(b, l, h, generator=gen, dtype=dtype) - 1.0)
    A = -(torch.rand(h, generator=gen, dtype=dtype) * 3 + 0.2)
    B = torch.randn(b, l, g, n, generator=gen, dtype=dtype)
    C = torch.randn(b, l, g, n, generator=gen, dtype=dtype)
    return x, dt, A, B, C


CONFIGS = [  # b, l, h, p, g, n, chunk
    (2, 64, 4, 8, 1, 16, 16),
    (2, 37, 4, 8, 2, 5, 4),  # L not divisible by the chunk, ngroups 2
    (1, 100, 2, 16, 1, 8, 64),  # L not divisible, one partial chunk
    (2, 50, 6, 4, 2, 3, 16),
    (1, 3, 2, 3, 1, 2, 64),  # L < chunk
    (1, 300, 2, 4, 2, 3, 4),  # 75 chunks: the blocked (recursive) inter-chunk pass
]


@pytest.mark.parametrize("scan", [ssd_chunked, ssd_chunked_lean], ids=["chunked", "lean"])
@pytest.mark.parametrize("b,l,h,p,g,n,chunk", CONFIGS)
@pytest.mark.parametrize("d_kind", [None, "h", "hp"])
@pytest.mark.parametrize("with_init", [False, True])
def test_chunked_scans_equal_recurrent_fp64(scan, b, l, h, p, g, n, chunk, d_kind, with_init):
    """The chunked scan and the CPU inference scan (same algorithm, decay from differences of within-chunk sums)
    equal the step-by-step definition in float64 up to rounding."""
    x, dt, A, B, C = random_ssm(b, l, h, p, g, n)
    D = {None: None, "h": torch.randn(h, dtype=F64), "hp": torch.randn(h, p, dtype=F64)}[d_kind]
    s0 = torch.randn(b, h, p, n, dtype=F64) if with_init else None
    y_ref, s_ref = ssd_recurrent(x, dt, A, B, C, D=D, initial_state=s0)
    y, s = scan(x, dt, A, B, C, chunk, D=D, initial_state=s0, return_final_state=True)
    assert y.shape == (b, l, h, p) and s.shape == (b, h, p, n)
    assert (y - y_ref).abs().max().item() < 1e-10
    assert (s - s_ref).abs().max().item() < 1e-10


@pytest.mark.parametrize("headdim,d_state,chunk", [(64, 16, 64), (16, 16, 32)])  # SAMBA's Mamba2 / bottleneck heads
def test_lean_float32_within_tolerance_of_reference(headdim, d_state, chunk):
    """float32, SAMBA's shapes and dt range (decays down to exp(-16) per step): within 1e-5 of the largest |y|."""
    gen = torch.Generator().manual_seed(1)
    b, l, h = 2, 700, 8
    x = torch.randn(b, l, h, headdim, generator=gen)
    dt = F.softplus(torch.randn(b, l, h, generator=gen) - 2.0)
    A = -torch.empty(h).uniform_(1, 16, generator=gen)
    B, C = (torch.randn(b, l, 1, d_state, generator=gen) for _ in range(2))
    D = torch.ones(h)
    y_ref = ssd_chunked(x, dt, A, B, C, chunk, D=D)
    y = ssd_chunked_lean(x, dt, A, B, C, chunk, D=D)
    assert (y - y_ref).abs().max().item() < 1e-5 * y_ref.abs().max().item()


def test_ssm_scan_picks_the_lean_scan_without_autograd_and_the_train_scan_with_it_on_cpu(monkeypatch):
    import samba.ops.ssd as ssd
    import samba.ops.ssd_train as ssd_train

    lean, train = [], []
    monkeypatch.setattr(ssd, "ssd_chunked_lean", lambda *a, **k: lean.append(1) or ssd_chunked(*a, **k))
    monkeypatch.setattr(ssd_train, "ssd_chunked_train", lambda *a, **k: train.append(1) or ssd_chunked(*a, **k))
    x, dt, A, B, C = random_ssm(1, 20, 2, 4, 1, 3, dtype=torch.float32)
    args = (x, dt, A, B, C, torch.ones(2), torch.zeros(2), (0.0, float("inf")), None, "torch", KernelConfig(), 8, 8)
    with torch.no_grad():
        ssm_scan(*args)
    assert lean == [1] and train == []
    x.requires_grad_(True)
    ssm_scan(*args).sum().backward()  # training: the hand-written-backward scan, not the lean one
    assert lean == [1] and train == [1] and x.grad is not None


@pytest.mark.slow
def test_compiled_mamba2_inference_on_cpu_equals_eager():
    """`torch.compile` of a layer on CPU: under compile the scan steps aside from the lean one (inductor cannot
    lower its strided in-place product) for the reference, and the compiled inference equals the eager one."""
    torch.manual_seed(0)
    m = Mamba2(d_model=16, d_state=8, d_conv=2, expand=8, headdim=64, backend="torch").eval()
    u = torch.randn(1, 640, 16)  # 10 chunks: 70 steps compile even with the lean scan
    with torch.no_grad():
        eager = m(u)
        compiled = torch.compile(m)(u)
    assert (compiled - eager).abs().max().item() < 1e-5 * eager.abs().max().item()


def test_chunked_gradients_equal_recurrent_fp64():
    x, dt, A, B, C = random_ssm(2, 45, 4, 4, 2, 3)
    D = torch.randn(4, dtype=F64)
    s0 = torch.randn(2, 4, 4, 3, dtype=F64)
    inputs = [t.clone().requires_grad_() for t in (x, dt, A, B, C, D, s0)]
    w = torch.randn(2, 45, 4, 4, dtype=F64)
    grads = []
    for fn in ("rec", "chunk"):
        leaves = [t.detach().clone().requires_grad_() for t in inputs]
        if fn == "rec":
            y, s = ssd_recurrent(*leaves[:5], D=leaves[5], initial_state=leaves[6])
        else:
            y, s = ssd_chunked(*leaves[:5], 8, D=leaves[5], initial_state=leaves[6], return_final_state=True)
        ((y * w).sum() + s.square().sum()).backward()
        grads.append([t.grad for t in leaves])
    for g_ref, g in zip(*grads):
        assert (g - g_ref).abs().max().item() < 1e-9


def test_result_independent_of_chunk_size():
    x, dt, A, B, C = random_ssm(1, 200, 4, 8, 2, 4)
    ys = [ssd_chunked(x, dt, A, B, C, q) for q in (1, 7, 16, 64, 256)]
    for y in ys[1:]:
        assert (y - ys[0]).abs().max().item() < 1e-10


def test_pass_states_blocked_matches_loop():
    gen = torch.Generator().manual_seed(1)
    inc = torch.randn(3, 2, 300, 5, generator=gen, dtype=F64)
    a = -torch.rand(3, 2, 300, generator=gen, dtype=F64)
    s = torch.randn(3, 2, 5, generator=gen, dtype=F64)
    entering, final = _pass_states(inc, a, s, block=8)  # 300 -> 38 blocks -> 5 blocks: two levels
    ref = []
    for k in range(300):
        ref.append(s)
        s = torch.exp(a[..., k, None]) * s + inc[..., k, :]
    assert (torch.stack(ref, dim=-2) - entering).abs().max().item() < 1e-12
    assert (s - final).abs().max().item() < 1e-12


def test_segsum_matches_definition():
    a = torch.randn(2, 6, dtype=F64)
    out = segsum(a)
    for i in range(6):
        for j in range(6):
            want = a[:, j + 1:i + 1].sum(-1) if i >= j else torch.full((2,), float("-inf"), dtype=F64)
            assert torch.equal(out[:, i, j], want) or torch.allclose(out[:, i, j], want)


def test_half_inputs_computed_in_float32():
    x, dt, A, B, C = random_ssm(1, 40, 2, 4, 1, 3, dtype=torch.float32)
    y32 = ssd_chunked(x, dt, A, B, C, 16)
    ybf = ssd_chunked(x.bfloat16(), dt.bfloat16(), A, B.bfloat16(), C.bfloat16(), 16)
    assert ybf.dtype == torch.bfloat16
    assert (ybf.float() - y32).abs().max().item() < 0.05 * y32.abs().max().item()


def test_bad_shapes_raise():
    x, dt, A, B, C = random_ssm(1, 10, 4, 2, 3, 2)  # 4 heads, 3 groups
    with pytest.raises(ValueError, match="divisible"):
        ssd_chunked(x, dt, A, B, C, 4)
    x, dt, A, B, C = random_ssm(1, 10, 4, 2, 2, 2)
    with pytest.raises(ValueError, match="dt must be"):
        ssd_chunked(x, dt[:, :5], A, B, C, 4)


# ---------------------------------------------------------------- Mamba2 vs a naive Mamba2 written here
def naive_mamba2(m: Mamba2, u: torch.Tensor) -> torch.Tensor:
    """mamba_ssm's Mamba2 forward, spelled out one step, one head and one conv tap at a time."""
    b, L, _ = u.shape
    h, p, g, n = m.nheads, m.headdim, m.ngroups, m.d_state
    zxbcdt = u @ m.in_proj.weight.T
    if m.in_proj.bias is not None:
        zxbcdt = zxbcdt + m.in_proj.bias
    d_mlp = m.d_inner - m.d_ssm
    z0, x0, z, xBC, dt = torch.split(zxbcdt, [d_mlp, d_mlp, m.d_ssm, m.d_ssm + 2 * g * n, h], dim=-1)
    w = m.conv1d.weight[:, 0, :]  # (ch, k)
    k = w.shape[1]
    conv = torch.zeros_like(xBC)
    for t in range(L):
        for j in range(k):
            src = t - (k - 1) + j
            if src >= 0:
                conv[:, t] += w[:, j] * xBC[:, src]
    if m.conv1d.bias is not None:
        conv = conv + m.conv1d.bias
    xBC = conv * torch.sigmoid(conv)
    x, B, C = torch.split(xBC, [m.d_ssm, g * n, g * n], dim=-1)
    x = x.reshape(b, L, h, p)
    B = B.reshape(b, L, g, n)
    C = C.reshape(b, L, g, n)
    dt = torch.log1p(torch.exp(dt + m.dt_bias))
    lo, hi = m.dt_limit
    dt = dt.clamp(min=lo, max=hi)
    A = -torch.exp(m.A_log)
    D = m.D.reshape(h, p) if m.D_has_hdim else m.D[:, None].expand(h, p)
    y = torch.zeros(b, L, h, p, dtype=u.dtype)
    for head in range(h):
        grp = head // (h // g)
        state = torch.zeros(b, p, n, dtype=u.dtype)
        for t in range(L):
            state = torch.exp(dt[:, t, head] * A[head])[:, None, None] * state \
                + (dt[:, t, head, None] * x[:, t, head])[:, :, None] * B[:, t, grp, None, :]
            y[:, t, head] = (state * C[:, t, grp, None, :]).sum(-1) + D[head] * x[:, t, head]
    y = y.reshape(b, L, m.d_ssm)
    silu_z = z * torch.sigmoid(z)
    if m.rmsnorm:
        if not m.norm_before_gate:
            y = y * silu_z
        gs = m.d_ssm // g
        parts = []
        for grp in range(g):
            chunk = y[..., grp * gs:(grp + 1) * gs]
            parts.append(chunk / torch.sqrt(chunk.pow(2).mean(-1, keepdim=True) + m.norm.eps))
        y = torch.cat(parts, -1) * m.norm.weight
        if m.norm_before_gate:
            y = y * silu_z
    else:
        y = y * silu_z
    if d_mlp > 0:
        y = torch.cat([z0 * torch.sigmoid(z0) * x0, y], dim=-1)
    out = y @ m.out_proj.weight.T
    if m.out_proj.bias is not None:
        out = out + m.out_proj.bias
    return out


MAMBA_CONFIGS = [
    dict(d_model=16, d_state=8, d_conv=4, expand=2, headdim=8),
    dict(d_model=16, d_state=8, d_conv=2, expand=8, headdim=64),  # SAMBA's bottleneck team shape
    dict(d_model=16, d_state=4, d_conv=4, expand=2, headdim=4, ngroups=2, rmsnorm=False),
    dict(d_model=16, d_state=4, d_conv=2, expand=2, headdim=8, ngroups=2, norm_before_gate=True),
    dict(d_model=12, d_state=4, d_conv=3, expand=2, headdim=4, D_has_hdim=True, bias=True, chunk_size=8),
    dict(d_model=16, d_state=4, d_conv=4, expand=2, headdim=4, d_ssm=16, dt_limit=(0.01, 0.05)),
]


@pytest.mark.parametrize("cfg", MAMBA_CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_mamba2_torch_backend_equals_naive(cfg):
    torch.manual_seed(0)
    m = Mamba2(**cfg, backend="torch").double()
    with torch.no_grad():  # make every parameter matter (defaults would hide D, norm weight and biases)
        m.D.normal_()
        if m.rmsnorm:
            m.norm.weight.normal_()
        if m.in_proj.bias is not None:
            m.in_proj.bias.normal_()
    u = torch.randn(2, 29, cfg["d_model"], dtype=F64)
    assert (m(u) - naive_mamba2(m, u)).abs().max().item() < 1e-10
