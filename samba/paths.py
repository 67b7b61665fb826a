"""Where things are: the repository, its output folders, and paths a user typed.

Two rules make the notebooks, the CLI and the tests find the same files from wherever they are started:

1. **Paths a user types are resolved against the directory they typed them in.** ``SAMBA_DATA_MIRROR=
   ../eeg-mirror`` typed at the repository root means ``<root>/../eeg-mirror``, also inside a notebook kernel
   whose working directory is ``notebooks/``. Every entry point (``samba ...``, ``scripts/run_notebooks.py``,
   the test suite) calls :func:`absolutize_env` once at start, before anything changes directory, so child
   processes inherit absolute paths.
2. **Repository files are found from the package, not from the working directory.** :data:`REPO` is the
   checkout that holds this package (an editable install); figures, results and checkpoints live under it.
   Outputs of the quick profile go to ``build/`` (ignored by git); committed figures change only when a
   full-profile run is asked to write them (``SAMBA_WRITE_FIGURES=1``, set by
   ``scripts/run_notebooks.py --profile full --write-figures``).
"""

from __future__ import annotations

import os
from pathlib import Path

#: Environment variables that hold paths a user typed (resolved by :func:`absolutize_env`).
PATH_VARIABLES = ("SAMBA_DATA_MIRROR", "SAMBA_DATA_DIR", "SAMBA_CACHE_DIR")

#: The checkout this package was imported from (``samba/`` lives directly under it).
REPO = Path(__file__).resolve().parents[1]


def user_path(value: str | os.PathLike, base: str | os.PathLike | None = None) -> Path:
    """``value`` as an absolute path: ``~`` expanded, a relative path joined to ``base`` (default: the
    current working directory, i.e. where the user typed it). The path need not exist."""
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = Path(base if base is not None else os.getcwd()) / path
    return Path(os.path.normpath(path))


def absolutize_env(environ: dict | None = None) -> None:
    """Make every path variable in :data:`PATH_VARIABLES` absolute, against the current directory."""
    env = os.environ if environ is None else environ
    for name in PATH_VARIABLES:
        value = env.get(name)
        if value:
            env[name] = str(user_path(value))


def in_repo() -> bool:
    """Whether :data:`REPO` is a source checkout (notebooks and figures beside the package)."""
    return (REPO / "notebooks").is_dir() and (REPO / "pyproject.toml").is_file()


def repo_path(*parts: str) -> Path:
    """A path inside the repository, e.g. ``repo_path("checkpoints", "samba_pretrained")``."""
    return REPO.joinpath(*parts)


def build_dir(*parts: str) -> Path:
    """``<repo>/build/...`` (ignored by git), created on demand."""
    path = REPO.joinpath("build", *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_figures() -> bool:
    """Whether this run may overwrite the committed ``figures/`` (a deliberate full-profile run)."""
    return os.environ.get("SAMBA_WRITE_FIGURES", "0").strip().lower() in ("1", "true", "yes")


def figures_dir() -> Path:
    """Where a notebook saves its figures: ``figures/`` on a deliberate run, else ``build/figures/``."""
    if write_figures():
        return repo_path("figures")
    return build_dir("figures")


def existing_mirror(value: str | None = None) -> str | None:
    """The data mirror a user named (option, else ``$SAMBA_DATA_MIRROR``) as an absolute path, or None when
    none is named; raises :class:`samba.errors.UsageError` when it is not a folder."""
    from .errors import UsageError

    value = value or os.environ.get("SAMBA_DATA_MIRROR") or None
    if value is None:
        return None
    path = user_path(value)
    if not path.is_dir():
        raise UsageError(f"data mirror {value!r} is not a folder ({path}); "
                         "pass --mirror DIR or set SAMBA_DATA_MIRROR to a folder laid out like the public mirror")
    return str(path)


def check_writable_dir(path, what: str = "--out", create: bool = True) -> Path:
    """Create the folder ``path`` if needed and prove it writable with a probe file, before any work starts.

    A path that is a file, or that lies under one, is a :class:`samba.errors.UsageError`, not an ``OSError``.
    ``create=False`` creates nothing: the nearest existing folder on the way must be writable (for a command
    that may still fail before it writes, and should then leave no empty folder behind)."""
    from .errors import UsageError

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{what} {path} is a file, not a folder; choose a folder name")
    if not create:
        first = next(p for p in (path, *path.parents) if p.exists())
        if not first.is_dir():
            raise UsageError(f"{what} {path} lies under the file {first}; choose a folder name")
        if not os.access(first, os.W_OK | os.X_OK):
            raise UsageError(f"{what} {path} cannot be written ({first} is not writable); choose another folder")
        return path
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test.{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise UsageError(f"{what} {path} cannot be written ({err.strerror or err}); choose another folder") from None
    return path


def check_writable_file(path, what: str = "--out") -> Path:
    """``path`` is a file the caller will write: its folder is created and proven writable first."""
    from .errors import UsageError

    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{what} {path} is a folder; give a file name")
    check_writable_dir(path.parent, what=f"the folder of {what}", create=False)  # the writer makes it
    return path
