#!/usr/bin/env python3
"""Before a benchmark, in a fresh process: is SAMBA's fast CUDA path (our fused Mamba2 block, Triton SSD scan and
gated-norm backward: samba.nn.mamba2.FAST_PATH_SWITCHES, all at 1) right on this GPU, and does a checkpointed
train step (one sample per piece, as the benchmark runs it) work from the very first step, eager and graphed?
`--parts fast ckpt` (default both) picks the checks.

Prints FAST_OK / CKPT_OK lines that a call script turns into switches (FAST_OK: all three at 1, the default
since session 7; else all three at 0: mamba_ssm's layer-by-layer kernels; CKPT_OK missing: no checkpointing), so
a broken path costs its speed, not the benchmark.
The check compares the whole model (output, input gradient and every parameter gradient) on the fast path with
mamba_ssm's path on the same weights; bf16 autocast only (float32 shapes would be autotuned anew by mamba_ssm's
kernels, which took more than two minutes in session 5)."""
import os
import sys
import traceback

import torch

from samba import SAMBA, SAMBAConfig
from samba.graphs import GraphedTrainStep
from samba.montage import DEVICE_PRESETS, positions
from samba.nn.mamba2 import FAST_PATH_SWITCHES, fast_path_switches

dev = torch.device("cuda")
coords = torch.from_numpy(positions(list(DEVICE_PRESETS["10-20"]))).to(dev)


def switches(value):
    for env in FAST_PATH_SWITCHES:
        if value is None:
            os.environ.pop(env, None)
        else:
            os.environ[env] = value


def grads(m, x, w):
    x = x.detach().clone().requires_grad_()
    m.zero_grad(set_to_none=True)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        y = m(x, coords)
    (y.float() * w).sum().backward()
    return [y.detach().float(), x.grad] + [p.grad for p in m.parameters()]


def rel(a, b):
    return ((a.float() - b.float()).norm() / b.float().norm().clamp_min(1e-12)).item()


parts = sys.argv[sys.argv.index("--parts") + 1:] if "--parts" in sys.argv else ["fast", "ckpt"]

if "fast" in parts:
    try:
        torch.manual_seed(0)
        m = SAMBA(SAMBAConfig(backend="mamba_ssm")).to(dev).train()
        x = torch.randn(2, 19, 1000, device=dev)  # not a multiple of the 64-step chunk at any level
        w = torch.randn_like(x)
        switches("1")
        print("switches:", fast_path_switches(), flush=True)
        a = grads(m, x, w)
        switches("0")
        b = grads(m, x, w)
        switches(None)
        names = ["output", "input grad"] + [n for n, _ in m.named_parameters()]
        # Left out: parameters whose true gradient is zero. The last bias of each CDSE score MLP
        # ("cdse.mlp.2.bias", "inverse_cdse.mlp.2.bias") shifts every score of a softmax, which ignores it, so both
        # paths give rounding noise there (session 6's first two preflights compared that noise, 3.1 relative,
        # and sent the benchmark to its fallback).
        errs = {n: rel(p, q) for n, p, q in zip(names, a, b) if not n.endswith("cdse.mlp.2.bias")}
        ranked = sorted(errs, key=errs.get, reverse=True)
        print(f"fast path vs mamba_ssm layer by layer (bf16), {len(errs)} tensors, worst first: "
              + ", ".join(f"{n} {errs[n]:.2e}" for n in ranked[:8])
              + f"; output {errs['output']:.2e}, input grad {errs['input grad']:.2e}", flush=True)
        worst = ranked[0]
        if all(e == e for e in errs.values()) and errs[worst] < 5e-2:  # bf16 criterion of tests/test_gpu_backends.py
            print("FAST_OK", flush=True)
    except Exception:
        traceback.print_exc()

if "ckpt" in parts:
    try:
        torch.manual_seed(0)
        model = SAMBA(SAMBAConfig(backend="mamba_ssm", activation_checkpointing=True,
                                  checkpoint_piece_tokens=1280)).to(dev).train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        x = torch.randn(2, 19, 1280, device=dev)
        for _ in range(2):
            opt.zero_grad(set_to_none=True)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                out = model(x, coords)
            out.float().pow(2).mean().backward()
            opt.step()
        print("checkpointed eager step ok", flush=True)
        model2 = SAMBA(SAMBAConfig(backend="mamba_ssm", activation_checkpointing=True,
                                   checkpoint_piece_tokens=1280)).to(dev).train()
        opt2 = torch.optim.AdamW(model2.parameters(), lr=1e-4, capturable=True)
        step = GraphedTrainStep(model2, opt2, lambda pr, xx: pr.float().pow(2).mean(), coords, batch=2, n_times=1280)
        loss = step(x)
        torch.cuda.synchronize()
        print("checkpointed graphed step ok, loss", float(loss), flush=True)
        print("CKPT_OK", flush=True)
    except Exception:
        traceback.print_exc()
