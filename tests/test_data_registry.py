"""Registry, fetch/verify and the `samba data` CLI functions."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from samba.data import registry
from samba.data.cli import data_list, data_verify
from samba.data.registry import ChecksumError, DataNotAvailableError


def _sums(path):
    out = {}
    for line in path.read_text().splitlines():
        if line.strip():
            digest, rel = line.split(maxsplit=1)
            out[rel.strip()] = digest
    return out


def test_registry_lists_every_public_file_with_its_sha256(mirror):
    full = _sums(mirror / "SHA256SUMS.full")
    listed = {f.relpath: f.sha256 for f in registry.files()}
    assert listed == full


def test_registry_metadata_and_urls():
    reg = registry.load_registry()
    for name, d in reg["datasets"].items():
        for key in ("licence", "citation", "device", "tasks", "homepage", "reader"):
            assert key in d, (name, key)
    urls = {f.relpath: f.url for f in registry.files()}
    assert urls["eegmmidb/S001/S001R01.edf"] == "https://physionet.org/files/eegmmidb/1.0.0/S001/S001R01.edf"
    assert urls["eegmat/Subject00_1.edf"] == "https://physionet.org/files/eegmat/1.0.0/Subject00_1.edf"
    assert urls["eeg_eye_state/eeg-eye-state.csv"] == "https://archive.ics.uci.edu/static/public/264/eeg+eye+state.zip"
    assert urls["muse_p300/subject1/session1/data_2017-02-04-15_45_13.csv"] == (
        "https://raw.githubusercontent.com/NeuroTechX/eeg-notebooks_v0.1/master/data/visual/P300/"
        "subject1/session1/data_2017-02-04-15_45_13.csv")
    assert urls["yasa/data_resting_EO_200Hz_raw.fif"].startswith("https://raw.githubusercontent.com/raphaelvallat/yasa/master/notebooks/")
    # the paper's other datasets are described, with a loader and how to obtain them
    for name in ("tuab", "bnci2014_001", "physionet_mi", "grosse_wentrup2009", "stew", "dreamer", "bci_comp_p300"):
        ext = reg["external"][name]
        assert ext["loader"] and ext["obtain"] and ext["licence"]


def test_every_mirrored_file_verifies(mirror):
    ok, missing, bad = registry.verify(mirror)
    assert bad == []
    assert set(ok) == set(_sums(mirror / "SHA256SUMS"))
    assert len(ok) + len(missing) == len(registry.files())


def test_fetch_from_mirror_verifies(mirror):
    path = registry.fetch("eegmmidb", "S001/S001R04.edf", mirror=mirror)
    assert path == mirror / "eegmmidb/S001/S001R04.edf"


def test_file_absent_offline_is_a_clear_error(mirror):
    with pytest.raises(DataNotAvailableError, match=r"not available offline: eegmat/Subject20_1.edf.*https://physionet.org/files/eegmat/1.0.0/Subject20_1.edf"):
        registry.fetch("eegmat", "Subject20_1.edf", mirror=mirror)
    with pytest.raises(KeyError, match="not in the registry"):
        registry.fetch("eegmat", "Subject99_1.edf", mirror=mirror)


def test_checksum_mismatch_is_detected(mirror, tmp_path):
    bad_mirror = tmp_path / "mirror"
    (bad_mirror / "eeg_eye_state").mkdir(parents=True)
    copy = bad_mirror / "eeg_eye_state" / "eeg-eye-state.csv"
    shutil.copyfile(mirror / "eeg_eye_state" / "eeg-eye-state.csv", copy)
    data = bytearray(copy.read_bytes())
    data[200] = ord("9") if data[200] != ord("9") else ord("8")  # one digit changed
    copy.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match="checksum mismatch"):
        registry.fetch("eeg_eye_state", "eeg-eye-state.csv", mirror=bad_mirror)
    ok, missing, bad = registry.verify(bad_mirror)
    assert bad == ["eeg_eye_state/eeg-eye-state.csv"] and ok == []
    report, code = data_verify(bad_mirror)
    assert code == 1
    assert report.splitlines()[-1] == f"0 ok, {len(missing)} missing, 1 bad"


def test_data_verify_report(mirror):
    report, code = data_verify(mirror)
    n_mirrored = len(_sums(mirror / "SHA256SUMS"))
    n_all = len(registry.files())
    assert code == 0
    assert report.splitlines()[-1] == f"{n_mirrored} ok, {n_all - n_mirrored} missing, 0 bad"


def test_data_list_names_datasets_and_tasks():
    table = data_list()
    for word in ("eegmmidb", "eegmat", "eeg_eye_state", "muse_p300", "tuab", "eegmmidb-mi",
                 "eyes-open-closed", "eegmat-workload", "muse-p300"):
        assert word in table


def _fake_retrieve(mirror, corrupt=False):
    """A stand-in for pooch.retrieve that 'downloads' from the mirror (CI has no internet)."""

    def retrieve(url, known_hash=None, fname=None, path=None, processor=None, progressbar=False):
        rel = next(f.relpath for f in registry.files() if f.url == url)
        target = Path(path) / (fname or Path(url).name)
        target.parent.mkdir(parents=True, exist_ok=True)
        data = (mirror / rel).read_bytes()
        target.write_bytes(data[:-10] if corrupt else data)
        return str(target)

    return retrieve


def test_download_into_cache_without_mirror(mirror, tmp_path, monkeypatch):
    import pooch

    monkeypatch.delenv("SAMBA_DATA_MIRROR", raising=False)
    monkeypatch.setenv("SAMBA_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("SAMBA_DOWNLOAD")
    monkeypatch.setattr(pooch, "retrieve", _fake_retrieve(mirror))
    assert registry.download_allowed(None)
    path = registry.fetch("eegmmidb", "S001/S001R01.edf.event")
    assert path == tmp_path / "cache" / "eegmmidb/S001/S001R01.edf.event"
    assert registry.fetch("eegmmidb", "S001/S001R01.edf.event") == path  # second time from the cache
    monkeypatch.setattr(pooch, "retrieve", _fake_retrieve(mirror, corrupt=True))
    with pytest.raises(ChecksumError):
        registry.fetch("eegmmidb", "S001/S001R02.edf.event")
    assert not (tmp_path / "cache" / "eegmmidb/S001/S001R02.edf.event").exists()  # bad download removed


def test_eye_state_zip_member_converted_from_arff(mirror, tmp_path, monkeypatch):
    import pooch

    lines = (mirror / "eeg_eye_state/eeg-eye-state.csv").read_text().splitlines()
    names = ["AF3", "F7", "F3", "FC5", "T7", "P7", "O1", "O2", "P8", "T8", "FC6", "F4", "F8", "AF4", "eyeDetection"]
    arff = tmp_path / "EEG Eye State.arff"
    arff.write_text("@RELATION 'EEG_DATA'\n\n" + "".join(f"@ATTRIBUTE {n} NUMERIC\n" for n in names)
                    + "\n@DATA\n" + "\n".join(lines[1:]) + "\n")

    def retrieve(url, known_hash=None, path=None, processor=None, progressbar=False, fname=None):
        assert url.endswith("eeg+eye+state.zip") and isinstance(processor, pooch.Unzip)
        return [str(arff)]

    monkeypatch.delenv("SAMBA_DATA_MIRROR", raising=False)
    monkeypatch.setenv("SAMBA_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(pooch, "retrieve", retrieve)
    path = registry.fetch("eeg_eye_state", "eeg-eye-state.csv", download=True)
    assert registry.sha256sum(path) == registry.entry("eeg_eye_state", "eeg-eye-state.csv").sha256
