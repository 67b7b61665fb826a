#!/usr/bin/env python3
"""usage: python3 scripts/gpu/profile_step.py {train,infer} BATCH [--seconds 60] [--out-dir DIR]

Where SAMBA's 60-s step spends its GPU time: two eager steps (after three untimed ones, which compile and autotune
the Triton kernels) under `torch.profiler`, bf16 autocast as in `samba bench`. The train step is forward, the
benchmark's loss, backward and a fused AdamW step; the inference runs every layer in one call (``time_chunk=0``),
as the benchmark's CUDA graph does (eager inference would otherwise cut long batches into time chunks). Writes
``kernels_<gpu>_<mode>_b<BATCH>_<commit>.txt`` (operators and kernels by their own GPU time) and
``ops_<gpu>_<mode>_b<BATCH>_<commit>.txt`` (the same grouped by input shapes) into DIR. Times are for two steps.
Eager, not a CUDA graph: the graph removes the launch gaps, not the kernels' own time.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=("train", "infer"))
    ap.add_argument("batch", type=int)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--out-dir", default="runs/profiles")
    args = ap.parse_args(argv)
    if args.batch < 1:
        ap.error("BATCH must be >= 1")

    import torch
    from torch.profiler import ProfilerActivity, profile

    from samba.bench.report import git_commit
    from samba.bench.workloads import build, coords_1020, spec_of

    if not torch.cuda.is_available():
        print("profile_step: error: needs a CUDA GPU", file=sys.stderr)
        return 1
    spec = spec_of("SAMBA")
    n = spec.n_times(args.seconds)
    model = build(spec, n, "auto")[0].cuda()
    x = torch.randn(args.batch, 19, n, device="cuda")
    coords = torch.as_tensor(coords_1020(), device="cuda")
    bf16 = torch.autocast("cuda", dtype=torch.bfloat16)
    if args.mode == "train":
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)

        def step():
            opt.zero_grad(set_to_none=True)
            with bf16:
                out = model(x, coords)
            out.float().pow(2).mean().backward()  # the benchmark's reconstruction loss
            opt.step()
    else:
        model.eval()

        def step():
            with torch.no_grad(), bf16:
                model(x, coords, time_chunk=0)

    for _ in range(3):
        step()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA], record_shapes=True) as prof:
        for _ in range(2):
            step()
        torch.cuda.synchronize()
    gpu = torch.cuda.get_device_name(0).split()[1].lower()  # "NVIDIA H100 80GB HBM3" -> "h100"
    commit = git_commit()
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{gpu}_{args.mode}_b{args.batch}_{commit}.txt"
    header = (f"# {torch.cuda.get_device_name(0)}, commit {commit}, torch {torch.__version__}: python3 "
              f"scripts/gpu/profile_step.py {args.mode} {args.batch} --seconds {args.seconds:g} (two eager steps)\n")
    (out / f"kernels_{stem}").write_text(header + prof.key_averages().table(
        sort_by="self_cuda_time_total", row_limit=70, max_name_column_width=90))
    (out / f"ops_{stem}").write_text(header + prof.key_averages(group_by_input_shape=True).table(
        sort_by="self_cuda_time_total", row_limit=70, max_name_column_width=50, max_shapes_column_width=110))
    print(f"wrote {out / ('kernels_' + stem)} and ops_{stem}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
