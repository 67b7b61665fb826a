"""Figures of the pretraining evidence: labelled axes with units, colour bars, one scale across compared panels.

    validation_curve(curve, baselines)        masked L1 vs EEG hours seen, baselines as horizontal lines
    embedding_tsne(features, y, subjects)     t-SNE of bottleneck embeddings, pretrained vs random init,
                                              coloured by class (top) and by subject (bottom)
    cdse_topomaps(weights, positions, steps)  CDSE weight maps over pretraining as small multiples (one colour
                                              scale, one colour bar); cdse_gif writes the same frames as a GIF
    cdse_over_pretraining(checkpoints, montages)   the CDSE weights of each snapshot for fixed montages, the
                                              numbers the two figures above draw (saved by save_cdse_over_pretraining)

    python -m samba.evaluation.figures --snapshots RUN/snapshots --final checkpoints/samba_pretrained \
        --out results/cdse_over_pretraining.npz          # + a .json sidecar with the provenance
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def heldout_baselines(doc: dict) -> dict[str, float]:
    """The horizontal lines of a held-out curve from ``results/pretraining.json``: every baseline of ``masked_l1``
    and, when the file has them, the classical AR reference from both edges and from the left edge only."""
    base = {k: v for k, v in doc["masked_l1"].items() if k != "checkpoint"}
    ref = doc.get("classical_reference")
    if ref:  # the best linear guess from the power spectrum (samba.evaluation.gap_smoother)
        base["AR reference (linear, from the corpus spectrum)"] = ref["masked_l1"]
        if "left_edge_only" in ref:  # the same, from the samples before each span alone
            base["AR reference, left edge only"] = ref["left_edge_only"]["masked_l1"]
    return base


def validation_curve(curve: list[dict], baselines: dict[str, float], ax=None):
    """``curve`` rows ``{"eeg_hours_seen", "masked_l1"}`` (reconstruction.curve); ``baselines`` name -> L1."""
    plt = _plt()
    ax = ax or plt.subplots(figsize=(6, 4))[1]
    pts = [(r["eeg_hours_seen"], r["masked_l1"]) for r in curve if r.get("eeg_hours_seen") is not None]
    if pts:
        h, l1 = zip(*sorted(pts))
        ax.plot(h, l1, "o-", color="k", label="SAMBA checkpoint")
    for (name, v), c in zip(baselines.items(), ("tab:red", "tab:blue", "tab:green", "tab:purple", "tab:orange")):
        ax.axhline(v, ls="--", color=c, label=name.replace("_", " "))
    ax.set_xlabel("EEG seen in pretraining (hours)")
    ax.set_ylabel("masked-sample L1 (units of robust s.d.)")
    ax.set_title("Held-out masked reconstruction")
    ax.legend(frameon=False)
    return ax.figure


def embedding_tsne(features: dict[str, np.ndarray], y: np.ndarray, subjects: np.ndarray, class_names=None, seed=0):
    """``features``: {"pretrained": (N, D), "random init": (N, D)}; one column per model, rows: class, subject."""
    from sklearn.manifold import TSNE

    plt = _plt()
    fig, axes = plt.subplots(2, len(features), figsize=(4.5 * len(features), 8), squeeze=False)
    for j, (name, F) in enumerate(features.items()):
        Z = TSNE(n_components=2, init="pca", random_state=seed, perplexity=min(30, max(5, len(F) // 4))).fit_transform(F)
        for i, (col, lab) in enumerate(((y, "class"), (subjects, "subject"))):
            ax = axes[i, j]
            for k in np.unique(col):
                name_k = class_names[k] if lab == "class" and class_names else str(k)
                ax.scatter(*Z[col == k].T, s=6, label=f"{lab} {name_k}")
            ax.set_title(f"{name}: coloured by {lab}")
            ax.set_xlabel("t-SNE 1 (a.u.)")
            ax.set_ylabel("t-SNE 2 (a.u.)")
            ax.legend(frameon=False, fontsize=7, markerscale=2)
    fig.tight_layout()
    return fig


def _topomap(ax, values, positions, vmin, vmax):
    import mne

    info = mne.create_info([f"c{i}" for i in range(len(values))], 128.0, "eeg")
    montage = mne.channels.make_dig_montage({f"c{i}": p for i, p in enumerate(positions)}, coord_frame="head")
    info.set_montage(montage)
    im, _ = mne.viz.plot_topomap(values, info, axes=ax, show=False, vlim=(vmin, vmax), cmap="viridis")
    return im


def cdse_topomaps(weights: np.ndarray, positions: np.ndarray, steps, target: int = 0, ncols: int = 5,
                  targets=None, target_names=None):
    """Small multiples of CDSE weight row ``target`` (over input electrodes) at each snapshot.

    weights (S, O, C), positions (C, 3) metres, steps (S,) labels. With ``targets`` (row indices) one row of
    panels per target channel instead (``ncols`` ignored). One colour scale for all panels, so a change between
    snapshots is a change of colour.
    """
    plt = _plt()
    rows_of = [target] if targets is None else list(targets)
    W = np.asarray(weights)[:, rows_of]  # (S, R, C)
    vmin, vmax = float(W.min()), float(W.max())
    if targets is None:
        panels = [(w, str(s)) for w, s in zip(W[:, 0], steps)]
        nrows, ncols = int(np.ceil(len(panels) / ncols)), ncols
    else:  # a grid: the snapshot above each column, the target channel left of each row
        names = target_names or [str(t) for t in rows_of]
        panels = [(W[k, r], str(steps[k]) if r == 0 else "") for r in range(len(rows_of)) for k in range(len(W))]
        nrows, ncols = len(rows_of), len(W)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.2 * ncols, 2.2 * nrows + 0.6), squeeze=False)
    im = None
    for ax, (w, title) in zip(axes.flat, panels):
        im = _topomap(ax, w, positions, vmin, vmax)
        ax.set_title(title, fontsize=8)
    if targets is not None:
        for r, name in enumerate(names):
            axes[r, 0].text(-0.12, 0.5, name, transform=axes[r, 0].transAxes, rotation=90, ha="right",
                            va="center", fontsize=10)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8, label="CDSE weight (fraction of the target channel)")
    return fig


def cdse_gif(weights: np.ndarray, positions: np.ndarray, steps, path, target: int = 0, fps: int = 2):
    """The frames of ``cdse_topomaps`` as a GIF (matplotlib PillowWriter), one colour scale and a colour bar."""
    from matplotlib.animation import PillowWriter

    plt = _plt()
    W = np.asarray(weights)[:, target]
    vmin, vmax = float(W.min()), float(W.max())
    fig, ax = plt.subplots(figsize=(3.5, 3.5))
    writer = PillowWriter(fps=fps)
    with writer.saving(fig, str(path), dpi=80):
        for k, (w, s) in enumerate(zip(W, steps)):
            ax.clear()
            im = _topomap(ax, w, positions, vmin, vmax)
            ax.set_title(f"CDSE weights, {s}")
            if k == 0:
                fig.colorbar(im, ax=ax, label="CDSE weight")
            writer.grab_frame()
    plt.close(fig)
    return path


# ------------------------------------------------------------------------- CDSE weights over pretraining
def cdse_over_pretraining(checkpoints, montages: dict[str, list[str]]) -> dict[str, np.ndarray]:
    """The CDSE weights of each checkpoint (in the order given) for fixed input montages.

    ``montages``: name -> electrode names (``samba.montage.positions`` places them). Returns arrays:
    ``steps`` (S,), ``eeg_hours_seen`` (S,) (NaN where a checkpoint does not record them), ``target_channels``
    (O,), and per montage ``weights_<name>`` (S, O, C) and ``channels_<name>`` (C,). The weights depend only on
    the CDSE parameters and the coordinates, so no data are needed.
    """
    import torch

    from samba.checkpoint import load_model
    from samba.montage import positions

    coords = {m: torch.from_numpy(np.asarray(positions(list(names)), np.float32)) for m, names in montages.items()}
    steps, hours, weights, targets = [], [], {m: [] for m in montages}, None
    for path in checkpoints:
        model, extra = load_model(path, map_location="cpu")
        model.eval()
        steps.append(int(extra.get("step", -1)))
        hours.append(float(extra["eeg_hours_seen"]) if extra.get("eeg_hours_seen") is not None else np.nan)
        with torch.no_grad():
            for m, c in coords.items():
                weights[m].append(model.spatial_weights(c).numpy().astype(np.float32))  # (O, C)
        names = [str(t) for t in model.target_channels]
        if targets is not None and names != targets:
            raise ValueError(f"{path}: target channels differ from the previous checkpoint's")
        targets = names
    if targets is None:
        raise ValueError("no checkpoints given")
    out = {"steps": np.asarray(steps, np.int64), "eeg_hours_seen": np.asarray(hours, np.float64),
           "target_channels": np.asarray(targets)}
    for m, names in montages.items():
        out[f"weights_{m}"] = np.stack(weights[m])  # (S, O, C)
        out[f"channels_{m}"] = np.asarray(list(names))
    return out


def save_cdse_over_pretraining(arrays: dict, out, provenance: dict) -> Path:
    """Write ``arrays`` to ``out`` (.npz, no pickled objects) and ``provenance`` to the .json beside it, atomically."""
    import io
    import json

    from samba.checkpoint import atomic_write_bytes

    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    out = Path(out)
    atomic_write_bytes(out, buf.getvalue())
    atomic_write_bytes(out.with_suffix(".json"), (json.dumps(provenance, indent=1) + "\n").encode())
    return out


def load_cdse_over_pretraining(path) -> tuple[dict, dict]:
    """``(arrays, provenance)`` of a file written by :func:`save_cdse_over_pretraining`."""
    import json

    path = Path(path)
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    side = path.with_suffix(".json")
    return arrays, (json.loads(side.read_text()) if side.is_file() else {})


MONTAGES = {"10-20": "10-20", "muse": "muse"}  # file key -> samba.montage.DEVICE_PRESETS name


PRETRAINING_TARGETS = ["Fz", "Cz", "Pz", "Oz"]  # the rows of the small multiples: the midline, front to back
GIF_TARGET = "Cz"


def draw_cdse_over_pretraining(arrays: dict, png, gif, montage: str = "10-20") -> list[Path]:
    """``figures/cdse_over_pretraining.png`` and ``.gif`` from `load_cdse_over_pretraining`'s arrays: the CDSE
    weights of the ``montage`` cap at each snapshot, rows ``PRETRAINING_TARGETS``, one colour scale and a colour bar
    (the GIF: ``GIF_TARGET``'s row). Both ``scripts/make_figures.py`` and notebook 09 draw it here."""
    from samba.montage import positions

    plt = _plt()
    W = arrays[f"weights_{montage}"]  # (S, O, C)
    pos = positions(list(arrays[f"channels_{montage}"]))
    targets = [str(t) for t in arrays["target_channels"]]
    labels = [f"step {s:,}\n{h:,.0f} EEG-hours" for s, h in zip(arrays["steps"], arrays["eeg_hours_seen"])]
    fig = cdse_topomaps(W, pos, labels, targets=[targets.index(t) for t in PRETRAINING_TARGETS],
                        target_names=PRETRAINING_TARGETS)
    fig.suptitle(f"CDSE weights of a {W.shape[-1]}-channel {montage} cap during pretraining "
                 "(rows: target channel; columns: snapshot, EEG hours seen)", fontsize=9)
    fig.savefig(png, dpi=100, bbox_inches="tight")
    plt.close(fig)
    cdse_gif(W, pos, [f"{GIF_TARGET}, {x.replace(chr(10), ', ')}" for x in labels], gif, target=targets.index(GIF_TARGET))
    return [Path(png), Path(gif)]


def main(argv=None) -> int:
    import argparse
    import datetime as _dt
    import sys

    from samba.checkpoint import load_checkpoint
    from samba.evaluation.reconstruction import snapshots
    from samba.evaluation.run import git_commit
    from samba.montage import DEVICE_PRESETS

    p = argparse.ArgumentParser(prog="python -m samba.evaluation.figures",
                                description="CDSE weights of pretraining snapshots -> .npz + .json provenance")
    p.add_argument("--snapshots", nargs="+", required=True, help="run folders or snapshot folders (step_XXXXXX)")
    p.add_argument("--final", default=None, help="the released checkpoint, placed among the snapshots by its step")
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    paths = []
    for s in a.snapshots:
        s = Path(s)
        paths += [s] if (s / "config.json").is_file() else snapshots(s)
    if a.final:
        paths.append(Path(a.final))
    # a snapshot whose step the final checkpoint repeats holds the same weights: keep the final one. The
    # release is the lowest-validation step, not always the last, so the maps are ordered by step.
    chosen, extras = {}, {}  # step -> checkpoint (-1: no step recorded, as cdse_over_pretraining labels it)
    for path in paths:
        extras[path] = load_checkpoint(path)["extra"]
        chosen[int(extras[path].get("step", -1))] = path
    unique = [chosen[k] for k in sorted(chosen)]
    arrays = cdse_over_pretraining(unique, {k: DEVICE_PRESETS[v] for k, v in MONTAGES.items()})
    run = extras[Path(a.final) if a.final else unique[-1]].get("run", {})
    provenance = {"what": "CDSE weights model.spatial_weights(positions) of each pretraining snapshot, "
                          "per input montage (weights_<montage>: snapshots x target channels x electrodes)",
                  "run": run, "checkpoints": [q.name for q in unique],
                  "extraction": {"commit": git_commit(), "date": _dt.date.today().isoformat(), "device": "cpu",
                                 "command": "python -m samba.evaluation.figures " + " ".join(
                                     argv if argv is not None else sys.argv[1:])}}
    print(save_cdse_over_pretraining(arrays, a.out, provenance))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
