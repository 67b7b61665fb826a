"""Model checkpoints: safetensors + JSON + manifest folders; round trip, corruption, no code on load."""

import json
import pickle
from pathlib import Path

import pytest
import torch

from samba import SAMBA, SAMBAConfig
from samba.checkpoint import (CheckpointError, convert_legacy, load_finetuned_state, load_model, save_finetuned,
                              save_model)
from samba.errors import SambaError
from samba.montage import positions

REPO = Path(__file__).resolve().parents[1]


def _model():
    torch.manual_seed(0)
    return SAMBA(SAMBAConfig(expand=2, d_state=8, chunk_size=16, backend="torch")).eval()


def test_round_trip_same_outputs(tmp_path):
    m = _model()
    head = {"weight": torch.randn(2, 4)}
    path = save_model(tmp_path / "m", m, extra={"montage": ["TP9", "AF7", "AF8", "TP10"], "head": head})
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "manifest.json", "model.safetensors"]
    m2, extra = load_model(path)
    coords = torch.from_numpy(positions(extra["montage"]))
    x = torch.randn(1, 4, 64)
    with torch.no_grad():
        torch.testing.assert_close(m2(x, coords), m(x, coords))
    assert m2.cfg == m.cfg
    assert torch.equal(extra["head"]["weight"], head["weight"])  # tensors inside extra survive the JSON


def test_pt_suffix_names_the_folder(tmp_path):
    """Callers written for the one-file layout (``.../samba_pretrained.pt``) find the folder."""
    path = save_model(tmp_path / "m.pt", _model())
    assert path == tmp_path / "m" and path.is_dir()
    load_model(tmp_path / "m.pt")


def test_flipped_byte_in_each_file_is_refused_naming_it(tmp_path):
    """Before: a flipped byte in the weights loaded silently (no integrity hash). Now every file is checked
    against the manifest and the error names the file."""
    path = save_model(tmp_path / "m", _model())
    for name in ("model.safetensors", "config.json", "manifest.json"):
        original = (path / name).read_bytes()
        data = bytearray(original)
        data[len(data) // 2] ^= 0x01
        (path / name).write_bytes(bytes(data))
        with pytest.raises(CheckpointError, match="manifest|corrupt|JSON") as err:
            load_model(path)
        assert name in str(err.value) or name == "manifest.json"
        (path / name).write_bytes(original)
    load_model(path)  # restored: loads again


def test_truncated_missing_and_foreign_files(tmp_path):
    path = save_model(tmp_path / "m", _model())
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="model.safetensors is corrupt: .* bytes"):
        load_model(path)
    (path / "manifest.json").unlink()
    with pytest.raises(CheckpointError, match="no manifest.json"):
        load_model(path)
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "absent")
    assert issubclass(CheckpointError, SambaError) and issubclass(CheckpointError, ValueError)


def test_a_pickle_is_never_loaded(tmp_path):
    """A crafted one-file checkpoint whose unpickling would run code is refused without being unpickled."""
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (tmp_path / "evil.pt").write_bytes(pickle.dumps({"format": "samba-model", "x": Evil()}))
    with pytest.raises(CheckpointError, match="old format"):
        load_model(tmp_path / "evil.pt")
    with pytest.raises(CheckpointError):
        convert_legacy(tmp_path / "evil.pt")  # weights_only=True refuses the global
    assert not marker.exists()


def test_mismatched_weights(tmp_path):
    path = save_model(tmp_path / "m", _model())
    cfg = json.loads((path / "config.json").read_text())
    cfg["config"]["expand"] = 4  # weights no longer fit the config
    from samba.checkpoint import write_manifest

    (path / "config.json").write_text(json.dumps(cfg))
    write_manifest(path, ["model.safetensors", "config.json"])
    with pytest.raises(CheckpointError, match="shape mismatch"):
        load_model(path)


def test_convert_legacy_one_file_checkpoint(tmp_path):
    m = _model()
    obj = {"format": "samba-model", "version": 1, "config": m.cfg.to_dict(),
           "state_dict": {k: v.clone() for k, v in m.state_dict().items()}, "extra": {"step": 3}}
    torch.save(obj, tmp_path / "old.pt")
    folder = convert_legacy(tmp_path / "old.pt")
    m2, extra = load_model(folder)
    assert extra == {"step": 3}
    for k, v in m.state_dict().items():
        assert torch.equal(v, m2.state_dict()[k]), k


def test_released_checkpoint_loads_and_verifies():
    from samba.paths import repo_path

    model, extra = load_model(repo_path("checkpoints", "samba_pretrained"))
    assert extra["kind"] == "pretrained" and sum(p.numel() for p in model.parameters()) > 1_000_000


def test_finetuned_round_trip_and_corruption(tmp_path):
    sd = {"w": torch.randn(3, 2), "b": torch.zeros(3)}
    save_finetuned(tmp_path, sd, {"model": "eegnet", "kwargs": {"n_outputs": 3}, "head": {"x": torch.ones(2)}})
    state, meta = load_finetuned_state(tmp_path)
    assert torch.equal(state["w"], sd["w"]) and meta["kwargs"]["n_outputs"] == 3
    assert torch.equal(meta["head"]["x"], torch.ones(2))
    data = bytearray((tmp_path / "finetuned.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (tmp_path / "finetuned.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="finetuned.safetensors is corrupt"):
        load_finetuned_state(tmp_path)


def test_release_script_keeps_the_weights_and_records_the_run(tmp_path):
    """scripts/release_checkpoint.py: the released folder loads, holds the run's weights byte for byte, records
    every call of the run in extra.run, and a tampered source is refused before anything is written."""
    import importlib.util
    from pathlib import Path

    from test_train_pretrain import tiny_model_config

    spec = importlib.util.spec_from_file_location("release_checkpoint", Path(__file__).parents[1] / "scripts" /
                                                  "release_checkpoint.py")
    rel = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rel)
    run = tmp_path / "run"
    save_model(run / "samba_pretrained", SAMBA(SAMBAConfig(**tiny_model_config())), extra={"step": 7})
    (run / "metrics.csv").write_text("step,loss\n7,1.0\n")
    out, metrics = tmp_path / "released", tmp_path / "metrics.csv"
    calls = ["abc1234,NVIDIA H100 80GB HBM3,2026-12-06,0,5", "def5678,NVIDIA H100 80GB HBM3,2026-12-07,5,9"]
    assert rel.main([str(run), "--script", "bash pretrain.sh", "--out", str(out), "--metrics-out", str(metrics),
                     *[a for c in calls for a in ("--call", c)]]) == 0
    assert (out / "model.safetensors").read_bytes() == (run / "samba_pretrained" / "model.safetensors").read_bytes()
    _, extra = load_model(out)
    assert extra["step"] == 7 and extra["run"]["steps"] == 9 and extra["run"]["script"] == "bash pretrain.sh"
    assert [c["steps"] for c in extra["run"]["calls"]] == [[0, 5], [5, 9]]
    assert metrics.read_text() == "step,loss\n7,1.0\n"
    with pytest.raises(SystemExit):  # calls that do not continue one another
        rel.main([str(run), "--script", "x", "--out", str(tmp_path / "o2"), "--call", calls[0], "--call",
                  "def5678,H100,2026-12-07,6,9"])
    cfg = json.loads((run / "samba_pretrained" / "config.json").read_text())
    cfg["extra"]["step"] = 8  # tampered: no longer the file the manifest hashed
    (run / "samba_pretrained" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError):
        rel.release(run, tmp_path / "o3", tmp_path / "m3.csv", {})
    assert not (tmp_path / "o3").exists()
    # as a command: a folder that is not a run is one line and exit status 2
    import subprocess
    import sys

    res = subprocess.run([sys.executable, str(Path(__file__).parents[1] / "scripts" / "release_checkpoint.py"),
                          str(tmp_path / "no_run"), "--script", "x", "--out", str(tmp_path / "o4"), "--call",
                          calls[0]], capture_output=True, text=True)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "manifest.json" in res.stderr
    assert not (tmp_path / "o4").exists()


def test_wrong_file_or_impossible_config_is_a_checkpoint_error(tmp_path):
    """Passing a file of the folder, or any file, says what to pass; a config whose values pass the parser
    but cannot build a model is a CheckpointError too, never a ZeroDivisionError from inside the model."""
    path = save_model(tmp_path / "m", _model())
    with pytest.raises(CheckpointError, match="pass the folder"):
        load_model(path / "model.safetensors")
    (tmp_path / "notes.txt").write_text("hello\n")
    with pytest.raises(CheckpointError, match="not a SAMBA checkpoint"):
        load_model(tmp_path / "notes.txt")
    with pytest.raises(CheckpointError, match="cannot build"):
        load_model(path, config_overrides={"chunk_size": 0})


def test_weights_sha256_is_the_published_hash():
    from samba.checkpoint import weights_sha256

    folder = REPO / "checkpoints" / "samba_pretrained"
    card = (REPO / "checkpoints" / "MODEL_CARD.md").read_text()
    assert weights_sha256(folder) == weights_sha256(folder / "model.safetensors")
    assert f"`{weights_sha256(folder)}`" in card  # the model card's table, as sha256sum prints it


def test_model_card_lists_each_file_with_its_size_and_hash():
    import hashlib
    import re

    folder = REPO / "checkpoints" / "samba_pretrained"
    card = (REPO / "checkpoints" / "MODEL_CARD.md").read_text()
    rows = dict((name, (int(size.replace(",", "")), sha)) for name, size, sha in
                re.findall(r"^\| `([\w.]+)` \| ([\d,]+) \| `([0-9a-f]{64})` \|$", card, flags=re.M))
    assert set(rows) >= {"model.safetensors", "config.json"}
    for name, (size, sha) in rows.items():
        data = (folder / name).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (size, sha), name


def test_config_sizes_are_whole_numbers_and_numpy_integers_become_ints():
    import numpy as np

    cfg = SAMBAConfig(d_state=np.int64(8), enc_dims=[np.int32(64), 128])
    assert type(cfg.d_state) is int and cfg.enc_dims == (64, 128) and all(type(v) is int for v in cfg.enc_dims)
    for bad in ({"chunk_size": 0}, {"embed_dim": "64"}, {"enc_dims": (64, -1)}, {"expand": True}, {"embed_kernels": ()}):
        with pytest.raises(ValueError, match="whole number"):
            SAMBAConfig(**bad)
