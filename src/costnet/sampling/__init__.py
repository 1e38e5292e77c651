"""Seeded, reproducible sampling of layer configurations from config-defined spaces."""

from costnet.sampling.params import Choice, IntRange
from costnet.sampling.space import Space, load_space

__all__ = ["Choice", "IntRange", "Space", "load_space"]
