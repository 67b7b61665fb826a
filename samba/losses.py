"""SAMBA's reconstruction loss: L1 in time + mean squared error of the spectrum.

The L1 term makes the reconstruction follow the waveform; the spectral term (squared error of the
real FFT, orthonormal so it is on the same scale as a time-domain MSE by Parseval) penalises
missing rhythms (alpha, beta) that a blurry, low-passed reconstruction would still score well on
in L1.

Where the loss is computed (``on``):

* ``"all"`` (default, as in the authors' released training code): both terms over the whole window.
* ``"masked"``: L1 over the hidden samples only, as in masked autoencoders: visible
  samples are copied through the skip connections and would otherwise dominate the loss. The
  spectral term is computed on the *composite* signal (target where visible, prediction where
  hidden), so it too only sees errors at hidden samples, while keeping the FFT over a contiguous
  window.
* ``"both"``: the mean of the two.

Scale: the authors use the unnormalised FFT, whose squared error grows linearly with the window
length; we use ``norm="ortho"`` so the weights mean the same at 4 s and at 60 s
(authors' spectral term = ours x T). Weights default to 1 and 1, as theirs.
"""
from __future__ import annotations

import torch

__all__ = ["l1_loss", "spectral_loss", "reconstruction_loss"]


def l1_loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute error; with ``weight`` (broadcastable 0/1) the mean over weighted entries."""
    err = (pred - target).abs()
    if weight is None:
        return err.mean()
    weight = weight.to(err.dtype).expand_as(err)
    return (err * weight).sum() / weight.sum().clamp_min(1.0)


def spectral_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error between orthonormal rFFTs over the last (time) axis."""
    diff = torch.fft.rfft(pred.float() - target.float(), dim=-1, norm="ortho")  # (..., T//2+1)
    return diff.abs().square().mean()


def reconstruction_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    visible: torch.Tensor | None = None,
    l1_weight: float = 1.0,
    spectral_weight: float = 1.0,
    on: str = "all",
    channel_mask: torch.Tensor | None = None,
    float_parts: bool = True,
) -> tuple[torch.Tensor, dict[str, float]]:
    """L1 + spectral reconstruction loss.

    Args:
        pred, target: ``(B, C, T)``.
        visible: ``(B, T)`` bool, True = sample was shown to the model (``None``: nothing hidden,
            which forces ``on="all"``).
        channel_mask: ``(B, C)`` bool, True = real channel (padding channels are ignored).
        float_parts: ``parts`` as Python floats (default) or as detached 0-d tensors; tensors keep a GPU
            training loop free of a host synchronisation per step (it reads them only when it logs).
    Returns:
        ``(loss, parts)`` where ``parts`` holds the detached ``l1``, ``spectral`` and ``loss``.
    """
    if pred.shape != target.shape or pred.dim() != 3:
        raise ValueError(f"pred and target must both be (B, C, T); got {tuple(pred.shape)} and {tuple(target.shape)}")
    if on not in ("masked", "all", "both"):
        raise ValueError(f"on must be 'masked', 'all' or 'both', got {on!r}")
    B, C, T = pred.shape
    ch = torch.ones(B, C, 1, dtype=torch.bool, device=pred.device) if channel_mask is None else channel_mask[:, :, None]
    if channel_mask is not None:  # padding channels: make them contribute exactly nothing
        pred = pred * ch
        target = target * ch

    def _all():
        return l1_loss(pred, target, ch.expand(B, C, T)), spectral_loss(pred, target) * (C * B / ch.sum().clamp_min(1))

    def _masked():
        hidden = (~visible)[:, None, :] & ch  # (B, C, T)
        composite = torch.where(visible[:, None, :], target, pred)
        # rescale: the composite's error lives on the hidden fraction of samples only
        frac = hidden.float().mean().clamp_min(1e-6)
        return l1_loss(pred, target, hidden), spectral_loss(composite, target) / frac

    if visible is None or on == "all":
        l1, spec = _all()
    elif on == "masked":
        l1, spec = _masked()
    else:
        a, b = _all(), _masked()
        l1, spec = (a[0] + b[0]) / 2, (a[1] + b[1]) / 2
    loss = l1_weight * l1 + spectral_weight * spec
    parts = {"loss": loss.detach(), "l1": l1.detach(), "spectral": spec.detach()}
    return loss, ({k: float(v) for k, v in parts.items()} if float_parts else parts)
