"""What fraction of the GPU's physical limits a measured benchmark row reaches.

A row of ``samba bench`` gives SAMBA's step time at a window and batch. This module counts the work one such step
does, on the CPU, and divides it by the measured time:

* **FLOPs**: ``torch.utils.flop_counter.FlopCounterMode`` over one step of the paper-default model
  (``SAMBA(SAMBAConfig())``) on the plain-PyTorch kernels (``KernelConfig(backend="torch")``). It counts matrix
  products and convolutions (``mm``, ``addmm``, ``bmm``, ``convolution`` and their backward): the layers' projections
  and convolutions, and the SSD scan's chunk-level products (its einsums are batched matrix products). It does not
  count elementwise work (softplus, exp, the decay cumsums, the gated norm, the depthwise causal conv's
  multiply-adds, pooling, upsampling, residual adds, AdamW's update). Two settings follow the GPU path, neither
  changes the result: the bottleneck's per-head projections run as the dense block-diagonal GEMMs the GPU runs
  (``DiffMamba.projections = "dense"``), and its reference scan uses the GPU kernel's chunk of 64 steps
  (``diff_torch_chunk_size = diff_chunk_size``). A train step is forward + MSE loss + backward (as in the
  benchmark; AdamW adds no counted FLOPs); inference is one forward under ``torch.no_grad``.
* **Bytes**: a lower bound on the GPU memory traffic of one step, bf16 (2 bytes a value), under this model: every
  matrix product and convolution outside the scan is its own kernel (on the GPU, cuBLAS / cuDNN calls between
  SAMBA's fused Triton kernels), and everything between two products (conv + SiLU, scan, gated norm, pooling,
  upsampling, adds) is one fused pass. So each tensor a product reads or writes crosses GPU memory: written once and
  read once (the model's input: read once). Views and copies of a tensor count as that tensor, once. Parameters are
  read once (bf16). A train step adds the backward: each such tensor's gradient written once and read once, each
  product's operand read once more (for the weight gradient), and the optimizer's float32 traffic (gradient written;
  AdamW reads parameter, gradient and two moments and writes parameter and moments: 8 x 4 bytes a parameter).
  Everything else is left out (the scan's own chunk states, recomputation, cache misses), so real traffic is higher.

Both are counted at batch 1 and 2 of a short window (``COUNT_STEPS`` time steps) and extended as ``a + s * batch *
n_times``: a (the per-step constant: weights, the montage maps) and s (the cost per sample and time step) come from
the two counts. That is exact for costs linear in batch x time; the reference scan's passing of states between chunks
is a (chunks x chunks) product up to 64 chunks (sequential on the GPU), which the tests bound at 2 % when the window
doubles.

``python -m samba.bench.limits --bench results/bench_h100.json --whole-night results/bench_h100_whole_night.json
--out results/physical_limits_h100.json`` writes SAMBA's headline rows (60-s train and inference at their best
batch, 8-h inference at batch 1) with achieved TFLOP/s and GB/s as fractions of the H100 SXM's peaks
(:data:`H100_SXM`).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# NVIDIA H100 Tensor Core GPU datasheet, H100 SXM column: BF16 Tensor Core 1,979 TFLOP/s "with sparsity"
# (the datasheet: "specifications 1/2 lower without sparsity"), i.e. 989.4 TFLOP/s dense; GPU memory bandwidth
# 3.35 TB/s (HBM3). The benchmark's "NVIDIA H100 80GB HBM3" is that board (the PCIe board has HBM2e).
H100_SXM = {"name": "NVIDIA H100 SXM 80GB (HBM3)", "bf16_dense_tflop_s": 989.4, "memory_tb_s": 3.35,
            "source": "NVIDIA H100 Tensor Core GPU datasheet (H100 SXM: BF16 Tensor Core 1,979 TFLOP/s with "
                      "sparsity, half without; GPU memory bandwidth 3.35 TB/s)"}
BYTES_PER_VALUE = 2  # bf16
COUNT_STEPS = 1024  # the counting window: 8 s at 128 Hz (T / 8 = 128 steps in the bottleneck, 2 scan chunks)
COUNT_BATCHES = (1, 2)
OPTIMIZER_BYTES_PER_PARAM = 4 * 8  # float32: gradient written; AdamW reads p, g, m, v and writes p, m, v


# --------------------------------------------------------------------------- counting one step
def build_model(projections: str = "dense"):
    """The paper-default SAMBA on the plain-PyTorch kernels, set to run the products the GPU path runs
    (``projections="einsum"``: the bottleneck's per-head projections without the block-diagonal zeros)."""
    import torch

    from .. import SAMBA, SAMBAConfig
    from ..ops import KernelConfig

    torch.manual_seed(0)
    cfg = SAMBAConfig()
    cfg.diff_torch_chunk_size = cfg.diff_chunk_size  # the GPU kernel's chunk (result-neutral)
    model = SAMBA(cfg, kernels=KernelConfig(backend="torch"))
    model.bottleneck.projections = projections  # "dense": as on the GPU (same math)
    return model


def _inputs(batch: int, n_times: int):
    """A random window batch (B, 19, T) and the 10-20 coordinates, as the benchmark feeds SAMBA."""
    import torch

    from .workloads import CHANNELS_1020, coords_1020

    torch.manual_seed(0)
    return torch.randn(batch, len(CHANNELS_1020), n_times), torch.as_tensor(coords_1020())


def _step(model, batch: int, n_times: int, mode: str):
    """A callable running one benchmark step (train: forward + MSE to zeros + backward; infer: no_grad forward)."""
    import torch

    x, coords = _inputs(batch, n_times)
    if mode == "train":
        model.train()

        def run():
            model.zero_grad(set_to_none=True)
            model(x, coords).float().pow(2).mean().backward()
    elif mode == "infer":
        model.eval()

        def run():
            with torch.no_grad():
                model(x, coords)
    else:
        raise ValueError(f"mode must be 'train' or 'infer', got {mode!r}")
    return run


def count_flops(model, batch: int, n_times: int, mode: str) -> int:
    """FLOPs of one step as FlopCounterMode counts them (matrix products and convolutions only)."""
    from torch.utils.flop_counter import FlopCounterMode

    run = _step(model, batch, n_times, mode)
    with FlopCounterMode(display=False) as counter:
        run()
    return int(counter.get_total_flops())


def _boundary_mode():
    """A TorchDispatchMode recording the tensors that matrix products and convolutions read and write (see the
    module docstring); products called from the SSD scan (``samba/ops/ssd.py``) are left out."""
    import os

    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    aten = torch.ops.aten
    products = {aten.mm, aten.addmm, aten.bmm, aten.baddbmm, aten.convolution, aten.mv, aten.addmv, aten.dot}
    copies = {aten.clone, aten._to_copy, aten.copy_, aten.contiguous}
    scan_file = os.path.join("ops", "ssd.py")

    def in_scan() -> bool:
        f = sys._getframe()
        while f is not None:
            if f.f_code.co_filename.endswith(scan_file):
                return True
            f = f.f_back
        return False

    def distinct(t) -> int:  # values a tensor holds (an expanded dimension holds one)
        n = 1
        for size, stride in zip(t.shape, t.stride()):
            n *= size if stride != 0 else 1
        return n

    class Boundary(TorchDispatchMode):
        def __init__(self, params, inputs):
            super().__init__()
            self.params = {p.untyped_storage().data_ptr() for p in params}
            self.inputs = {t.untyped_storage().data_ptr() for t in inputs}
            self.root: dict[int, int] = {}  # storage -> the storage it is a copy of
            self.values: dict[int, int] = {}  # root storage -> values (the largest view seen)
            self.operands: set[int] = set()  # roots read by a product
            self.keep: list = []  # every tensor seen stays alive: no storage address is reused while counting

        def _root(self, t) -> int:
            ptr = t.untyped_storage().data_ptr()
            while ptr in self.root:
                ptr = self.root[ptr]
            return ptr

        def _note(self, t, operand: bool):
            r = self._root(t)
            if r in self.params:
                return
            self.values[r] = max(self.values.get(r, 0), distinct(t))
            if operand:
                self.operands.add(r)

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            packet = func.overloadpacket
            if packet in copies:
                src = args[1] if packet is aten.copy_ else args[0]
                dst = args[0] if packet is aten.copy_ else out
                if isinstance(src, torch.Tensor) and isinstance(dst, torch.Tensor):
                    s, d = self._root(src), dst.untyped_storage().data_ptr()
                    if s != d and d not in self.values:  # (a copy into a tensor already counted stays that one)
                        self.root[d] = s
                    self.keep += [src, dst]
            elif packet in products and not in_scan():
                for a in list(args) + list((kwargs or {}).values()):
                    if isinstance(a, torch.Tensor):
                        self._note(a, operand=True)
                        self.keep.append(a)
                if isinstance(out, torch.Tensor):
                    self._note(out, operand=False)
                    self.keep.append(out)
            return out

        def bytes(self, mode: str) -> int:
            """The lower bound of the module docstring for what was recorded (activations only)."""
            total = 0
            for r, n in self.values.items():
                is_input = r in self.inputs
                total += n * (1 if is_input else 2)  # forward: written once and read once (the input: read)
                if mode == "train":
                    total += 0 if is_input else 2 * n  # its gradient written once and read once
                    total += n if r in self.operands else 0  # read again for the weight gradient
            return total * BYTES_PER_VALUE

    return Boundary


def count_activation_bytes(model, batch: int, n_times: int, mode: str) -> int:
    """Lower bound on the bytes of activations one step moves (forward traced; the backward's share follows from it
    as the module docstring says)."""
    import torch

    x, coords = _inputs(batch, n_times)
    model.train(mode == "train")
    Boundary = _boundary_mode()
    with torch.set_grad_enabled(mode == "train"):
        with Boundary(model.parameters(), [x]) as trace:
            model(x, coords)
    return trace.bytes(mode)


def parameter_bytes(n_params: int, mode: str) -> int:
    """Parameters read once in bf16; a train step adds the optimizer's float32 traffic."""
    return n_params * (BYTES_PER_VALUE + (OPTIMIZER_BYTES_PER_PARAM if mode == "train" else 0))


def linear_fit(counts: dict[int, int], n_times: int) -> dict:
    """``{"constant": a, "per_sample_step": s}`` from counts at two batches of one window: count = a + s * batch * T."""
    (b0, c0), (b1, c1) = sorted(counts.items())[:2]
    s = (c1 - c0) / ((b1 - b0) * n_times)
    return {"constant": c0 - s * b0 * n_times, "per_sample_step": s}


def extend(fit: dict, batch: int, n_times: int) -> float:
    return fit["constant"] + fit["per_sample_step"] * batch * n_times


def work_model(n_times: int = COUNT_STEPS, batches=COUNT_BATCHES) -> dict:
    """FLOPs and activation bytes per step for train and infer, as linear fits in batch x time (see the module)."""
    model, einsum = build_model(), build_model("einsum")
    out = {"n_params": int(sum(p.numel() for p in model.parameters())), "count_n_times": n_times,
           "count_batches": list(batches)}
    for mode in ("train", "infer"):
        flops = {b: count_flops(model, b, n_times, mode) for b in batches}
        useful = {b: count_flops(einsum, b, n_times, mode) for b in batches}
        act = {b: count_activation_bytes(model, b, n_times, mode) for b in batches}
        out[mode] = {"flops_counted": {str(b): v for b, v in flops.items()},
                     "activation_bytes_counted": {str(b): v for b, v in act.items()},
                     "flops": linear_fit(flops, n_times), "activation_bytes": linear_fit(act, n_times),
                     # the same step with the bottleneck's projections as per-head einsums (no block-diagonal zeros)
                     "flops_einsum_projections": linear_fit(useful, n_times)}
    return out


# --------------------------------------------------------------------------- against the measured rows
def fractions(flops: float, bytes_moved: float, ms: float, spec: dict = H100_SXM) -> dict:
    """Achieved TFLOP/s and GB/s of a step of ``ms`` milliseconds, and their fractions of ``spec``'s peaks."""
    s = ms / 1e3
    tflop_s = flops / s / 1e12
    gb_s = bytes_moved / s / 1e9
    ridge = spec["bf16_dense_tflop_s"] * 1e12 / (spec["memory_tb_s"] * 1e12)  # FLOP per byte
    frac_compute = tflop_s / spec["bf16_dense_tflop_s"]
    frac_memory = gb_s / (spec["memory_tb_s"] * 1e3)
    return {"achieved_tflop_s": tflop_s, "achieved_gb_s": gb_s, "fraction_of_bf16_peak": frac_compute,
            "fraction_of_memory_bandwidth": frac_memory, "flop_per_byte": flops / bytes_moved if bytes_moved else None,
            "ridge_flop_per_byte": ridge, "closer_limit": "memory bandwidth" if frac_memory >= frac_compute else
            "compute (bf16 matrix peak)"}


def headline_rows(bench: dict, whole_night: dict | None) -> list[dict]:
    """SAMBA's 60-s train and inference rows at their best batch (throughput sweep) and its 8-h inference row at batch
    1 (context sweep); missing ones are left out."""
    out = []
    ok = [r for r in bench["results"] if r["model"] == "SAMBA" and r["status"] == "ok"]
    for mode in ("train", "infer"):
        rows = [r for r in ok if r.get("sweep") == "throughput" and r["context_s"] == 60 and r["mode"] == mode]
        if rows:
            out.append(("bench", f"60-s {mode}, best batch", max(rows, key=lambda r: r["eeg_s_per_s"])))
    if whole_night is not None:
        rows = [r for r in whole_night["results"] if r["model"] == "SAMBA" and r["status"] == "ok"
                and r.get("sweep") == "context" and r["context_s"] == 28800 and r["batch"] == 1
                and r["mode"] == "infer"]
        if rows:
            out.append(("whole_night", "8-h infer, batch 1", rows[0]))
    return [{"source": src, "row": label, "model": r["model"], "context_s": r["context_s"], "n_times": r["n_times"],
             "batch": r["batch"], "mode": r["mode"], "ms": r["ms"], "eeg_s_per_s": r["eeg_s_per_s"],
             "peak_mib": r.get("peak_mib")} for src, label, r in out]


def _source(path: Path, doc: dict) -> dict:
    return {"file": str(path), **{k: doc.get(k) for k in ("commit", "device", "date", "command", "samba_execution",
                                                          "dtype")}}


def limits(bench_path, whole_night_path=None, spec: dict = H100_SXM, work: dict | None = None,
           command: str | None = None) -> dict:
    """The physical-limits document for the headline rows of the given benchmark JSONs."""
    import torch

    from ..errors import InputError
    from .report import git_commit, read_bench, today

    docs = {"bench": (Path(bench_path), read_bench(bench_path))}
    if whole_night_path:
        docs["whole_night"] = (Path(whole_night_path), read_bench(whole_night_path))
    for path, doc in docs.values():
        if "H100" not in doc["device"] or "HBM3" not in doc["device"]:
            raise InputError(f"{path}: measured on {doc['device']!r}, not the H100 SXM (HBM3) whose peaks "
                             "samba.bench.limits.H100_SXM holds")
    work = work or work_model()
    rows = []
    for row in headline_rows(docs["bench"][1], docs.get("whole_night", (None, None))[1]):
        w = work[row["mode"]]
        flops = extend(w["flops"], row["batch"], row["n_times"])
        moved = extend(w["activation_bytes"], row["batch"], row["n_times"]) + parameter_bytes(work["n_params"],
                                                                                              row["mode"])
        f = fractions(flops, moved, row["ms"], spec)
        rows.append({**row, "source": str(docs[row["source"]][0]), "flops_per_step": flops,
                     "flops_per_step_einsum_projections": extend(w["flops_einsum_projections"], row["batch"],
                                                                 row["n_times"]),
                     "bytes_per_step_lower_bound": moved,
                     **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in f.items()}})
    return {
        "what": "fraction of the GPU's bf16 matrix peak and memory bandwidth that SAMBA's measured steps reach",
        "command": command,
        "commit": git_commit(),
        "date": today(),
        "torch": torch.__version__,
        "counted_on": "cpu, plain-PyTorch kernels (KernelConfig(backend='torch')), float32 (bytes counted at bf16)",
        "gpu_spec": spec,
        "sources": {k: _source(p, d) for k, (p, d) in docs.items()},
        "method": {
            "flops": "torch.utils.flop_counter.FlopCounterMode over one step of SAMBA(SAMBAConfig()): matrix products "
                     "and convolutions (incl. the SSD scan's chunk-level products and the backward); elementwise ops "
                     "are not counted. Bottleneck projections as the GPU's dense block-diagonal GEMMs; bottleneck "
                     "reference scan at the GPU kernel's chunk (64). Train: forward + MSE loss + backward; infer: "
                     "forward under no_grad.",
            "bytes": "lower bound, bf16: every tensor a matrix product or convolution outside the scan reads or writes "
                     "is written once and read once (the input: read once); train adds each such tensor's gradient "
                     "(written once, read once) and one more read of each product operand; parameters read once "
                     "(bf16); train adds the optimizer's float32 traffic (8 x 4 bytes a parameter). Scan states, "
                     "recomputation and cache misses are left out.",
            "scaling": f"counted at batch {' and '.join(str(b) for b in work['count_batches'])} of "
                       f"{work['count_n_times']} time steps, extended as constant + per_sample_step * batch * "
                       "n_times",
        },
        "work": work,
        "rows": rows,
    }


# --------------------------------------------------------------------------- command line
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m samba.bench.limits",
                                description="fractions of the H100 SXM's peaks reached by SAMBA's benchmark rows")
    p.add_argument("--bench", required=True, help="the throughput benchmark JSON (60-s rows)")
    p.add_argument("--whole-night", default=None, help="the whole-night benchmark JSON (8-h rows at batch 1)")
    p.add_argument("--out", required=True, help="JSON file to write")
    a = p.parse_args(argv)
    from ..errors import SambaError
    from .report import write_json

    command = "python -m samba.bench.limits " + " ".join(sys.argv[1:] if argv is None else argv)
    try:
        doc = limits(a.bench, a.whole_night, command=command)
    except SambaError as e:
        print(f"samba: error: {e}", file=sys.stderr)
        return e.exit_code
    write_json(doc, Path(a.out))
    for r in doc["rows"]:
        print(f'{r["row"]:24s} {r["ms"]:9.2f} ms  {r["achieved_tflop_s"]:7.1f} TFLOP/s '
              f'({r["fraction_of_bf16_peak"]:.1%})'
              f'  >= {r["achieved_gb_s"]:7.0f} GB/s ({r["fraction_of_memory_bandwidth"]:.1%})', file=sys.stderr)
    print(a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
