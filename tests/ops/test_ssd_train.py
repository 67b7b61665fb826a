"""The CPU training scan (`ssd_chunked_train`, hand-written backward) against the reference `ssd_chunked`:
outputs and the gradients of every input, in float64."""

import pytest
import torch
import torch.nn.functional as F

from samba.ops import KernelConfig
from samba.ops.ssd import ssd_chunked, ssm_scan
from samba.ops.ssd_train import ssd_chunked_train

F64 = torch.float64

CONFIGS = [  # b, l, h, p, g, n, chunk
    (2, 64, 4, 8, 1, 16, 16),
    (2, 37, 4, 8, 2, 5, 4),  # L not divisible by the chunk, ngroups 2
    (1, 100, 2, 16, 1, 8, 64),  # one partial chunk
    (1, 3, 2, 3, 1, 2, 64),  # L < chunk
    (1, 300, 2, 4, 2, 3, 4),  # 75 chunks: the blocked (recursive) inter-chunk pass
]


def random_ssm(b, l, h, p, g, n, dtype=F64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(b, l, h, p, generator=gen, dtype=dtype)
    dt = F.softplus(torch.randn(b, l, h, generator=gen, dtype=dtype) - 1.0)
    A = -(torch.rand(h, generator=gen, dtype=dtype) * 3 + 0.2)
    B = torch.randn(b, l, g, n, generator=gen, dtype=dtype)
    C = torch.randn(b, l, g, n, generator=gen, dtype=dtype)
    return x, dt, A, B, C


@pytest.mark.parametrize("b,l,h,p,g,n,chunk", CONFIGS)
@pytest.mark.parametrize("d_kind", [None, "h", "hp"])
def test_train_scan_outputs_and_gradients_equal_reference_fp64(b, l, h, p, g, n, chunk, d_kind):
    x, dt, A, B, C = random_ssm(b, l, h, p, g, n)
    D = {None: None, "h": torch.randn(h, dtype=F64), "hp": torch.randn(h, p, dtype=F64)}[d_kind]
    w = torch.randn(b, l, h, p, dtype=F64)
    results = []
    for scan in (ssd_chunked, ssd_chunked_train):
        leaves = [t.clone().requires_grad_() for t in (x, dt, A, B, C)]
        Dl = None if D is None else D.clone().requires_grad_()
        y = scan(*leaves, chunk, D=Dl)
        (y * w).sum().backward()
        results.append([y.detach()] + [t.grad for t in leaves] + ([] if Dl is None else [Dl.grad]))
    names = ["y", "dx", "ddt", "dA", "dB", "dC", "dD"]
    for name, ref, got in zip(names, *results):
        assert got.shape == ref.shape, name
        assert (got - ref).abs().max().item() <= 1e-10 * (1 + ref.abs().max().item()), name


def test_train_scan_float32_close_to_reference():
    x, dt, A, B, C = random_ssm(2, 200, 4, 16, 1, 8, dtype=torch.float32)
    grads = []
    for scan in (ssd_chunked, ssd_chunked_train):
        leaves = [t.clone().requires_grad_() for t in (x, dt, A, B, C)]
        y = scan(*leaves, 64)
        y.square().sum().backward()
        grads.append([y.detach()] + [t.grad for t in leaves])
    for ref, got in zip(*grads):
        assert torch.allclose(got, ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item())


def test_ssm_scan_trains_through_the_train_scan_on_cpu(monkeypatch):
    import samba.ops.ssd_train as ssd_train

    calls = []
    monkeypatch.setattr(ssd_train, "ssd_chunked_train", lambda *a, **k: calls.append(1) or ssd_chunked(*a, **k))
    x, dt, A, B, C = random_ssm(1, 20, 2, 4, 1, 3, dtype=torch.float32)
    args = (x, dt, A, B, C, torch.ones(2), torch.zeros(2), (0.0, float("inf")), None, "torch", KernelConfig(), 8, 8)
    with torch.no_grad():
        ssm_scan(*args)
    assert calls == []
    x.requires_grad_(True)
    ssm_scan(*args).sum().backward()
    assert calls == [1] and x.grad is not None
