#!/usr/bin/env python3
"""Run the notebook series in order with papermill (the project's main job).

    python scripts/run_notebooks.py                                  # quick CPU profile, every notebook
    python scripts/run_notebooks.py 02 05                            # notebooks whose name starts with 02 / 05
    python scripts/run_notebooks.py --profile full --write-figures   # deliberate GPU run: rewrites figures/

Executed copies go to build/notebooks/ (the committed notebooks stay output-free), figures to
build/figures/ (samba.paths.figures_dir), runs to build/runs/: a run leaves the checkout clean. Only
``--write-figures`` (full profile) lets the notebooks overwrite the committed figures/, and then writes
figures/notebooks_provenance.json (commit, device, date, command) to commit beside them.
Per-notebook wall times are saved to build/notebooks/timings.json and printed as a table.
Relative paths in SAMBA_DATA_MIRROR / SAMBA_DATA_DIR are read from the directory this was started in.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's samba, whichever Python runs the script

from samba.paths import absolutize_env, build_dir, user_path  # noqa: E402

KERNEL = "samba"  # registered inside the environment by scripts/setup.sh


def default_kernel() -> str:
    """"samba" when this environment has it (scripts/setup.sh), else the environment's own python3."""
    from jupyter_client.kernelspec import KernelSpecManager

    return KERNEL if KERNEL in KernelSpecManager().find_kernel_specs() else "python3"


def provenance(args) -> dict:
    """Commit, device, date and command of a run that writes committed figures."""
    def git(*a):
        try:
            return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        except OSError:
            return ""
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({platform.processor() or platform.machine()})"
    return {"commit": git("rev-parse", "--short", "HEAD"), "dirty": bool(git("status", "--porcelain")),
            "device": device, "torch": torch.__version__, "profile": args.profile,
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
            "command": "python scripts/run_notebooks.py " + " ".join(sys.argv[1:])}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("only", nargs="*", help="prefixes of notebooks to run (default: all)")
    p.add_argument("--profile", default="quick", choices=["quick", "full"])
    p.add_argument("--out", default=None, help="folder for the executed notebooks (default: build/notebooks)")
    p.add_argument("--kernel", default=None, help="Jupyter kernel (default: 'samba' when registered, else python3)")
    p.add_argument("--write-figures", action="store_true",
                   help="let the notebooks overwrite the committed figures/ (only with --profile full)")
    args = p.parse_args(argv)
    if args.write_figures and args.profile != "full":
        p.error("--write-figures needs --profile full: committed figures come from the full run only")
    # Before any kernel starts (kernels run in notebooks/): paths typed relative to this directory.
    absolutize_env()
    os.environ["SAMBA_WRITE_FIGURES"] = "1" if args.write_figures else "0"
    os.environ.setdefault("MPLBACKEND", "Agg")

    import papermill as pm

    kernel = args.kernel or default_kernel()

    notebooks = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if args.only:
        notebooks = [nb for nb in notebooks if any(nb.name.startswith(s) for s in args.only)]
    if not notebooks:
        print("no notebooks matched", file=sys.stderr)
        return 1
    # taken before the run: "dirty" must describe the code that ran, not the figures the run writes
    record = provenance(args) if args.write_figures else None
    out = user_path(args.out) if args.out else build_dir("notebooks")
    out.mkdir(parents=True, exist_ok=True)
    print(f"kernel {kernel}, profile {args.profile}, executed notebooks -> {out}", flush=True)
    timings, failed = {}, []
    for nb in notebooks:
        t0 = time.perf_counter()
        print(f"-> {nb.name} ({args.profile})", flush=True)
        try:
            pm.execute_notebook(str(nb), str(out / nb.name), parameters={"profile": args.profile},
                                cwd=str(nb.parent), kernel_name=kernel, progress_bar=False)
        except Exception as e:  # keep going so one failure shows all failures
            failed.append(nb.name)
            print(f"   FAILED: {type(e).__name__}: {str(e)[:2000]}", flush=True)
        timings[nb.name] = round(time.perf_counter() - t0, 1)
        print(f"   {timings[nb.name]:.1f} s", flush=True)
    (out / "timings.json").write_text(json.dumps({"profile": args.profile, "seconds": timings}, indent=1))
    print("\n| notebook | seconds |\n|---|---|")
    for k, v in timings.items():
        print(f"| {k} | {v} |")
    print(f"| total | {sum(timings.values()):.1f} |")
    if args.write_figures:
        target = ROOT / "figures" / "notebooks_provenance.json"  # committed with the figures it describes
        target.write_text(json.dumps(record, indent=1) + "\n")
        print(f"provenance of figures/: {target}")
    if failed:
        print(f"{len(failed)} notebook(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
