"""The unlabeled pretraining corpus: every recording we can read, cut into fixed windows, one
``WindowDataset`` per montage (the model takes any channel set, but one batch needs one).

Sources (mirror or cache): EEGMMIDB S001 (all runs), EEGMAT, UCI Eye State, Muse P300, EEGLAB sample,
YASA resting FIF. ``exclude_test=True`` removes every task's fixed test set (``tasks.test_mask``): EEGMMIDB
run 12, EEGMAT subjects 15-35, Muse subject 2, Eye State blocks 3 and 7. Windows: ``window_s`` (default
4 s) every ``stride_s`` (default: no overlap); ``y`` = -1.

A recording whose channels have no known position (the EEGLAB sample as mirrored carries no channel
locations and names its channels "EEG 000"...) cannot be placed by CDSE: it is skipped with a warning and
counted in the log, never given made-up positions.

``profile="quick"``: at most 2 recordings per dataset (the first in registry order).
"""

from __future__ import annotations

import logging
import os

import numpy as np
import pandas as pd

from . import recordings, registry
from .preprocess import Preprocessing
from .tasks import TASKS, test_mask
from .windows import WindowDataset, concat, gather, sliding_starts

log = logging.getLogger(__name__)

CORPUS_DATASETS = ("eegmmidb", "eegmat", "eeg_eye_state", "muse_p300", "eeglab_sample", "yasa")

# which task's test rule applies to which dataset's recordings
_TASK_OF = {spec.dataset: name for name, spec in TASKS.items()}


def pretraining_corpus(
    mirror: str | os.PathLike | None = None, window_s: float = 4.0, exclude_test: bool = True,
    profile: str = "full", stride_s: float | None = None, sfreq: float = 128.0,
    cache_dir: str | os.PathLike | None = None, datasets=CORPUS_DATASETS,
) -> list[WindowDataset]:
    """One ``WindowDataset`` per montage pooling all readable recordings (largest first)."""
    params = Preprocessing(sfreq=float(sfreq))
    win = int(round(window_s * params.sfreq))
    stride = int(round((stride_s or window_s) * params.sfreq))
    if win < 8:
        raise ValueError(f"window of {win} samples is shorter than 8")
    groups: dict[tuple[str, ...], list[WindowDataset]] = {}
    skipped: list[str] = []
    for name in datasets:
        present = {e.path for e in registry.available(name, mirror)}
        present |= {f.path for f, _ in recordings.recording_files(name) if recordings.is_cached(f, params, cache_dir)}
        files = [(f, fid) for f, fid in recordings.recording_files(name) if f.path in present]
        n_absent = len(recordings.recording_files(name)) - len(files)
        if n_absent:
            log.info("pretraining corpus: %s: %d recording(s) not available offline, skipped", name, n_absent)
        if profile == "quick":
            files = files[:2]
        for f, fid in files:
            try:
                rec = recordings.load_recording(f, mirror, params, cache_dir)
            except (ValueError, registry.DataNotAvailableError) as err:
                skipped.append(f"{f.relpath}: {err}")
                continue
            if rec.positions is None:
                skipped.append(f"{f.relpath}: no channel positions ({rec.report.get('positions_error')})")
                continue
            pos = rec.positions
            starts = sliding_starts(rec.data.shape[1], win, stride)
            meta = pd.DataFrame({
                "dataset": name, "subject": fid.subject, "session": fid.session, "run": fid.run,
                "file": f.relpath, "onset_s": starts / rec.sfreq, "window_s": win / rec.sfreq, "label": "",
            })
            if exclude_test and name in _TASK_OF:
                keep = ~test_mask(_TASK_OF[name], meta)
                starts, meta = starts[keep], meta[keep]
            if len(starts) == 0:
                continue
            ds = WindowDataset(gather(rec, starts, win), np.full(len(starts), -1), list(rec.ch_names), pos,
                               rec.sfreq, meta, [], "pretraining", registry.dataset_info(name)["device"])
            groups.setdefault(tuple(rec.ch_names), []).append(ds)
    if skipped:
        log.warning("pretraining corpus: skipped %d recording(s): %s", len(skipped), "; ".join(skipped))
    out = [concat(parts) for parts in groups.values()]
    for ds in out:
        ds.device = "+".join(sorted(set(ds.meta.dataset))) if ds.meta.dataset.nunique() > 1 else ds.device
    out.sort(key=lambda d: -len(d) * d.n_channels)
    if not out:
        raise registry.DataNotAvailableError("pretraining corpus: no recording available; set SAMBA_DATA_MIRROR")
    log.info("pretraining corpus: %s", ", ".join(f"{d.device} {tuple(d.X.shape)}" for d in out))
    return out
