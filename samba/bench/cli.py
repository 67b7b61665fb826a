"""``samba bench``: parse the arguments first (no torch import), then run, merge or plot."""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from ..cli_args import Parser, positive_float, positive_int
from ..errors import SambaError, UsageError
from .workloads import MODEL_NAMES, SWEEPS


def parser() -> Parser:
    p = Parser(prog="samba bench", description="efficiency benchmark, SAMBA vs braindecode "
                                "peers; prints the JSON path last")
    p.add_argument("--device", choices=("cuda", "cpu"), default=None, help="default: cuda when available")
    p.add_argument("--out", default="results/bench.json", help="JSON file to write")
    p.add_argument("--models", default=None, help=f"comma-separated subset of {','.join(MODEL_NAMES)}")
    p.add_argument("--contexts", default=None, help="comma-separated window lengths in seconds")
    p.add_argument("--batches", default=None, help="comma-separated batch sizes (default: doubling from 8 "
                   "on GPU, 1,8 on CPU)")
    p.add_argument("--quick", action="store_true", help="tiny sizes (tests, smoke runs)")
    p.add_argument("--budget-s", type=positive_float, default=None, help="time budget of the whole run in seconds")
    p.add_argument("--samba-backend", default="auto", choices=("auto", "torch", "triton", "mamba_ssm"))
    p.add_argument("--samba-eager", dest="samba_graphs", action="store_false", default=True,
                   help="CUDA: run SAMBA eagerly instead of as CUDA graphs")
    p.add_argument("--sweeps", default=None,
                   help=f"GPU: comma-separated subset of {','.join(SWEEPS)} (default: all; e.g. one call for the "
                        "throughput sweeps of every model, another for latency,context, then --merge)")
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--no-isolate", dest="isolate", action="store_false", default=None,
                   help="CUDA: run all models in this process (default: one process per model)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--plot", default=None, metavar="DIR", help="also draw the figures into DIR")
    p.add_argument("-q", "--quiet", action="store_true", help="no per-row log on stderr")
    p.add_argument("--merge", nargs="+", default=None, metavar="JSON",
                   help="merge these parts of one run (e.g. one JSON per --sweeps call) into --out; runs nothing")
    return p


def _split(text: str | None, kind, what: str):
    """``"a,b"`` as a list of ``kind``; numbers must be finite and > 0 (a context, a batch)."""
    if not text:
        return None
    try:
        values = [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"--{what} takes comma-separated {kind.__name__} values, got {text!r}") from None
    if kind in (int, float) and not all(math.isfinite(v) and v > 0 for v in values):
        raise UsageError(f"--{what} takes values > 0, got {text!r}")
    return values


def bench_main(argv: list[str] | None = None) -> int:
    a = parser().parse_args(argv)
    err = (lambda s: print(s, file=sys.stderr, flush=True))
    try:
        from ..paths import check_writable_file, user_path
        from . import report

        out = check_writable_file(user_path(a.out))
        if a.merge:
            path = report.merge_bench([user_path(m) for m in a.merge], out)
        else:
            import torch  # only now: `samba bench --help` and argument mistakes stay fast

            from .runner import run_bench

            device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
            path = run_bench(device=device, out=out, models=_split(a.models, str, "models"),
                             contexts_s=_split(a.contexts, float, "contexts"),
                             batches=_split(a.batches, int, "batches"), quick=a.quick, time_budget_s=a.budget_s,
                             samba_backend=a.samba_backend, log=None if a.quiet else err, threads=a.threads,
                             isolate=a.isolate, samba_graphs=a.samba_graphs, sweeps=_split(a.sweeps, str, "sweeps"))
            if not a.child:  # provenance: the command that produced the file, as typed
                doc = json.loads(Path(path).read_text())
                doc["command"] = "samba bench " + " ".join(sys.argv[2:] if argv is None else argv)
                report.write_json(doc, Path(path))
        if not a.quiet and not a.child:
            err(report.table(json.loads(Path(path).read_text())))
        if a.plot:
            for fig in report.plot_bench(path, user_path(a.plot)):
                err(f"figure {fig}")
    except SambaError as e:  # a user's mistake: one line, no traceback
        err(f"samba: error: {e}")
        return e.exit_code
    print(path)
    return 0
