"""``samba embed RECORDING``: SAMBA features of any EEG recording, written to an ``.npz``.

Arguments are parsed before torch and MNE are imported, so ``samba embed --help`` and argument mistakes
answer at once.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .cli_args import Parser, positive_float, positive_int


def embed_parser() -> Parser:
    p = Parser(
        prog="samba embed",
        description="SAMBA bottleneck features of a recording (EDF/EDF+, BDF, GDF, BrainVision .vhdr, EEGLAB .set, "
                    "FIF, Neuroscan .cnt, or CSV: first column time in seconds, or --sfreq; one column per electrode, uV). "
                    "Writes an .npz with features (n_windows, D, T'), pooled (n_windows, D) = their mean over time, "
                    "times_s (window starts), ch_names, sfreq, window_s and checkpoint_sha256; prints its path.")
    p.add_argument("recording", help="the recording file")
    p.add_argument("--out", default=None, help="output .npz (default: <recording name>.samba.npz in the current folder)")
    p.add_argument("--window-s", type=positive_float, default=30.0, help="window length in seconds (default 30; windows tile "
                   "the recording without overlap, the last partial window is left out)")
    p.add_argument("--checkpoint", default=None, help="SAMBA checkpoint (default: the released one)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1 ...")
    p.add_argument("--sfreq", type=positive_float, default=None, help="sampling rate of a CSV without a time column")
    p.add_argument("--pooled-only", action="store_true", help="store only the pooled (n_windows, D) features")
    p.add_argument("--chunk-s", type=positive_float, default=600.0, help="seconds of signal preprocessed at a time (default 600)")
    p.add_argument("--batch-size", type=positive_int, default=16, help="windows per forward pass (default 16)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    return p


def embed_main(argv: list[str] | None = None) -> int:
    """Exit status 0, or 2 with one ``samba: error: ...`` line for any mistake the user can fix."""
    a = embed_parser().parse_args(argv)
    from .errors import SambaError, report

    try:
        return _run(a)
    except SambaError as err:
        return report(err)


def _run(a: argparse.Namespace) -> int:
    from .errors import UsageError
    from .paths import user_path

    out = user_path(a.out) if a.out else user_path(Path(a.recording).name.split(".")[0] + ".samba.npz")
    if out.suffix != ".npz":
        raise UsageError(f"--out must end in .npz, got {out.name}")
    logging.basicConfig(level=logging.WARNING, format="samba: %(message)s", stream=sys.stderr)

    from .embedding import embed_to_file

    path = embed_to_file(user_path(a.recording), out, model=a.checkpoint, window_s=a.window_s, sfreq=a.sfreq,
                         device=a.device, pooled_only=a.pooled_only, chunk_s=a.chunk_s, batch_size=a.batch_size,
                         progress=not a.no_progress)
    print(str(path))
    return 0
