"""Errors costnet reports to its users."""


class CostnetError(Exception):
    """A user-facing error: bad input or config, reported as one clear message."""
