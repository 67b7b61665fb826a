"""The benchmark's JSON: its schema, provenance, summary against the targets, merging, and tables.

The JSON follows the public "Benchmark JSON" contract (``device``, ``commit``, ``date``, ``torch``, one
``results`` row per model, context, batch and mode with ``status`` ``ok`` | ``oom`` | ``error``) and
extends it: top-level ``versions``, ``samba_backend``, ``samba_execution``, ``kernels`` (SAMBA's kernel
settings, ``model.kernels.to_dict()``), ``dtype``, ``profile``, ``method``, ``summary`` ...; row keys
``sweep``, ``n_times``, ``repeats``, ``ms_min``, ``ms_max``, ``params``, ``realtime_factor``, ``reason``;
and the status ``skipped`` (a row the time budget did not reach, with a ``reason``). Figures are drawn
from it by :func:`plot_bench`. A JSON's stored ``summary`` is what the code of its commit computed;
``summarize(doc["results"])`` reads the same rows against the current :data:`TARGETS`.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path

from ..errors import InputError
from .peers import BASELINES
from .workloads import CHANNELS_1020, SWEEPS, is_peer

SCHEMA_VERSION = 1
STATUSES = ("ok", "oom", "error", "skipped")
ROW_FIELDS = ("model", "context_s", "sfreq", "batch", "mode", "ms", "peak_mib", "eeg_s_per_s", "status")

# A reference run on one H100 80GB (bf16 autocast, 2026-11-27) of the authors' SAMBA and of the peers:
# best EEG-s/s at a saturating batch. The figures show it beside our own measurements.
AUTHORS_REFERENCE = {
    "device": "NVIDIA H100 80GB HBM3",
    "throughput": {  # model: {(context_s, mode): eeg_s_per_s}
        "BIOT": {(10, "train"): 91_900, (60, "train"): 91_500, (60, "infer"): 226_700},
        "LUNA": {(10, "train"): 66_700, (60, "train"): 49_300, (60, "infer"): 150_600},
        "CBraMod": {(10, "train"): 29_800, (60, "train"): 39_700, (60, "infer"): 146_500},
        "authors' SAMBA": {(10, "train"): 18_200, (60, "train"): 27_800, (60, "infer"): 100_400},
        "Labram": {(10, "train"): 27_000, (60, "train"): 9_000, (60, "infer"): 24_700},
        "EEGPT": {(10, "train"): 6_400, (60, "train"): 6_400, (60, "infer"): 22_400},
    },
    # batch 4, 600 s, train step: (ms, peak GiB)
    "context_600s_batch4_train": {"authors' SAMBA": (136, 6.4), "CBraMod": (80, 5.3), "LUNA": (148, 28.5),
                                  "EEGPT": (377, 64.0)},
}

# SAMBA's efficiency targets (bf16 on the GPU, the paper-default model, the 19-channel 10-20 montage at 128 Hz).
# Throughput targets are multiples of the best foundation-model peer's (BIOT, CBraMod, LUNA, LaBraM, EEGPT; EEGNet
# is a floor, not a peer: peers.BASELINES) at the same window; whole-night targets read the context sweep at batch 1;
# CPU targets compare with the best foundation-model peer of the same run at the same window and batch 8.
TARGETS = {
    # GPU: best EEG-s/s over the throughput sweep's batches, SAMBA / best peer, 60-s windows
    "train_60s_vs_best_peer": 1.5,
    "infer_60s_vs_best_peer": 2.0,
    # GPU: whole night at batch 1 (context sweep): peak memory below, step time below
    "infer_8h_batch1_peak_gib": 4.0,
    "infer_8h_batch1_ms": 1000.0,
    "train_1h_batch1_peak_gib": 4.0,
    "train_8h_batch1_peak_gib": 40.0,
    # CPU (`samba bench --device cpu`): SAMBA / best peer at batch 8; the train step at least as fast as the peers'
    "cpu_infer_10s_vs_best_peer": 1.5,
    "cpu_infer_60s_vs_best_peer": 1.5,
    "cpu_train_vs_best_peer": 1.0,
    # The pretraining loop's EEG-s/s over the benchmark's train throughput at the same window and batch. Not a
    # benchmark row: measured from a pretraining run, never by summarize().
    "pretrain_loop_vs_bench_train": 0.8,
}
# (target key, context_s, mode, peak memory or step time) of the whole-night targets, all at batch 1
WHOLE_NIGHT = (("infer_8h_batch1_peak_gib", 28800, "infer", "peak_gib"), ("infer_8h_batch1_ms", 28800, "infer", "ms"),
               ("train_1h_batch1_peak_gib", 3600, "train", "peak_gib"),
               ("train_8h_batch1_peak_gib", 28800, "train", "peak_gib"))
CPU_BATCH = 8


# --------------------------------------------------------------------------- provenance
def package_version(name: str) -> str | None:
    try:
        from importlib.metadata import version
        return version(name)
    except Exception:
        return None


def git_commit() -> str:
    """The checkout's short commit (``SAMBA_COMMIT`` overrides it, e.g. on a machine without git)."""
    if os.environ.get("SAMBA_COMMIT"):
        return os.environ["SAMBA_COMMIT"]
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"
    except Exception:
        return "unknown"


def device_name(device: str) -> str:
    import torch

    if device == "cuda":
        return torch.cuda.get_device_name()
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU {name} ({torch.get_num_threads()} threads)"


def versions(device: str) -> dict:
    import numpy as np
    import torch

    v = package_version
    return {"braindecode": v("braindecode"), "mamba_ssm": v("mamba_ssm") or v("mamba-ssm"), "triton": v("triton"),
            "mne": v("mne"), "numpy": np.__version__, "python": platform.python_version(), "samba": v("samba-eeg"),
            "cuda": torch.version.cuda if device == "cuda" else None}


def today() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d")


def method(prof, device: str, threads: int) -> dict:
    """How every row was measured (the JSON's ``method``)."""
    return {"warmup": prof.warmup, "repeats": prof.repeats, "statistic": "median",
            "timer": "cuda events" if device == "cuda" else "perf_counter",
            "row_cap_s": prof.row_cap_s, "budget_s": prof.budget_s, "montage": list(CHANNELS_1020),
            "train_step": "forward + loss (SAMBA: MSE to zeros; peers: CE on 2 logits) + backward + AdamW",
            "infer": "forward under torch.inference_mode (SAMBA when not a CUDA graph: torch.no_grad)",
            "threads": threads}


STATUS_MEANINGS = {"ok": "measured", "oom": "out of memory (error field)", "error": "raised (error field)",
                   "skipped": "not run: time budget spent, a shorter context ran out of memory, or the run was "
                              "interrupted (reason field)"}


def document(rows: list[dict], *, device: str, device_label: str, prof, samba_backend: str, samba_graphs: bool,
             backend_note: str | None, complete: bool, elapsed_s: float, notes: list[str]) -> dict:
    """The whole benchmark JSON for the rows measured so far."""
    import torch

    from .workloads import SAMBA_CHECKPOINT_FROM_S, SAMBA_CHECKPOINT_KERNELS

    doc = {
        "device": device_label,
        "commit": git_commit(),
        "date": today(),
        "torch": torch.__version__,
        "versions": versions(device),
        "samba_backend": {"requested": samba_backend,
                          "used": next((r["samba_backend"] for r in rows if r.get("samba_backend")), None),
                          "mamba_ssm_unavailable": backend_note},
        "samba_execution": ({"cuda_graphs": samba_graphs, "activation_checkpointing_train_from_s": SAMBA_CHECKPOINT_FROM_S,
                             "activation_checkpointing_pieces": "one sample per piece",
                             "activation_checkpointing_kernels": SAMBA_CHECKPOINT_KERNELS}
                            if device == "cuda" else {"cuda_graphs": False}),
        # SAMBA's kernel settings as its model reports them (None: no SAMBA row, or a model without them); those of
        # each row are in the row (checkpointed train rows add activation_checkpointing_kernels)
        "kernels": next((r["kernels"] for r in rows if r.get("kernels")), None),
        "dtype": "bf16-autocast" if device == "cuda" else "float32",
        "profile": prof.name,
        "sweeps": list(prof.sweeps),
        "schema_version": SCHEMA_VERSION,
        "complete": complete,
        "statuses": STATUS_MEANINGS,
        "method": method(prof, device, torch.get_num_threads()),
        "elapsed_s": round(elapsed_s, 1),
        "notes": notes,
        "results": rows,
    }
    doc["summary"] = summarize(rows)
    return doc


# --------------------------------------------------------------------------- summary against the targets
def _why_not(rows: list[dict], default: str = "no row for it in this run") -> str:
    """Why a target has no value: the first matching row's status and reason, else ``default``."""
    return next((f'{r["status"]}: {r.get("reason") or r.get("error")}' for r in rows if r["status"] != "ok"), default)


def _not_measured(key: str, why: str) -> dict:
    return {"value": None, "target": TARGETS[key], "met": None, "not_measured": why}


def _vs_best_peer(key: str, ours: dict | None, peers: list[dict], tried: list[dict], peer_names) -> dict:
    """SAMBA's EEG-s/s over the best foundation-model peer's (``ours`` and ``peers``: rows or best-of rows).
    ``tried``: every row of this comparison (for why it is missing); ``peer_names``: the run's peers."""
    if ours is None:
        return _not_measured(key, _why_not([r for r in tried if r["model"] == "SAMBA"]))
    if not peers:
        return _not_measured(key, "no foundation-model peer has an ok row for it in this run")
    top = max(peers, key=lambda v: v["eeg_s_per_s"])
    ratio = ours["eeg_s_per_s"] / top["eeg_s_per_s"]
    entry = {"value": round(ratio, 3), "target": TARGETS[key], "met": ratio >= TARGETS[key], "best_peer": top["model"],
             "samba_eeg_s_per_s": ours["eeg_s_per_s"], "samba_batch": ours["batch"],
             "best_peer_eeg_s_per_s": top["eeg_s_per_s"], "best_peer_batch": top["batch"]}
    missing = {m: _why_not([r for r in tried if r["model"] == m]) for m in peer_names
               if not any(p["model"] == m for p in peers)}
    if missing:  # a peer without a value cannot be the best: say so beside the ratio
        entry["peers_not_measured"] = missing
    return entry


def summarize(results: list[dict]) -> dict:
    """Best throughput per (model, context, mode), each target's value against :data:`TARGETS` (whether met, the
    peer it is compared with, or why not measured), and informative values that are no target.

    GPU runs (sweeps throughput / latency / context) report the 60-s throughput targets and the whole-night targets
    (context sweep, batch 1, 1 h and 8 h); CPU runs (sweep realtime) the CPU targets at batch 8. A target whose rows
    are not in the run says so (``not_measured``): e.g. the throughput sweep and the whole-night rows are separate
    calls, each JSON reports the other's targets as not measured.
    """
    ok = [r for r in results if r["status"] == "ok"]
    best: dict = {}
    for r in ok:
        if r.get("sweep") in ("throughput", "realtime"):
            key = (r["model"], r["context_s"], r["mode"])
            if key not in best or r["eeg_s_per_s"] > best[key]["eeg_s_per_s"]:
                best[key] = {"model": r["model"], "context_s": r["context_s"], "mode": r["mode"],
                             "batch": r["batch"], "eeg_s_per_s": r["eeg_s_per_s"], "peak_mib": r["peak_mib"]}
    out: dict = {"best": sorted(best.values(), key=lambda d: (d["context_s"], d["mode"], -d["eeg_s_per_s"]))}
    peer_names = list(dict.fromkeys(r["model"] for r in results if is_peer(r["model"]) and r.get("sweep") != "all"))
    targets: dict = {}
    cpu = any(r.get("sweep") == "realtime" for r in results)
    if not cpu and any(r.get("sweep") in SWEEPS for r in results):  # a GPU run
        for mode in ("train", "infer"):
            key = f"{mode}_60s_vs_best_peer"
            tried = [r for r in results
                     if r.get("sweep") == "throughput" and r["context_s"] == 60 and r["mode"] == mode]
            targets[key] = _vs_best_peer(key, best.get(("SAMBA", 60, mode)),
                                         [v for (m, c, md), v in best.items() if is_peer(m) and c == 60 and md == mode],
                                         tried, peer_names)
        for key, ctx, mode, what in WHOLE_NIGHT:
            rows = [r for r in results if r["model"] == "SAMBA" and r.get("sweep") == "context" and r["batch"] == 1
                    and r["context_s"] == ctx and r["mode"] == mode]
            r = next((r for r in rows if r["status"] == "ok"), None)
            value = None if r is None else (r["ms"] if what == "ms" else
                                            r["peak_mib"] / 1024 if r.get("peak_mib") is not None else None)
            if value is None:
                targets[key] = _not_measured(key, "no peak memory in the row" if r is not None else _why_not(rows))
                continue
            targets[key] = {"value": round(value, 3), "target": TARGETS[key], "met": value < TARGETS[key],
                            "context_s": ctx, "batch": 1, "mode": mode, "ms": r["ms"], "peak_mib": r["peak_mib"]}
    if cpu:
        for ctx in (10, 60):
            key = f"cpu_infer_{ctx}s_vs_best_peer"
            tried = [r for r in results if r.get("sweep") == "realtime" and r["context_s"] == ctx
                     and r["mode"] == "infer" and r["batch"] == CPU_BATCH]
            done = [r for r in tried if r["status"] == "ok"]
            targets[key] = _vs_best_peer(key, next((r for r in done if r["model"] == "SAMBA"), None),
                                         [r for r in done if is_peer(r["model"])], tried, peer_names)
        train = [r for r in results if r["mode"] == "train" and r["batch"] == CPU_BATCH]
        key = "cpu_train_vs_best_peer"
        if not train:
            targets[key] = _not_measured(key, f"no CPU train rows at batch {CPU_BATCH} in this run (e.g. a "
                                              "--quick run, or one limited to other batches)")
        else:  # the worst window decides
            per_window = {}
            for ctx in sorted({r["context_s"] for r in train}):
                tried = [r for r in train if r["context_s"] == ctx]
                done = [r for r in tried if r["status"] == "ok"]
                per_window[ctx] = _vs_best_peer(key, next((r for r in done if r["model"] == "SAMBA"), None),
                                                [r for r in done if is_peer(r["model"])], tried, peer_names)
            measured = [v for v in per_window.values() if v["value"] is not None]
            worst = min(measured, key=lambda v: v["value"]) if measured else next(iter(per_window.values()))
            targets[key] = {**worst, "per_window": {f"{c:g}": v for c, v in per_window.items()}}
    out["targets"] = targets
    informative: dict = {}
    lat = [r for r in ok if r["model"] == "SAMBA" and r.get("sweep") == "latency"]
    if lat:
        informative["latency_10s_batch1_ms"] = lat[0]["ms"]
    for r in ok:
        if r["model"] == "SAMBA" and r.get("sweep") == "context" and r["context_s"] == 600:
            informative[f'context_600s_batch{r["batch"]}_{r["mode"]}'] = {"ms": r["ms"], "peak_mib": r["peak_mib"]}
    rtf = [r["realtime_factor"] for r in ok if r["model"] == "SAMBA" and r.get("realtime_factor") and r["batch"] == 1]
    if rtf:
        informative["cpu_realtime_factor_batch1_min"] = round(min(rtf), 1)
    if informative:
        out["informative"] = informative
    return out


# --------------------------------------------------------------------------- files
def _json_default(o):
    import numpy as np

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    raise TypeError(type(o))


def write_json(doc: dict, out: Path) -> Path:
    """Write atomically (a temporary file renamed over ``out``): a killed run never leaves half a JSON."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1, default=_json_default))
    tmp.replace(out)
    return out


def read_bench(path) -> dict:
    """A benchmark JSON, or :class:`InputError` naming the file."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
        if not isinstance(doc, dict) or not isinstance(doc.get("results"), list):
            raise ValueError("no 'results' list")
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: not a `samba bench` JSON ({e}); pass a file written by `samba bench --out`") from e
    return doc


# the fields that make rows comparable: parts of one run must agree on all of them
_SAME_RUN = ("device", "commit", "torch", "samba_execution", "kernels", "samba_backend", "dtype", "profile",
             "schema_version")


def merge_bench(paths, out: Path | str, note: str | None = None) -> Path:
    """Merge the JSONs of one benchmark split across calls (``--sweeps``) into one, and return its path.

    The parts must come from the same device, commit, torch and SAMBA execution (else the rows would not be
    comparable: :class:`InputError` names the field), and no (model, context, batch, mode, sweep) row may appear
    twice. Rows keep their order; sweeps, notes and ``complete`` are combined, ``elapsed_s`` summed, the
    summary recomputed from all rows, and ``merged_from`` lists each part's file name, sweeps, date and
    elapsed time. ``note`` is appended to ``notes``."""
    if len(paths) < 2:
        raise InputError("merge_bench needs at least two JSON files; pass every part of the run")
    docs = [(Path(p), read_bench(p)) for p in paths]
    first = docs[0][1]
    for path, doc in docs[1:]:
        for key in _SAME_RUN:
            if doc.get(key) != first.get(key):
                raise InputError(f"{path.name} differs from {docs[0][0].name} in {key!r}: {doc.get(key)!r} vs "
                                 f"{first.get(key)!r}; only parts of one run (same card, commit, settings) merge")
    rows, seen = [], set()
    for path, doc in docs:
        for r in doc["results"]:
            key = (r["model"], r["context_s"], r["batch"], r["mode"], r.get("sweep"))
            if key in seen:
                raise InputError(f"row {key} appears twice (again in {path.name}); merge each part once")
            seen.add(key)
            rows.append(r)
    merged = {k: v for k, v in first.items() if k not in ("results", "summary", "notes")}
    merged["sweeps"] = [w for w in SWEEPS if any(w in d.get("sweeps", SWEEPS) for _, d in docs)]
    merged["complete"] = all(d.get("complete") for _, d in docs)
    merged["elapsed_s"] = round(sum(d.get("elapsed_s") or 0 for _, d in docs), 1)
    merged["merged_from"] = [{"file": p.name, "sweeps": d.get("sweeps"), "date": d.get("date"),
                              "elapsed_s": d.get("elapsed_s"), "complete": d.get("complete")} for p, d in docs]
    merged["date"] = max(d.get("date", "") for _, d in docs)
    notes = [n for _, d in docs for n in (d.get("notes") or [])] + ([note] if note else [])
    if notes:
        merged["notes"] = notes
    merged["results"] = rows
    merged["summary"] = summarize(rows)
    return write_json(merged, Path(out))


# --------------------------------------------------------------------------- text
def format_row(r: dict) -> str:
    head = f'{r["model"]:8s} {r["mode"]:5s} {r["context_s"]:>5}s b={r["batch"]:<5}'
    if r["status"] == "ok":
        mem = f'{r["peak_mib"]:9.0f} MiB' if r.get("peak_mib") is not None else ""
        return f'{head} {r["ms"]:10.2f} ms {r["eeg_s_per_s"]:12.0f} EEG-s/s {mem}'
    return f'{head} {r["status"]}: {r.get("error") or r.get("reason")}'


def table(doc: dict) -> str:
    lines = [f'{doc["device"]}  torch {doc["torch"]}  commit {doc["commit"]}  {doc["profile"]}  '
             f'{doc["elapsed_s"]} s']
    for b in doc["summary"]["best"]:
        lines.append(f'best {b["model"]:8s} {b["mode"]:5s} {b["context_s"]:>4}s b={b["batch"]:<5} '
                     f'{b["eeg_s_per_s"]:12.0f} EEG-s/s')
    for k, v in doc["summary"]["targets"].items():
        lines.append(f"target {k}: {v}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- figures
_COLORS = {"SAMBA": "#d62728", "BIOT": "#1f77b4", "CBraMod": "#2ca02c", "LUNA": "#9467bd", "Labram": "#8c564b",
           "EEGPT": "#e377c2", "EEGNet": "#7f7f7f", "authors' SAMBA": "#ff9896"}
_REFERENCE_LABEL = "reference run, H100 80GB"


def _save_figure(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def _log_axes(ax, xlabel: str, ylabel: str):
    """Log-log axes with plain tick labels (0.5, 2, 600 rather than 5 x 10^-1)."""
    from matplotlib.ticker import FuncFormatter

    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "25" else ""))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)


_BATCH_MARKERS = "osD^vP*"


def _plot_context(rows, models, title, reference, path: Path) -> Path:
    """Step time and peak memory against context, one line per model, mode and batch (log axes, one context axis
    shared by both panels; failed lengths marked x). The whole-night targets (batch 1) are drawn where the rows
    reach their context."""
    import matplotlib.pyplot as plt

    batches = sorted({r["batch"] for r in rows})
    fig, axes = plt.subplots(1, 2, figsize=(11.5, 4.6), sharex=True)
    for name in models:
        c = _COLORS.get(name)
        for b, marker in zip(batches, _BATCH_MARKERS):
            for mode, ls in (("train", "-"), ("infer", ":")):
                rr = sorted((r for r in rows if r["model"] == name and r["mode"] == mode and r["batch"] == b),
                            key=lambda r: r["context_s"])
                ok = [r for r in rr if r["status"] == "ok"]
                if not ok:
                    continue
                label = f"{name}, {mode}" + (f", batch {b}" if len(batches) > 1 else "")
                axes[0].plot([r["context_s"] for r in ok], [r["ms"] for r in ok], ls=ls, marker=marker, color=c,
                             label=label, ms=4)
                mem = [r for r in ok if r.get("peak_mib") is not None]
                if mem:  # CPU runs have no peak memory
                    axes[1].plot([r["context_s"] for r in mem], [r["peak_mib"] / 1024 for r in mem], ls=ls,
                                 marker=marker, color=c, label=label, ms=4)
                for r in rr:
                    if r["status"] in ("oom", "error"):
                        axes[0].plot(r["context_s"], ok[-1]["ms"], "x", color=c, ms=8)
    if reference and 4 in batches and any(r["context_s"] == 600 for r in rows):  # the reference row: batch 4, 600 s
        ms, gib = AUTHORS_REFERENCE["context_600s_batch4_train"]["authors' SAMBA"]
        c = _COLORS["authors' SAMBA"]
        axes[0].plot(600, ms, "*", color=c, ms=12, label=f"authors' SAMBA, train, batch 4 ({_REFERENCE_LABEL})")
        axes[1].plot(600, gib, "*", color=c, ms=12, label=f"authors' SAMBA, train, batch 4 ({_REFERENCE_LABEL})")
    drawn = set()
    for key, ctx, mode, what in WHOLE_NIGHT:  # each target where its row (SAMBA, batch 1) is in the sweep
        if not any(r["model"] == "SAMBA" and r["batch"] == 1 and r["context_s"] == ctx and r["mode"] == mode
                   for r in rows):
            continue
        ax, target = axes[0 if what == "ms" else 1], TARGETS[key]
        ax.hlines(target, ctx / 1.5, ctx * 1.5, colors="k", linestyles="--" if mode == "train" else "-.", lw=1.2,
                  label=None if id(ax) in drawn else "target (SAMBA, batch 1): below the dash")
        drawn.add(id(ax))
        limit = f"{target / 1e3:g} s" if what == "ms" else f"{target:g} GiB"
        ax.annotate(f"{ctx / 3600:g} h {mode} < {limit}", (ctx, target), textcoords="offset points", xytext=(0, 4),
                    ha="center", va="bottom", fontsize=7)
    axes[0].set_title("step time", fontsize=9)
    axes[1].set_title("peak GPU memory (torch.cuda.max_memory_allocated)", fontsize=9)
    _log_axes(axes[0], "context (s)", "step time (ms)")
    _log_axes(axes[1], "context (s)", "peak memory (GiB)")
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:  # (a CPU run has no peak memory)
            ax.legend(fontsize=6, loc="upper left")
    what = ", ".join(str(b) for b in batches)
    fig.suptitle(f"Context sweep at batch {what} (solid: train step, dotted: inference; x: failed)\n{title}",
                 fontsize=9)
    return _save_figure(fig, path)


def _legend_name(name: str) -> str:
    if name == "authors' SAMBA":
        return f"{name} ({_REFERENCE_LABEL})"
    return f"{name} (a floor, not a peer)" if name in BASELINES else name


def _plot_throughput(rows, models, title, reference, path: Path) -> Path:
    """Best EEG-s/s at 10-s train, 60-s train and 60-s inference; each throughput target (a multiple of the best
    foundation-model peer) as a dashed mark over SAMBA's bar."""
    import matplotlib.pyplot as plt
    import numpy as np

    groups = [(10, "train"), (60, "train"), (60, "infer")]
    best: dict = {}
    for r in rows:
        k = (r["model"], r["context_s"], r["mode"])
        best[k] = max(best.get(k, 0.0), r["eeg_s_per_s"])
    names = [m for m in models if any(k[0] == m for k in best)] + (["authors' SAMBA"] if reference else [])
    fig, ax = plt.subplots(figsize=(11, 4.2))
    width = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        ref = AUTHORS_REFERENCE["throughput"].get(name, {}) if reference else {}
        vals = [ref.get(g, 0) if name == "authors' SAMBA" else best.get((name, *g), 0) for g in groups]
        xs = np.arange(len(groups)) + (i - (len(names) - 1) / 2) * width
        ax.bar(xs, vals, width, color=_COLORS.get(name), label=_legend_name(name),
               hatch="//" if name == "authors' SAMBA" else None,
               edgecolor="k", lw=0.3)
        for x_, v in zip(xs, vals):
            if v:
                ax.text(x_, v * 1.04, f"{v / 1e3:.0f}k", ha="center", fontsize=6)
        if ref and name != "authors' SAMBA":  # the same peer in the reference run: a check of this harness
            seen = any(h.get_label() == _REFERENCE_LABEL for h in ax.collections)
            ax.scatter(xs, [ref.get(g, np.nan) for g in groups], marker="_", s=120, color="k", zorder=3,
                       label=None if seen else _REFERENCE_LABEL)
        if name == "SAMBA":
            for x_, (ctx, mode) in zip(xs, groups):
                key = f"{mode}_{ctx}s_vs_best_peer"
                peers = [v for (m, c, md), v in best.items() if is_peer(m) and (c, md) == (ctx, mode)]
                if key in TARGETS and peers:
                    ax.hlines(TARGETS[key] * max(peers), x_ - width / 2, x_ + width / 2, colors="k",
                              linestyles="--" if mode == "train" else "-.", lw=1.5,
                              label=f"target, {ctx} s {mode}: {TARGETS[key]:g}x best foundation-model peer")
    ax.set_xticks(np.arange(len(groups)), [f"{c} s windows, {m}" for c, m in groups])
    ax.set_xlabel("window length and mode (bf16; each bar: the best batch of the sweep)")
    ax.set_yscale("log")
    ax.set_ylabel("best throughput (EEG-s / wall-s)")
    ax.grid(True, axis="y", which="both", alpha=0.3)
    ax.set_ylim(top=ax.get_ylim()[1] * 1.6)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title(f"Best throughput at a saturating batch\n{title}", fontsize=9)
    return _save_figure(fig, path)


def _plot_realtime(rows, models, title, path: Path) -> Path:
    """CPU inference throughput (EEG-s per wall-s, i.e. the real-time factor) per model, window and batch; the CPU
    targets (a multiple of the best foundation-model peer at batch 8) as dashed marks over SAMBA's bars; rows
    without a value are labelled."""
    import matplotlib.pyplot as plt
    import numpy as np

    keys = sorted({(r["context_s"], r["batch"]) for r in rows})
    names = [m for m in models if any(r["model"] == m for r in rows)]
    fig, ax = plt.subplots(figsize=(11, 4.4))
    width = 0.8 / max(1, len(names))
    ok = [r for r in rows if r["status"] == "ok"]
    floor = min((r["eeg_s_per_s"] for r in ok), default=1.0) / 2
    for i, name in enumerate(names):
        by = {(r["context_s"], r["batch"]): r for r in rows if r["model"] == name}
        vals = [by[k]["eeg_s_per_s"] if k in by and by[k]["status"] == "ok" else 0 for k in keys]
        xs = np.arange(len(keys)) + (i - (len(names) - 1) / 2) * width
        ax.bar(xs, vals, width, color=_COLORS.get(name), label=_legend_name(name), edgecolor="k", lw=0.3)
        for x_, k, v in zip(xs, keys, vals):
            if not v and k in by:
                ax.text(x_, floor * 1.1, by[k]["status"], rotation=90, ha="center", va="bottom", fontsize=6)
        if name != "SAMBA":
            continue
        for x_, (ctx, b) in zip(xs, keys):
            key = f"cpu_infer_{ctx:g}s_vs_best_peer"
            peers = [r["eeg_s_per_s"] for r in ok if is_peer(r["model"]) and (r["context_s"], r["batch"]) == (ctx, b)]
            if b == CPU_BATCH and key in TARGETS and peers:
                ax.hlines(TARGETS[key] * max(peers), x_ - width / 2, x_ + width / 2, colors="k", linestyles="--",
                          lw=1.5, label=None if ctx != keys[-1][0] else
                          f"target, batch {CPU_BATCH}: {TARGETS[key]:g}x best foundation-model peer")
    ax.set_xticks(np.arange(len(keys)), [f"{c:g} s, batch {b}" for c, b in keys])
    ax.set_xlabel("window (s) and batch")
    ax.set_yscale("log")
    ax.set_ylim(bottom=floor)
    ax.set_ylabel("inference throughput (EEG-s / wall-s)")
    ax.grid(True, axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title(f"CPU inference throughput = real-time factor ({len(CHANNELS_1020)} channels, float32)\n{title}",
                 fontsize=9)
    return _save_figure(fig, path)


def plot_bench(json_path, out_dir, reference: bool = True) -> list[Path]:
    """Figures (PNG) from a benchmark JSON, named ``<json stem>_<kind>.png``; returns their paths.

    GPU runs: ``_context`` (step time and peak memory against context, one line per model, mode and batch of the
    rows, with the whole-night targets where the rows reach 1 h / 8 h at batch 1) and ``_throughput`` (best EEG-s/s
    at 10-s train, 60-s train and 60-s inference, with each throughput target; with ``reference`` the reference
    run's authors' SAMBA as a hatched bar and each peer's reference value as a black tick). CPU runs: ``_realtime``
    (inference EEG-s/s, the real-time factor, per model, window and batch, with the CPU targets at batch 8).
    """
    import matplotlib

    matplotlib.use("Agg")
    doc = read_bench(json_path)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = doc["results"]
    stem = Path(json_path).stem
    title = f'{doc["device"]} · torch {doc["torch"]} · {doc.get("dtype")} · commit {doc["commit"]}'
    if (doc.get("versions") or {}).get("cuda") and "cuda_graphs" in (doc.get("samba_execution") or {}):  # a GPU run
        title += " · SAMBA " + ("as CUDA graphs" if doc["samba_execution"]["cuda_graphs"] else "eager")
    models = list(dict.fromkeys(r["model"] for r in rows))
    paths: list[Path] = []
    ctx_rows = [r for r in rows if r.get("sweep") == "context"]
    if ctx_rows:
        paths.append(_plot_context(ctx_rows, models, title, reference, out_dir / f"{stem}_context.png"))
    tp_rows = [r for r in rows if r.get("sweep") == "throughput" and r["status"] == "ok"]
    if tp_rows:
        paths.append(_plot_throughput(tp_rows, models, title, reference, out_dir / f"{stem}_throughput.png"))
    rt_rows = [r for r in rows if r.get("sweep") == "realtime"]
    if rt_rows:
        paths.append(_plot_realtime(rt_rows, models, title, out_dir / f"{stem}_realtime.png"))
    return paths
