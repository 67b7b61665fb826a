"""CUDA only: our Triton kernels ("triton" backend) and mamba_ssm's ("mamba_ssm") against the torch reference, on
the same weights.

Skipped without CUDA or without an importable mamba_ssm (install: `source scripts/gpu/install_mamba_ssm.sh`).
Triton runs float32 matmuls as TF32 unless TRITON_F32_DEFAULT=ieee is set before the first kernel compiles;
the float32 tolerances follow that variable:

    TRITON_F32_DEFAULT=ieee python3 -m pytest -q -rP tests/test_gpu_backends.py   # tight: rel 1e-4
    python3 -m pytest -q -rP tests/test_gpu_backends.py                           # TF32:  rel 3e-3

Every comparison prints `GPU-TOL <what>: <error>` (shown with -rP or -s) so the measured errors can be logged.
Errors are relative: max |a - b| / max |b| for float32, ||a - b|| / ||b|| for bf16 autocast.
"""

from __future__ import annotations

import os
from dataclasses import replace

import pytest
import torch

from samba.nn import DiffMamba, DiffMambaLoop, Mamba2
from samba.ops import KernelConfig, resolve_backend
from samba.ops.upstream import mamba_ssm_kernels, mamba_ssm_unavailable_reason

# The suite's settings (tests/conftest.py sets SAMBA_KERNELS=autotune=single: one config per mamba_ssm kernel).
K = KernelConfig.from_env()

CUDA = torch.cuda.is_available()
KERNELS = mamba_ssm_kernels() if CUDA else None

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not CUDA, reason="needs CUDA"),
    pytest.mark.skipif(CUDA and KERNELS is None,
                       reason=f"mamba_ssm not importable: {mamba_ssm_unavailable_reason() if CUDA else ''}"),
]

IEEE = os.environ.get("TRITON_F32_DEFAULT", "").lower() == "ieee"
F32_TOL = 1e-4 if IEEE else 3e-3
F32_GRAD_TOL = 3e-4 if IEEE else 1e-2
BF16_TOL = 2e-2
BF16_GRAD_TOL = 5e-2


@pytest.fixture(autouse=True)
def _no_tf32_in_torch():
    """Keep the torch reference in true float32 (cuDNN convs default to TF32)."""
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def max_rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).abs().max() / b.float().abs().max().clamp_min(1e-12)).item()


def norm_rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm().clamp_min(1e-12)).item()


def report(what: str, err: float, tol: float) -> None:
    print(f"GPU-TOL {what}: {err:.3e} (tol {tol:.0e}, {'ieee' if IEEE else 'tf32'})")
    assert err < tol, f"{what}: {err:.3e} >= {tol:.0e}"


def _perturb(module: torch.nn.Module, seed: int = 0) -> None:
    gen = torch.Generator(device="cuda").manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen, device="cuda", dtype=p.dtype))


def run(module, x, w, backend, autocast=False):
    """Output and gradients (input + every parameter) of sum(module(x) * w)."""
    x = x.detach().clone().requires_grad_()
    module.zero_grad(set_to_none=True)
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
        y = module(x, backend=backend)
    (y.float() * w).sum().backward()
    grads = {"input": x.grad.detach().clone()}
    grads.update({n: p.grad.detach().clone() for n, p in module.named_parameters() if p.grad is not None})
    return y.detach().float(), grads


def compare(name, module, x, backend_pairs=(("mamba_ssm", "torch"),)):
    w = torch.randn_like(x)  # both modules map (B, L, d_model) -> (B, L, d_model)
    for be, ref_be in backend_pairs:
        y_ref, g_ref = run(module, x, w, ref_be)
        y, g = run(module, x, w, be)
        report(f"{name} fp32 {be} vs {ref_be} forward", max_rel(y, y_ref), F32_TOL)
        worst = max(g_ref, key=lambda k: max_rel(g[k], g_ref[k]))
        report(f"{name} fp32 {be} vs {ref_be} grad (worst: {worst})", max_rel(g[worst], g_ref[worst]), F32_GRAD_TOL)
        assert set(g) == set(g_ref)
        # bf16 autocast against the float32 reference. bf16 rounding alone moves some small gradients (A_log,
        # D on short sequences) by 5-13 % (measured on an H200), so the bar is the reference backend's own
        # bf16 error: the kernels may be at most twice as far from float32 as the torch path in bf16 is.
        y16, g16 = run(module, x, w, be, autocast=True)
        y16r, g16r = run(module, x, w, ref_be, autocast=True)
        report(f"{name} bf16 {be} vs fp32 {ref_be} forward (bf16 {ref_be}: {norm_rel(y16r, y_ref):.1e})",
               norm_rel(y16, y_ref), max(BF16_TOL, 2 * norm_rel(y16r, y_ref)))
        excess = {k: norm_rel(g16[k], g_ref[k]) - 2 * norm_rel(g16r[k], g_ref[k]) for k in g_ref}
        worst = max(excess, key=excess.get)
        ref_err = norm_rel(g16r[worst], g_ref[worst])
        report(f"{name} bf16 {be} vs fp32 {ref_be} grad (worst: {worst}; bf16 {ref_be}: {ref_err:.1e})",
               norm_rel(g16[worst], g_ref[worst]), max(BF16_GRAD_TOL, 2 * ref_err))


MAMBA_CASES = [  # (config, L)
    (dict(d_model=64, d_state=16, d_conv=2, expand=8), 1000),  # SAMBA encoder layer, L not a multiple of 256
    (dict(d_model=128, d_state=16, d_conv=2, expand=8), 240),
    (dict(d_model=64, d_state=32, d_conv=4, expand=2, headdim=32, ngroups=2), 517),
    (dict(d_model=32, d_state=16, d_conv=4, expand=2, headdim=16, rmsnorm=False, D_has_hdim=True), 300),
    (dict(d_model=32, d_state=16, d_conv=3, expand=2, headdim=16, norm_before_gate=True,
          dt_limit=(0.005, 0.05), chunk_size=64), 130),
    (dict(d_model=64, d_state=16, d_conv=2, expand=8), 7),  # shorter than the conv + one partial chunk
]


@pytest.mark.parametrize("kernels", ["mamba_ssm", "ours"])
@pytest.mark.parametrize("cfg,L", MAMBA_CASES, ids=[str(i) for i in range(len(MAMBA_CASES))])
def test_mamba2_mamba_ssm_backend_matches_torch(cfg, L, kernels):
    """The mamba_ssm backend (mamba_ssm's kernels layer by layer) and the triton backend at the default KernelConfig
    (our fused block, scan and norm backward where they apply) against the torch backend."""
    be = "mamba_ssm" if kernels == "mamba_ssm" else "triton"
    torch.manual_seed(0)
    m = Mamba2(**cfg, kernels=K).cuda()
    _perturb(m)
    x = torch.randn(2, L, cfg["d_model"], device="cuda")
    compare(f"Mamba2{cfg} L={L}", m, x, backend_pairs=((be, "torch"),))


def test_auto_backend_picks_triton_on_cuda():
    m = Mamba2(32, d_state=16, headdim=16, kernels=K)  # built on CPU, moved afterwards
    x = torch.randn(1, 10, 32)
    assert resolve_backend("auto", x) == "torch"
    m = m.cuda()
    assert resolve_backend("auto", x.cuda()) == "triton"
    torch.testing.assert_close(m(x.cuda()), m(x.cuda(), backend="triton"))


DIFF_CASES = [  # (config, L)
    (dict(d_model=128), 120),  # SAMBA's bottleneck (16 teams), L not a multiple of the chunk
    (dict(d_model=128, headdim=16), 333),  # the authors' code uses headdim = head_dim
    (dict(d_model=64, head_dim=16, d_state=32, expand=4, headdim=32, ngroups=2, d_conv=4), 260),
]


@pytest.mark.parametrize("projections", ["dense", "einsum"])  # "auto" picks dense on CUDA
@pytest.mark.parametrize("cfg,L", DIFF_CASES, ids=[str(i) for i in range(len(DIFF_CASES))])
def test_diff_mamba_grouped_kernels_match_torch_and_loop(cfg, L, projections):
    torch.manual_seed(0)
    loop = DiffMambaLoop(**cfg, kernels=K).cuda()
    _perturb(loop)
    grouped = DiffMamba.from_loop(loop, projections=projections)
    x = torch.randn(2, L, cfg["d_model"], device="cuda")
    cfg = {**cfg, "projections": projections}
    compare(f"DiffMamba{cfg} L={L}", grouped, x, backend_pairs=(("mamba_ssm", "torch"), ("triton", "torch")))
    # the one grouped kernel call (ngroups = 2 * n_heads) against 2 * n_heads separate kernel calls
    w = torch.randn_like(x)
    y_loop, g_loop = run(loop, x, w, "mamba_ssm")
    y_grp, g_grp = run(grouped, x, w, "mamba_ssm")
    report(f"DiffMamba{cfg} grouped vs loop (both mamba_ssm) forward", max_rel(y_grp, y_loop), F32_TOL)
    report(f"DiffMamba{cfg} grouped vs loop input grad", max_rel(g_grp["input"], g_loop["input"]), F32_GRAD_TOL)
    mapped = grouped.to_loop_state_dict({k: v for k, v in g_grp.items() if k != "input"})
    worst = max(mapped, key=lambda k: max_rel(mapped[k], g_loop[k]))
    report(f"DiffMamba{cfg} grouped vs loop param grad (worst: {worst})", max_rel(mapped[worst], g_loop[worst]),
           F32_GRAD_TOL)


@pytest.mark.parametrize("cfg,L", MAMBA_CASES[:5], ids=[str(i) for i in range(5)])
def test_state_dict_runs_in_real_mamba_ssm_mamba2(cfg, L):
    """Our weights loaded into mamba_ssm.Mamba2 give our outputs (and its weights load into ours)."""
    torch.manual_seed(0)
    ours = Mamba2(**cfg, kernels=K).cuda()
    _perturb(ours)
    mem_eff = KERNELS.causal_conv1d_fn is not None
    real = KERNELS.module.Mamba2(**cfg, use_mem_eff_path=mem_eff).cuda()
    real.load_state_dict(ours.state_dict())  # strict: same names and shapes
    x = torch.randn(2, L, cfg["d_model"], device="cuda")
    with torch.no_grad():
        y_real = real(x)
        report(f"real mamba_ssm.Mamba2(mem_eff={mem_eff}) vs ours mamba_ssm {cfg}",
               max_rel(ours(x, backend="mamba_ssm"), y_real), F32_TOL)
        report(f"real mamba_ssm.Mamba2(mem_eff={mem_eff}) vs ours torch {cfg}",
               max_rel(ours(x, backend="torch"), y_real), F32_TOL)
    back = Mamba2(**cfg, kernels=K).cuda()
    back.load_state_dict(real.state_dict())
    with torch.no_grad():
        assert max_rel(back(x, backend="mamba_ssm"), ours(x, backend="mamba_ssm")) < 1e-6


def test_torch_backend_on_cuda_bf16_autocast_runs():
    """The fallback path (no kernels) works on CUDA under autocast, with the scan kept in float32."""
    m = DiffMamba(128, backend="torch", kernels=K).cuda()
    x = torch.randn(2, 100, 128, device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        y = m(x)
    y32 = m(x)
    report("DiffMamba torch backend bf16 vs fp32 on CUDA", norm_rel(y, y32), BF16_TOL)


@pytest.mark.parametrize("scan", ["mamba_ssm", "triton"])
@pytest.mark.parametrize("norm_bwd", ["mamba_ssm", "triton"])
@pytest.mark.parametrize("cfg,L", [MAMBA_CASES[i] for i in (0, 2, 4, 5)], ids=["samba-enc", "groups", "nbg", "short"])
def test_fused_mamba2_block_matches_layer_by_layer(cfg, L, norm_bwd, scan):
    """samba.ops.mamba_block (KernelConfig.fused_block: one Function, conv, scan, gated norm, out_proj; recompute in
    backward) against mamba_ssm's layer-by-layer path (the mamba_ssm backend) on the same weights, for both norm
    backwards (mamba_ssm's, and ours) and both scans. float32 and bf16 autocast."""
    from samba.ops import fused_block_applies

    fused = replace(K, fused_block=True, triton_norm=norm_bwd == "triton", triton_scan=scan == "triton")
    torch.manual_seed(0)
    m = Mamba2(**cfg, kernels=fused).cuda()
    assert fused_block_applies(torch.zeros(1, device="cuda", dtype=torch.bfloat16), fused, m.headdim, m.d_state)
    _perturb(m)
    x = torch.randn(2, L, cfg["d_model"], device="cuda")
    w = torch.randn_like(x)
    for autocast, tol, gtol in ((False, F32_TOL, F32_GRAD_TOL), (True, BF16_TOL, BF16_GRAD_TOL)):
        y, g = run(m, x, w, "triton", autocast)
        y_ref, g_ref = run(m, x, w, "mamba_ssm", autocast)
        tag = "bf16" if autocast else "fp32"
        report(f"fused Mamba2{cfg} L={L} {tag} ({norm_bwd} norm bwd, {scan} scan) forward vs layer-by-layer",
               norm_rel(y, y_ref), tol)
        assert set(g) == set(g_ref)
        worst = max(g_ref, key=lambda k: norm_rel(g[k], g_ref[k]))
        report(f"fused Mamba2 {tag} grad vs layer-by-layer (worst: {worst})", norm_rel(g[worst], g_ref[worst]), gtol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_triton_gated_norm_matches_mamba_ssm_kernel(dtype):
    """samba.ops.triton.norm against mamba_ssm's rmsnorm_fn (both gate orders, group 512 as in SAMBA's layers)."""
    from samba.ops.triton.norm import gated_rms_norm_triton

    torch.manual_seed(0)
    for nbg, gs in ((False, 512), (True, 256), (False, 128)):
        x = torch.randn(3, 700, 512, device="cuda", dtype=dtype, requires_grad=True)
        zb = torch.randn(3, 700, 600, device="cuda", dtype=dtype, requires_grad=True)
        z = zb[..., 40:552]
        w = (1 + 0.1 * torch.randn(512, device="cuda")).requires_grad_(True)
        g = torch.randn(3, 700, 512, device="cuda", dtype=dtype)
        out = gated_rms_norm_triton(x, z, w, 1e-5, gs, nbg)
        grads = torch.autograd.grad(out, [x, zb, w], g)
        ref = KERNELS.rmsnorm_fn(x, w, None, z=z, eps=1e-5, group_size=gs, norm_before_gate=nbg)
        rgrads = torch.autograd.grad(ref, [x, zb, w], g)
        tol = F32_TOL if dtype == torch.float32 else BF16_TOL
        report(f"triton gated norm {dtype} nbg={nbg} gs={gs} forward", norm_rel(out, ref), tol)
        for name, a, b in zip(("dx", "dz", "dw"), grads, rgrads):
            report(f"triton gated norm {dtype} nbg={nbg} gs={gs} {name}", norm_rel(a, b), tol)


@pytest.mark.parametrize("cfg,L", MAMBA_CASES, ids=[str(i) for i in range(len(MAMBA_CASES))])
def test_triton_scan_matches_torch(cfg, L):
    """samba.ops.triton.ssd (one kernel per direction for small states) inside the layer-by-layer Mamba2 against
    the torch backend, float32 and bf16 autocast (the same criteria as mamba_ssm's kernels)."""
    from samba.ops.ssd import use_triton_scan

    k = replace(K, triton_scan=True, fused_block=False)
    torch.manual_seed(0)
    m = Mamba2(**cfg, kernels=k).cuda()
    _perturb(m)
    x = torch.randn(2, L, cfg["d_model"], device="cuda")
    h, p = m.nheads, m.headdim
    assert use_triton_scan(torch.zeros(1, 1, h, p, device="cuda"), torch.zeros(1, 1, m.ngroups, m.d_state,
                                                                          device="cuda"), k)
    compare(f"Triton scan Mamba2{cfg} L={L}", m, x, backend_pairs=(("triton", "torch"),))


@pytest.mark.parametrize("p", [64, 16], ids=["wide", "narrow"])  # SAMBA's Mamba2 blocks, its bottleneck's teams
@pytest.mark.parametrize("bwd", ["walk", "split", "group"])
def test_triton_scan_kernel_matches_ssd_chunked_on_cuda(bwd, p):
    """Our scan against the float64 torch reference, both head widths SAMBA uses, at the environment's launch."""
    from samba.ops.ssd import ssd_chunked
    from samba.ops.triton.ssd import ssd_scan_triton

    k = replace(K, scan_backward=bwd, scan_backward_narrow=None)  # this backward for both head widths

    torch.manual_seed(0)
    b, L, n = 3, 1000, 16
    h, g = (8, 1) if p == 64 else (32, 4)
    x = torch.randn(b, L, h, p, device="cuda", requires_grad=True)
    dt = (torch.rand(b, L, h, device="cuda") * 0.2 + 0.001).requires_grad_(True)
    A = (-torch.rand(h, device="cuda") * 4 - 0.1).requires_grad_(True)
    B = torch.randn(b, L, g, n, device="cuda", requires_grad=True)
    C = torch.randn(b, L, g, n, device="cuda", requires_grad=True)
    D = torch.randn(h, device="cuda", requires_grad=True)
    ins = [x, dt, A, B, C, D]
    gy = torch.randn(b, L, h, p, device="cuda")
    ref = ssd_chunked(*[t.double() for t in ins[:5]], 64, D=D.double())
    gr = torch.autograd.grad(ref, ins, gy.double())
    out = ssd_scan_triton(*ins, kernels=k)
    go = torch.autograd.grad(out, ins, gy)
    report("Triton scan kernel fp32 vs float64 reference, forward", max_rel(out, ref), F32_TOL)
    for name, a, r in zip(("dx", "ddt", "dA", "dB", "dC", "dD"), go, gr):
        report(f"Triton scan kernel fp32 vs float64 reference, {name} ({bwd} backward)", max_rel(a, r), F32_GRAD_TOL)


@pytest.mark.parametrize("cfg,L", DIFF_CASES, ids=[str(i) for i in range(len(DIFF_CASES))])
def test_diff_mamba_on_the_triton_scan_matches_torch(cfg, L):
    """The grouped differential Mamba (16 teams as 16 groups in one call) on samba.ops.triton.ssd."""
    torch.manual_seed(0)
    loop = DiffMambaLoop(**cfg, kernels=replace(K, triton_scan=True)).cuda()
    _perturb(loop)
    grouped = DiffMamba.from_loop(loop)
    compare(f"DiffMamba{cfg} L={L} on the Triton scan", grouped, torch.randn(2, L, cfg["d_model"], device="cuda"),
            backend_pairs=(("triton", "torch"),))


@pytest.mark.parametrize("cfg,L", DIFF_CASES, ids=[str(i) for i in range(len(DIFF_CASES))])
def test_diff_mamba_teams_in_the_fused_block_match_torch(cfg, L):
    """KernelConfig.fused_bottleneck: the differential Mamba's teams through the fused Mamba2 block (one Function:
    conv, scan, gated norm, out_proj, one input-gradient buffer) against the torch backend."""
    torch.manual_seed(0)
    loop = DiffMambaLoop(**cfg, kernels=replace(K, triton_scan=True, fused_bottleneck=True)).cuda()
    _perturb(loop)
    grouped = DiffMamba.from_loop(loop)
    x = torch.randn(2, L, cfg["d_model"], device="cuda")
    assert grouped._fused_applies(x, "triton")
    compare(f"DiffMamba{cfg} L={L} in the fused block", grouped, x, backend_pairs=(("triton", "torch"),))


@pytest.mark.parametrize("backend", ["triton", "mamba_ssm"])
def test_samba_inference_equals_the_training_forward(backend):
    """Under inference_mode the fast path's scan keeps no chunk states (samba.ops.triton.ssd.grad_needed); the
    output must be the training forward's on the whole model (to well under bf16 rounding: the kernel's two
    compiled variants may contract multiply-adds differently)."""
    from samba import SAMBA, SAMBAConfig
    from samba.montage import DEVICE_PRESETS, positions
    torch.manual_seed(0)
    # the channels-first data flow both ways (channels_last_unet rounds differently: its own test below)
    model = SAMBA(SAMBAConfig(), kernels=replace(K, backend=backend, channels_last_unet=False)).cuda().eval()
    coords = torch.from_numpy(positions(list(DEVICE_PRESETS["10-20"]))).cuda()
    x = torch.randn(2, 19, 1000, device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        train_fwd = model(x.clone().requires_grad_(), coords)
        with torch.inference_mode():
            infer = model(x, coords)
    assert train_fwd.requires_grad
    report(f"SAMBA inference vs training forward ({backend})", norm_rel(infer, train_fwd.detach()), 1e-3)


@pytest.mark.parametrize("autocast", [False, True], ids=["fp32", "bf16"])
def test_samba_channels_last_inference_matches_the_default_path(autocast):
    """KernelConfig.channels_last_unet: the whole model's inference with the U-Net's convs on channels-last
    activations (samba.ops.unet_conv's kernel) against the channels-first path on the same kernels otherwise; in
    bf16 the channels-last output is also compared with the float32 one, within 1.1x the channels-first path's
    error (on an H100 at commit 23197d8: 1.02e-2 between the two paths, 1.37e-2 against float32)."""
    from samba import SAMBA, SAMBAConfig
    from samba.montage import DEVICE_PRESETS, positions

    torch.manual_seed(0)
    model = SAMBA(SAMBAConfig(), kernels=replace(K, channels_last_unet=True)).cuda().eval()
    coords = torch.from_numpy(positions(list(DEVICE_PRESETS["10-20"]))).cuda()
    x = torch.randn(2, 19, 1000, device="cuda")
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
        assert model._channels_last(x)
        out = model(x, coords, time_chunk=0)
        model.kernels = replace(model.kernels, channels_last_unet=False)
        assert not model._channels_last(x)
        want = model(x, coords, time_chunk=0)
    report(f"SAMBA inference, channels-last U-Net ({'bf16' if autocast else 'fp32'}) vs channels-first",
           norm_rel(out.float(), want.float()), BF16_TOL if autocast else F32_TOL)
    if autocast:
        with torch.inference_mode():
            ref = model(x, coords, time_chunk=0)  # float32, channels-first
        report("SAMBA inference in bf16 against float32, channels-last", norm_rel(out, ref),
               max(BF16_TOL / 2, 1.1 * norm_rel(want, ref)))


def test_samba_channels_last_inference_pads_masks_and_takes_a_montage_per_sample():
    """The channels-last inference path where its input needs more than the headline's: a length that is not a
    multiple of 8 (padded, then cropped), an electrode left out, and one montage per sample (the embedding's grouped
    conv, transposed), float32, against the channels-first path."""
    from samba import SAMBA, SAMBAConfig
    from samba.montage import DEVICE_PRESETS, positions

    torch.manual_seed(0)
    model = SAMBA(SAMBAConfig(), kernels=replace(K, channels_last_unet=True)).cuda().eval()
    coords = torch.from_numpy(positions(list(DEVICE_PRESETS["10-20"]))).cuda()
    per_sample = coords[None].repeat(2, 1, 1)
    per_sample[1] += 0.01
    mask = torch.ones(1, 19, dtype=torch.bool, device="cuda")
    mask[0, 3] = False
    x = torch.randn(2, 19, 1003, device="cuda")
    cases = ((coords, mask), (per_sample, None))
    with torch.inference_mode():
        got = [model(x, c, m, time_chunk=0) for c, m in cases]
        model.kernels = replace(model.kernels, channels_last_unet=False)
        want = [model(x, c, m, time_chunk=0) for c, m in cases]
    for (c, m), g, w in zip(cases, got, want):
        assert g.shape == w.shape == x.shape
        report(f"SAMBA channels-last inference, T=1003, {'mask' if m is not None else 'montage per sample'}",
               norm_rel(g, w), F32_TOL)


def test_samba_channels_last_training_matches_the_default_path():
    """KernelConfig.channels_last_unet_train: a train step's loss and gradients with the U-Net's convs on
    channels-last activations (samba.ops.unet_conv's kernel and its backward) against the channels-first step on the
    same kernels otherwise, a length that is not a multiple of 8 and an electrode left out. float32: each gradient's
    error relative to its own largest entry, floored at 1e-3 of the largest entry of any (the CDSE MLPs' last biases
    feed a softmax over electrodes and have a gradient of zero up to rounding). bf16: both paths against the float32
    channels-first step, the channels-last one at most twice as far as the channels-first one (or BF16_GRAD_TOL)."""
    from samba import SAMBA, SAMBAConfig
    from samba.montage import DEVICE_PRESETS, positions

    torch.manual_seed(0)
    model = SAMBA(SAMBAConfig(), kernels=replace(K, channels_last_unet_train=True)).cuda().train()
    coords = torch.from_numpy(positions(list(DEVICE_PRESETS["10-20"]))).cuda()
    mask = torch.ones(1, 19, dtype=torch.bool, device="cuda")
    mask[0, 3] = False
    x = torch.randn(2, 19, 1003, device="cuda")

    def step(channels_last, autocast):
        model.kernels = replace(model.kernels, channels_last_unet_train=channels_last)
        assert model._channels_last(x) == channels_last
        model.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
            loss = model(x, coords, mask).float().square().mean()
        loss.backward()
        return loss.detach(), {n: p.grad.float().clone() for n, p in model.named_parameters()}

    loss_ref, g_ref = step(False, False)
    loss, g = step(True, False)
    report("SAMBA train step fp32, channels-last U-Net vs channels-first, loss", max_rel(loss, loss_ref), F32_TOL)
    assert set(g) == set(g_ref)
    floor = 1e-3 * max(v.abs().max().item() for v in g_ref.values())
    err = {k: ((g[k] - g_ref[k]).abs().max() / max(g_ref[k].abs().max().item(), floor)).item() for k in g_ref}
    worst = max(err, key=err.get)
    report(f"SAMBA train step fp32, channels-last U-Net vs channels-first, grad (worst: {worst})", err[worst],
           F32_GRAD_TOL)
    _, g16 = step(True, True)
    _, g16r = step(False, True)
    excess = {k: norm_rel(g16[k], g_ref[k]) - 2 * norm_rel(g16r[k], g_ref[k]) for k in g_ref}
    worst = max(excess, key=excess.get)
    ref_err = norm_rel(g16r[worst], g_ref[worst])
    report(f"SAMBA train step bf16 channels-last vs fp32 channels-first, grad (worst: {worst}; bf16 channels-first: "
           f"{ref_err:.1e})", norm_rel(g16[worst], g_ref[worst]), max(BF16_GRAD_TOL, 2 * ref_err))


@pytest.mark.parametrize("bidirectional", [False, True], ids=["paper", "bidirectional"])
def test_whole_samba_on_the_kernels_matches_torch(bidirectional):
    """The whole model (fused CDSE, fused Mamba2 blocks, grouped differential Mamba, decoder joins) on the default
    CUDA kernels against the plain-PyTorch reference on the same weights: output and every gradient, float32.
    The bidirectional variant's reverse twins take the same kernels on the flipped sequence.

    Each gradient's error is relative to its own largest entry, floored at 1e-3 of the largest entry of any
    gradient: the last bias of each CDSE network feeds a softmax over electrodes, which ignores a shift, so its
    true gradient is zero and both backends return rounding noise (about 5e-6 against 85-111 for the largest).
    Through the whole model the gradients take three times the single-layer tolerance. Measured on an H100 with
    TRITON_F32_DEFAULT=ieee: forward 2.7e-6 (paper) and 1.7e-6 (bidirectional); gradients 8.2e-5 (paper, worst
    inverse_cdse.mlp.2.bias) and 3.6e-4 (bidirectional, worst dec2_mamba.mamba_reverse.A_log)."""
    from samba import SAMBA, SAMBAConfig
    from samba.montage import DEVICE_PRESETS, positions
    torch.manual_seed(0)
    cfg = SAMBAConfig(bidirectional=bidirectional)
    fast = SAMBA(cfg, kernels=replace(K, backend="triton")).cuda()
    _perturb(fast)
    ref = SAMBA(cfg, kernels=replace(K, backend="torch")).cuda()
    ref.load_state_dict(fast.state_dict())
    coords = torch.from_numpy(positions(list(DEVICE_PRESETS["10-20"]))).cuda()
    x = torch.randn(2, 19, 1000, device="cuda")
    w = torch.randn(2, 19, 1000, device="cuda")
    out = {}
    for name, model in (("fast", fast), ("ref", ref)):
        xi = x.clone().requires_grad_()
        y = model(xi, coords)
        (y.float() * w).sum().backward()
        out[name] = (y.detach(), {"input": xi.grad, **{n: p.grad for n, p in model.named_parameters()
                                                       if p.grad is not None}})
    (y, g), (y_ref, g_ref) = out["fast"], out["ref"]
    assert set(g) == set(g_ref)
    assert any("reverse" in n for n in g) == bidirectional
    report(f"SAMBA(bidirectional={bidirectional}) fp32 triton vs torch forward", max_rel(y, y_ref), F32_TOL)
    floor = 1e-3 * max(v.abs().max().item() for v in g_ref.values())
    err = {k: ((g[k] - g_ref[k]).abs().max() / max(g_ref[k].abs().max().item(), floor)).item() for k in g_ref}
    worst = max(err, key=err.get)
    report(f"SAMBA(bidirectional={bidirectional}) fp32 triton vs torch grad (worst: {worst})", err[worst],
           3 * F32_GRAD_TOL)
