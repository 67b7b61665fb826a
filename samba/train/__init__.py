"""Training: pretraining (TSR masked reconstruction, DDP, resumable), fine-tuning / probing, metrics.
The evaluation of every method on every task's folds is ``samba.evaluation``.

    from samba.train import pretrain, PretrainConfig, finetune, evaluate
    ckpt = pretrain(PretrainConfig(out="runs/pt", profile="quick"))
    result = finetune("eyes-open-closed", init=ckpt, out="runs/ft", profile="quick")

Modules: pretraining (the loop, in steps: batches, step, runlog, runfolder, checks), finetuning (fine-tune /
probe / evaluate), metrics, state (training checkpoints), distributed (torchrun / DDP), baselines (EEGNet,
ShallowFBCSPNet), cli (the `samba pretrain|finetune|evaluate` commands).
"""

__all__ = ["pretrain", "PretrainConfig", "finetune", "evaluate", "classification_metrics"]
_HOME = {"pretrain": "pretraining", "PretrainConfig": "pretraining", "finetune": "finetuning",
         "evaluate": "finetuning", "classification_metrics": "metrics"}


def __getattr__(name):  # lazy, so `samba pretrain --help` (samba.train.cli) parses before torch loads
    if name in _HOME:
        import importlib

        return getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
    raise AttributeError(f"module 'samba.train' has no attribute {name!r}")
