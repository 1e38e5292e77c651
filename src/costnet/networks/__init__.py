"""Whole networks: classic definitions, layer extraction and network-level time."""
