"""Can SAMBA reach its CPU targets at all? Each model's counted work against this CPU's matrix-product rate.

The CPU benchmark (``samba bench --device cpu``) gives each model's step time at 10-s and 60-s windows. This
module counts the work of the same steps and asks what the fastest possible SAMBA step would be:

* **FLOPs** of one step of every model in the benchmark file, counted by ``torch.utils.flop_counter.FlopCounterMode``
  on the CPU with the benchmark's own models and inputs (``samba.bench.workloads.build``, 19 channels, each model at
  its native rate and patch-rounded length, batch as in the row): matrix products and convolutions, with their
  backward for a train step (forward + loss + backward; the optimizer adds no counted FLOPs). Elementwise work is
  not counted, so the counts are a lower bound on each model's arithmetic.
* **The CPU's matrix-product rate**: float32 ``torch.mm`` with the benchmark's thread count, best of a few shapes
  (SAMBA's widest projection, 8 x 1,280 time steps x 64 -> 1,064 channels, and square products), timed here. It is
  what this CPU does at best on dense products; a model step cannot run its products faster.

* **The products' own time** in SAMBA's step as it runs now: the self CPU time of the matrix-product and
  convolution operators (``PRODUCT_OPS``) under ``torch.profiler``, per step (the profiler adds some overhead, so
  it is an estimate); the rest of the step is elementwise work and copies.

A step cannot take less than its FLOPs divided by that rate, even with every elementwise operation fused away.
So ``samba_best_eeg_s_per_s`` (SAMBA's FLOPs at that rate) is an upper bound on SAMBA's throughput, and
``best_possible_ratio`` (that bound over the best foundation-model peer's measured throughput) is the largest ratio
against that peer SAMBA could show on this CPU in float32. Where it is below a target, no kernel work reaches the
target with the paper-default model: it would take fewer FLOPs (a smaller model) or faster arithmetic for SAMBA
alone (bf16 or int8 speed up the peers' products as well).

    python -m samba.bench.cpu_limits --bench results/bench_cpu.json --out results/cpu_limits.json
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import platform
import sys
import time
from pathlib import Path

#: (M, K, N) float32 products timed for the CPU's rate: SAMBA's full-rate in_proj at batch 8 x 10 s, and squares
GEMM_SHAPES = ((8 * 1280, 64, 1064), (1024, 1024, 1024), (2048, 2048, 2048))
TARGETS = {"infer": 1.5, "train": 1.0}  # SAMBA over the best foundation-model peer (docs/performance.md)
#: operators whose self time is matrix-product or convolution arithmetic on the CPU (oneDNN / MKL calls)
PRODUCT_OPS = ("aten::mm", "aten::bmm", "aten::addmm", "aten::baddbmm", "aten::addbmm", "aten::mkldnn_convolution",
               "aten::convolution_backward", "aten::_scaled_dot_product_flash_attention_for_cpu",
               "aten::_scaled_dot_product_flash_attention_for_cpu_backward")


def gemm_rate(threads: int, shapes=GEMM_SHAPES, seconds: float = 1.0) -> dict:
    """``{"gflop_s": best, "by_shape": {"MxKxN": GFLOP/s}}``: float32 ``torch.mm`` at ``threads`` threads."""
    import torch

    torch.set_num_threads(threads)
    by_shape = {}
    for m, k, n in shapes:
        a, b = torch.randn(m, k), torch.randn(k, n)
        torch.mm(a, b)  # warm-up (allocation, oneDNN dispatch)
        reps, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            torch.mm(a, b)
            reps += 1
        dt = (time.perf_counter() - t0) / reps
        by_shape[f"{m}x{k}x{n}"] = round(2 * m * k * n / dt / 1e9, 1)
    return {"gflop_s": max(by_shape.values()), "by_shape": by_shape, "threads": threads, "dtype": "float32"}


def _step(model_name: str, context_s: float, batch: int, mode: str):
    """One benchmark step of ``model_name`` as a callable (the benchmark's model, input and loss; no optimizer)."""
    import torch
    import torch.nn.functional as F

    from .workloads import CHANNELS_1020, build, spec_of

    spec = spec_of(model_name)
    n_times = spec.n_times(context_s)
    model, call = build(spec, n_times, "torch")
    torch.manual_seed(0)
    x = torch.randn(batch, len(CHANNELS_1020), n_times)
    target = torch.randint(0, 2, (batch,))
    model.train(mode == "train")

    def run():
        if mode == "train":
            model.zero_grad(set_to_none=True)
            out = call(model, x).float()
            loss = out.pow(2).mean() if spec.kind == "reconstruction" else F.cross_entropy(out, target)
            loss.backward()
        else:
            with torch.no_grad():
                call(model, x)
    return run


def step_flops(model_name: str, context_s: float, batch: int, mode: str) -> int:
    """FLOPs (FlopCounterMode) of one benchmark step of ``model_name``."""
    from torch.utils.flop_counter import FlopCounterMode

    run = _step(model_name, context_s, batch, mode)
    with FlopCounterMode(display=False) as counter:
        run()
    return int(counter.get_total_flops())


def product_ms(model_name: str, context_s: float, batch: int, mode: str, threads: int, steps: int = 3) -> dict:
    """Per step under ``torch.profiler``: the self time of ``PRODUCT_OPS`` and of everything (ms)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    torch.set_num_threads(threads)
    run = _step(model_name, context_s, batch, mode)
    run()  # warm-up
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            run()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) / 1e3 / steps
    products = sum(e.self_cpu_time_total for e in events if e.key in PRODUCT_OPS) / 1e3 / steps
    return {"products_ms": round(products, 1), "profiled_step_ms": round(total, 1),
            "products_share": round(products / total, 3)}


def bound(samba_flops: float, samba_eeg_s: float, gflop_s: float, best_peer_eeg_s: float) -> dict:
    """SAMBA's fastest possible step at ``gflop_s`` and the largest ratio to the best peer it allows.

    ``samba_eeg_s``: the EEG-seconds one step processes (batch x window)."""
    min_ms = samba_flops / (gflop_s * 1e9) * 1e3
    best = samba_eeg_s / (min_ms / 1e3)
    return {"samba_min_ms": round(min_ms, 2), "samba_best_eeg_s_per_s": round(best, 1),
            "best_possible_ratio": round(best / best_peer_eeg_s, 3)}


def cpu_limits(bench: dict, rate: dict, batch: int = 8, models=None) -> dict:
    """Per (context, mode) of the benchmark's ``batch`` rows: every model's FLOPs, achieved GFLOP/s, and SAMBA's bound."""
    from .workloads import is_peer

    rows = [r for r in bench["results"] if r["status"] == "ok" and r["batch"] == batch
            and (models is None or r["model"] in models)]
    out = []
    for context_s, mode in sorted({(r["context_s"], r["mode"]) for r in rows}):
        group = [r for r in rows if (r["context_s"], r["mode"]) == (context_s, mode)]
        entry = {"context_s": context_s, "mode": mode, "batch": batch, "models": {}}
        for r in group:
            flops = step_flops(r["model"], context_s, batch, mode)
            entry["models"][r["model"]] = {
                "flops": flops, "ms": r["ms"], "eeg_s_per_s": r["eeg_s_per_s"],
                "flop_per_eeg_s": round(flops / (batch * r["n_times"] / r["sfreq"])),
                "achieved_gflop_s": round(flops / (r["ms"] / 1e3) / 1e9, 1),
                "of_gemm_rate": round(flops / (r["ms"] / 1e3) / 1e9 / rate["gflop_s"], 3)}
            print(f"{context_s:g} s {mode} {r['model']}: {flops / 1e9:.2f} GFLOP, "
                  f"{entry['models'][r['model']]['achieved_gflop_s']} GFLOP/s", file=sys.stderr)
        peers = {m: v for m, v in entry["models"].items() if is_peer(m)}
        if "SAMBA" in entry["models"] and peers:
            best = max(peers, key=lambda m: peers[m]["eeg_s_per_s"])
            s = entry["models"]["SAMBA"]
            samba_row = next(r for r in group if r["model"] == "SAMBA")
            entry["best_peer"] = best
            entry["target_ratio"] = TARGETS[mode]
            entry["measured_ratio"] = round(s["eeg_s_per_s"] / peers[best]["eeg_s_per_s"], 3)
            entry.update(bound(s["flops"], batch * samba_row["n_times"] / samba_row["sfreq"], rate["gflop_s"],
                               peers[best]["eeg_s_per_s"]))
            entry["target_reachable_in_float32"] = entry["best_possible_ratio"] >= TARGETS[mode]
            s.update(product_ms("SAMBA", context_s, batch, mode, rate["threads"]))
        out.append(entry)
    return out


def main(argv: list[str] | None = None) -> int:
    from .report import git_commit

    p = argparse.ArgumentParser(prog="python -m samba.bench.cpu_limits", description=__doc__.split("\n")[0])
    p.add_argument("--bench", required=True, help="a `samba bench --device cpu` JSON")
    p.add_argument("--out", required=True, help="JSON file to write")
    p.add_argument("--batch", type=int, default=8, help="the benchmark rows' batch to analyse (default 8)")
    p.add_argument("--models", nargs="+", default=None, help="default: every model with an ok row")
    a = p.parse_args(argv)
    bench = json.loads(Path(a.bench).read_text())
    threads = int(bench.get("method", {}).get("threads") or 1)
    rate = gemm_rate(threads)
    doc = {"what": __doc__.split("\n\n")[1].replace("\n", " "), "gemm_rate": rate,
           "rows": cpu_limits(bench, rate, a.batch, a.models),
           "bench": {"file": str(a.bench), "commit": bench.get("commit"), "device": bench.get("device"),
                     "date": bench.get("date"), "command": bench.get("command")},
           "commit": git_commit(), "device": f"CPU {platform.processor() or platform.machine()} ({threads} threads)",
           "date": _dt.date.today().isoformat(),
           "command": "python -m samba.bench.cpu_limits " + " ".join(argv if argv is not None else sys.argv[1:])}
    from ..evaluation.run import atomic_write_json

    atomic_write_json(doc, a.out)
    print(a.out)
    return 0


if __name__ == "__main__":
    from ..errors import run_main

    sys.exit(run_main(main))
