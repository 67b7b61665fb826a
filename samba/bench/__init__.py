"""Side-by-side efficiency benchmark: SAMBA against braindecode's EEG foundation models.

``samba bench --device cuda|cpu --out FILE.json`` (:func:`bench_main`) and :func:`run_bench` measure every
model at its native sampling rate on the same 19-channel 10-20 montage. The package reads in this order:

* ``workloads`` -- what is measured: the models, windows, batches and the sweeps of each plan;
* ``peers``     -- the braindecode peers (BIOT, LUNA, CBraMod, Labram, EEGPT, EEGNet) and how each is built;
* ``runner``    -- timing one row, the batch-doubling rule, failure rows, the time budget, the whole run;
* ``report``    -- the JSON (schema, provenance, summary against the targets, merge), tables and figures;
* ``cli``       -- ``samba bench``, whose arguments are parsed before torch is imported;
* ``limits``    -- what fraction of the GPU's bf16 peak and memory bandwidth a measured row reaches
  (``python -m samba.bench.limits``).

Names are resolved lazily, so ``from samba.bench import bench_main`` stays light.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "workloads": ("CHANNELS_1020", "MODEL_NAMES", "MODEL_SPECS", "ModelSpec", "Profile", "SWEEPS",
                  "samba_available"),
    "runner": ("measure_row", "run_bench"),
    "report": ("AUTHORS_REFERENCE", "ROW_FIELDS", "STATUSES", "TARGETS", "merge_bench", "plot_bench", "summarize"),
    "cli": ("bench_main",),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name):
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
