"""The CPU training scan (`ssd_chunked_train`, hand-written backward) against the reference `ssd_chunked`:
outputs and the gradients of every input, in float64."""

import pytest
import torch

from samba.ops.ssd import ssd_chunked
from samba.ops.ssd_train import ssd_chunked_train
from test_ssd import CONFIGS, random_ssm  # the reference scan's cases and inputs

F64 = torch.float64


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

