"""A copied preprocessed cache stands in for the raw recordings (compute nodes without the raw data)."""
import numpy as np

from samba.data import load_task
from samba.data.cache import export_entries, import_entries


def test_cache_alone_serves_a_task_and_round_trips_through_float16(mirror, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    ref = load_task("eyes-open-closed", mirror=mirror, cache_dir=cache)
    n, size = export_entries(tmp_path / "pack", directory=cache)
    assert n >= 1 and size > 0
    # a fresh node: no mirror, no raw file, only the imported pack
    monkeypatch.delenv("SAMBA_DATA_MIRROR", raising=False)
    fresh = tmp_path / "fresh_cache"
    assert import_entries(tmp_path / "pack", directory=fresh) == n
    got = load_task("eyes-open-closed", mirror=tmp_path / "no_mirror_here", cache_dir=fresh)
    assert got.X.shape == ref.X.shape and np.array_equal(got.y, ref.y)
    # half precision of robust-scaled, +-10-clipped signals: absolute error below 0.01
    assert np.abs(np.asarray(got.X) - np.asarray(ref.X)).max() < 1e-2
