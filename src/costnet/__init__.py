"""costnet: learn how long deep-learning work takes on a given piece of hardware."""

__version__ = "0.1.0"
