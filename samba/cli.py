"""`samba ...` command line (also `python -m samba ...`).

The commands and what each prints last are fixed by the public API (README, "Command line").
Each sub-command's options live beside its implementation (``samba.data.cli``, ``samba.train.cli``,
``samba.bench``); this module only dispatches, so ``samba pretrain --help`` shows the real parser.
"""
from __future__ import annotations

import argparse
import sys

COMMANDS = {
    "data": "datasets and tasks in the registry (list) / check files against their sha256 (verify)",
    "pretrain": "self-supervised TSR pretraining; prints the checkpoint path",
    "finetune": "fine-tune or probe on one task; prints one JSON line of test metrics",
    "evaluate": "evaluate a fine-tuned model on a task; prints one JSON line",
    "embed": "SAMBA features of any EEG recording (EDF, BDF, BrainVision, EEGLAB, FIF, CNT, CSV); prints the .npz path",
    "bench": "efficiency benchmark, SAMBA vs braindecode peers; prints the JSON path",
}


def _data(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="samba data", description=COMMANDS["data"])
    sub = p.add_subparsers(dest="action", required=True)
    sub.add_parser("list", help="datasets and tasks in the registry")
    v = sub.add_parser("verify", help="sha256 of every registry file that is present")
    v.add_argument("--mirror", default=None, help="local folder laid out like shared/data (default: $SAMBA_DATA_MIRROR, then the cache)")
    args = p.parse_args(argv)
    from .data import cli as data_cli

    if args.action == "list":
        print(data_cli.data_list())
        return 0
    report, code = data_cli.data_verify(mirror=args.mirror)
    print(report)
    return code


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
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
    if cmd == "data":
        return _data(rest)
    if cmd in ("pretrain", "finetune", "evaluate"):
        from .train import cli as train_cli

        return int(getattr(train_cli, f"{cmd}_main")(rest) or 0)
    if cmd == "embed":
        from .embedding_cli import embed_main

        return int(embed_main(rest) or 0)
    if cmd == "bench":
        from .bench import bench_main

        return int(bench_main(rest) or 0)
    print(f"samba: unknown command {cmd!r}; choose one of {', '.join(COMMANDS)}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
