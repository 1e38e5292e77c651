"""Optuna hyperparameter sweeps of any costnet-train model and protocol (``costnet-sweep``).

costnet drives Optuna's ask-and-tell API from its own Hydra app rather than through
hydra-optuna-sweeper: every released version of that plugin (1.2.0, 1.3.0) requires
``optuna>=2.10.0,<3.0.0`` in its wheel metadata, which cannot coexist with the Optuna
this project depends on.
"""
