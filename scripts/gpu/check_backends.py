#!/usr/bin/env python3
"""Full-model check on CUDA: SAMBA with the mamba_ssm backend vs the torch backend on the SAME weights.

Batch 4 x 19 channels x 30 s at 128 Hz. Compares outputs and every parameter gradient (relative L2
error) in float32 (Triton runs fp32 dots as TF32 unless TRITON_F32_DEFAULT=ieee) and under bf16 autocast.
Writes JSON to --out and prints a table.
"""
import argparse
import json

import torch


def rel(a, b):
    return float((a.float() - b.float()).norm() / b.float().norm().clamp_min(1e-30))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="backend_check.json")
    args = p.parse_args()
    from samba import SAMBA, SAMBAConfig
    from samba.montage import DEVICE_PRESETS, positions

    dev = torch.device("cuda")
    coords = torch.from_numpy(positions(list(DEVICE_PRESETS["10-20"]))).to(dev)
    torch.manual_seed(0)
    ref = SAMBA(SAMBAConfig(backend="torch")).to(dev)
    fast = SAMBA(SAMBAConfig(backend="mamba_ssm")).to(dev)
    fast.load_state_dict(ref.state_dict())
    x = torch.randn(4, 19, 30 * 128, device=dev)
    rows = []
    for mode in ("fp32", "bf16"):
        outs, grads = [], []
        for m in (ref, fast):
            m.zero_grad(set_to_none=True)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=(mode == "bf16")):
                y = m(x, coords)
            (y.float() - x).abs().mean().backward()
            outs.append(y.detach())
            grads.append({n: q.grad.detach().clone() for n, q in m.named_parameters()})
        g_err = {n: rel(grads[1][n], grads[0][n]) for n in grads[0]}
        worst = max(g_err, key=g_err.get)
        row = {"mode": mode, "output_rel_err": rel(outs[1], outs[0]), "grad_rel_err_median": sorted(g_err.values())[len(g_err) // 2],
               "grad_rel_err_max": g_err[worst], "grad_worst_param": worst, "finite": bool(torch.isfinite(outs[1]).all())}
        rows.append(row)
        print(row, flush=True)
    out = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "batch": 4, "channels": 19,
           "seconds": 30, "rows": rows}
    json.dump(out, open(args.out, "w"), indent=1)


if __name__ == "__main__":
    main()
