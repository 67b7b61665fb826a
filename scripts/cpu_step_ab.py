#!/usr/bin/env python3
"""usage: python scripts/cpu_step_ab.py BEFORE AFTER [--pairs 8] [--seconds 10] [--batch 8] [--threads 2] [--out FILE]

SAMBA's CPU train step (the benchmark's: `samba.bench.runner.measure_row`, float32, forward + loss + backward +
AdamW, 2 warm-up and 7 timed steps, the median) with the code of two trees, BEFORE and AFTER (folders that hold a
`samba/` package, e.g. ``git worktree add /tmp/before <commit>``), each run in a fresh process, the two alternating
(before, after, before, ...) so that a machine's drift falls on both; the first pair is a warm-up and not counted.
A shared CPU moves single runs by 10 % or more: quote the medians and the spread of the pair ratios. Writes a JSON with
both trees' commits, the device, date, command and every run.
"""
import argparse
import datetime as dt
import json
import platform
import statistics
import subprocess
import sys
from pathlib import Path

_CHILD = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import torch
torch.set_num_threads(int(sys.argv[4]))
from samba.bench.runner import measure_row
r = measure_row("SAMBA", float(sys.argv[2]), int(sys.argv[3]), "train", device="cpu", warmup=2, repeats=7,
                row_cap_s=120)
print(json.dumps({"ms": r["ms"], "repeats": r.get("repeats"), "status": r["status"], "error": r.get("error")}))
"""


def _commit(tree: Path) -> str:
    res = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return res.stdout.strip() if res.returncode == 0 else "unknown"


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="runs/cpu_step_ab.json")
    args = ap.parse_args(argv)
    for tree in (args.before, args.after):
        if not (tree / "samba" / "__init__.py").is_file():
            ap.error(f"{tree} holds no samba/ package")
    if args.pairs < 1:
        ap.error("--pairs must be >= 1")
    runs = []
    for i in range(args.pairs + 1):
        for name, tree in (("before", args.before), ("after", args.after)):
            res = subprocess.run([sys.executable, "-c", _CHILD, str(tree.resolve()), str(args.seconds),
                                  str(args.batch), str(args.threads)], capture_output=True, text=True)
            if res.returncode != 0:
                print(f"cpu_step_ab: error: the {name} tree's step failed: {res.stderr.strip()[-300:]}",
                      file=sys.stderr)
                return 1
            row = json.loads(res.stdout.strip().splitlines()[-1])
            if row["status"] != "ok":  # measure_row records a failing step instead of raising
                print(f"cpu_step_ab: error: the {name} tree's step: {row['status']}: {row['error']}", file=sys.stderr)
                return 1
            runs.append({"tree": name, "pair": i, "warmup": i == 0, **row})
            print(f"pair {i} {name:6s} {row['ms']} ms", flush=True)
    ms = {t: [r["ms"] for r in runs if r["tree"] == t and not r["warmup"]] for t in ("before", "after")}
    ratios = sorted(a / b for a, b in zip(ms["after"], ms["before"]))
    doc = {"what": "SAMBA's CPU train step with two code trees in alternating processes",
           "device": f"{_cpu()}, {args.threads} threads", "date": dt.date.today().isoformat(),
           "torch": __import__("torch").__version__,
           "trees": {"before": _commit(args.before), "after": _commit(args.after)},
           "command": "python scripts/cpu_step_ab.py " + " ".join(sys.argv[1:] if argv is None else argv),
           "step": {"context_s": args.seconds, "batch": args.batch, "mode": "train", "dtype": "float32",
                    "method": "samba.bench.runner.measure_row: 2 warm-up and up to 7 timed steps (each run's repeats), median ms"},
           "median_ms": {t: statistics.median(v) for t, v in ms.items()},
           "after_over_before": {"median": statistics.median(ratios), "min": ratios[0], "max": ratios[-1],
                                 "pairs": len(ratios)},
           "runs": runs}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    tmp.replace(out)
    print(json.dumps({k: doc[k] for k in ("median_ms", "after_over_before")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
