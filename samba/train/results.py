"""Superseded by ``samba.evaluation.run`` (identical folds, controls, 95 % intervals, paired tests); kept only
because notebook 08 still imports ``run_table`` / ``render_table``. The old one-split table, several seeds.

    python -m samba.train.results --profile quick --out results/finetune.json   # tiny table on CPU
    python -m samba.train.results --profile full --pretrained CKPT --seeds 0 1 2 --out ...

Methods:
    samba_pretrained_ft  SAMBA initialised from the pretrained checkpoint, fully fine-tuned
    samba_scratch        the same architecture from random init, same loop
    samba_probe          linear probe (LayerNorm + Linear) on the frozen pretrained encoder, quantile pooling
    eegnet               braindecode EEGNet
    shallowfbcspnet      braindecode ShallowFBCSPNet

A seed fixes the split (by subject where the task allows), the initialisation and the data order; the
split for a seed is shared by all methods. Rows are appended to the JSON as they finish, so a run cut by
its time budget still leaves every finished row.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

TASKS = ("eegmmidb-mi", "eyes-open-closed", "eegmat-workload", "muse-p300")
QUICK_TASKS = ("eyes-open-closed",)  # 2 s windows, 14 channels: a CPU table in minutes
QUICK_PRETRAIN_STEPS = 10
METHODS = {
    "samba_pretrained_ft": dict(model="samba", pretrained=True, mode="full"),
    "samba_scratch": dict(model="samba", pretrained=False, mode="full"),
    "samba_probe": dict(model="samba", pretrained=True, mode="probe"),
    "eegnet": dict(model="eegnet", pretrained=False, mode="full"),
    "shallowfbcspnet": dict(model="shallow", pretrained=False, mode="full"),
}


def git_commit(short: bool = True) -> str:
    """HEAD's hash; $SAMBA_COMMIT where the tree travelled without .git (the GPU machine)."""
    import os

    if os.environ.get("SAMBA_COMMIT") and os.environ["SAMBA_COMMIT"] != "unknown":
        return os.environ["SAMBA_COMMIT"]
    try:
        args = ["git", "rev-parse"] + (["--short"] if short else []) + ["HEAD"]
        return subprocess.run(args, capture_output=True, text=True, check=True,
                              cwd=Path(__file__).resolve().parent).stdout.strip()
    except Exception:
        return "unknown"


def _device_name(device) -> str:
    import torch

    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return torch.cuda.get_device_name(0) if str(dev).startswith("cuda") else "cpu"


def _clean(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def run_table(tasks=TASKS, methods=tuple(METHODS), seeds=(0, 1, 2), profile: str = "quick",
              out: str | Path = "results/finetune.json", pretrained: str | None = None, mirror: str | None = None,
              device: str | None = None, runs_dir: str | Path | None = None, max_minutes: float | None = None,
              epochs: int | None = None) -> Path:
    """Fine-tune every (task, method, seed) and write `out` (JSON: {"meta": ..., "rows": [...]})."""
    from samba.data import split_task

    from .finetuning import _load_task, finetune

    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown methods {unknown}; choose from {list(METHODS)}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if pretrained is None and any(METHODS[m]["pretrained"] for m in methods):
        from .pretraining import PretrainConfig, pretrain

        pt_dir = (Path(runs_dir) if runs_dir else out.parent) / f"pretrain_{profile}"
        print(f"no --pretrained checkpoint: pretraining ({profile} profile) into {pt_dir}", file=sys.stderr)
        steps = QUICK_PRETRAIN_STEPS if profile == "quick" else None
        pretrained = str(pretrain(PretrainConfig(out=str(pt_dir), profile=profile, steps=steps, mirror=mirror,
                                                 device=device, progress=False)))
    meta = {"commit": git_commit(), "device": _device_name(device),
            "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d"), "profile": profile,
            "pretrained": pretrained, "tasks": list(tasks), "methods": list(methods), "seeds": list(seeds)}
    rows: list[dict] = []

    def flush():
        out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")

    datasets = {}
    n_runs, done = len(seeds) * len(tasks) * len(methods), 0
    for seed in seeds:  # seed-major: a cut run still has every task and method for the first seeds
        for task in tasks:
            if task not in datasets:
                datasets[task] = _load_task(task, mirror, profile)
            ds = datasets[task]
            split = split_task(ds, seed=seed)
            for method in methods:
                if max_minutes and (time.perf_counter() - t0) > max_minutes * 60:
                    meta["truncated"] = f"time budget of {max_minutes} min reached"
                    flush()
                    return out
                spec = METHODS[method]
                budget = None
                if max_minutes:  # share what is left equally among the runs still to do
                    budget = max(5.0, (max_minutes * 60 - (time.perf_counter() - t0)) / (n_runs - done))
                done += 1
                run_out = Path(runs_dir) / f"{task}_{method}_seed{seed}" if runs_dir else None
                row = {"task": task, "method": method, "seed": seed}
                try:
                    r = finetune(task, init=pretrained if spec["pretrained"] else "scratch", out=run_out,
                                 profile=profile, mode=spec["mode"], model=spec["model"], seed=seed,
                                 epochs=epochs if spec["mode"] == "full" else None, mirror=mirror,
                                 device=device, dataset=ds, split=split, time_budget_s=budget)
                    row.update({k: _clean(r.get(k)) for k in ("balanced_accuracy", "auroc", "kappa", "f1", "n_train",
                                                              "n_val", "n_test", "subjects", "epochs_run",
                                                              "stopped", "train_s")})
                    row["status"] = "ok"
                except Exception as e:  # one failing baseline must not lose the table
                    row.update({"status": "error", "error": f"{type(e).__name__}: {e}"})
                row.update({"commit": meta["commit"], "device": meta["device"], "date": meta["date"],
                            "profile": profile})
                rows.append(row)
                flush()
                print(json.dumps({k: row.get(k) for k in ("task", "method", "seed", "balanced_accuracy", "auroc",
                                                          "status")}), file=sys.stderr)
    meta["wall_s"] = round(time.perf_counter() - t0, 1)
    flush()
    return out


def render_table(results) -> str:
    """Markdown table: per task and method, balanced accuracy and AUROC as mean ± std over seeds."""
    if isinstance(results, (str, Path)):
        results = json.loads(Path(results).read_text())
    rows = results["rows"] if isinstance(results, dict) else results
    meta = results.get("meta", {}) if isinstance(results, dict) else {}
    order = [m for m in METHODS]
    tasks = list(dict.fromkeys(r["task"] for r in rows))

    def stat(vals):
        vals = [v for v in vals if v is not None]
        if not vals:
            return "n/a"
        if len(vals) == 1:
            return f"{vals[0]:.3f}"
        return f"{np.mean(vals):.3f} ± {np.std(vals, ddof=1):.3f}"

    lines = ["| task | method | balanced accuracy | AUROC | seeds | n_train / n_test |",
             "|---|---|---|---|---|---|"]
    for task in tasks:
        for method in order:
            rs = [r for r in rows if r["task"] == task and r["method"] == method and r.get("status") == "ok"]
            if not rs:
                errs = [r for r in rows if r["task"] == task and r["method"] == method]
                if errs:
                    lines.append(f"| {task} | {method} | error | error | 0 | - |")
                continue
            lines.append(f"| {task} | {method} | {stat([r['balanced_accuracy'] for r in rs])} | "
                         f"{stat([r['auroc'] for r in rs])} | {len(rs)} | {rs[0]['n_train']} / {rs[0]['n_test']} |")
    if meta:
        lines.append("")
        lines.append(f"profile `{meta.get('profile')}`, device {meta.get('device')}, commit {meta.get('commit')}, "
                     f"{meta.get('date')}; mean ± sample std over seeds"
                     + (f"; {meta['truncated']}" if meta.get("truncated") else ""))
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m samba.train.results", description=__doc__.split("\n")[0])
    p.add_argument("--tasks", nargs="+", default=None, help=f"default: all ({' '.join(TASKS)}); "
                   f"quick profile: {' '.join(QUICK_TASKS)}")
    p.add_argument("--methods", nargs="+", default=list(METHODS))
    p.add_argument("--seeds", nargs="+", type=int, default=None, help="default: 0 1 2 (quick: 0 1)")
    p.add_argument("--profile", choices=["quick", "full"], default="quick")
    p.add_argument("--pretrained", default=None, help="pretrained SAMBA checkpoint (default: quick pretrain)")
    p.add_argument("--out", default="results/finetune.json")
    p.add_argument("--markdown", default=None, help="also write the rendered table here")
    p.add_argument("--runs-dir", default=None, help="keep each run's folder (models, spatial weights) here")
    p.add_argument("--max-minutes", type=float, default=None)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--mirror", default=None)
    p.add_argument("--device", default=None)
    a = p.parse_args(argv)
    import os

    tasks = a.tasks or list(QUICK_TASKS if a.profile == "quick" else TASKS)
    seeds = a.seeds if a.seeds is not None else ([0, 1] if a.profile == "quick" else [0, 1, 2])
    path = run_table(tasks, a.methods, seeds, a.profile, a.out, a.pretrained,
                     a.mirror or os.environ.get("SAMBA_DATA_MIRROR"), a.device, a.runs_dir, a.max_minutes, a.epochs)
    table = render_table(path)
    if a.markdown:
        Path(a.markdown).write_text(table)
    print(table, file=sys.stderr)
    print(str(path))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
