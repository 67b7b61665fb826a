"""Rerun units of a committed evaluation here and compare their fold scores with the file's.

    python -m samba.evaluation.recheck results/evaluation.json --device cpu \\
        --units 0:muse-p300:random_init_probe 0:eyes-open-closed:samba_probe --out results/evaluation_recheck.json

Why: an evaluation finished with ``--resume --mixed`` holds units from more than one device (on CUDA the
features and fine-tuning run under bfloat16 autocast, on the CPU in float32). Rerunning some of one device's units
on the other, by the same code, measures how far the device alone moves a fold's score, which says whether the
mixed file's methods can be compared. A unit is ``SEED:TASK:METHOD``; the file's profile and checkpoint are used,
and a checkpoint whose weights are no longer those the file evaluated (``init_sha256``) is refused. Each result
names the commits and devices then and now: a difference is the device's only where the code did not change.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from pathlib import Path

import numpy as np

from .run import PROFILES, atomic_write_json, checkpoint_sha256, device_name, git_commit, run_method

__all__ = ["recheck"]

KEYS = ("balanced_accuracy", "auroc")


def _unit(text: str) -> tuple[int, str, str]:
    seed, _, rest = text.partition(":")
    task, _, method = rest.rpartition(":")  # a task may hold a colon itself (moabb:NAME)
    if not seed.isdigit() or not task or not method:
        raise ValueError(f"a unit is SEED:TASK:METHOD, e.g. 0:muse-p300:random_init_probe; got {text!r}")
    return int(seed), task, method


def recheck(doc: dict, units, device=None, mirror=None, datasets: dict | None = None) -> list[dict]:
    """Per unit ``{unit, commit_then, commit_now, device_then, device_now, n_folds, KEY: {then, now, max_abs_diff}}``
    (means over folds; the largest difference of one fold, NaN folds left out)."""
    from samba.train.finetuning import _load_task

    from . import protocol

    if not isinstance(doc, dict) or doc.get("profile") not in PROFILES or not isinstance(doc.get("tasks"), dict):
        raise ValueError("not an evaluation file (no known profile or no tasks)")
    sha = checkpoint_sha256(doc.get("init"))
    if sha != doc.get("init_sha256"):
        raise ValueError(f"{doc.get('init')} now holds other weights than the file evaluated "
                         f"({str(sha)[:8]} against {str(doc.get('init_sha256'))[:8]})")
    P = PROFILES[doc["profile"]]
    commit_now, device_now = git_commit(), device_name(device)  # once: a subprocess and a device query
    out, loaded = [], dict(datasets or {})
    for seed, task, method in units:
        entry = doc["tasks"].get(task, {}).get("methods", {}).get(method)
        then = [r for r in (entry or {}).get("per_fold", []) if r["seed"] == seed]
        if not then:
            raise ValueError(f"{seed}:{task}:{method} is not in the file")
        if task not in loaded:
            loaded[task] = _load_task(task, mirror, P["data_profile"])
        ds = loaded[task]
        now = run_method(method, ds, protocol.task_folds(ds, P["max_folds"]), seed, P, doc.get("init"), device)
        if [r["fold"] for r in now] != [r["fold"] for r in then]:
            raise ValueError(f"{seed}:{task}:{method}: the folds here differ from the file's (other data?)")
        row = {"unit": f"{seed}:{task}:{method}",
               "commit_then": sorted({r.get("commit", doc.get("commit")) for r in then}), "commit_now": commit_now,
               "device_then": sorted({r.get("device", doc.get("device")) for r in then}),
               "device_now": device_now, "n_folds": len(now)}
        for k in KEYS:
            a = np.array([np.nan if r[k] is None else r[k] for r in then], float)
            b = np.array([np.nan if r[k] is None else r[k] for r in now], float)
            diff = np.abs(a - b)
            row[k] = {"then": float(np.nanmean(a)), "now": float(np.nanmean(b)),
                      "max_abs_diff": float(np.nanmax(diff)) if np.isfinite(diff).any() else None}
        out.append(row)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m samba.evaluation.recheck", description=__doc__.split("\n")[0])
    p.add_argument("json", help="an evaluation file (results/evaluation.json)")
    p.add_argument("--units", nargs="+", required=True, metavar="SEED:TASK:METHOD")
    p.add_argument("--device", default=None)
    p.add_argument("--mirror", default=None, help="default: SAMBA_DATA_MIRROR")
    p.add_argument("--out", default=None, help="also write the results here (JSON, with commit, device, date and "
                   "command)")
    a = p.parse_args(argv)
    from samba.errors import UsageError

    try:
        doc = json.loads(Path(a.json).read_text())
        rows = recheck(doc, [_unit(u) for u in a.units], a.device, a.mirror or os.environ.get("SAMBA_DATA_MIRROR"))
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UsageError(f"recheck: {err}") from None
    if a.out:
        atomic_write_json({"file": a.json, "init": doc.get("init"), "init_sha256": doc.get("init_sha256"),
                           "units": rows, "commit": rows[0]["commit_now"], "device": rows[0]["device_now"],
                           "date": datetime.date.today().isoformat(),
                           "command": "python -m samba.evaluation.recheck " + " ".join(
                               argv if argv is not None else sys.argv[1:])}, a.out)
    print("| unit | then (device) | now (device) | " + " | ".join(f"{k}: then, now, largest fold difference"
                                                                 for k in KEYS) + " |")
    print("|---|---|---|" + "---|" * len(KEYS))
    for r in rows:
        cells = " | ".join(f"{r[k]['then']:.4f}, {r[k]['now']:.4f}, "
                           + ("n/a" if r[k]["max_abs_diff"] is None else f"{r[k]['max_abs_diff']:.4f}") for k in KEYS)
        print(f"| {r['unit']} | {' + '.join(r['device_then'])} | {r['device_now']} | {cells} |")
    return 0


if __name__ == "__main__":
    from samba.errors import run_main

    sys.exit(run_main(main))
