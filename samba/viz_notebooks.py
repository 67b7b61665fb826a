"""Small plotting helpers used by the tutorial notebooks (``notebooks/``).

Kept out of the notebooks so that each notebook cell stays short; kept out of ``samba.viz`` because
they only serve the tutorial figures. Every function draws on a given matplotlib ``Axes`` and returns it.
"""
from __future__ import annotations

import numpy as np

__all__ = ["plot_traces", "plot_mask_over_signal", "plot_head_points", "mask_run_lengths", "plot_electrode_values"]


def plot_traces(ax, data, sfreq: float, ch_names, spacing: float | None = None, color="k", lw=0.6):
    """Stacked EEG traces: ``data (C, T)`` drawn one above the other, first channel on top."""
    data = np.asarray(data, dtype=float)  # (C, T)
    C, T = data.shape
    t = np.arange(T) / sfreq
    if spacing is None:  # robust peak-to-peak so one outlier channel does not squash the rest
        spacing = float(np.median(np.percentile(data, 99, axis=1) - np.percentile(data, 1, axis=1))) or 1.0
    offsets = spacing * np.arange(C)[::-1]
    ax.plot(t, (data + offsets[:, None]).T, color=color, lw=lw)
    ax.set_yticks(offsets)
    ax.set_yticklabels(list(ch_names)[:C], fontsize=7)
    ax.set_xlim(t[0], t[-1])
    ax.spines[["top", "right"]].set_visible(False)
    return ax


def plot_mask_over_signal(ax, signal, visible, sfreq: float, title: str = "", color="C3"):
    """One channel ``signal (T,)`` with the hidden samples (``visible (T,)`` False) shaded."""
    signal = np.asarray(signal, dtype=float)
    visible = np.asarray(visible, dtype=bool)
    t = np.arange(len(signal)) / sfreq
    ax.plot(t, signal, color="0.6", lw=0.6)
    ax.plot(t, np.where(visible, signal, np.nan), color="k", lw=0.8)
    hidden = ~visible
    edges = np.flatnonzero(np.diff(np.r_[0, hidden.astype(int), 0]))  # start, stop pairs of hidden runs
    for a, b in zip(edges[::2], edges[1::2]):
        ax.axvspan(a / sfreq, b / sfreq, color=color, alpha=0.18, lw=0)
    ax.set_xlim(t[0], t[-1])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9, loc="left")
    ax.spines[["top", "right", "left"]].set_visible(False)
    return ax


def plot_head_points(ax, positions, labels=None, color="C0", size=18, view="top", annotate=False, **kw):
    """Scatter electrode ``positions (C, 3)`` (metres, head frame) seen from above (x, y) or the side (y, z)."""
    p = np.asarray(positions, dtype=float)
    i, j = {"top": (0, 1), "side": (1, 2), "front": (0, 2)}[view]
    ax.scatter(p[:, i], p[:, j], s=size, color=color, **kw)
    if annotate and labels is not None:
        for (a, b), name in zip(p[:, [i, j]], labels):
            ax.annotate(name, (a, b), fontsize=6, ha="center", va="bottom")
    ax.set_aspect("equal")
    return ax


def mask_run_lengths(mask, value: bool = True) -> np.ndarray:
    """Lengths of the runs of ``value`` in each row of a boolean ``mask (B, T)``, concatenated.

    Used to draw block-length histograms of the pretraining masks (notebook 05).
    """
    m = np.asarray(mask, dtype=bool)
    if m.ndim == 1:
        m = m[None]
    hit = (m == value).astype(np.int8)  # (B, T)
    padded = np.pad(hit, ((0, 0), (1, 1)))
    edges = np.diff(padded, axis=1)  # +1 at a run's start, -1 after its end
    starts = np.argwhere(edges == 1)
    stops = np.argwhere(edges == -1)
    return (stops[:, 1] - starts[:, 1]).astype(np.int64)


def plot_electrode_values(values, ch_names, ax, title: str = "", cmap="viridis", vlim=(None, None)):
    """Topomap of one value per input electrode (names resolved by ``samba.montage``), on the same head
    projection as ``samba.viz``'s plots. Returns the image handle for a colorbar."""
    import mne

    from . import montage, viz

    values = np.asarray(values, dtype=float)
    names = list(ch_names)
    info = mne.create_info(names, 100.0, "eeg")
    pos = montage.positions(names).astype(float)
    info.set_montage(mne.channels.make_dig_montage(ch_pos=dict(zip(names, pos)), coord_frame="head"), verbose="error")
    im, _ = mne.viz.plot_topomap(values, info, axes=ax, show=False, sphere=viz.head_sphere(), cmap=cmap,
                                 vlim=vlim, contours=0)
    ax.set_title(title, fontsize=9)
    return im
