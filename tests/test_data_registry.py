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
    assert report.splitlines()[-1] == f"0 ok, {len(missing)} missing, 1 bad"  # no listing: absent = missing


def test_data_verify_report(mirror):
    report, code = data_verify(mirror)
    n_mirrored = len(_sums(mirror / "SHA256SUMS"))
    n_all = len(registry.files())
    assert code == 0
    assert report.splitlines()[-1] == f"{n_mirrored} ok, 0 missing, 0 bad"  # files not mirrored are no error
    assert f"{n_all - n_mirrored}" == str(sum(int(line.split()[1]) for line in report.splitlines()
                                              if line.startswith("absent")))


def test_data_verify_fails_for_absent_mirror_empty_cache_and_missing_files(mirror, tmp_path, monkeypatch):
    """Before: `samba data verify --mirror /no/such/dir` exited 0, and so did an empty cache. Now a mirror
    that does not exist, nothing to check, or a file the mirror's own listing names but lacks is an error;
    the counts line stays last."""
    report, code = data_verify(tmp_path / "no" / "such" / "dir")
    assert code == 1 and "does not exist" in report and report.splitlines()[-1].endswith("missing, 0 bad")
    monkeypatch.delenv("SAMBA_DATA_MIRROR", raising=False)
    monkeypatch.setenv("SAMBA_DATA_DIR", str(tmp_path / "empty-cache"))
    report, code = data_verify(None)
    assert code == 1 and "no registry file was found" in report and report.splitlines()[-1] == "0 ok, 0 missing, 0 bad"
    partial = tmp_path / "partial"
    (partial / "eeg_eye_state").mkdir(parents=True)
    shutil.copyfile(mirror / "eeg_eye_state/eeg-eye-state.csv", partial / "eeg_eye_state/eeg-eye-state.csv")
    (partial / "SHA256SUMS").write_text("".join(line + "\n" for line in (mirror / "SHA256SUMS").read_text().splitlines()
                                                if "eeg_eye_state/" in line or line.endswith("S001R04.edf")))
    report, code = data_verify(partial)  # the listing promises S001R04.edf, which is absent
    assert code == 1 and "MISSING  eegmmidb/S001/S001R04.edf" in report
    assert report.splitlines()[-1] == "1 ok, 1 missing, 0 bad"


def test_size_is_checked_before_hashing(tmp_path, monkeypatch):
    """An empty file, or one whose size differs from the registry's, is refused without being hashed."""
    f = tmp_path / "x.edf"
    f.write_bytes(b"")
    monkeypatch.setattr(registry, "file_sha256", lambda p: pytest.fail("hashed a file of the wrong size"))
    with pytest.raises(ChecksumError, match="size mismatch"):
        registry.check_file(f, "0" * 64)
    f.write_bytes(b"12345")
    with pytest.raises(ChecksumError, match="5 bytes but the registry says 4"):
        registry.check_file(f, "0" * 64, size=4)


def test_data_errors_are_samba_errors():
    from samba.data.preprocess import BadChannelError, SamplingRateError
    from samba.data.readers import CorruptFileError
    from samba.data.tasks import EmptySplitError
    from samba.errors import SambaError

    for cls, base in [(DataNotAvailableError, FileNotFoundError), (ChecksumError, ValueError),
                      (CorruptFileError, ValueError), (SamplingRateError, ValueError),
                      (BadChannelError, ValueError), (EmptySplitError, ValueError)]:
        assert issubclass(cls, SambaError) and issubclass(cls, base), cls


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


def test_zip_member_that_fails_its_hash_is_never_used(mirror, tmp_path, monkeypatch):
    """Before: a zip download whose member did not match the registry's sha256 was kept with a warning.
    Now the member is verified before it enters the cache, and nothing of it is left behind."""
    import pooch

    bad = tmp_path / "eeg-eye-state.csv"
    bad.write_text((mirror / "eeg_eye_state/eeg-eye-state.csv").read_text().replace("4329", "4330", 1))

    def retrieve(url, known_hash=None, path=None, processor=None, progressbar=False, fname=None):
        return [str(bad)]

    monkeypatch.delenv("SAMBA_DATA_MIRROR", raising=False)
    monkeypatch.setenv("SAMBA_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(pooch, "retrieve", retrieve)
    with pytest.raises(ChecksumError, match="checksum mismatch"):
        registry.fetch("eeg_eye_state", "eeg-eye-state.csv", download=True)
    cache = tmp_path / "cache" / "eeg_eye_state"
    assert not (cache / "eeg-eye-state.csv").exists() and list(cache.iterdir()) == []


def test_archive_hash_is_passed_to_the_download(monkeypatch, tmp_path):
    """When the registry records an archive's own sha256, pooch checks it before extracting."""
    import dataclasses

    import pooch

    seen = {}

    def retrieve(url, known_hash=None, path=None, processor=None, progressbar=False, fname=None):
        seen["hash"] = known_hash
        raise ValueError("SHA256 hash of downloaded file does not match the known hash")

    f = dataclasses.replace(registry.entry("eeg_eye_state", "eeg-eye-state.csv"), archive_sha256="ab" * 32)
    monkeypatch.setattr(pooch, "retrieve", retrieve)
    with pytest.raises(ChecksumError, match="archive"):
        registry._download(f, tmp_path / "eeg-eye-state.csv")
    assert seen["hash"] == "sha256:" + "ab" * 32
