"""`samba pretrain | finetune | evaluate`: argparse front-ends called by samba/cli.py.

Each `*_main(argv) -> int` parses its own arguments, runs, and prints exactly what the command-line contract (README, "Command line") promises
as the LAST line of stdout (progress bars and notes go to stderr):
    pretrain  -> path of the model checkpoint
    finetune  -> one JSON line of test metrics
    evaluate  -> one JSON line {"task", "balanced_accuracy", "auroc", "n_windows", "subjects"}
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

from samba.cli_args import Parser, positive_float, positive_int


def _json_line(obj) -> str:
    """JSON with NaN -> null (strict JSON; AUROC is undefined when a split has one class)."""
    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(obj))


def _mirror(value):
    """--mirror, else $SAMBA_DATA_MIRROR, as an absolute folder that exists (one clear line if not)."""
    from samba.paths import existing_mirror

    return existing_mirror(value)


def _existing(value: str, what: str) -> str:
    """A path option resolved against the user's directory; it must exist."""
    from samba.errors import UsageError
    from samba.paths import user_path

    path = user_path(value)
    if not path.exists():
        raise UsageError(f"{what} {value!r} does not exist ({path})")
    return str(path)


def _task(name: str | None, data=None, labels=None) -> str | None:
    """A task name from the registry's task table or ``PREFIX:ARG`` (checked before any data loads); None with
    ``--data`` (the user's recordings, which need ``--labels``)."""
    from samba.data.sources import PREFIXES
    from samba.data.tasks import TASKS
    from samba.errors import UsageError

    if data is not None:
        if name is not None:
            raise UsageError("pass either --task or --data with --labels, not both")
        if not labels:
            raise UsageError("--data needs --labels, e.g. --labels left=T1,right=T2 or --labels onsets.csv")
        return None
    if name is None:
        raise UsageError("one of --task TASK or --data PATH --labels SPEC is required")
    if ":" in name and name.split(":", 1)[0] in PREFIXES:
        return name
    if name not in TASKS:
        raise UsageError(f"unknown task {name!r}; choose one of {', '.join(TASKS)} (samba data list)")
    return name


def pretrain_parser() -> argparse.ArgumentParser:
    p = Parser(prog="samba pretrain", description="Self-supervised TSR masked-reconstruction "
                                "pretraining on the pooled multi-device corpus (1 or N GPUs via torchrun).")
    p.add_argument("--out", required=True, help="run folder (checkpoints, metrics.csv, model)")
    p.add_argument("--profile", choices=["quick", "full"], default="quick")
    p.add_argument("--steps", type=int, default=None, help="optimiser steps (default: profile's)")
    p.add_argument("--batch-size", type=int, default=None, help="windows per batch per GPU")
    p.add_argument("--window-s", type=float, default=None, help="window length in seconds")
    p.add_argument("--resume", dest="resume", action="store_true", default=True,
                   help="continue from the newest verified state in OUT (default)")
    p.add_argument("--no-resume", dest="resume", action="store_false",
                   help="start over; refused in a folder that holds a run unless --overwrite is given")
    p.add_argument("--overwrite", action="store_true",
                   help="with --no-resume: remove the run already in OUT (only the files a run writes)")
    p.add_argument("--allow-change", default="", metavar="LIST",
                   help="on resume, options that may differ from the checkpoint's, e.g. steps,max_minutes "
                        "(allowed: steps, max_minutes, log_every, val_every, ckpt_every, val_batches, select)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--no-cuda-graphs", dest="cuda_graphs", action="store_false", default=None,
                   help="run every step eagerly on a GPU (default: forward and backward replay as one CUDA graph "
                        "per montage when one GPU trains the plain model)")
    p.add_argument("--mask", choices=["tsr", "random", "block", "ssp", "span"], default="tsr")
    p.add_argument("--mask-ratio", type=float, default=0.5)
    p.add_argument("--loss-on", choices=["all", "masked", "both"], default="all",
                   help="samples the reconstruction loss is computed on (default: all, as the authors' code)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bidirectional", action="store_true",
                   help="not the paper's model: every Mamba2 scan also reads backwards in time (SAMBAConfig."
                        "bidirectional; saved in the checkpoint, so fine-tuning rebuilds it)")
    p.add_argument("--mirror", default=None, help="local data mirror (default: $SAMBA_DATA_MIRROR)")
    p.add_argument("--lr", type=float, default=5e-4, help="one-cycle max learning rate")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="wall-time budget: the schedule is fitted to it and the run stops (checkpointed) at it")
    p.add_argument("--stop-after-minutes", type=float, default=None, metavar="M",
                   help="stop, checkpointed, after M minutes of this call and keep the schedule of --steps: the same "
                        "command continues the run (for runs longer than one job's time limit)")
    p.add_argument("--ckpt-every", type=int, default=None)
    p.add_argument("--val-every", type=int, default=None)
    p.add_argument("--keep-every", type=int, default=None, metavar="N",
                   help="also keep the model every N steps in OUT/snapshots/step_XXXXXX (for CDSE-over-training figures)")
    p.add_argument("--augment", dest="augment", action="store_true", default=None,
                   help="polarity, time reversal, gain and electrode-subset augmentation (default: full profile)")
    p.add_argument("--no-augment", dest="augment", action="store_false")
    p.add_argument("--val-on", choices=["recordings", "windows"], default=None,
                   help="validation on whole recordings never trained on (full profile) or on held-back windows "
                        "of the training recordings (quick profile)")
    p.add_argument("--select", choices=["best", "last"], default=None,
                   help="model to release: lowest validation loss (full profile) or the last step (quick profile)")
    p.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default: cuda when available)")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    return p


def pretrain_main(argv: list[str] | None = None) -> int:
    from samba.paths import user_path

    a = pretrain_parser().parse_args(argv)
    from .pretraining import PretrainConfig, pretrain  # after parsing: --help stays instant

    allow = tuple(x.strip().replace("-", "_") for x in a.allow_change.split(",") if x.strip())
    cfg = PretrainConfig(out=str(user_path(a.out)), profile=a.profile, steps=a.steps, batch_size=a.batch_size,
                         window_s=a.window_s, resume=a.resume, overwrite=a.overwrite, allow_change=allow,
                         compile=a.compile, mask=a.mask, mask_ratio=a.mask_ratio, loss_on=a.loss_on, seed=a.seed,
                         mirror=_mirror(a.mirror), lr=a.lr, max_minutes=a.max_minutes, ckpt_every=a.ckpt_every,
                         keep_every=a.keep_every, val_every=a.val_every, device=a.device, progress=a.progress,
                         augment=a.augment, val_on=a.val_on, select=a.select, cuda_graphs=a.cuda_graphs,
                         stop_after_minutes=a.stop_after_minutes,
                         model={"bidirectional": True} if a.bidirectional else {})
    cfg.resolved()  # every option checked before any work (raises samba.errors.UsageError)
    path = pretrain(cfg)
    if int(os.environ.get("RANK", "0")) == 0:
        print(str(path))
    return 0


def finetune_parser() -> argparse.ArgumentParser:
    p = Parser(prog="samba finetune", description="Fine-tune or linearly probe a model on one "
                                "task; prints one JSON line of test metrics.")
    p.add_argument("--task", default=None, help="a built-in task (samba data list), or tuab:PATH, moabb:NAME, "
                   "stew:PATH, dreamer:PATH")
    p.add_argument("--data", default=None, help="your own recording(s): a file MNE reads, a folder, or a BIDS root")
    p.add_argument("--labels", default=None, help="with --data: event mapping (left=T1,right=T2), an onsets CSV "
                   "(onset,duration,label) or 'bids' (events.tsv)")
    p.add_argument("--window-s", type=positive_float, default=None, help="with --data: window length in seconds")
    p.add_argument("--init", default="scratch", help="pretrained SAMBA checkpoint, or 'scratch'")
    p.add_argument("--out", required=True, help="output folder (finetuned.*, result.json, spatial_weights.npz)")
    p.add_argument("--profile", choices=["quick", "full"], default="quick",
                   help="quick (default): a smoke test, 2 epochs (60 for --mode probe) on at most 64 training windows; "
                        "full: 20 epochs (200 for --mode probe) on every training window")
    p.add_argument("--mode", choices=["full", "probe"], default="full",
                   help="full fine-tuning, or linear probe on frozen features")
    p.add_argument("--model", choices=["samba", "eegnet", "shallow"], default="samba")
    p.add_argument("--pooling", choices=["quantile", "mean"], default="quantile")
    p.add_argument("--seed", type=int, default=0, help="seeds the split, the init and the data order")
    p.add_argument("--epochs", type=positive_int, default=None, help="training epochs (default: the profile's)")
    p.add_argument("--batch-size", type=positive_int, default=None, help="windows per batch (default: the profile's)")
    p.add_argument("--lr", type=positive_float, default=None, help="learning rate (default: the model's)")
    p.add_argument("--mirror", default=None)
    p.add_argument("--device", default=None)
    return p


def finetune_main(argv: list[str] | None = None) -> int:
    from samba.paths import user_path

    a = finetune_parser().parse_args(argv)
    from .finetuning import PROFILES, finetune  # after parsing: --help stays instant

    init = a.init if a.init == "scratch" else _existing(a.init, "--init checkpoint")
    data = None if a.data is None else str(_existing(a.data, "--data"))
    result = finetune(_task(a.task, data, a.labels), init=init, out=str(user_path(a.out)), profile=a.profile,
                      mode=a.mode, model=a.model, seed=a.seed, epochs=a.epochs, mirror=_mirror(a.mirror),
                      pooling=a.pooling, batch_size=a.batch_size, lr=a.lr, device=a.device, progress=True,
                      data=data, labels=a.labels, window_s=a.window_s)
    if a.profile == "quick" and a.epochs is None:
        q = PROFILES["quick"]
        epochs = q["probe_epochs"] if a.mode == "probe" else q["epochs"]
        print(f"samba: note: --profile quick is a smoke test ({epochs} epochs on at most {q['max_train_windows']} "
              "training windows); use --profile full for a model to rely on", file=sys.stderr)
    print(_json_line(result))
    return 0


def evaluate_parser() -> argparse.ArgumentParser:
    p = Parser(prog="samba evaluate", description="Evaluate a fine-tuned model on the task's "
                                "test split or on given subjects.")
    p.add_argument("--model", required=True, help="folder written by `samba finetune`")
    p.add_argument("--task", default=None, help="a built-in task, or PREFIX:ARG as for finetune")
    p.add_argument("--data", default=None, help="your own recording(s), as for finetune")
    p.add_argument("--labels", default=None, help="with --data: the labels, as for finetune")
    p.add_argument("--subjects", default=None, help="e.g. 20-35 or 1,3 (default: the task's test split)")
    p.add_argument("--mirror", default=None)
    p.add_argument("--profile", choices=["quick", "full"], default=None,
                   help="data profile used to load the task (default: the one the model was trained with)")
    p.add_argument("--device", default=None)
    return p


def evaluate_main(argv: list[str] | None = None) -> int:
    a = evaluate_parser().parse_args(argv)
    from .finetuning import evaluate  # after parsing: --help stays instant

    data = None if a.data is None else str(_existing(a.data, "--data"))
    result = evaluate(_existing(a.model, "--model"), _task(a.task, data, a.labels), subjects=a.subjects,
                      mirror=_mirror(a.mirror), device=a.device, profile=a.profile, data=data, labels=a.labels)
    print(_json_line(result))
    return 0
