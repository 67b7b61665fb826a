"""Side-by-side efficiency benchmark: SAMBA against braindecode's EEG foundation models.

``samba bench --device cuda|cpu --out FILE.json`` (``bench_main``) and :func:`run_bench` measure, for
each model at its native sampling rate on the same 19-channel 10-20 montage:

* **context sweep** (GPU): train-step and inference time and peak memory at batch 4 for windows
  from 4 s to 600 s;
* **throughput** (GPU): the best EEG-seconds per wall-second at a saturating batch, doubling the
  batch from 8 until out of memory, until two doublings in a row gain less than 2 % each, or until the
  model's share of the time budget is spent; 10 s and 60 s windows, train and inference;
* **latency** (GPU): batch-1 inference of a 10 s window;
* **real time** (CPU): inference real-time factor (EEG-seconds per wall-second) at batch 1 and 8,
  10 s and 60 s windows.

A training step is forward + loss + backward + AdamW step (SAMBA: MSE of its reconstruction
against zeros; peers: cross-entropy on ``n_outputs=2`` logits); inference is one forward under
``torch.inference_mode``. On CUDA everything runs under bf16 autocast, is timed with CUDA events
after warm-up (Triton compiles and autotunes on the first calls), and reports the median of the
timed repeats; peak memory is ``torch.cuda.max_memory_allocated`` reset per row before the model's
first step (it includes weights, gradients and optimizer state; for SAMBA's CUDA graphs, the eager
warm-up and the capture, i.e. what the graph's memory pool holds). A row that raises is recorded with ``status`` ``"oom"``
or ``"error"`` and an ``error`` field; rows that the time budget did not reach are ``"skipped"``
with a ``reason`` (an extension of the API's status set).

The JSON follows ``API.md`` ("Benchmark JSON") with extra top-level keys (``versions``,
``samba_backend``, ``dtype``, ``profile``, ``summary`` ...) and extra row keys (``sweep``,
``n_times``, ``repeats``, ``ms_min``, ``ms_max``, ``params``, ``realtime_factor``, ``reason``).
:func:`plot_bench` draws the figures from it.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .ops import KernelConfig

__all__ = ["run_bench", "bench_main", "merge_bench", "plot_bench", "MODEL_NAMES", "CHANNELS_1020", "AUTHORS_REFERENCE",
           "STATUSES", "ROW_FIELDS"]

SCHEMA_VERSION = 1
# SAMBA train rows at this context or longer run with activation checkpointing (the memory option for
# minutes-long windows; docs/performance_log.md). Shorter windows fit easily without it.
# SAMBA_BENCH_CHECKPOINT_FROM_S overrides it (a huge value switches checkpointing off in the bench).
SAMBA_CHECKPOINT_FROM_S = float(os.environ.get("SAMBA_BENCH_CHECKPOINT_FROM_S", "300"))
# The 19-channel 10-20 montage every model sees.
CHANNELS_1020 = ("Fp1", "Fp2", "F7", "F3", "Fz", "F4", "F8", "T7", "C3", "Cz", "C4", "T8",
                 "P7", "P3", "Pz", "P4", "P8", "O1", "O2")
STATUSES = ("ok", "oom", "error", "skipped")
SWEEPS = ("throughput", "latency", "context")  # the GPU plan's sweeps, in their order of importance
ROW_FIELDS = ("model", "context_s", "sfreq", "batch", "mode", "ms", "peak_mib", "eeg_s_per_s", "status")

# The bar (shared/GPU.md, one H100 80GB, bf16 autocast, 2026-11-27): best EEG-s/s at saturating batch.
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

# Issue 6 targets for our SAMBA.
TARGETS = {"train_60s_vs_best_peer": 1.1, "infer_60s_vs_best_peer": 1.1, "context_600s_train_peak_gib": 3.0,
           "latency_10s_batch1_ms": 5.0, "cpu_realtime_factor": 60.0}


# --------------------------------------------------------------------------- environment helpers
def _ensure_torchaudio_importable() -> bool:
    from ._compat import ensure_torchaudio_importable

    return ensure_torchaudio_importable()


def _braindecode_models():
    _ensure_torchaudio_importable()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import braindecode.models as bm
    return bm


def _version(name: str) -> str | None:
    try:
        from importlib.metadata import version
        return version(name)
    except Exception:
        return None


def _git_commit() -> str:
    if os.environ.get("SAMBA_COMMIT"):
        return os.environ["SAMBA_COMMIT"]
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"
    except Exception:
        return "unknown"


def _device_name(device: str) -> str:
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


def _chs_info(sfreq: float) -> list[dict]:
    """MNE channel descriptions (with standard 10-20 positions) of the benchmark montage."""
    import mne

    info = mne.create_info(list(CHANNELS_1020), sfreq, "eeg")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        info.set_montage("standard_1020")
    return info["chs"]


def _coords_1020() -> np.ndarray:
    """(19, 3) electrode positions in metres, MNE head frame."""
    try:
        from .montage import positions
        return np.asarray(positions(list(CHANNELS_1020)), dtype=np.float32)
    except Exception:
        return np.stack([ch["loc"][:3] for ch in _chs_info(128.0)]).astype(np.float32)


# --------------------------------------------------------------------------- model registry
@dataclass
class ModelSpec:
    """How to build and call one benchmarked model."""

    name: str
    sfreq: float
    granule: int = 1  # n_times is rounded down to a multiple of this (patch size / hop)
    weight: float = 1.0  # share of the time budget relative to other models
    kind: str = "classifier"  # "classifier" (CE on 2 logits) | "reconstruction" (MSE to zeros)
    max_batch: int = 1 << 14

    def n_times(self, context_s: float) -> int:
        t = int(round(context_s * self.sfreq))
        return max(self.granule, t - t % self.granule)


MODEL_SPECS = {
    "SAMBA": ModelSpec("SAMBA", 128.0, granule=8, weight=3.0, kind="reconstruction"),  # + Triton compile
    "BIOT": ModelSpec("BIOT", 200.0, granule=100),
    "CBraMod": ModelSpec("CBraMod", 200.0, granule=200),
    "LUNA": ModelSpec("LUNA", 256.0, granule=40),
    "Labram": ModelSpec("Labram", 200.0, granule=200),
    "EEGPT": ModelSpec("EEGPT", 256.0, granule=64, weight=1.3),
    "EEGNet": ModelSpec("EEGNet", 128.0, granule=8, weight=0.5),
}
MODEL_NAMES = tuple(MODEL_SPECS)
_ALIASES = {"labram": "Labram", "eegnetv4": "EEGNet", "samba": "SAMBA", "biot": "BIOT", "cbramod": "CBraMod",
            "luna": "LUNA", "eegpt": "EEGPT", "eegnet": "EEGNet"}


def _canonical(name: str) -> str:
    key = name.strip().lower()
    if key not in _ALIASES:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODEL_NAMES)}")
    return _ALIASES[key]


def samba_available() -> bool:
    try:
        from . import SAMBA, SAMBAConfig  # noqa: F401
        return True
    except Exception:
        return False


def _build(spec: ModelSpec, n_times: int, samba_backend: str) -> tuple[nn.Module, Callable]:
    """Returns (model, call) where ``call(model, x)`` gives the output to take the loss on."""
    if spec.name == "SAMBA":
        from . import SAMBA, SAMBAConfig

        model = SAMBA(SAMBAConfig(backend=samba_backend))
        coords = torch.as_tensor(_coords_1020())

        def call(m, x, _c={}):
            key = x.device
            if key not in _c:
                _c[key] = coords.to(x.device)
            return m(x, _c[key])

        return model, call
    bm = _braindecode_models()
    cls = getattr(bm, spec.name, None)
    if cls is None and spec.name == "EEGNet":
        cls = getattr(bm, "EEGNetv4")
    kwargs = dict(n_chans=len(CHANNELS_1020), n_outputs=2, n_times=n_times, sfreq=spec.sfreq,
                  chs_info=_chs_info(spec.sfreq))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = cls(**kwargs)
    if spec.name == "Labram":  # Labram maps channels to its position table by name, per call
        names = list(CHANNELS_1020)
        return model, lambda m, x: m(x, ch_names=names)
    return model, lambda m, x: m(x)


def _samba_backend_used(model: nn.Module, x: torch.Tensor) -> str | None:
    """The Mamba2 backend ("torch" | "mamba_ssm") the built SAMBA resolves to for input ``x``."""
    try:
        from .ops import resolve_backend

        return resolve_backend(model.kernels.backend, x)
    except Exception as err:
        return f"unresolved ({type(err).__name__}: {err})"[:200]


def _mamba_ssm_unavailable_reason() -> str | None:
    try:
        from .ops import upstream

        return upstream.mamba_ssm_unavailable_reason()
    except Exception as err:
        return f"unknown ({type(err).__name__})"


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
    spec = MODEL_SPECS.get(model_name) or ModelSpec(model_name, 128.0)
    n_times = spec.n_times(context_s)
    row = {"model": model_name, "context_s": context_s, "sfreq": spec.sfreq, "batch": batch, "mode": mode,
           "ms": None, "peak_mib": None, "eeg_s_per_s": None, "status": "ok", "n_times": n_times}
    model = opt = x = target = runner = None
    t_row = time.perf_counter()
    try:
        model, call = (builder or _build)(spec, n_times, samba_backend)
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
            row["samba_backend"] = _samba_backend_used(model, x)
            row["samba_graphs"] = graphed
            row["activation_checkpointing"] = mode == "train" and context_s >= samba_checkpoint_from_s
            model.cfg.activation_checkpointing = row["activation_checkpointing"]
            # one sample per recomputed piece: the lowest 10-minute peak measured (H200, batch 4: 2,543 MiB, vs
            # 2,900 MiB per block and batch, 5,257 MiB without; docs/performance_log.md, section 5)
            model.cfg.checkpoint_piece_tokens = n_times if row["activation_checkpointing"] else None
            row["checkpoint_piece_tokens"] = model.cfg.checkpoint_piece_tokens
        autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda"
                    else torch.autocast("cpu", enabled=False))
        if graphed:
            from .graphs import GraphedInference, GraphedTrainStep

            coords = torch.as_tensor(_coords_1020(), device=dev)
            if mode == "train":
                opt = torch.optim.AdamW(model.parameters(), lr=1e-4, capturable=True)
                runner = GraphedTrainStep(model, opt, lambda pred, _x: pred.pow(2).mean(), coords, batch, n_times)
            elif mode == "infer":
                runner = GraphedInference(model, coords, batch, n_times)
            else:
                raise ValueError(f"mode must be 'train' or 'infer', got {mode!r}")

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

            def step():
                with torch.inference_mode(), autocast:
                    call(model, x)
        else:
            raise ValueError(f"mode must be 'train' or 'infer', got {mode!r}")

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
    spec = MODEL_SPECS.get(model_name) or ModelSpec(model_name, 128.0)
    return {"model": model_name, "context_s": context_s, "sfreq": spec.sfreq, "batch": batch, "mode": mode,
            "ms": None, "peak_mib": None, "eeg_s_per_s": None, "status": "skipped", "reason": reason,
            "sweep": sweep, "n_times": spec.n_times(context_s)}


# --------------------------------------------------------------------------- plans
@dataclass
class Profile:
    name: str
    contexts_s: tuple  # context sweep (GPU) / real-time windows (CPU)
    sweep_batch: int = 4
    throughput_contexts_s: tuple = (10, 60)
    throughput_modes: tuple = ("train", "infer")
    batches: tuple | None = None  # explicit throughput batches (None: doubling from batch_start)
    batch_start: int = 8
    latency: bool = True
    warmup: int = 3
    repeats: int = 5
    row_cap_s: float = 20.0
    budget_s: float = 480.0
    # Saturation: stop after `plateau_patience` doublings in a row that each gain less than `plateau` - 1. Up to
    # session 8 this was 5 %, which stopped SAMBA's 60-s train sweep at batch 256 while it still gained 3.1 % per
    # doubling (results/bench_h200_5c96d94.json: batch 64 / 128 / 256 -> 110.4 k / 115.2 k / 118.8 k EEG-s/s),
    # i.e. short of saturation; 2 % holds every model to the same, stricter reading of "saturating batch".
    plateau: float = 1.02
    plateau_patience: int = 2
    sweeps: tuple = SWEEPS  # GPU: which of the throughput / latency / context sweeps run (one call each fits)


def _profile(device: str, quick: bool, contexts_s, batches, budget_s, sweeps=None) -> Profile:
    if device == "cuda":
        p = (Profile("gpu-quick", (4, 60), throughput_contexts_s=(10,), batches=(8, 16), warmup=3, repeats=3,
                     row_cap_s=10.0, budget_s=120.0) if quick else
             Profile("gpu-full", (4, 10, 30, 60, 120, 300, 600)))
    else:
        # CPU first calls are slow (oneDNN primitive creation): two warm-up calls even in quick mode
        p = (Profile("cpu-quick", (1, 2), batches=(1, 2), warmup=2, repeats=3, row_cap_s=4.0, budget_s=25.0)
             if quick else
             Profile("cpu", (10, 60), batches=(1, 8), warmup=2, repeats=5, row_cap_s=8.0, budget_s=110.0))
    if contexts_s:
        p.contexts_s = tuple(contexts_s)
    if sweeps:
        unknown = set(sweeps) - set(SWEEPS)
        if unknown:
            raise ValueError(f"unknown sweeps {sorted(unknown)}; choose from {', '.join(SWEEPS)}")
        p.sweeps = tuple(w for w in SWEEPS if w in sweeps)
    if batches:
        p.batches = tuple(int(b) for b in batches)
    if budget_s is not None:
        p.budget_s = float(budget_s)
    return p


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
            while b is not None and b <= MODEL_SPECS.get(name, ModelSpec(name, 128)).max_batch:
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
    # 2) batch-1 latency of a 10 s window (the "under 5 ms")
    if prof.latency and "latency" in prof.sweeps:
        run("latency", 10, 1, "infer")
    # 3) the longest context's train step at batch 4 (the 10-minute memory target) before the rest of the
    #    context sweep, so a spent budget does not skip a target row
    done = set()
    contexts = prof.contexts_s if "context" in prof.sweeps else ()
    if contexts and max(contexts) >= 600:
        longest = max(contexts)
        run("context", longest, prof.sweep_batch, "train")
        done.add((longest, "train"))
    # 4) context sweep at batch 4, train and infer; once a length runs out of memory, longer ones would too
    oom_at = {}
    for ctx in contexts:
        for mode in ("train", "infer"):
            if (ctx, mode) in done:
                continue
            if mode in oom_at:
                rows.append(_skipped(name, ctx, prof.sweep_batch, mode, "context",
                                     f"out of memory at {oom_at[mode]} s"))
                on_row(rows[-1])
                continue
            r = run("context", ctx, prof.sweep_batch, mode)
            if r["status"] == "oom":
                oom_at[mode] = ctx
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
    return rows


def _bench_model_subprocess(name: str, device: str, quick: bool, contexts_s, batches, share_s: float,
                            samba_backend: str, on_row: Callable, out: Path, grace_s: float = 120.0,
                            threads: int | None = None, device_out: dict | None = None,
                            samba_graphs: bool = True, sweeps=None) -> None:
    """Run one model's sweeps in a child ``samba bench`` process and feed its rows to ``on_row``."""
    spec = MODEL_SPECS.get(name) or ModelSpec(name, 128.0)
    if share_s <= 0:
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
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parent.parent),
                                                      env.get("PYTHONPATH")]))
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, env=env)  # its stderr (the row log) is ours
    interrupted, why = False, None
    try:
        rc = proc.wait(timeout=share_s + grace_s)
    except (subprocess.TimeoutExpired, KeyboardInterrupt) as err:
        interrupted = isinstance(err, KeyboardInterrupt)
        why = "interrupted" if interrupted else f"stopped after {share_s + grace_s:.0f} s"
        # A SIGINT sent to the process group (bench.sh's timeout) reached the child too; a second one could
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


# --------------------------------------------------------------------------- summary
def _summary(results: list[dict]) -> dict:
    ok = [r for r in results if r["status"] == "ok"]
    best: dict = {}
    for r in ok:
        if r.get("sweep") in ("throughput", "realtime"):
            key = f'{r["model"]}|{r["context_s"]}|{r["mode"]}'
            if key not in best or r["eeg_s_per_s"] > best[key]["eeg_s_per_s"]:
                best[key] = {"model": r["model"], "context_s": r["context_s"], "mode": r["mode"],
                             "batch": r["batch"], "eeg_s_per_s": r["eeg_s_per_s"], "peak_mib": r["peak_mib"]}
    out: dict = {"best": sorted(best.values(), key=lambda d: (d["context_s"], d["mode"], -d["eeg_s_per_s"]))}
    targets: dict = {}
    for ctx_mode, key in (((60, "train"), "train_60s_vs_best_peer"), ((60, "infer"), "infer_60s_vs_best_peer")):
        ours = best.get(f"SAMBA|{ctx_mode[0]}|{ctx_mode[1]}")
        peers = [v for k, v in best.items() if not k.startswith("SAMBA|") and not k.startswith("EEGNet|")
                 and v["context_s"] == ctx_mode[0] and v["mode"] == ctx_mode[1]]
        if ours and peers and not any(r.get("sweep") == "realtime" for r in ok):  # GPU targets only
            top = max(peers, key=lambda v: v["eeg_s_per_s"])
            ratio = ours["eeg_s_per_s"] / top["eeg_s_per_s"]
            targets[key] = {"value": round(ratio, 3), "best_peer": top["model"], "target": TARGETS[key],
                            "met": ratio >= TARGETS[key]}
    for r in ok:
        if r["model"] != "SAMBA":
            continue
        if r.get("sweep") == "context" and r["context_s"] == 600 and r["mode"] == "train" and r["peak_mib"]:
            gib = r["peak_mib"] / 1024
            targets["context_600s_train_peak_gib"] = {"value": round(gib, 3), "target": TARGETS[
                "context_600s_train_peak_gib"], "met": gib <= TARGETS["context_600s_train_peak_gib"]}
        if r.get("sweep") == "latency":
            targets["latency_10s_batch1_ms"] = {"value": r["ms"], "target": TARGETS["latency_10s_batch1_ms"],
                                                "met": r["ms"] < TARGETS["latency_10s_batch1_ms"]}
    gpu_run = any(r.get("sweep") in ("throughput", "latency", "context") for r in results)
    if gpu_run:  # say which GPU targets this run did not measure, and why, instead of leaving them out
        where = {"context_600s_train_peak_gib": lambda r: r.get("sweep") == "context" and r["context_s"] == 600
                 and r["mode"] == "train", "latency_10s_batch1_ms": lambda r: r.get("sweep") == "latency"}
        for key in ("train_60s_vs_best_peer", "infer_60s_vs_best_peer", "latency_10s_batch1_ms",
                    "context_600s_train_peak_gib"):
            if key in targets:
                continue
            why = next((f'{r["status"]}: {r.get("reason") or r.get("error")}' for r in results
                        if r["model"] == "SAMBA" and key in where and where[key](r)), "no row for it in this run")
            targets[key] = {"value": None, "target": TARGETS[key], "met": None, "not_measured": why}
    rtf = [r["realtime_factor"] for r in ok if r["model"] == "SAMBA" and r.get("realtime_factor")
           and r["batch"] == 1]
    if rtf:
        targets["cpu_realtime_factor_batch1"] = {"value": round(min(rtf), 1), "target": TARGETS["cpu_realtime_factor"],
                                                 "met": min(rtf) >= TARGETS["cpu_realtime_factor"]}
    out["targets"] = targets
    return out


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
        raise RuntimeError("--device cuda but CUDA is not available")
    if device not in ("cuda", "cpu"):
        raise ValueError(f"device must be 'cuda' or 'cpu', got {device!r}")
    out = Path(out)
    plan = plan or ("gpu" if device == "cuda" else "cpu")
    prof = _profile("cuda" if plan == "gpu" else "cpu", quick, contexts_s, batches, time_budget_s, sweeps)
    log = log or (lambda s: None)
    if models is None:
        models = ["SAMBA", "EEGNet"] if quick else list(MODEL_NAMES)
    models = [_canonical(m) if builder is None or m.strip().lower() in _ALIASES else m for m in models]
    notes = []
    if "SAMBA" in models and builder is None and not samba_available():
        try:
            from . import SAMBA  # noqa: F401  (re-raise to record why)
        except Exception as err:
            notes.append(f"SAMBA not importable ({type(err).__name__}: {err}); left out")
        models = [m for m in models if m != "SAMBA"]
    if isolate is None:
        isolate = device == "cuda" and builder is None and plan == "gpu" and len(models) > 1
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if builder is None and not isolate and any(m != "SAMBA" for m in models):
        _braindecode_models()  # import once up front, outside any row's timer

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
        used = next((r["samba_backend"] for r in results + current if r.get("samba_backend")), None)
        if "device" not in state and not (isolate and device == "cuda"):
            state["device"] = _device_name(device)  # (isolated CUDA runs: the parent never touches the GPU)
        doc = {
            "device": state.get("device", "cuda (no model ran)"),
            "commit": _git_commit(),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
            "torch": torch.__version__,
            "versions": {"braindecode": _version("braindecode"),
                         "mamba_ssm": _version("mamba_ssm") or _version("mamba-ssm"), "triton": _version("triton"),
                         "mne": _version("mne"), "numpy": np.__version__, "python": platform.python_version(),
                         "samba": _version("samba-eeg"), "cuda": torch.version.cuda if device == "cuda" else None},
            "samba_backend": {"requested": samba_backend, "used": used,
                              "mamba_ssm_unavailable": _mamba_ssm_unavailable_reason()},
            "samba_execution": ({"cuda_graphs": samba_graphs, "activation_checkpointing_train_from_s":
                                 SAMBA_CHECKPOINT_FROM_S,
                                 "activation_checkpointing_pieces": "one sample per piece",
                                 "kernels": KernelConfig.from_env().to_dict()}
                                if device == "cuda" else {"cuda_graphs": False}),
            "dtype": "bf16-autocast" if device == "cuda" else "float32",
            "profile": prof.name,
            "sweeps": list(prof.sweeps),
            "schema_version": SCHEMA_VERSION,
            "complete": done and not state["interrupted"],
            "statuses": {"ok": "measured", "oom": "out of memory (error field)", "error": "raised (error field)",
                         "skipped": "not run: time budget spent, a shorter context ran out of memory, or the run "
                                    "was interrupted (reason field)"},
            "method": {"warmup": prof.warmup, "repeats": prof.repeats, "statistic": "median",
                       "timer": "cuda events" if device == "cuda" else "perf_counter",
                       "row_cap_s": prof.row_cap_s, "budget_s": prof.budget_s, "montage": list(CHANNELS_1020),
                       "train_step": "forward + loss (SAMBA: MSE to zeros; peers: CE on 2 logits) + backward + AdamW",
                       "infer": "forward under torch.inference_mode", "threads": torch.get_num_threads()},
            "elapsed_s": round(time.perf_counter() - budget.t0, 1),
            "notes": notes,
            "results": results + current,
        }
        doc["summary"] = _summary(doc["results"])
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(json.dumps(doc, indent=1, default=_json_default))
        tmp.replace(out)

    def on_row(r: dict, quiet: bool = False) -> None:
        current.append(r)
        if not quiet:
            log(_format_row(r))
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


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    raise TypeError(type(o))


def _format_row(r: dict) -> str:
    if r["status"] == "ok":
        mem = f'{r["peak_mib"]:9.0f} MiB' if r.get("peak_mib") is not None else ""
        return (f'{r["model"]:8s} {r["mode"]:5s} {r["context_s"]:>5}s b={r["batch"]:<5} {r["ms"]:10.2f} ms '
                f'{r["eeg_s_per_s"]:12.0f} EEG-s/s {mem}')
    return f'{r["model"]:8s} {r["mode"]:5s} {r["context_s"]:>5}s b={r["batch"]:<5} {r["status"]}: ' \
           f'{r.get("error") or r.get("reason")}'


def merge_bench(paths, out: Path | str, note: str | None = None) -> Path:
    """Merge the JSONs of one benchmark split across calls (``--sweeps``) into one, and return its path.

    The parts must come from the same device, commit, torch and SAMBA execution (else the rows would not be
    comparable: ``ValueError`` names the field), and no (model, context, batch, mode, sweep) row may appear
    twice. Rows keep their order; sweeps, notes and ``complete`` are combined, ``elapsed_s`` summed, the
    summary (best throughputs, targets) recomputed from all rows, and ``merged_from`` lists each part's file
    name, sweeps, date and elapsed time. ``note`` is appended to ``notes``."""
    if len(paths) < 2:
        raise ValueError("merge_bench needs at least two JSON files")
    docs = []
    for p in map(Path, paths):
        try:
            doc = json.loads(p.read_text())
            if not isinstance(doc, dict) or not isinstance(doc.get("results"), list):
                raise ValueError("no 'results' list")
        except (OSError, ValueError) as e:
            raise ValueError(f"{p}: not a `samba bench` JSON ({e})") from e
        docs.append((p, doc))
    first = docs[0][1]
    for path, doc in docs[1:]:
        for key in ("device", "commit", "torch", "samba_execution", "samba_backend", "dtype", "profile",
                    "schema_version"):
            if doc.get(key) != first.get(key):
                raise ValueError(f"{path.name} differs from {docs[0][0].name} in {key!r}: {doc.get(key)!r} vs "
                                 f"{first.get(key)!r}; only parts of one run (same card, commit, settings) merge")
    rows, seen = [], set()
    for path, doc in docs:
        for r in doc["results"]:
            key = (r["model"], r["context_s"], r["batch"], r["mode"], r.get("sweep"))
            if key in seen:
                raise ValueError(f"row {key} appears twice (again in {path.name})")
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
    merged["summary"] = _summary(rows)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(merged, indent=1))
    return out


def _table(doc: dict) -> str:
    lines = [f'{doc["device"]}  torch {doc["torch"]}  commit {doc["commit"]}  {doc["profile"]}  '
             f'{doc["elapsed_s"]} s']
    for b in doc["summary"]["best"]:
        lines.append(f'best {b["model"]:8s} {b["mode"]:5s} {b["context_s"]:>4}s b={b["batch"]:<5} '
                     f'{b["eeg_s_per_s"]:12.0f} EEG-s/s')
    for k, v in doc["summary"]["targets"].items():
        lines.append(f"target {k}: {v}")
    return "\n".join(lines)


def bench_main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="samba bench", description="efficiency benchmark, SAMBA vs braindecode "
                                "peers; prints the JSON path last")
    p.add_argument("--device", choices=("cuda", "cpu"), default=None, help="default: cuda when available")
    p.add_argument("--out", default="results/bench.json", help="JSON file to write")
    p.add_argument("--models", default=None, help=f"comma-separated subset of {','.join(MODEL_NAMES)}")
    p.add_argument("--contexts", default=None, help="comma-separated window lengths in seconds")
    p.add_argument("--batches", default=None, help="comma-separated batch sizes (default: doubling from 8 "
                   "on GPU, 1,8 on CPU)")
    p.add_argument("--quick", action="store_true", help="tiny sizes (tests, smoke runs)")
    p.add_argument("--budget-s", type=float, default=None, help="time budget of the whole run in seconds")
    p.add_argument("--samba-backend", default="auto", choices=("auto", "torch", "mamba_ssm"))
    p.add_argument("--samba-eager", dest="samba_graphs", action="store_false", default=True,
                   help="CUDA: run SAMBA eagerly instead of as CUDA graphs")
    p.add_argument("--sweeps", default=None,
                   help=f"GPU: comma-separated subset of {','.join(SWEEPS)} (default: all; e.g. one device call "
                        "for the throughput sweeps of every model, another for latency,context)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--no-isolate", dest="isolate", action="store_false", default=None,
                   help="CUDA: run all models in this process (default: one process per model)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--plot", default=None, metavar="DIR", help="also draw the figures into DIR")
    p.add_argument("-q", "--quiet", action="store_true", help="no per-row log on stderr")
    p.add_argument("--merge", nargs="+", default=None, metavar="JSON",
                   help="merge these parts of one run (e.g. one JSON per --sweeps call) into --out; runs nothing")
    a = p.parse_args(argv)
    err = (lambda s: print(s, file=sys.stderr, flush=True))
    if a.merge:
        path = merge_bench(a.merge, a.out)
    else:
        device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
        split = (lambda s, f: [f(v) for v in s.split(",") if v.strip()] if s else None)
        path = run_bench(device=device, out=Path(a.out), models=split(a.models, str),
                         contexts_s=split(a.contexts, float), batches=split(a.batches, int), quick=a.quick,
                         time_budget_s=a.budget_s, samba_backend=a.samba_backend, log=None if a.quiet else err,
                         threads=a.threads, isolate=a.isolate, samba_graphs=a.samba_graphs,
                         sweeps=split(a.sweeps, str))
    if not a.quiet and not a.child:
        err(_table(json.loads(path.read_text())))
    if a.plot:
        for fig in plot_bench(path, a.plot):
            err(f"figure {fig}")
    print(path)
    return 0


# --------------------------------------------------------------------------- figures
_COLORS = {"SAMBA": "#d62728", "BIOT": "#1f77b4", "CBraMod": "#2ca02c", "LUNA": "#9467bd", "Labram": "#8c564b",
           "EEGPT": "#e377c2", "EEGNet": "#7f7f7f", "authors' SAMBA": "#ff9896"}


def _save_figure(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def plot_bench(json_path, out_dir, reference: bool = True) -> list[Path]:
    """Figures (PNG) from a benchmark JSON; returns their paths.

    GPU runs: ``bench_context.png`` (train-step ms and peak memory vs context at batch 4, log axes;
    failed lengths marked x) and ``bench_throughput.png`` (best EEG-s/s at 10 s train, 60 s train and
    60 s infer; with ``reference`` the authors' SAMBA from GPU.md as a hatched bar and each peer's GPU.md
    value as a black tick). CPU runs:
    ``bench_realtime.png`` (inference real-time factor per model, window and batch).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    doc = json.loads(Path(json_path).read_text())
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = doc["results"]
    stem = Path(json_path).stem
    title = f'{doc["device"]} · torch {doc["torch"]} · {doc["dtype"]} · {doc["commit"]}'
    paths: list[Path] = []
    models = list(dict.fromkeys(r["model"] for r in rows))

    ctx_rows = [r for r in rows if r.get("sweep") == "context"]
    if ctx_rows:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
        for name in models:
            for mode, style in (("train", "-o"), ("infer", ":s")):
                rr = sorted((r for r in ctx_rows if r["model"] == name and r["mode"] == mode),
                            key=lambda r: r["context_s"])
                ok = [r for r in rr if r["status"] == "ok"]
                if not ok:
                    continue
                c = _COLORS.get(name)
                lab = f"{name} ({mode})"
                axes[0].plot([r["context_s"] for r in ok], [r["ms"] for r in ok], style, color=c, label=lab, ms=4)
                mem = [r for r in ok if r.get("peak_mib") is not None]
                if mode == "train" and mem:  # CPU runs have no peak memory
                    axes[1].plot([r["context_s"] for r in mem], [r["peak_mib"] / 1024 for r in mem], style,
                                 color=c, label=name, ms=4)
                bad = [r for r in rr if r["status"] in ("oom", "error")]
                for r in bad:
                    axes[0].plot(r["context_s"], ok[-1]["ms"], "x", color=c, ms=8)
        if reference:
            for name, (ms, gib) in AUTHORS_REFERENCE["context_600s_batch4_train"].items():
                if name == "authors' SAMBA":
                    axes[0].plot(600, ms, "*", color=_COLORS[name], ms=12, label="authors' SAMBA, 600 s (GPU.md)")
                    axes[1].plot(600, gib, "*", color=_COLORS[name], ms=12, label="authors' SAMBA (GPU.md)")
        axes[1].axhline(TARGETS["context_600s_train_peak_gib"], color="k", lw=0.8, ls="--")
        axes[1].annotate("target: 3 GiB at 600 s", (0.02, TARGETS["context_600s_train_peak_gib"]),
                         xycoords=("axes fraction", "data"), fontsize=7, va="bottom")
        for ax, yl in zip(axes, ("step time (ms)", "peak memory, train step (GiB)")):
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("context (s), batch 4")
            ax.set_ylabel(yl)
            ax.grid(True, which="both", alpha=0.3)
        axes[0].legend(fontsize=6, ncol=2)
        axes[1].legend(fontsize=6)
        fig.suptitle(f"Context sweep at batch 4 (x: failed)\n{title}", fontsize=9)
        paths.append(_save_figure(fig, out_dir / f"{stem}_context.png"))

    tp_rows = [r for r in rows if r.get("sweep") == "throughput" and r["status"] == "ok"]
    if tp_rows:
        groups = [(10, "train"), (60, "train"), (60, "infer")]
        best = {}
        for r in tp_rows:
            k = (r["model"], r["context_s"], r["mode"])
            best[k] = max(best.get(k, 0.0), r["eeg_s_per_s"])
        names = [m for m in models if any(k[0] == m for k in best)]
        if reference:
            names.append("authors' SAMBA")
        fig, ax = plt.subplots(figsize=(11, 4.2))
        width = 0.8 / max(1, len(names))
        for i, name in enumerate(names):
            vals = []
            for ctx, mode in groups:
                if name == "authors' SAMBA":
                    vals.append(AUTHORS_REFERENCE["throughput"][name].get((ctx, mode), 0))
                else:
                    vals.append(best.get((name, ctx, mode), 0))
            xs = np.arange(len(groups)) + (i - (len(names) - 1) / 2) * width
            ax.bar(xs, vals, width, color=_COLORS.get(name), label=name,
                   hatch="//" if name == "authors' SAMBA" else None, edgecolor="k", lw=0.3)
            for x_, v in zip(xs, vals):
                if v:
                    ax.text(x_, v * 1.04, f"{v / 1e3:.0f}k", ha="center", fontsize=6)
            ref = AUTHORS_REFERENCE["throughput"].get(name) if reference and name != "authors' SAMBA" else None
            if ref:  # the same peer in the GPU.md run, for a sanity check of our harness
                ax.scatter(xs, [ref.get(g, np.nan) for g in groups], marker="_", s=120, color="k", zorder=3,
                           label="GPU.md value" if not any(h.get_label() == "GPU.md value"
                                                           for h in ax.collections) else None)
        ax.set_xticks(np.arange(len(groups)), [f"{c} s windows, {m}" for c, m in groups])
        ax.set_yscale("log")
        ax.set_ylabel("best throughput (EEG-s / s)")
        ax.grid(True, axis="y", which="both", alpha=0.3)
        ax.set_ylim(top=ax.get_ylim()[1] * 1.6)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        ax.set_title(f"Best throughput at saturating batch\n{title}", fontsize=9)
        paths.append(_save_figure(fig, out_dir / f"{stem}_throughput.png"))

    rt_rows = [r for r in rows if r.get("sweep") == "realtime"]
    if rt_rows:
        keys = sorted({(r["context_s"], r["batch"]) for r in rt_rows})
        names = [m for m in models if any(r["model"] == m for r in rt_rows)]
        fig, ax = plt.subplots(figsize=(9, 4))
        width = 0.8 / max(1, len(names))
        for i, name in enumerate(names):
            vals = []
            for ctx, b in keys:
                r = next((r for r in rt_rows if r["model"] == name and r["context_s"] == ctx and r["batch"] == b),
                         None)
                vals.append(r["eeg_s_per_s"] if r and r["status"] == "ok" else 0)
            xs = np.arange(len(keys)) + (i - (len(names) - 1) / 2) * width
            ax.bar(xs, vals, width, color=_COLORS.get(name), label=name, edgecolor="k", lw=0.3)
        ax.axhline(TARGETS["cpu_realtime_factor"], color="k", ls="--", lw=0.8)
        ax.text(-0.4, TARGETS["cpu_realtime_factor"] * 1.1, "target 60x", fontsize=7)
        ax.set_xticks(np.arange(len(keys)), [f"{c:g} s, batch {b}" for c, b in keys])
        ax.set_yscale("log")
        ax.set_ylabel("real-time factor (EEG-s / wall-s)")
        ax.legend(fontsize=7)
        ax.set_title(f"CPU inference real-time factor (19 ch)\n{title}", fontsize=9)
        paths.append(_save_figure(fig, out_dir / f"{stem}_realtime.png"))
    return paths
