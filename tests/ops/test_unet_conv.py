"""The U-Net's channels-last convolutions (`samba.ops.unet_conv`, inference): the reference against the
channels-first ops it stands for, the Triton kernel against the reference in Triton's CPU interpreter and compiled
for sm_90, and the model's channels-last path against its default path (CUDA: `tests/test_gpu_backends.py`)."""
import pytest
import torch
import torch.nn.functional as F

from samba import SAMBA, SAMBAConfig
from samba.montage import DEVICE_PRESETS, positions
from samba.ops import KernelConfig, upsample_concat_ref
from samba.ops.unet_conv import (conv_cl, conv_cl_ref, conv_weight_grad_cl, max_pool2x_cl, upcat_cl,
                                 upcat_cl_backward)

from test_triton_kernels import _compile_for_hopper, _spill_stores, _worst_error_in_the_interpreter


def test_reference_is_the_channels_first_stage():
    torch.manual_seed(0)
    a, up = torch.randn(2, 40, 8, dtype=torch.float64), torch.randn(2, 20, 4, dtype=torch.float64)
    w, b = torch.randn(5, 12, 3, dtype=torch.float64), torch.randn(5, dtype=torch.float64)
    want = F.conv1d(upsample_concat_ref(a.transpose(1, 2), up.transpose(1, 2)), w, b, padding=1)  # (B, 5, 40)
    torch.testing.assert_close(conv_cl(a, w, b, "upcat", up), want.transpose(1, 2))
    w2 = torch.randn(5, 8, 3, dtype=torch.float64)
    want = F.conv1d(F.max_pool1d(a.transpose(1, 2), 2), w2, None, padding=1)
    torch.testing.assert_close(conv_cl(a, w2, None, "pool"), want.transpose(1, 2))
    torch.testing.assert_close(max_pool2x_cl(a), F.max_pool1d(a.transpose(1, 2), 2).transpose(1, 2))
    tied = a.clone()
    tied[:, 1::2] = tied[:, 0::2]  # every pair tied: max_pool1d's gradient goes to the first of the two
    g = torch.randn(2, 20, 8, dtype=torch.float64)
    grads = [torch.autograd.grad(f(t), t, g)[0] for f, t in
             ((max_pool2x_cl, tied.clone().requires_grad_()),
              (lambda t: F.max_pool1d(t.transpose(1, 2), 2).transpose(1, 2), tied.clone().requires_grad_()))]
    torch.testing.assert_close(grads[0], grads[1])
    with pytest.raises(ValueError, match="mode"):
        conv_cl(a, w2, None, "mean")
    with pytest.raises(ValueError, match="up is given"):
        conv_cl(a, w2, None, "pool", up)


_KERNEL_CHECK = r"""
import torch
from samba.ops.unet_conv import conv_cl_ref
from samba.ops.triton.unet_conv import conv_cl_triton
rel = lambda a, b: ((a - b).abs().max() / b.abs().max()).item()
torch.manual_seed(0)
worst = 0.0
# every stage of the model at short lengths (embedding k=7 from 19 electrodes, enc2, enc3, dec3, dec2, dec1), several
# time blocks (130 steps: 64 + 64 + 2), several output-channel blocks (150) and widths off the kernel's blocks
for mode, La, Ca, Cu, Cout, k in (("plain", 130, 19, 0, 64, 7), ("pool", 80, 64, 0, 64, 3), ("pool", 48, 64, 0, 128, 3),
                                  ("upcat", 40, 128, 128, 128, 3), ("upcat", 130, 64, 128, 64, 3),
                                  ("upcat", 40, 64, 64, 64, 3), ("upcat", 22, 33, 17, 150, 5), ("pool", 9, 5, 0, 3, 1)):
    a = torch.randn(2, La, Ca)
    L = La // 2 if mode == "pool" else La
    up = torch.randn(2, L // 2, Cu) if mode == "upcat" else None
    w, b = torch.randn(Cout, Ca + Cu, k), torch.randn(Cout)
    ref = conv_cl_ref(a, w, b, mode, up)
    out = conv_cl_triton(a, w, b, mode, up)
    assert out.shape == ref.shape and out.is_contiguous(), (out.shape, ref.shape)
    worst = max(worst, rel(out, ref))
# the recording as stored, (B, C, T), read through a transposed view
x, w = torch.randn(2, 19, 40), torch.randn(64, 19, 7)
worst = max(worst, rel(conv_cl_triton(x.transpose(1, 2), w, None), conv_cl_ref(x.transpose(1, 2), w, None)))
print(worst)
"""


def test_conv_cl_kernel_matches_the_reference_in_the_triton_interpreter():
    assert _worst_error_in_the_interpreter(_KERNEL_CHECK) < 1e-5


@pytest.mark.parametrize("B,L,C,N,k", [(1, 9, 3, 4, 3), (3, 5, 3, 4, 3), (4, 17, 5, 6, 7), (5, 7, 4, 3, 7),
                                         (2, 6, 4, 3, 7), (3, 2, 2, 2, 3), (2, 1, 2, 2, 1), (6, 33, 16, 8, 5)])
def test_weight_gradient_over_all_rows_equals_the_convs(B, L, C, N, k):
    """`conv_weight_grad_cl` (one product per tap over the flattened batch, the pairs across samples taken out)
    against autograd through the channels-first ``F.conv1d``, float64, with x as a transposed view and samples shorter
    than k (the padded fallback)."""
    torch.manual_seed(0)
    x = torch.randn(B, C, L, dtype=torch.float64)  # stored channels-first: x.transpose(1, 2) is not contiguous
    dout = torch.randn(B, L, N, dtype=torch.float64)
    w = torch.zeros(N, C, k, dtype=torch.float64, requires_grad=True)
    want = torch.autograd.grad(F.conv1d(x, w, padding=k // 2), w, dout.transpose(1, 2))[0]
    for xs in (x.transpose(1, 2), x.transpose(1, 2).contiguous()):
        got = conv_weight_grad_cl(xs, dout, k)
        assert got.dtype == torch.float64 and got.shape == (N, C, k)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("Lu", [1, 2, 7])
def test_skip_join_on_channels_last_equals_the_reference_and_its_gradient(Lu):
    """`upcat_cl` (the skip join written on (B, L, C)) and `upcat_cl_backward` (its gradients, the stencil's
    transpose) against `upsample_concat_ref` on the channels-first transposes and autograd through it, float64."""
    torch.manual_seed(0)
    a = torch.randn(3, 2 * Lu, 5, dtype=torch.float64, requires_grad=True)
    up = torch.randn(3, Lu, 4, dtype=torch.float64, requires_grad=True)
    want = upsample_concat_ref(a.transpose(1, 2), up.transpose(1, 2)).transpose(1, 2)  # (B, L, 9)
    got = upcat_cl(a.detach(), up.detach())
    assert got.is_contiguous()
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    g = torch.randn_like(want)
    da, dup = torch.autograd.grad(want, (a, up), g)
    got_a, got_up = upcat_cl_backward(g, 5, a.dtype, up.dtype)
    torch.testing.assert_close(got_a, da, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got_up, dup, rtol=1e-12, atol=1e-12)
    assert upcat_cl_backward(g, 5, a.dtype, up.dtype, need_a=False)[0] is None
    assert upcat_cl_backward(g, 5, a.dtype, up.dtype, need_up=False)[1] is None
    # a bf16 gradient: up's float32 gradient is summed in float32 (only g itself is rounded)
    gb = g.to(torch.bfloat16)
    want_up = torch.autograd.grad(want, up, gb.double())[0]
    got_up = upcat_cl_backward(gb, 5, torch.bfloat16, torch.float32)[1]
    assert got_up.dtype == torch.float32
    torch.testing.assert_close(got_up.double(), want_up, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="L / 2"):
        upcat_cl(a.detach(), up.detach()[:, :-1] if Lu > 1 else up.detach().repeat(1, 2, 1))


_BACKWARD_CHECK = r"""
import torch
from samba.ops.unet_conv import _ConvCL, conv_cl_ref
rel = lambda a, b: ((a - b).abs().max() / b.abs().max()).item()
torch.manual_seed(0)
worst = 0.0
for mode, La, Ca, Cu, Cout, k in (("plain", 70, 19, 0, 64, 7), ("pool", 80, 64, 0, 64, 3), ("pool", 9, 5, 0, 3, 1),
                                  ("upcat", 66, 64, 128, 64, 3), ("upcat", 22, 33, 17, 150, 5)):
    a = torch.randn(2, La, Ca)
    a[:, 1::2] = torch.where(torch.rand(2, La // 2, Ca) < 0.2, a[:, 0::2][:, : La // 2], a[:, 1::2])  # ties to pool
    L = La // 2 if mode == "pool" else La
    up = torch.randn(2, L // 2, Cu) if mode == "upcat" else None
    w, b = torch.randn(Cout, Ca + Cu, k), torch.randn(Cout)
    dout = torch.randn(2, L, Cout)
    grads = []
    for f in (conv_cl_ref, lambda *t: _ConvCL.apply(t[0], t[1], t[2], t[4], t[3])):
        leaves = [t.clone().requires_grad_() for t in (a, w, b) + ((up,) if up is not None else ())]
        out = f(leaves[0], leaves[1], leaves[2], mode, leaves[3] if up is not None else None)
        grads.append(torch.autograd.grad(out, leaves, dout))
    for g, r in zip(*grads[::-1]):
        worst = max(worst, rel(g, r))
# the recording as stored, (B, C, T), read through a transposed view that needs no gradient
x, w, dout = torch.randn(2, 19, 40), torch.randn(64, 19, 7), torch.randn(2, 40, 64)
w1, w2 = w.clone().requires_grad_(), w.clone().requires_grad_()
g = torch.autograd.grad(_ConvCL.apply(x.transpose(1, 2), w1, None, None, "plain"), w1, dout)[0]
r = torch.autograd.grad(conv_cl_ref(x.transpose(1, 2), w2, None), w2, dout)[0]
print(max(worst, rel(g, r)))
"""


def test_conv_cl_backward_matches_the_reference_in_the_triton_interpreter():
    """`_ConvCL`'s gradients (the kernel on the output gradient, the weight's per-tap products, the pooling's and
    skip join's backward) against autograd through the reference, every mode, ties in the pooled pairs."""
    assert _worst_error_in_the_interpreter(_BACKWARD_CHECK) < 1e-5


_CONV_CL_SIG = {"A": "*bf16", "U": "*bf16", "W": "*bf16", "Bias": "*fp32", "Out": "*bf16", "L": "i32", "Ca": "i32",
                "Cu": "i32", "Cout": "i32", "Lu": "i32",
                **{n: "i64" for n in ("sab", "sal", "sac", "sub", "sul", "suc", "sob", "sol")}}


# the forward's stages, and the backward's input gradient (plain, no bias, up to 256 output channels)
@pytest.mark.parametrize("mode,kt,bn,bias", [(0, 7, 64, True), (1, 3, 64, True), (1, 3, 128, True), (2, 3, 64, True),
                                             (2, 3, 128, True), (0, 3, 64, False), (0, 3, 128, False)])
def test_conv_cl_kernel_compiles_for_hopper_without_spills(mode, kt, bn, bias):
    pytest.importorskip("triton")
    from samba.ops.triton import unet_conv as tu

    const = {"KT": kt, "MODE": mode, "HAS_BIAS": bias, "IEEE": False, "BL": tu.BLOCK_L, "BN": bn, "BK": tu.BLOCK_K}
    k = _compile_for_hopper(tu._conv_cl_kernel, _CONV_CL_SIG, const, 4, aligned=True)
    assert ".target sm_90" in k.asm["ptx"]
    assert _spill_stores(k) == 0


@pytest.mark.parametrize("cfg", [{}, {"fuse_spatial": False}, {"bidirectional": True}],
                         ids=["paper", "unfused", "bidirectional"])
def test_model_channels_last_path_equals_the_default_path(cfg):
    """The channels-last inference path's plumbing (layouts, pooling, skip joins, the output map), run on CPU with
    the reference convs, against the default path: float64, one montage and one per sample, an electrode left out,
    forward and encode."""
    torch.manual_seed(0)
    model = SAMBA(SAMBAConfig(**cfg), kernels=KernelConfig(backend="torch")).double().eval()
    coords = torch.from_numpy(positions(list(DEVICE_PRESETS["10-20"]))).double()
    per_sample = coords[None].repeat(2, 1, 1)
    per_sample[1] += 0.01
    x = torch.randn(2, 19, 203, dtype=torch.float64)  # not a multiple of 8: padded and cropped
    assert not model._channels_last(x)  # CPU: the default path
    mask = torch.ones(1, 19, dtype=torch.bool)
    mask[0, 3] = False

    def run():
        return [model(x, coords), model.encode(x, coords), model(x, per_sample), model.encode(x, per_sample),
                model(x, coords, mask)]

    with torch.no_grad():
        want = run()
        model._channels_last = lambda x: True
        got = run()
    for g, w in zip(got, want):
        assert g.shape == w.shape
        torch.testing.assert_close(g, w, rtol=1e-9, atol=1e-9)


_MODEL_BACKWARD_CHECK = r"""
import torch
import samba.model as sm
from samba import SAMBA, SAMBAConfig
from samba.montage import DEVICE_PRESETS, positions
from samba.ops import KernelConfig
from samba.ops.unet_conv import _ConvCL
torch.manual_seed(0)
model = SAMBA(SAMBAConfig(), kernels=KernelConfig(backend="torch")).train()
coords = torch.from_numpy(positions(list(DEVICE_PRESETS["10-20"]))).float()
x = torch.randn(2, 19, 101)
def grads():
    model.zero_grad(set_to_none=True)
    model(x, coords).square().mean().backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}
want = grads()
sm.conv_cl = lambda a, w, b, mode="plain", up=None, kernels=None: _ConvCL.apply(a, w, b, up, mode)
model._channels_last = lambda x: True
got = grads()
assert set(got) == set(want)
floor = 1e-3 * max(v.abs().max().item() for v in want.values())
print(max(((got[k] - want[k]).abs().max() / max(want[k].abs().max().item(), floor)).item() for k in want))
"""


def test_model_train_step_through_the_kernel_matches_the_default_path_in_the_triton_interpreter():
    """The model's channels-last train step with every U-Net conv on the kernel and its backward (`_ConvCL`, in
    Triton's interpreter) against the default channels-first step, float32: every parameter's gradient, relative to
    its largest entry floored at 1e-3 of the largest of any (the CDSE MLPs' last biases have a zero gradient up to
    rounding: a softmax ignores a shift)."""
    assert _worst_error_in_the_interpreter(_MODEL_BACKWARD_CHECK) < 1e-4


@pytest.mark.parametrize("cfg", [{}, {"activation_checkpointing": True}, {"bidirectional": True}],
                         ids=["paper", "checkpointed", "bidirectional"])
def test_model_channels_last_training_equals_the_default_path(cfg):
    """The channels-last path under autograd (`KernelConfig.channels_last_unet_train`), run on CPU with the
    reference convs: loss and every parameter's gradient equal the default path's in float64, the input padded,
    one montage per sample and an electrode left out."""
    torch.manual_seed(0)
    model = SAMBA(SAMBAConfig(**cfg), kernels=KernelConfig(backend="torch")).double().train()
    coords = torch.from_numpy(positions(list(DEVICE_PRESETS["10-20"]))).double()
    per_sample = coords[None].repeat(2, 1, 1)
    per_sample[1] += 0.01
    x = torch.randn(2, 19, 203, dtype=torch.float64)
    mask = torch.ones(2, 19, dtype=torch.bool)
    mask[1, 3] = False

    def grads():
        model.zero_grad(set_to_none=True)
        loss = model(x, per_sample, mask).square().mean() + model.encode(x, coords).square().mean()
        loss.backward()
        return [loss.detach()] + [p.grad for p in model.parameters()]

    want = grads()
    model._channels_last = lambda x: True
    got = grads()
    assert len(got) == len(want) and all(g is not None for g in got)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-9, atol=1e-12)
