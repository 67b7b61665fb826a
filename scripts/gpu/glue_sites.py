#!/usr/bin/env python3
"""usage: python3 scripts/gpu/glue_sites.py [BATCH] [--seconds 60] [--out FILE] [--device cuda|cpu]

Which lines of SAMBA issue the train step's PyTorch operators ("glue": copies, element-wise ops, sums, products
outside the fused kernels), and how much GPU time each takes. The kernel profile (`profile_step.py`) names
operators and shapes but not the code that launched them, and half of them run in the backward pass, where the
Python stack is autograd's. Here one eager 60-s train step (after three untimed ones; bf16 autocast, the benchmark's
loss, as in `profile_step.py`) runs under `torch.profiler` and a dispatch mode that wraps every aten operator in a
profiler range named after its site, so each range's GPU time is that of the kernels the operator launched:

- in the forward, the innermost frame in ``samba/`` that called it;
- in the backward, the autograd node running it (e.g. ``TransposeBackward0``) and the forward site that made that node
  (recorded by anomaly mode, without its NaN checks), or, inside one of SAMBA's own autograd Functions, the frame in
  ``samba/`` as in the forward.

The Triton kernels SAMBA launches itself are not aten operators and are counted only in the total. The table is
sorted by GPU time and written as text (FILE) with the device, commit and command; the times are for one step at
BATCH. On CPU (``--device cpu``, the torch backend) they are wall times and the sites those of the CPU path: a check
of the script, not of the GPU step.
"""
import argparse
import sys
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
ROOT = Path(__file__).resolve().parents[2]
PKG = str(ROOT / "samba")


def _samba_frame(frames) -> str | None:
    """The innermost frame of SAMBA's package among ``frames`` (outermost first), as ``path:line function``."""
    for f in reversed(frames):
        if f.filename.startswith(PKG):
            return f"{Path(f.filename).relative_to(ROOT)}:{f.lineno} {f.name}"
    return None


def _forward_site(node) -> str:
    """The forward site that created autograd ``node``, from anomaly mode's traceback (a formatted stack)."""
    lines = node.metadata.get("traceback_", []) if node is not None else []
    site = None
    for entry in lines:  # each entry: '  File "...", line N, in fn\n    code\n'
        head = entry.strip().splitlines()[0] if entry.strip() else ""
        if head.startswith("File ") and PKG in head:
            path = head.split('"')[1]
            line = head.split("line ")[1].split(",")[0]
            fn = head.rsplit("in ", 1)[1]
            site = f"{Path(path).relative_to(ROOT)}:{line} {fn}"
    return site or "?"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("batch", type=int, nargs="?", default=128)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    ap.add_argument("--out", default="runs/profiles/glue_sites.txt")
    ap.add_argument("--rows", type=int, default=60)
    args = ap.parse_args(argv)
    if args.batch < 1:
        ap.error("BATCH must be >= 1")

    import torch
    from torch.autograd import DeviceType
    from torch.autograd.profiler import record_function
    from torch.profiler import ProfilerActivity, profile
    from torch.utils._python_dispatch import TorchDispatchMode

    from samba.bench.report import git_commit
    from samba.bench.workloads import build, coords_1020, spec_of

    cuda = args.device == "cuda"
    if cuda and not torch.cuda.is_available():
        print("glue_sites: error: needs a CUDA GPU (or --device cpu)", file=sys.stderr)
        return 1
    spec = spec_of("SAMBA")
    n = spec.n_times(args.seconds)
    model = build(spec, n, "auto" if cuda else "torch")[0].to(args.device).train()
    x = torch.randn(args.batch, 19, n, device=args.device)
    coords = torch.as_tensor(coords_1020(), device=args.device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=cuda)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(args.device, dtype=torch.bfloat16, enabled=cuda):
            out = model(x, coords)
        out.float().pow(2).mean().backward()
        opt.step()

    MARK = "glue|"

    class Sites(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, a=(), kw=None):
            node = torch._C._current_autograd_node()
            own = _samba_frame(traceback.extract_stack()[:-1])
            if node is not None:
                site = f"[bwd {node.name()}] " + (own if own and "backward" in own else _forward_site(node))
            else:
                site = own or "(outside samba)"
            with record_function(f"{MARK}{func.overloadpacket.__name__}|{site}"):
                return func(*a, **(kw or {}))

    for _ in range(3):
        step()
    if cuda:
        torch.cuda.synchronize()
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=acts) as prof:
        with torch.autograd.detect_anomaly(check_nan=False), Sites():
            step()
        if cuda:
            torch.cuda.synchronize()
    rows = []  # (ms, calls, op, site): the GPU time of the kernels each operator launched (CPU: its wall time)
    for e in prof.key_averages():
        # each range is recorded twice on CUDA, on the host (its kernels' time as device time) and as a GPU-side
        # annotation; the host one is counted
        if e.key.startswith(MARK) and e.device_type == DeviceType.CPU:
            _, op, site = e.key.split("|", 2)
            us = e.device_time_total if cuda else e.cpu_time_total
            rows.append((us / 1e3, e.count, op, site))
    total = sum(r[0] for r in rows)
    kernels = float("nan")
    if cuda:  # kernels only: not the GPU-side spans of ranges (ours, or the optimizer's own record_function)
        kernels = sum(e.self_device_time_total for e in prof.key_averages()
                      if e.device_type == DeviceType.CUDA and not getattr(e, "is_user_annotation", False)) / 1e3
    dev = torch.cuda.get_device_name(0) if cuda else "CPU"
    lines = [f"# {dev}, commit {git_commit()}, torch {torch.__version__}: python3 scripts/gpu/glue_sites.py "
             f"{args.batch} --seconds {args.seconds:g} --device {args.device} (one eager train step)",
             f"# GPU time of the step's kernels: {kernels:.2f} ms; of them launched by aten operators: {total:.2f} ms "
             f"over {sum(r[1] for r in rows)} calls (the rest: SAMBA's Triton kernels)" if cuda else
             f"# aten operators' wall time: {total:.2f} ms over {sum(r[1] for r in rows)} calls",
             f"{'ms':>9} {'calls':>6}  {'op':<28} site"]
    for ms, k, op, site in sorted(rows, key=lambda r: -r[0])[:args.rows]:
        lines.append(f"{ms:9.3f} {k:6d}  {op:<28} {site}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:40]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
