#!/usr/bin/env python3
"""usage: SAMBA_DATA_MIRROR=DIR python3 scripts/gpu/make_pack.py   (where the raw recordings are)

Fill a fresh cache with every task, the pretraining corpus and the held-out and validation recordings, then export
it as float16 to .gpu/pack (git-ignored) for the offline GPU machine. Also records the commit in .gpu/COMMIT."""
import shutil
import subprocess
import tempfile
from pathlib import Path

from samba.data import load_task, pretraining_corpus
from samba.data.cache import export_entries
from samba.data.corpus import heldout_recordings, validation_recordings

TASKS = ["eegmmidb-mi", "eyes-open-closed", "eegmat-workload", "muse-p300"]

if __name__ == "__main__":
    cache = tempfile.mkdtemp(prefix="samba_pack_cache_")
    for t in TASKS:
        print(t, load_task(t, cache_dir=cache).X.shape)
    for window_s in (4.0, 30.0):
        for ds in pretraining_corpus(cache_dir=cache, window_s=window_s):
            print("corpus", window_s, ds.device, ds.X.shape)
    for name, _ in heldout_recordings(cache_dir=cache) + validation_recordings(cache_dir=cache):
        print("held out / validation", name)
    shutil.rmtree(".gpu/pack", ignore_errors=True)
    n, size = export_entries(".gpu/pack", directory=cache)
    Path(".gpu/COMMIT").write_text(subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], text=True).strip())
    print(f"{n} entries, {size / 2**20:.1f} MiB in .gpu/pack")
