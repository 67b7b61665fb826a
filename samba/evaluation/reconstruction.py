"""Does pretraining learn? Masked-sample L1 on held-out recordings against three baselines, same code, same masks.

    python -m samba.evaluation.reconstruction --model CKPT --out results/pretraining.json [--snapshots RUN_DIR]

Baselines (each scored on exactly the masked samples of the same seeded TSR masks):
    zeros          predict 0 (the recordings are median-removed and IQR-scaled, so 0 is the median)
    interpolation  straight line across each masked span between the visible samples on either side
                   (a span touching the window edge holds the nearest visible sample)
    random_init    the same architecture at random initialisation (seeded), fed the same masked input

A checkpoint that does not beat interpolation has not learned anything a line could not do. The gaps are long
(about 200 samples), so a line does worse than zeros, and beating both says little on its own. A fourth predictor
(``classical_reference``, a key of its own so ``masked_l1`` keeps the three baselines) is the best *linear* guess of
each gap from the visible samples around it: the conditional mean under an AR model of EEG fitted on the
pretraining corpus (``samba.evaluation.gap_smoother``). What the checkpoint gains over it is what it learned beyond
the power spectrum. Its ``left_edge_only`` twin is the same model given only the samples before each gap: SAMBA's
Mamba layers scan forwards in time and only its convolutions and poolings look a few samples ahead, so inside a
long gap it has, in effect, the left edge alone.

``seen_recordings`` gives the checkpoint's, zeros' and random init's scores on the first windows of every corpus
recording, which pretraining trained on (``--seen-windows``, default 4 each), and the corpus's hours of distinct
EEG. A checkpoint much better than zeros there and barely better on held-out recordings learned its corpus, not EEG.

``curve`` scores a series of snapshots (``RUN/snapshots/step_XXXXXX/`` folders or ``.pt`` files, anything
``samba.checkpoint.load_model`` reads) against the EEG hours each had seen. Both also give each recording's own
mean (``per_recording``) and each device's (``per_device``): the recordings come from different devices, and a
pooled mean can hide one that improves and one that gets worse.

Intervals: 95 % paired bootstrap intervals of the checkpoint's error minus a baseline's. Windows of one
recording are not independent, nor are recordings of one person's session (same person, same day, same
electrodes), so the bootstrap resamples whole sessions (a cluster bootstrap: ``session_of``) whenever there are
at least five; with fewer it resamples windows, which understates the uncertainty, and the file says which
(``resampled``).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import re
import sys
from pathlib import Path

import numpy as np
import torch

from samba.masking import tsr_mask


def masks_for(n: int, length: int, seed: int, ratio: float = 0.5) -> torch.Tensor:
    """(n, length) bool, True = visible: the seeded TSR masks every predictor is scored on."""
    return tsr_mask(n, length, ratio=ratio, generator=torch.Generator().manual_seed(seed))


def interpolate(x: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    """Linear interpolation across masked spans. x (B, C, T), visible (B, T) -> (B, C, T)."""
    B, C, T = x.shape
    out = x.clone()
    t = np.arange(T)
    for b in range(B):
        vis = np.flatnonzero(visible[b].cpu().numpy())
        if len(vis) == 0:
            out[b] = 0.0
            continue
        xb = x[b].cpu().numpy()  # (C, T)
        out[b] = torch.from_numpy(np.stack([np.interp(t, vis, xb[c, vis]) for c in range(C)]).astype(np.float32))
    return out


def masked_l1(pred: torch.Tensor, x: torch.Tensor, visible: torch.Tensor) -> float:
    """Mean |pred - x| over masked samples (all channels)."""
    hidden = (~visible)[:, None, :].expand_as(x)
    return float((pred - x).abs()[hidden].mean())


@torch.no_grad()
def model_predict(model, X: np.ndarray, positions: np.ndarray, visible: torch.Tensor, batch: int = 32) -> torch.Tensor:
    model.eval()
    dev = next(model.parameters()).device
    coords = torch.from_numpy(positions).to(dev)
    out = []
    for s in range(0, len(X), batch):
        xb = torch.from_numpy(X[s:s + batch]).to(dev)  # (B, C, T)
        vb = visible[s:s + batch].to(dev)
        out.append(model(xb * vb[:, None, :], coords).float().cpu())  # (B, C, T)
    return torch.cat(out)


def per_window(windows, predictors: dict, seed: int = 0) -> dict[str, np.ndarray]:
    """{predictor: masked L1 of every held-out window} on the same seeded masks; ``predictors`` map
    name -> fn(X, pos, visible)."""
    out = {k: [] for k in predictors}
    for i, (_, X, pos) in enumerate(windows):
        visible = masks_for(len(X), X.shape[-1], seed + i)
        x = torch.from_numpy(X)
        hidden = (~visible)[:, None, :].expand_as(x)  # (N, C, T)
        for name, fn in predictors.items():
            err = (fn(X, pos, visible) - x).abs() * hidden
            out[name].append((err.sum(dim=(1, 2)) / hidden.sum(dim=(1, 2))).numpy())  # (N,)
    return {k: np.concatenate(v) for k, v in out.items()}


def score(windows, predictors: dict, seed: int = 0) -> dict[str, float]:
    """{predictor: masked L1 averaged over all held-out windows}."""
    return {k: float(v.mean()) for k, v in per_window(windows, predictors, seed).items()}


def session_of(name: str) -> tuple:
    """``(dataset, subject, session)`` of a ``dataset/registry path`` recording (the name itself if the registry
    does not list it): the unit that the bootstrap resamples."""
    from samba.data import recordings, registry

    dataset, _, path = name.partition("/")
    if dataset in registry.load_registry()["datasets"]:
        for f, fid in recordings.recording_files(dataset):
            if f.path == path:
                return (dataset, fid.subject, fid.session)
    return (name,)


def session_index(windows) -> np.ndarray:
    """One session index per window (``session_of``), in ``per_window``'s order."""
    keys = [session_of(name) for name, _, _ in windows]
    ids = {k: i for i, k in enumerate(dict.fromkeys(keys))}
    return np.concatenate([np.full(len(X), ids[k]) for k, (_, X, _) in zip(keys, windows)])


def device_of(name: str) -> str:
    """The dataset (one device each) of a ``dataset/path`` recording name."""
    return name.split("/", 1)[0]


def by_device(windows, errs: dict[str, np.ndarray], ref: str | None = "checkpoint") -> dict[str, dict]:
    """Per dataset: recordings, sessions, windows, mean masked L1 of every predictor, and ``ref`` minus each other
    one (None: no differences)."""
    devices = np.concatenate([np.full(len(X), device_of(name)) for name, X, _ in windows])
    groups = session_index(windows)
    out = {}
    for dev in dict.fromkeys(device_of(name) for name, _, _ in windows):
        sel = devices == dev
        out[dev] = {"n_recordings": sum(device_of(name) == dev for name, _, _ in windows),
                    "n_sessions": int(len(np.unique(groups[sel]))), "n_windows": int(sel.sum()),
                    "masked_l1": {k: float(v[sel].mean()) for k, v in errs.items()}}
        if ref is not None:
            out[dev][f"{ref}_minus"] = {k: paired_difference(errs[ref][sel], errs[k][sel], groups[sel])
                                        for k in errs if k != ref}
    return out


def by_recording(windows, errs: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """{recording: {predictor: mean masked L1 over that recording's windows}} from ``per_window``'s arrays."""
    out, start = {}, 0
    for name, X, _ in windows:
        out[name] = {k: float(v[start:start + len(X)].mean()) for k, v in errs.items()}
        start += len(X)
    return out


MIN_CLUSTERS = 5  # sessions needed to resample sessions rather than windows


def paired_difference(a: np.ndarray, b: np.ndarray, groups: np.ndarray | None = None, n_boot: int = 10_000,
                      seed: int = 0) -> dict:
    """Mean of a - b over windows with a 95 % bootstrap interval; a and b are paired per window.

    ``groups`` (one session index per window): with at least ``MIN_CLUSTERS`` sessions the bootstrap resamples
    sessions, each with all its windows (the mean stays the mean over windows); otherwise windows."""
    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    rng = np.random.default_rng(seed)
    labels = np.unique(groups) if groups is not None else np.array([])
    if len(labels) >= MIN_CLUSTERS:
        sums = np.array([d[groups == g].sum() for g in labels])  # (G,)
        counts = np.array([(groups == g).sum() for g in labels])  # (G,)
        pick = rng.integers(0, len(labels), size=(n_boot, len(labels)))  # (n_boot, G)
        boots = sums[pick].sum(axis=1) / counts[pick].sum(axis=1)
        how = f"sessions ({len(labels)})"
    else:
        boots = d[rng.integers(0, len(d), size=(n_boot, len(d)))].mean(axis=1)
        how = f"windows ({len(d)}; fewer than {MIN_CLUSTERS} sessions)"
    return {"mean": float(d.mean()), "ci95": [float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))],
            "n_windows": int(len(d)), "fraction_of_windows_better": float((d < 0).mean()), "resampled": how}


def baselines() -> dict:
    return {"zeros": lambda X, pos, vis: torch.zeros(X.shape),
            "interpolation": lambda X, pos, vis: interpolate(torch.from_numpy(X), vis)}


CLASSICAL = "classical_reference"  # its own top-level key: masked_l1 keeps exactly the three baselines
LEFT = "classical_reference_left"  # scored alongside, reported inside classical_reference
AGAINST = "against"  # a second checkpoint on the same masks (--against), its own top-level key
SEEN = "seen_recordings"  # the corpus recordings it trained on (--seen-windows), its own top-level key


def evaluate_checkpoint(path, windows, seed: int = 0, device: str = "cpu", reference=None,
                        reference_fit: dict | None = None, against=None, seen=None) -> dict:
    """masked_l1 of the checkpoint, zeros, interpolation and the same config at random init; with ``reference``
    (a fitted ``gap_smoother.GapSmoother``) also ``classical_reference``, scored on the same masks; with
    ``against`` (another checkpoint, e.g. another architecture or schedule) also ``against``: its masked L1 and
    the checkpoint's paired difference to it, on the same windows and masks; with ``seen`` (windows of recordings
    pretraining trained on) also ``seen_recordings`` (`seen_score`, the same predictors but interpolation)."""
    from samba.checkpoint import load_model
    from samba.model import SAMBA

    model, extra = load_model(path, map_location="cpu")
    torch.manual_seed(seed)
    random = SAMBA(model.cfg)
    model.to(device), random.to(device)
    preds = {"checkpoint": lambda X, pos, vis: model_predict(model, X, pos, vis),
             **baselines(),
             "random_init": lambda X, pos, vis: model_predict(random, X, pos, vis)}
    if reference is not None:
        left = reference.left_only()
        preds[CLASSICAL] = lambda X, pos, vis: reference(X, vis)
        preds[LEFT] = lambda X, pos, vis: left(X, vis)
    if against is not None:
        other, other_extra = load_model(against, map_location="cpu")
        other.to(device)
        preds[AGAINST] = lambda X, pos, vis: model_predict(other, X, pos, vis)
    errs = per_window(windows, preds, seed)
    classical, left_errs = errs.pop(CLASSICAL, None), errs.pop(LEFT, None)
    other_errs = errs.pop(AGAINST, None)
    groups = session_index(windows)
    out = {"model": describe_model(path, model, extra),
           "masked_l1": {k: float(v.mean()) for k, v in errs.items()},
           "checkpoint_minus": {k: paired_difference(errs["checkpoint"], errs[k], groups)
                                for k in errs if k != "checkpoint"},
           "per_device": by_device(windows, errs), "per_recording": by_recording(windows, errs),
           "eeg_hours_seen": _hours(extra)}
    if classical is not None:
        fit = reference_fit or reference.describe()

        def scored(e):  # masked L1 of one reference, the checkpoint's paired difference to it, per device
            dev = by_device(windows, {"checkpoint": errs["checkpoint"], "reference": e})
            return {"masked_l1": float(e.mean()), "checkpoint_minus": paired_difference(errs["checkpoint"], e, groups),
                    "per_device": {d: {"masked_l1": r["masked_l1"]["reference"],
                                       "checkpoint_minus": r["checkpoint_minus"]["reference"]} for d, r in dev.items()}}

        out[CLASSICAL] = {
            "name": f"AR({fit['order']}) conditional mean of each gap given the visible samples within "
                    f"{fit['neighbourhood']} samples of either edge, fitted on the pretraining corpus",
            **scored(classical),
            # the same model given only the samples before each gap: what reading forwards in time allows
            "left_edge_only": {"name": f"the same AR({fit['order']}) model given only the visible samples within "
                                       f"{fit['neighbourhood']} samples before each gap", **scored(left_errs)},
            "fit": fit}
    if other_errs is not None:
        dev = by_device(windows, {"checkpoint": errs["checkpoint"], AGAINST: other_errs})
        out[AGAINST] = {"model": describe_model(against, other, other_extra), "eeg_hours_seen": _hours(other_extra),
                        "masked_l1": float(other_errs.mean()),
                        "checkpoint_minus": paired_difference(errs["checkpoint"], other_errs, groups),
                        "per_device": {d: {"masked_l1": r["masked_l1"][AGAINST],
                                           "checkpoint_minus": r["checkpoint_minus"][AGAINST]}
                                       for d, r in dev.items()}}
    if seen:
        out[SEEN] = seen_score({k: preds[k] for k in ("checkpoint", "zeros", "random_init")}, seen, seed)
    return out


def seen_score(preds: dict, windows, seed: int = 0) -> dict:
    """The checkpoint against zeros and its random init on windows of recordings pretraining *trained on*, with
    the same masks and code as the held-out score. Next to the held-out score it separates what pretraining
    learned of EEG in general from what it learned of its own corpus: a checkpoint far better than zeros here and
    barely better on held-out recordings has mostly memorised its corpus. ``preds``: ``{name: predict(X, pos,
    visible)}`` with ``"checkpoint"`` among them, as `evaluate_checkpoint` builds them."""
    errs = per_window(windows, preds, seed)
    groups = session_index(windows)
    return {"recordings": [name for name, _, _ in windows], "n_windows": int(sum(len(X) for _, X, _ in windows)),
            "masked_l1": {k: float(v.mean()) for k, v in errs.items()},
            "checkpoint_minus": {k: paired_difference(errs["checkpoint"], errs[k], groups)
                                 for k in errs if k != "checkpoint"}}


def describe_model(path, model, extra: dict) -> dict:
    """What was scored: the path, the architecture's switch and size, and what the checkpoint says of its training
    (``extra.run``, written by scripts/release_checkpoint.py, holds the command, commit, device and date)."""
    extra = extra if isinstance(extra, dict) else {}
    return {"path": str(path), "bidirectional": bool(getattr(model.cfg, "bidirectional", False)),
            "params": int(sum(p.numel() for p in model.parameters())),
            **{k: extra[k] for k in ("step", "total_steps", "val_loss", "run") if k in extra}}


def _hours(extra: dict):
    for k in ("eeg_hours_seen", "eeg_hours"):
        if isinstance(extra, dict) and extra.get(k) is not None:
            return float(extra[k])
    return None


def snapshots(run_dir) -> list[Path]:
    """Snapshot checkpoints of a run, in step order: ``snapshots/step_XXXXXX`` folders or ``*.pt`` files."""
    run_dir = Path(run_dir)
    base = run_dir / "snapshots" if (run_dir / "snapshots").is_dir() else run_dir
    found = [p for p in base.iterdir() if re.search(r"step_(\d+)", p.name)]
    return sorted(found, key=lambda p: int(re.search(r"step_(\d+)", p.name)[1]))


def curve(paths, windows, seed: int = 0, device: str = "cpu", seen=None) -> list[dict]:
    """``[{"snapshot", "step", "eeg_hours_seen", "masked_l1", "per_device", "per_recording"}]`` per snapshot, with
    ``"seen_masked_l1"`` on ``seen`` (windows of recordings it trained on, as `seen_score`) when given."""
    from samba.checkpoint import load_model

    rows = []
    for p in paths:
        model, extra = load_model(p, map_location="cpu")
        model.to(device)
        predict = {"m": lambda X, pos, vis: model_predict(model, X, pos, vis)}
        errs = per_window(windows, predict, seed)
        m = re.search(r"step_(\d+)", Path(p).name)
        rows.append({"snapshot": Path(p).name, "step": int(m[1]) if m else None,
                     "eeg_hours_seen": _hours(extra), "masked_l1": float(errs["m"].mean()),
                     "per_device": {k: v["masked_l1"]["m"] for k, v in by_device(windows, errs, ref=None).items()},
                     "per_recording": {k: v["m"] for k, v in by_recording(windows, errs).items()}})
        if seen:
            rows[-1]["seen_masked_l1"] = float(per_window(seen, predict, seed)["m"].mean())
    return rows


def main(argv=None) -> int:
    from samba.data.corpus import corpus_recordings, heldout_recordings, subject_in_corpus
    from samba.train.batches import recording_windows
    from samba.errors import UsageError

    from . import gap_smoother
    from .run import atomic_write_json, device_name, git_commit

    p = argparse.ArgumentParser(prog="python -m samba.evaluation.reconstruction", description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="pretrained checkpoint (file or folder)")
    p.add_argument("--snapshots", default=None, help="run folder with snapshots/step_XXXXXX: adds the curve")
    p.add_argument("--out", default="build/pretraining.json")
    p.add_argument("--mirror", default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--against", default=None, help="a second checkpoint scored on the same windows and masks: "
                   "adds its masked L1 and the paired difference (--model minus it)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-windows", type=int, default=64, help="per held-out recording")
    p.add_argument("--seen-windows", type=int, default=4, help="per corpus recording: the same scores on "
                   "recordings pretraining trained on, and on the curve (0: not scored)")
    p.add_argument("--window-s", type=float, default=30.0, help="window length (default: the full profile's "
                   "pretraining windows)")
    a = p.parse_args(argv)
    import os

    mirror = a.mirror or os.environ.get("SAMBA_DATA_MIRROR")
    recs = heldout_recordings(mirror)
    if not recs:
        raise UsageError("no held-out recording is available; pass --mirror DIR or set SAMBA_DATA_MIRROR")
    windows = recording_windows(recs, window_s=a.window_s, max_windows=a.max_windows)
    smoother, fit = gap_smoother.fit_on_corpus(mirror, window_s=a.window_s)
    seen_recs = corpus_recordings(mirror) if a.seen_windows > 0 else []
    seen = recording_windows(seen_recs, window_s=a.window_s, max_windows=a.seen_windows) if seen_recs else None
    res = evaluate_checkpoint(a.model, windows, a.seed, a.device, reference=smoother, reference_fit=fit,
                              against=a.against, seen=seen)
    doc = {"heldout_recordings": [name for name, _ in recs],
           # held out, but another recording of the same person was pretrained on (unlabelled)
           "subject_in_corpus": [name for name, _ in recs if subject_in_corpus(*name.split("/", 1))],
           "n_windows": int(sum(len(X) for _, X, _ in windows)),
           "mask": "tsr, ratio 0.5, seeded", **res}
    if SEEN in doc:
        doc[SEEN] = {"what": "the same scores on the first windows of every corpus recording (pretraining trained "
                             "on them): held-out against seen separates general from memorised learning",
                     "corpus_hours": round(sum(rec.data.shape[1] / rec.sfreq for _, rec in seen_recs) / 3600, 3),
                     **doc[SEEN]}
    if a.snapshots:
        doc["curve"] = curve(snapshots(a.snapshots), windows, a.seed, a.device, seen=seen)
    args = " ".join(argv if argv is not None else sys.argv[1:])
    doc.update(commit=git_commit(), device=device_name(a.device), date=_dt.date.today().isoformat(),
               command="python -m samba.evaluation.reconstruction " + args)
    atomic_write_json(doc, a.out)
    print(a.out)
    return 0


if __name__ == "__main__":
    from samba.errors import run_main

    sys.exit(run_main(main))
