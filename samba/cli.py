"""`samba ...` command line (also `python -m samba ...`).

The commands and what each prints last are fixed by the public API (README, "Command line").
Each sub-command's options live beside its implementation (``samba.data.cli``, ``samba.train.cli``,
``samba.bench``); this module only dispatches, so ``samba pretrain --help`` shows the real parser.

Two promises to a user at a terminal:

* ``--help`` is instant: nothing here imports torch or mne at module level, and arguments are parsed
  before any heavy import (``python -X importtime -m samba --help`` shows only the standard library).
* A mistake ends in one line on stderr (``samba: error: ...``) and a non-zero exit, never a traceback:
  :class:`samba.errors.SambaError` (the data layer's errors derive from it) is caught here.
"""
from __future__ import annotations

import sys

from .cli_args import Parser
from .errors import SambaError, UsageError, report
from .paths import absolutize_env, existing_mirror

COMMANDS = {
    "data": "datasets and tasks in the registry (list) / check files against their sha256 (verify)",
    "pretrain": "self-supervised TSR pretraining; prints the checkpoint path",
    "finetune": "fine-tune or probe on one task; prints one JSON line of test metrics",
    "evaluate": "evaluate a fine-tuned model on a task; prints one JSON line",
    "embed": "SAMBA features of any EEG recording (EDF, BDF, BrainVision, EEGLAB, FIF, CNT, CSV); prints the .npz path",
    "bench": "efficiency benchmark, SAMBA vs braindecode peers; prints the JSON path",
}


def _data(argv: list[str]) -> int:
    p = Parser(prog="samba data", description=COMMANDS["data"])
    sub = p.add_subparsers(dest="action", required=True)
    sub.add_parser("list", help="datasets and tasks in the registry")
    v = sub.add_parser("verify", help="sha256 of every registry file that is present")
    v.add_argument("--mirror", default=None,
                   help="local folder laid out like the public mirror (default: $SAMBA_DATA_MIRROR, then the cache)")
    args = p.parse_args(argv)
    from .data import cli as data_cli

    if args.action == "list":
        print(data_cli.data_list())
        return 0
    mirror = existing_mirror(args.mirror)
    text, code = data_cli.data_verify(mirror=mirror)  # exit 1 when a file is bad or missing, or none was checked
    for line in text.splitlines():  # the report on stdout (its last line the counts), its error on stderr
        if line.startswith("error: "):
            print(f"samba: {line}", file=sys.stderr)
        else:
            print(line)
    return code


def _dispatch(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: samba <command> [options]\n\ncommands:")
        for name, doc in COMMANDS.items():
            print(f"  {name:<9} {doc}")
        print("\n`samba <command> --help` for a command's options.")
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        from . import __version__

        print(__version__)
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd in ("pretrain", "finetune", "evaluate", "embed"):
        from .allocator import keep_freed_memory

        keep_freed_memory()  # reuse freed host memory across steps (see samba.allocator); bench keeps the defaults
    if cmd == "data":
        return _data(rest)
    if cmd in ("pretrain", "finetune", "evaluate"):
        from .train import cli as train_cli  # parses before importing torch (samba.train is lazy)

        return int(getattr(train_cli, f"{cmd}_main")(rest) or 0)
    if cmd == "embed":
        from .embedding_cli import embed_main

        return int(embed_main(rest) or 0)
    if cmd == "bench":
        from .bench import bench_main

        return int(bench_main(rest) or 0)
    raise UsageError(f"unknown command {cmd!r}; choose one of {', '.join(COMMANDS)} (samba --help)")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Relative paths in SAMBA_DATA_MIRROR / SAMBA_DATA_DIR mean "from where the user typed the command".
    absolutize_env()
    try:
        return _dispatch(argv)
    except SambaError as e:
        return report(e)
    except KeyboardInterrupt:
        print("samba: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
