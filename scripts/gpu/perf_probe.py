#!/usr/bin/env python3
"""One process, full Triton autotune: where the mamba_ssm-backend step spends its time, and what CUDA
graphs and activation checkpointing change (for docs/performance_log.md).

Rows (JSON lines to stdout and --out/perf_probe.json): eager train/infer at 60 s (GPU ms, host ms, peak);
graphed inference latency (batch 1 x 10 s) and graphed steps at batch 4; 600-s batch-4 train step with
and without activation checkpointing. Kernel tables of the eager train and infer step at --big batch.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from profile_step import cuda_setup, make_step, time_step  # noqa: E402


def timed(fn, repeats=10, warmup=2):
    """Median GPU milliseconds of fn() (profile_step.time_step, host time dropped)."""
    return time_step(fn, warmup=warmup, repeats=repeats)[0]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="probe_out")
    p.add_argument("--big", type=int, default=64)
    p.add_argument("--parts", nargs="+", default=["eager", "profile", "graphs", "memory"])
    p.add_argument("--config", default="{}", help="JSON of SAMBAConfig overrides (every model built here)")
    p.add_argument("--modes", nargs="+", default=["train", "infer"], help="eager part: which steps")
    args = p.parse_args()
    over = json.loads(args.config)
    from samba import SAMBA, SAMBAConfig
    from samba.graphs import GraphedInference, GraphedTrainStep
    from samba.nn.mamba2 import fast_path_switches

    out, dev, coords = cuda_setup(args.out)
    rows = []

    def emit(**row):
        print(json.dumps(row), flush=True)
        rows.append(row)
        (out / "perf_probe.json").write_text(json.dumps({"device": torch.cuda.get_device_name(),
                                                         "torch": torch.__version__, "rows": rows}, indent=1))

    torch.manual_seed(0)
    model = SAMBA(SAMBAConfig(backend="mamba_ssm", **over)).to(dev)
    t0 = time.perf_counter()
    first = "train" if "train" in args.modes else "infer"
    step = make_step(model, torch.randn(2, 19, 7680, device=dev), coords, first)
    step()
    torch.cuda.synchronize()
    emit(part=f"first_{first}_call_s", value=round(time.perf_counter() - t0, 1))

    if "eager" in args.parts:
        for mode in args.modes:
            for b in (4, args.big, 2 * args.big):
                torch.cuda.reset_peak_memory_stats()
                x = torch.randn(b, 19, 7680, device=dev)
                ms, host = time_step(make_step(model, x, coords, mode), repeats=6)
                emit(part="eager", mode=mode, batch=b, seconds=60, ms=round(ms, 3), host_ms=round(host, 3),
                     peak_mib=round(torch.cuda.max_memory_allocated() / 2**20, 1),
                     eeg_s_per_s=round(b * 60 / (ms / 1e3), 1))
        torch.cuda.empty_cache()

    if "profile" in args.parts:
        from torch.profiler import ProfilerActivity, profile
        for mode in ("train", "infer"):
            x = torch.randn(args.big, 19, 7680, device=dev)
            st = make_step(model, x, coords, mode)
            st(); st()
            torch.cuda.synchronize()
            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                st()
                torch.cuda.synchronize()
            (out / f"kernels_mamba_{mode}_b{args.big}.txt").write_text(
                prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=40, max_name_column_width=90))
            n = sum(1 for e in prof.events() if e.device_type.name == "CUDA")
            emit(part="profile", mode=mode, batch=args.big, cuda_kernels_per_step=n)
        torch.cuda.empty_cache()

    if "graphs" in args.parts:
        for b, sec in ((1, 10), (4, 60), (args.big, 60)):
            T = int(sec * 128)
            x = torch.randn(b, 19, T, device=dev)
            r = GraphedInference(model, coords, batch=b, n_times=T)
            ms = timed(lambda: r(x))
            emit(part="graphed", mode="infer", batch=b, seconds=sec, ms=round(ms, 3),
                 eeg_s_per_s=round(b * sec / (ms / 1e3), 1))
            del r
        for b, sec in ((4, 60), (args.big // 2, 60)):
            T = int(sec * 128)
            x = torch.randn(b, 19, T, device=dev)
            m2 = SAMBA(SAMBAConfig(backend="mamba_ssm", **over)).to(dev)
            opt = torch.optim.AdamW(m2.parameters(), lr=1e-4, capturable=True)
            torch.cuda.reset_peak_memory_stats()
            s = GraphedTrainStep(m2, opt, lambda pr, xx: pr.pow(2).mean(), coords, batch=b, n_times=T)
            ms = timed(lambda: s(x))
            emit(part="graphed", mode="train", batch=b, seconds=sec, ms=round(ms, 3),
                 peak_mib=round(torch.cuda.max_memory_allocated() / 2**20, 1),
                 eeg_s_per_s=round(b * sec / (ms / 1e3), 1))
            del s, opt, m2
            torch.cuda.empty_cache()

    if "memory" in args.parts:
        # without checkpointing; one checkpoint per block; one per 10-minute sample (checkpoint_piece_tokens)
        for ck, pieces in ((False, None), (True, None), (True, 600 * 128)):
            m2 = SAMBA(SAMBAConfig(backend="mamba_ssm", activation_checkpointing=ck, checkpoint_piece_tokens=pieces,
                                   **over)).to(dev)
            x = torch.randn(4, 19, 600 * 128, device=dev)
            st = make_step(m2, x, coords, "train")
            st()
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            ms, host = time_step(st, warmup=1, repeats=4)
            emit(part="memory600", activation_checkpointing=ck, checkpoint_piece_tokens=pieces,
                 **fast_path_switches(), batch=4, seconds=600, ms=round(ms, 3),
                 host_ms=round(host, 3), peak_mib=round(torch.cuda.max_memory_allocated() / 2**20, 1))
            del m2, st
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
