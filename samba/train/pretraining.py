"""Self-supervised pretraining: TSR masked reconstruction on the pooled multi-device corpus.

One step:
    x (B, C, T)  from ONE montage        visible = make_mask(kind, B, T)  (B, T) True = shown
    x_in = x * visible[:, None, :]        pred = model(x_in, coords)       (B, C, T)
    loss = reconstruction_loss(pred, x, visible)   (L1 + spectral, on the hidden samples)

Batches are drawn per montage: every batch comes from one WindowDataset (one device), and each
epoch visits every training window once, so devices appear in proportion to their window counts.
Why per-montage and not padded mixed batches: the CDSE spatial map is built once per batch for a
single coordinate set (the fused fast path), no compute is spent on padding channels, and
proportional sampling means the model sees each device as often as the corpus has data for it (no
small device is over-fitted by re-sampling).

The same function runs on one device or under `torchrun` (DDP): each rank takes every
world_size-th batch of the shared per-epoch plan (DistributedSampler's idea applied to batches),
rank 0 logs and writes checkpoints. A run folder holds:
    metrics.csv               step, epoch, lr, loss, l1, spectral, eeg_s_per_s, wall, val_loss
    train_state.pt(.prev.pt)  full training state for resume (samba.train.state)
    samba_pretrained.pt       the model (samba.checkpoint.save_model) -- the path returned
    config.json               the resolved PretrainConfig
"""

from __future__ import annotations

import csv
import json
import random
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from . import distributed as D
from .state import capture_rng, load_train_state, restore_rng, save_train_state

MODEL_FILE = "samba_pretrained.pt"
METRIC_COLUMNS = ["step", "epoch", "lr", "loss", "l1", "spectral", "eeg_s_per_s", "wall", "val_loss"]

# Defaults per profile; any PretrainConfig field left at None takes the profile's value.
PROFILES = {
    # CPU, about a minute on 2 cores: the paper model, short windows, few steps, small data subset.
    "quick": dict(steps=30, batch_size=8, window_s=4.0, hop_fraction=1.0, log_every=1, val_every=15, ckpt_every=10,
                  val_batches=2, max_windows_per_montage=256),
    # GPU: long windows, bf16 autocast; --max-minutes trims the step count to the time budget.
    # The mirrored corpus is small (~200 windows of 30 s), so windows overlap (hop = window / 4) for more crops.
    "full": dict(steps=20000, batch_size=32, window_s=30.0, hop_fraction=0.25, log_every=25, val_every=250,
                 ckpt_every=250, val_batches=8, max_windows_per_montage=None),
}


class SimulatedKill(RuntimeError):
    """Raised by the `kill_at_step` test hook to stand in for a SIGKILL mid-run."""


@dataclass
class PretrainConfig:
    out: str = "runs/pretrain"
    profile: str = "quick"
    steps: int | None = None
    batch_size: int | None = None
    window_s: float | None = None
    stride_s: float | None = None  # window hop; None = window_s (no overlap)
    sfreq: float = 128.0
    resume: bool = True
    compile: bool = False
    mask: str = "tsr"
    mask_ratio: float = 0.5
    seed: int = 0
    mirror: str | None = None
    lr: float = 5e-4  # OneCycle max lr (paper)
    weight_decay: float = 1e-2  # paper
    pct_start: float = 0.1  # warm-up fraction of the one-cycle schedule
    grad_clip: float = 1.0
    loss_on: str = "all"  # where the loss is computed (samba.losses): "all" (authors' code), "masked", "both"
    spectral_weight: float = 1.0
    log_every: int | None = None
    val_every: int | None = None
    val_batches: int | None = None
    val_fraction: float = 0.05
    ckpt_every: int | None = None
    max_windows_per_montage: int | None = None
    max_minutes: float | None = None
    device: str | None = None  # None: cuda when available
    model: dict = field(default_factory=dict)  # SAMBAConfig overrides
    find_unused_parameters: bool = False
    progress: bool = True
    kill_at_step: int | None = None  # test hook: raise SimulatedKill after this step (not saved)

    def resolved(self) -> "PretrainConfig":
        if self.profile not in PROFILES:
            raise ValueError(f"unknown profile {self.profile!r}; choose one of {sorted(PROFILES)}")
        out = PretrainConfig(**{f.name: getattr(self, f.name) for f in fields(self)})
        prof = dict(PROFILES[self.profile])
        hop_fraction = prof.pop("hop_fraction")
        for k, v in prof.items():
            if getattr(out, k) is None:
                setattr(out, k, v)
        if out.stride_s is None:
            out.stride_s = out.window_s * hop_fraction
        return out

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items()}


# ----------------------------------------------------------------------------------------------
# data


class ArrayWindows:
    """Minimal WindowDataset stand-in (X, y, ch_names, positions, sfreq) for synthetic tests."""

    def __init__(self, X, ch_names, positions, sfreq=128.0, y=None, device="synthetic"):
        self.X = np.asarray(X, dtype=np.float32)
        self.y = np.full(len(self.X), -1, np.int64) if y is None else np.asarray(y, np.int64)
        self.ch_names = list(ch_names)
        self.positions = np.asarray(positions, np.float32)
        self.sfreq = float(sfreq)
        self.device = device

    def __len__(self):
        return len(self.X)

    def subset(self, idx):
        return ArrayWindows(self.X[idx], self.ch_names, self.positions, self.sfreq, self.y[idx], self.device)


def synthetic_corpus(n_montages=2, n_windows=24, n_times=64, seed=0) -> list[ArrayWindows]:
    """Random-phase oscillations on random electrode subsets: a corpus for shape/plumbing tests."""
    rng = np.random.default_rng(seed)
    out = []
    for m in range(n_montages):
        C = 3 + 2 * m
        t = np.arange(n_times) / 128.0
        f = rng.uniform(4, 30, size=(n_windows, C, 1))
        X = np.sin(2 * np.pi * f * t + rng.uniform(0, 6.28, size=(n_windows, C, 1)))
        X += 0.1 * rng.standard_normal(X.shape)
        pos = rng.standard_normal((C, 3))
        pos = 0.09 * pos / np.linalg.norm(pos, axis=1, keepdims=True)
        out.append(ArrayWindows(X, [f"S{m}_{c}" for c in range(C)], pos, device=f"synthetic{m}"))
    return out


def _load_corpus(cfg: PretrainConfig):
    from samba.data import pretraining_corpus

    kw = dict(mirror=cfg.mirror, window_s=cfg.window_s, exclude_test=True, sfreq=cfg.sfreq)
    if cfg.stride_s:
        kw["stride_s"] = cfg.stride_s
    try:
        return pretraining_corpus(profile=cfg.profile, **kw)
    except TypeError:  # data module without the profile argument
        return pretraining_corpus(**kw)


def _scale_of(X, rng, n=64) -> float:
    """1 / robust std of a dataset (from up to n windows): every montage enters the model at unit scale."""
    idx = np.sort(rng.choice(len(X), size=min(n, len(X)), replace=False))
    sample = np.asarray(X[idx], dtype=np.float64)
    s = float(np.median(np.abs(sample - np.median(sample, axis=-1, keepdims=True)))) * 1.4826
    return 1.0 / s if s > 0 and np.isfinite(s) else 1.0


class BatchPlan:
    """Deterministic per-epoch batch order over several datasets, sharded across ranks.

    Epoch e: each dataset's training indices are shuffled with a generator seeded by (seed, e) and
    cut into batches; the batches of all datasets are shuffled together; rank r takes batches
    r, r + W, r + 2W, ... (truncated so every rank has the same count). The position in the run is
    just (epoch, cursor), so a checkpoint restores the data stream exactly.
    """

    def __init__(self, train_indices: list[np.ndarray], batch_size: int, seed: int, rank=0, world=1):
        self.train_indices = train_indices
        self.batch_size = batch_size
        self.seed = seed
        self.rank, self.world = rank, world
        self.epoch, self.cursor = 0, 0
        self._plan = None

    def _build(self, epoch):
        rng = np.random.default_rng([self.seed, epoch])
        batches = []
        for d, idx in enumerate(self.train_indices):
            idx = rng.permutation(idx)
            bs = self.batch_size
            if len(idx) < bs:  # a tiny montage still contributes one (smaller) batch per epoch
                if len(idx):
                    batches.append((d, np.sort(idx)))
                continue
            for s in range(0, len(idx) - bs + 1, bs):  # drop the ragged tail: fixed shapes for compile
                batches.append((d, np.sort(idx[s:s + bs])))
        order = rng.permutation(len(batches))
        batches = [batches[i] for i in order]
        n = (len(batches) // self.world) * self.world
        if n == 0:
            raise ValueError(f"corpus has {len(batches)} batches, fewer than the {self.world} ranks")
        return batches[self.rank:n:self.world]

    def next(self):
        if self._plan is None:
            self._plan = self._build(self.epoch)
        if self.cursor >= len(self._plan):
            self.epoch += 1
            self.cursor = 0
            self._plan = self._build(self.epoch)
        b = self._plan[self.cursor]
        self.cursor += 1
        return b

    def state_dict(self):
        return {"epoch": self.epoch, "cursor": self.cursor, "seed": self.seed}

    def load_state_dict(self, s):
        self.epoch, self.cursor, self._plan = s["epoch"], s["cursor"], None


# ----------------------------------------------------------------------------------------------
# training


def _seed_everything(seed: int):
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _make_scheduler(opt, cfg: PretrainConfig, total_steps: int):
    # +1: OneCycleLR's last phase ends at total_steps - 1, and we call step() after every one of
    # `total_steps` optimiser steps
    return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total_steps + 1,
                                               pct_start=cfg.pct_start)


class _MetricsLog:
    """metrics.csv (append; rows past the resumed step are dropped) + TensorBoard when importable."""

    def __init__(self, run_dir: Path, resume_step: int, enabled: bool):
        self.enabled = enabled
        self.path = run_dir / "metrics.csv"
        self.tb = None
        if not enabled:
            return
        rows = []
        if resume_step > 0 and self.path.exists():
            with open(self.path) as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
        with open(self.path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=METRIC_COLUMNS)
            w.writeheader()
            w.writerows(rows)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run_dir / "tb"), purge_step=resume_step + 1 if resume_step else None)
        except Exception:  # tensorboard not installed: CSV only
            self.tb = None

    def write(self, row: dict):
        if not self.enabled:
            return
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=METRIC_COLUMNS).writerow({k: row.get(k, "") for k in METRIC_COLUMNS})
        if self.tb is not None:
            for k in ("lr", "loss", "l1", "spectral", "eeg_s_per_s", "val_loss"):
                if row.get(k, "") != "":
                    self.tb.add_scalar(f"pretrain/{k}", float(row[k]), int(row["step"]))

    def close(self):
        if self.tb is not None:
            self.tb.close()


def pretrain(config: PretrainConfig, datasets=None, return_model: bool = False):
    """Run (or resume) pretraining; returns the path of the saved model checkpoint.

    `datasets`: optional list of WindowDataset-likes (X (N,C,T), positions (C,3), sfreq) instead of
    `samba.data.pretraining_corpus` (tests pass a synthetic corpus). `return_model=True` returns
    `(path, model)` (this rank's trained model; the DDP test compares them across ranks).
    """
    cfg = config.resolved()
    info = D.setup(cfg.device)
    try:
        path, model = _pretrain(cfg, info, datasets)
        return (path, model) if return_model else path
    finally:
        D.teardown(info)


def _pretrain(cfg: PretrainConfig, info: D.DistInfo, datasets) -> Path:
    from samba.checkpoint import save_model
    from samba.losses import reconstruction_loss
    from samba.masking import make_mask
    from samba.model import SAMBA, SAMBAConfig

    run_dir = Path(cfg.out)
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps(cfg.to_json(), indent=1, default=str))
    D.barrier(info)
    device = info.device
    use_cuda = device.type == "cuda"
    if use_cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    # ---- data: per-montage train/val split of windows, per-montage input scale
    _seed_everything(cfg.seed)
    if datasets is None:  # rank 0 fills the preprocessing cache first; the others then read it
        if not info.is_main:
            D.barrier(info)
        datasets = _load_corpus(cfg)
        if info.is_main:
            D.barrier(info)
    datasets = [d for d in datasets if len(d) > 0]
    if not datasets:
        raise RuntimeError("pretraining corpus is empty: check --mirror / SAMBA_DATA_MIRROR")
    split_rng = np.random.default_rng([cfg.seed, 12345])
    train_idx, val_idx, scales, coords = [], [], [], []
    for d in datasets:
        idx = split_rng.permutation(len(d))
        if cfg.max_windows_per_montage:
            idx = idx[: cfg.max_windows_per_montage]
        n_val = max(1, int(round(cfg.val_fraction * len(idx)))) if len(idx) >= 4 else 0
        val_idx.append(np.sort(idx[:n_val]))
        train_idx.append(np.sort(idx[n_val:]))
        scales.append(_scale_of(d.X, split_rng))
        coords.append(torch.as_tensor(np.asarray(d.positions, np.float32), device=device))
    n_train_windows = int(sum(len(i) for i in train_idx))

    # ---- model, optimiser, schedule
    torch.manual_seed(cfg.seed)  # identical init on every rank (DDP also broadcasts rank 0's)
    model_cfg = SAMBAConfig(**cfg.model) if cfg.model else SAMBAConfig()
    raw_model = SAMBA(model_cfg).to(device)
    model = raw_model
    if info.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        model = DDP(raw_model, device_ids=[device.index] if use_cuda else None,
                    find_unused_parameters=cfg.find_unused_parameters)
    fwd = torch.compile(model) if cfg.compile else model
    opt = torch.optim.AdamW(raw_model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    total_steps = int(cfg.steps)
    sched = _make_scheduler(opt, cfg, total_steps)
    scaler = torch.amp.GradScaler("cuda", enabled=False)  # bf16 needs no loss scaling; kept for fp16 users
    plan = BatchPlan(train_idx, cfg.batch_size, cfg.seed, info.rank, info.world_size)
    mask_gen = torch.Generator().manual_seed(cfg.seed * 1000 + 17 + info.rank)
    torch.manual_seed(cfg.seed * 1000 + 29 + info.rank)  # per-rank stream for anything stochastic

    # ---- resume
    step, wall_offset, calibrated = 0, 0.0, False
    state = load_train_state(run_dir) if cfg.resume else None
    if state is not None:
        if state.get("model_config") != model_cfg.to_dict():
            from .state import CheckpointError

            raise CheckpointError(f"{state['_path']} was written for a different model config; pass --no-resume "
                                  f"to start over or use another --out")
        raw_model.load_state_dict(state["model"])
        total_steps = int(state["total_steps"])
        sched = _make_scheduler(opt, cfg, total_steps)
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        plan.load_state_dict(state["data"])
        step, wall_offset, calibrated = int(state["step"]), float(state["wall"]), bool(state.get("calibrated"))
        rngs = state["rng"]
        restore_rng(rngs[info.rank] if info.rank < len(rngs) else rngs[0], {"mask": mask_gen})
        if info.is_main:
            print(f"resumed from {state['_path']} at step {step} (epoch {plan.epoch})", file=sys.stderr)
        if int(cfg.steps) != int(state["config"]["steps"]) and not state.get("calibrated"):
            print(f"warning: --steps {cfg.steps} differs from the checkpoint's {state['config']['steps']}; "
                  f"keeping the checkpoint's schedule of {total_steps} steps", file=sys.stderr)
    del state

    log = _MetricsLog(run_dir, step, info.is_main)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if use_cuda else torch.autocast("cpu", enabled=False)

    def train_step(d, idx):
        x = torch.from_numpy(np.asarray(datasets[d].X[idx], dtype=np.float32)).to(device, non_blocking=True)
        x = x * scales[d]  # (B, C, T)
        B, _, T = x.shape
        visible = make_mask(cfg.mask, B, T, ratio=cfg.mask_ratio, generator=mask_gen).to(device)  # (B, T)
        with amp:
            pred = fwd(x * visible[:, None, :], coords[d])  # (B, C, T)
        loss, parts = reconstruction_loss(pred.float(), x, visible, spectral_weight=cfg.spectral_weight,
                                          on=cfg.loss_on)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(raw_model.parameters(), cfg.grad_clip)
        scaler.step(opt)
        scaler.update()
        sched.step()
        return parts, B * T / datasets[d].sfreq

    @torch.no_grad()
    def validate() -> float:
        raw_model.eval()
        gen = torch.Generator().manual_seed(cfg.seed + 4242)  # same masks every time
        losses = []
        for d, vidx in enumerate(val_idx):
            for s in range(0, min(len(vidx), cfg.val_batches * cfg.batch_size), cfg.batch_size):
                idx = vidx[s:s + cfg.batch_size]
                x = torch.from_numpy(np.asarray(datasets[d].X[idx], np.float32)).to(device) * scales[d]
                visible = make_mask(cfg.mask, x.shape[0], x.shape[-1], ratio=cfg.mask_ratio, generator=gen).to(device)
                with amp:
                    pred = raw_model(x * visible[:, None, :], coords[d])
                loss, _ = reconstruction_loss(pred.float(), x, visible, spectral_weight=cfg.spectral_weight,
                                              on=cfg.loss_on)
                losses.append(float(loss))
        raw_model.train()
        return float(np.mean(losses)) if losses else float("nan")

    def checkpoint():
        rngs = D.gather_objects(capture_rng({"mask": mask_gen}), info)
        if info.is_main:
            save_train_state(run_dir, {
                "step": step, "total_steps": total_steps, "calibrated": calibrated,
                "wall": wall_offset + time.perf_counter() - t_start,
                "model": raw_model.state_dict(), "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(), "scaler": scaler.state_dict(),
                "data": plan.state_dict(), "rng": rngs, "config": cfg.to_json(),
                "model_config": model_cfg.to_dict(), "scales": scales,
            })
        D.barrier(info)

    # ---- loop
    raw_model.train()
    t_start = time.perf_counter()
    t_log, eeg_s_since_log = time.perf_counter(), 0.0
    pbar = None
    if cfg.progress and info.is_main:
        from tqdm.auto import tqdm

        pbar = tqdm(total=total_steps, initial=step, desc="pretrain", file=sys.stderr, dynamic_ncols=True)
    last_saved = step
    stop_reason = None
    t_warm = t_start
    while step < total_steps:
        d, idx = plan.next()
        parts, eeg_s = train_step(d, idx)
        step += 1
        eeg_s_since_log += eeg_s
        if pbar is not None:
            pbar.update(1)
            pbar.set_postfix(loss=f"{parts['loss']:.4f}")
        if cfg.kill_at_step is not None and step == cfg.kill_at_step:
            raise SimulatedKill(f"simulated kill after step {step}")

        # fit the one-cycle schedule to the time budget, once: time steps 6..20 (after warm-up and
        # any compilation), project what fits in 85 % of the budget left
        if step == 5:
            t_warm = time.perf_counter()
        if cfg.max_minutes and not calibrated and step == min(20, total_steps // 2) and step > 5:
            per_step = D.all_reduce_mean((time.perf_counter() - t_warm) / (step - 5), info)
            left = D.all_reduce_mean(cfg.max_minutes * 60 - (time.perf_counter() - t_start), info)  # same on all ranks
            fit = step + int(0.85 * left / per_step)
            if fit < total_steps:
                total_steps = max(fit, step + 1)
                sched = _make_scheduler(opt, cfg, total_steps)
                for _ in range(step):  # fast-forward the new schedule to where we are
                    sched.step()
                if pbar is not None:
                    pbar.total = total_steps
                if info.is_main:
                    print(f"--max-minutes {cfg.max_minutes}: schedule set to {total_steps} steps "
                          f"({per_step:.3f} s/step)", file=sys.stderr)
            calibrated = True

        val_loss = ""
        if step % cfg.val_every == 0 or step == total_steps:
            t_v = time.perf_counter()
            v = validate() if info.is_main else 0.0
            D.barrier(info)
            val_loss = f"{v:.6f}"
            t_log += time.perf_counter() - t_v  # throughput counts training only
        if step % cfg.log_every == 0 or val_loss or step == total_steps:
            loss_mean = D.all_reduce_mean(parts["loss"], info)
            now = time.perf_counter()
            rate = D.all_reduce_mean(eeg_s_since_log / max(now - t_log, 1e-9), info) * info.world_size
            log.write({"step": step, "epoch": plan.epoch, "lr": f"{sched.get_last_lr()[0]:.6e}",
                       "loss": f"{loss_mean:.6f}", "l1": f"{parts['l1']:.6f}", "spectral": f"{parts['spectral']:.6f}",
                       "eeg_s_per_s": f"{rate:.1f}", "wall": f"{wall_offset + now - t_start:.2f}",
                       "val_loss": val_loss})
            t_log, eeg_s_since_log = now, 0.0
        if step % cfg.ckpt_every == 0:
            t_c = time.perf_counter()
            checkpoint()
            last_saved = step
            t_log += time.perf_counter() - t_c
        if cfg.max_minutes:
            over = (time.perf_counter() - t_start) > cfg.max_minutes * 60  # this invocation's time
            if D.all_reduce_mean(float(over), info) > 0:
                stop_reason = f"time budget of {cfg.max_minutes} min reached at step {step}/{total_steps}"
                break
    if pbar is not None:
        pbar.close()
    if last_saved != step:
        checkpoint()
    if stop_reason and info.is_main:
        print("stopped: " + stop_reason, file=sys.stderr)
    log.close()

    path = run_dir / MODEL_FILE
    if info.is_main:
        save_model(path, raw_model, extra={
            "kind": "pretrained", "step": step, "total_steps": total_steps, "mask": cfg.mask,
            "mask_ratio": cfg.mask_ratio, "window_s": cfg.window_s, "sfreq": cfg.sfreq,
            "profile": cfg.profile, "seed": cfg.seed, "world_size": info.world_size,
            "n_train_windows": n_train_windows,
            "devices": [str(getattr(d, "device", "?")) for d in datasets],
            "input_scales": [float(s) for s in scales],
        })
    D.barrier(info)
    return path, raw_model
