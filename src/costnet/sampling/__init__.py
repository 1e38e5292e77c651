"""Seeded, reproducible sampling of layer configurations from config-defined spaces."""
