"""Electrode positions in ONE frame: MNE head frame, metres, float32.

Why one frame matters: CDSE (``samba.nn.cdse``) turns the displacement between an input electrode and
each target electrode into a mixing weight. If two datasets' coordinates come from different frames
(the authors' PhysioNet-MI coordinate file sits ~5 cm away from their other files), the same scalp
site gets different weights and the model has to learn the offset. Here every position comes from
one template, MNE's 10-05 montage on the colin27 head, transformed by MNE into head coordinates
(origin between the pre-auricular points, +x right, +y nose, +z up), or, for recordings that carry
their own digitisation, is checked against / aligned to that template.

Public entry points::

    normalize_name("Fc5.")                   -> "FC5"
    positions(["Fp1", "T3", "FP1-F7"])       -> (3, 3) float32, metres
    TARGET_CHANNELS, target_positions()      -> the 94-position 10-20 target montage
    DEVICE_PRESETS, device_channels(name), device_positions(name)
    positions_from_info(info)                -> (C, 3) from an mne.Info
"""

from __future__ import annotations

import difflib
import warnings
import weakref
from functools import lru_cache

import numpy as np

__all__ = [
    "normalize_name",
    "positions",
    "TARGET_CHANNELS",
    "target_positions",
    "DEVICE_PRESETS",
    "device_channels",
    "device_positions",
    "positions_from_info",
    "check_positions",
]

# MNE 1.13 renamed standard_10xx -> colin27_10xx (same template head); try the new name first.
_TEMPLATE_NAMES = {
    "1005": ("colin27_1005", "standard_1005"),
    "1020": ("colin27_1020", "standard_1020"),
}

# Old (10-20, Jasper 1958) names that the 10-10 system renamed. The template also lists T3..T6 as
# labels of their own, at exactly the same points; we canonicalise to the modern names.
ALIASES = {"T3": "T7", "T4": "T8", "T5": "P7", "T6": "P8"}

# A second electrode that is a *reference* (ear / mastoid / average), not a second recording site:
# "EEG F4-A1" or "EEG FP1-REF" is recorded at F4 / Fp1, so it gets that single position.
_REFERENCE_TAGS = {"REF", "LE", "RE", "AR", "AVG", "AV", "CAR", "A1", "A2", "M1", "M2", "A1A2", "LINKED"}

# The 94 labels of MNE's 10-20 template (colin27_1020 == standard_1020), in the template's order.
# Decision: we KEEP the four old-name duplicates T3/T4/T5/T6 (they sit at exactly the T7/T8/P7/P8
# positions) so the target montage is the paper's 94 positions and the decoder's first layer has the
# paper's shape; the duplicate rows of CDSE's weight matrix are identical by construction (same
# displacements), which costs 4 redundant output channels and nothing else.
# M1/M2 (mastoids) and A1/A2 (earlobes) are distinct points (~2 cm apart) and are kept.
TARGET_CHANNELS: tuple[str, ...] = (
    "Fp1", "Fpz", "Fp2", "AF9", "AF7", "AF5", "AF3", "AF1", "AFz", "AF2", "AF4", "AF6", "AF8", "AF10",
    "F9", "F7", "F5", "F3", "F1", "Fz", "F2", "F4", "F6", "F8", "F10",
    "FT9", "FT7", "FC5", "FC3", "FC1", "FCz", "FC2", "FC4", "FC6", "FT8", "FT10",
    "T9", "T7", "C5", "C3", "C1", "Cz", "C2", "C4", "C6", "T8", "T10",
    "TP9", "TP7", "CP5", "CP3", "CP1", "CPz", "CP2", "CP4", "CP6", "TP8", "TP10",
    "P9", "P7", "P5", "P3", "P1", "Pz", "P2", "P4", "P6", "P8", "P10",
    "PO9", "PO7", "PO5", "PO3", "PO1", "POz", "PO2", "PO4", "PO6", "PO8", "PO10",
    "O1", "Oz", "O2", "O9", "Iz", "O10",
    "T3", "T5", "T4", "T6", "M1", "M2", "A1", "A2",
)  # fmt: skip

DEVICE_PRESETS: dict[str, tuple[str, ...]] = {
    "emotiv_epoc": ("AF3", "F7", "F3", "FC5", "T7", "P7", "O1", "O2", "P8", "T8", "FC6", "F4", "F8", "AF4"),
    "emotiv_insight": ("AF3", "AF4", "T7", "T8", "Pz"),
    "muse": ("TP9", "AF7", "AF8", "TP10"),
    "10-20": ("Fp1", "Fp2", "F7", "F3", "Fz", "F4", "F8", "T7", "C3", "Cz", "C4", "T8",
              "P7", "P3", "Pz", "P4", "P8", "O1", "O2"),
    # BNCI2014_001 (BCI Competition IV 2a), 22 EEG channels
    "bci_iv_2a": ("Fz", "FC3", "FC1", "FCz", "FC2", "FC4", "C5", "C3", "C1", "Cz", "C2", "C4", "C6",
                  "CP3", "CP1", "CPz", "CP2", "CP4", "P1", "Pz", "P2", "POz"),
    # TUH temporal-central-parasagittal ("double banana") bipolar montage; positions are midpoints
    "tuh_bipolar": ("FP1-F7", "F7-T3", "T3-T5", "T5-O1", "FP2-F8", "F8-T4", "T4-T6", "T6-O2",
                    "FP1-F3", "F3-C3", "C3-P3", "P3-O1", "FP2-F4", "F4-C4", "C4-P4", "P4-O2"),
    # PhysioNet EEGMMIDB (BCI2000 64-ch cap), in EDF order, names normalised ("Fc5." -> "FC5")
    "eegmmidb": ("FC5", "FC3", "FC1", "FCz", "FC2", "FC4", "FC6", "C5", "C3", "C1", "Cz", "C2", "C4",
                 "C6", "CP5", "CP3", "CP1", "CPz", "CP2", "CP4", "CP6", "Fp1", "Fpz", "Fp2", "AF7",
                 "AF3", "AFz", "AF4", "AF8", "F7", "F5", "F3", "F1", "Fz", "F2", "F4", "F6", "F8",
                 "FT7", "FT8", "T7", "T8", "T9", "T10", "TP7", "TP8", "P7", "P5", "P3", "P1", "Pz",
                 "P2", "P4", "P6", "P8", "PO7", "PO3", "POz", "PO4", "PO8", "O1", "Oz", "O2", "Iz"),
}  # fmt: skip


# --------------------------------------------------------------------------------------------------
# the template table
# --------------------------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def _template(kind: str) -> tuple[tuple[str, ...], np.ndarray]:
    """(labels, (N, 3) float32 head-frame metres) of MNE's 10-05 or 10-20 template."""
    import mne

    builtin = set(mne.channels.get_builtin_montages())
    name = next((n for n in _TEMPLATE_NAMES[kind] if n in builtin), None)
    if name is None:
        raise RuntimeError(f"none of the MNE montages {_TEMPLATE_NAMES[kind]} is available (mne {mne.__version__})")
    montage = mne.channels.make_standard_montage(name)
    info = mne.create_info(montage.ch_names, 100.0, "eeg")
    # The template is stored in MRI (MNI) coordinates; set_montage moves it into head coordinates
    # through its fiducials, which is the frame MNE uses for every recording's Info.
    info.set_montage(montage, verbose="error")
    pos = np.array([ch["loc"][:3] for ch in info["chs"]], dtype=np.float32)  # (N, 3)
    return tuple(montage.ch_names), pos


@lru_cache(maxsize=None)
def _table() -> dict[str, np.ndarray]:
    """Canonical label -> (3,) position; 10-05 labels plus the 10-20-only ones (O9, O10)."""
    table = dict(zip(*_template("1005")))
    for label, p in zip(*_template("1020")):
        table.setdefault(label, p)
    return table


@lru_cache(maxsize=None)
def _lookup() -> dict[str, str]:
    """lower-case spelling -> canonical label (aliases resolved)."""
    lookup = {label.lower(): label for label in _table()}
    lookup.update({old.lower(): new for old, new in ALIASES.items()})
    return lookup


# --------------------------------------------------------------------------------------------------
# names
# --------------------------------------------------------------------------------------------------
def _canonical_single(token: str, original: str) -> str:
    lookup = _lookup()
    key = token.strip().lower()
    if key in lookup:
        return lookup[key]
    close = difflib.get_close_matches(key, list(lookup), n=3, cutoff=0.6)
    hint = f"; close matches: {', '.join(lookup[c] for c in close)}" if close else ""
    raise ValueError(f"unknown EEG channel {original!r} (not a 10-05 electrode name){hint}")


_REFERENCE_SITES = {"A1", "A2", "M1", "M2"}


def is_reference_derivation(name: str) -> bool:
    """Whether ``name`` is one reference site against another ("EEG A2-A1", "M1-M2"): not scalp EEG.

    :func:`normalize_name` reads "A2-A1" as "A2 referenced to A1" and would place it at A2; a reader of user
    recordings drops it instead (EEGMAT's ear-to-ear channel, for one)."""
    s = str(name).strip()
    if s[:3].upper() == "EEG" and len(s) > 3 and s[3] in " -_":
        s = s[4:].strip()
    first, sep, second = s.partition("-")
    return bool(sep) and first.strip().upper() in _REFERENCE_SITES and second.strip().upper() in _REFERENCE_SITES


def normalize_name(name: str) -> str:
    """Canonical 10-05 spelling of a channel name (case-insensitive).

    Handles EEGMMIDB dots ("Fc5." -> "FC5"), "EEG " prefixes and reference suffixes
    ("EEG FP1-REF", "EEG FP1-LE", "EEG F4-A1" -> "Fp1" / "F4": the reference is not a recording
    site), old aliases (T3 -> T7, T4 -> T8, T5 -> P7, T6 -> P8). A bipolar derivation between two
    scalp electrodes keeps both: "FP1-F7" -> "Fp1-F7" (``positions`` puts it at the midpoint).
    Unknown names raise ValueError naming the channel and suggesting close matches.
    """
    if not isinstance(name, str):
        raise ValueError(f"channel name must be a str, got {name!r}")
    s = name.strip()
    if s[:3].upper() == "EEG" and len(s) > 3 and s[3] in " -_":  # "EEG Fp1", "EEG-Fp1"
        s = s[4:].strip()
    s = s.rstrip(".").strip()  # EEGMMIDB pads names with dots to 4 characters
    if "-" in s:
        first, second = (part.strip() for part in s.split("-", 1))
        if second.upper() in _REFERENCE_TAGS:
            return _canonical_single(first, name)
        return f"{_canonical_single(first, name)}-{_canonical_single(second, name)}"
    return _canonical_single(s, name)


# --------------------------------------------------------------------------------------------------
# positions
# --------------------------------------------------------------------------------------------------
def positions(ch_names) -> np.ndarray:
    """(C, 3) float32 positions in metres, MNE head frame, for a list of channel names.

    Names go through ``normalize_name``; a bipolar name ("FP1-F7") gets the midpoint of its two
    electrodes, since the derivation measures the field between them. Raises ValueError for an empty
    list or an unknown name (naming it).
    """
    if isinstance(ch_names, str):
        raise ValueError(f"positions() takes a list of channel names, got the string {ch_names!r}")
    ch_names = list(ch_names)
    if not ch_names:
        raise ValueError("positions() needs at least one channel name, got an empty list")
    table = _table()
    out = np.empty((len(ch_names), 3), dtype=np.float32)  # (C, 3)
    for i, name in enumerate(ch_names):
        labels = normalize_name(name).split("-")  # 1 label, or 2 for a bipolar derivation
        out[i] = np.mean([table[label] for label in labels], axis=0)
    return out


def target_positions() -> np.ndarray:
    """(94, 3) float32 positions of ``TARGET_CHANNELS`` (MNE's 10-20 template, duplicates kept)."""
    table = dict(zip(*_template("1020")))
    return np.stack([table[label] for label in TARGET_CHANNELS]).astype(np.float32)  # (94, 3)


def device_channels(name: str) -> tuple[str, ...]:
    """Channel names of a device preset (see ``DEVICE_PRESETS``)."""
    if name not in DEVICE_PRESETS:
        raise ValueError(f"unknown device preset {name!r}; available: {', '.join(DEVICE_PRESETS)}")
    return DEVICE_PRESETS[name]


def device_positions(name: str) -> np.ndarray:
    """(C, 3) float32 positions of a device preset's channels."""
    return positions(device_channels(name))


# --------------------------------------------------------------------------------------------------
# positions carried by an mne.Info
# --------------------------------------------------------------------------------------------------
def _fit_sphere(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares sphere through (N, 3) points: |p|^2 = 2 p.c + (r^2 - |c|^2) is linear in c."""
    A = np.c_[2 * points, np.ones(len(points))]  # (N, 4)
    b = (points**2).sum(1)  # (N,)
    sol, *_ = np.linalg.lstsq(A, b, rcond=None)
    centre = sol[:3]
    return centre, float(np.sqrt(sol[3] + centre @ centre))


def _has_fiducials(info) -> bool:
    """True if info's head frame was built from anatomical fiducials (LPA, nasion, RPA).

    When a montage has no fiducials, ``Info.set_montage`` invents them on a 95 mm sphere, and
    spherical templates do the same: LPA = (-r, 0, 0), nasion = (0, r, 0), RPA = (r, 0, 0) with one r.
    Real heads are not that symmetric (colin27: 82.5 mm to the ears, 114 mm to the nasion), so such
    placeholder fiducials mean "frame unknown" and the positions get aligned to the template.
    """
    from mne.io.constants import FIFF

    cardinal = {
        int(d["ident"]): np.asarray(d["r"], dtype=np.float64)
        for d in (info["dig"] or [])
        if d["kind"] == FIFF.FIFFV_POINT_CARDINAL and d["coord_frame"] == FIFF.FIFFV_COORD_HEAD
    }
    try:
        lpa, nasion, rpa = (cardinal[k] for k in (FIFF.FIFFV_POINT_LPA, FIFF.FIFFV_POINT_NASION, FIFF.FIFFV_POINT_RPA))
    except KeyError:
        return False
    placeholder = np.allclose([-lpa[0], rpa[0]], nasion[1], atol=1e-5)
    return not placeholder


def positions_from_info(info) -> np.ndarray:
    """(C, 3) float32 positions for every channel of an ``mne.Info`` (pick EEG channels first).

    Channels with a digitised location use it. Locations that MNE placed in head coordinates through
    the recording's own fiducials (LPA, nasion, RPA) are already in our frame and are used as they
    are. Locations without fiducials (e.g. an EEGLAB file's spherical ``chanlocs``) sit in an
    arbitrary frame, typically a sphere centred on the origin, whose origin is ~5 cm above the head
    frame's; they are aligned to the template by matching scale and centre: a least-squares
    translation + isotropic scale onto the template positions of the channels with standard names
    (>= 3 of them), else a sphere fit onto the template's sphere (>= 8 located channels).

    Channels without a location fall back to ``positions([name])``; channels with neither raise
    ValueError naming them. Located positions whose median distance from the origin is outside
    3-30 cm raise ValueError (wrong units).
    """
    from mne.io.constants import FIFF

    names = list(info["ch_names"])
    if not names:
        raise ValueError("info has no channels")
    locs = np.array([ch["loc"][:3] for ch in info["chs"]], dtype=np.float64)  # (C, 3)
    # MNE marks "no location" with NaN (or zeros in older files)
    located = np.isfinite(locs).all(1) & (np.linalg.norm(np.nan_to_num(locs), axis=1) > 1e-6)  # (C,)
    frames = {int(info["chs"][i]["coord_frame"]) for i in np.flatnonzero(located)}
    if frames - {FIFF.FIFFV_COORD_HEAD, FIFF.FIFFV_COORD_UNKNOWN}:
        raise ValueError(f"channel locations are in coordinate frame(s) {sorted(frames)}, expected head (4)")

    known = {}  # index -> template position, for channels whose name is a 10-05 name
    for i, name in enumerate(names):
        try:
            known[i] = positions([name])[0]
        except ValueError:
            pass
    missing = [names[i] for i in range(len(names)) if not located[i] and i not in known]
    if missing:
        raise ValueError(f"channels with neither a location in info nor a known 10-05 name: {missing}")

    out = np.zeros((len(names), 3), dtype=np.float64)  # (C, 3)
    if located.any():
        pts = locs[located]  # (L, 3)
        if not _has_fiducials(info) or frames != {FIFF.FIFFV_COORD_HEAD}:
            pts = _align_to_template(pts, [known.get(i) for i in np.flatnonzero(located)])
        median_norm = float(np.median(np.linalg.norm(pts, axis=1)))
        if not 0.03 <= median_norm <= 0.30:
            raise ValueError(
                f"channel locations have median distance {median_norm:.3g} from the origin; expected "
                "0.03-0.30 m (are they in mm or cm? MNE expects metres)"
            )
        out[located] = pts
    for i in np.flatnonzero(~located):
        out[i] = known[i]
    return out.astype(np.float32)


def _align_to_template(pts: np.ndarray, template: list) -> np.ndarray:
    """Translate + isotropically scale (L, 3) points into the template's head frame."""
    pairs = [(p, t) for p, t in zip(pts, template) if t is not None]
    if len(pairs) >= 3:  # least squares: t ~ s * p + shift
        P = np.array([p for p, _ in pairs])
        T = np.array([t for _, t in pairs], dtype=np.float64)
        Pc, Tc = P - P.mean(0), T - T.mean(0)
        scale = (Pc * Tc).sum() / (Pc * Pc).sum()
        return (pts - P.mean(0)) * scale + T.mean(0)
    if len(pts) >= 8:
        centre, radius = _fit_sphere(pts)
        ref_centre, ref_radius = _fit_sphere(np.array(list(_table().values()), dtype=np.float64))
        return (pts - centre) * (ref_radius / radius) + ref_centre
    raise ValueError(
        f"cannot place {len(pts)} channel locations without fiducials: need >= 3 channels with 10-05 "
        "names or >= 8 located channels"
    )


# --------------------------------------------------------------------------------------------------
# validating positions where they enter the model
# --------------------------------------------------------------------------------------------------
# Plausible head radii. MNE's head frame puts the origin between the pre-auricular points, so scalp
# electrodes lie 5-15 cm from it; a median distance of 50-150 mm (with a margin) is a head in millimetres.
_METRE_MAX = 0.25
_MM_RANGE = (20.0, 250.0)
_checked: dict[int, tuple] = {}  # id(tensor) -> (weakref, version, device, result): validate once per tensor


def check_positions(coords, channel_mask=None, device=None, check_values: bool = True):
    """Electrode positions ``(C, 3)`` or ``(B, C, 3)`` as a float32 tensor in metres, or an ``InputError``.

    CDSE turns electrode-to-target distances into softmax weights; positions in the wrong unit or all at
    one point silently collapse those weights to one-hot rows, so they are checked where they enter:

    * dtype: floating point only (an integer tensor of metres is all zeros after truncation);
    * finite values only;
    * units: the median distance from the head-frame origin must be a head in metres (<= 0.25 m);
      50-150 mm (20-250 accepted) is converted from millimetres with a warning; anything else is refused;
    * not degenerate: not all zero, not all at one point (C >= 2), not on one line (C >= 3).

    ``channel_mask (B, C)`` marks the real channels of a padded batch (padding rows are not checked).
    ``check_values=False`` checks only the dtype and shape (no host sync: used while a CUDA graph is captured).
    Each tensor is validated once (memoised on its identity and version), so a training loop that reuses
    one coordinate tensor per montage pays for the check once.
    """
    import torch

    from .errors import InputError

    if isinstance(coords, torch.Tensor):
        t = coords
    else:
        arr = np.asarray(coords)
        if arr.dtype == object:
            raise InputError(f"electrode positions must be numbers, got an array of {arr.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(arr))
    if not (t.is_floating_point()):
        raise InputError(f"electrode positions must be floating point metres, got dtype {t.dtype}; "
                         "convert them with .float() (integers truncate metres to 0)")
    if t.dim() not in (2, 3) or t.shape[-1] != 3 or t.shape[-2] < 1:
        raise InputError(f"electrode positions must be (C, 3) or (B, C, 3); got shape {tuple(t.shape)}")
    if not check_values or torch.compiler.is_compiling():  # no host sync while captured or traced
        return t.to(device=device, dtype=torch.float32)
    key = id(coords) if isinstance(coords, torch.Tensor) else None
    if key is not None and channel_mask is None:
        hit = _checked.get(key)
        if hit is not None and hit[0]() is coords and hit[1] == coords._version and hit[2] == (device, t.device):
            return hit[3]
    pts = t.detach().to("cpu", torch.float64).reshape(-1, 3)
    if channel_mask is not None:
        mask = torch.as_tensor(channel_mask).detach().to("cpu", torch.bool)
        if t.dim() == 2:
            mask = mask.any(0) if mask.dim() == 2 else mask
        pts = pts[mask.reshape(-1)] if mask.numel() == pts.shape[0] else pts
    result = t.to(device=device, dtype=torch.float32)
    if pts.shape[0]:
        pts = pts.numpy()
        if not np.isfinite(pts).all():
            raise InputError("electrode positions contain NaN or Inf; every channel needs a finite 3-D position")
        radius = float(np.median(np.linalg.norm(pts, axis=1)))
        if radius == 0.0:
            raise InputError("electrode positions are all zero: the channels have no locations; "
                             "use samba.montage.positions(ch_names) or set a montage")
        if radius > _METRE_MAX:
            if _MM_RANGE[0] <= radius <= _MM_RANGE[1]:
                warnings.warn(f"electrode positions look like millimetres (median radius {radius:.0f}); "
                              "converted to metres", UserWarning, stacklevel=3)
                result = result / 1000.0
                pts = pts / 1000.0
            else:
                raise InputError(f"electrode positions must be in metres on a head (median radius 0.05-0.15 m); "
                                 f"got a median radius of {radius:g}: convert them to metres")
        spread = np.linalg.svd(pts - pts.mean(0), compute_uv=False) if len(pts) >= 2 else np.zeros(3)
        if len(pts) >= 2 and spread[0] < 1e-6:
            raise InputError(f"all {len(pts)} electrode positions are the same point; "
                             "every channel needs its own location")
        if len(pts) >= 3 and spread[1] < 1e-6 * max(spread[0], 1e-12) + 1e-9:
            raise InputError(f"the {len(pts)} electrode positions lie on one line; "
                             "they cannot be real scalp locations (check the montage)")
    if key is not None and channel_mask is None:
        if len(_checked) > 256:
            _checked.clear()
        _checked[key] = (weakref.ref(coords), coords._version, (device, t.device), result)
    return result
