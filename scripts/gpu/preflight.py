#!/usr/bin/env python3
"""Before a benchmark, in a fresh process: is the fused Mamba2 block (SAMBA_FUSED_MAMBA=1) right on this GPU,
and does a checkpointed train step run from the very first step (eager and as a CUDA graph)? Prints FUSED_OK /
CKPT_OK lines that a call script can turn into fallbacks, so one broken path costs its rows, not the whole
benchmark. bf16 autocast only: float32 shapes are autotuned anew by Triton (its key includes the dtypes), which
alone took more than the 120 s this script had in session 5's third call."""
import os
import traceback

import torch

from samba import SAMBA, SAMBAConfig
from samba.graphs import GraphedTrainStep
from samba.montage import DEVICE_PRESETS, positions
from samba.nn import Mamba2


def grads(m, x, w, autocast):
    x = x.detach().clone().requires_grad_()
    m.zero_grad(set_to_none=True)
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
        y = m(x)
    (y.float() * w).sum().backward()
    return [y.detach().float(), x.grad] + [p.grad for p in m.parameters()]


def rel(a, b):
    return ((a.float() - b.float()).norm() / b.float().norm().clamp_min(1e-12)).item()


dev = torch.device("cuda")
try:
    torch.manual_seed(0)
    m = Mamba2(64, d_state=16, d_conv=2, expand=8, headdim=64, backend="mamba_ssm").to(dev)
    x = torch.randn(2, 1000, 64, device=dev)
    w = torch.randn_like(x)
    worst = {}
    os.environ["SAMBA_FUSED_MAMBA"] = "1"
    a = grads(m, x, w, True)
    os.environ["SAMBA_FUSED_MAMBA"] = "0"
    b = grads(m, x, w, True)
    worst["bf16"] = max(rel(p, q) for p, q in zip(a, b))
    print("fused vs layer-by-layer, worst relative error over output and gradients:", worst, flush=True)
    if worst["bf16"] < 5e-2:
        print("FUSED_OK", flush=True)
except Exception:
    traceback.print_exc()

try:
    coords = torch.from_numpy(positions(list(DEVICE_PRESETS["10-20"]))).to(dev)
    torch.manual_seed(0)
    model = SAMBA(SAMBAConfig(backend="mamba_ssm", activation_checkpointing=True)).to(dev).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(2, 19, 1280, device=dev)
    for _ in range(2):
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = model(x, coords)
        out.float().pow(2).mean().backward()
        opt.step()
    print("checkpointed eager step ok", flush=True)
    model2 = SAMBA(SAMBAConfig(backend="mamba_ssm", activation_checkpointing=True)).to(dev).train()
    opt2 = torch.optim.AdamW(model2.parameters(), lr=1e-4, capturable=True)
    step = GraphedTrainStep(model2, opt2, lambda pr, xx: pr.float().pow(2).mean(), coords, batch=2, n_times=1280)
    loss = step(x)
    torch.cuda.synchronize()
    print("checkpointed graphed step ok, loss", float(loss), flush=True)
    print("CKPT_OK", flush=True)
except Exception:
    traceback.print_exc()
