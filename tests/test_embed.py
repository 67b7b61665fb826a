"""samba.data.user (any file -> placed EEG channels) and samba.embedding / `samba embed` (features, streamed).

Recordings are real (EEGMMIDB S001 R01 from the mirror) written out in each format into tmp_path; the
model is the tiny test config unless a test is about the released checkpoint.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import mne
import numpy as np
import pytest
import torch

from samba.checkpoint import save_model
from samba.data.user import open_recording, preprocess_recording
from samba.embedding import embed, embed_to_file, load_pretrained, plan_chunks, pretrained_path
from samba.errors import InputError
from samba.model import SAMBA, SAMBAConfig
from test_train_pretrain import tiny_model_config

REPO = Path(__file__).resolve().parents[1]
PICK = ["Fp1", "Fz", "C3", "Cz", "C4", "Pz", "O1", "O2"]


@pytest.fixture(scope="module")
def raw20(mirror):
    from samba.data.readers import read_eegmmidb

    raw = read_eegmmidb(mirror / "eegmmidb/S001/S001R01.edf").pick(PICK).crop(0, 20, include_tmax=False)
    return raw


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_model(path, SAMBA(SAMBAConfig.from_dict(tiny_model_config())).eval())
    return path


def _write(raw, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if path.suffix == ".fif":
            raw.save(path, overwrite=True, verbose="ERROR")
        elif path.suffix == ".csv":
            cols = {"time": raw.times, **{n: raw.get_data(picks=[n])[0] * 1e6 for n in raw.ch_names}}
            import pandas as pd

            pd.DataFrame(cols).to_csv(path, index=False)
        else:
            fmt = {".edf": "edf", ".vhdr": "brainvision"}[path.suffix]
            mne.export.export_raw(path, raw, fmt=fmt, overwrite=True, verbose="ERROR")
    return path


@pytest.mark.parametrize("suffix", [".edf", ".vhdr", ".fif", ".csv"])
def test_every_format_reads_the_same_channels_and_signal(raw20, tmp_path, suffix):
    path = _write(raw20, tmp_path / f"rec{suffix}")
    rec = open_recording(path)
    assert rec.ch_names == PICK and rec.sfreq == 160.0 and rec.n_times == raw20.n_times
    from samba.montage import positions

    assert np.allclose(rec.positions, positions(PICK), atol=1e-6)
    got = rec.raw.get_data()
    ref = raw20.get_data()
    assert np.abs(got - ref).max() < 1e-6 * np.abs(ref).max() + 1e-7  # EDF stores 16-bit samples


def test_non_eeg_channels_dropped_with_one_message(raw20, caplog):
    raw = raw20.copy()
    extra = mne.io.RawArray(np.random.default_rng(0).normal(size=(3, raw.n_times)) * 1e-5,
                            mne.create_info(["ECG ECG", "STI 014", "Foo"], raw.info["sfreq"], ["ecg", "stim", "eeg"]),
                            verbose="ERROR")
    raw.add_channels([extra], force_update_info=True)
    with caplog.at_level(logging.WARNING, logger="samba.data.user"):
        rec = open_recording(raw)
    assert rec.ch_names == PICK
    lines = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert len(lines) == 1 and all(n in lines[0] for n in ("ECG ECG", "STI 014", "Foo"))
    assert rec.dropped == {"ECG ECG": "ecg", "STI 014": "stim", "Foo": "no known position"}


def test_unusable_input_is_one_clear_input_error(raw20, tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "empty.edf").write_bytes(b"")
    (tmp_path / "junk.edf").write_bytes(b"0" * 1000)
    short = _write(raw20.copy().crop(0, 1.0), tmp_path / "short.fif")
    unplaced = raw20.copy().rename_channels({n: f"EEG {i:03d}" for i, n in enumerate(PICK)})
    cases = {
        tmp_path / "missing.edf": "no such recording",
        tmp_path / "notes.txt": "unknown recording format",
        tmp_path / "empty.edf": "empty file",
        tmp_path / "junk.edf": "cannot read as .edf",
        short: "need at least 2 s",
    }
    for path, match in cases.items():
        with pytest.raises(InputError, match=match):
            open_recording(path)
    with pytest.raises(InputError, match="no EEG channel with a known position"):
        open_recording(unplaced)


def test_csv_needs_a_time_column_or_sfreq(raw20, tmp_path):
    import pandas as pd

    x = raw20.get_data() * 1e6
    pd.DataFrame(x.T, columns=PICK).to_csv(tmp_path / "no_time.csv", index=False)
    with pytest.raises(InputError, match="--sfreq"):
        open_recording(tmp_path / "no_time.csv")
    rec = open_recording(tmp_path / "no_time.csv", sfreq=160.0)
    assert rec.sfreq == 160.0 and np.allclose(rec.raw.get_data(), raw20.get_data(), atol=1e-9)


def test_preprocess_matches_the_pretraining_pipeline(raw20):
    from samba.data.preprocess import preprocess

    rec = open_recording(raw20)
    ours, ref = preprocess_recording(rec), preprocess(raw20.copy())
    assert ours.ch_names == ref.ch_names and np.array_equal(ours.data, ref.data)
    assert ours.positions.shape == (8, 3)


@pytest.mark.parametrize("fs_in", [160.0, 500.0, 256.0, 200.0, 128.0, 250.0])
def test_chunk_plan_tiles_whole_windows(fs_in):
    n = int(fs_in * 3600)
    plan = plan_chunks(n, fs_in, 128.0, 30.0, 600.0, 10.0)
    assert plan.n_windows == int(n * 128 / fs_in) // 3840  # every full window, none twice
    for a, b in plan.cores[:-1]:
        assert (a * plan.up) % plan.down == 0 and (b * plan.up) % plan.down == 0  # chunk edges on both grids
        assert plan.windows_in(a, b) * plan.win == (b - a) * plan.up // plan.down
    with pytest.raises(InputError, match="shorter than one window"):
        plan_chunks(int(fs_in * 10), fs_in, 128.0, 30.0, 600.0, 10.0)


def test_embed_shapes_times_and_streaming_equals_in_memory(raw20, tiny_ckpt, tmp_path):
    model = load_pretrained(tiny_ckpt)
    assert not model.training
    emb = embed(raw20, model, window_s=4.0, progress=False)
    D = model.cfg.bottleneck_dim
    assert emb.features.shape == (5, D, 64) and emb.pooled.shape == (5, D)
    assert np.allclose(emb.times_s, [0, 4, 8, 12, 16]) and emb.ch_names == PICK
    assert np.allclose(emb.pooled, emb.features.mean(-1), atol=1e-6)
    path = _write(raw20, tmp_path / "rec.fif")
    out = embed_to_file(path, tmp_path / "o" / "f.npz", model=tiny_ckpt, window_s=4.0, progress=False, batch_size=2)
    z = np.load(out)
    assert np.allclose(z["features"], emb.features, atol=1e-5) and z["features"].dtype == np.float32
    assert list(z["ch_names"]) == PICK and float(z["sfreq"]) == 128.0 and len(str(z["checkpoint_sha256"])) == 64
    assert [p.name for p in out.parent.iterdir()] == ["f.npz"]  # atomic: no temporary left behind
    chunked = embed_to_file(path, tmp_path / "c.npz", model=tiny_ckpt, window_s=4.0, chunk_s=8.0, progress=False)
    zc = np.load(chunked)  # 8-s chunks with 10-s margins: same windows, chunk-wise robust statistics
    assert zc["features"].shape == z["features"].shape and np.allclose(zc["times_s"], z["times_s"])


def test_embed_epochs(raw20, tiny_ckpt):
    epochs = mne.make_fixed_length_epochs(raw20, duration=2.0, preload=True, verbose="ERROR")
    emb = embed(epochs, tiny_ckpt, progress=False)
    assert emb.features.shape[:1] == (10,) and emb.features.shape[2] == 32  # 2 s at 128 Hz / 8
    assert np.allclose(emb.times_s, np.arange(10) * 2.0)


def _samba(*args, cwd):
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "samba", *map(str, args)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_cli_writes_npz_and_prints_its_path_last(raw20, tiny_ckpt, tmp_path):
    path = _write(raw20, tmp_path / "rec.vhdr")
    r = _samba("embed", path.name, "--window-s", "5", "--checkpoint", tiny_ckpt, "--no-progress", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = Path(r.stdout.strip().splitlines()[-1])
    assert out == tmp_path / "rec.samba.npz" and np.load(out)["features"].shape[0] == 4


def test_cli_errors_are_one_line_without_traceback(tmp_path, tiny_ckpt):
    (tmp_path / "x.xyz").write_text("1")
    for args in (["x.xyz"], ["missing.edf"], ["x.xyz", "--window-s", "0"], ["x.xyz", "--out", "f.txt"]):
        r = _samba("embed", *args, "--checkpoint", tiny_ckpt, cwd=tmp_path)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert r.stderr.strip().splitlines()[-1].startswith("samba: error: ")


def test_import_samba_stays_light_and_exports_embed():
    code = "import sys, samba; assert 'torch' not in sys.modules and 'mne' not in sys.modules; " \
           "assert callable(samba.embed) and callable(samba.load_pretrained); print('ok')"
    r = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_released_checkpoint_loads_in_eval_mode():
    if not pretrained_path().exists():
        pytest.skip("no released checkpoint in this checkout")
    model = load_pretrained()
    assert not model.training and model.checkpoint_path == str(pretrained_path())
