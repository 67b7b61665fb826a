"""What the benchmark measures: the models, the windows and batches, and the sweeps of each plan.

Every model sees the same 19-channel 10-20 montage at its native sampling rate, so a context of
``context_s`` seconds is ``round(context_s * sfreq)`` samples (rounded down to the model's patch size).
The plans:

* **GPU** (``cuda``): the *throughput* sweep (best EEG-seconds per wall-second at a saturating batch,
  10-s and 60-s windows, train and inference), the *latency* row (batch-1 inference of a 10-s window)
  and the *context* sweep (train step and inference at batch 4, 4 s to 600 s);
* **CPU**: the *real-time* sweep (inference EEG-seconds per wall-second at batch 1 and 8, 10-s and
  60-s windows).

Torch is imported only inside the builders, so the command line can parse its arguments first.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import UsageError
from .peers import BASELINES, PEERS, build_peer

# The 19-channel 10-20 montage every model sees.
CHANNELS_1020 = ("Fp1", "Fp2", "F7", "F3", "Fz", "F4", "F8", "T7", "C3", "Cz", "C4", "T8",
                 "P7", "P3", "Pz", "P4", "P8", "O1", "O2")
SWEEPS = ("throughput", "latency", "context")  # the GPU plan's sweeps, in their order of importance
# SAMBA's train rows at this context or longer use activation checkpointing (the memory option for
# minutes-long windows; docs/performance.md); shorter windows fit easily without it.
# SAMBA_BENCH_CHECKPOINT_FROM_S overrides it (a huge value switches checkpointing off in the benchmark).
SAMBA_CHECKPOINT_FROM_S = float(os.environ.get("SAMBA_BENCH_CHECKPOINT_FROM_S", "300"))
# Kernel settings of those checkpointed rows, on top of SAMBA_KERNELS: the scan backward that sums each group's dB
# and dC on chip. The "split" default writes them per head in float32 first, (B, L, 8 heads, 16) twice for the
# full-rate block, 1 KiB a time step, and that block's backward is the peak of a long train step (1 h, batch 1:
# 3,741 vs 4,051 MiB, scripts/train_peak_proxy.py). For every head it took 73.6 vs 72.4 ms per step at batch 128 x
# 60 s (docs/performance.md), so the short rows keep "split".
SAMBA_CHECKPOINT_KERNELS = {"scan_backward": "group"}


@dataclass
class ModelSpec:
    """How to size one benchmarked model's input."""

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
    # SAMBA: 128 Hz, three 2x poolings (T % 8 == 0); a larger share covers Triton's compile and autotune
    "SAMBA": ModelSpec("SAMBA", 128.0, granule=8, weight=3.0, kind="reconstruction"),
    **{name: ModelSpec(name, **kw) for name, kw in PEERS.items()},
}
MODEL_NAMES = tuple(MODEL_SPECS)
_ALIASES = {**{n.lower(): n for n in MODEL_NAMES}, "eegnetv4": "EEGNet"}


def spec_of(name: str) -> ModelSpec:
    """The registered spec, or a 128-Hz stand-in for a model injected by a test's builder."""
    return MODEL_SPECS.get(name) or ModelSpec(name, 128.0)


def is_peer(name: str) -> bool:
    """A foundation-model peer (counts for the "best peer" of a target)."""
    return name != "SAMBA" and name not in BASELINES


def canonical(name: str) -> str:
    key = name.strip().lower()
    if key not in _ALIASES:
        raise UsageError(f"unknown model {name!r}; choose from {', '.join(MODEL_NAMES)}")
    return _ALIASES[key]


def samba_available() -> bool:
    try:
        from .. import SAMBA, SAMBAConfig  # noqa: F401
        return True
    except Exception:
        return False


def coords_1020():
    """(19, 3) electrode positions in metres, MNE head frame."""
    import numpy as np

    from ..montage import positions

    return np.asarray(positions(list(CHANNELS_1020)), dtype=np.float32)


def build_samba(n_times: int, samba_backend: str, checkpointed: bool = False):
    """Returns (model, call): ``call(model, x)`` gives SAMBA's reconstruction of ``x`` (B, 19, n_times).
    ``checkpointed``: a train row with activation checkpointing, which takes SAMBA_CHECKPOINT_KERNELS too."""
    from dataclasses import replace

    import torch

    from .. import SAMBA, SAMBAConfig

    from ..ops import KernelConfig

    kernels = KernelConfig.from_env().with_backend(samba_backend)
    model = SAMBA(SAMBAConfig(), kernels=replace(kernels, **SAMBA_CHECKPOINT_KERNELS) if checkpointed else kernels)
    coords = torch.as_tensor(coords_1020())  # (19, 3)
    on_device = {}

    def call(m, x):
        if x.device not in on_device:
            on_device[x.device] = coords.to(x.device)
        return m(x, on_device[x.device])

    return model, call


def build(spec: ModelSpec, n_times: int, samba_backend: str, checkpointed: bool = False):
    """Returns (model, call) where ``call(model, x)`` gives the output to take the loss on (``checkpointed``:
    SAMBA's settings for a train row with activation checkpointing)."""
    if spec.name == "SAMBA":
        return build_samba(n_times, samba_backend, checkpointed)
    return build_peer(spec.name, n_times, spec.sfreq, CHANNELS_1020)


def samba_backend_used(model, x) -> str | None:
    """The Mamba2 backend ("torch" | "triton" | "mamba_ssm") the built SAMBA resolves to for input ``x``."""
    try:
        from ..ops import resolve_backend

        return resolve_backend(model.kernels.backend, x)
    except Exception as err:
        return f"unresolved ({type(err).__name__}: {err})"[:200]


def mamba_ssm_unavailable_reason() -> str | None:
    try:
        from ..ops import upstream

        return upstream.mamba_ssm_unavailable_reason()
    except Exception as err:
        return f"unknown ({type(err).__name__})"


def kernel_settings(model) -> dict | None:
    """The model's kernel settings (``model.kernels.to_dict()``) where the model carries them."""
    kernels = getattr(model, "kernels", None)
    to_dict = getattr(kernels, "to_dict", None)
    return dict(to_dict()) if callable(to_dict) else None


@dataclass
class Profile:
    """One plan's sizes, repeats and time budget."""

    name: str
    contexts_s: tuple  # context sweep (GPU) / real-time windows (CPU)
    sweep_batch: int = 4
    throughput_contexts_s: tuple = (10, 60)
    throughput_modes: tuple = ("train", "infer")
    batches: tuple | None = None  # explicit throughput batches (None: doubling from batch_start)
    context_batches: tuple | None = None  # the context sweep's batches (None: sweep_batch); --batches sets both
    batch_start: int = 8
    latency: bool = True
    warmup: int = 3
    repeats: int = 5
    row_cap_s: float = 20.0
    budget_s: float = 480.0
    # Saturation: stop after `plateau_patience` doublings in a row that each gain less than `plateau` - 1.
    # A 5 % rule stopped SAMBA's 60-s train sweep at batch 256 while it still gained 3.1 % per doubling
    # (results/archive/bench_h200_5c96d94.json: batch 64 / 128 / 256 -> 110.4 k / 115.2 k / 118.8 k EEG-s/s);
    # 2 % holds every model to the same, stricter reading of "saturating batch".
    plateau: float = 1.02
    plateau_patience: int = 2
    sweeps: tuple = SWEEPS  # GPU: which of the throughput / latency / context sweeps run (one call each fits)


def make_profile(device: str, quick: bool, contexts_s, batches, budget_s, sweeps=None) -> Profile:
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
            raise UsageError(f"unknown sweeps {sorted(unknown)}; choose from {', '.join(SWEEPS)}")
        p.sweeps = tuple(w for w in SWEEPS if w in sweeps)
    if batches:
        p.batches = p.context_batches = tuple(int(b) for b in batches)
    if budget_s is not None:
        p.budget_s = float(budget_s)
    return p
