"""Label-free augmentations for masked-reconstruction pretraining on a small corpus.

The mirrored corpus holds under two hours of EEG. At 30-s windows a run of a few minutes on a GPU shows every
sample to the model thousands of times, and it memorises its recordings: the validation loss on windows of the
training recordings keeps falling while the masked-sample error on recordings it never saw rises. Each
augmentation keeps what a reconstruction model should learn (how EEG continues in time and across the scalp) and
varies what it should not memorise:

* polarity, per window: ``x -> -x`` (a change of reference or amplifier polarity; the spectrum is unchanged);
* time reversal, per window (power spectrum and spatial covariance unchanged; the masked in-filling task is
  symmetric in time);
* gain, per window: ``x * exp(U(-g, g))`` (electrode impedance and skull thickness differ between subjects);
* electrode subset, per batch: a random subset of at least half of the montage's electrodes with their
  positions, so the Coordinate-Driven Spatial Embedding meets many montages, as it will on a user's headset.

Per-window draws come from the training device's generator (no host synchronisation on a GPU); the subset from a
CPU generator. Both generators are part of the saved training state, so a resumed run draws the same.
"""

from __future__ import annotations

import math

import torch

__all__ = ["augment", "augment_masked"]


def _draw(x: torch.Tensor, gen: torch.Generator, subset_gen: torch.Generator, max_log_gain: float,
          min_keep: float) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Polarity, gain and reversal applied to ``x (B, C, T)``; the kept electrodes ``(k,)`` (CPU), None = all."""
    B, C, _ = x.shape
    u = torch.rand(B, 3, generator=gen, device=gen.device).to(x.device)  # (B, 3): polarity, gain, reversal
    factor = torch.where(u[:, 0] < 0.5, -1.0, 1.0) * torch.exp((2 * u[:, 1] - 1) * max_log_gain)  # (B,)
    x = x * factor[:, None, None].to(x.dtype)
    x = torch.where((u[:, 2] < 0.5)[:, None, None], x.flip(-1), x)
    lowest = max(1, math.ceil(min_keep * C))
    k = int(torch.randint(lowest, C + 1, (1,), generator=subset_gen))
    if k == C:
        return x, None
    return x, torch.randperm(C, generator=subset_gen)[:k].sort().values  # (k,) electrode indices


def _to(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A small CPU tensor onto ``device`` without a host synchronisation."""
    return t.pin_memory().to(device, non_blocking=True) if device.type == "cuda" else t.to(device)


def augment(x: torch.Tensor, coords: torch.Tensor, gen: torch.Generator, subset_gen: torch.Generator,
            max_log_gain: float = 0.4, min_keep: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """Augment one single-montage batch: ``x (B, C, T)``, ``coords (C, 3)`` -> ``(B, C', T)``, ``(C', 3)``."""
    x, keep = _draw(x, gen, subset_gen, max_log_gain, min_keep)
    if keep is not None:
        keep = _to(keep, x.device)
        x, coords = x.index_select(1, keep), coords.index_select(0, keep.to(coords.device))  # (B, k, T), (k, 3)
    return x, coords


def augment_masked(x: torch.Tensor, gen: torch.Generator, subset_gen: torch.Generator, max_log_gain: float = 0.4,
                   min_keep: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`augment` with the electrode subset as a channel mask instead of a smaller tensor:
    ``x (B, C, T)`` -> ``(B, C, T)`` and ``channel_mask (1, C)`` bool (True = kept; one subset per batch).

    Same draws, in the same order, as :func:`augment`; with the mask passed to the model and the loss, a step
    computes what :func:`augment`'s subset does, at one fixed shape per montage (what a CUDA graph needs).
    """
    C = x.shape[1]
    x, keep = _draw(x, gen, subset_gen, max_log_gain, min_keep)
    mask = torch.ones(C, dtype=torch.bool)
    if keep is not None:
        mask.zero_()
        mask[keep] = True
    return x, _to(mask, x.device)[None, :]  # (B, C, T), (1, C)
