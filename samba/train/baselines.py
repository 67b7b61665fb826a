"""Peer models for fine-tuning and the evaluation (braindecode's EEGNet and ShallowFBCSPNet) and a model factory.

Every model built here maps x (B, C, T) -> logits (B, n_outputs), so one fine-tuning loop trains
them all on the same windows and splits.
"""

from __future__ import annotations

import torch
from torch import nn

MODELS = ("samba", "eegnet", "shallow")


from samba._compat import import_braindecode  # noqa: E402  (kept importable from here)


class Scaled(nn.Module):
    """Multiply the input by a fitted scalar, then run `net` (keeps baselines' inputs at unit scale)."""

    def __init__(self, net: nn.Module, input_scale: float = 1.0):
        super().__init__()
        self.net = net
        self.register_buffer("input_scale", torch.tensor(float(input_scale)))

    def forward(self, x):
        return self.net(x.float() * self.input_scale)


def build_model(name: str, n_chans: int, n_outputs: int, n_times: int, sfreq: float, *, positions=None,
                ch_names=None, pretrained=None, pooling="quantile", freeze_encoder=False, input_scale=1.0,
                samba_config=None) -> nn.Module:
    """The classifier called `name` ("samba", "eegnet", "shallow") for windows of shape (n_chans, n_times)."""
    if name == "samba":
        from samba.classifier import SAMBAClassifier

        return SAMBAClassifier(n_chans=n_chans, n_outputs=n_outputs, n_times=n_times, sfreq=sfreq,
                               ch_names=ch_names, positions=positions, pretrained=pretrained, pooling=pooling,
                               freeze_encoder=freeze_encoder, config=samba_config, input_scale=input_scale)
    bd = import_braindecode()
    if name == "eegnet":
        cls = getattr(bd.models, "EEGNet", None) or getattr(bd.models, "EEGNetv4")
        net = cls(n_chans=n_chans, n_outputs=n_outputs, n_times=n_times, sfreq=sfreq)
    elif name == "shallow":
        net = bd.models.ShallowFBCSPNet(n_chans=n_chans, n_outputs=n_outputs, n_times=n_times, sfreq=sfreq,
                                        final_conv_length="auto")
    else:
        raise ValueError(f"unknown model {name!r}; choose one of {MODELS}")
    return Scaled(net, input_scale)
