#!/usr/bin/env python3
"""usage: python3 scripts/gpu/pretrain_throughput.py LOGS_DIR [--warmup-s 30] [--out results/pretrain_throughput.json]

The pretraining loop's sustained throughput against the benchmark's training step at the same window and batch,
from the logs that ``scripts/gpu/pretrain_full.sh`` returns (logs.tar.gz, unpacked into LOGS_DIR: metrics.csv,
config.json, command.txt, gpu_util.csv, bench_same_batch.json).

    eeg_s_per_s = (eeg_hours[end] - eeg_hours[i]) * 3600 / (wall[end] - wall[i])

where ``i`` is the first logged step at or after ``--warmup-s`` seconds of wall time (Triton compilation and
autotuning done), so validation, checkpoints and snapshots taken in between are part of the time. ``gpu_busy`` is
the mean nvidia-smi ``utilization.gpu`` (the fraction of each 1-s sample in which a kernel ran) over the same
stretch of the run.
"""
import argparse
import csv
import datetime as dt
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from samba.evaluation.run import atomic_write_json  # noqa: E402


def _gpu_busy(path: Path, t_from: float, t_to: float) -> tuple[float, int]:
    """Mean utilisation of the samples between t_from and t_to seconds after the first busy sample."""
    samples = []
    for line in path.read_text().splitlines():
        stamp, util, _ = [p.strip() for p in line.split(",")]
        t = dt.datetime.strptime(stamp, "%Y/%m/%d %H:%M:%S.%f").timestamp()
        samples.append((t, float(util.rstrip(" %"))))
    t0 = next(t for t, u in samples if u > 0)
    window = [u for t, u in samples if t_from <= t - t0 <= t_to]
    return sum(window) / len(window) / 100.0, len(window)


def _graphed(cfg: dict, logs: Path) -> bool:
    """Whether the run's steps were CUDA graphs, as its log says ("CUDA graphs: ..."). A log written before that
    line existed: the config has the cuda_graphs field (it came with the graphed step), not set to False, and no
    --compile (that log's run was on one GPU)."""
    log = (logs / "pretrain.log").read_text(errors="replace")
    if "CUDA graphs: forward, loss and backward captured" in log:
        return True
    if "CUDA graphs: off" in log:
        return False
    return "cuda_graphs" in cfg and cfg["cuda_graphs"] is not False and not cfg.get("compile")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[2])
    p.add_argument("logs")
    p.add_argument("--warmup-s", type=float, default=30.0)
    p.add_argument("--out", default="results/pretrain_throughput.json")
    p.add_argument("--target", type=float, default=0.8)
    p.add_argument("--script", default=None, help="the scripts/gpu/pretrain_full.sh invocation, for the record")
    p.add_argument("--commit", default=None, help="the commit the run's code was at, where the GPU machine's checkout "
                   "reported another (set SAMBA_COMMIT there to avoid this)")
    a = p.parse_args(argv)
    logs = Path(a.logs)
    rows = list(csv.DictReader(open(logs / "metrics.csv")))
    cfg = json.loads((logs / "config.json").read_text())
    bench = json.loads((logs / "bench_same_batch.json").read_text())
    row = next(r for r in bench["results"] if r["mode"] == "train" and r["status"] == "ok")
    wall = [float(r["wall"]) for r in rows]
    i = next(k for k, w in enumerate(wall) if w >= a.warmup_s)
    hours = [float(r["eeg_hours"]) for r in rows]
    rate = (hours[-1] - hours[i]) * 3600 / (wall[-1] - wall[i])
    busy, n_samples = _gpu_busy(logs / "gpu_util.csv", wall[i], wall[-1])
    ratio = rate / row["eeg_s_per_s"]
    doc = {
        "eeg_s_per_s": round(rate, 1),
        "eeg_s_per_s_definition": " ".join(" ".join(__doc__.split("\n\n")[2:4]).split()),
        "bench_eeg_s_per_s": row["eeg_s_per_s"],
        "bench_row": {k: row.get(k) for k in ("model", "context_s", "batch", "mode", "ms", "peak_mib")},
        "bench_command": re.sub(r"/tmp/\S+/", "$LOGS/", bench.get("command") or ""),
        "ratio": round(ratio, 3), "target_ratio": a.target, "met": ratio >= a.target,
        "window_s": cfg["window_s"], "batch": cfg["batch_size"], "steps": int(rows[-1]["step"]),
        "duration_s": round(wall[-1] - wall[i], 1), "measured_from_wall_s": wall[i], "run_wall_s": wall[-1],
        "gpu_busy": round(busy, 3), "gpu_busy_samples": n_samples, "gpu_busy_target": 0.9,
        "checkpointing": f"training state every {cfg['ckpt_every']} steps, the best-validated model whenever the "
                         f"validation loss fell, a snapshot every {cfg['keep_every']} steps",
        "logging": f"metrics.csv every {cfg['log_every']} steps, validation every {cfg['val_every']} steps",
        "loader": "the whole corpus on the GPU (float32, scaled once at start); a batch is an index_select of its "
                  "window indices (copied from pinned memory, asynchronously); augmentation and TSR masks on the "
                  "GPU (per-window draws from a CUDA generator, the electrode subset from a CPU one); loss parts read "
                  "back only at log steps; fused AdamW",
        "step": ("forward, loss and backward replayed as one CUDA graph per montage (electrode subsets as a "
                 "channel mask), gradient clipping, fused AdamW and the schedule eager (samba.train.step)"
                 if _graphed(cfg, logs) else "eager: every kernel launched from Python"),
        "commit": a.commit or bench["commit"], "device": bench["device"], "date": bench["date"],
        "command": (logs / "command.txt").read_text().strip(),
        **({"script": a.script} if a.script else {}),
    }
    atomic_write_json(doc, a.out)
    print(json.dumps({k: doc[k] for k in ("eeg_s_per_s", "bench_eeg_s_per_s", "ratio", "duration_s", "gpu_busy")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
