#!/usr/bin/env python3
"""Where does a SAMBA step spend its time on the GPU? (for docs/performance_log.md)

For each backend given, times the bf16-autocast train step (AdamW, the bench's step) and the inference
forward at a few batch sizes with CUDA events (median of repeats after warm-up), records the host time
per step without synchronising (launch-bound when it is close to the GPU time), and writes a
torch.profiler table of the kernels of one train step at the largest batch.

    python3 scripts/gpu/profile_step.py --backend mamba_ssm torch --seconds 60 --batches 1 4 32 --out $OUT
"""
import argparse
import json
import statistics
import time
from pathlib import Path

import torch


def cuda_setup(out_dir: str):
    """The GPU scripts' common start: the output folder (created), the CUDA device, and the benchmark's 19
    electrodes (10-20) as (19, 3) coordinates on it."""
    from samba.montage import DEVICE_PRESETS, positions

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dev = torch.device("cuda")
    return out, dev, torch.from_numpy(positions(list(DEVICE_PRESETS["10-20"]))).to(dev)


def make_step(model, x, coords, mode):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    if mode == "train":
        model.train()

        def step():
            opt.zero_grad(set_to_none=True)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                out = model(x, coords)
            out.float().pow(2).mean().backward()
            opt.step()
    else:
        model.eval()

        def step():
            with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
                model(x, coords)
    return step


def time_step(step, warmup=3, repeats=10):
    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    gpu, host = [], []
    for _ in range(repeats):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        t0 = time.perf_counter()
        step()
        host.append((time.perf_counter() - t0) * 1e3)
        b.record()
        b.synchronize()
        gpu.append(a.elapsed_time(b))
    return statistics.median(gpu), statistics.median(host)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--backend", nargs="+", default=["mamba_ssm"])
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 4, 32])
    p.add_argument("--modes", nargs="+", default=["train", "infer"])
    p.add_argument("--out", default="profile_out")
    p.add_argument("--config", default="{}", help="JSON of SAMBAConfig overrides")
    p.add_argument("--stacks", action="store_true", help="also a table of kernels by Python call site")
    args = p.parse_args()
    from samba import SAMBA, SAMBAConfig

    out, dev, coords = cuda_setup(args.out)
    T = int(args.seconds * 128)
    rows = []
    for be in args.backend:
        torch.manual_seed(0)
        cfg = SAMBAConfig(backend=be, **json.loads(args.config))
        model = SAMBA(cfg).to(dev)
        for mode in args.modes:
            for b in args.batches:
                x = torch.randn(b, 19, T, device=dev)
                step = make_step(model, x, coords, mode)
                torch.cuda.reset_peak_memory_stats()
                t0 = time.perf_counter()
                step()
                torch.cuda.synchronize()
                first = time.perf_counter() - t0
                ms, host_ms = time_step(step)
                row = dict(backend=be, mode=mode, batch=b, seconds=args.seconds, ms=round(ms, 3),
                           host_ms=round(host_ms, 3), first_call_s=round(first, 2),
                           peak_mib=round(torch.cuda.max_memory_allocated() / 2**20, 1),
                           eeg_s_per_s=round(b * args.seconds / (ms / 1e3), 1))
                print(json.dumps(row), flush=True)
                rows.append(row)
                del x, step
                torch.cuda.empty_cache()
        # kernel table of one train step at the largest batch
        b = max(args.batches)
        x = torch.randn(b, 19, T, device=dev)
        step = make_step(model, x, coords, "train")
        for _ in range(2):
            step()
        torch.cuda.synchronize()
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA], record_shapes=True,
                     with_stack=args.stacks) as prof:
            for _ in range(2):
                step()
            torch.cuda.synchronize()
        ka = prof.key_averages()
        (out / f"kernels_{be}_train_b{b}.txt").write_text(
            ka.table(sort_by="self_cuda_time_total", row_limit=45, max_name_column_width=70))
        # which torch op (and input shapes) launched them: the elementwise / copy / reduce kernels by caller
        (out / f"ops_{be}_train_b{b}.txt").write_text(prof.key_averages(group_by_input_shape=True).table(
            sort_by="cuda_time_total", row_limit=80, max_name_column_width=50, max_shapes_column_width=90))
        if args.stacks:  # and from which line of the package
            (out / f"stacks_{be}_train_b{b}.txt").write_text(prof.key_averages(group_by_stack_n=4).table(
                sort_by="self_cuda_time_total", row_limit=50, max_name_column_width=50, max_src_column_width=120))
        n_kernels = sum(e.count for e in prof.events() if e.device_type.name == "CUDA") // 2
        rows.append(dict(backend=be, profile_batch=b, cuda_events_per_train_step=n_kernels))
        print("cuda events per train step", n_kernels, flush=True)
        del model, x, step
        torch.cuda.empty_cache()
    doc = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "rows": rows}
    (out / "profile_step.json").write_text(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
