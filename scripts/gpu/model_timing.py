#!/usr/bin/env python3
"""Forward+backward time of the full SAMBA model on one GPU (issue: model library, "done when").

Variants at batch 8 x 60 s x 19 channels at 128 Hz, bf16 autocast:
  torch backend (pure-PyTorch chunked SSD), mamba_ssm backend (Triton), mamba_ssm with the
  authors' per-head DiffMamba loop, and mamba_ssm without the fused spatial embedding.
Prints a table and writes JSON (device, torch, commit, date, rows) to --out.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import time

import torch


def median_ms(fn, warmup=3, iters=10):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b))
    times.sort()
    return times[len(times) // 2]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="model_timing.json")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--variants", default="mamba_ssm,mamba_ssm_loop,mamba_ssm_unfused,torch")
    args = p.parse_args()
    from samba import SAMBA, SAMBAConfig
    from samba.montage import DEVICE_PRESETS, positions

    dev = torch.device("cuda")
    coords = torch.from_numpy(positions(list(DEVICE_PRESETS["10-20"]))).to(dev)
    T = int(args.seconds * 128)
    rows = []
    for name in args.variants.split(","):
        backend = "torch" if name == "torch" else "mamba_ssm"
        cfg = SAMBAConfig(backend=backend, fuse_spatial=(name != "mamba_ssm_unfused"),
                          diff_mamba_impl="loop" if name.endswith("loop") else "grouped")
        torch.manual_seed(0)
        model = SAMBA(cfg).to(dev)
        x = torch.randn(args.batch, coords.shape[0], T, device=dev)

        def step():
            with torch.autocast("cuda", dtype=torch.bfloat16):
                y = model(x, coords)
                loss = (y.float() - x).abs().mean()
            loss.backward()
            model.zero_grad(set_to_none=True)

        torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        try:
            step()  # first call: Triton compile/autotune
            first = time.perf_counter() - t0
            ms = median_ms(step, warmup=2, iters=5 if name == "torch" else 10)
            row = {"variant": name, "ms": round(ms, 2), "first_call_s": round(first, 1),
                   "peak_mib": round(torch.cuda.max_memory_allocated() / 2**20, 1), "status": "ok"}
        except Exception as e:  # recorded, not hidden
            row = {"variant": name, "status": "error", "error": f"{type(e).__name__}: {e}"[:500]}
        row.update(batch=args.batch, seconds=args.seconds, channels=int(coords.shape[0]))
        rows.append(row)
        print(row, flush=True)
        del model
        torch.cuda.empty_cache()
    try:
        commit = subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], text=True).strip()
    except Exception:
        commit = "unknown"
    out = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "commit": commit,
           "date": dt.date.today().isoformat(), "dtype": "bf16 autocast", "rows": rows}
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    print("\n| variant | fwd+bwd ms | peak MiB |\n|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r.get('ms', r['status'])} | {r.get('peak_mib', '')} |")


if __name__ == "__main__":
    main()
