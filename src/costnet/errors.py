"""Errors and warnings costnet reports to its users."""

import sys


class CostnetError(Exception):
    """A user-facing error: bad input or config, reported as one clear message."""


def warn(message: str) -> None:
    """Tell the user, in one line on stderr, about something costnet repaired or assumed."""
    print(f"costnet: warning: {message}", file=sys.stderr)
