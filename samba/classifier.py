"""SAMBA as a classifier with braindecode's model conventions.

    clf = SAMBAClassifier(n_chans=14, n_outputs=2, n_times=512, sfreq=128, chs_info=epochs.info["chs"],
                          pretrained="runs/pretrain/samba_pretrained", pooling="quantile")
    clf = SAMBAClassifier.from_pretrained(n_outputs=2, chs_info=raw.info["chs"])   # the released encoder
    logits = clf(x)                       # x (B, n_chans, n_times) -> (B, n_outputs)

The encoder is SAMBA's (CDSE -> U-Net encoder -> differential-Mamba bottleneck); the decoder is kept
(so the state dict stays a full SAMBA) but unused. The head pools the bottleneck features over time
and applies LayerNorm + dropout + Linear:

* ``pooling="quantile"`` (the authors' statistics pooling): per feature, quantiles 0.1/0.25/0.5/0.75/0.9
  plus mean and std over time -> 7 * D features. It keeps the distribution of activations over the
  window, not only its centre, which matters for e.g. event-related amplitude changes.
* ``pooling="mean"``: mean over time -> D features.

Electrode positions: from ``chs_info[i]["loc"][:3]`` (MNE head frame, metres) when every channel has
a finite, non-zero location; otherwise from the channel names via ``samba.montage.positions``.
Because arguments follow braindecode (``n_chans, n_outputs, n_times, sfreq, chs_info``), the class
drops into ``braindecode.EEGClassifier`` / skorch, which fill these in from the data.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)
POOLINGS = ("quantile", "mean")


def positions_from_chs_info(chs_info, ch_names=None) -> tuple[np.ndarray, list[str]]:
    """(C, 3) float32 positions and names from braindecode/MNE ``chs_info`` (list of channel dicts)."""
    from samba.montage import positions

    names = [ch["ch_name"] for ch in chs_info] if chs_info else list(ch_names or [])
    if chs_info:
        locs = np.array([np.asarray(ch.get("loc", np.full(12, np.nan)), float)[:3] for ch in chs_info])
        if np.isfinite(locs).all() and (np.linalg.norm(locs, axis=1) > 1e-6).all():
            return locs.astype(np.float32), names
    if not names:
        raise ValueError("SAMBAClassifier needs electrode positions: pass chs_info (with locations) or ch_names")
    return np.asarray(positions(names), np.float32), names


class StatsPool(nn.Module):
    """(B, D, L) -> (B, D * k): quantiles + mean + std over time, or the mean alone."""

    def __init__(self, kind: str = "quantile"):
        super().__init__()
        if kind not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {kind!r}")
        self.kind = kind
        self.register_buffer("q", torch.tensor(QUANTILES), persistent=False)

    @property
    def factor(self) -> int:
        return len(QUANTILES) + 2 if self.kind == "quantile" else 1

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = h.float()
        if self.kind == "mean":
            return h.mean(-1)  # (B, D)
        q = torch.quantile(h, self.q.to(h.device), dim=-1)  # (Q, B, D)
        stats = [q.permute(1, 2, 0), h.mean(-1, keepdim=True), h.std(-1, keepdim=True, unbiased=False)]
        return torch.cat(stats, dim=-1).flatten(1)  # (B, D * (Q + 2))


class SAMBAClassifier(nn.Module):
    """SAMBA encoder + pooled linear head (braindecode-style signature)."""

    def __init__(self, n_chans=None, n_outputs=None, n_times=None, sfreq=None, chs_info=None, ch_names=None,
                 pretrained=None, pooling: str = "quantile", freeze_encoder: bool = False, config=None,
                 positions=None, input_scale: float = 1.0, dropout: float = 0.1):
        super().__init__()
        from samba.model import SAMBA, SAMBAConfig

        if n_outputs is None:
            raise ValueError("n_outputs is required")
        if positions is not None:
            pos, names = np.asarray(positions, np.float32), list(ch_names or [])
        else:
            pos, names = positions_from_chs_info(chs_info, ch_names)
        if n_chans is not None and n_chans != len(pos):
            raise ValueError(f"n_chans={n_chans} but {len(pos)} electrode positions were given")
        self.n_chans, self.n_outputs, self.n_times, self.sfreq = len(pos), int(n_outputs), n_times, sfreq
        self.ch_names = names
        self.pooling, self.freeze_encoder = pooling, bool(freeze_encoder)

        if pretrained is not None:
            from samba.checkpoint import load_model

            self.samba, self.pretrained_extra = load_model(pretrained)
        else:
            if isinstance(config, dict):
                config = SAMBAConfig.from_dict(config)
            self.samba, self.pretrained_extra = SAMBA(config or SAMBAConfig()), {}
        self.register_buffer("coords", torch.as_tensor(pos))  # (C, 3)
        # one scalar so windows enter at ~unit scale (fitted on training data by the fine-tuning loop)
        self.register_buffer("input_scale", torch.tensor(float(input_scale)))
        self.pool = StatsPool(pooling)
        D = self.samba.cfg.bottleneck_dim
        self.head = nn.Sequential(nn.LayerNorm(D * self.pool.factor), nn.Dropout(dropout),
                                  nn.Linear(D * self.pool.factor, self.n_outputs))
        if self.freeze_encoder:
            for p in self.samba.parameters():
                p.requires_grad_(False)

    @classmethod
    def from_pretrained(cls, path=None, n_outputs: int = 2, **kwargs) -> "SAMBAClassifier":
        """A classifier on the pretrained encoder at ``path`` (None: the released checkpoint).

        ``kwargs`` as for the constructor (``chs_info`` / ``ch_names`` / ``positions``, ``pooling``,
        ``freeze_encoder`` ...); the head is new and untrained.
        """
        from samba.embedding import pretrained_path

        ckpt = pretrained_path(path)
        if not ckpt.exists():
            from samba.errors import InputError

            raise InputError(f"no checkpoint at {ckpt}; pass the path of a SAMBA checkpoint")
        return cls(n_outputs=n_outputs, pretrained=str(ckpt), **kwargs)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.freeze_encoder:  # frozen features: no dropout / stochasticity in the encoder
            self.samba.eval()
        return self

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled encoder features (B, D * k) for x (B, n_chans, n_times)."""
        x = x.float() * self.input_scale
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_encoder):
            h = self.samba.encode(x, self.coords)  # (B, D, T // 8)
        return self.pool(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # (B, n_outputs)

    def spatial_weights(self) -> torch.Tensor:
        """CDSE weights (O, n_chans) for this classifier's electrodes."""
        return self.samba.spatial_weights(self.coords)
