"""Any EEG -> SAMBA bottleneck features, streamed window by window.

    >>> import samba
    >>> emb = samba.embed("night.edf", window_s=30)        # released checkpoint, CPU or CUDA
    >>> emb.features.shape, emb.pooled.shape, emb.times_s[:3]
    ((960, 128, 480), (960, 128), array([ 0., 30., 60.]))

What a window's features are: ``model.encode`` of the window (CDSE -> U-Net encoder -> differential-Mamba
bottleneck), ``(D, T')`` with ``D = bottleneck_dim`` (128) and ``T' = ceil(window samples / 8)``, one frame every
8 samples at 128 Hz (16 frames per second). ``pooled`` is their mean over time, ``(D,)``.

Preprocessing is pretraining's (``samba.data.preprocess``): band-pass 0.5-45 Hz, resampling to 128 Hz, robust
per-channel scaling, then the one scalar that brings the data to unit robust spread (as pretraining feeds each
montage). A long recording is read and preprocessed in chunks of ``chunk_s`` (default 10 min) with ``margin_s``
of signal either side, so the filter sees no edge inside the kept part; the robust statistics are then those
of the chunk, not of the whole night. A recording no longer than one chunk is preprocessed in one piece,
exactly as in pretraining. Windows tile the recording from its first sample without overlap; the last
partial window is left out.

Memory stays bounded by one chunk of raw signal plus one batch of windows: the raw file is opened with
``preload=False`` and read a chunk at a time, and :func:`embed_to_file` writes each batch of features into
the ``.npz`` as it is computed, so nothing grows with the recording's length except the pooled features
(``n_windows x D`` floats) and the window times.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from fractions import Fraction
from math import ceil, gcd
from pathlib import Path
from typing import Iterator

import numpy as np

from .errors import InputError, UsageError

log = logging.getLogger(__name__)

PRETRAINED = ("checkpoints", "samba_pretrained")  # folder (safetensors) or the older ``.pt`` beside it


# ------------------------------------------------------------------------------------------------
# the released model
# ------------------------------------------------------------------------------------------------
def pretrained_path(path=None) -> Path:
    """``path`` as typed, or the released checkpoint: ``checkpoints/samba_pretrained/`` if present, else ``.pt``."""
    from .paths import repo_path, user_path

    ckpt = user_path(path) if path is not None else repo_path(*PRETRAINED)
    if ckpt.suffix == ".pt" and not ckpt.exists() and ckpt.with_suffix("").is_dir():
        ckpt = ckpt.with_suffix("")  # a checkpoint folder named after its old one-file form
    return ckpt


def load_pretrained(path=None, device: str | None = None):
    """The released SAMBA model (or the checkpoint at ``path``), in eval mode."""
    from .checkpoint import load_model

    ckpt = pretrained_path(path)
    if not ckpt.exists():
        raise InputError(f"no checkpoint at {ckpt}; pass the path of a SAMBA checkpoint (--checkpoint PATH)")
    try:
        model, _ = load_model(ckpt)
    except (ValueError, OSError) as err:  # CheckpointError is a ValueError
        raise InputError(f"{ckpt}: not a usable SAMBA checkpoint ({str(err).splitlines()[0]})") from err
    model.checkpoint_path = str(ckpt)
    return model.to(device or "cpu").eval()


# ------------------------------------------------------------------------------------------------
# the result
# ------------------------------------------------------------------------------------------------
@dataclass
class Embedding:
    """Features of consecutive windows of one recording."""

    features: np.ndarray | None  # (N, D, T') float32, or None when only pooled features were kept
    pooled: np.ndarray  # (N, D) float32: mean over the window's frames
    times_s: np.ndarray  # (N,) window start, seconds from the recording's first sample
    window_s: float
    ch_names: list[str]
    sfreq: float  # rate the model saw (128 Hz); frames are 8 samples apart
    checkpoint_sha256: str = ""
    source: str = ""
    info: dict = field(default_factory=dict)

    @property
    def frame_s(self) -> float:
        return 8.0 / self.sfreq

    def save(self, path) -> Path:
        """Atomically write the ``.npz`` (same keys as ``samba embed``)."""
        with NpzWriter(path) as out:
            if self.features is not None:
                out.add("features", self.features)
            for key, value in _small_arrays(self).items():
                out.add(key, value)
        return Path(path)


def _small_arrays(emb: Embedding) -> dict:
    return {"pooled": emb.pooled, "times_s": emb.times_s, "window_s": np.float64(emb.window_s),
            "ch_names": np.array(emb.ch_names, dtype=str), "sfreq": np.float64(emb.sfreq),
            "checkpoint_sha256": np.array(emb.checkpoint_sha256), "source": np.array(emb.source)}


class NpzWriter:
    """An ``.npz`` written member by member (a big array streamed in row blocks), moved into place at close."""

    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self.tmp = tempfile.mkstemp(prefix=self.path.name + ".", suffix=".tmp", dir=self.path.parent)
        os.close(fd)
        self.zip = zipfile.ZipFile(self.tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True)

    def add(self, name: str, array) -> None:
        with self.stream(name, np.shape(array), np.asarray(array).dtype) as write:
            write(np.asarray(array))

    @contextlib.contextmanager
    def stream(self, name: str, shape: tuple, dtype):
        """Yields ``write(block)``: blocks of rows, in order, that fill ``shape`` exactly."""
        from numpy.lib import format as npy

        dtype = np.dtype(dtype)
        with self.zip.open(name + ".npy", "w", force_zip64=True) as fh:
            npy.write_array_header_1_0(fh, {"descr": npy.dtype_to_descr(dtype), "fortran_order": False,
                                            "shape": tuple(int(n) for n in shape)})
            yield lambda block: fh.write(np.ascontiguousarray(block, dtype=dtype).tobytes())

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        self.zip.close()
        if exc_type is None:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(self.tmp, 0o666 & ~umask)  # mkstemp makes it private; the result is an ordinary file
            os.replace(self.tmp, self.path)
        elif os.path.exists(self.tmp):
            os.unlink(self.tmp)


# ------------------------------------------------------------------------------------------------
# chunks -> windows -> features
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ChunkPlan:
    """Input-sample cores ``[i0, i1)`` that map onto whole windows at the model's rate."""

    cores: list  # [(i0, i1), ...] input samples
    margin_in: int
    up: int  # resampling ratio sfreq / fs_in = up / down
    down: int
    win: int  # window, model samples

    def windows_in(self, i0: int, i1: int) -> int:
        return (i1 * self.up // self.down - i0 * self.up // self.down) // self.win

    @property
    def n_windows(self) -> int:
        return sum(self.windows_in(a, b) for a, b in self.cores)


def plan_chunks(n_times: int, fs_in: float, sfreq: float, window_s: float, chunk_s: float, margin_s: float) -> ChunkPlan:
    """Chunk boundaries on the common grid of the two rates, each core a whole number of windows."""
    frac = Fraction(sfreq / fs_in).limit_denominator(1000)
    up, down = frac.numerator, frac.denominator
    win = int(round(window_s * sfreq))
    if win < 8:
        raise UsageError(f"a window of {window_s:g} s is {win} samples at {sfreq:g} Hz; the model needs >= 8 (window_s >= {8 / sfreq:g})")
    step_out = win * up // gcd(win, up)  # a whole number of windows that maps onto whole input samples
    per_chunk = max(1, int(round(chunk_s * sfreq / step_out)))
    core_in = per_chunk * step_out * down // up
    margin_in = int(ceil(margin_s * fs_in / down)) * down
    n_out = n_times * up // down
    if n_out < win:
        raise InputError(f"recording is {n_times / fs_in:.1f} s long, shorter than one window of {window_s:g} s; "
                         "pass a shorter --window-s")
    if n_times <= core_in + margin_in:  # one piece: exactly pretraining's preprocessing
        return ChunkPlan([(0, n_times)], 0, up, down, win)
    cores = [(a, min(a + core_in, n_times)) for a in range(0, n_times, core_in)]
    plan = ChunkPlan(cores, margin_in, up, down, win)
    return ChunkPlan([c for c in cores if plan.windows_in(*c) > 0], margin_in, up, down, win)


def _unit_scale(x: np.ndarray) -> float:
    """1 / robust SD, pretraining's per-montage input scale (``samba.train.pretraining._scale_of``)."""
    s = float(np.median(np.abs(x - np.median(x, axis=-1, keepdims=True)))) * 1.4826
    return 1.0 / s if s > 0 and np.isfinite(s) else 1.0


def iter_window_batches(rec, window_s: float, params=None, chunk_s: float = 600.0, margin_s: float = 10.0,
                        batch_size: int = 16) -> Iterator[tuple[np.ndarray, np.ndarray, list[str], np.ndarray]]:
    """Yield ``(x (B, C, win) float32, start times (B,), ch_names, positions (C, 3))`` through the recording."""
    from .data.preprocess import Preprocessing
    from .data.user import preprocess_recording

    params = params or Preprocessing()
    plan = plan_chunks(rec.n_times, rec.sfreq, params.sfreq, window_s, chunk_s, margin_s)
    for i0, i1 in plan.cores:
        lo, hi = max(0, i0 - plan.margin_in), min(rec.n_times, i1 + plan.margin_in)
        prep = preprocess_recording(rec, params, start=lo, stop=hi)  # (C', n) at params.sfreq
        o0 = i0 * plan.up // plan.down - lo * plan.up // plan.down  # core start inside the chunk
        n_win = plan.windows_in(i0, i1)
        core = prep.data[:, o0 : o0 + n_win * plan.win]  # (C', n_win * win)
        x = core.reshape(core.shape[0], n_win, plan.win).transpose(1, 0, 2)  # (n_win, C', win)
        x = x * np.float32(_unit_scale(core))
        t0 = i0 / rec.sfreq
        for b in range(0, n_win, batch_size):
            times = t0 + np.arange(b, min(b + batch_size, n_win)) * window_s
            yield np.ascontiguousarray(x[b : b + batch_size]), times, prep.ch_names, prep.positions


def _source_of(data, sfreq):
    """Path / Raw / Epochs -> (UserRecording | Epochs, name)."""
    import mne

    if isinstance(data, mne.BaseEpochs):
        return data, "epochs"
    from .data.user import open_recording

    return open_recording(data, sfreq=sfreq), None


def _epochs_batches(epochs, params, batch_size):
    """Epochs are already cut: resample to the model's rate and robust-scale per channel over all epochs."""
    from scipy.signal import resample_poly

    from .data.user import select_eeg

    ep = epochs.copy().load_data()
    _, pos, _ = select_eeg(ep, "epochs")  # pick/rename work on Epochs as on Raw
    x = ep.get_data() * 1e6  # (N, C, T) uV
    frac = Fraction(params.sfreq / ep.info["sfreq"]).limit_denominator(1000)
    if frac != 1:
        x = resample_poly(x, frac.numerator, frac.denominator, axis=-1)
    med = np.median(x, axis=(0, 2), keepdims=True)
    q75, q25 = np.percentile(x, [75, 25], axis=(0, 2), keepdims=True)
    x = np.clip((x - med) / np.maximum(q75 - q25, 1e-12), -params.clip, params.clip).astype(np.float32)
    x *= np.float32(_unit_scale(x))
    times = ep.events[:, 0] / ep.info["sfreq"] + ep.tmin  # (N,) epoch starts, seconds
    for b in range(0, len(x), batch_size):
        yield x[b : b + batch_size], times[b : b + batch_size], list(ep.ch_names), pos
    return x.shape[-1] / params.sfreq


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="window", file=sys.stderr, disable=not enabled, leave=False)


def _features(model, x: np.ndarray, pos: np.ndarray, device) -> np.ndarray:
    import torch

    with torch.no_grad():
        h = model.encode(torch.from_numpy(x).to(device), torch.from_numpy(np.asarray(pos, np.float32)).to(device))
    return h.float().cpu().numpy()  # (B, D, T')


def _setup(data, model, window_s, sfreq, device):
    from .checkpoint import weights_sha256
    from .data.preprocess import Preprocessing
    from .devices import resolve_device

    if not math.isfinite(window_s) or window_s <= 0:
        raise UsageError(f"window_s must be a finite number > 0, got {window_s:g}")
    if device is not None:
        device = resolve_device(device)  # an unknown or absent device: one clear error, before any loading
    if model is None or isinstance(model, (str, os.PathLike)):
        model = load_pretrained(model, device=device)
    device = device or next(model.parameters()).device
    model = model.to(device).eval()
    ckpt = getattr(model, "checkpoint_path", "")
    sha = weights_sha256(ckpt) if ckpt and Path(ckpt).exists() else ""
    src, _ = _source_of(data, sfreq)
    return model, device, src, sha, Preprocessing()


def _batches(src, window_s, params, chunk_s, batch_size):
    import mne

    if isinstance(src, mne.BaseEpochs):
        n = len(src)
        return n, float(src.times[-1] - src.times[0] + 1 / src.info["sfreq"]), _epochs_batches(src, params, batch_size)
    plan = plan_chunks(src.n_times, src.sfreq, params.sfreq, window_s, chunk_s, 10.0)
    return plan.n_windows, window_s, iter_window_batches(src, window_s, params, chunk_s, batch_size=batch_size)


def embed(data, model=None, window_s: float = 30.0, *, sfreq: float | None = None, device: str | None = None,
          keep_features: bool = True, chunk_s: float = 600.0, batch_size: int = 16, progress: bool = True) -> Embedding:
    """Bottleneck features of ``data`` (path of any readable recording, ``mne.io.Raw`` or ``mne.Epochs``).

    ``model``: a SAMBA model, a checkpoint path, or None for the released checkpoint. ``sfreq``: for CSV files
    without a time column. ``keep_features=False`` keeps only the pooled ``(N, D)`` features (a whole night's
    ``(N, D, T')`` is ~240 MB; :func:`embed_to_file` streams it to disk instead). Epochs are used as they
    are cut (one window per epoch), resampled to 128 Hz and robust-scaled, without the band-pass.
    """
    model, device, src, sha, params = _setup(data, model, window_s, sfreq, device)
    n, window_s, batches = _batches(src, window_s, params, chunk_s, batch_size)
    feats, pooled, times, names = [], [], [], []
    with _progress(n, progress) as bar:
        for x, t, names, pos in batches:
            h = _features(model, x, pos, device)  # (B, D, T')
            if keep_features:
                feats.append(h)
            pooled.append(h.mean(-1))
            times.append(t)
            bar.update(len(x))
    D = model.cfg.bottleneck_dim
    return Embedding(np.concatenate(feats) if keep_features and feats else None,
                     np.concatenate(pooled) if pooled else np.zeros((0, D), np.float32),
                     np.concatenate(times) if times else np.zeros(0), float(window_s), list(names),
                     float(params.sfreq), sha, getattr(src, "source", "epochs"),
                     {"dropped_channels": getattr(src, "dropped", {})})


def embed_to_file(data, out, model=None, window_s: float = 30.0, *, sfreq: float | None = None,
                  device: str | None = None, pooled_only: bool = False, chunk_s: float = 600.0,
                  batch_size: int = 16, progress: bool = True) -> Path:
    """Like :func:`embed`, but features go straight into ``out`` (``.npz``) batch by batch (bounded memory).

    Keys: ``features`` (N, D, T') float32 unless ``pooled_only``, ``pooled`` (N, D), ``times_s`` (N,),
    ``window_s``, ``ch_names``, ``sfreq``, ``checkpoint_sha256`` (of the weights file, as ``sha256sum`` prints
    it), ``source``. Written atomically.
    """
    from .paths import check_writable_file

    out = check_writable_file(out)  # a folder, or a path under a file: one clear error before any work
    model, device, src, sha, params = _setup(data, model, window_s, sfreq, device)
    n, window_s, batches = _batches(src, window_s, params, chunk_s, batch_size)
    D = model.cfg.bottleneck_dim
    frames = int(ceil(round(window_s * params.sfreq) / 8))
    pooled, times, names = [], [], []
    with NpzWriter(out) as npz:
        with contextlib.ExitStack() as stack:
            bar = stack.enter_context(_progress(n, progress))
            write = None if pooled_only else stack.enter_context(npz.stream("features", (n, D, frames), np.float32))
            for x, t, names, pos in batches:
                h = _features(model, x, pos, device)  # (B, D, T')
                if write:
                    write(h)
                pooled.append(h.mean(-1))
                times.append(t)
                bar.update(len(x))
            if sum(map(len, times)) != n:  # the npy header promised n windows
                raise RuntimeError(f"expected {n} windows, computed {sum(map(len, times))}")
        emb = Embedding(None, np.concatenate(pooled), np.concatenate(times), float(window_s), list(names),
                        float(params.sfreq), sha, getattr(src, "source", "epochs"))
        for key, value in _small_arrays(emb).items():
            npz.add(key, value)
    return Path(out)


def embed_windows(ds, model=None, batch_size: int = 16, device: str | None = None) -> np.ndarray:
    """Pooled features ``(N, D)`` of a ``WindowDataset``'s windows (e.g. from ``load_user_task``) for a probe.

    The windows are already preprocessed; they get pretraining's unit-scale factor (one scalar from the
    dataset) before ``model.encode``.
    """
    if model is None or isinstance(model, (str, os.PathLike)):
        model = load_pretrained(model, device=device)
    device = device or next(model.parameters()).device
    sample = np.asarray(ds.X[: min(len(ds), 256)], np.float64)
    scale = np.float32(_unit_scale(sample))
    out = [_features(model, np.asarray(ds.X[b : b + batch_size], np.float32) * scale, ds.positions, device).mean(-1)
           for b in range(0, len(ds), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, model.cfg.bottleneck_dim), np.float32)
