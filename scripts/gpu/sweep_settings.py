#!/usr/bin/env python3
"""The train step's kernel settings, swept in one process (for docs/performance_log.md).

Every setting of our Triton kernels is an environment variable read at each call (samba/nn/triton_*.py), so one
process can time them all: no interpreter start or model build per variant, and Triton compiles each variant
once. For each variant: the eager bf16 train step (profile_step.make_step: forward, loss, backward, AdamW) at
--batch x --seconds, median of --repeats after warm-up; and, as a guard against a variant that computes
something else, the largest relative difference of any parameter gradient from the baseline's on a fixed
batch-8 input (sum-order noise under bf16 is ~1e-3; a wrong kernel is O(1)). The baseline is the caller's
environment. Each family (conv backward, norm backward, scan backward) keeps its fastest variant if it beats the
baseline by --margin, then the winners are timed together; the result goes to --out/sweep.json and, as shell
assignments, to --out/best_env (empty when nothing won).

    python3 scripts/gpu/sweep_settings.py --out $OUT/sweep
"""
import argparse
import json
import os
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from profile_step import cuda_setup, make_step, time_step  # noqa: E402

FAMILIES = {
    # tile "BL,BC" : launch "warps,stages" (ptxas spills per thread at sm_90, offline: 64,64 at 4 warps 584 B,
    # at 8 warps none; 128,32 at 8 warps none; 256,32 at 8 warps 304 B)
    "conv": [{"SAMBA_TRITON_CONV_BWD_BLOCK": blk, "SAMBA_TRITON_CONV_BWD_LAUNCH": lau}
             for blk, lau in (("64,64", "8,3"), ("128,32", "8,3"), ("128,64", "8,3"), ("256,32", "8,3"))],
    "norm": [{"SAMBA_TRITON_NORM_BWD": t, "SAMBA_TRITON_NORM_BWD_LAUNCH": lau}
             for t, lau in (("2048,8", "8,3"), ("4096,8", "8,3"), ("2048,16", "4,3"))],
    # the scan's group backward (dB, dC summed over a group's heads on chip): over every layer it measured slower
    # than the split (session 9, call 1: 73.6 ms at 4 warps, 86.2 at 8, split 72.4), so now for the narrow heads
    # only (the bottleneck's 128 heads of 16, where the split writes ~1 GB each of per-head dB, dC for torch to
    # sum), and the split's warps there (ptxas, sm_90, headdim 16 spills per thread: split 4 / 8 warps none,
    # 2 warps 600 B; group 4 / 8 warps 436 / 272 B, 2 warps 1,828 B)
    "scan": [{"SAMBA_TRITON_SCAN_BWD_NARROW": m, "SAMBA_TRITON_SCAN_BWD_NARROW_LAUNCH": lau}
             for m, lau in (("group", "4,3"), ("group", "8,3"), ("split", "8,3"))],
}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="sweep_out")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--repeats", type=int, default=8)
    p.add_argument("--margin", type=float, default=0.02, help="a family's winner must be this much faster")
    p.add_argument("--families", nargs="+", default=list(FAMILIES))
    args = p.parse_args()
    from samba import SAMBA, SAMBAConfig

    out, dev, coords = cuda_setup(args.out)
    T = int(args.seconds * 128)
    torch.manual_seed(0)
    model = SAMBA(SAMBAConfig(backend="mamba_ssm")).to(dev)
    state0 = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(args.batch, 19, T, device=dev)
    xg = torch.randn(8, 19, T, device=dev, generator=torch.Generator(device=dev).manual_seed(1))
    keys = sorted({k for fam in FAMILIES.values() for v in fam for k in v})
    base_env = {k: os.environ.get(k) for k in keys}
    rows = []
    doc = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
                     "commit": os.environ.get("SAMBA_COMMIT", "unknown"), "batch": args.batch,
                     "seconds": args.seconds, "base_env": {k: v for k, v in base_env.items() if v}, "rows": rows}

    def grads():
        model.load_state_dict(state0)
        model.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = model(xg, coords)
        out.float().pow(2).mean().backward()
        return {n: q.grad.detach().float().clone() for n, q in model.named_parameters() if q.grad is not None}

    def run(name, env):
        for k in keys:  # the baseline, then this variant's settings on top
            os.environ.pop(k, None)
            if base_env[k]:
                os.environ[k] = base_env[k]
        os.environ.update(env)
        row = dict(name=name, env=env)
        try:
            g = grads()
            if ref:
                row["grad_rel_diff"] = max(((g[n] - r).norm() / r.norm().clamp_min(1e-30)).item() for n, r in ref.items())
            else:
                ref.update(g)
            model.load_state_dict(state0)
            step = make_step(model, x, coords, "train")
            ms = [time_step(step, warmup=3, repeats=args.repeats)[0] for _ in range(2)]
            row.update(ms=round(statistics.median(ms), 3), ms_runs=[round(m, 3) for m in ms],
                       eeg_s_per_s=round(args.batch * args.seconds / (statistics.median(ms) / 1e3), 1))
        except Exception as e:  # a variant that fails to compile or run is recorded, the sweep goes on
            row["error"] = f"{type(e).__name__}: {str(e)[:300]}"
        print(json.dumps(row), flush=True)
        rows.append(row)
        (out / "sweep.json").write_text(json.dumps(doc, indent=1))
        return row

    ref = {}
    base = run("baseline", {})
    best = {}
    for fam in args.families:
        for i, env in enumerate(FAMILIES[fam]):
            r = run(f"{fam}{i}", env)
            ok = "ms" in r and r.get("grad_rel_diff", 1.0) < 0.05
            if ok and r["ms"] < (1 - args.margin) * best.get(fam, (None, base.get("ms", 1e9)))[1]:
                best[fam] = (env, r["ms"])
    winners = {k: v for env, _ in best.values() for k, v in env.items()}
    if len(best) > 1:
        run("combined", winners)
    run("baseline_again", {})
    doc["winners"] = winners
    (out / "sweep.json").write_text(json.dumps(doc, indent=1))
    (out / "best_env").write_text("".join(f"export {k}={v}\n" for k, v in winners.items()))
    print("winners", json.dumps(winners), flush=True)


if __name__ == "__main__":
    main()
