#!/usr/bin/env python3
"""usage: python scripts/train_peak_proxy.py SECONDS [--batch B] [--where]

A CPU estimate of the GPU peak memory (``torch.cuda.max_memory_allocated``) of SAMBA's eager train step in
`samba bench` (bf16 autocast, AdamW, the default model, 19 channels at 128 Hz), for a machine without a GPU.

It runs the CUDA code path itself on CPU tensors: ``Tensor.is_cuda`` reads True, the Triton kernels are stubs whose
launches do nothing, autocast is CPU bf16. Every buffer that the launch code allocates is allocated for real (with
garbage values: nothing computed here means anything), so the allocation trace is the GPU's; the peak is the largest
sum of live bytes in the profiler's allocation events, plus the parameters, AdamW's state and the input. Against an
H100 (results/bench_h100_whole_night.json): 1-h step 5,035 MiB here vs 5,123 measured, 10 min 853 vs 929 (the GPU
adds about 80 MiB of library workspace). Settings are the benchmark's: from SAMBA_CHECKPOINT_FROM_S on, activation
checkpointing with one sample per piece and SAMBA_CHECKPOINT_KERNELS; SAMBA_KERNELS applies as there.

--where: also list the tensors of 1 MiB or more alive at the peak, with the line that made each (slower).
"""
import argparse
import sys
import traceback
import types
import weakref
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's samba, whichever Python runs the script


class _Any:  # triton.language at kernel definition time: any attribute, any call
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return self

    def __call__(self, *args, **kwargs):
        return self


class _Kernel:  # a @triton.jit function: kernel[grid](...) does nothing
    def __init__(self, fn):
        self.fn = fn

    def __getitem__(self, grid):
        return lambda *args, **kwargs: None


def _stub_triton():
    triton = types.SimpleNamespace(jit=lambda fn=None, **kw: _Kernel(fn) if fn else _Kernel,
                                   cdiv=lambda a, b: -(-a // b),
                                   next_power_of_2=lambda n: 1 << (int(n) - 1).bit_length())
    import samba.ops.triton as kernels  # the kernel files read `triton` and `tl` from here when first imported

    kernels.triton, kernels.tl = triton, _Any()
    torch.Tensor.is_cuda = property(lambda self: True)
    torch.cuda.is_current_stream_capturing = lambda: False


def _peak_of(prof) -> int:
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
                    if e.name() == "[memory]" and e.device_type() == torch._C._autograd.DeviceType.CPU)
    live = peak = 0
    for _, n in events:
        live += n
        peak = max(peak, live)
    return peak


class _Where(torch.utils._python_dispatch.TorchDispatchMode):
    """Tensors of >= 1 MiB alive at the largest total, each with the samba line that made it."""

    def __init__(self):
        super().__init__()
        self.live, self.now, self.peak = {}, 0, (0, {})

    def _free(self, key):
        self.now -= self.live.pop(key)[0]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if not isinstance(t, torch.Tensor) or t.untyped_storage().nbytes() < 2**20:
                continue
            s = t.untyped_storage()
            if s.data_ptr() in self.live:
                continue
            line = next((f"{f.filename.split('/samba/')[-1]}:{f.lineno}" for f in reversed(traceback.extract_stack())
                         if "/samba/" in f.filename), "?")
            self.live[s.data_ptr()] = (s.nbytes(), f"{func.__name__} {tuple(t.shape)} {t.dtype}", line)
            weakref.finalize(s, self._free, s.data_ptr())
            self.now += s.nbytes()
            if self.now > self.peak[0] + 2**20:
                self.peak = (self.now, dict(self.live))
        return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("seconds", type=float)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--where", action="store_true")
    a = ap.parse_args()
    _stub_triton()
    from samba.bench.workloads import MODEL_SPECS, SAMBA_CHECKPOINT_FROM_S, build_samba

    n_times = MODEL_SPECS["SAMBA"].n_times(a.seconds)
    checkpointed = a.seconds >= SAMBA_CHECKPOINT_FROM_S
    model, call = build_samba(n_times, "triton", checkpointed)
    model.cfg.activation_checkpointing = checkpointed
    model.cfg.checkpoint_piece_tokens = n_times if checkpointed else None
    model.train()
    x = torch.randn(a.batch, 19, n_times)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = call(model, x)
        out.float().pow(2).mean().backward()
        opt.step()

    step()  # AdamW's state exists from here on, as after the benchmark's warm-up
    held = sum(t.nbytes for t in [x, *model.parameters(),
                                  *(v for s in opt.state.values() for v in s.values() if torch.is_tensor(v))])
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    peak = _peak_of(prof) + held
    steps = a.batch * n_times
    print(f"{a.seconds:g} s x batch {a.batch} ({n_times} steps), checkpointing {checkpointed}, "
          f"{model.kernels.to_dict()['scan_backward_used_wide']} scan backward: peak {peak / 2**20:,.1f} MiB, "
          f"{peak / steps:,.0f} bytes per time step")
    if a.where:
        torch.autograd.profiler.record_function.__enter__ = lambda self: self  # profiler ops in the optimizer
        torch.autograd.profiler.record_function.__exit__ = lambda self, *exc: None
        with _Where() as where:
            step()
        total, live = where.peak
        print(f"tensors of >= 1 MiB at their peak ({total / 2**20:,.1f} MiB), bytes per time step:")
        for n, what, line in sorted(live.values(), key=lambda v: -v[0]):
            print(f"{n / steps:8,.0f}  {what:48s} {line}")


if __name__ == "__main__":
    main()
