#!/usr/bin/env python3
"""usage: python scripts/cpu_levers.py [--models SAMBA,LUNA] [--out results/bench_cpu_levers.json]

What the usual CPU levers give SAMBA against the fastest foundation-model peer of `results/bench_cpu.json`
(LUNA), each model under each lever in this one process, timed by the benchmark's own `measure_row`
(same inputs, loss, optimizer and median of timed repeats as `samba bench --device cpu`):

- ``eager``: float32, as `samba bench --device cpu` runs every model;
- ``bf16``: the forward under `torch.autocast("cpu", dtype=torch.bfloat16)` (oneDNN bf16 matrix products where
  the CPU has them; SAMBA's scan stays float32 by design, `samba.ops.ssd`);
- ``compile``: `torch.compile(model)` (inductor, float32, recompile limit 64; compiling is not timed);
- ``allocator``: float32 eager, with glibc's malloc told to keep freed memory for reuse
  (`samba.allocator.keep_freed_memory`: blocks up to 32 MiB from the heap instead of fresh ``mmap`` pages, and no
  trimming), so a step's temporaries stop costing page faults. It is process-wide, so it runs last and both models
  get it.

Rows: inference at batch 8 of 10-s and 60-s windows, and the 10-s train step at batch 8, the rows of the
CPU targets. A lever a model cannot take gives an ``error`` row, never a missing one. Writes one JSON with the
rows, the ratio of SAMBA's EEG-seconds per second to the peer's per lever and row, and per row with each model
at its own fastest lever ("best lever"), and its provenance.
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's samba, whichever Python runs the script

LEVERS = ("eager", "bf16", "compile", "allocator")  # "allocator" last: it cannot be undone
ROWS = ((10.0, 8, "infer"), (60.0, 8, "infer"), (10.0, 8, "train"))


def builder_for(lever: str):
    """A `measure_row` builder: the registry's model, its call wrapped in the lever."""
    import torch

    from samba.bench.workloads import build

    def builder(spec, n_times, samba_backend):
        model, call = build(spec, n_times, samba_backend)
        if lever in ("eager", "allocator"):
            return model, call
        if lever == "bf16":
            def bf16_call(m, x):
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    return call(m, x)
            return model, bf16_call
        # every layer width and sequence length of SAMBA's U is one more compile of the same forward: past
        # dynamo's default limit of 8 the remaining layers would silently run eagerly
        torch._dynamo.config.recompile_limit = 64
        compiled = torch.compile(model)  # shares the parameters: the optimizer and train()/eval() still apply

        def compiled_call(m, x):
            return call(compiled, x)
        return model, compiled_call

    return builder


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="SAMBA,LUNA",
                    help="models to time; the ratios compare SAMBA with the first other model named")
    ap.add_argument("--out", default="results/bench_cpu_levers.json")
    ap.add_argument("--row-cap-s", type=float, default=600.0, help="per row; a compile takes minutes")
    args = ap.parse_args(argv)

    import torch

    from samba.allocator import MMAP_THRESHOLD, TRIM_THRESHOLD, keep_freed_memory
    from samba.bench.report import device_name, git_commit, today, versions
    from samba.bench.runner import measure_row
    from samba.bench.workloads import canonical
    from samba.checkpoint import atomic_write_bytes

    models = [canonical(m) for m in args.models.split(",")]
    rows, t0 = [], time.perf_counter()
    for lever in LEVERS:
        unavailable = None
        if lever == "allocator":
            if not keep_freed_memory():  # not glibc, or set by the environment already: the rows say so
                unavailable = "glibc's mallopt not available here, or MALLOC_*_THRESHOLD_ set in the environment"
        for name in models:
            for context_s, batch, mode in ROWS:
                if unavailable:
                    row = {"model": name, "context_s": context_s, "batch": batch, "mode": mode, "ms": None,
                           "eeg_s_per_s": None, "status": "error", "error": unavailable}
                else:
                    row = measure_row(name, context_s, batch, mode, device="cpu", warmup=3, repeats=7,
                                      row_cap_s=args.row_cap_s, builder=builder_for(lever))
                row["lever"] = lever
                rows.append(row)
                print(f"{lever:8s} {name:6s} {context_s:5.0f} s {mode:5s} {row['status']:5s} "
                      f"{row['ms'] if row['ms'] is not None else row.get('error')}", flush=True)
    ratios = {}
    if "SAMBA" in models and len(models) > 1:
        peer = next(m for m in models if m != "SAMBA")
        for lever in LEVERS:
            for context_s, _, mode in ROWS:
                pick = {r["model"]: r for r in rows if r["lever"] == lever and r["context_s"] == context_s
                        and r["mode"] == mode and r["status"] == "ok"}
                if "SAMBA" in pick and peer in pick:
                    ratios[f"{lever} {mode} {context_s:g} s"] = round(pick["SAMBA"]["eeg_s_per_s"]
                                                                      / pick[peer]["eeg_s_per_s"], 3)
        # each model at its own best lever (a lever a model cannot take does not count against it)
        for context_s, _, mode in ROWS:
            best = {}
            for r in rows:
                if r["status"] == "ok" and r["context_s"] == context_s and r["mode"] == mode:
                    best[r["model"]] = max(best.get(r["model"], 0.0), r["eeg_s_per_s"])
            if "SAMBA" in best and peer in best:
                ratios[f"best lever {mode} {context_s:g} s"] = round(best["SAMBA"] / best[peer], 3)
    doc = {"device": device_name("cpu"), "commit": git_commit(), "date": today(), "torch": torch.__version__,
           "versions": versions("cpu"), "threads": torch.get_num_threads(),
           "command": "python scripts/cpu_levers.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "levers": {"eager": "float32, eager (as samba bench --device cpu)",
                      "bf16": "forward under torch.autocast('cpu', dtype=torch.bfloat16)",
                      "compile": "torch.compile(model), inductor, float32; compile not timed",
                      "allocator": f"float32 eager, glibc mallopt(M_MMAP_THRESHOLD={MMAP_THRESHOLD}, "
                                   f"M_TRIM_THRESHOLD={TRIM_THRESHOLD}); process-wide, run last"},
           "cpu_flags_bf16": "avx512_bf16" in Path("/proc/cpuinfo").read_text() if os.path.exists("/proc/cpuinfo")
           else None,
           "samba_over_peer": ratios, "elapsed_s": round(time.perf_counter() - t0, 1), "results": rows}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, (json.dumps(doc, indent=1) + "\n").encode())
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
