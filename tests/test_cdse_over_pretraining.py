"""CDSE weights of pretraining snapshots: the numbers behind the small multiples and the GIF of notebook 09."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from samba import SAMBA, SAMBAConfig
from samba.checkpoint import save_model
from samba.evaluation import figures
from samba.montage import positions

MONTAGES = {"tiny": ["Fz", "Cz", "Pz"], "muse": ["TP9", "AF7", "AF8", "TP10"]}


def _snapshots(tmp_path, n=3):
    """n checkpoints of a tiny synthetic model whose CDSE parameters move between snapshots."""
    torch.manual_seed(0)
    model = SAMBA(SAMBAConfig(expand=2, d_state=8, chunk_size=16, backend="torch"))
    paths = []
    for k in range(n):
        with torch.no_grad():
            for p in model.cdse.parameters():
                p.add_(0.3 * torch.randn_like(p))
        paths.append(save_model(tmp_path / "snapshots" / f"step_{100 * (k + 1):06d}", model,
                                extra={"step": 100 * (k + 1), "eeg_hours_seen": 0.5 * (k + 1)}))
    return model, paths


def test_weights_match_the_models_spatial_weights(tmp_path):
    model, paths = _snapshots(tmp_path)
    arrays = figures.cdse_over_pretraining(paths, MONTAGES)
    assert arrays["steps"].tolist() == [100, 200, 300]
    assert arrays["eeg_hours_seen"].tolist() == [0.5, 1.0, 1.5]
    O = len(model.target_channels)
    assert arrays["weights_tiny"].shape == (3, O, 3) and arrays["weights_muse"].shape == (3, O, 4)
    assert arrays["channels_muse"].tolist() == MONTAGES["muse"]
    # the last snapshot is the model as it is now: same weights as computing them directly
    direct = model.eval().spatial_weights(torch.from_numpy(positions(MONTAGES["tiny"]))).detach().numpy()
    np.testing.assert_allclose(arrays["weights_tiny"][-1], direct, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(arrays["weights_tiny"].sum(-1), 1.0, atol=1e-5)  # rows are distributions
    assert not np.allclose(arrays["weights_tiny"][0], arrays["weights_tiny"][-1])  # snapshots really differ


def test_save_and_load_round_trip_without_pickle(tmp_path):
    _, paths = _snapshots(tmp_path, n=2)
    arrays = figures.cdse_over_pretraining(paths, MONTAGES)
    out = figures.save_cdse_over_pretraining(arrays, tmp_path / "cdse.npz", {"run": {"commit": "abc1234"}})
    loaded, prov = figures.load_cdse_over_pretraining(out)
    assert prov["run"]["commit"] == "abc1234"
    assert set(loaded) == set(arrays)
    for k in arrays:
        np.testing.assert_array_equal(loaded[k], arrays[k])
    assert not any(a.dtype == object for a in loaded.values())


def _extract_with_release(tmp_path, step, hours):
    """Two snapshots (steps 100, 200) and a release at ``step`` through the command line -> (arrays, provenance)."""
    model, _ = _snapshots(tmp_path, n=2)
    final = save_model(tmp_path / "final", model, extra={"step": step, "eeg_hours_seen": hours,
                                                          "run": {"commit": "abc1234", "device": "cpu"}})
    out = tmp_path / "cdse.npz"
    assert figures.main(["--snapshots", str(tmp_path / "snapshots"), "--final", str(final), "--out", str(out)]) == 0
    return figures.load_cdse_over_pretraining(out)


def test_command_line_keeps_the_final_checkpoint_over_a_snapshot_of_the_same_step(tmp_path):
    arrays, prov = _extract_with_release(tmp_path, step=200, hours=1.0)
    assert arrays["steps"].tolist() == [100, 200]
    assert prov["checkpoints"] == ["step_000100", "final"] and prov["run"]["commit"] == "abc1234"
    assert "10-20" in json.dumps(sorted(arrays)) and arrays["weights_10-20"].shape[-1] == 19


def test_command_line_places_a_release_before_the_last_snapshot_by_its_step(tmp_path):
    # the release is the lowest-validation step: here step 150, between the snapshots of steps 100 and 200
    arrays, prov = _extract_with_release(tmp_path, step=150, hours=0.75)
    assert arrays["steps"].tolist() == [100, 150, 200]
    assert arrays["eeg_hours_seen"].tolist() == [0.5, 0.75, 1.0]
    assert prov["checkpoints"] == ["step_000100", "final", "step_000200"] and prov["run"]["commit"] == "abc1234"


def test_no_checkpoints_is_an_error():
    with pytest.raises(ValueError, match="no checkpoints"):
        figures.cdse_over_pretraining([], MONTAGES)


def test_the_figure_and_the_gif_are_drawn_from_the_arrays(tmp_path):
    from PIL import Image

    _, paths = _snapshots(tmp_path, n=2)
    from samba.montage import DEVICE_PRESETS

    arrays = figures.cdse_over_pretraining(paths, {"10-20": list(DEVICE_PRESETS["10-20"])})
    png, gif = figures.draw_cdse_over_pretraining(arrays, tmp_path / "cdse.png", tmp_path / "cdse.gif")
    assert Image.open(png).size[0] > 0
    with Image.open(gif) as frames:
        assert frames.n_frames == 2  # one frame per snapshot
    with pytest.raises(KeyError):  # a cap the file does not hold
        figures.draw_cdse_over_pretraining(arrays, tmp_path / "x.png", tmp_path / "x.gif", montage="muse")
