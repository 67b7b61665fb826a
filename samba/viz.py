"""Plots for notebooks: electrode layouts, CDSE spatial weights as topomaps, training curves.

All head plots go through MNE (``mne.viz.plot_sensors`` / ``mne.viz.plot_topomap``) with one head
sphere derived from the template montage, so every figure uses the same projection: the sphere's
equator passes through Fpz, T7, Oz and T8 (EEGLAB's convention), so the 10-20 ring lies on the drawn
head outline whatever the device. Functions only draw and return the ``Figure``; they never call
``plt.show()`` (notebooks display the returned figure; tests save it).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from . import montage

__all__ = ["head_sphere", "project", "plot_montage", "plot_spatial_weights", "plot_target_topomap", "plot_curves"]


@lru_cache(maxsize=None)
def head_sphere() -> tuple[float, float, float, float]:
    """(x, y, z, radius) in metres: the head sphere through Fpz / T7 / Oz / T8 of the template."""
    fpz, oz, t7, t8 = montage.positions(["Fpz", "Oz", "T7", "T8"]).astype(np.float64)
    centre = np.array([(t7[0] + t8[0]) / 2, (fpz[1] + oz[1]) / 2, np.mean([fpz[2], oz[2], t7[2], t8[2]])])
    radius = np.mean([np.linalg.norm(p[:2] - centre[:2]) for p in (fpz, oz, t7, t8)])
    return (*map(float, centre), float(radius))


def _as_numpy(a) -> np.ndarray:
    if hasattr(a, "detach"):  # torch tensor
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=np.float64)


def _names_and_positions(ch_names_or_positions) -> tuple[list[str], np.ndarray]:
    """Names (given, or E1..EC) and (C, 3) positions from either a list of names or positions."""
    if isinstance(ch_names_or_positions, (list, tuple)) and all(isinstance(n, str) for n in ch_names_or_positions):
        names = list(ch_names_or_positions)
        return names, montage.positions(names).astype(np.float64)
    pos = _as_numpy(ch_names_or_positions)
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise ValueError(f"expected channel names or (C, 3) positions; got shape {pos.shape}")
    return [f"E{i + 1}" for i in range(len(pos))], pos


def _first_of_each_position(pos: np.ndarray) -> np.ndarray:
    """Indices keeping the first channel at each distinct position (MNE refuses overlapping sensors;
    e.g. the target montage's T3 and T7 share one point)."""
    keep, seen = [], []
    for i, p in enumerate(pos):
        if all(np.linalg.norm(p - q) > 1e-6 for q in seen):
            keep.append(i)
            seen.append(p)
    return np.asarray(keep)


def _info(names: list[str], pos: np.ndarray):
    """An mne.Info of EEG channels at the given head-frame positions (names made unique)."""
    import mne

    unique = []
    for n in names:  # create_info would rename duplicates with a warning; do it quietly
        unique.append(n if n not in unique else f"{n}#{sum(u.split('#')[0] == n for u in unique)}")
    info = mne.create_info(unique, 100.0, "eeg")
    dig = mne.channels.make_dig_montage(ch_pos=dict(zip(unique, pos)), coord_frame="head")
    info.set_montage(dig, verbose="error")
    return info


def _axes(axes, n: int, size: float = 2.6):
    import matplotlib.pyplot as plt

    if axes is None:
        fig, axes = plt.subplots(1, n, figsize=(size * n, size), squeeze=False)
        return fig, list(axes[0])
    axes = list(np.atleast_1d(axes).ravel())
    if len(axes) != n:
        raise ValueError(f"need {n} axes, got {len(axes)}")
    return axes[0].figure, axes


def plot_montage(ch_names_or_positions, ax=None, title: str | None = None, show_names: bool = True):
    """2-D head plot (azimuthal projection) of an electrode layout; returns the Figure.

    Accepts channel names (any spelling ``samba.montage.positions`` accepts) or (C, 3) positions in
    the head frame (metres).
    """
    import mne

    names, pos = _names_and_positions(ch_names_or_positions)
    keep = _first_of_each_position(pos)
    info = _info([names[i] for i in keep], pos[keep])
    fig, (ax,) = _axes(ax, 1, size=4.0)
    mne.viz.plot_sensors(info, kind="topomap", show_names=show_names, axes=ax, show=False, sphere=head_sphere())
    ax.set_title(title if title is not None else f"{len(names)} electrodes")
    return fig


def _topomap(values: np.ndarray, names: list[str], pos: np.ndarray, ax, title: str, cmap="viridis", vlim=(None, None)):
    """One topomap of ``values`` over electrodes at ``pos``; a scatter when there are too few to interpolate."""
    import mne

    keep = _first_of_each_position(pos)
    values, names, pos = values[keep], [names[i] for i in keep], pos[keep]
    if len(keep) >= 4:
        im, _ = mne.viz.plot_topomap(values, _info(names, pos), axes=ax, show=False, sphere=head_sphere(),
                                     cmap=cmap, vlim=vlim, contours=0)
    else:  # Delaunay interpolation needs >= 4 points: draw coloured sensors on the same projection
        mne.viz.plot_sensors(_info(names, pos), kind="topomap", axes=ax, show=False, sphere=head_sphere())
        xy = project(pos)  # (C, 2)
        im = ax.scatter(xy[:, 0], xy[:, 1], c=values, s=160, cmap=cmap, vmin=vlim[0], vmax=vlim[1], zorder=5)
    ax.set_title(title, fontsize=9)
    return im


def plot_spatial_weights(W, ch_names_in, target=None, rows=None, axes=None, colorbar: bool = True):
    """Topomaps over the INPUT electrodes of how chosen target channels are composed by CDSE.

    ``W``: (O, C) weights (``model.spatial_weights(coords)``; a leading batch of 1 is dropped);
    ``ch_names_in``: the C input names or (C, 3) positions; ``target``: the O target names
    (default ``montage.TARGET_CHANNELS``); ``rows``: target names to show (default Fz, Cz, Pz, Oz).
    A star marks each target's own position, so one sees whether its weight comes from nearby.
    """
    W = _as_numpy(W)
    if W.ndim == 3 and W.shape[0] == 1:
        W = W[0]
    target = list(target if target is not None else montage.TARGET_CHANNELS)
    names, pos = _names_and_positions(ch_names_in)
    if W.ndim != 2 or W.shape != (len(target), len(names)):
        raise ValueError(f"W must be (O={len(target)}, C={len(names)}); got {W.shape}")
    rows = list(rows) if rows is not None else ["Fz", "Cz", "Pz", "Oz"]
    missing = [r for r in rows if r not in target]
    if missing:
        raise ValueError(f"rows not in the target montage: {missing}")
    fig, axes = _axes(axes, len(rows))
    target_pos = montage.positions(target).astype(np.float64)
    shown = W[[target.index(r) for r in rows]]  # (len(rows), C)
    vlim = (float(shown.min()), float(shown.max()))  # shared scale; an untrained CDSE is near-uniform
    for ax, r in zip(axes, rows):
        o = target.index(r)
        im = _topomap(W[o], names, pos, ax, f"target {r}", vlim=vlim)
        _mark(ax, target_pos[o])
    if colorbar:
        fig.colorbar(im, ax=axes, shrink=0.7, label="CDSE weight")
    return fig


def project(pos) -> np.ndarray:
    """(C, 3) head-frame positions -> (C, 2) plot coordinates, exactly as MNE's topomaps place them.

    Azimuthal equidistant about the head sphere's centre: the angle from the vertex, scaled by the
    point's distance from the centre, becomes the distance from the plot centre (MNE's
    ``_auto_topomap_coords`` with ``to_sphere=True``).
    """
    x, y, z, _ = head_sphere()
    d = np.atleast_2d(_as_numpy(pos)) - np.array([x, y, z])  # (C, 3)
    dist = np.linalg.norm(d, axis=1)
    polar = np.arccos(np.clip(d[:, 2] / dist, -1.0, 1.0))  # angle from the vertex
    azimuth = np.arctan2(d[:, 1], d[:, 0])
    rho = polar / (np.pi / 2) * dist
    return np.c_[x + rho * np.cos(azimuth), y + rho * np.sin(azimuth)]  # (C, 2)


def _mark(ax, p: np.ndarray):
    """Red star at a head-frame point (a target electrode) on a topomap."""
    (px, py), = project(p)
    ax.plot(px, py, marker="*", ms=12, mfc="red", mec="k", zorder=6)


def plot_target_topomap(values, axes=None, title: str = "target montage", target=None, cmap="RdBu_r",
                        label: str | None = None):
    """Topomap of one value per target channel (O,) over the target montage; returns the Figure.

    Channels sharing a position (T3/T7, T4/T8, T5/P7, T6/P8 in the default montage) are drawn once,
    with the value of the first of them. ``label`` names the colour bar's quantity (and its unit).
    """
    values = _as_numpy(values).ravel()
    target = list(target if target is not None else montage.TARGET_CHANNELS)
    if len(values) != len(target):
        raise ValueError(f"values must have one entry per target channel ({len(target)}); got {len(values)}")
    fig, (ax,) = _axes(axes, 1, size=4.0)
    im = _topomap(values, target, montage.positions(target).astype(np.float64), ax, title, cmap=cmap)
    fig.colorbar(im, ax=ax, shrink=0.7, label=label)
    return fig


def plot_curves(csv_or_dataframe, x: str = "epoch", y="loss", ax=None, title: str | None = None, logy: bool = False,
                ylabel: str | None = None):
    """Line plot of training curves from a CSV path or a DataFrame; ``y`` is a column or a list.

    ``ylabel`` names the plotted quantity (default: the column names, e.g. "loss, val_loss")."""
    import matplotlib.pyplot as plt
    import pandas as pd

    df = csv_or_dataframe if isinstance(csv_or_dataframe, pd.DataFrame) else pd.read_csv(csv_or_dataframe)
    ys = [y] if isinstance(y, str) else list(y)
    missing = [c for c in [x, *ys] if c not in df.columns]
    if missing:
        raise ValueError(f"columns {missing} not in the data (have {list(df.columns)})")
    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 3.2))
    else:
        fig = ax.figure
    for col in ys:
        sub = df[[x, col]].dropna()  # train and val rows are often interleaved with gaps
        ax.plot(sub[x], sub[col], marker="o" if len(sub) < 30 else None, ms=3, label=col)
    ax.set_xlabel(x)
    ax.set_ylabel(ylabel or ", ".join(ys))
    if logy:
        ax.set_yscale("log")
    if len(ys) > 1:
        ax.legend()
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
