"""One pretraining step and the validation pass (TSR masked reconstruction).

One step::

    x (B, C, T)  from ONE montage        visible = make_mask(kind, B, T)  (B, T) True = shown
    x_in = x * visible[:, None, :]        pred = model(x_in, coords)       (B, C, T)
    loss = reconstruction_loss(pred, x, visible)   (L1 + spectral)

On a GPU a step copies nothing from the host and reads nothing back, so the host can queue its kernels while
the GPU still runs the previous ones (with ``--no-cuda-graphs`` the model's own input check,
``torch.isfinite(x).all()``, remains one synchronisation per step):

* the corpus lives on the GPU: every montage's windows are copied once, already scaled, and a batch is
  an ``index_select`` (the indices travel through pinned memory, asynchronously);
* masks are drawn on the GPU from a CUDA generator (no host-to-device copy per step);
* the loss parts stay tensors until the loop logs them (every ``log_every`` steps);
* AdamW runs fused (one kernel for all parameters instead of a few per parameter);
* forward, loss and backward replay as one CUDA graph per montage (``cuda_graphs``, on by default on one GPU).

CUDA graphs. Eagerly, the host issues a few hundred kernels per step (convolutions, Triton scans, norms,
element-wise ops) and, at batch 128 of 30-s windows, the GPU waits on it for part of every step. A graph
(:class:`samba.graphs.GraphedGradients`) issues them with one launch. It needs one fixed shape, so the electrode
subset of :mod:`.augment` becomes a channel mask over the montage's full electrode set (``augment_masked``: the
same draws; the model and the loss give masked electrodes exactly zero weight, so a step computes what the subset
does, up to rounding) and each montage gets its own graph, all captured before training starts
(``capture_all``) and sharing one memory pool. The graph ends at the gradients: clipping, AdamW and the one-cycle schedule (which
changes the learning rate and momentum as Python floats every step) run eagerly, exactly as without graphs.
The model's per-step NaN/Inf check of its input (a host synchronisation) is replaced by one check of the whole
corpus when it is copied to the GPU. ``tests/test_graphs.py`` compares graphed steps with eager ones on a GPU.

On CPU the windows are read from the (memory-mapped) cache per batch, as before.
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from samba.errors import InputError, SambaError
from samba.losses import reconstruction_loss
from samba.masking import make_mask

from .augment import augment, augment_masked


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
        # one graph per (montage, batch size), sharing one memory pool; only for the plain model on one GPU
        # (a DDP wrapper synchronises gradients inside backward, torch.compile makes its own graphs)
        self.graphs = {} if (use_cuda and getattr(cfg, "cuda_graphs", None) is not False and model is raw_model
                             and not scaler.is_enabled()) else None
        self._pool = None

    def _upload(self, X, scale: float) -> torch.Tensor:
        out = torch.empty((len(X),) + tuple(X.shape[1:]), dtype=torch.float32, device=self.device)
        for s in range(0, len(X), 256):  # in slices: a memory-mapped cache is never read whole into RAM
            part = torch.from_numpy(np.asarray(X[s:s + 256], dtype=np.float32))
            out[s:s + len(part)].copy_(part.mul_(scale))
        if not bool(torch.isfinite(out).all()):  # once here, instead of the model's check at every step
            raise InputError("the pretraining corpus holds NaN or Inf samples; rebuild the window cache")
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
        if self.graphs is not None:
            return self._graphed(d, idx)
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

    def _graphed(self, d: int, idx) -> tuple[dict, float]:
        """``__call__`` with forward, loss and backward replayed from montage ``d``'s CUDA graph."""
        cfg = self.cfg
        x = self._batch(d, idx)  # (B, C, T)
        B, C, T = x.shape
        if cfg.augment:
            x, keep = augment_masked(x, self.mask_gen, self.subset_gen)  # (B, C, T), (1, C) kept electrodes
        else:
            keep = torch.ones(1, C, dtype=torch.bool, device=self.device)
        visible = make_mask(cfg.mask, B, T, ratio=cfg.mask_ratio, generator=self.mask_gen).to(self.device)  # (B, T)
        graph = self.graphs.get((d, B)) or self._capture(d, x, visible, keep)
        out = graph(x, visible, keep).clone()  # (3,): loss, l1, spectral (the graph's buffer is reused)
        torch.nn.utils.clip_grad_norm_(self.raw_model.parameters(), cfg.grad_clip)
        self.opt.step()
        self.sched.step()
        return {"loss": out[0], "l1": out[1], "spectral": out[2]}, B * T / self.data.datasets[d].sfreq

    def capture_all(self) -> None:
        """Capture every montage's graph now (zeros as inputs; no weight changes), so that no capture falls inside
        the steps that time the run (``--max-minutes`` fits the schedule to them)."""
        if self.graphs is None:
            if self.device.type == "cuda":
                print("CUDA graphs: off, eager steps (--no-cuda-graphs, DDP or --compile)", file=sys.stderr)
            return
        B, T = self.cfg.batch_size, self.resident[0].shape[-1]
        for d, X in enumerate(self.resident):
            if (d, B) not in self.graphs:
                C = X.shape[1]
                self._capture(d, torch.zeros(B, C, T, device=self.device),
                              torch.ones(B, T, dtype=torch.bool, device=self.device),
                              torch.ones(1, C, dtype=torch.bool, device=self.device))
        print(f"CUDA graphs: forward, loss and backward captured for {len(self.graphs)} montage(s)", file=sys.stderr)

    def _capture(self, d: int, x, visible, keep):
        from samba.graphs import GraphedGradients

        cfg = self.cfg
        coords = torch.as_tensor(self.data.coords[d], dtype=torch.float32, device=self.device)  # (C, 3): all electrodes

        def fn(x, visible, keep):  # (B, C, T), (B, T), (1, C) -> (3,)
            with torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False):  # cached casts die with capture
                pred = self.raw_model(x * visible[:, None, :], coords, keep)  # (B, C, T), masked electrodes 0
            loss, parts = reconstruction_loss(pred.float(), x, visible, spectral_weight=cfg.spectral_weight,
                                              on=cfg.loss_on, channel_mask=keep.expand(x.shape[0], -1),
                                              float_parts=False)
            return torch.stack([loss, parts["l1"], parts["spectral"]])

        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        try:
            graph = GraphedGradients(fn, list(self.raw_model.parameters()), [x, visible, keep], pool=self._pool)
        except RuntimeError as err:
            raise SambaError(f"capturing the training step as a CUDA graph failed ({str(err).splitlines()[0]}); "
                             "rerun with --no-cuda-graphs") from None
        self.graphs[(d, x.shape[0])] = graph
        return graph

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
