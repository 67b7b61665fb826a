"""Command-line arguments whose mistakes end in one line.

Every ``samba`` sub-command builds its parser from :class:`Parser`, so a missing or malformed argument
raises :class:`samba.errors.UsageError` (printed by ``samba.cli`` as one ``samba: error: ...`` line, exit
status 2) instead of argparse's usage block. The ``type=`` functions below check a number's range when it
is parsed: a count must be a whole number >= 1 and a duration, rate or step size a finite number > 0
(``nan`` and ``inf`` parse as floats, so a bare ``<= 0`` test lets them through).
"""

from __future__ import annotations

import argparse
import math

from .errors import UsageError

__all__ = ["Parser", "positive_int", "positive_float"]


class Parser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` that raises :class:`UsageError` instead of printing usage and exiting."""

    def error(self, message: str):  # argparse calls this for every parse mistake
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def positive_int(text: str) -> int:
    """argparse ``type=``: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """argparse ``type=``: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return value
