"""Checks at the training and evaluation boundary: settings that cannot work fail before any work.

Each function raises a :class:`samba.errors.UsageError` (a bad option) or :class:`samba.errors.InputError`
(data that does not fit the model) with one sentence naming the problem and the fix; nothing here
trains, loads or writes anything.
"""

from __future__ import annotations

import numbers

from samba.errors import InputError, UsageError


def has_batch_norm(model) -> bool:
    import torch

    return any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())


def check_batch_size(batch_size: int, n_train: int, batch_norm: bool = False, what: str = "training") -> None:
    """A batch size that trains: >= 1 (>= 2 with batch normalisation) and no larger than the training set.

    Fine-tuning skips batches of one (batch statistics of a single window are undefined), so a batch size
    of 1, or a training set of one window, would run every epoch without a single optimiser step.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise UsageError(f"--batch-size must be a positive integer, got {batch_size!r}")
    if batch_norm and batch_size < 2:
        raise UsageError("--batch-size 1 cannot train a model with batch normalisation (batch statistics of one "
                         "window are undefined); use --batch-size 2 or more")
    if n_train < 2 if batch_norm else n_train < 1:
        raise InputError(f"{what} has only {n_train} window(s): too few to train; load more data")
    if batch_norm and n_train < batch_size and n_train < 2:
        raise InputError(f"{what} has {n_train} window(s), fewer than one batch of {batch_size}; load more data")


def check_positive(name: str, value, minimum=1, allow_none: bool = True) -> None:
    """``--name`` must be a finite number >= ``minimum`` (e.g. ``--ckpt-every 0`` would divide by zero)."""
    if value is None and allow_none:
        return
    if (isinstance(value, bool) or not isinstance(value, numbers.Real) or value != value or value < minimum
            or value == float("inf")):
        raise UsageError(f"--{name.replace('_', '-')} must be >= {minimum}, got {value!r}")


def check_fraction(name: str, value, low=0.0, high=1.0, inclusive_high=False) -> None:
    ok = isinstance(value, (int, float)) and low <= value and (value <= high if inclusive_high else value < high)
    if not ok:
        raise UsageError(f"--{name.replace('_', '-')} must be in [{low}, {high}{']' if inclusive_high else ')'}, "
                         f"got {value!r}")


def check_task_fits_model(meta: dict, class_names, labels, task: str, where) -> None:
    """A fine-tuned model evaluated on a task must have the task's classes, in the same order.

    Otherwise a 3-class head scored on a 2-class task would report metrics of a different question.
    """
    import numpy as np

    k_model = int(meta["kwargs"]["n_outputs"])
    trained_on = meta.get("task")
    model_names = [str(c) for c in meta.get("class_names") or []]
    task_names = [str(c) for c in class_names or []]
    if task_names and model_names and model_names != task_names:
        raise InputError(f"{where} was trained for classes {model_names} (task {trained_on}) but task {task} has "
                         f"classes {task_names}; evaluate it on a task with the same classes")
    n_task = len(task_names) or int(np.max(labels)) + 1
    if k_model != n_task:
        raise InputError(f"{where} has a {k_model}-class head but task {task} has {n_task} classes; "
                         "evaluate it on the task it was fine-tuned for")
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= k_model):
        raise InputError(f"task {task} has labels outside the model's {k_model} classes")
