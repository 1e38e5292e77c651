"""Whole networks on this CPU, the analogue of Justus et al. 2018's Fig. 9 and Lu et al.
2017's layer-sum vs whole-pass table: per-op cost models collected and trained here
(conf/networks.yaml, as ``costnet-run --config-name networks``), then every network timed
whole, layer by layer, and predicted as the sum of its layers (costnet.networks.validate)."""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from costnet.config import compose
from costnet.errors import CostnetError
from costnet.networks import validate as networks_validate
from costnet.networks.estimate import hardware_features, load_models
from costnet.networks.zoo import NETWORKS
from costnet.pipeline import run_job
from costnet.reproduce.provenance import dataset_files
from costnet.reproduce.result import Result
from costnet.timing import TimingConfig


def cost_models(cfg: DictConfig, out: Path) -> DictConfig:
    """Collect and train the per-op cost models into ``out`` (data/ and train/<op>/): the
    entries of conf/networks.yaml for ``cfg.ops`` (all when null: then also the collect entries
    of an op's further spaces, such as conv2d_wide), each collect entry with
    ``cfg.collect[name]`` and ``cfg.every.collect`` added, each train entry with
    ``cfg.every.train``. Returns the job's config."""
    job = compose("networks", [f"out={out}", f"seed={cfg.seed}"])
    ops = list(cfg.ops) if cfg.ops else list(job.train)
    if unknown := sorted(set(ops) - (set(job.collect) & set(job.train))):
        raise CostnetError(f"{cfg.name}: ops {unknown} have no collect and train entries in conf/networks.yaml")
    extra = cfg.get("collect") or {}
    collected = ops if cfg.ops else list(job.collect)
    job.collect = {name: [*job.collect[name], *extra.get(name, []), *cfg.every.collect] for name in collected}
    job.train = {op: [*job.train[op], *cfg.every.train, f"tracking.group={cfg.name}"] for op in ops}
    run_job(job)
    return job


def run(cfg: DictConfig) -> Result:
    out = Path(str(cfg.out))
    models_dir = out / "cost_models"
    job = cost_models(cfg, models_dir)
    timing_cfg = compose("collect", [f"timing={cfg.timing}"])
    timing = TimingConfig.from_config(OmegaConf.to_container(timing_cfg.timing, resolve=True))
    models = load_models(sorted(p for p in (models_dir / "train").iterdir() if p.is_dir()), "local")
    networks = list(cfg.networks or NETWORKS)
    summary, layers = networks_validate.validate(
        networks, list(cfg.batches), list(cfg.modes), models, hardware_features("local"), timing,
        OmegaConf.to_container(timing_cfg.optimizers, resolve=True), str(cfg.optimizer), out=out / "progress",
        processes=int(cfg.processes))
    layers.to_parquet(out / "layers.parquet")
    figure = networks_validate.plot(summary, out / "whole_vs_sum.png").name
    notes = [*networks_validate.summary_lines(summary),
             f"Cost models (one per op, MLP preferred): {', '.join(sorted(models))}; other layers analytical.",
             f"{torch.get_num_threads()} torch threads; optimizer {cfg.optimizer}; timing "
             f"conf/timing/{cfg.timing}.yaml; every layer's measured and predicted time in layers.parquet.",
             f"Each whole pass is timed in {cfg.processes} fresh process(es), one per round over every run, the "
             "fastest kept (costnet.networks.validate.validate; `whole_spread` = slowest / fastest), its layers one "
             "after another in the experiment's process, as the collector times rows.",
             "Measured times vary from run to run (the machine's load and clocks): unlike the other "
             "experiments, a rerun gives close but not identical numbers."]
    return Result.described(cfg, summary.drop(columns=["wall_s"]), figures=[figure], notes=notes,
                            inputs=dataset_files({"name": "local", "path": str(models_dir / "data")}),
                            runs={"cost_models": OmegaConf.to_container(job, resolve=True)})
