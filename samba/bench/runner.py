"""Timing: one row per (model, context, batch, mode), the sweeps of each plan, and the whole run.

A training step is forward + loss + backward + AdamW step (SAMBA: MSE of its reconstruction against zeros;
peers: cross-entropy on two logits); inference is one forward under ``torch.inference_mode``. On CUDA
everything runs under bf16 autocast, is timed with CUDA events after warm-up (Triton compiles and autotunes
on the first calls), and reports the median of the timed repeats; peak memory is
``torch.cuda.max_memory_allocated`` reset per row before the model's first step (weights, gradients and
optimizer state included; for SAMBA's CUDA graphs, the eager warm-up and the capture, i.e. what the graph's
memory pool holds). A row that raises is recorded with ``status`` ``"oom"`` or ``"error"`` and an ``error``
field, so one model failing never stops the benchmark; rows the time budget does not reach are ``"skipped"``.

Batch doubling (throughput sweep): from batch 8, double until out of memory, until two doublings in a row
each gain less than 2 %, or until the model's share of the time budget is spent.
"""
from __future__ import annotations

import gc
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UsageError
from ..paths import REPO
from . import report
from .workloads import (_ALIASES, CHANNELS_1020, MODEL_NAMES, MODEL_SPECS, SAMBA_CHECKPOINT_FROM_S, Profile, build,
                        canonical, coords_1020, kernel_settings, make_profile, mamba_ssm_unavailable_reason,
                        samba_available, samba_backend_used, spec_of)

# --------------------------------------------------------------------------- timing one row
def _is_oom(err: BaseException) -> bool:
    if isinstance(err, torch.cuda.OutOfMemoryError):
        return True
    if isinstance(err, MemoryError):
        return True
    msg = str(err).lower()
    return isinstance(err, RuntimeError) and any(
        k in msg for k in ("out of memory", "cudnn_status_alloc_failed", "cublas_status_alloc_failed"))


def _free(device: str):
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()


class _Clock:
    """Times one callable per call: CUDA events on GPU, perf_counter on CPU."""

    def __init__(self, device: str):
        self.device = device

    def time(self, fn: Callable[[], None]) -> float:
        if self.device == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end)
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1e3


def measure_row(model_name: str, context_s: float, batch: int, mode: str, *, device: str, warmup: int = 3,
                repeats: int = 5, row_cap_s: float = 30.0, samba_backend: str = "auto",
                builder: Callable | None = None, samba_graphs: bool = True,
                samba_checkpoint_from_s: float = SAMBA_CHECKPOINT_FROM_S) -> dict:
    """Build the model, run ``warmup`` untimed and up to ``repeats`` timed steps; one result row.

    The row's time is capped: warm-up stops early (after at least 2 calls on CUDA, where the first
    compiles) once half of ``row_cap_s`` is spent, and timed repeats stop (after at least one) when the
    cap is reached. ``builder(spec, n_times, samba_backend) -> (model, call)`` replaces the registry
    (tests use it to inject a failing model).

    SAMBA on CUDA runs as a CUDA graph (``samba.graphs``: the whole train step, or the forward, captured
    once and replayed) unless ``samba_graphs=False``, and its train steps at contexts of
    ``samba_checkpoint_from_s`` seconds or more use activation checkpointing (the long-context memory
    option). Both are recorded in the row. Peers run as braindecode ships them (eager).
    """
    spec = spec_of(model_name)
    n_times = spec.n_times(context_s)
    row = {"model": model_name, "context_s": context_s, "sfreq": spec.sfreq, "batch": batch, "mode": mode,
           "ms": None, "peak_mib": None, "eeg_s_per_s": None, "status": "ok", "n_times": n_times}
    model = opt = x = target = runner = None
    t_row = time.perf_counter()
    checkpointed = (model_name == "SAMBA" and builder is None and mode == "train"
                    and context_s >= samba_checkpoint_from_s)
    try:
        model, call = builder(spec, n_times, samba_backend) if builder else build(spec, n_times, samba_backend,
                                                                                   checkpointed)
        row["params"] = int(sum(p.numel() for p in model.parameters()))
        dev = torch.device(device)
        model = model.to(dev)
        torch.manual_seed(0)  # drawn on the device: a large batch drawn on the host would take seconds
        x = torch.randn(batch, len(CHANNELS_1020), n_times, device=dev)  # never time zeros
        target = torch.randint(0, 2, (batch,), device=dev)
        graphed = model_name == "SAMBA" and builder is None and device == "cuda" and samba_graphs
        if device == "cuda":
            # Reset before a graph runner is built: its eager warm-up and its capture allocate the step's
            # memory (kept afterwards in the graph's private pool, which replays do not count as allocated).
            # Resetting after the capture reported only the replays' persistent tensors (e.g. 1.4 GiB for a
            # 600-s step whose eager peak is several GiB; the H200 run of commit af54ccf).
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        if model_name == "SAMBA" and builder is None:
            row["samba_backend"] = samba_backend_used(model, x)
            row["kernels"] = kernel_settings(model)
            row["samba_graphs"] = graphed
            row["activation_checkpointing"] = checkpointed  # with SAMBA_CHECKPOINT_KERNELS (in row["kernels"])
            model.cfg.activation_checkpointing = row["activation_checkpointing"]
            # one sample per recomputed piece: the lowest 10-minute peak measured (H200, batch 4: 2,543 MiB, vs
            # 2,900 MiB per block and batch, 5,257 MiB without; docs/performance.md, activation checkpointing)
            model.cfg.checkpoint_piece_tokens = n_times if row["activation_checkpointing"] else None
            row["checkpoint_piece_tokens"] = model.cfg.checkpoint_piece_tokens
        autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda"
                    else torch.autocast("cpu", enabled=False))
        if graphed:
            from ..graphs import GraphedInference, GraphedTrainStep

            coords = torch.as_tensor(coords_1020(), device=dev)
            if mode == "train":
                opt = torch.optim.AdamW(model.parameters(), lr=1e-4, capturable=True)
                runner = GraphedTrainStep(model, opt, lambda pred, _x: pred.pow(2).mean(), coords, batch, n_times)
            elif mode == "infer":
                runner = GraphedInference(model, coords, batch, n_times)
            else:
                raise UsageError(f"mode must be 'train' or 'infer', got {mode!r}")

            def step():
                runner(x)
        elif mode == "train":
            model.train()
            opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

            def step():
                opt.zero_grad(set_to_none=True)
                with autocast:
                    out = call(model, x)
                out = out.float()
                loss = out.pow(2).mean() if spec.kind == "reconstruction" else F.cross_entropy(out, target)
                loss.backward()
                opt.step()
        elif mode == "infer":
            model.eval()
            # SAMBA eager (the whole-night rows): no_grad, not inference_mode, the mode its time-chunked CUDA path
            # supports (samba.nn.time_chunks); no_grad holds no more memory.
            no_grad = torch.no_grad if model_name == "SAMBA" and builder is None else torch.inference_mode

            def step():
                with no_grad(), autocast:
                    call(model, x)
        else:
            raise UsageError(f"mode must be 'train' or 'infer', got {mode!r}")

        clock = _Clock(device)
        if device == "cuda":
            torch.cuda.synchronize()
        min_warm = 2 if device == "cuda" else 1  # CUDA: the first call compiles (Triton) and autotunes
        for i in range(max(warmup, min_warm if warmup else 0)):
            clock.time(step)
            if i + 1 >= min_warm and time.perf_counter() - t_row > row_cap_s / 2:
                break
        times = []
        for _ in range(max(1, repeats)):
            times.append(clock.time(step))
            if time.perf_counter() - t_row > row_cap_s:
                break
        ms = statistics.median(times)
        row.update(ms=round(ms, 4), ms_min=round(min(times), 4), ms_max=round(max(times), 4), repeats=len(times),
                   eeg_s_per_s=round(batch * n_times / spec.sfreq / (ms / 1e3), 2))
        if device == "cuda":
            row["peak_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    except Exception as err:  # one model failing never stops the benchmark
        row["status"] = "oom" if _is_oom(err) else "error"
        row["error"] = f"{type(err).__name__}: {str(err).strip().splitlines()[0][:300] if str(err).strip() else ''}"
        del err
    finally:
        model = opt = x = target = runner = None
        if row["status"] != "ok":
            _free(device)  # a traceback may hold tensors in reference cycles
        elif device == "cuda":
            torch.cuda.empty_cache()
    row["wall_s"] = round(time.perf_counter() - t_row, 2)
    return row


def _skipped(model_name: str, context_s: float, batch: int, mode: str, sweep: str, reason: str) -> dict:
    spec = spec_of(model_name)
    return {"model": model_name, "context_s": context_s, "sfreq": spec.sfreq, "batch": batch, "mode": mode,
            "ms": None, "peak_mib": None, "eeg_s_per_s": None, "status": "skipped", "reason": reason,
            "sweep": sweep, "n_times": spec.n_times(context_s)}



class _Budget:
    """Global deadline shared between models by weight; unused time rolls over to later models."""

    def __init__(self, total_s: float, weights: dict[str, float]):
        self.t0 = time.perf_counter()
        self.total = total_s
        self.weights = dict(weights)
        self.model_deadline = self.t0

    def left(self) -> float:
        return self.total - (time.perf_counter() - self.t0)

    def start_model(self, name: str):
        rest = sum(self.weights.values())
        share = self.left() * self.weights.pop(name) / rest if rest > 0 else self.left()
        self.model_deadline = time.perf_counter() + max(0.0, share)

    def model_left(self) -> float:
        return min(self.model_deadline - time.perf_counter(), self.left())


def _bench_model_gpu(name: str, prof: Profile, budget: _Budget, measure: Callable,
                     on_row: Callable = lambda r: None) -> list[dict]:
    rows: list[dict] = []

    def run(sweep, ctx, batch, mode, predicted_s=0.0):
        left = budget.model_left()
        if left <= 0 or predicted_s > left:
            why = "time budget spent" if left <= 0 else f"predicted {predicted_s:.0f} s > {left:.0f} s left"
            rows.append(_skipped(name, ctx, batch, mode, sweep, why))
            on_row(rows[-1])
            return rows[-1]
        r = measure(name, ctx, batch, mode, row_cap_s=min(prof.row_cap_s, max(left, 1.0)))
        r["sweep"] = sweep
        rows.append(r)
        on_row(r)
        return r

    n_timed = prof.warmup + prof.repeats
    # Order = importance, so a spent budget costs the least: the throughput claims first, then the
    # batch-1 latency, then the 10-minute train step, then the rest of the context sweep.
    # 1) best throughput at a saturating batch
    for ctx in (prof.throughput_contexts_s if "throughput" in prof.sweeps else ()):
        for mode in prof.throughput_modes:
            best, last_ms, prev_batch, flat = 0.0, None, None, 0
            batch_list = list(prof.batches) if prof.batches else None
            b = batch_list.pop(0) if batch_list else prof.batch_start
            while b is not None and b <= spec_of(name).max_batch:
                predicted = (last_ms or 0.0) * (b / prev_batch if prev_batch else 1.0) * n_timed / 1e3
                r = run("throughput", ctx, b, mode, predicted_s=predicted)
                if r["status"] != "ok":
                    break
                tp = r["eeg_s_per_s"]
                # Stop once `plateau_patience` doublings in a row gained < 2 %: one noisy median must not end
                # the sweep (seen: BIOT's 60-s inference stopped at 113 k by batch 32 in one run, 264 k at
                # batch 1,024 in the next).
                if prof.batches is None and best and tp < best * prof.plateau:
                    flat += 1
                    if flat >= prof.plateau_patience:
                        break
                else:
                    flat = 0
                best, last_ms, prev_batch = max(best, tp), r["ms"], b
                b = (batch_list.pop(0) if batch_list else None) if prof.batches else 2 * b
    # 2) batch-1 latency of a 10 s window
    if prof.latency and "latency" in prof.sweeps:
        run("latency", 10, 1, "infer")
    # 3) the longest context's train step (from 600 s on: the memory targets are long train steps, e.g. 8 h at
    #    batch 1) before the rest of the context sweep, so a spent budget does not skip a target row
    done = set()
    contexts = prof.contexts_s if "context" in prof.sweeps else ()
    # the context sweep runs at each of --batches when given (e.g. --batches 1 for whole-night rows), else batch 4
    for cb in (prof.context_batches or (prof.sweep_batch,)):
        if contexts and max(contexts) >= 600:
            longest = max(contexts)
            run("context", longest, cb, "train")
            done.add((longest, "train"))
        # 4) the context sweep, train and infer; once a length runs out of memory, longer ones would too
        oom_at = {}
        for ctx in contexts:
            for mode in ("train", "infer"):
                if (ctx, mode) in done:
                    continue
                if mode in oom_at:
                    rows.append(_skipped(name, ctx, cb, mode, "context", f"out of memory at {oom_at[mode]} s"))
                    on_row(rows[-1])
                    continue
                r = run("context", ctx, cb, mode)
                if r["status"] == "oom":
                    oom_at[mode] = ctx
        done.clear()
    return rows


def _bench_model_cpu(name: str, prof: Profile, budget: _Budget, measure: Callable,
                     on_row: Callable = lambda r: None) -> list[dict]:
    rows = []
    ms_per_window = None  # from the last measured row: predicts the next one (>= 2 calls)
    for ctx in prof.contexts_s:
        for b in (prof.batches or (1, 8)):
            left = budget.model_left()
            predicted = 2 * ms_per_window * b * ctx / 1e3 if ms_per_window else 0.0
            if left <= 0 or predicted > left:
                why = "time budget spent" if left <= 0 else f"predicted {predicted:.0f} s > {left:.0f} s left"
                rows.append(_skipped(name, ctx, b, "infer", "realtime", why))
                on_row(rows[-1])
                continue
            r = measure(name, ctx, b, "infer", row_cap_s=min(prof.row_cap_s, max(left, 0.5)))
            r["sweep"] = "realtime"
            if r["status"] == "ok":
                r["realtime_factor"] = r["eeg_s_per_s"]
                ms_per_window = r["ms"] / (b * ctx)
            rows.append(r)
            on_row(r)
    # the training step at the shortest window and the largest batch (forward + loss + backward + AdamW):
    # a model people fine-tune on a laptop must not train slower than the peers there
    ctx, b = min(prof.contexts_s), max(prof.batches or (1, 8))
    left = budget.model_left()
    predicted = 6 * ms_per_window * b * ctx / 1e3 if ms_per_window else 0.0  # backward ~2x forward, >= 2 calls
    if left <= 0 or predicted > left:
        why = "time budget spent" if left <= 0 else f"predicted {predicted:.0f} s > {left:.0f} s left"
        rows.append(_skipped(name, ctx, b, "train", "train", why))
    else:
        rows.append(measure(name, ctx, b, "train", row_cap_s=min(prof.row_cap_s, max(left, 0.5))))
        rows[-1]["sweep"] = "train"
    on_row(rows[-1])
    return rows


def _bench_model_subprocess(name: str, device: str, quick: bool, contexts_s, batches, share_s: float,
                            samba_backend: str, on_row: Callable, out: Path, grace_s: float = 120.0,
                            threads: int | None = None, device_out: dict | None = None,
                            samba_graphs: bool = True, sweeps=None) -> None:
    """Run one model's sweeps in a child ``samba bench`` process and feed its rows to ``on_row``."""
    spec = spec_of(name)
    if share_s < 0.05:  # the child's --budget-s is written to 0.1 s and must be > 0
        on_row(_skipped(name, 0, 0, "train", "all", "time budget spent"))
        return
    part = out.with_name(f"{out.stem}.{name}.part.json")
    part.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "samba", "bench", "--device", device, "--models", name, "--out", str(part),
           "--budget-s", f"{share_s:.1f}", "--samba-backend", samba_backend, "--no-isolate", "--child"]
    if quick:
        cmd.append("--quick")
    if not samba_graphs:
        cmd.append("--samba-eager")
    if contexts_s:
        cmd += ["--contexts", ",".join(f"{c:g}" for c in contexts_s)]
    if batches:
        cmd += ["--batches", ",".join(str(int(b)) for b in batches)]
    if sweeps:
        cmd += ["--sweeps", ",".join(sweeps)]
    if threads:
        cmd += ["--threads", str(int(threads))]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))  # this checkout's samba
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, env=env)  # its stderr (the row log) is ours
    interrupted, why = False, None
    try:
        rc = proc.wait(timeout=share_s + grace_s)
    except (subprocess.TimeoutExpired, KeyboardInterrupt) as err:
        interrupted = isinstance(err, KeyboardInterrupt)
        why = "interrupted" if interrupted else f"stopped after {share_s + grace_s:.0f} s"
        # A SIGINT sent to the process group (a timeout around the run) reached the child too; a second one could
        # cut its last write short, so give it a moment first. The child writes what it has on SIGINT.
        for action in ((lambda: None) if interrupted else (lambda: proc.send_signal(signal.SIGINT)),
                       lambda: proc.send_signal(signal.SIGINT), proc.kill):
            action()
            try:
                proc.wait(timeout=6)
                break
            except subprocess.TimeoutExpired:
                continue
        proc.wait()
        rc = proc.returncode
    rows, part_doc = [], {}
    if part.exists():
        try:
            part_doc = json.loads(part.read_text())
            rows = part_doc["results"]
        except (OSError, ValueError, KeyError):
            rows = []
        part.unlink(missing_ok=True)
    for r in rows:
        on_row(r, quiet=True)  # the child already logged them
    if device_out is not None and rows and part_doc.get("device"):
        device_out["device"] = part_doc["device"]
    if (rc != 0 or why) and not interrupted:  # (an interrupted child marks that itself)
        on_row({"model": name, "context_s": 0, "sfreq": spec.sfreq, "batch": 0, "mode": "train", "ms": None,
                "peak_mib": None, "eeg_s_per_s": None, "status": "error", "sweep": "all",
                "error": f"benchmark process for {name} {why or 'exited with ' + str(rc)} after {len(rows)} rows"})
    if interrupted:
        raise KeyboardInterrupt



# --------------------------------------------------------------------------- entry points
def run_bench(device: str = "cuda", out: Path | str = "bench.json", models=None, contexts_s=None, batches=None,
              quick: bool = False, time_budget_s: float | None = None, samba_backend: str = "auto",
              builder: Callable | None = None, log: Callable[[str], None] | None = print,
              plan: str | None = None, threads: int | None = None, isolate: bool | None = None,
              samba_graphs: bool = True, sweeps=None) -> Path:
    """Run the benchmark, write the JSON to ``out`` and return its path (see the module docstring).

    ``models``: names from :data:`MODEL_NAMES` (default: all on GPU and CPU full; SAMBA + EEGNet with
    ``quick``; SAMBA is left out with a warning when it cannot be imported). ``contexts_s``: the
    context sweep (GPU) or the real-time windows (CPU). ``batches``: explicit throughput batches (GPU,
    instead of doubling from 8) or real-time batches (CPU). ``time_budget_s``: the whole run's budget;
    rows it does not reach are recorded as ``"skipped"``. ``builder`` replaces the model registry and
    ``plan`` ("gpu" | "cpu", default: the device's) picks the sweeps; both are for tests. ``threads``
    sets ``torch.set_num_threads`` (CPU runs; on a machine shared with other jobs one thread is steadier).
    ``isolate`` (default: on for CUDA) runs each model in its own Python process, so a crash, a poisoned
    CUDA context or a hang in one model (killed after its share of the budget + 120 s) costs only that
    model, and every model starts from an empty GPU; the per-process import time comes out of the budget.
    ``samba_graphs`` (CUDA): SAMBA's steps run as CUDA graphs (default; ``samba.graphs``) or eagerly.
    ``sweeps`` (GPU plan): a subset of :data:`SWEEPS` to run (default: all).
    """
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        return _run_bench(device, out, models, contexts_s, batches, quick, time_budget_s, samba_backend, builder,
                          log, plan, isolate, samba_graphs, sweeps)
    finally:
        torch.set_num_threads(previous_threads)


def _run_bench(device, out, models, contexts_s, batches, quick, time_budget_s, samba_backend, builder, log,
               plan, isolate, samba_graphs=True, sweeps=None) -> Path:
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda but CUDA is not available here; use --device cpu or a machine with a GPU")
    if device not in ("cuda", "cpu"):
        raise UsageError(f"device must be 'cuda' or 'cpu', got {device!r}")
    out = Path(out)
    plan = plan or ("gpu" if device == "cuda" else "cpu")
    prof = make_profile("cuda" if plan == "gpu" else "cpu", quick, contexts_s, batches, time_budget_s, sweeps)
    log = log or (lambda s: None)
    if models is None:
        models = ["SAMBA", "EEGNet"] if quick else list(MODEL_NAMES)
    models = [canonical(m) if builder is None or m.strip().lower() in _ALIASES else m for m in models]
    notes = []
    if "SAMBA" in models and builder is None and not samba_available():
        try:
            from .. import SAMBA  # noqa: F401  (re-raise to record why)
        except Exception as err:
            notes.append(f"SAMBA not importable ({type(err).__name__}: {err}); left out")
        models = [m for m in models if m != "SAMBA"]
    if isolate is None:
        isolate = device == "cuda" and builder is None and plan == "gpu" and len(models) > 1
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if builder is None and not isolate and any(m != "SAMBA" for m in models):
        from .peers import braindecode_models

        braindecode_models()  # import once up front, outside any row's timer

    torch.optim.AdamW([nn.Parameter(torch.zeros(1))])  # its first construction imports torch._dynamo (seconds)
    weights = {m: (MODEL_SPECS[m].weight if m in MODEL_SPECS and plan == "gpu" else 1.0) for m in models}
    budget = _Budget(prof.budget_s, weights)  # GPU: SAMBA's share covers Triton's compile and autotune

    def measure(name, ctx, batch, mode, row_cap_s):
        r = measure_row(name, ctx, batch, mode, device=device, warmup=prof.warmup, repeats=prof.repeats,
                        row_cap_s=row_cap_s, samba_backend=samba_backend, builder=builder,
                        samba_graphs=samba_graphs)
        return r

    results: list[dict] = []
    current: list[dict] = []  # rows of the model in progress
    state = {"interrupted": False}

    def write(done: bool) -> None:
        rows = results + current
        if "device" not in state and not (isolate and device == "cuda"):
            state["device"] = report.device_name(device)  # (isolated CUDA runs: the parent never touches the GPU)
        doc = report.document(rows, device=device, device_label=state.get("device", "cuda (no model ran)"),
                              prof=prof, samba_backend=samba_backend, samba_graphs=samba_graphs,
                              backend_note=mamba_ssm_unavailable_reason(), complete=done and not state["interrupted"],
                              elapsed_s=time.perf_counter() - budget.t0, notes=notes)
        report.write_json(doc, out)

    def on_row(r: dict, quiet: bool = False) -> None:
        current.append(r)
        if not quiet:
            log(report.format_row(r))
        write(done=False)  # after every row, so a killed run still leaves what it measured

    for name in models:
        if state["interrupted"]:
            results.append(_skipped(name, 0, 0, "train", "all", "run interrupted"))
            continue
        budget.start_model(name)
        log(f"# {name}: {budget.model_left():.0f} s of {budget.left():.0f} s left")
        current.clear()
        try:
            if isolate:
                _bench_model_subprocess(name, device, quick, contexts_s, batches, budget.model_left(), samba_backend,
                                        on_row, out, threads=torch.get_num_threads() if device == "cpu" else None,
                                        device_out=state, samba_graphs=samba_graphs, sweeps=sweeps)
            else:
                (_bench_model_gpu if plan == "gpu" else _bench_model_cpu)(name, prof, budget, measure, on_row)
        except KeyboardInterrupt:  # SIGINT from a timeout: keep what was measured
            state["interrupted"] = True
            if not any(r.get("sweep") == "all" for r in current):
                current.append(_skipped(name, 0, 0, "train", "all", "run interrupted during this model"))
        results.extend(current)
        current.clear()
        _free(device)
        write(done=False)
    write(done=True)
    return out
