"""The peers SAMBA is measured against: braindecode's EEG models, each at its native sampling rate.

Every peer is built from braindecode exactly as it ships (its default hyper-parameters, eager PyTorch),
with the field's constructor arguments (``n_chans, n_outputs, n_times, sfreq, chs_info``) and two output
classes, so a training step is forward + cross-entropy + backward + AdamW. Torch and braindecode are
imported only when a peer is built, so the command line can list the names without them.
"""
from __future__ import annotations

import warnings

#: name -> (native sampling rate in Hz, granule): ``n_times`` is rounded down to a multiple of the granule
#: (the model's patch size or hop), and the share of the time budget relative to other models.
PEERS = {
    "BIOT": dict(sfreq=200.0, granule=100),
    "CBraMod": dict(sfreq=200.0, granule=200),
    "LUNA": dict(sfreq=256.0, granule=40),
    "Labram": dict(sfreq=200.0, granule=200),
    "EEGPT": dict(sfreq=256.0, granule=64, weight=1.3),
    "EEGNet": dict(sfreq=128.0, granule=8, weight=0.5),  # a small classic: a floor, not a foundation model
}
#: Peers that are not foundation models: left out of the "best peer" a target compares with.
BASELINES = ("EEGNet",)


def braindecode_models():
    """``braindecode.models``, imported quietly (with torchaudio made importable first where needed)."""
    from .._compat import ensure_torchaudio_importable

    ensure_torchaudio_importable()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import braindecode.models as bm
    return bm


def chs_info(ch_names, sfreq: float) -> list[dict]:
    """MNE channel descriptions (with standard 10-20 positions) of the benchmark montage."""
    import mne

    info = mne.create_info(list(ch_names), sfreq, "eeg")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        info.set_montage("standard_1020")
    return info["chs"]


def build_peer(name: str, n_times: int, sfreq: float, ch_names):
    """Returns (model, call): ``call(model, x)`` gives the 2 logits of ``x`` (B, C, n_times)."""
    bm = braindecode_models()
    cls = getattr(bm, name, None)
    if cls is None and name == "EEGNet":  # older braindecode releases
        cls = getattr(bm, "EEGNetv4")
    kwargs = dict(n_chans=len(ch_names), n_outputs=2, n_times=n_times, sfreq=sfreq, chs_info=chs_info(ch_names, sfreq))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = cls(**kwargs)
    if name == "Labram":  # LaBraM maps channels to its position table by name, on every call
        names = list(ch_names)
        return model, lambda m, x: m(x, ch_names=names)
    return model, lambda m, x: m(x)
