"""The segment-parallel inference scan (samba.ops.segments) against one call of the reference scan (float64 inputs).

The inner scan here is the reference itself (`ssd_chunked` with a carried state), so what is tested is the
segmentation: the folding of the time axis into the batch, the state passed from segment to segment, each
segment's correction for the state entering it, and the remainder scanned after the segments. The same wrapper
around our Triton scan is checked in tests/ops/test_triton_kernels.py (interpreter and CUDA)."""
import pytest
import torch

import samba.ops.segments as sg
from samba.ops.segments import MIN_SEGMENT_STEPS, pass_states, scan_in_segments, segments_for
from samba.ops.ssd import ssd_chunked


def reference_scan(x, dt, A, B, C, D, initial_state, out=None):
    y, final = ssd_chunked(x, dt, A, B, C, 16, D=D, initial_state=initial_state, return_final_state=True)
    return (y, final) if out is None else (out.copy_(y), final)


def inputs(b, L, h, p, g, n, d, seed=0):
    torch.manual_seed(seed)
    f64 = dict(dtype=torch.float64)
    x, dt = torch.randn(b, L, h, p, **f64), torch.rand(b, L, h, **f64) * 0.3 + 0.01
    A, B, C = -torch.rand(h, **f64) * 0.5 - 0.05, torch.randn(b, L, g, n, **f64), torch.randn(b, L, g, n, **f64)
    D = None if d is None else torch.randn(h, **f64) if d == "h" else torch.randn(h, p, **f64)
    return x, dt, A, B, C, D


@pytest.mark.parametrize("b,L,h,p,g,n,d", [(1, 200, 4, 8, 1, 16, "h"), (2, 203, 4, 8, 2, 8, "hp"),
                                           (3, 97, 2, 16, 1, 4, None)])
@pytest.mark.parametrize("segments", [2, 3, 7])
@pytest.mark.parametrize("with_state", [False, True])
def test_segments_equal_one_call(b, L, h, p, g, n, d, segments, with_state):
    x, dt, A, B, C, D = inputs(b, L, h, p, g, n, d)
    h0 = torch.randn(b, h, p, n, dtype=torch.float64) if with_state else None
    y_ref, f_ref = reference_scan(x, dt, A, B, C, D, h0)
    y, f = scan_in_segments(reference_scan, x, dt, A, B, C, D, h0, segments)
    assert y.shape == y_ref.shape and f.shape == f_ref.shape
    assert ((y - y_ref).abs().max() / y_ref.abs().max()).item() < 1e-6
    assert ((f.double() - f_ref).abs().max() / f_ref.abs().max()).item() < 1e-6  # float32 state, as the kernel's


def test_the_passed_state_matters():
    """Segments scanned from zero and simply joined are far from one call: the equality above can fail."""
    x, dt, A, B, C, D = inputs(1, 240, 2, 8, 1, 8, "h")
    dt = dt * 0.05  # slow decay: a segment's state reaches far into the next one
    y_ref, _ = reference_scan(x, dt, A, B, C, D, None)
    joined = torch.cat([reference_scan(x[:, i:i + 60], dt[:, i:i + 60], A, B[:, i:i + 60], C[:, i:i + 60], D,
                                       None)[0] for i in range(0, 240, 60)], 1)
    assert ((joined - y_ref).abs().max() / y_ref.abs().max()).item() > 1e-2
    y, _ = scan_in_segments(reference_scan, x, dt, A, B, C, D, None, 4)
    assert ((y - y_ref).abs().max() / y_ref.abs().max()).item() < 1e-6


def test_states_passed_in_one_product_equal_the_recursion():
    """pass_states against E_{k+1} = exp(a_k) E_k + F_k walked segment by segment (float64), with and without a
    starting state, for decays from slight to strong over many segments."""
    torch.manual_seed(1)
    b, s, h, p, n = 2, 40, 3, 4, 5
    final = torch.randn(b, s, h, p, n, dtype=torch.float64)
    decay = -torch.rand(b, s, h, dtype=torch.float64) * torch.tensor([0.01, 1.0, 30.0], dtype=torch.float64)
    for initial in (None, torch.randn(b, h, p, n, dtype=torch.float64)):
        state = torch.zeros(b, h, p, n, dtype=torch.float64) if initial is None else initial
        walked = [state]
        for k in range(s):
            state = decay[:, k].exp()[:, :, None, None] * state + final[:, k]
            walked.append(state)
        walked = torch.stack(walked, 1)  # (b, s + 1, h, p, n)
        got = pass_states(final.float(), decay.float(), None if initial is None else initial.float())
        assert got.dtype == torch.float32 and got.shape == walked.shape
        assert ((got.double() - walked).abs().max() / walked.abs().max()).item() < 1e-6


@pytest.mark.parametrize("budget", [1, 2 * 40 * 4 * 8 * 4])  # bytes: 1 or 2 segments of 40 x 4 x 8 float32
def test_corrections_in_groups_equal_one_call(monkeypatch, budget):
    """The corrections are added a group of segments at a time, within CORRECTION_BYTES: one segment per group
    (budget 1) and two per group give the same result as one call."""
    monkeypatch.setattr(sg, "CORRECTION_BYTES", budget)
    x, dt, A, B, C, D = inputs(1, 283, 4, 8, 1, 16, "h")
    h0 = torch.randn(1, 4, 8, 16, dtype=torch.float64)
    y_ref, f_ref = reference_scan(x, dt, A, B, C, D, h0)
    y, f = scan_in_segments(reference_scan, x, dt, A, B, C, D, h0, 7)  # 7 x 40 steps and a remainder of 3
    assert ((y - y_ref).abs().max() / y_ref.abs().max()).item() < 1e-6
    assert ((f.double() - f_ref).abs().max() / f_ref.abs().max()).item() < 1e-6


def test_corrections_stay_float32_under_autocast():
    """Under the caller's bf16 autocast (the GPU benchmark's setting) the state corrections still run in float32:
    with an inner scan that is itself float32, the result is the same bit for bit."""
    x, dt, A, B, C, D = (t.float() if t is not None else None for t in inputs(1, 203, 4, 8, 1, 16, "h"))
    h0 = torch.randn(1, 4, 8, 16)

    def scan(*a, out=None):
        with torch.autocast("cpu", enabled=False):
            return reference_scan(*a, out=out)

    y, f = scan_in_segments(scan, x, dt, A, B, C, D, h0, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y_ac, f_ac = scan_in_segments(scan, x, dt, A, B, C, D, h0, 4)
    assert torch.equal(y, y_ac) and torch.equal(f, f_ac)


def test_one_segment_is_one_call():
    x, dt, A, B, C, D = inputs(1, 50, 2, 8, 1, 8, "h")
    calls = []
    scan = lambda *a: calls.append(a[0].shape) or reference_scan(*a)  # noqa: E731
    scan_in_segments(scan, x, dt, A, B, C, D, None, 1)
    assert calls == [x.shape]


def test_segments_for_fills_the_programs_asked_for():
    x = torch.empty(1, 10 * MIN_SEGMENT_STEPS, 8, 64)
    assert segments_for(x, 0) == 1  # off
    assert segments_for(x, 8) == 1  # batch x heads already enough
    assert segments_for(x, 64) == 8  # 8 programs -> 8 segments of 8 heads
    assert segments_for(x, 264) == 10  # capped: no segment shorter than MIN_SEGMENT_STEPS
    assert segments_for(torch.empty(1, MIN_SEGMENT_STEPS - 1, 8, 64), 264) == 1
    assert segments_for(x, 264, min_steps=4 * MIN_SEGMENT_STEPS) == 2  # a longer minimum: fewer, longer segments
    assert segments_for(x, 264, min_steps=11 * MIN_SEGMENT_STEPS) == 1


def test_batch_one_writes_every_piece_into_one_buffer():
    """At batch 1 with a remainder the segments and the remainder write into one output: y is that buffer."""
    x, dt, A, B, C, D = inputs(1, 203, 2, 8, 1, 8, "h")
    outs = []
    scan = lambda *a, out=None: outs.append(out) or reference_scan(*a, out=out)  # noqa: E731
    y, _ = scan_in_segments(scan, x, dt, A, B, C, D, None, 4)  # 4 x 50 steps and a remainder of 3
    assert len(outs) == 2 and all(o is not None for o in outs)
    assert all(o.untyped_storage().data_ptr() == y.untyped_storage().data_ptr() for o in outs)
    y_ref, _ = reference_scan(x, dt, A, B, C, D, None)
    assert ((y - y_ref).abs().max() / y_ref.abs().max()).item() < 1e-6


def _ssm_scan_on_stand_ins(monkeypatch):
    """ssm_scan with our Triton scans stood in for by the reference (CPU, no Triton needed), segments as short as
    16 steps by default: (run(kernels) -> y, the segment counts scan_in_segments was called with, x)."""
    import samba.ops.segments as sg
    import samba.ops.ssd as ssd
    import samba.ops.triton.ssd as tssd

    used = []
    monkeypatch.setattr(sg, "MIN_SEGMENT_STEPS", 16)
    monkeypatch.setattr(ssd, "use_triton_scan", lambda x, B, kernels: True)
    monkeypatch.setattr(tssd, "ssd_scan_triton", lambda x, dt, A, B, C, D, kernels: ssd_chunked(x, dt, A, B, C, 16,
                                                                                                 D=D))
    monkeypatch.setattr(tssd, "ssd_scan_carry_triton", lambda *a, kernels, out=None: reference_scan(*a, out=out))
    in_segments = ssd.scan_in_segments
    monkeypatch.setattr(ssd, "scan_in_segments", lambda *a: used.append(a[-1]) or in_segments(*a))
    x, dt, A, B, C, D = inputs(1, 200, 2, 8, 1, 8, "h")
    dt_bias = torch.zeros(2, dtype=torch.float64)
    return (lambda k: ssd.ssm_scan(x, dt, A, B, C, D, dt_bias, (0.0, float("inf")), None, "triton", k, 64, 16),
            used, x)


def test_ssm_scan_never_runs_segments_under_autograd(monkeypatch):
    """Segments have no backward: ssm_scan takes them only without autograd, and a scan under autograd keeps its
    gradients."""
    from samba.ops import KernelConfig

    scan, used, x = _ssm_scan_on_stand_ins(monkeypatch)
    k = KernelConfig(scan_segment_programs=64)
    with torch.no_grad():
        y_free = scan(k)
    assert used and used[-1] >= 2  # without autograd: in segments
    used.clear()
    x.requires_grad_(True)
    y = scan(k)
    assert not used  # with autograd: one call, and the gradient reaches x
    y.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert ((y.detach() - y_free).abs().max() / y_free.abs().max()).item() < 1e-6


def test_ssm_scan_takes_the_shortest_segment_from_the_kernel_config(monkeypatch):
    from samba.ops import KernelConfig

    scan, used, _ = _ssm_scan_on_stand_ins(monkeypatch)  # 200 steps; module minimum 16 -> 12 segments
    with torch.no_grad():
        scan(KernelConfig(scan_segment_programs=64))
        scan(KernelConfig(scan_segment_programs=64, scan_segment_min_steps=100))
        scan(KernelConfig(scan_segment_programs=64, scan_segment_min_steps=201))  # no room for two: one plain call
    assert used == [12, 2]
