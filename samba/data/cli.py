"""Functions behind `samba data list` and `samba data verify` (argparse lives in samba/cli.py)."""

from __future__ import annotations

import os

from . import registry
from .tasks import TASKS


def data_list() -> str:
    """A table of the registry's datasets (files, licence, device, tasks) and of the tasks."""
    reg = registry.load_registry()
    rows = [("dataset", "files", "licence", "device", "tasks")]
    for name, d in reg["datasets"].items():
        rows.append((name, str(len(d["files"])), d["licence"], d["device"], ",".join(d["tasks"]) or "-"))
    for name, d in reg.get("external", {}).items():
        rows.append((name, "external", d["licence"].split(" (")[0], d["device"], ",".join(d["tasks"])))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines += ["", "task              dataset         classes"]
    for name, spec in TASKS.items():
        lines.append(f"{name:<17} {spec.dataset:<15} {' / '.join(spec.class_names)}")
    return "\n".join(lines)


def data_verify(mirror: str | os.PathLike | None = None) -> tuple[str, int]:
    """Check every registry file present locally; report ends with `N ok, M missing, K bad`.

    Exit code 0 unless a file is bad (missing files are normal for a partial mirror).
    """
    roots = [str(r) for r in (registry.mirror_root(mirror), registry.cache_root()) if r is not None]
    ok, missing, bad = registry.verify(mirror)
    lines = [f"checking {len(ok) + len(missing) + len(bad)} registry files in {' then '.join(roots)}"]
    lines += [f"BAD      {p}" for p in bad]
    by_dataset: dict[str, int] = {}
    for p in missing:
        by_dataset[p.split("/", 1)[0]] = by_dataset.get(p.split("/", 1)[0], 0) + 1
    lines += [f"missing  {n} file(s) of {ds} (not mirrored; downloadable)" for ds, n in by_dataset.items()]
    lines.append(f"{len(ok)} ok, {len(missing)} missing, {len(bad)} bad")
    return "\n".join(lines), (1 if bad else 0)
