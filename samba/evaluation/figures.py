"""Figures of the pretraining evidence: labelled axes with units, colour bars, one scale across compared panels.

    validation_curve(curve, baselines)        masked L1 vs EEG hours seen, baselines as horizontal lines
    embedding_tsne(features, y, subjects)     t-SNE of bottleneck embeddings, pretrained vs random init,
                                              coloured by class (top) and by subject (bottom)
    cdse_topomaps(weights, positions, steps)  CDSE weight maps over pretraining as small multiples (one colour
                                              scale, one colour bar); cdse_gif writes the same frames as a GIF
"""

from __future__ import annotations

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def validation_curve(curve: list[dict], baselines: dict[str, float], ax=None):
    """``curve`` rows ``{"eeg_hours_seen", "masked_l1"}`` (reconstruction.curve); ``baselines`` name -> L1."""
    plt = _plt()
    ax = ax or plt.subplots(figsize=(6, 4))[1]
    pts = [(r["eeg_hours_seen"], r["masked_l1"]) for r in curve if r.get("eeg_hours_seen") is not None]
    if pts:
        h, l1 = zip(*sorted(pts))
        ax.plot(h, l1, "o-", color="k", label="SAMBA checkpoint")
    for (name, v), c in zip(baselines.items(), ("tab:red", "tab:blue", "tab:green")):
        ax.axhline(v, ls="--", color=c, label=name.replace("_", " "))
    ax.set_xlabel("EEG seen in pretraining (hours)")
    ax.set_ylabel("masked-sample L1 (IQR units)")
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


def cdse_topomaps(weights: np.ndarray, positions: np.ndarray, steps, target: int = 0, ncols: int = 5):
    """Small multiples of CDSE weight row ``target`` (over input electrodes) at each snapshot.

    weights (S, O, C), positions (C, 3) metres, steps (S,) labels. One colour scale for all panels.
    """
    plt = _plt()
    W = np.asarray(weights)[:, target]  # (S, C)
    vmin, vmax = float(W.min()), float(W.max())
    rows = int(np.ceil(len(W) / ncols))
    fig, axes = plt.subplots(rows, ncols, figsize=(2.2 * ncols, 2.2 * rows + 0.6), squeeze=False)
    im = None
    for ax, w, s in zip(axes.flat, W, steps):
        im = _topomap(ax, w, positions, vmin, vmax)
        ax.set_title(str(s), fontsize=8)
    for ax in axes.flat[len(W):]:
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
