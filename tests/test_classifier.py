"""SAMBAClassifier: braindecode argument conventions, positions from MNE chs_info, skorch/EEGClassifier fit."""

from __future__ import annotations

import warnings

import mne
import numpy as np
import pytest
import torch

from samba.classifier import SAMBAClassifier, positions_from_chs_info
from test_train_pretrain import tiny_model_config

NAMES = ["Fz", "Cz", "Pz", "Oz", "C3", "C4"]


def _info(names=NAMES, sfreq=128.0):
    info = mne.create_info(names, sfreq, "eeg")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        info.set_montage("standard_1005")
    return info


def test_forward_shape_and_positions_from_chs_info():
    info = _info()
    clf = SAMBAClassifier(n_chans=6, n_outputs=3, n_times=128, sfreq=128, chs_info=info["chs"],
                          config=tiny_model_config())
    pos = np.array([ch["loc"][:3] for ch in info["chs"]])
    assert np.allclose(clf.coords.numpy(), pos)
    assert np.all((np.linalg.norm(pos, axis=1) > 0.05) & (np.linalg.norm(pos, axis=1) < 0.15))  # metres
    x = torch.randn(2, 6, 128)
    assert clf(x).shape == (2, 3)
    w = clf.spatial_weights()
    assert w.shape[-1] == 6 and torch.allclose(w.sum(-1), torch.ones(w.shape[0]), atol=1e-5)


def test_positions_fall_back_to_names_without_locations():
    chs = [{"ch_name": n, "loc": np.full(12, np.nan)} for n in NAMES]
    pos, names = positions_from_chs_info(chs)
    from samba.montage import positions

    assert names == NAMES and np.allclose(pos, positions(NAMES))
    clf = SAMBAClassifier(n_outputs=2, ch_names=NAMES, config=tiny_model_config())
    assert clf.n_chans == 6
    with pytest.raises(ValueError, match="n_chans"):
        SAMBAClassifier(n_chans=5, n_outputs=2, ch_names=NAMES, config=tiny_model_config())


@pytest.mark.parametrize("pooling,factor", [("quantile", 7), ("mean", 1)])
def test_pooling_feature_size(pooling, factor):
    clf = SAMBAClassifier(n_outputs=2, ch_names=NAMES, pooling=pooling, config=tiny_model_config())
    D = clf.samba.cfg.bottleneck_dim
    assert clf.features(torch.randn(3, 6, 64)).shape == (3, D * factor)


def test_frozen_encoder_stays_in_eval_and_gets_no_grad():
    clf = SAMBAClassifier(n_outputs=2, ch_names=NAMES, freeze_encoder=True, config=tiny_model_config())
    clf.train()
    assert not clf.samba.training and clf.head.training
    clf(torch.randn(2, 6, 64)).sum().backward()
    assert all(p.grad is None for p in clf.samba.parameters())
    assert all(p.grad is not None for p in clf.head.parameters())


def test_inside_braindecode_eegclassifier_on_real_windows(mirror):
    from samba.data import load_task
    from samba.train.baselines import import_braindecode

    try:
        bd = import_braindecode()
    except Exception as e:  # pragma: no cover - braindecode missing
        pytest.skip(f"braindecode not importable: {e}")
    ds = load_task("eyes-open-closed", mirror=mirror, profile="quick")
    idx = np.r_[np.where(ds.y == 0)[0][:8], np.where(ds.y == 1)[0][:8]]
    info = mne.create_info(list(ds.ch_names), ds.sfreq, "eeg")
    info.set_montage(mne.channels.make_dig_montage(dict(zip(ds.ch_names, ds.positions.astype(float))),
                                                   coord_frame="head"))
    epochs = mne.EpochsArray(ds.X[idx].astype(np.float64), info, verbose=False)
    net = bd.EEGClassifier(SAMBAClassifier, module__config=tiny_model_config(), max_epochs=1, batch_size=8,
                           train_split=None, optimizer=torch.optim.AdamW, lr=1e-3, verbose=0)
    net.fit(epochs, ds.y[idx])
    assert net.module_.n_chans == len(ds.ch_names) and net.module_.n_outputs == 2
    assert np.allclose(net.module_.coords.numpy(), ds.positions, atol=1e-5)  # came from chs_info
    proba = net.predict_proba(ds.X[idx].astype(np.float32))
    assert proba.shape == (16, 2) and np.isfinite(proba).all()


def test_from_pretrained_loads_the_released_encoder():
    from samba.checkpoint import load_model
    from samba.embedding import pretrained_path

    ckpt = pretrained_path()
    if not ckpt.exists():
        pytest.skip("no released checkpoint in this checkout")
    clf = SAMBAClassifier.from_pretrained(n_outputs=3, ch_names=NAMES, freeze_encoder=True)
    ref, _ = load_model(ckpt)
    for k, v in ref.state_dict().items():  # encoder weights are the checkpoint's, head is new
        assert torch.equal(clf.samba.state_dict()[k], v), k
    assert clf(torch.randn(2, 6, 128)).shape == (2, 3)
    from samba.errors import InputError

    with pytest.raises(InputError, match="no checkpoint"):
        SAMBAClassifier.from_pretrained("no/such/checkpoint.pt", n_outputs=2, ch_names=NAMES)
