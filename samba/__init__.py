"""SAMBA: a self-supervised EEG foundation model.

Coordinate-Driven Spatial Embedding (CDSE) + Mamba2 U-Net with a multi-head differential Mamba
bottleneck, pretrained by Temporal Semantic Random (TSR) masked reconstruction.

    >>> from samba import SAMBA, SAMBAConfig
    >>> model = SAMBA(SAMBAConfig())
    >>> features = samba.embed("recording.edf")     # released checkpoint, any MNE-readable file
"""

__version__ = "0.1.0"

__all__ = ["SAMBA", "SAMBAConfig", "embed", "load_pretrained", "__version__"]


def __getattr__(name):  # lazy, so `import samba.montage` stays light
    if name in ("SAMBA", "SAMBAConfig"):
        from . import model

        return getattr(model, name)
    if name in ("embed", "load_pretrained"):  # any recording -> features; the released checkpoint
        from . import embedding

        return getattr(embedding, name)
    raise AttributeError(f"module 'samba' has no attribute {name!r}")
