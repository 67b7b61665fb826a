"""Self-supervised pretraining: TSR masked reconstruction on the pooled multi-device corpus.

The run, in the order it happens (each step in its own module):

1. options checked, run folder locked and checked writable (:mod:`.checks`, :mod:`.runfolder`);
2. data: the corpus split per montage and a deterministic batch plan (:mod:`.batches`);
3. model, optimiser, one-cycle schedule; on resume, the saved state, after its configuration is
   compared with the requested one (:mod:`.state`);
4. the loop: one step (:mod:`.step`), logging (:mod:`.runlog`), checkpoints (:mod:`.state`);
5. the model checkpoint (:func:`samba.checkpoint.save_model`).

The same function runs on one device or under ``torchrun`` (DDP): each rank takes every world_size-th
batch of the shared per-epoch plan, rank 0 logs and writes checkpoints. A run folder holds::

    metrics.csv                   step, epoch, lr, loss, l1, spectral, eeg_s_per_s, wall, val_loss, eeg_hours
    snapshots/step_XXXXXX/        with --keep-every: the model every N steps
    train_state/ (.prev/)         full training state for resume (samba.train.state)
    samba_pretrained/             the model (samba.checkpoint.save_model) -- the path returned
    config.json                   the resolved PretrainConfig (and any allowed changes on resume)
    run.lock                      while a run owns the folder
"""

from __future__ import annotations

import json
import random
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from samba.errors import UsageError
from samba.paths import check_writable_dir

from . import checks
from . import distributed as D
from .batches import ArrayWindows, BatchPlan, load_corpus, split_corpus, synthetic_corpus  # noqa: F401
from .runlog import METRIC_COLUMNS, MetricsLog, progress_bar  # noqa: F401
from .state import capture_rng, check_resume_config, load_train_state, restore_rng, save_train_state
from .step import PretrainStep, make_scheduler

MODEL_FILE = "samba_pretrained"

# Defaults per profile; any PretrainConfig field left at None takes the profile's value.
PROFILES = {
    # CPU, about a minute on 2 cores: the paper model, short windows, few steps, small data subset.
    "quick": dict(steps=30, batch_size=8, window_s=4.0, hop_fraction=1.0, log_every=1, val_every=15, ckpt_every=10,
                  val_batches=2, max_windows_per_montage=256, augment=False, val_on="windows", select="last"),
    # GPU: long windows, bf16 autocast; --max-minutes trims the step count to the time budget.
    # The mirrored corpus is small (under two hours of EEG), so windows start every second (hop = window / 30),
    # batches are augmented (samba.train.augment), validation runs on whole recordings that are never trained on
    # (samba.data.corpus.VALIDATION) and the released model is the step with the lowest validation loss.
    "full": dict(steps=20000, batch_size=32, window_s=30.0, hop_fraction=1 / 30, log_every=25, val_every=250,
                 ckpt_every=250, val_batches=8, max_windows_per_montage=None, augment=True, val_on="recordings",
                 select="best"),
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
    overwrite: bool = False  # with resume=False: clear a folder that already holds a run
    allow_change: tuple = ()  # options that may differ from the checkpoint's on resume (state.SAFE_TO_CHANGE)
    compile: bool = False
    cuda_graphs: bool | None = None  # None/True: forward + backward as CUDA graphs on one GPU (samba.train.step)
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
    keep_every: int | None = None  # also keep the model every N steps as snapshots/step_XXXXXX (CDSE over training)
    augment: bool | None = None  # polarity, reversal, gain, electrode subsets (samba.train.augment)
    val_on: str | None = None  # "recordings": corpus.VALIDATION (never trained on); "windows": held-back windows
    select: str | None = None  # released model: "best" (lowest validation loss) or "last"
    max_windows_per_montage: int | None = None
    max_minutes: float | None = None
    # stop (checkpointed) after this many minutes of this invocation, keeping the schedule: a run of --steps longer
    # than one job's time limit, continued by the same command (unlike max_minutes, which fits the schedule)
    stop_after_minutes: float | None = None
    device: str | None = None  # None: cuda when available
    model: dict = field(default_factory=dict)  # SAMBAConfig overrides (the CLI sets {"bidirectional": True})
    find_unused_parameters: bool = False
    progress: bool = True
    kill_at_step: int | None = None  # test hook: raise SimulatedKill after this step (not saved)

    def resolved(self) -> "PretrainConfig":
        if self.profile not in PROFILES:
            raise UsageError(f"unknown profile {self.profile!r}; choose one of {sorted(PROFILES)}")
        out = PretrainConfig(**{f.name: getattr(self, f.name) for f in fields(self)})
        prof = dict(PROFILES[self.profile])
        hop_fraction = prof.pop("hop_fraction")
        for k, v in prof.items():
            if getattr(out, k) is None:
                setattr(out, k, v)
        if out.stride_s is None and out.window_s is not None:
            out.stride_s = out.window_s * hop_fraction
        out.allow_change = tuple(out.allow_change or ())
        out.validate()
        return out

    def validate(self) -> None:
        """Every option in range, before any work (``--ckpt-every 0`` would divide by zero at step 1)."""
        from samba.masking import MASKS

        for name in ("steps", "batch_size", "log_every", "val_every", "ckpt_every", "keep_every", "val_batches",
                     "max_windows_per_montage"):
            checks.check_positive(name, getattr(self, name))
        for name in ("window_s", "sfreq", "lr", "grad_clip", "stride_s", "max_minutes", "stop_after_minutes"):
            checks.check_positive(name, getattr(self, name), minimum=1e-12)
        checks.check_positive("spectral_weight", self.spectral_weight, minimum=0, allow_none=False)
        checks.check_positive("weight_decay", self.weight_decay, minimum=0, allow_none=False)
        checks.check_fraction("mask_ratio", self.mask_ratio, 0.0, 1.0)
        checks.check_fraction("val_fraction", self.val_fraction, 0.0, 1.0)
        checks.check_fraction("pct_start", self.pct_start, 0.0, 1.0)
        if self.mask not in MASKS:
            raise UsageError(f"unknown --mask {self.mask!r}; choose one of {', '.join(sorted(MASKS))}")
        if self.val_on not in ("recordings", "windows"):
            raise UsageError(f"unknown --val-on {self.val_on!r}; choose recordings or windows")
        if self.select not in ("best", "last"):
            raise UsageError(f"unknown --select {self.select!r}; choose best or last")
        if self.loss_on not in ("all", "masked", "both"):
            raise UsageError(f"unknown --loss-on {self.loss_on!r}; choose all, masked or both")
        if self.window_s * self.sfreq < 8:
            raise UsageError(f"--window-s {self.window_s} at {self.sfreq:g} Hz is under the 8 samples SAMBA needs")

    def to_json(self) -> dict:
        d = asdict(self)
        d["allow_change"] = list(d["allow_change"])
        return d


def pretrain(config: PretrainConfig, datasets=None, return_model: bool = False):
    """Run (or resume) pretraining; returns the path of the saved model checkpoint folder.

    `datasets`: optional list of WindowDataset-likes (X (N,C,T), positions (C,3), sfreq) instead of
    `samba.data.pretraining_corpus` (tests pass a synthetic corpus). `return_model=True` returns
    `(path, model)` (this rank's trained model; the DDP test compares them across ranks).
    """
    from samba.devices import resolve_device

    from .runfolder import RunLock, prepare

    cfg = config.resolved()
    resolve_device(cfg.device)  # an unknown or absent device is an error before any work
    info = D.setup(cfg.device)
    lock = None
    try:
        refused = None
        if info.is_main:  # checked and owned before the corpus is loaded or anything is trained
            try:
                check_writable_dir(cfg.out)
                lock = RunLock(cfg.out).acquire()
                prepare(cfg.out, cfg.resume, cfg.overwrite)
            except UsageError as err:
                refused = err
        # every rank learns of a refusal (the others would otherwise wait for rank 0 forever)
        if D.all_reduce_mean(float(refused is not None), info) > 0:
            raise refused or UsageError(f"rank 0 refused the run folder {cfg.out} (see its message)")
        path, model = _Run(cfg, info, datasets).train()
        return (path, model) if return_model else path
    finally:
        if lock is not None:
            lock.release()
        D.teardown(info)


def _seed_everything(seed: int):
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _write_config(run_dir: Path, cfg: PretrainConfig, changes: list | None = None) -> None:
    from samba.checkpoint import atomic_write_bytes

    record = cfg.to_json()
    if changes:
        record["changes_on_resume"] = changes
    atomic_write_bytes(run_dir / "config.json", json.dumps(record, indent=1, default=str).encode())


def _same_model_config(saved, cfg) -> bool:
    """Whether a training state's saved ``model_config`` describes ``cfg`` (compared as SAMBAConfigs, so a state
    saved without a field that has a default, e.g. ``bidirectional``, matches a config at that default)."""
    from samba.model import SAMBAConfig

    try:
        return SAMBAConfig.from_dict(dict(saved)) == cfg
    except (TypeError, ValueError):
        return False


class _Run:
    """One pretraining run: its data, model, optimiser, position (step) and the loop over steps."""

    def __init__(self, cfg: PretrainConfig, info: D.DistInfo, datasets):
        self.cfg, self.info = cfg, info
        self.run_dir = Path(cfg.out)
        self.device = info.device
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        _seed_everything(cfg.seed)
        self.data = split_corpus(self._corpus(datasets), cfg.seed, cfg.max_windows_per_montage, cfg.val_fraction,
                                 self.device)
        if cfg.val_on == "recordings" and datasets is None:
            self.data.val_recordings = self._validation_recordings()
        self._build_model()
        self.step, self.wall_offset, self.calibrated, self.eeg_s_seen = 0, 0.0, False, 0.0
        self.best = None  # {"step", "val_loss"} of the model in run_dir/best (select="best")
        changes = self._resume() if cfg.resume else {}
        if info.is_main:
            history = self._saved_changes() + [{"at_step": self.step, "field": k, "from": a, "to": b}
                                               for k, (a, b) in changes.items()]
            _write_config(self.run_dir, cfg, history)
        D.barrier(info)

    # ---- setup
    def _corpus(self, datasets):
        if datasets is not None:
            return datasets
        if not self.info.is_main:  # rank 0 fills the preprocessing cache first; the others then read it
            D.barrier(self.info)
        datasets = load_corpus(self.cfg)
        if self.info.is_main:
            D.barrier(self.info)
        return datasets

    def _validation_recordings(self) -> list:
        """``[(name, x (N, C, T), coords (C, 3))]`` on the training device, moved there once: windows (hop: a quarter
        window) of the ``corpus.VALIDATION`` recordings; none readable: the held-back windows of the training
        recordings, with a warning."""
        from samba.data.corpus import validation_recordings
        from samba.montage import check_positions

        from .batches import recording_windows

        cfg = self.cfg
        recs = validation_recordings(cfg.mirror, sfreq=cfg.sfreq)
        out = [(name, torch.from_numpy(X).to(self.device), check_positions(pos, device=self.device))
               for name, X, pos in recording_windows(recs, cfg.window_s, hop_s=cfg.window_s / 4)]
        if self.info.is_main:
            if out:
                print(f"validation: {sum(len(x) for _, x, _ in out)} windows of {len(out)} recording(s) never "
                      f"trained on: {', '.join(name for name, _, _ in out)}", file=sys.stderr)
            else:
                print("validation: no validation recording is readable here; validating on held-back windows of "
                      "the training recordings instead", file=sys.stderr)
        return out

    def _build_model(self):
        from samba.model import SAMBA, SAMBAConfig

        cfg, info = self.cfg, self.info
        torch.manual_seed(cfg.seed)  # identical init on every rank (DDP also broadcasts rank 0's)
        self.model_cfg = SAMBAConfig(**cfg.model) if cfg.model else SAMBAConfig()
        self.raw_model = SAMBA(self.model_cfg).to(self.device)
        model = self.raw_model
        if info.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            model = DDP(self.raw_model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                        find_unused_parameters=cfg.find_unused_parameters)
        fwd = torch.compile(model) if cfg.compile else model
        # fused AdamW on CUDA: one kernel for every parameter (the eager loop is bound by kernel launches)
        fused = {"fused": True} if self.device.type == "cuda" else {}
        opt = torch.optim.AdamW(self.raw_model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, **fused)
        self.total_steps = int(cfg.steps)
        sched = make_scheduler(opt, cfg.lr, cfg.pct_start, self.total_steps)
        scaler = torch.amp.GradScaler("cuda", enabled=False)
        self.plan = BatchPlan(self.data.train_idx, cfg.batch_size, cfg.seed, info.rank, info.world_size)
        # masks are drawn on the training device (on a GPU: no copy per step); the state is saved for resume
        self.mask_gen = torch.Generator(device=self.device).manual_seed(cfg.seed * 1000 + 17 + info.rank)
        self.subset_gen = torch.Generator().manual_seed(cfg.seed * 1000 + 23 + info.rank)  # electrode subsets
        torch.manual_seed(cfg.seed * 1000 + 29 + info.rank)  # per-rank stream for anything stochastic
        self.train_step = PretrainStep(cfg, self.data, self.raw_model, fwd, opt, sched, scaler, self.mask_gen,
                                       self.device, self.subset_gen)

    def _generators(self) -> dict:
        return {"mask": self.mask_gen, "subset": self.subset_gen}

    def _saved_changes(self) -> list:
        try:
            return list(json.loads((self.run_dir / "config.json").read_text()).get("changes_on_resume", []))
        except (OSError, ValueError, AttributeError):
            return []

    def _resume(self) -> dict:
        """Restore the newest verified state; refuse a changed configuration unless allowed (then apply it)."""
        from .state import CheckpointError

        cfg, ts = self.cfg, self.train_step
        state = load_train_state(self.run_dir)
        if state is None:
            return {}
        if not _same_model_config(state.get("model_config"), self.model_cfg):
            raise CheckpointError(f"{state['_path']} was written for a different model config; pass --no-resume "
                                  "--overwrite to start over or use another --out")
        changes = check_resume_config(state["config"], cfg.to_json(), cfg.allow_change)
        self.raw_model.load_state_dict(state["model"])
        self.total_steps = int(state["total_steps"])
        # the scheduler first: building one resets the optimiser's lr, which the saved state then restores
        ts.sched = make_scheduler(ts.opt, cfg.lr, cfg.pct_start, self.total_steps)
        ts.opt.load_state_dict(state["optimizer"])
        ts.sched.load_state_dict(state["scheduler"])
        ts.scaler.load_state_dict(state["scaler"])
        self.plan.load_state_dict(state["data"])
        self.step, self.wall_offset = int(state["step"]), float(state["wall"])
        self.eeg_s_seen = float(state.get("eeg_s_seen", 0.0))
        self.best = state.get("best")
        if cfg.select == "best" and self.best and not (self.run_dir / "best").is_dir():
            # train_state/ alone would continue and then release the last step as if it were the best one
            raise CheckpointError(f"{self.run_dir / 'best'} is missing: the run's lowest-validation model so far "
                                  f"(step {self.best['step']}) is kept there, not in train_state; bring it with "
                                  "train_state when a run moves, or resume with --select last --allow-change select")
        self.calibrated = bool(state.get("calibrated"))
        if "steps" in changes:  # a new step budget: refit the one-cycle schedule to it, from where we are
            if int(cfg.steps) <= self.step:
                raise UsageError(f"--steps {cfg.steps} is not beyond the checkpoint's step {self.step}")
            self._refit_schedule(int(cfg.steps))
        rngs = state["rng"]
        restore_rng(rngs[self.info.rank] if self.info.rank < len(rngs) else rngs[0], self._generators())
        if self.info.is_main:
            print(f"resumed from {state['_path']} at step {self.step} (epoch {self.plan.epoch})", file=sys.stderr)
        return changes

    def _refit_schedule(self, total_steps: int) -> None:
        ts = self.train_step
        self.total_steps = total_steps
        ts.sched = make_scheduler(ts.opt, self.cfg.lr, self.cfg.pct_start, total_steps)
        for _ in range(self.step):  # fast-forward the new schedule to where we are
            ts.sched.step()

    # ---- checkpoint
    def checkpoint(self):
        ts = self.train_step
        rngs = D.gather_objects(capture_rng(self._generators()), self.info)
        if self.info.is_main:
            save_train_state(self.run_dir, {
                "step": self.step, "total_steps": self.total_steps, "calibrated": self.calibrated,
                "wall": self.wall_offset + time.perf_counter() - self.t_start,
                "model": self.raw_model.state_dict(), "optimizer": ts.opt.state_dict(),
                "scheduler": ts.sched.state_dict(), "scaler": ts.scaler.state_dict(),
                "data": self.plan.state_dict(), "rng": rngs, "config": self.cfg.to_json(),
                "eeg_s_seen": float(self.eeg_s_seen), "best": self.best,
                "model_config": self.model_cfg.to_dict(), "scales": [float(s) for s in self.data.scales],
            })
        D.barrier(self.info)

    # ---- time budget
    def _calibrate(self, pbar):
        """Fit the one-cycle schedule to --max-minutes, once: time steps 6..20 (after warm-up and any
        compilation), project what fits in 85 % of the budget left."""
        cfg, info = self.cfg, self.info
        per_step = D.all_reduce_mean((time.perf_counter() - self.t_warm) / (self.step - 5), info)
        left = D.all_reduce_mean(cfg.max_minutes * 60 - (time.perf_counter() - self.t_start), info)
        fit = self.step + int(0.85 * left / per_step)
        if fit < self.total_steps:
            self._refit_schedule(max(fit, self.step + 1))
            if pbar is not None:
                pbar.total = self.total_steps
            if info.is_main:
                print(f"--max-minutes {cfg.max_minutes}: schedule set to {self.total_steps} steps "
                      f"({per_step:.3f} s/step)", file=sys.stderr)
        self.calibrated = True

    # ---- the loop
    def train(self):
        cfg, info = self.cfg, self.info
        log = MetricsLog(self.run_dir, self.step, info.is_main)
        self.raw_model.train()
        self.train_step.capture_all()  # CUDA graphs (one GPU): captured before the clock starts
        self.t_start = self.t_warm = time.perf_counter()
        t_log, eeg_s_since_log = time.perf_counter(), 0.0
        pbar = progress_bar(cfg.progress and info.is_main, self.total_steps, self.step)
        last_saved, stop_reason = self.step, None
        while self.step < self.total_steps:
            d, idx = self.plan.next()
            parts, eeg_s = self.train_step(d, idx)
            self.step += 1
            step = self.step
            eeg_s_since_log += eeg_s
            self.eeg_s_seen += eeg_s * info.world_size
            if pbar is not None:
                pbar.update(1)
            if cfg.kill_at_step is not None and step == cfg.kill_at_step:
                raise SimulatedKill(f"simulated kill after step {step}")
            if step == 5:
                self.t_warm = time.perf_counter()
            if cfg.max_minutes and not self.calibrated and step == min(20, self.total_steps // 2) and step > 5:
                self._calibrate(pbar)

            val_loss = ""
            if step % cfg.val_every == 0 or step == self.total_steps:
                t_v = self._drained()
                v = self.train_step.validate() if info.is_main else 0.0
                D.barrier(info)
                val_loss = f"{v:.6f}"
                if cfg.select == "best" and info.is_main and (self.best is None or v < self.best["val_loss"]):
                    self.best = {"step": step, "val_loss": v}
                    self._save_model(self.run_dir / "best", barrier=False)
                t_log += time.perf_counter() - t_v  # throughput counts training only
            if step % cfg.log_every == 0 or val_loss or step == self.total_steps:
                parts = {k: float(v) for k, v in parts.items()}  # the loop's only regular host sync
                now = time.perf_counter()
                rate = D.all_reduce_mean(eeg_s_since_log / max(now - t_log, 1e-9), info) * info.world_size
                if pbar is not None:
                    pbar.set_postfix(loss=f"{parts['loss']:.4f}")
                log.write({"step": step, "epoch": self.plan.epoch,
                           "lr": f"{self.train_step.sched.get_last_lr()[0]:.6e}",
                           "loss": f"{D.all_reduce_mean(parts['loss'], info):.6f}", "l1": f"{parts['l1']:.6f}",
                           "spectral": f"{parts['spectral']:.6f}", "eeg_s_per_s": f"{rate:.1f}",
                           "wall": f"{self.wall_offset + now - self.t_start:.2f}", "val_loss": val_loss,
                           "eeg_hours": f"{self.eeg_s_seen / 3600:.4f}"})
                t_log, eeg_s_since_log = now, 0.0
            if step % cfg.ckpt_every == 0:
                t_c = self._drained()
                self.checkpoint()
                last_saved = step
                t_log += time.perf_counter() - t_c
            if cfg.keep_every and step % cfg.keep_every == 0:
                t_c = self._drained()
                self._save_model(self.run_dir / "snapshots" / f"step_{step:06d}")
                t_log += time.perf_counter() - t_c
            limit = min(m for m in (cfg.max_minutes, cfg.stop_after_minutes, float("inf")) if m)
            if limit < float("inf"):
                over = (time.perf_counter() - self.t_start) > limit * 60  # this invocation's time
                if D.all_reduce_mean(float(over), info) > 0:
                    stop_reason = f"time budget of {limit:g} min reached at step {step}/{self.total_steps}"
                    break
        if pbar is not None:
            pbar.close()
        if last_saved != self.step:
            self.checkpoint()
        if stop_reason and info.is_main:
            print("stopped: " + stop_reason, file=sys.stderr)
        log.close()
        return self._release(), self.raw_model

    def _drained(self) -> float:
        """The time once the GPU has run every step queued so far. Validation and checkpoints are left out of the
        logged throughput; timed from here, the queued training work they would wait for is not left out with them
        (it once made the rows at validation steps read 25 % fast)."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def _release(self) -> Path:
        """``samba_pretrained``: the lowest-validation-loss model (select="best") or the last one."""
        from samba.checkpoint import load_model, save_model

        if self.cfg.select != "best" or self.best is None or not (self.run_dir / "best").is_dir():
            return self._save_model()
        path = self.run_dir / MODEL_FILE
        if self.info.is_main:
            model, extra = load_model(self.run_dir / "best")
            extra["selected"] = {**self.best, "by": "lowest validation loss", "last_step": self.step,
                                 "last_eeg_hours_seen": self.eeg_s_seen / 3600}
            save_model(path, model, extra=extra)
        D.barrier(self.info)
        return path

    def _save_model(self, path: Path | None = None, barrier: bool = True) -> Path:
        """The model checkpoint folder (default: ``samba_pretrained``; snapshots: ``snapshots/step_XXXXXX``)."""
        from samba.checkpoint import save_model

        cfg, info, path = self.cfg, self.info, path or self.run_dir / MODEL_FILE
        if info.is_main:
            save_model(path, self.raw_model, extra={
                "kind": "pretrained", "step": self.step, "total_steps": self.total_steps, "mask": cfg.mask,
                "mask_ratio": cfg.mask_ratio, "window_s": cfg.window_s, "sfreq": cfg.sfreq,
                "profile": cfg.profile, "seed": cfg.seed, "world_size": info.world_size,
                "n_train_windows": self.data.n_train_windows, "eeg_hours_seen": self.eeg_s_seen / 3600,
                "devices": [str(getattr(d, "device", "?")) for d in self.data.datasets],
                "input_scales": [float(s) for s in self.data.scales], "augment": cfg.augment,
                "validation": ([name for name, _, _ in self.data.val_recordings] if self.data.val_recordings
                               else "held-back windows of the training recordings"),
                **({"val_loss": self.best["val_loss"]} if path.name == "best" and self.best else {}),
            })
        if barrier:
            D.barrier(info)
        return path
