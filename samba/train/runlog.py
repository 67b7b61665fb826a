"""Pretraining logs: ``metrics.csv`` (written atomically) and TensorBoard when it is installed.

The CSV is rewritten whole through a temporary file and a rename on every row: a kill mid-write leaves
the previous complete file, never a torn last line. On resume, rows past the resumed step (written
after the last checkpoint by the killed run) are dropped, so no step appears twice.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from samba.checkpoint import atomic_write_bytes

# eeg_s_per_s: training steps only (validation and checkpoint time left out); eeg_hours: EEG seen so far (all
# ranks), so (change in eeg_hours) / (change in wall) is the rate with everything included
METRIC_COLUMNS = ["step", "epoch", "lr", "loss", "l1", "spectral", "eeg_s_per_s", "wall", "val_loss", "eeg_hours"]


class MetricsLog:
    """Rows of :data:`METRIC_COLUMNS`; ``enabled=False`` on ranks other than 0."""

    def __init__(self, run_dir: Path, resume_step: int, enabled: bool):
        self.enabled = enabled
        self.path = Path(run_dir) / "metrics.csv"
        self.rows: list[dict] = []
        self.tb = None
        if not enabled:
            return
        if resume_step > 0 and self.path.exists():
            with open(self.path, newline="") as f:
                for r in csv.DictReader(f):
                    try:
                        if int(r["step"]) <= resume_step:
                            self.rows.append({k: r.get(k, "") for k in METRIC_COLUMNS})
                    except (TypeError, ValueError):
                        continue  # a damaged row of a killed run: dropped, it is past the checkpoint anyway
        self._flush()
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(Path(run_dir) / "tb"), purge_step=resume_step + 1 if resume_step else None)
        except Exception:  # tensorboard not installed: CSV only
            self.tb = None

    def _flush(self) -> None:
        buf = io.StringIO(newline="")
        w = csv.DictWriter(buf, fieldnames=METRIC_COLUMNS)
        w.writeheader()
        w.writerows(self.rows)
        atomic_write_bytes(self.path, buf.getvalue().encode())

    def write(self, row: dict) -> None:
        if not self.enabled:
            return
        self.rows.append({k: row.get(k, "") for k in METRIC_COLUMNS})
        self._flush()
        if self.tb is not None:
            for k in ("lr", "loss", "l1", "spectral", "eeg_s_per_s", "val_loss"):
                if row.get(k, "") != "":
                    self.tb.add_scalar(f"pretrain/{k}", float(row[k]), int(row["step"]))

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def progress_bar(enabled: bool, total: int, initial: int):
    """A tqdm bar on stderr (stdout keeps the one promised last line), or None."""
    if not enabled:
        return None
    import sys

    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="pretrain", file=sys.stderr, dynamic_ncols=True)
