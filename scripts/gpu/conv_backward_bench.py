#!/usr/bin/env python3
"""usage: python3 scripts/gpu/conv_backward_bench.py NAME=SETTINGS [...] [--batch 256] [--seconds 60] [--out FILE]

Times the causal conv's backward kernel (`samba.ops.triton.conv.conv_bwd`) alone at the shapes SAMBA's 60-s train
step gives it (bf16): the full-rate encoder layer (time steps 7,680, 544 channels, a slice of in_proj's 1,064-wide
output, as the fused Mamba2 block passes it), the half-rate decoder layer (3,840 x 544) and the quarter-rate one
(1,920 x 1,056 of 2,096). SETTINGS is what ``SAMBA_KERNELS`` takes (`samba.ops.KernelConfig`; e.g.
``conv_backward_tiles=32,64``, ``conv_backward_launch=8,3``), empty for the defaults; the
settings alternate in the order given, twice. Each row: the median of `triton.testing.do_bench` (ms), and the
rate at which it moves the bytes it must (x and the output gradient read once, dx written once, bf16) in GB/s,
against a device-to-device copy of the same bytes measured in the same process (the achievable bandwidth). The
gradients of every setting are checked against the defaults' before timing.
"""
import argparse
import datetime as dt
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

STAGES = (("enc1", 1), ("dec2_mamba", 2), ("dec3_mamba", 4))  # SAMBA's full Mamba2 blocks and their rate divisors


def layer_shapes(steps: int):
    """(name, time steps, conv channels, in_proj width, the conv input's first column, taps) of each block's causal
    conv in the paper-default model at a window of ``steps`` samples, read from the model itself."""
    from samba import SAMBA, SAMBAConfig

    model = SAMBA(SAMBAConfig())
    for name, div in STAGES:
        m = getattr(model, name).mamba
        C, _, k = m.conv1d.weight.shape  # (C, 1, k)
        yield name, steps // div, C, m.in_proj.out_features, m.d_ssm, k  # in_proj's output: z, then xBC, then dt


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("variants", nargs="+", help="NAME=SETTINGS (as SAMBA_KERNELS takes them; may be empty)")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--out", default="runs/conv_backward_bench.json")
    args = ap.parse_args(argv)
    import torch
    from triton.testing import do_bench

    from samba.bench.report import git_commit
    from samba.evaluation.run import atomic_write_json
    from samba.ops import KernelConfig
    from samba.ops.triton.conv import conv_bwd

    if not torch.cuda.is_available():
        print("conv_backward_bench: error: needs a CUDA GPU", file=sys.stderr)
        return 1
    try:
        variants = [(name, KernelConfig.from_env({"SAMBA_KERNELS": settings}))
                    for name, _, settings in (v.partition("=") for v in args.variants)]
    except Exception as e:  # a bad setting: one line
        print(f"conv_backward_bench: error: {e}", file=sys.stderr)
        return 2
    doc = {"device": torch.cuda.get_device_name(0), "commit": git_commit(), "date": dt.date.today().isoformat(),
           "torch": torch.__version__,
           "command": " ".join(["python3 scripts/gpu/conv_backward_bench.py", *(argv or sys.argv[1:])]),
           "batch": args.batch, "rows": []}
    torch.manual_seed(0)
    steps = int(args.seconds * 128)
    for layer, L, C, width, start, k in layer_shapes(steps):
        zx = torch.randn(args.batch, L, width, device="cuda", dtype=torch.bfloat16)
        x = zx[..., start:start + C]  # xBC: a slice of in_proj's output, unit channel stride
        g = torch.randn(args.batch, L, C, device="cuda", dtype=torch.bfloat16)
        w = torch.randn(C, k, device="cuda") * 0.5
        b = torch.randn(C, device="cuda") * 0.1
        dbuf = torch.empty_like(zx)
        dx = dbuf[..., :C]
        need = 3 * args.batch * L * C * 2  # bytes: x, g read; dx written
        src, dst = torch.empty(need // 2, dtype=torch.uint8, device="cuda"), torch.empty(need // 2, dtype=torch.uint8,
                                                                                       device="cuda")
        copy_ms = do_bench(lambda: dst.copy_(src), warmup=25, rep=200)
        copy_gbs = need / (copy_ms * 1e-3) / 1e9  # a copy moves need // 2 each way: need bytes in all
        del src, dst
        ref = conv_bwd(x, w, b, g, dx=dx)
        ref = [t.float().clone() for t in ref]
        for rep in range(2):
            for name, kernels in variants:
                got = conv_bwd(x, w, b, g, dx=dx, kernels=kernels)
                err = max(((a.float() - r).norm() / r.norm()).item() for a, r in zip(got, ref))
                ms = do_bench(lambda: conv_bwd(x, w, b, g, dx=dx, kernels=kernels), warmup=25, rep=200)
                row = {"layer": layer, "L": L, "C": C, "variant": name, "setting": str(kernels), "repeat": rep,
                       "ms": ms, "gb_per_s": need / (ms * 1e-3) / 1e9, "copy_gb_per_s": copy_gbs,
                       "rel_err_vs_first": err}
                doc["rows"].append(row)
                print(f"{layer} L={L} C={C} {name:>14s} rep {rep}: {ms:.3f} ms, {row['gb_per_s']:.0f} GB/s "
                      f"(copy {copy_gbs:.0f}), err {err:.1e}", flush=True)
                atomic_write_json(doc, args.out)
        del zx, g, dbuf
        torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
