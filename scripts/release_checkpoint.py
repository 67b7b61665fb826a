#!/usr/bin/env python3
"""usage: python scripts/release_checkpoint.py RUN_DIR --script CMD --call COMMIT,DEVICE,DATE,FROM,TO [--call ...]

Release a pretraining run folder (what `samba pretrain --out RUN_DIR` or scripts/gpu/pretrain_full.sh leaves) as
the repository's checkpoint:

- RUN_DIR/samba_pretrained/ -> checkpoints/samba_pretrained/ with ``extra.run`` recording how it was made: the
  script, and one entry per call of a run continued across calls (commit, device, date, the steps it ran);
  the weights' bytes are copied as they are, only config.json changes, and the manifest is written afresh
  (samba.checkpoint.write_folder, which verifies every file);
- RUN_DIR/metrics.csv -> checkpoints/samba_pretrained_metrics.csv.

The checkpoint is verified (hashes) before anything is written. Then score and draw it: README, "Does
pretraining learn?".
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's samba, whichever Python runs the script


def parse_call(text: str) -> dict:
    """``COMMIT,DEVICE,DATE,FROM,TO`` -> one call's provenance (DEVICE may not hold a comma)."""
    parts = text.split(",")
    if len(parts) != 5:
        raise ValueError(f"--call takes COMMIT,DEVICE,DATE,FROM,TO; got {text!r}")
    commit, device, date, first, last = (p.strip() for p in parts)
    return {"commit": commit, "device": device, "date": date, "steps": [int(first), int(last)]}


def release(run_dir: Path, out: Path, metrics_out: Path, run: dict) -> Path:
    """Copy the run's selected model to ``out`` with ``extra.run = run``, and its metrics to ``metrics_out``."""
    from samba.checkpoint import CONFIG, WEIGHTS, read_verified, verify_files, write_folder

    src = run_dir / "samba_pretrained"
    verify_files(src)  # raises CheckpointError on a missing file or a hash that does not match
    config = json.loads(read_verified(src, CONFIG))
    config.setdefault("extra", {})["run"] = run
    weights = read_verified(src, WEIGHTS)
    write_folder(out, {WEIGHTS: weights, CONFIG: (json.dumps(config, indent=1) + "\n").encode()})
    shutil.copyfile(run_dir / "metrics.csv", metrics_out)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("--script", required=True, help="the command that made the run (recorded as extra.run.script)")
    p.add_argument("--call", action="append", required=True, type=parse_call,
                   help="COMMIT,DEVICE,DATE,FROM,TO for each call of the run, in order")
    p.add_argument("--out", type=Path, default=ROOT / "checkpoints" / "samba_pretrained")
    p.add_argument("--metrics-out", type=Path, default=ROOT / "checkpoints" / "samba_pretrained_metrics.csv")
    a = p.parse_args(argv)
    import importlib.util

    from samba.errors import UsageError

    if importlib.util.find_spec("torch") is None:
        raise UsageError("scripts/release_checkpoint.py needs torch: run it with the project's Python "
                         "(.venv/bin/python after scripts/setup.sh)")
    calls = a.call
    for before, after in zip(calls, calls[1:]):
        if after["steps"][0] != before["steps"][1]:
            p.error(f"calls must continue one another: a call ends at step {before['steps'][1]}, the next starts "
                    f"at {after['steps'][0]}")
    run = {"script": a.script, "calls": calls, "steps": calls[-1]["steps"][1]}
    print(release(a.run_dir, a.out, a.metrics_out, run))
    return 0


if __name__ == "__main__":
    from samba.errors import run_main

    sys.exit(run_main(main))  # a missing or tampered run folder: one line and exit status 2, no traceback
