"""One resolver for every labelled data source: built-in tasks, the paper's datasets, your own recordings.

    >>> from samba.data.sources import load_any_task, split_any
    >>> ds = load_any_task("eegmat-workload", mirror="data_mirror")              # built-in (samba.data.tasks)
    >>> ds = load_any_task("tuab:/data/tuh_eeg_abnormal/v3.0.1")                   # the paper's datasets
    >>> ds = load_any_task("moabb:BNCI2014_001", subjects="1-3")
    >>> ds = load_any_task(data="S001R04.edf", labels="left=T1,right=T2")          # your own (samba.data.user_tasks)
    >>> split = split_any(ds, seed=0); split.rule

| ``task`` | loader | split (``split_any``) |
|---|---|---|
| a name in ``samba.data.TASKS`` | ``tasks.load_task`` | ``tasks.split_task``: the task's fixed test set |
| ``tuab:PATH`` | ``external.load_tuab`` | TUAB's own eval folder as test when loaded, else by subject |
| ``moabb:NAME`` | ``external.load_moabb`` (MOABB installed, online or data already downloaded) | by subject |
| ``stew:PATH`` | ``external.load_stew`` | by subject |
| ``dreamer:PATH`` | ``external.load_dreamer`` (``DREAMER.mat``) | by subject |
| ``data=PATH, labels=SPEC`` | ``user_tasks.load_user_task`` | subject > session > run > time blocks with a gap |
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import InputError, UsageError
from .user_tasks import Split, load_user_task, split_user

PREFIXES = ("tuab", "moabb", "stew", "dreamer")


def load_any_task(task: str | None = None, data=None, labels=None, mirror: str | os.PathLike | None = None,
                  profile: str = "quick", subjects=None, window_s: float | None = None, **kw):
    """A ``WindowDataset`` from a built-in task name, ``PREFIX:ARG`` (``PREFIXES``), or ``data`` + ``labels``.

    ``kw`` goes to the loader (e.g. ``stride_s``, ``tmin_s`` for user data; ``max_files`` for TUAB).
    """
    from samba.paths import user_path

    from . import external, tasks

    if data is not None:
        if task not in (None, "", "user"):
            raise UsageError(f"pass either --task ({task}) or --data with --labels, not both")
        return load_user_task(data, labels, window_s=window_s or 4.0, subjects=subjects, **kw)
    if labels is not None:
        raise UsageError("--labels needs --data PATH (the recordings they label)")
    if not task:
        raise UsageError(f"name a task ({', '.join(tasks.TASKS)}, or {':PATH, '.join(PREFIXES)}:NAME) or pass --data and --labels")
    prefix, sep, arg = str(task).partition(":")
    if not sep:
        if task not in tasks.TASKS:
            raise UsageError(f"unknown task {task!r}; choose one of {', '.join(tasks.TASKS)}, "
                             f"{', '.join(p + ':...' for p in PREFIXES)}, or --data PATH --labels SPEC")
        extra = {"window_s": window_s} if window_s else {}
        return tasks.load_task(task, mirror=mirror, subjects=subjects, profile=profile, **extra, **kw)
    prefix = prefix.lower()
    if prefix not in PREFIXES or not arg:
        raise UsageError(f"cannot read the task {task!r}; write one of {', '.join(p + ':PATH' for p in PREFIXES if p != 'moabb')}, moabb:NAME")
    extra = {"window_s": window_s} if window_s else {}
    try:
        if prefix == "moabb":
            sel = None if subjects is None else sorted(tasks._parse_subjects(subjects))
            return external.load_moabb(arg, subjects=sel, **kw)
        path = user_path(arg)
        if not path.exists():
            raise InputError(f"{prefix}: no such file or folder {path}; see docs/your_own_data.md for where to obtain it")
        if prefix == "tuab":
            if profile == "quick":
                kw.setdefault("max_files", 20)
            ds = external.load_tuab(path, **extra, **kw)
        elif prefix == "stew":
            ds = external.load_stew(path, **extra, **kw)
        else:
            ds = external.load_dreamer(path, **extra, **kw)
    except ImportError as err:  # MOABB absent
        raise InputError(str(err)) from err
    except KeyError as err:  # unknown MOABB dataset / class
        raise InputError(f"{task}: {err.args[0] if err.args else err}") from err
    except (FileNotFoundError, ValueError) as err:
        if isinstance(err, (InputError, UsageError)):
            raise
        raise InputError(f"{task}: {str(err).splitlines()[0]}") from err
    if subjects is not None and prefix != "moabb":
        want = {str(s) for s in tasks._parse_subjects(subjects)}
        keep = ds.meta.subject.astype(str).str.lstrip("0").isin({w.lstrip("0") for w in want}).to_numpy()
        ds = ds.subset(keep)
    return ds


def split_any(ds, seed: int = 0) -> Split:
    """Train/val/test index arrays for any dataset ``load_any_task`` returns, with ``.rule`` in words."""
    from .tasks import TASKS, split_task

    if ds.task == "user":
        return split_user(ds, seed=seed)
    if "split" in ds.meta and {"train", "eval"} <= set(ds.meta["split"]):  # TUAB's own, subject-disjoint, split
        test = np.flatnonzero((ds.meta["split"] == "eval").to_numpy())
        sub = ds.subset(np.flatnonzero((ds.meta["split"] == "train").to_numpy()))
        inner = split_user(sub, seed=seed)
        train_idx = np.flatnonzero((ds.meta["split"] == "train").to_numpy())
        out = Split(train=train_idx[np.r_[inner["train"], inner["test"]]], val=train_idx[inner["val"]], test=test)
        out.rule = f"TUAB's own split: test = its eval folder; validation {inner.rule.split(':', 1)[-1].strip()}"
        return out
    out = Split(split_task(ds, seed=seed))
    out.rule = ("the task's fixed test set (see samba.data.tasks)" if ds.task in TASKS
                else "by subject: 20 % of the subjects drawn with the seed as test, 20 % of the others as validation")
    return out
