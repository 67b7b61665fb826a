"""Training: pretraining (TSR masked reconstruction, DDP, resumable), fine-tuning / probing, metrics,
results table.

    from samba.train import pretrain, PretrainConfig, finetune, evaluate
    ckpt = pretrain(PretrainConfig(out="runs/pt", profile="quick"))
    result = finetune("eyes-open-closed", init=ckpt, out="runs/ft", profile="quick")

Modules: pretraining (pretrain loop), finetuning (fine-tune / probe / evaluate), metrics, state
(training checkpoints), distributed (torchrun / DDP), baselines (EEGNet, ShallowFBCSPNet), results
(the results table), cli (the `samba pretrain|finetune|evaluate` commands).
"""

from .finetuning import evaluate, finetune
from .metrics import classification_metrics
from .pretraining import PretrainConfig, pretrain

__all__ = ["pretrain", "PretrainConfig", "finetune", "evaluate", "classification_metrics"]
