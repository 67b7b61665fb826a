#!/usr/bin/env python3
"""usage: python3 scripts/gpu/kernel_sweep.py NAME=SETTINGS [...] [--out FILE] [--budget-s 300] [--peer NAME:TRAIN:INFER]
       [--steps train:256,infer:1024]

Times SAMBA's 60-s benchmark steps, the train step at batch 256 and the inference at batch 1,024 (``--steps`` picks
others; the headline inference in `results/bench_h100.json` is at batch 512), each a CUDA graph under bf16 autocast
exactly as `samba bench` runs them (`samba.bench.runner.measure_row`: 3 warm-up and 7 timed steps, the median),
once per kernel setting, in the order given and in one process, so that settings compare on one machine in one
call. SETTINGS is what ``SAMBA_KERNELS`` takes (`samba.ops.KernelConfig`), empty for the defaults: e.g.

    python3 scripts/gpu/kernel_sweep.py base= chunk32=scan_chunk=32 "tiles=conv_backward_tiles=32,128" base_again=

Give the defaults first and last: the two say how far the machine drifted during the sweep. The JSON (rewritten
after every row, so a call cut short keeps what it measured) holds the device, commit, date, torch and command,
and one row per (setting, step) with the benchmark's fields plus ``variant`` and ``setting``. ``--peer BIOT:512:1024``
adds a peer's train and inference rows at those batches (its best in `results/bench_h100.json`), measured in the
same process after the settings, for a ratio taken within one call (the headline benchmark measures every peer).
"""
import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

STEPS = (("train", 256), ("infer", 1024))  # the headline rows' batches at 60 s
CONTEXT_S = 60


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("variants", nargs="+", help="NAME=SETTINGS (SETTINGS as SAMBA_KERNELS takes them; may be empty)")
    ap.add_argument("--out", default="runs/kernel_sweep.json")
    ap.add_argument("--budget-s", type=float, default=300.0, help="no new row starts after this many seconds")
    ap.add_argument("--peer", default=None, help="NAME:TRAIN_BATCH:INFER_BATCH, e.g. BIOT:512:1024")
    ap.add_argument("--steps", default=",".join(f"{m}:{b}" for m, b in STEPS),
                    help="MODE:BATCH,... timed for each setting (MODE train or infer)")
    args = ap.parse_args(argv)
    try:
        steps = [(m, int(b)) for m, b in (piece.split(":") for piece in args.steps.split(","))]
    except ValueError:
        ap.error(f"--steps must be MODE:BATCH,..., got {args.steps!r}")
    if not steps or any(m not in ("train", "infer") or b < 1 for m, b in steps):
        ap.error(f"--steps: each MODE is train or infer and each BATCH >= 1, got {args.steps!r}")
    peer = None
    if args.peer:
        try:
            name, train_b, infer_b = args.peer.split(":")
            peer = (name, (("train", int(train_b)), ("infer", int(infer_b))))
        except ValueError:
            ap.error(f"--peer must be NAME:TRAIN_BATCH:INFER_BATCH, got {args.peer!r}")
        from samba.bench.workloads import MODEL_NAMES

        if name not in MODEL_NAMES or name == "SAMBA":
            ap.error(f"--peer: unknown peer {name!r}; one of {', '.join(n for n in MODEL_NAMES if n != 'SAMBA')}")
    variants = []
    for v in args.variants:
        name, sep, setting = v.partition("=")
        if not sep or not name:
            ap.error(f"each variant is NAME=SETTINGS, got {v!r}")
        variants.append((name, setting))

    import torch

    from samba.bench.report import git_commit
    from samba.bench.runner import measure_row
    from samba.errors import UsageError
    from samba.evaluation.run import atomic_write_json
    from samba.ops import KernelConfig

    for name, setting in variants:  # a typo fails here, not after minutes of timing
        try:
            KernelConfig.from_env({"SAMBA_KERNELS": setting})
        except UsageError as err:
            ap.error(f"{name}: {err}")
    if not torch.cuda.is_available():
        print("kernel_sweep: error: needs a CUDA GPU", file=sys.stderr)
        return 1
    doc = {"device": torch.cuda.get_device_name(0), "commit": git_commit(),
           "date": dt.date.today().isoformat(), "torch": torch.__version__,
           "command": "python3 scripts/gpu/kernel_sweep.py " + " ".join(args.variants)
           + (f" --peer {args.peer}" if args.peer else "") + f" --steps {args.steps}",
           "context_s": CONTEXT_S, "method": "samba.bench.runner.measure_row: SAMBA as a CUDA graph, bf16 autocast, "
           "3 warm-up and 7 timed steps, median ms; one process, variants in the order given", "rows": []}
    def run(model: str, mode: str, batch: int, name: str, setting: str) -> None:
        row = measure_row(model, CONTEXT_S, batch, mode, device="cuda", warmup=3, repeats=7, row_cap_s=40)
        row.update(variant=name, setting=setting)
        doc["rows"].append(row)
        print(f"{name:14s} {model:6s} {mode:5s} b{batch:<5d} {row['status']:5s} {row.get('ms')} ms "
              f"[{row.get('ms_min')}, {row.get('ms_max')}] {row.get('eeg_s_per_s')} EEG-s/s {row.get('error', '')}",
              flush=True)
        atomic_write_json(doc, args.out)

    t0 = time.perf_counter()
    plan = [(name, setting, mode, batch) for name, setting in variants for mode, batch in steps]
    for i, (name, setting, mode, batch) in enumerate(plan):
        if time.perf_counter() - t0 > args.budget_s:
            print(f"budget spent: {len(plan) - i} rows not run, from {name} {mode}", flush=True)
            break
        os.environ["SAMBA_KERNELS"] = setting  # read when the row builds its model (KernelConfig.from_env)
        run("SAMBA", mode, batch, name, setting)
    if peer is not None:
        os.environ.pop("SAMBA_KERNELS", None)
        for mode, batch in peer[1]:
            run(peer[0], mode, batch, "peer", "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
