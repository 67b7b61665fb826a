"""Functions behind `samba data list` and `samba data verify` (argparse lives in samba/cli.py)."""

from __future__ import annotations

import os
import re

from samba.errors import InputError

from . import registry
from .tasks import TASKS


def _task_option(loader: str) -> str:
    """How ``samba finetune`` reads an external dataset, from its registry ``loader`` entry."""
    moabb = re.search(r"load_moabb\('([^']+)'\)", loader)
    if moabb:
        return f"--task moabb:{moabb.group(1)}"
    for prefix in ("tuab", "stew", "dreamer"):
        if f"load_{prefix}(" in loader:
            return f"--task {prefix}:PATH"
    return "-"


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def data_list() -> str:
    """Three tables: the mirrored datasets, the external ones (and how to read them), and the tasks."""
    reg = registry.load_registry()
    rows = [("dataset", "files", "licence", "device", "tasks")]
    for name, d in reg["datasets"].items():
        rows.append((name, str(len(d["files"])), d["licence"], d["device"], ",".join(d["tasks"]) or "-"))
    ext = [("external dataset", "licence", "device", "paper's task", "read with (you obtain the data)")]
    for name, d in reg.get("external", {}).items():
        ext.append((name, d["licence"].split(" (")[0], d["device"], ",".join(d["tasks"]),
                    _task_option(d.get("loader", ""))))
    tasks = [("task", "dataset", "classes", "protocol")]
    for name, spec in TASKS.items():
        tasks.append((name, spec.dataset, " / ".join(spec.class_names), spec.description))
    return "\n".join(_table(rows) + [""] + _table(ext) + [""] + _table(tasks))


def data_verify(mirror: str | os.PathLike | None = None) -> tuple[str, int]:
    """Check every registry file present locally; the report's last line is ``N ok, M missing, K bad``.

    Exit code 1 when a file is bad or missing (a file the mirror should hold but does not: see
    ``registry.verify_report``), when the mirror folder does not exist, or when nothing at all could be
    checked (no mirror and an empty cache must not read as success); 0 otherwise. Files a partial mirror
    does not carry are listed as "not mirrored" and are not an error.
    """
    root = registry.mirror_root(mirror)
    roots = [str(r) for r in (root, registry.cache_root()) if r is not None]
    n_all = len(registry.files())
    try:
        rep = registry.verify_report(mirror)
    except InputError as err:
        return "\n".join([f"error: {err}", f"0 ok, {n_all} missing, 0 bad"]), 1
    ok, missing, bad, absent = rep["ok"], rep["missing"], rep["bad"], rep["not_mirrored"]
    lines = [f"checking {n_all} registry files in {' then '.join(roots)}"]
    lines += [f"BAD      {p}" for p in bad]
    lines += [f"MISSING  {p}" for p in missing]
    by_dataset: dict[str, int] = {}
    for p in absent:
        by_dataset[p.split("/", 1)[0]] = by_dataset.get(p.split("/", 1)[0], 0) + 1
    where = "not mirrored" if root is not None else "not downloaded"
    lines += [f"absent   {n} file(s) of {ds} ({where}; downloadable)" for ds, n in by_dataset.items()]
    nothing = not ok and not bad
    if nothing:
        lines.append("error: no registry file was found to check; pass --mirror DIR or set SAMBA_DATA_MIRROR (or download files into SAMBA_DATA_DIR first)")
    lines.append(f"{len(ok)} ok, {len(missing)} missing, {len(bad)} bad")
    return "\n".join(lines), (1 if bad or missing or nothing else 0)
