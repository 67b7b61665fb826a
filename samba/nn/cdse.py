"""Coordinate-Driven Spatial Embedding (CDSE), the paper's montage-agnostic input layer.

Every EEG device has its own electrodes. CDSE maps any montage onto one fixed *target* montage (by
default the 94 positions of ``samba.montage.target_positions()``) so that everything after it sees the
same channels. It learns no per-electrode parameters: a small MLP, shared by all pairs, scores the
displacement between a target position and an input electrode,

    d[o, c] = P_out[o] - P_in[c]                          (O, C, 3)
    s[o, c] = MLP(d[o, c])  = Linear(h, 1)(ReLU(Linear(3, h)(d)))
    W[o, :] = softmax_c(s[o, :])                          (O, C), rows sum to 1
    y       = W @ x                                       (O, T)

so a new device only needs its electrode coordinates (same frame as the targets: MNE head frame,
metres; see ``samba.montage``). Because W depends on the set of (position, signal) pairs and not on
their order, permuting the input channels together with their coordinates leaves y unchanged.

``InverseCDSE`` is the decoder's way back: the same construction with the roles swapped, scoring
P_in[c] - P_out[o] and normalising over the O targets, so each recorded electrode is reconstructed
as a convex combination of target channels.

Mixed-device batches: ``pad_montages`` pads channels to a common count and returns a channel mask;
masked (padded) channels get exactly zero weight, so a padded sample's output equals its unpadded one.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["CDSE", "InverseCDSE", "pad_montages"]


def capturing(t: torch.Tensor) -> bool:
    """True while ``t``'s CUDA stream is being captured into a CUDA graph, where value checks that read
    the tensor on the host are illegal (samba.graphs validates before and after capture instead)."""
    return t.is_cuda and torch.cuda.is_current_stream_capturing()


def _coords_tensor(coords, like: torch.Tensor) -> torch.Tensor:
    """Validate coords; return them as (B, C, 3) (B = 1 for a (C, 3) input) on ``like``'s device/dtype."""
    coords = torch.as_tensor(coords, device=like.device).to(like.dtype)
    if coords.dim() == 2:
        coords = coords.unsqueeze(0)  # (1, C, 3)
    if coords.dim() != 3 or coords.shape[-1] != 3:
        raise ValueError(f"coords must be (C, 3) or (B, C, 3) electrode positions; got shape {tuple(coords.shape)}")
    if coords.shape[1] == 0:
        raise ValueError("coords has no channels (C = 0)")
    if not capturing(coords) and not torch.isfinite(coords).all():
        bad = (~torch.isfinite(coords)).any(-1).nonzero()[:, -1].unique().tolist()
        raise ValueError(f"coords contain NaN or Inf (channel indices {bad}); every electrode needs a position")
    return coords


def _mask_tensor(channel_mask, coords: torch.Tensor) -> torch.Tensor | None:
    """Validate a (B, C) bool mask against (Bc, C, 3) coords."""
    if channel_mask is None:
        return None
    mask = torch.as_tensor(channel_mask, device=coords.device)
    if mask.dtype != torch.bool:
        raise ValueError(f"channel_mask must be bool (True = real channel); got dtype {mask.dtype}")
    if mask.dim() != 2 or mask.shape[1] != coords.shape[1] or coords.shape[0] not in (1, mask.shape[0]):
        raise ValueError(
            f"channel_mask must be (B, C) with C={coords.shape[1]} matching coords {tuple(coords.shape)}; "
            f"got {tuple(mask.shape)}"
        )
    if not capturing(mask) and not mask.any(1).all():
        empty = (~mask.any(1)).nonzero()[:, 0].tolist()
        raise ValueError(f"channel_mask has samples with no real channel (batch indices {empty})")
    return mask


def _check_signal(x: torch.Tensor, n_channels: int, what: str, coords: torch.Tensor):
    if x.dim() != 3:
        raise ValueError(f"{what} must be (B, channels, T); got shape {tuple(x.shape)}")
    if x.shape[1] != n_channels:
        raise ValueError(f"{what} has {x.shape[1]} channels but coords describe {n_channels}")
    if coords.shape[0] not in (1, x.shape[0]):
        raise ValueError(f"coords/channel_mask batch {coords.shape[0]} does not match signal batch {x.shape[0]}")


def _score_mlp(hidden: int) -> nn.Sequential:
    # the last bias is a constant shift of every score, which softmax ignores; kept so the layer
    # matches the paper's Linear -> ReLU -> Linear and loads its weights either way
    return nn.Sequential(nn.Linear(3, hidden), nn.ReLU(), nn.Linear(hidden, 1))


def _default_targets(target_positions) -> torch.Tensor:
    if target_positions is None:
        from ..montage import target_positions as montage_targets

        target_positions = montage_targets()
    target = torch.as_tensor(target_positions, dtype=torch.float32).detach().clone()
    if target.dim() != 2 or target.shape[1] != 3 or target.shape[0] == 0:
        raise ValueError(f"target_positions must be (O, 3) with O >= 1; got {tuple(target.shape)}")
    if not torch.isfinite(target).all():
        raise ValueError("target_positions contain NaN or Inf")
    return target


class _CoordinateMixer(nn.Module):
    """What CDSE and its inverse share: the target positions (buffer) and the displacement-scoring MLP."""

    def __init__(self, target_positions=None, hidden: int = 32):
        super().__init__()
        self.register_buffer("target_positions", _default_targets(target_positions))  # (O, 3)
        self.mlp = _score_mlp(hidden)

    @property
    def n_targets(self) -> int:
        return self.target_positions.shape[0]


class CDSE(_CoordinateMixer):
    """Any montage -> fixed target montage: ``(B, C, T), coords (C|B, C, 3) -> (B, O, T)``."""

    def weights(self, coords, channel_mask=None) -> torch.Tensor:
        """Mixing weights ``(B, O, C)``; rows sum to 1 over the real (unmasked) channels.

        ``coords`` (C, 3) gives B = 1 (broadcasts over a batch) unless ``channel_mask`` (B, C) is
        given; masked channels get exactly zero weight.
        """
        coords = _coords_tensor(coords, self.target_positions)  # (Bc, C, 3)
        mask = _mask_tensor(channel_mask, coords)  # (B, C) | None
        disp = self.target_positions[None, :, None, :] - coords[:, None, :, :]  # (Bc, O, C, 3)
        scores = self.mlp(disp).squeeze(-1)  # (Bc, O, C)
        if mask is not None:
            scores = scores.masked_fill(~mask[:, None, :], float("-inf"))  # (B, O, C)
        return torch.softmax(scores, dim=-1)  # (B, O, C), softmax over input channels

    def forward(self, x: torch.Tensor, coords, channel_mask=None) -> torch.Tensor:
        """``x (B, C, T)`` -> ``(B, O, T)``."""
        W = self.weights(coords, channel_mask)  # (Bw, O, C), Bw in {1, B}
        _check_signal(x, W.shape[-1], "x", W)
        if channel_mask is not None:  # padding may hold anything; 0 weight * NaN would still be NaN
            x = x.masked_fill(~torch.as_tensor(channel_mask, device=x.device)[:, :, None], 0.0)
        return torch.matmul(W.to(x.dtype), x)  # (B, O, T)


class InverseCDSE(_CoordinateMixer):
    """Target montage -> input electrodes: ``(B, O, T), coords (C|B, C, 3) -> (B, C, T)``.

    Each electrode c is a convex combination of the targets: softmax over o of MLP(P_in[c] - P_out[o]).
    Masked (padded) electrodes have all-zero weight rows and output zeros.
    """

    def weights(self, coords, channel_mask=None) -> torch.Tensor:
        """Weights ``(B, C, O)``: rows of real electrodes sum to 1, rows of masked ones are 0."""
        coords = _coords_tensor(coords, self.target_positions)  # (Bc, C, 3)
        mask = _mask_tensor(channel_mask, coords)  # (B, C) | None
        disp = coords[:, :, None, :] - self.target_positions[None, None, :, :]  # (Bc, C, O, 3)
        V = torch.softmax(self.mlp(disp).squeeze(-1), dim=-1)  # (Bc, C, O), softmax over targets
        if mask is not None:
            V = V * mask[:, :, None]  # (B, C, O)
        return V

    def forward(self, y: torch.Tensor, coords, channel_mask=None) -> torch.Tensor:
        """``y (B, O, T)`` -> ``(B, C, T)``."""
        V = self.weights(coords, channel_mask)  # (Bw, C, O)
        if y.dim() != 3 or y.shape[1] != self.n_targets:
            raise ValueError(f"y must be (B, O={self.n_targets}, T); got shape {tuple(y.shape)}")
        if V.shape[0] not in (1, y.shape[0]):
            raise ValueError(f"coords/mask batch {V.shape[0]} does not match y batch {y.shape[0]}")
        return torch.matmul(V.to(y.dtype), y)  # (B, C, T)


def pad_montages(samples) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batch recordings from different devices: pad channels to the largest C.

    ``samples``: list of ``(x_i (C_i, T), coords_i (C_i, 3))`` (tensors or arrays, same T).
    Returns ``x (B, Cmax, T)`` (zeros in padding), ``coords (B, Cmax, 3)`` (zeros in padding) and
    ``mask (B, Cmax)`` bool, True = real channel; pass ``mask`` as ``channel_mask``.
    """
    samples = list(samples)
    if not samples:
        raise ValueError("pad_montages needs at least one (x, coords) pair")
    xs, cs = [], []
    for i, (x, c) in enumerate(samples):
        x = torch.as_tensor(x)
        c = torch.as_tensor(c)
        c = c if c.is_floating_point() else c.float()
        if x.dim() != 2 or c.dim() != 2 or c.shape[1] != 3 or x.shape[0] != c.shape[0]:
            raise ValueError(
                f"sample {i}: expected x (C, T) and coords (C, 3) with the same C; "
                f"got {tuple(x.shape)} and {tuple(c.shape)}"
            )
        xs.append(x)
        cs.append(c)
    T = xs[0].shape[1]
    if any(x.shape[1] != T for x in xs):
        raise ValueError(f"all samples must have the same length T; got {[x.shape[1] for x in xs]}")
    B, C = len(xs), max(x.shape[0] for x in xs)
    dtype = xs[0].dtype if xs[0].is_floating_point() else torch.float32
    x_out = torch.zeros(B, C, T, dtype=dtype)  # (B, Cmax, T)
    c_out = torch.zeros(B, C, 3, dtype=cs[0].dtype)  # (B, Cmax, 3)
    mask = torch.zeros(B, C, dtype=torch.bool)  # (B, Cmax)
    for b, (x, c) in enumerate(zip(xs, cs)):
        x_out[b, : len(x)] = x
        c_out[b, : len(c)] = c
        mask[b, : len(c)] = True
    return x_out, c_out, mask
