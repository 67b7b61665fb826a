"""Fine-tuning, linear probing and evaluation on one downstream task.

One loop (``fit_classifier``) for every model (SAMBA pretrained / random init, EEGNet, ShallowFBCSPNet) so
``samba finetune``, ``samba evaluate`` and ``samba.evaluation.run`` use the same windows, loss and schedule:

* class-balanced cross-entropy (weights n / (K * n_k) from the training labels),
* AdamW + cosine decay over a fixed number of epochs (no early stopping: a validation set of a handful
  of trials cannot choose an epoch; the validation score is only logged),
* test metrics: balanced accuracy, AUROC, Cohen's kappa, macro F1 (samba.train.metrics).

Linear probe (`mode="probe"`): the SAMBA encoder is frozen; its pooled features are computed once
for all windows and only LayerNorm + Linear are trained on them (fast, and exactly a probe).

A fine-tuned run folder holds:
    finetuned.safetensors + finetuned.json + manifest.json   weights; model name, constructor kwargs, task, ...
    samba_encoder/        SAMBA models only: samba.checkpoint.save_model(encoder, extra={"head": ...})
    spatial_weights.npz   SAMBA models only: CDSE weights (epochs, O, C) recorded every epoch
    result.json           the test metrics line
"""

from __future__ import annotations

import json
import math
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from samba.errors import InputError, UsageError
from samba.paths import check_writable_dir

from .baselines import build_model
from .checks import check_positive
from .metrics import classification_metrics

FINETUNED_FILE = "finetuned.safetensors"
FORMAT = "samba-finetuned"

PROFILES = {
    # CPU smoke runs: a few epochs on a capped number of windows.
    "quick": dict(epochs=2, batch_size=16, patience=2, probe_epochs=60, max_train_windows=64,
                  max_eval_windows=64),  # max_eval_windows caps validation (monitoring) only, never test
    "full": dict(epochs=20, batch_size=64, patience=8, probe_epochs=200, max_train_windows=None,
                 max_eval_windows=None),
}
LR = {"samba": 3e-4, "eegnet": 1e-3, "shallow": 6.25e-4, "probe": 3e-3}
WEIGHT_DECAY = 1e-2
# A small training split trains in smaller batches so that every epoch makes at least this many optimizer steps
# (never below MIN_BATCH windows). At batch 64, the 88 training windows of an eyes-open-closed fold gave 2 steps an
# epoch: EEGNet's 30 epochs were 60 steps and it stayed at chance (balanced accuracy 0.50, 6 folds), while batch 8
# reached 0.96 on the same folds (CPU, seed 0).
MIN_STEPS_PER_EPOCH = 8
MIN_BATCH = 8


def batch_for(n_train: int, batch_size: int) -> int:
    """The batch a training split of ``n_train`` windows trains at: ``batch_size`` at most, smaller for a small split
    (at least MIN_STEPS_PER_EPOCH steps an epoch), never below MIN_BATCH."""
    return int(max(1, min(batch_size, max(MIN_BATCH, n_train // MIN_STEPS_PER_EPOCH))))


def parse_subjects(text: str | None) -> list[int] | None:
    """'20-35' -> [20..35]; '1,3' -> [1, 3]; '1-3,7' -> [1, 2, 3, 7]; None/'' -> None."""
    if text is None or str(text).strip() == "":
        return None
    out: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        if not re.fullmatch(r"\d+(-\d+)?", part):
            raise UsageError(f"cannot read subjects {text!r}; write e.g. 20-35 or 1,3")
        if "-" in part:
            a, b = part.split("-", 1)
            a, b = int(a), int(b)
            if b < a:
                raise UsageError(f"bad subject range {part!r}: write the smaller number first, e.g. 20-35")
            out.extend(range(a, b + 1))
        else:
            out.append(int(part))
    return sorted(set(out))


def _load_task(task, mirror, profile, subjects=None, data=None, labels=None, window_s=None):
    """The one place fine-tuning and evaluation load data: a built-in task, ``PREFIX:ARG`` (``tuab:PATH``,
    ``moabb:NAME``, ``stew:PATH``, ``dreamer:PATH``) or the user's ``data`` with ``labels``."""
    from samba.data.sources import load_any_task

    return load_any_task(task, data=data, labels=labels, mirror=mirror, profile=profile, subjects=subjects,
                         window_s=window_s)


def _split(ds, seed):
    """Train / val / test indices; built-in tasks keep their fixed protocol, other data say their rule."""
    from samba.data.sources import split_any

    return split_any(ds, seed=seed)


def _cap(idx, y, n, rng):
    """At most n indices, stratified by label (keeps every class present)."""
    if n is None or len(idx) <= n:
        return np.sort(idx)
    keep = []
    classes = np.unique(y[idx])
    per = max(1, n // len(classes))
    for k in classes:
        ik = idx[y[idx] == k]
        keep.append(rng.choice(ik, size=min(per, len(ik)), replace=False))
    return np.sort(np.concatenate(keep))


def _robust_scale(X, idx, rng, n=256) -> float:
    sel = np.sort(rng.choice(idx, size=min(n, len(idx)), replace=False))
    sample = np.asarray(X[sel], np.float64)
    s = float(np.median(np.abs(sample - np.median(sample, axis=-1, keepdims=True)))) * 1.4826
    return 1.0 / s if s > 0 and np.isfinite(s) else 1.0


def _subjects_of(ds, idx) -> list:
    meta = getattr(ds, "meta", None)
    if meta is None or "subject" not in getattr(meta, "columns", []):
        return []
    vals = sorted(set(meta["subject"].to_numpy()[idx].tolist()))
    return [int(v) if isinstance(v, (int, np.integer)) or str(v).isdigit() else str(v) for v in vals]


def _check_model_options(model: str, mode: str, init) -> str | None:
    """The pretrained checkpoint path (None from scratch), once ``model``, ``mode`` and ``init`` fit together."""
    if mode not in ("full", "probe"):
        raise UsageError(f"mode must be 'full' or 'probe', got {mode!r}")
    if mode == "probe" and model != "samba":
        raise UsageError("linear probing (--mode probe) is defined for SAMBA's frozen encoder only; use --model samba")
    pretrained = None if init in (None, "", "scratch") else str(init)
    if pretrained and model != "samba":
        raise UsageError("--init CKPT applies to --model samba only; leave it out (or --init scratch) for other models")
    return pretrained


def _files_of(ds) -> list[dict]:
    """The recordings the windows of ``ds`` come from: ``{"name", "sha256"}`` each, sorted by name."""
    meta = getattr(ds, "meta", None)
    if meta is None or "file" not in getattr(meta, "columns", []):
        return []
    sha = meta["file_sha256"] if "file_sha256" in meta.columns else meta["file"]
    return [{"name": n, "sha256": h} for n, h in sorted({(str(n), str(h)) for n, h in zip(meta["file"], sha)})]


def _windows_to_score(ds, obj, task) -> np.ndarray:
    """Indices ``evaluate`` scores on the user's recordings.

    Recordings fine-tuning never saw are scored whole. The recordings it was fine-tuned on are scored on their
    test split only, which is reproducible only for the same set of recordings; a part of that set, or a mix
    with new ones, is refused rather than guessed. Recordings are told apart by content (sha256), not by name.
    A model saved without its recordings (older outputs) is scored on the test split.
    """
    saved = obj.get("data_files") or []
    if saved and not isinstance(saved[0], dict):  # an older output saved file names only
        saved = [{"name": n, "sha256": None} for n in saved]
    key = "sha256" if saved and saved[0]["sha256"] else "name"
    trained = {f[key] for f in saved}
    files = {f[key] for f in _files_of(ds)}
    if not trained or files == trained:
        return test_indices(ds, obj.get("split_seed", 0))
    if not files & trained:
        return np.arange(len(ds.y))
    names = ", ".join(sorted(f["name"] for f in saved))
    if files < trained:
        raise UsageError(f"{task}: these are some of the recordings the model was fine-tuned on ({names}); pass "
                         "all of them (their test split is scored) or only recordings it never saw")
    raise UsageError(f"{task}: evaluate either the recordings the model was fine-tuned on (their test split is "
                     f"scored) or recordings it never saw (every window is scored), not a mix; it was fine-tuned "
                     f"on {names}")


def _device(device):
    from samba.devices import resolve_device

    return resolve_device(device)  # "gpu", or cuda without CUDA: one clear error


def _autocast(device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


@torch.no_grad()
def _batched(fn, model, X, idx, device, batch_size=64) -> list[torch.Tensor]:
    """``fn(xb)`` over ``X[idx]`` in eval mode, batch by batch, as float tensors."""
    model.eval()
    out = []
    for s in range(0, len(idx), batch_size):
        xb = torch.from_numpy(np.asarray(X[idx[s:s + batch_size]], np.float32)).to(device)
        with _autocast(device):
            out.append(fn(xb).float())
    return out


def predict(model, X, idx, device, batch_size=64) -> np.ndarray:
    """Logits (len(idx), K) in eval mode."""
    out = _batched(model, model, X, idx, device, batch_size)
    return torch.cat(out).cpu().numpy() if out else np.zeros((0, 1))


def _features(model, X, idx, device, batch_size=64) -> torch.Tensor:
    return torch.cat(_batched(model.features, model, X, idx, device, batch_size))


def _class_weights(y, n_classes, device):
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    w = len(y) / (n_classes * np.maximum(counts, 1))
    return torch.tensor(w, dtype=torch.float32, device=device)


def fit_classifier(ds, train_idx, *, model: str = "samba", mode: str = "full", init: str | None = None,
                   seed: int = 0, epochs: int = 10, batch_size: int = 64, lr: float | None = None,
                   pooling: str = "quantile", device=None, samba_config=None, val_idx=None,
                   progress: bool = False, record_spatial: bool = False, time_budget_s: float | None = None):
    """Train ``model`` on ``ds.X[train_idx]`` for exactly ``epochs`` epochs; returns (net, kwargs, info).

    Fixed epochs, no early stopping: with a handful of trials a validation set is too small to stop on
    (``val_idx``, if given, is only scored into ``info["history"]``). ``batch_size`` is the largest batch: a small
    split trains at :func:`batch_for` (``info["batch_size"]``), so an epoch is never just one or two steps.
    ``mode="probe"`` freezes the SAMBA encoder,
    computes its pooled features once and trains only the head on them.
    """
    pretrained = _check_model_options(model, mode, init)
    dev = _device(device)
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    np.random.seed(seed)
    rng = np.random.default_rng(seed)
    tr = np.sort(np.asarray(train_idx))
    y = np.asarray(ds.y, np.int64)
    class_names = list(getattr(ds, "class_names", [])) or [str(k) for k in range(int(y.max()) + 1)]
    K = max(len(class_names), int(y.max()) + 1)
    _, C, T = ds.X.shape
    kwargs = dict(n_chans=int(C), n_outputs=int(K), n_times=int(T), sfreq=float(ds.sfreq),
                  positions=np.asarray(ds.positions, np.float32).tolist(), ch_names=list(ds.ch_names),
                  pooling=pooling, freeze_encoder=(mode == "probe"), input_scale=_robust_scale(ds.X, tr, rng))
    torch.manual_seed(seed)
    net = build_model(model, pretrained=pretrained, samba_config=samba_config, **kwargs).to(dev)
    if mode != "probe":  # a batch size that cannot train (batch norm needs >= 2 windows) is an error
        from .checks import check_batch_size
        batch_size = batch_for(len(tr), batch_size)
        check_batch_size(batch_size, len(tr), batch_norm=True,
                         what=f"task {getattr(ds, 'task', '?')}'s training split")
    cw = _class_weights(y[tr], K, dev)
    gen = torch.Generator().manual_seed(seed)
    spatial, history = [], []

    def record():
        if record_spatial and model == "samba":
            with torch.no_grad():
                spatial.append(net.spatial_weights().float().cpu().numpy())

    def score(scores_fn):
        if val_idx is None or len(val_idx) == 0:
            return None
        return classification_metrics(y[val_idx], scores_fn(), K)["balanced_accuracy"]

    record()  # epoch 0 = the initial (pretrained or random) map
    if mode == "probe":  # frozen encoder: features once, then LayerNorm + Linear on them
        ftr = _features(net, ds.X, tr, dev)
        fva = _features(net, ds.X, np.asarray(val_idx), dev) if val_idx is not None and len(val_idx) else None
        head = net.head
        opt = torch.optim.AdamW(head.parameters(), lr=lr or LR["probe"], weight_decay=WEIGHT_DECAY)
        ytr = torch.from_numpy(y[tr]).to(dev)
        bs = max(batch_size, 64)
        for ep in range(1, epochs + 1):
            head.train()
            perm = torch.randperm(len(tr), generator=gen).to(dev)
            for s in range(0, len(tr), bs):
                b = perm[s:s + bs]
                loss = F.cross_entropy(head(ftr[b]), ytr[b], weight=cw)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            head.eval()
            with torch.no_grad():
                val = score(lambda: head(fva).float().cpu().numpy()) if fva is not None else None
            history.append({"epoch": ep, "loss": loss.item(), "val_balanced_accuracy": val})
    else:
        params = [p for p in net.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=lr or LR[model], weight_decay=WEIGHT_DECAY)
        steps_per_epoch = max(1, math.ceil(len(tr) / batch_size))
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps_per_epoch)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=epochs, desc=f"finetune {ds.task} {model}", file=sys.stderr)
        for ep in range(1, epochs + 1):
            net.train()
            perm = tr[torch.randperm(len(tr), generator=gen).numpy()]
            losses = []
            for s in range(0, len(perm), batch_size):
                b = np.sort(perm[s:s + batch_size])
                if len(b) < 2 and len(perm) > 1:
                    continue  # a batch of one breaks batch-norm in the baselines
                xb = torch.from_numpy(np.asarray(ds.X[b], np.float32)).to(dev)  # (B, C, T)
                yb = torch.from_numpy(y[b]).to(dev)
                with _autocast(dev):
                    logits = net(xb)  # (B, K)
                loss = F.cross_entropy(logits.float(), yb, weight=cw)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                sched.step()
                losses.append(loss.item())
            record()
            val = score(lambda: predict(net, ds.X, np.asarray(val_idx), dev))
            history.append({"epoch": ep, "loss": float(np.mean(losses)) if losses else float("nan"),
                            "val_balanced_accuracy": val})
            if bar is not None:
                bar.update(1)
            if time_budget_s and time.perf_counter() - t0 > time_budget_s:
                break
        if bar is not None:
            bar.close()
    info = {"epochs": len(history), "history": history, "spatial": spatial, "n_train": int(len(tr)),
            "batch_size": int(batch_size),
            "train_s": round(time.perf_counter() - t0, 2), "class_names": class_names, "K": K,
            "pretrained": pretrained}
    return net, kwargs, info


def test_indices(ds, split_seed: int = 0) -> np.ndarray:
    """The test windows of ``split_task(ds, split_seed)``: one function, so ``finetune`` and ``evaluate`` count
    the same windows for the same split (no cap: evaluation is cheap)."""
    return np.sort(np.asarray(_split(ds, split_seed)["test"]))


def finetune(task: str, init: str = "scratch", out: str | None = None, profile: str = "quick",
             mode: str = "full", model: str = "samba", seed: int = 0, epochs: int | None = None,
             mirror: str | None = None, pooling: str = "quantile", batch_size: int | None = None,
             lr: float | None = None, patience: int | None = None, device: str | None = None,
             dataset=None, split: dict | None = None, record_spatial: bool = True,
             max_train_windows: int | None = None, progress: bool = False, samba_config=None,
             time_budget_s: float | None = None, data=None, labels=None, window_s: float | None = None) -> dict:
    """Fine-tune (or probe) `model` on `task`'s one-run split; returns the test-metrics dict (also written to `out`).

    `init`: path of a pretrained SAMBA checkpoint, or "scratch". `dataset` / `split` let callers load a task
    once. Training runs a fixed number of epochs (``patience`` is accepted and ignored, for old callers).
    """
    if profile not in PROFILES:
        raise UsageError(f"unknown profile {profile!r}; choose one of {sorted(PROFILES)}")
    P = dict(PROFILES[profile])
    # None means "the profile's"; anything else is checked, never silently replaced (0 epochs is not a default).
    for name, value, minimum in (("epochs", epochs, 1), ("batch_size", batch_size, 1), ("lr", lr, 1e-12),
                                 ("window_s", window_s, 1e-3)):
        check_positive(name, value, minimum=minimum)
    epochs = (P["probe_epochs"] if mode == "probe" else P["epochs"]) if epochs is None else int(epochs)
    batch_size = P["batch_size"] if batch_size is None else int(batch_size)
    _check_model_options(model, mode, init)
    _device(device)  # an unknown or absent device fails here, before the data load
    if out is not None:
        check_writable_dir(out, create=False)  # before any data is loaded or anything trained; creates nothing
    max_train = max_train_windows if max_train_windows is not None else P["max_train_windows"]
    rng = np.random.default_rng(seed)
    ds = dataset if dataset is not None else _load_task(task, mirror, profile, data=data, labels=labels,
                                                        window_s=window_s)
    if task is None:  # the user's own recordings
        task = f"user:{Path(data).name}" if data is not None else getattr(ds, "task", "user")
    sp = split if split is not None else _split(ds, seed)
    y = np.asarray(ds.y, np.int64)
    tr = _cap(np.asarray(sp["train"]), y, max_train, rng)
    va = _cap(np.asarray(sp["val"]), y, P["max_eval_windows"], rng)
    te = np.sort(np.asarray(sp["test"]))  # never capped: `evaluate` scores the same windows
    if len(tr) == 0 or len(te) == 0:
        raise InputError(f"task {task}: too few windows to split into training and test (train={len(tr)}, "
                         f"test={len(te)}); give more or longer recordings, or a shorter --window-s")
    net, kwargs, info = fit_classifier(
        ds, tr, model=model, mode=mode, init=init, seed=seed, epochs=epochs, batch_size=batch_size,
        lr=lr, pooling=pooling, device=device, samba_config=samba_config, val_idx=va, progress=progress,
        record_spatial=record_spatial, time_budget_s=time_budget_s)
    dev = _device(device)
    metrics = classification_metrics(y[te], predict(net, ds.X, te, dev), info["K"])
    result = {
        "task": task, "model": model, "mode": mode, "init": "pretrained" if info["pretrained"] else "scratch",
        "seed": seed, **metrics,
        "n_train": int(len(tr)), "n_val": int(len(va)), "n_test": int(len(te)),
        "subjects": _subjects_of(ds, te), "epochs_run": info["epochs"],
        "train_s": info["train_s"], "device": _device_name(dev), "profile": profile, "stopped": "epochs",
    }
    if getattr(sp, "rule", None):
        result["split"] = sp.rule
    if out is not None:
        _save(Path(out), net, model, kwargs, ds, task, info["class_names"], seed, result, info["history"],
              info["spatial"], samba_config=samba_config)
    return result


def _device_name(dev) -> str:
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return "cpu"


def _save(out: Path, net, model, kwargs, ds, task, class_names, seed, result, history, spatial,
          samba_config=None):
    from samba.checkpoint import save_finetuned, save_model

    out.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    obj = {"format": FORMAT, "version": 1, "model": model, "kwargs": kwargs, "state_dict": sd,
           "task": task, "class_names": [str(c) for c in class_names], "split_seed": seed,
           "profile": result["profile"],
           "test_metrics": {k: v for k, v in result.items() if isinstance(v, (int, float, str))},
           "history": history}
    if str(task).startswith("user:"):  # which recordings fine-tuning split, so `evaluate` knows what is new
        obj["data_files"] = _files_of(ds)
    if model == "samba":
        obj["samba_config"] = net.samba.cfg.to_dict()
        head = {k: v.detach().cpu() for k, v in net.head.state_dict().items()}
        save_model(out / "samba_encoder.pt", net.samba, extra={
            "kind": "finetuned", "task": task, "head": head, "pooling": kwargs["pooling"],
            "ch_names": list(kwargs["ch_names"]), "input_scale": float(kwargs["input_scale"]),
            "class_names": obj["class_names"]})
        if spatial:
            from samba import montage

            np.savez_compressed(out / "spatial_weights.npz", weights=np.stack(spatial),
                                epochs=np.arange(len(spatial)), ch_names=np.array(kwargs["ch_names"]),
                                positions=np.asarray(kwargs["positions"], np.float32),
                                target_channels=np.array(net.samba.target_channels),
                                target_positions=montage.positions(list(net.samba.target_channels)))
    save_finetuned(out, obj.pop("state_dict"), obj)  # safetensors + JSON + manifest (samba.checkpoint)
    (out / "result.json").write_text(json.dumps(result) + "\n")


def load_finetuned(path, map_location="cpu"):
    """(model, obj) from a fine-tuned run folder (or a file in it), verified against its manifest."""
    from samba.checkpoint import load_finetuned_state

    state_dict, obj = load_finetuned_state(path, map_location)  # verified; runs no code
    obj["state_dict"] = state_dict
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise InputError(f"{path} is not a `samba finetune` output (format={obj.get('format')!r}); pass the --out "
                         "folder of a `samba finetune` run")
    kw = dict(obj["kwargs"])
    from samba.model import SAMBAConfig

    try:
        cfg = SAMBAConfig.from_dict(obj["samba_config"]) if obj.get("samba_config") else None
    except (TypeError, ValueError) as err:
        raise InputError(f"{path}: its samba_config cannot build a SAMBA model ({err})") from None
    net = build_model(obj["model"], samba_config=cfg, **kw)
    net.load_state_dict(obj["state_dict"])
    return net, obj


def evaluate(model_dir, task: str | None, subjects=None, mirror: str | None = None, device: str | None = None,
             profile: str | None = None, data=None, labels=None) -> dict:
    """Evaluate a fine-tuned model on the task's test split, or on all windows of `subjects`.

    `profile` selects which files of the task are loaded (default: the one the model was trained with,
    so the test split is the same one).
    """
    dev = _device(device)
    net, obj = load_finetuned(model_dir)
    profile = profile or obj.get("profile", "full")
    net.to(dev)
    if isinstance(subjects, str):
        subjects = parse_subjects(subjects)
    window_s = obj["kwargs"]["n_times"] / obj["kwargs"]["sfreq"] if data is not None else None
    ds = _load_task(task, mirror, profile, subjects=subjects, data=data, labels=labels, window_s=window_s)
    if task is None:
        task = f"user:{Path(data).name}"
    if subjects:
        idx = np.arange(len(ds.y))
    elif data is not None:
        idx = _windows_to_score(ds, obj, task)
    else:
        idx = test_indices(ds, obj.get("split_seed", 0))
    if len(idx) == 0:
        raise InputError(f"no windows to evaluate for task {task} (subjects={subjects})")
    if ds.X.shape[1] != obj["kwargs"]["n_chans"] or ds.X.shape[2] != obj["kwargs"]["n_times"]:
        raise InputError(f"{task}: its windows are {ds.X.shape[1]} channels x {ds.X.shape[2]} samples, but the "
                         f"model was fine-tuned on {obj['kwargs']['n_chans']} x {obj['kwargs']['n_times']}; "
                         "evaluate it on recordings of the same montage (or fine-tune a model on this one)")
    y = np.asarray(ds.y, np.int64)
    from .checks import check_task_fits_model
    check_task_fits_model(obj, getattr(ds, "class_names", None), y, task, model_dir)
    K = obj["kwargs"]["n_outputs"]
    m = classification_metrics(y[idx], predict(net, ds.X, idx, dev), K)
    return {"task": task, "balanced_accuracy": m["balanced_accuracy"], "auroc": m["auroc"],
            "n_windows": int(len(idx)), "subjects": _subjects_of(ds, idx)}
