"""Masks for masked-reconstruction pretraining.

SAMBA pretrains by hiding part of each window in *time* and reconstructing it. The paper's
**Temporal Semantic Random (TSR)** mask keeps a fixed number of visible blocks whose lengths are
jittered, so the model sees several "semantic" stretches of signal (a few hundred ms each at 128 Hz)
separated by gaps of random length, instead of isolated samples (which an SSM could interpolate
trivially) or one long hole (which removes all context on one side).

All masks here are boolean tensors ``(batch, length)`` with **True = visible**, vectorised over the
batch (no Python loop over samples) and seeded through a ``torch.Generator`` so a run is repeatable.

Variants kept for the ablations:

* ``random_mask``  independent samples (exact count per row),
* ``block_mask``   fixed-length masked blocks at random offsets (the classic "span" mask),
* ``ssp_mask``     Semantic Subsequence Preserving (the authors' predecessor of TSR): the same
  number of preserved blocks, all of one fixed length. TSR differs only in jittering the lengths.
* ``span_mask``    one contiguous masked span per row (an in-filling extreme, not in the paper).

The authors' released masks (``utility/masking.py``) place blocks by rejection sampling and can
lose visible samples to clamping; ours hit the visible total exactly and never overlap.
"""
from __future__ import annotations

import torch

__all__ = ["tsr_mask", "random_mask", "block_mask", "ssp_mask", "span_mask", "make_mask", "MASKS"]


def _check(batch: int, length: int, ratio: float) -> int:
    if batch < 1 or length < 1:
        raise ValueError(f"batch and length must be >= 1, got batch={batch}, length={length}")
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"mask ratio must be in [0, 1), got {ratio}")
    return int(round(length * (1.0 - ratio)))  # number of visible samples per row


def _rand(shape, generator, device):
    return torch.rand(shape, generator=generator, device=device)


def _random_composition(total: torch.Tensor, parts: int, generator, device) -> torch.Tensor:
    """Split integer totals (B,) into `parts` non-negative integers per row, uniformly at random.

    Stars and bars: sort `parts-1` uniform cut points in [0, total] and take differences.
    """
    B = total.shape[0]
    cuts = (_rand((B, parts - 1), generator, device) * (total[:, None] + 1).float()).floor().long()
    cuts = torch.minimum(cuts, total[:, None])
    cuts, _ = torch.sort(cuts, dim=1)
    edges = torch.cat([torch.zeros(B, 1, dtype=torch.long, device=device), cuts, total[:, None]], dim=1)
    return edges.diff(dim=1)  # (B, parts)


def _blocks_to_mask(starts: torch.Tensor, lengths: torch.Tensor, length: int) -> torch.Tensor:
    """Boolean (B, length) that is True on [start, start+len) for each block; O(B * length)."""
    B = starts.shape[0]
    delta = torch.zeros(B, length + 1, dtype=torch.long, device=starts.device)
    delta.scatter_add_(1, starts.clamp(max=length), torch.ones_like(starts))
    delta.scatter_add_(1, (starts + lengths).clamp(max=length), -torch.ones_like(starts))
    return delta.cumsum(dim=1)[:, :length] > 0


def tsr_mask(
    batch: int,
    length: int,
    ratio: float = 0.5,
    n_blocks: int = 8,
    min_scale: float = 0.5,
    max_scale: float = 1.5,
    generator: torch.Generator | None = None,
    min_block: int = 4,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Temporal Semantic Random mask: ``(batch, length)`` bool, True = visible.

    Exactly ``round(length * (1 - ratio))`` samples are visible in every row, split into
    ``n_blocks`` non-overlapping visible blocks. Block ``i`` gets a share proportional to
    ``base * s_i`` with ``s_i ~ U(min_scale, max_scale)``, each at least ``min_block`` samples. The
    masked remainder is split at random into the ``n_blocks + 1`` gaps before, between and after the
    blocks, interior gaps being at least one sample so that two blocks never merge into one.

    If the window is too short for ``n_blocks`` blocks of ``min_block`` samples, fewer blocks are used
    (down to one); a window whose visible budget is below ``min_block`` raises ``ValueError``.
    """
    visible = _check(batch, length, ratio)
    if not 0 < min_scale <= max_scale:
        raise ValueError(f"need 0 < min_scale <= max_scale, got {min_scale}, {max_scale}")
    masked = length - visible
    n = int(n_blocks)
    # Fewest blocks that still fit: each needs min_block visible samples and (if n>1) one masked gap.
    while n > 1 and (visible < n * min_block or masked < n - 1):
        n -= 1
    if n < 1 or visible < min(min_block, length):
        raise ValueError(
            f"window of {length} samples at ratio {ratio} leaves {visible} visible samples, "
            f"fewer than one block of min_block={min_block}"
        )
    device = torch.device(device) if device is not None else (
        generator.device if generator is not None else torch.device("cpu"))

    # Block lengths: min_block each + the rest shared in proportion to the jittered scales.
    scales = min_scale + (max_scale - min_scale) * _rand((batch, n), generator, device)  # (B, n)
    spare = visible - n * min_block
    share = scales / scales.sum(dim=1, keepdim=True) * spare
    lengths = share.floor().long()
    remainder = spare - lengths.sum(dim=1)  # (B,) in [0, n)
    # give the leftover samples to the blocks with the largest fractional parts -> exact total
    order = torch.argsort(share - lengths.float(), dim=1, descending=True)
    bonus = (torch.arange(n, device=device)[None, :] < remainder[:, None]).long()
    lengths.scatter_add_(1, order, bonus)
    lengths = lengths + min_block  # (B, n), rows sum to `visible`

    # Gaps: n+1 parts; interior ones >= 1 sample.
    interior = n - 1
    free = torch.full((batch,), masked - interior, dtype=torch.long, device=device)
    gaps = _random_composition(free, n + 1, generator, device)  # (B, n+1)
    gaps[:, 1:n] += 1
    starts = gaps[:, :n].cumsum(dim=1) + torch.nn.functional.pad(lengths.cumsum(dim=1)[:, :-1], (1, 0))
    return _blocks_to_mask(starts, lengths, length)


def random_mask(batch, length, ratio=0.5, generator=None, device=None) -> torch.Tensor:
    """Each row has exactly ``round(length*(1-ratio))`` visible samples at random positions."""
    visible = _check(batch, length, ratio)
    device = torch.device(device) if device is not None else (
        generator.device if generator is not None else torch.device("cpu"))
    ranks = torch.argsort(_rand((batch, length), generator, device), dim=1)
    mask = torch.zeros(batch, length, dtype=torch.bool, device=device)
    mask.scatter_(1, ranks[:, :visible], True)
    return mask


def block_mask(batch, length, ratio=0.5, block=32, generator=None, device=None) -> torch.Tensor:
    """Masked blocks of ``block`` samples (the last may be shorter) at random non-overlapping slots.

    The window is cut into ``ceil(length / block)`` slots and a random subset of slots is masked
    so that exactly ``length - round(length*(1-ratio))`` samples are hidden (the final slot is
    trimmed when needed).
    """
    visible = _check(batch, length, ratio)
    device = torch.device(device) if device is not None else (
        generator.device if generator is not None else torch.device("cpu"))
    n_mask = length - visible
    n_slots = -(-length // block)
    order = torch.argsort(_rand((batch, n_slots), generator, device), dim=1)  # random slot order
    slot_of = torch.arange(length, device=device) // block  # (L,)
    rank_of_slot = torch.argsort(order, dim=1)  # (B, n_slots): position of each slot in the order
    # mask samples in slot order until n_mask samples are hidden: a sample's "masking rank" is
    # (rank of its slot) * block + offset inside the slot, which orders samples slot by slot.
    key = rank_of_slot[:, slot_of] * block + (torch.arange(length, device=device) % block)
    hidden_rank = torch.argsort(torch.argsort(key, dim=1), dim=1)
    return hidden_rank >= n_mask


def ssp_mask(batch, length, ratio=0.5, n_blocks=8, generator=None, device=None, min_block=4) -> torch.Tensor:
    """Semantic Subsequence Preserving: ``n_blocks`` visible blocks of (near-)equal length.

    TSR with the scale jitter switched off; block lengths differ by at most one sample so that the
    visible total is exact.
    """
    return tsr_mask(batch, length, ratio=ratio, n_blocks=n_blocks, min_scale=1.0, max_scale=1.0,
                    generator=generator, min_block=min_block, device=device)


def span_mask(batch, length, ratio=0.5, generator=None, device=None) -> torch.Tensor:
    """One contiguous masked span of ``length - visible`` samples per row."""
    visible = _check(batch, length, ratio)
    device = torch.device(device) if device is not None else (
        generator.device if generator is not None else torch.device("cpu"))
    n_mask = length - visible
    start = (_rand((batch,), generator, device) * (visible + 1)).floor().long().clamp(max=visible)
    hidden = _blocks_to_mask(start[:, None], torch.full_like(start[:, None], n_mask), length)
    return ~hidden


MASKS = {"tsr": tsr_mask, "random": random_mask, "block": block_mask, "ssp": ssp_mask, "span": span_mask}


def make_mask(kind: str, batch: int, length: int, ratio: float = 0.5, generator=None, device=None,
              **kwargs) -> torch.Tensor:
    """Dispatch by name (``tsr``, ``random``, ``block``, ``ssp``, ``span``); extra kwargs go to the mask."""
    try:
        fn = MASKS[kind]
    except KeyError:
        raise ValueError(f"unknown mask kind {kind!r}; choose one of {sorted(MASKS)}") from None
    return fn(batch, length, ratio=ratio, generator=generator, device=device, **kwargs)
