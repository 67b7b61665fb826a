#!/usr/bin/env python3
"""Run the notebook series in order with papermill (the project's main job).

    python scripts/run_notebooks.py                    # quick CPU profile, every notebook
    python scripts/run_notebooks.py --profile full     # GPU profile (see README)
    python scripts/run_notebooks.py 02 05              # only notebooks whose name starts with 02 / 05

Executed copies go to build/notebooks/ (the committed notebooks stay output-free); figures are
written by the notebooks into figures/. Per-notebook wall times are saved to
build/notebooks/timings.json and printed as a table.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("only", nargs="*", help="prefixes of notebooks to run (default: all)")
    p.add_argument("--profile", default="quick", choices=["quick", "full"])
    p.add_argument("--out", default=str(ROOT / "build" / "notebooks"))
    p.add_argument("--kernel", default="python3")
    args = p.parse_args(argv)

    import papermill as pm

    notebooks = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if args.only:
        notebooks = [nb for nb in notebooks if any(nb.name.startswith(s) for s in args.only)]
    if not notebooks:
        print("no notebooks matched", file=sys.stderr)
        return 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    timings, failed = {}, []
    for nb in notebooks:
        t0 = time.perf_counter()
        print(f"-> {nb.name} ({args.profile})", flush=True)
        try:
            pm.execute_notebook(str(nb), str(out / nb.name), parameters={"profile": args.profile},
                                cwd=str(nb.parent), kernel_name=args.kernel, progress_bar=False)
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
    if failed:
        print(f"{len(failed)} notebook(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
