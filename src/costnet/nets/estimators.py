"""Cost models behind one interface: ``fit(train, val)``, ``predict(frame) -> ms``, and
``adapt(rows, train, val)`` for few-shot transfer to a new device.

Every estimator takes enriched frames (``costnet.features.enrich``) and fits
whatever it learns (scalers, encoders, weights) on the training rows only;
validation rows serve early stopping and model selection, never fitting.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from numpy.typing import ArrayLike

from costnet.errors import CostnetError
from costnet.features.envelope import DeviceEnvelope
from costnet.features.transform import FeatureSet, FeatureTransform, Moments
from costnet.nets.arrays import LinearArrays, TreeArrays, from_arrays, to_arrays
from costnet.nets.mlp import BOUNDS, MLPConfig, build_mlp


def measured_times(values: ArrayLike) -> np.ndarray:
    """Measured times (ms) as floats; each must be positive and finite: an inf or NaN time
    trains a model that predicts NaN for every row, and makes every score of test rows NaN."""
    y = np.asarray(values, float)
    bad = ~(np.isfinite(y) & (y > 0))
    if bad.any():
        raise CostnetError(f"time_median_ms must be positive and finite for every row: {int(bad.sum())} of "
                           f"{len(y)} rows are not (e.g. {float(y[bad][0])!r})")
    return y


def target(frame: pd.DataFrame) -> np.ndarray:
    """Measured median time per call of ``frame``'s rows, ms (:func:`measured_times`)."""
    return measured_times(frame["time_median_ms"])


# Rows per forward pass at prediction: a chunk's activations (8192 x 256 floats, 8 MiB) stay in
# the CPU's caches; one pass over 200,000 rows ran at half the rate (experiments/bench_speed.py).
PREDICT_CHUNK = 8192


@dataclass(frozen=True)
class Monitor:
    """What watches a training run: Lightning loggers (False: none) and callbacks."""

    loggers: list[Any] | bool = False
    callbacks: Sequence[Any] = ()


class Estimator:
    """Base: subclasses implement fit, predict and their state.

    ``chosen`` holds the hyperparameters model selection picked and ``selection_score``
    their validation (or cross-validated) MRE; None where nothing was selected.
    """

    kind: ClassVar[str]
    chosen: dict[str, Any] | None = None
    selection_score: float | None = None
    envelope: DeviceEnvelope | None = None  # the MLP's with device_envelope (costnet.features.envelope)

    def watch(self, monitor: Monitor) -> None:
        """Let ``monitor`` watch the next fit. Only the MLP trains with Lightning; the other
        estimators have no training curve and ignore it."""

    def fit(self, train: pd.DataFrame, val: pd.DataFrame) -> Estimator:
        raise NotImplementedError

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError

    def adapt(self, rows: pd.DataFrame, train: pd.DataFrame, val: pd.DataFrame,
              finetune: Mapping[str, Any] | None = None, freeze: str = "none") -> Estimator:
        """A copy adapted to ``rows`` of a new device (few-shot); this one is left as it is.

        Here: refitted on ``train`` with ``rows`` added, selected on ``val``. The MLP
        fine-tunes instead, with ``finetune`` overriding its config and ``freeze``.
        """
        return copy.deepcopy(self).fit(pd.concat([train, rows]), val)

    @property
    def validation_loss(self) -> float | None:
        """The best validation loss of the last training run; None for estimators without one."""
        return None

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """What a fitted estimator is, as JSON-able data and named arrays (an artifact's content)."""
        raise NotImplementedError

    @classmethod
    def from_state(cls, doc: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> Estimator:
        """The estimator :meth:`state` described."""
        raise NotImplementedError


class MLPEstimator(Estimator):
    """The Lightning MLP on a feature set, regressing standardized log time.

    With ``ensemble > 1`` it trains that many MLPs from different seeds on the
    same rows and averages their log-time predictions.
    """

    kind = "mlp"

    def __init__(self, features: FeatureSet, cfg: MLPConfig) -> None:
        self.features, self.cfg = features, cfg
        self.transform = FeatureTransform(features)
        self.nets: list[torch.nn.Sequential] = []
        self.y_mean, self.y_std = 0.0, 1.0
        self.history: dict[str, float] = {}
        self.monitor = Monitor()

    def _base(self, frame: pd.DataFrame) -> np.ndarray:
        """Log of the time the MLP predicts relative to: 1 ms, or the roofline estimate.

        With ``relative_to: roofline`` the network learns how far each layer falls
        short of the device's roofline, and the hardware enters through the
        analytical estimate too, which carries over to devices never trained on.
        """
        if self.cfg.relative_to == "none":
            return np.zeros(len(frame))
        return self._log_time(frame, "t_roofline_ms", "relative_to=roofline")

    @staticmethod
    def _log_time(frame: pd.DataFrame, column: str, option: str) -> np.ndarray:
        """Log of each row's estimate ``column`` (ms), which ``option`` needs for every row."""
        if column not in frame or not np.all(frame[column].to_numpy(float) > 0):
            raise CostnetError(f"mlp {option} needs hardware peaks ({column}) for every row")
        return np.log(frame[column].to_numpy(float))

    def _x(self, frame: pd.DataFrame) -> np.ndarray:
        """The network's input: the features (of each device clipped into the training range with
        ``device_envelope``), and for the bounded head the log of its bound, from the true device."""
        x = self.transform.transform(self.envelope.clip(frame) if self.envelope else frame)
        if self.cfg.head != "bounded":
            return x
        return np.hstack([x, self._log_time(frame, BOUNDS[self.cfg.bound], "head=bounded")[:, None].astype(np.float32)])

    def _log_target(self, frame: pd.DataFrame) -> np.ndarray:
        """What the network regresses, before standardizing: log time relative to :meth:`_base`."""
        return np.log(target(frame)) - self._base(frame)

    def _xy(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        return self._x(frame), (self._log_target(frame) - self.y_mean) / self.y_std

    def _scale_target(self, logy: Moments) -> None:
        """Standardize the target by the training rows' log-time moments; the bounded head gives
        log time itself (its floor is in ms), so it is not standardized."""
        bounded = self.cfg.head == "bounded"
        self.y_mean, self.y_std = (0.0, 1.0) if bounded else (float(logy.means[0]), float(logy.stds[0] or 1.0))

    def _train_members(self, monitor: Monitor, train: Callable[[torch.nn.Module, MLPConfig, Monitor],
                                                                Mapping[str, float]]) -> None:
        """Build and train every member (seeds seed, seed + 1, ...) with ``train(net, cfg, monitor)``;
        ``monitor`` watches the first."""
        self.nets = []
        for member in range(self.cfg.ensemble):
            cfg = replace(self.cfg, seed=self.cfg.seed + member)
            torch.manual_seed(cfg.seed)  # initial weights are part of a seeded run
            net = build_mlp(self.transform.width, cfg)
            self.history = dict(train(net, cfg, monitor if member == 0 else Monitor()))
            self.nets.append(net)

    def watch(self, monitor: Monitor) -> None:
        """Let ``monitor`` (loggers, extra Lightning callbacks) watch the first member of the next fit."""
        self.monitor = monitor

    def fit(self, train: pd.DataFrame, val: pd.DataFrame) -> MLPEstimator:
        """Fit every member; the monitor given to :meth:`watch` watches the first, then is let go."""
        from costnet.nets.training import train_mlp  # training needs Lightning; predicting does not

        monitor, self.monitor = self.monitor, Monitor()
        if val.empty:
            raise CostnetError(f"the MLP stops early on validation rows, and none were given (training rows: "
                               f"{len(train)}); collect more rows or give the split a validation share")
        self.transform.fit(train)
        self.envelope = DeviceEnvelope().add(train) if self.cfg.device_envelope else None
        self._scale_target(Moments(1).add(self._log_target(train)))
        data = (*self._xy(train), *self._xy(val))
        self._train_members(monitor, lambda net, cfg, watched: train_mlp(
            net, cfg, *data, loggers=watched.loggers, y_scale=self.y_std, callbacks=watched.callbacks))
        return self

    def adapt(self, rows: pd.DataFrame, train: pd.DataFrame, val: pd.DataFrame,
              finetune: Mapping[str, Any] | None = None, freeze: str = "none") -> MLPEstimator:
        """A copy whose members continue training on ``rows`` alone (few-shot fine-tuning);
        scalers stay as fitted, ``train`` and ``val`` are not revisited.

        ``finetune``: MLPConfig fields that change for fine-tuning (epochs, lr, ...);
        ``freeze``: ``none``; ``body`` trains only the output layer; ``first`` freezes the
        first hidden layer.
        """
        from costnet.nets.training import train_mlp

        assert self.nets, "fit before adapt"
        if freeze not in ("none", "body", "first"):
            raise CostnetError(f"unknown freeze option {freeze!r}: choose from ['none', 'body', 'first']")
        cfg = replace(self.cfg, **(finetune or {}))
        tuned = copy.deepcopy(self)
        if tuned.envelope:  # the new device's rows are training rows now
            tuned.envelope.add(rows)
        x, y = tuned._xy(rows)
        for net in tuned.nets:
            linears = [m for m in net if isinstance(m, torch.nn.Linear)]
            for layer in {"none": [], "body": linears[:-1], "first": linears[:1]}[freeze]:
                layer.requires_grad_(False)
            tuned.history = dict(train_mlp(net, cfg, x, y, x, y, y_scale=tuned.y_std))
            net.requires_grad_(True)
        return tuned

    @property
    def validation_loss(self) -> float | None:
        return self.history.get("best_val_loss")

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Predicted time (ms) per row; the networks run over ``PREDICT_CHUNK`` rows at a time."""
        assert self.nets, "fit before predict"
        x = torch.from_numpy(self._x(frame))
        z = torch.empty(len(x))
        with torch.inference_mode():
            for net in self.nets:
                net.eval()
            for start in range(0, len(x), PREDICT_CHUNK):
                part = x[start:start + PREDICT_CHUNK]
                z[start:start + len(part)] = torch.stack([net(part).squeeze(-1) for net in self.nets]).mean(0)
        return np.exp(z.numpy().astype(float) * self.y_std + self.y_mean + self._base(frame))

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        assert self.nets, "fit before saving"
        doc = {"kind": self.kind, "features": self.transform.state(), "config": asdict(self.cfg),
               "members": len(self.nets), "y_mean": self.y_mean, "y_std": self.y_std,
               **({"envelope": self.envelope.state()} if self.envelope else {})}
        arrays = {f"net{i}.{name}": tensor.detach().cpu().numpy()
                  for i, net in enumerate(self.nets) for name, tensor in net.state_dict().items()}
        return doc, arrays

    @classmethod
    def from_state(cls, doc: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> MLPEstimator:
        transform = FeatureTransform.from_state(doc["features"])
        est = cls(transform.features, MLPConfig(**doc["config"]))
        est.transform, est.y_mean, est.y_std = transform, float(doc["y_mean"]), float(doc["y_std"])
        if est.cfg.device_envelope:
            if "envelope" not in doc:
                raise CostnetError("the model was trained with device_envelope but records no envelope")
            est.envelope = DeviceEnvelope.from_state(doc["envelope"])
        for i in range(int(doc["members"])):
            net = build_mlp(transform.width, est.cfg)
            prefix = f"net{i}."
            net.load_state_dict({k[len(prefix):]: torch.from_numpy(v.copy()) for k, v in arrays.items()
                                 if k.startswith(prefix)})
            est.nets.append(net)
        return est


class SklearnEstimator(Estimator):
    """A scikit-learn regressor on log time; the point of its grid chosen by
    costnet.nets.selection, on the validation rows or (``cv_folds`` k) by k-fold
    cross-validation over the training and validation rows."""

    kind = "sklearn"

    def __init__(self, features: FeatureSet, model: str, grid: Mapping[str, Sequence[Any]] | None = None,
                 seed: int = 0, cv_folds: int | None = None) -> None:
        from costnet.nets.selection import REGRESSORS  # scikit-learn: fitting only, not predicting

        if model not in REGRESSORS:
            raise CostnetError(f"unknown sklearn model {model!r}: choose from {sorted(REGRESSORS)}")
        self.features, self.model, self.seed, self.cv_folds = features, model, seed, cv_folds
        self.grid = dict(grid or {})
        self.transform = FeatureTransform(features)
        self.regressor: Any = None

    def fit(self, train: pd.DataFrame, val: pd.DataFrame) -> SklearnEstimator:
        from costnet.nets.selection import choose

        self.transform.fit(pd.concat([train, val]) if self.cv_folds else train)
        x, xv = self.transform.transform(train), self.transform.transform(val)
        choice = choose(self.model, self.grid, self.seed, x, np.log(target(train)), xv, np.log(target(val)),
                        self.cv_folds)
        self.regressor, self.chosen, self.selection_score = choice.regressor, choice.params, choice.score
        return self

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return np.exp(self.regressor.predict(self.transform.transform(frame)))

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        regressor = self.regressor if isinstance(self.regressor, LinearArrays | TreeArrays) else to_arrays(self.regressor)
        form, arrays = regressor.arrays()
        doc = {"kind": self.kind, "features": self.transform.state(), "model": self.model, "seed": self.seed,
               "cv_folds": self.cv_folds, "grid": self.grid, "chosen": self.chosen,
               "selection_score": self.selection_score, "regressor": form}
        return doc, {f"regressor.{k}": v for k, v in arrays.items()}

    @classmethod
    def from_state(cls, doc: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> SklearnEstimator:
        transform = FeatureTransform.from_state(doc["features"])
        est = cls(transform.features, str(doc["model"]), doc["grid"], int(doc["seed"]), doc["cv_folds"])
        est.transform, est.chosen, est.selection_score = transform, doc["chosen"], doc["selection_score"]
        prefix = "regressor."
        est.regressor = from_arrays(doc["regressor"], {k[len(prefix):]: v for k, v in arrays.items()
                                                       if k.startswith(prefix)})
        return est


class PerDevice(Estimator):
    """Two coefficients fitted per training device, and on all training rows pooled (``"*"``)
    for devices unseen in training; a subclass says how a pair is fitted and what it predicts."""

    def __init__(self) -> None:
        self.coef: dict[str, tuple[float, float]] = {}

    @staticmethod
    def _fit_pair(rows: pd.DataFrame) -> tuple[float, float]:
        raise NotImplementedError

    @staticmethod
    def _time(a: np.ndarray, b: np.ndarray, frame: pd.DataFrame) -> np.ndarray:
        """Time (ms) of ``frame``'s rows given each row's pair of coefficients."""
        raise NotImplementedError

    def fit(self, train: pd.DataFrame, val: pd.DataFrame) -> PerDevice:
        self.coef = {str(d): self._fit_pair(rows) for d, rows in train.groupby("device")}
        self.coef["*"] = self._fit_pair(train)
        return self

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        a, b = zip(*(self.coef.get(str(d), self.coef["*"]) for d in frame["device"]))
        return np.maximum(self._time(np.asarray(a), np.asarray(b), frame), 1e-6)

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"kind": self.kind, "coef": self.coef}, {}

    @classmethod
    def from_state(cls, doc: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> PerDevice:
        est = cls()
        est.coef = {str(d): (float(a), float(b)) for d, (a, b) in doc["coef"].items()}
        return est


class LinearFlops(PerDevice):
    """The paper's baseline: time = a * FLOPs + b, one line per device (all devices pooled as fallback)."""

    kind = "linear_flops"

    @staticmethod
    def _fit_pair(rows: pd.DataFrame) -> tuple[float, float]:
        from sklearn.linear_model import LinearRegression

        reg = LinearRegression().fit(rows[["flops"]].to_numpy(float), target(rows))
        return float(reg.coef_[0]), float(reg.intercept_)

    @staticmethod
    def _time(a: np.ndarray, b: np.ndarray, frame: pd.DataFrame) -> np.ndarray:
        return a * frame["flops"].to_numpy(float) + b


class Paleo(PerDevice):
    """PALEO's analytical estimate (Qi et al. 2017): T = FLOPs / (peak * PPP) + bytes / bandwidth.

    Per device, the compute and memory coefficients are fitted by non-negative
    least squares on training rows; PPP (platform percent of peak) is the
    reciprocal of the compute coefficient. Devices unseen in training use the
    coefficients fitted on all training rows, so the estimate still scales with
    their peak and bandwidth.
    """

    kind = "paleo"

    @staticmethod
    def _fit_pair(rows: pd.DataFrame) -> tuple[float, float]:
        from scipy.optimize import nnls

        y = target(rows)
        a = rows[["t_compute_ms", "t_memory_ms"]].to_numpy(float) / y[:, None]  # relative error weights
        if not np.isfinite(a).all():
            raise CostnetError("paleo needs each device's peak FLOP/s and bandwidth (hw_peak_gflops, "
                               "hw_bandwidth_gbs); collect with measure_peaks=true")
        coef, _ = nnls(a, np.ones(len(y)))
        return float(coef[0]), float(coef[1])

    @staticmethod
    def _time(a: np.ndarray, b: np.ndarray, frame: pd.DataFrame) -> np.ndarray:
        return a * frame["t_compute_ms"].to_numpy(float) + b * frame["t_memory_ms"].to_numpy(float)

    def ppp(self) -> dict[str, float]:
        return {d: (1 / c[0] if c[0] > 0 else float("inf")) for d, c in self.coef.items()}


class Roofline(Estimator):
    """The roofline itself, nothing fitted: time = max(FLOPs / peak, bytes / bandwidth)
    (Williams et al. 2009), the physics floor every other model is measured against."""

    kind = "roofline"

    def fit(self, train: pd.DataFrame, val: pd.DataFrame) -> Roofline:
        return self

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        if "t_roofline_ms" not in frame:
            raise CostnetError("the roofline needs hardware peaks (hw_peak_gflops, hw_bandwidth_gbs) for every row")
        return frame["t_roofline_ms"].to_numpy(float)

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"kind": self.kind}, {}

    @classmethod
    def from_state(cls, doc: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> Roofline:
        return cls()
