#!/usr/bin/env python3
"""usage: python3 scripts/gpu/night_inference_layouts.py [--hours 8] [--out FILE]

SAMBA's whole-night inference at batch 1 (19 channels at 128 Hz, bf16 autocast, eager, the Mamba2 layers in time
chunks as `samba bench --sweeps context` runs them) with the U-Net on channels-last activations
(`KernelConfig.channels_last_unet`, the default) and channels-first, alternating twice in one process: per setting
four passes, the median of the last three passes' times and the peak of allocated GPU memory during the last pass.
"""
import argparse
import datetime as dt
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=8.0)
    ap.add_argument("--out", default="runs/night_inference_layouts.json")
    args = ap.parse_args(argv)
    import torch

    from samba import SAMBA, SAMBAConfig
    from samba.bench.report import git_commit
    from samba.bench.workloads import coords_1020
    from samba.evaluation.run import atomic_write_json
    from samba.ops import KernelConfig

    if not torch.cuda.is_available():
        print("night_inference_layouts: error: needs a CUDA GPU", file=sys.stderr)
        return 1
    doc = {"device": torch.cuda.get_device_name(0), "commit": git_commit(), "date": dt.date.today().isoformat(),
           "command": " ".join(["python3 scripts/gpu/night_inference_layouts.py", *(argv or sys.argv[1:])]),
           "hours": args.hours, "rows": []}
    x = torch.randn(1, 19, int(args.hours * 3600 * 128), device="cuda")
    coords = torch.as_tensor(coords_1020(), device="cuda")
    for cl in (True, False, True, False):
        model = SAMBA(SAMBAConfig(), kernels=replace(KernelConfig(), channels_last_unet=cl)).cuda().eval()
        ms = []
        for _ in range(4):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            t = time.perf_counter()
            with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
                out = model(x, coords)
            torch.cuda.synchronize()
            ms.append((time.perf_counter() - t) * 1e3)
            del out
        row = {"channels_last_unet": cl, "ms": sorted(ms[1:])[1], "ms_all": ms,
               "peak_mib": torch.cuda.max_memory_allocated() / 2**20}
        doc["rows"].append(row)
        print(row, flush=True)
        del model
        torch.cuda.empty_cache()
    atomic_write_json(doc, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
