#!/usr/bin/env python3
"""usage: python scripts/make_figures.py

Redraw the figures of committed measurements, from the numbers committed beside them.

- results/bench_*.json              -> figures/bench_*_{context,throughput,realtime}.png (samba.bench.plot_bench;
                                       the current runs only: results/archive/ is not drawn)
- results/cdse_weights/<task>.npz  -> figures/cdse_weights_<task>.png (CDSE weights across fine-tuning)
- checkpoints/samba_pretrained_metrics.csv -> figures/pretraining_curve.png
No number is computed here; every figure is a drawing of a committed file.
"""
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FIG = ROOT / "figures"

# Target channels shown per task: where the paper reports task-relevant maps (frontal for workload,
# sensorimotor for motor imagery, occipital for eyes closed, centro-parietal for P300).
ROWS = {"eegmat-workload": ["Fz", "F3", "Cz", "Pz"], "eegmmidb-mi": ["C3", "Cz", "C4", "Pz"],
        "eyes-open-closed": ["Fz", "Cz", "O1", "O2"], "muse-p300": ["Fz", "Cz", "Pz", "Oz"]}


def cdse_over_training(npz: Path, out: Path, rows) -> Path:
    from samba.viz import plot_spatial_weights

    d = np.load(npz, allow_pickle=False)
    W, epochs = d["weights"], d["epochs"]  # (E, O, C), (E,)
    picks = sorted({0, len(epochs) // 2, len(epochs) - 1})
    fig, axes = plt.subplots(len(picks), len(rows), figsize=(2.6 * len(rows), 2.6 * len(picks)), squeeze=False)
    for i, e in enumerate(picks):
        plot_spatial_weights(W[e], list(d["ch_names"]), target=list(d["target_channels"]), rows=rows,
                             axes=axes[i], colorbar=False)
        axes[i, 0].set_ylabel(f"epoch {int(epochs[e])}")
    fig.suptitle(f"{npz.stem}: CDSE weights over fine-tuning (pretrained init, seed 0)")
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return out


def main():
    FIG.mkdir(exist_ok=True)
    from samba.bench import plot_bench
    from samba.viz import plot_curves

    for js in sorted((ROOT / "results").glob("bench_*.json")):
        for p in plot_bench(js, FIG):
            print(p)
    for npz in sorted((ROOT / "results" / "cdse_weights").glob("*.npz")):
        print(cdse_over_training(npz, FIG / f"cdse_weights_{npz.stem}.png", ROWS.get(npz.stem, ["Fz", "Cz", "Pz", "Oz"])))
    csv = ROOT / "checkpoints" / "samba_pretrained_metrics.csv"
    if csv.is_file():
        fig, ax = plt.subplots(figsize=(6, 3.5))
        plot_curves(csv, x="step", y=["loss", "val_loss"], ax=ax, title="SAMBA pretraining (H200, full profile)")
        fig.savefig(FIG / "pretraining_curve.png", dpi=110, bbox_inches="tight")
        print(FIG / "pretraining_curve.png")


if __name__ == "__main__":
    main()
