"""The segment-parallel inference scan (samba.ops.segments) against one call of the reference scan, in float64.

The inner scan here is the reference itself (`ssd_chunked` with a carried state), so what is tested is the
segmentation: the folding of the time axis into the batch, the state passed from segment to segment, each
segment's correction for the state entering it, and the remainder scanned after the segments. The same wrapper
around our Triton scan is checked in tests/ops/test_triton_kernels.py (interpreter and CUDA)."""
import pytest
import torch

from samba.ops.segments import MIN_SEGMENT_STEPS, scan_in_segments, segments_for
from samba.ops.ssd import ssd_chunked


def reference_scan(x, dt, A, B, C, D, initial_state):
    return ssd_chunked(x, dt, A, B, C, 16, D=D, initial_state=initial_state, return_final_state=True)


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
