"""One pretraining step and the validation pass (TSR masked reconstruction).

One step::

    x (B, C, T)  from ONE montage        visible = make_mask(kind, B, T)  (B, T) True = shown
    x_in = x * visible[:, None, :]        pred = model(x_in, coords)       (B, C, T)
    loss = reconstruction_loss(pred, x, visible)   (L1 + spectral)

On a GPU a step copies nothing from the host and reads nothing back, so the host can queue its kernels while
the GPU still runs the previous ones (the model's own input check, ``torch.isfinite(x).all()``, remains the one
synchronisation per step):

* the corpus lives on the GPU: every montage's windows are copied once, already scaled, and a batch is
  an ``index_select`` (the indices travel through pinned memory, asynchronously);
* masks are drawn on the GPU from a CUDA generator (no host-to-device copy per step);
* the loss parts stay tensors until the loop logs them (every ``log_every`` steps);
* AdamW runs fused (one kernel for all parameters instead of a few per parameter).

On CPU the windows are read from the (memory-mapped) cache per batch, as before.
"""

from __future__ import annotations

import numpy as np
import torch

from samba.losses import reconstruction_loss
from samba.masking import make_mask

from .augment import augment


def make_scheduler(opt, lr: float, pct_start: float, total_steps: int):
    """The paper's one-cycle schedule over ``total_steps`` optimiser steps."""
    # +1: OneCycleLR's last phase ends at total_steps - 1, and we call step() after every one of
    # `total_steps` optimiser steps
    n = total_steps + 1
    # OneCycleLR divides by the warm-up's length in steps, pct_start * n - 1: zero when pct_start * n == 1
    # (--steps 9 at the default 0.1); a warm-up 1 % longer keeps the same schedule and avoids it
    if abs(pct_start * n - 1) < 1e-9:
        pct_start *= 1.01
    return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=n, pct_start=pct_start)


class PretrainStep:
    """Forward, loss, backward and optimiser update for one batch; validation on fixed masks.

    ``model`` is what runs the forward (DDP-wrapped and/or compiled); ``raw_model`` owns the parameters.
    ``sched`` is an attribute because fitting the schedule to a time budget replaces it mid-run.
    """

    def __init__(self, cfg, data, raw_model, model, opt, sched, scaler, mask_gen, device, subset_gen=None):
        self.cfg, self.data = cfg, data
        self.raw_model, self.model = raw_model, model
        self.opt, self.sched, self.scaler = opt, sched, scaler
        self.mask_gen, self.subset_gen, self.device = mask_gen, subset_gen, device
        use_cuda = device.type == "cuda"
        # bf16 on CUDA needs no loss scaling; the scaler is kept (disabled) for fp16 users
        self.amp = (torch.autocast("cuda", dtype=torch.bfloat16) if use_cuda
                    else torch.autocast("cpu", enabled=False))
        # GPU: the whole corpus on the device, scaled, float32: (N_d, C_d, T) per montage (~0.5 GB for the
        # mirrored corpus at 30-s windows with hop 7.5 s)
        self.resident = [self._upload(ds.X, scale) for ds, scale in zip(data.datasets, data.scales)] \
            if use_cuda else None

    def _upload(self, X, scale: float) -> torch.Tensor:
        out = torch.empty((len(X),) + tuple(X.shape[1:]), dtype=torch.float32, device=self.device)
        for s in range(0, len(X), 256):  # in slices: a memory-mapped cache is never read whole into RAM
            part = torch.from_numpy(np.asarray(X[s:s + 256], dtype=np.float32))
            out[s:s + len(part)].copy_(part.mul_(scale))
        return out

    def _batch(self, d: int, idx) -> torch.Tensor:
        if self.resident is not None:
            i = torch.from_numpy(np.ascontiguousarray(idx, dtype=np.int64)).pin_memory()
            return self.resident[d].index_select(0, i.to(self.device, non_blocking=True))  # (B, C, T)
        X = self.data.datasets[d].X
        x = torch.from_numpy(np.asarray(X[idx], dtype=np.float32)).to(self.device, non_blocking=True)
        return x * self.data.scales[d]  # (B, C, T), every montage at unit scale

    def __call__(self, d: int, idx) -> tuple[dict, float]:
        """Train on windows ``idx`` of montage ``d``; returns the loss parts (detached 0-d tensors: ``float()``
        them when logging) and the seconds of EEG seen."""
        cfg = self.cfg
        x, coords = self._batch(d, idx), self.data.coords[d]  # (B, C, T), (C, 3)
        if cfg.augment:
            x, coords = augment(x, coords, self.mask_gen, self.subset_gen)  # (B, C', T), (C', 3)
        B, _, T = x.shape
        # drawn where the generator lives (the GPU in a GPU run), then on the model's device
        visible = make_mask(cfg.mask, B, T, ratio=cfg.mask_ratio, generator=self.mask_gen).to(self.device)  # (B, T)
        with self.amp:
            pred = self.model(x * visible[:, None, :], coords)  # (B, C', T)
        loss, parts = reconstruction_loss(pred.float(), x, visible, spectral_weight=cfg.spectral_weight,
                                          on=cfg.loss_on, float_parts=False)
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.opt)
        torch.nn.utils.clip_grad_norm_(self.raw_model.parameters(), cfg.grad_clip)
        self.scaler.step(self.opt)
        self.scaler.update()
        self.sched.step()
        return parts, B * T / self.data.datasets[d].sfreq

    def _val_batches(self):
        """(x (B, C, T), coords (C, 3)) of the validation windows: whole never-trained recordings when the run has
        them (``data.val_recordings``), else the held-back windows of the training recordings."""
        cfg, B = self.cfg, self.cfg.batch_size
        if self.data.val_recordings:
            for _, x, coords in self.data.val_recordings:
                for s in range(0, len(x), B):
                    yield x[s:s + B], coords
            return
        for d, vidx in enumerate(self.data.val_idx):
            for s in range(0, min(len(vidx), cfg.val_batches * B), B):
                yield self._batch(d, vidx[s:s + B]), self.data.coords[d]

    @torch.no_grad()
    def validate(self) -> float:
        """Mean loss over the validation batches (``_val_batches``), with the same masks every time."""
        cfg = self.cfg
        self.raw_model.eval()
        gen = torch.Generator().manual_seed(cfg.seed + 4242)
        losses = []
        for x, coords in self._val_batches():
            visible = make_mask(cfg.mask, x.shape[0], x.shape[-1], ratio=cfg.mask_ratio, generator=gen).to(self.device)
            with self.amp:
                pred = self.raw_model(x * visible[:, None, :], coords)
            loss, _ = reconstruction_loss(pred.float(), x, visible, spectral_weight=cfg.spectral_weight,
                                          on=cfg.loss_on)
            losses.append(float(loss))
        self.raw_model.train()
        return float(np.mean(losses)) if losses else float("nan")
