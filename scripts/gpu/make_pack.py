#!/usr/bin/env python3
"""usage: SAMBA_DATA_MIRROR=DIR python3 scripts/gpu/make_pack.py [--pretraining-only] [--out DIR]

Fill a fresh cache with every task, the pretraining corpus and the held-out and validation recordings, then export
it as float16 to .gpu/pack (git-ignored) for the offline GPU machine. Also records the commit in .gpu/COMMIT.

--pretraining-only packs the 30-s corpus and the validation recordings alone (what `samba pretrain --profile full`
reads), small enough that a resumable run's train_state/ travels beside it; env.sh reads it from SAMBA_PACK."""
import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

from samba.data import load_task, pretraining_corpus
from samba.data.cache import export_entries
from samba.data.corpus import heldout_recordings, validation_recordings

TASKS = ["eegmmidb-mi", "eyes-open-closed", "eegmat-workload", "muse-p300"]

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pretraining-only", action="store_true", help="only the 30-s corpus and validation recordings")
    ap.add_argument("--out", default=".gpu/pack", help="pack folder (default .gpu/pack)")
    args = ap.parse_args()
    cache = tempfile.mkdtemp(prefix="samba_pack_cache_")
    if not args.pretraining_only:
        for t in TASKS:
            print(t, load_task(t, cache_dir=cache).X.shape)
    for window_s in (30.0,) if args.pretraining_only else (4.0, 30.0):
        for ds in pretraining_corpus(cache_dir=cache, window_s=window_s):
            print("corpus", window_s, ds.device, ds.X.shape)
    recordings = [] if args.pretraining_only else heldout_recordings(cache_dir=cache)
    for name, _ in recordings + validation_recordings(cache_dir=cache):
        print("held out / validation", name)
    shutil.rmtree(args.out, ignore_errors=True)
    n, size = export_entries(args.out, directory=cache)
    Path(".gpu/COMMIT").write_text(subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], text=True).strip())
    print(f"{n} entries, {size / 2**20:.1f} MiB in {args.out}")
