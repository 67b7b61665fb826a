"""A run folder: one owner at a time, checked before any work, never wiped by accident.

* **Lock.** ``run.lock`` holds the owner's pid, host and process start time; a second run in the same
  folder is refused with the owner's pid. A lock whose process is gone (killed, crashed, rebooted host,
  or a pid since reused by another process) is stale: it is taken over with a warning.
* **Fresh start.** ``--no-resume`` in a folder that already holds a run is refused unless ``--overwrite``
  is given; then only the files a run writes are removed (never anything else a user keeps there).
* **Writable.** The folder is created and a probe file written before the corpus is loaded, so a bad
  ``--out`` is found in a second, not after the training.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import warnings
from pathlib import Path

from samba.errors import UsageError

from samba.paths import check_writable_dir

LOCK = "run.lock"
# Everything a pretraining run writes into its folder (what --overwrite may remove).
RUN_OUTPUTS = ("train_state", "train_state.prev", "train_state.new", "metrics.csv", "config.json",
               "samba_pretrained", "tb")


def _start_ticks(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell a reused pid from the owner."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(owner: dict) -> bool:
    if owner.get("host") != socket.gethostname():
        return True  # another machine's process cannot be checked: assume it runs
    pid = owner.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    ticks = _start_ticks(pid)
    return ticks is None or owner.get("start") in (None, ticks)


class RunLock:
    """Exclusive ownership of a run folder (``with RunLock(folder): ...``)."""

    def __init__(self, folder: str | os.PathLike):
        self.path = Path(folder) / LOCK
        self.held = False

    def acquire(self) -> "RunLock":
        me = {"pid": os.getpid(), "host": socket.gethostname(), "start": _start_ticks(os.getpid()),
              "since": time.strftime("%Y-%m-%dT%H:%M:%S")}
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    owner = json.loads(self.path.read_text())
                    owner = owner if isinstance(owner, dict) else {}
                except (OSError, ValueError):
                    owner = {}  # a lock written halfway by a killed process: nobody owns it
                if owner and _alive(owner):
                    raise UsageError(f"run folder {self.path.parent} is in use by process {owner.get('pid')} on "
                                     f"{owner.get('host')} (since {owner.get('since')}); wait for it to finish or "
                                     "use another --out") from None
                warnings.warn(f"removing stale lock {self.path} (process {owner.get('pid')} is gone)",
                              RuntimeWarning, stacklevel=2)
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(json.dumps(me))
                fh.flush()
                os.fsync(fh.fileno())
            self.held = True
            return self
        raise UsageError(f"could not take the lock {self.path}: another run keeps taking it; use another --out")

    def release(self) -> None:
        if self.held:
            try:
                owner = json.loads(self.path.read_text())
                if owner.get("pid") == os.getpid():
                    self.path.unlink()
            except (OSError, ValueError):
                pass
            self.held = False

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def holds_a_run(folder: Path) -> bool:
    return any((Path(folder) / name).exists() for name in RUN_OUTPUTS)


def prepare(folder: str | os.PathLike, resume: bool, overwrite: bool) -> Path:
    """Check ``folder`` is writable and, for a fresh start, empty of a previous run (or cleared when asked)."""
    folder = check_writable_dir(folder)
    if not resume and holds_a_run(folder):
        if not overwrite:
            raise UsageError(f"{folder} already holds a run; --no-resume would discard it: add --overwrite to "
                             "start over in it, or choose another --out")
        for name in RUN_OUTPUTS:
            target = folder / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    return folder
