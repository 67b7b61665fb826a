"""The one exception type a user is meant to read.

Every mistake a user can make at a boundary (a bad path, an unknown task, a subject that is not in the
split, a checkpoint whose hash does not match, coordinates in the wrong unit ...) raises a subclass of
:class:`SambaError` whose message is one complete sentence naming the problem and, where there is one,
the fix. ``samba ...`` on the command line prints that message as one line (``samba: error: ...``) and
exits with status 2; anything else that escapes is a bug and keeps its traceback.

The data layer's own errors (``DataNotAvailableError``, ``ChecksumError``, ``CorruptFileError`` ...)
derive from :class:`SambaError` too, and keep their built-in bases (``FileNotFoundError``,
``ValueError``) so ``except ValueError`` in user code still works.
"""

from __future__ import annotations

import sys


class SambaError(Exception):
    """A user-facing error: the message says what is wrong and how to fix it."""

    exit_code = 2


class UsageError(SambaError, ValueError):
    """An argument or option that cannot work (out of range, unknown name, wrong type)."""


class InputError(SambaError, ValueError):
    """Input data that cannot be used (unreadable file, degenerate coordinates, too short a recording)."""


def report(err: SambaError) -> int:
    """Print ``err`` as the one line a user reads (``samba: error: ...``) and return its exit status."""
    print(f"samba: error: {err}", file=sys.stderr)
    return err.exit_code


def run_main(main, argv=None) -> int:
    """``main(argv)`` as a command: its return value, or :func:`report` of a :class:`SambaError`."""
    try:
        return int(main(argv) or 0)
    except SambaError as err:
        return report(err)
