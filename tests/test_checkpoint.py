import pytest
import torch

from samba import SAMBA, SAMBAConfig
from samba.checkpoint import CheckpointError, load_model, save_model
from samba.montage import positions


def _model():
    torch.manual_seed(0)
    return SAMBA(SAMBAConfig(expand=2, d_state=8, chunk_size=16, backend="torch")).eval()


def test_round_trip_same_outputs(tmp_path):
    m = _model()
    path = save_model(tmp_path / "m.pt", m, extra={"montage": ["TP9", "AF7", "AF8", "TP10"]})
    m2, extra = load_model(path)
    coords = torch.from_numpy(positions(extra["montage"]))
    x = torch.randn(1, 4, 64)
    with torch.no_grad():
        torch.testing.assert_close(m2(x, coords), m(x, coords))
    assert m2.cfg == m.cfg


def test_corrupt_and_truncated_files(tmp_path):
    path = save_model(tmp_path / "m.pt", _model())
    data = path.read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_model(tmp_path / "trunc.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError):
        load_model(tmp_path / "junk.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a SAMBA"):
        load_model(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "absent.pt")


def test_mismatched_weights(tmp_path):
    path = save_model(tmp_path / "m.pt", _model())
    obj = torch.load(path, weights_only=True)
    obj["config"]["expand"] = 4  # weights no longer fit the config
    torch.save(obj, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="shape mismatch"):
        load_model(tmp_path / "bad.pt")
