"""Plot helpers: each returns a Figure on real positions and saves to PNG."""

import matplotlib

matplotlib.use("Agg")  # no display in tests; viz itself never picks a backend

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch

from samba import viz
from samba.montage import TARGET_CHANNELS, device_channels, device_positions, positions
from samba.nn.cdse import CDSE


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _saved(fig, tmp_path, name):
    assert isinstance(fig, matplotlib.figure.Figure)
    out = tmp_path / f"{name}.png"
    fig.savefig(out, dpi=50)
    assert out.stat().st_size > 1000
    return out


@pytest.mark.parametrize("preset", ["eegmmidb", "emotiv_epoc", "muse", "tuh_bipolar"])
def test_plot_montage_from_names(preset, tmp_path):
    fig = viz.plot_montage(list(device_channels(preset)), title=preset)
    assert fig.axes[0].get_title() == preset
    _saved(fig, tmp_path, preset)


def test_plot_montage_from_positions_on_given_axes(tmp_path):
    fig, ax = plt.subplots()
    assert viz.plot_montage(device_positions("10-20"), ax=ax) is fig
    assert ax.get_title() == "19 electrodes"
    _saved(fig, tmp_path, "positions")


def test_projection_matches_mne_sensor_plot():
    """Our star marker lands exactly where MNE draws the same electrode."""
    names = list(device_channels("10-20"))
    fig = viz.plot_montage(names, show_names=False)
    drawn = [c.get_offsets() for c in fig.axes[0].collections if len(c.get_offsets()) == len(names)][0]
    np.testing.assert_allclose(viz.project(positions(names)), drawn, atol=1e-6)
    # the 10-20 equator (Fpz, T7, Oz, T8) lies near the drawn head circle (Fpz: 13 % outside)
    x, y, _, r = viz.head_sphere()
    rim = viz.project(positions(["Fpz", "T7", "Oz", "T8"])) - [x, y]
    np.testing.assert_allclose(np.linalg.norm(rim, axis=1), r, rtol=0.15)  # a head is not a sphere


@pytest.mark.parametrize("preset", ["emotiv_epoc", "muse"])
def test_plot_spatial_weights_of_real_cdse(preset, tmp_path):
    torch.manual_seed(0)
    names = list(device_channels(preset))
    W = CDSE().weights(positions(names))  # (1, 94, C): the leading 1 is accepted
    fig = viz.plot_spatial_weights(W, names, rows=["Fz", "Cz", "T7"])
    assert len([a for a in fig.axes if a.get_title().startswith("target")]) == 3
    _saved(fig, tmp_path, f"weights_{preset}")


def test_plot_spatial_weights_errors():
    names = list(device_channels("emotiv_epoc"))
    with pytest.raises(ValueError, match="O=94, C=14"):
        viz.plot_spatial_weights(np.ones((94, 13)), names)
    with pytest.raises(ValueError, match="XX"):
        viz.plot_spatial_weights(np.ones((94, 14)) / 14, names, rows=["Cz", "XX"])


def test_plot_target_topomap(tmp_path):
    values = positions(TARGET_CHANNELS)[:, 0]  # left-right gradient: x coordinate
    fig = viz.plot_target_topomap(values, title="x")
    _saved(fig, tmp_path, "target")
    with pytest.raises(ValueError, match="94"):
        viz.plot_target_topomap(values[:10])


def test_plot_curves_from_csv_and_dataframe(tmp_path):
    df = pd.DataFrame({"epoch": np.arange(10), "loss": np.linspace(1, 0.1, 10), "val_loss": [np.nan, 0.9] * 5})
    csv = tmp_path / "log.csv"
    df.to_csv(csv, index=False)
    fig = viz.plot_curves(csv, x="epoch", y=["loss", "val_loss"], logy=True)
    assert [line.get_label() for line in fig.axes[0].get_lines()] == ["loss", "val_loss"]
    assert len(fig.axes[0].get_lines()[1].get_xdata()) == 5  # NaN gaps dropped
    _saved(fig, tmp_path, "curves")
    _saved(viz.plot_curves(df, y="loss"), tmp_path, "curves_df")
    with pytest.raises(ValueError, match="acc"):
        viz.plot_curves(df, y="acc")


def test_plots_label_their_axes_and_colour_bars():
    """Every topomap gets a colour bar, and curves name their quantity (never a bare 'value')."""
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np
    import pandas as pd

    from samba import montage, viz

    fig = viz.plot_curves(pd.DataFrame({"step": [0, 1, 2], "loss": [3.0, 2.0, 1.5], "val_loss": [3.1, 2.2, 1.9]}),
                          x="step", y=["loss", "val_loss"], ylabel="L1 + spectral loss")
    assert fig.axes[0].get_ylabel() == "L1 + spectral loss"
    fig = viz.plot_curves(pd.DataFrame({"epoch": [0, 1], "loss": [1.0, 0.5], "acc": [0.5, 0.6]}), y=["loss", "acc"])
    assert fig.axes[0].get_ylabel() == "loss, acc"
    names = list(montage.DEVICE_PRESETS["10-20"])
    target = list(montage.TARGET_CHANNELS)
    W = np.full((len(target), len(names)), 1.0 / len(names))
    fig = viz.plot_spatial_weights(W, names)
    assert any(ax.get_label() == "<colorbar>" and ax.get_ylabel() == "CDSE weight" for ax in fig.axes)
    fig = viz.plot_target_topomap(np.arange(len(target), dtype=float), label="weight")
    assert any(ax.get_label() == "<colorbar>" and ax.get_ylabel() == "weight" for ax in fig.axes)
