"""Electrode positions: names, one frame, presets, positions carried by an mne.Info."""

from pathlib import Path

import mne
import numpy as np
import pytest

from samba import montage
from samba.montage import (
    DEVICE_PRESETS,
    TARGET_CHANNELS,
    device_channels,
    device_positions,
    normalize_name,
    positions,
    positions_from_info,
    target_positions,
)

DATA = Path("/work/shared/data")
EEGMMIDB_EDF = DATA / "eegmmidb/S001/S001R04.edf"
EEGLAB_SET = DATA / "eeglab_sample/test_raw.set"


def _mne_head_positions(montage_name, names):
    """Independent path: MNE's own set_montage, read back from Info (head frame, metres)."""
    m = mne.channels.make_standard_montage(montage_name)
    info = mne.create_info(list(names), 100.0, "eeg")
    info.set_montage(m, verbose="error")
    return np.array([ch["loc"][:3] for ch in info["chs"]])


# ---------------------------------------------------------------------------------------------- names
@pytest.mark.parametrize(
    "raw, canonical",
    [
        ("Fc5.", "FC5"),
        ("Fp1.", "Fp1"),
        ("Cz..", "Cz"),
        ("T10.", "T10"),
        ("fcz", "FCz"),
        ("FPZ", "Fpz"),
        ("EEG Fp1", "Fp1"),
        ("EEG FP1-REF", "Fp1"),
        ("EEG FP1-LE", "Fp1"),
        ("EEG T3-REF", "T7"),
        ("F4-A1", "F4"),
        ("T3", "T7"),
        ("T4", "T8"),
        ("t5", "P7"),
        ("T6", "P8"),
        ("M1", "M1"),
        ("a2", "A2"),
        ("O9", "O9"),
        ("FP1-F7", "Fp1-F7"),
        ("T5-O1", "P7-O1"),
    ],
)
def test_normalize_name(raw, canonical):
    assert normalize_name(raw) == canonical


def test_unknown_name_is_named_with_suggestions():
    with pytest.raises(ValueError, match=r"'Cz3'.*close matches"):
        normalize_name("Cz3")
    with pytest.raises(ValueError, match="ECG ECG"):
        positions(["Fp1", "ECG ECG"])
    with pytest.raises(ValueError, match="FP1-XX9"):
        positions(["FP1-XX9"])


def test_empty_and_string_inputs_rejected():
    with pytest.raises(ValueError, match="empty"):
        positions([])
    with pytest.raises(ValueError, match="list"):
        positions("Fp1")


def test_real_eegmmidb_names_normalise_like_mne_eegbci():
    raw = mne.io.read_raw_edf(EEGMMIDB_EDF, preload=False, verbose="error")
    ours = [normalize_name(n) for n in raw.ch_names]
    mne.datasets.eegbci.standardize(raw)  # MNE's own fixer is the oracle
    assert ours == raw.ch_names
    assert tuple(ours) == DEVICE_PRESETS["eegmmidb"]


# ------------------------------------------------------------------------------------------ positions
def test_positions_dtype_shape_and_plausible_norms():
    names = list(montage._table())
    pos = positions(names)
    assert pos.dtype == np.float32 and pos.shape == (len(names), 3)
    assert np.isfinite(pos).all()
    norms = np.linalg.norm(pos, axis=1)
    assert norms.min() > 0.05 and norms.max() < 0.15, (norms.min(), norms.max())


def test_positions_match_mne_head_frame():
    # head frame: nasion on +y, ears on +-x; left hemisphere electrodes have x < 0
    pos = positions(["Fpz", "Oz", "T7", "T8", "Cz"])
    assert pos[0, 1] > 0.08 and pos[1, 1] < -0.08
    assert pos[2, 0] < -0.07 and pos[3, 0] > 0.07
    assert pos[4, 2] > 0.1
    names = ["Fp1", "C3", "O2", "FCC5h", "TP10", "Iz"]
    np.testing.assert_allclose(positions(names), _mne_head_positions("colin27_1005", names), atol=1e-6)


def test_aliases_share_positions_and_bipolar_is_midpoint():
    np.testing.assert_array_equal(positions(["T3", "T4", "T5", "T6"]), positions(["T7", "T8", "P7", "P8"]))
    fp1, f7 = positions(["Fp1", "F7"])
    np.testing.assert_allclose(positions(["FP1-F7"])[0], (fp1 + f7) / 2, atol=1e-7)


def test_eegmmidb_real_names_coincide_with_10_20_preset():
    """The authors' PhysionetMI coordinates sat ~5 cm off; ours share one frame (< 1 mm)."""
    raw = mne.io.read_raw_edf(EEGMMIDB_EDF, preload=False, verbose="error")
    mmidb = dict(zip((normalize_name(n) for n in raw.ch_names), positions(raw.ch_names)))
    ten20 = dict(zip(DEVICE_PRESETS["10-20"], device_positions("10-20")))
    common = sorted(set(mmidb) & set(ten20))
    assert len(common) == 19  # EEGMMIDB's 64-ch cap contains all 19 10-20 sites
    dist = np.linalg.norm(np.array([mmidb[c] - ten20[c] for c in common]), axis=1)
    assert dist.max() < 1e-3


def test_every_preset_centroid_agrees_with_independent_mne_path():
    """Each preset's electrodes, placed by us and by MNE's set_montage, have centroids < 2 cm apart,
    and presets that share electrodes agree on those electrodes' centroid."""
    for name in DEVICE_PRESETS:
        pos = device_positions(name)
        assert np.isfinite(pos).all(), name
        norms = np.linalg.norm(pos, axis=1)
        assert ((norms > 0.05) & (norms < 0.15)).all(), name
        singles = list(dict.fromkeys(lab for ch in device_channels(name) for lab in normalize_name(ch).split("-")))
        theirs = _mne_head_positions("colin27_1005", singles)
        ours = positions(singles)
        assert np.linalg.norm(ours.mean(0) - theirs.mean(0)) < 0.02, name
    for a in DEVICE_PRESETS:
        for b in DEVICE_PRESETS:
            pa = dict(zip(map(normalize_name, device_channels(a)), device_positions(a)))
            pb = dict(zip(map(normalize_name, device_channels(b)), device_positions(b)))
            common = sorted(set(pa) & set(pb))
            if common:
                ca = np.mean([pa[c] for c in common], 0)
                cb = np.mean([pb[c] for c in common], 0)
                assert np.linalg.norm(ca - cb) < 0.02, (a, b)


# ------------------------------------------------------------------------------------------ target
def test_target_montage_is_94_with_old_aliases_kept():
    assert len(TARGET_CHANNELS) == 94 == len(set(TARGET_CHANNELS))
    tgt = target_positions()
    assert tgt.shape == (94, 3) and tgt.dtype == np.float32 and np.isfinite(tgt).all()
    # same labels and order as MNE's 10-20 template, in the same head frame
    name = "colin27_1020" if "colin27_1020" in mne.channels.get_builtin_montages() else "standard_1020"
    assert tuple(mne.channels.make_standard_montage(name).ch_names) == TARGET_CHANNELS
    np.testing.assert_allclose(tgt, _mne_head_positions(name, TARGET_CHANNELS), atol=1e-6)
    # the kept duplicates: exactly 4 pairs of identical positions (T3/T7, T4/T8, T5/P7, T6/P8)
    d = np.linalg.norm(tgt[:, None] - tgt[None], axis=-1) + np.eye(94)
    pairs = {tuple(sorted((TARGET_CHANNELS[i], TARGET_CHANNELS[j]))) for i, j in zip(*np.nonzero(d < 1e-6))}
    assert pairs == {("T3", "T7"), ("T4", "T8"), ("P7", "T5"), ("P8", "T6")}
    np.testing.assert_array_equal(positions(TARGET_CHANNELS), tgt)


def test_presets_and_errors():
    assert len(device_channels("emotiv_epoc")) == 14
    assert len(device_channels("10-20")) == 19
    assert len(device_channels("bci_iv_2a")) == 22
    assert len(device_channels("tuh_bipolar")) == 16
    assert device_positions("muse").shape == (4, 3)
    with pytest.raises(ValueError, match="available"):
        device_channels("neuralink")


# ------------------------------------------------------------------------------------- from Info
def _info_from(montage_name, names, rename=False):
    info = mne.create_info(list(names), 100.0, "eeg")
    info.set_montage(mne.channels.make_standard_montage(montage_name), verbose="error")
    if rename:  # EEGLAB-style "EEG 000" labels: only the locations are usable
        info.rename_channels({n: f"EEG {i:03d}" for i, n in enumerate(names)})
    return info


def test_info_with_anatomical_fiducials_is_used_as_is():
    names = DEVICE_PRESETS["eegmmidb"]
    info = _info_from("fsaverage_1005", names)
    np.testing.assert_allclose(positions_from_info(info), _mne_head_positions("fsaverage_1005", names), atol=1e-6)


@pytest.mark.parametrize("rename", [False, True])
@pytest.mark.parametrize("montage_name", ["biosemi64", "spherical_1005"])
def test_info_with_spherical_locations_lands_near_template(montage_name, rename):
    """Sphere-model caps (EEGLAB / BioSemi style, no anatomical fiducials) are aligned to the
    template: typical distance to the same-named template electrode is ~1.1-1.5 cm with names and
    ~2.7 cm from a sphere fit without them (head shape differs from a sphere), never the 5 cm frame
    offset. Raw MNE head coordinates of these caps are 2.3-3.0 cm off."""
    m = mne.channels.make_standard_montage(montage_name)
    names = [n for n in DEVICE_PRESETS["eegmmidb"] if n in m.ch_names]  # a whole-head cap
    info = _info_from(montage_name, names, rename=rename)
    pos = positions_from_info(info)
    assert pos.shape == (len(names), 3) and pos.dtype == np.float32
    typical = float(np.median(np.linalg.norm(pos - positions(names), axis=1)))
    assert typical < (0.03 if rename else 0.016), typical


def test_info_without_locations_falls_back_to_names():
    info = mne.create_info(["EEG Fp1", "EEG T3", "EEG A2-A1"], 100.0, "eeg")
    np.testing.assert_array_equal(positions_from_info(info), positions(["Fp1", "T7", "A2"]))


def test_info_partial_locations_mix():
    names = ["Fp1", "Fp2", "Cz", "O1", "O2"]
    info = _info_from("fsaverage_1005", names)
    with info._unlock():
        info["chs"][2]["loc"][:3] = np.nan  # Cz lost its location: falls back to the template
    pos = positions_from_info(info)
    np.testing.assert_array_equal(pos[2], positions(["Cz"])[0])
    np.testing.assert_allclose(pos[[0, 1, 3, 4]], _mne_head_positions("fsaverage_1005", names)[[0, 1, 3, 4]], atol=1e-6)


def test_info_in_millimetres_is_rejected():
    names = list(DEVICE_PRESETS["10-20"])
    info = _info_from("fsaverage_1005", names)
    with info._unlock():
        for ch in info["chs"]:
            ch["loc"][:3] *= 1000.0
    with pytest.raises(ValueError, match="metres"):
        positions_from_info(info)


def test_real_eeglab_sample_has_no_locations_and_unknown_names():
    """The mirrored EEGLAB file's chanlocs are empty (MNE reads NaN) and its labels are 'EEG 000'...:
    nothing places these channels, so we refuse by name rather than invent positions."""
    raw = mne.io.read_raw_eeglab(EEGLAB_SET, preload=False, verbose="error")
    assert np.isnan([ch["loc"][:3] for ch in raw.info["chs"]]).all()
    with pytest.raises(ValueError, match="EEG 000"):
        positions_from_info(raw.info)


# --------------------------------------------------------------------------------------------------
# positions entering the model are checked (units, degeneracy, dtype)
# --------------------------------------------------------------------------------------------------
def test_check_positions_converts_millimetres_and_rejects_degenerate():
    """Before: positions in millimetres, all zeros or integer dtype reached CDSE unchecked and collapsed its
    weights to one-hot rows (or to zeros). Now millimetres are converted with a warning, the rest refused."""
    import torch

    from samba.errors import InputError
    from samba.montage import check_positions

    metres = torch.from_numpy(positions(["Fp1", "Cz", "O1", "T7"]))
    assert torch.equal(check_positions(metres), metres)
    with pytest.warns(UserWarning, match="millimetres"):
        got = check_positions(metres * 1000.0)
    torch.testing.assert_close(got, metres)
    for bad, why in [(torch.zeros(4, 3), "all zero"), (metres.round().long(), "floating point"),
                     (torch.full((4, 3), 0.05), "same point"), (metres * 10, "metres"),
                     (torch.tensor([[0.01, 0, 0], [0.02, 0, 0], [0.09, 0, 0]]), "one line"),
                     (metres.clone().fill_(float("nan")), "NaN")]:
        with pytest.raises(InputError, match=why):
            check_positions(bad)


def test_model_refuses_degenerate_coordinates():
    """The model calls the check where coordinates enter (forward, encode, spatial_weights)."""
    import torch

    from samba import SAMBA, SAMBAConfig
    from samba.errors import InputError

    model = SAMBA(SAMBAConfig(expand=2, d_state=8, chunk_size=16, backend="torch")).eval()
    x = torch.randn(1, 4, 64)
    with pytest.raises(InputError, match="all zero"):
        model(x, torch.zeros(4, 3))
    with pytest.raises(InputError, match="floating point"):
        model.spatial_weights(torch.ones(4, 3, dtype=torch.int64))
    coords = torch.from_numpy(positions(["Fp1", "Cz", "O1", "T7"]))
    with pytest.warns(UserWarning, match="millimetres"), torch.no_grad():
        torch.testing.assert_close(model(x, coords * 1000), model(x, coords))


def test_reference_derivations_are_told_from_referenced_electrodes():
    from samba.montage import is_reference_derivation

    assert is_reference_derivation("EEG A2-A1") and is_reference_derivation("m1-M2")
    assert not is_reference_derivation("EEG F4-A1")  # F4 referenced to A1: a scalp electrode
    assert not is_reference_derivation("A1") and not is_reference_derivation("FP1-F7")
