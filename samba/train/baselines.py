"""Peer models for the results table (braindecode's EEGNet and ShallowFBCSPNet) and a model factory.

Every model built here maps x (B, C, T) -> logits (B, n_outputs), so one fine-tuning loop trains
them all on the same windows and splits.
"""

from __future__ import annotations

import sys
import types
import warnings

import torch
from torch import nn

MODELS = ("samba", "eegnet", "shallow")


def _stub_torchaudio() -> None:
    """Stand-in for a torchaudio whose compiled extension does not match torch.

    braindecode imports torchaudio at module level for a few filters/resamplers that EEGNet and
    ShallowFBCSPNet never call; a CPU torch newer than the installed torchaudio makes that import
    fail. The stub lets braindecode import; calling anything from it raises.
    """
    def unavailable(*args, **kwargs):
        raise RuntimeError("torchaudio is not usable in this environment (version mismatch with torch)")

    class Unavailable:
        def __init__(self, *args, **kwargs):
            unavailable()

    def getattr_for(obj):
        def __getattr__(name):
            if name.startswith("__"):
                raise AttributeError(name)
            return obj
        return __getattr__

    ta = types.ModuleType("torchaudio")
    ta.__path__ = []
    fn, tr = types.ModuleType("torchaudio.functional"), types.ModuleType("torchaudio.transforms")
    fn.__getattr__, tr.__getattr__ = getattr_for(unavailable), getattr_for(Unavailable)
    ta.__getattr__ = getattr_for(unavailable)
    ta.functional, ta.transforms = fn, tr
    for k in [k for k in sys.modules if k == "torchaudio" or k.startswith("torchaudio.")]:
        del sys.modules[k]
    sys.modules.update({"torchaudio": ta, "torchaudio.functional": fn, "torchaudio.transforms": tr})


def import_braindecode():
    """`braindecode` module, working around a broken torchaudio install (see _stub_torchaudio)."""
    try:
        import braindecode
        import braindecode.models  # noqa: F401
        return braindecode
    except (OSError, ImportError) as e:
        if "torchaudio" not in repr(e) and "torchaudio" not in str(getattr(e, "__cause__", "")):
            raise
        warnings.warn(f"torchaudio unusable ({e.__class__.__name__}); importing braindecode with a stub",
                      RuntimeWarning, stacklevel=2)
        for k in [k for k in sys.modules if k == "braindecode" or k.startswith("braindecode.")]:
            del sys.modules[k]
        _stub_torchaudio()
        import braindecode
        import braindecode.models  # noqa: F401
        return braindecode


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
