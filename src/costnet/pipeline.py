"""The collect-then-train pipeline behind ``costnet-run`` (conf/run.yaml) and the network
experiment's cost models (conf/networks.yaml): collect, summarize, train."""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig

from costnet.collect.runner import collect
from costnet.config import compose
from costnet.data.info import info
from costnet.data.store import ensure_writable
from costnet.protocols.train import run_training, summary_table
from costnet.tracking import quiet_lightning


def run_job(cfg: DictConfig) -> None:
    """Collect every entry of ``cfg.collect`` into ``<out>/data``, summarize the dataset, and
    train every entry of ``cfg.train`` on it into ``<out>/train/<name>`` (conf/run.yaml,
    conf/networks.yaml); ``cfg.every.collect`` and ``cfg.every.train``, where given, come
    before every entry's own overrides."""
    quiet_lightning()
    every = cfg.get("every") or {}
    out = Path(str(cfg.out))
    ensure_writable(out)
    data = out / "data"
    for name, overrides in cfg.collect.items():
        print(f"== collect {name}")
        job = compose("collect", [
            *every.get("collect", []), *overrides, f"out={data}", f"seed={cfg.seed}", f"device={cfg.device}"])
        print("\n".join(collect(job).lines()))
    print("== dataset")
    print(info(data))
    for name, overrides in cfg.train.items():
        print(f"== train {name} (test rows: 10 % of the collection, never used for fitting)")
        job = compose("train", [
            *every.get("train", []), *overrides, "dataset=local", f"dataset.path={data}",
            f"out={out / 'train' / name}", f"seed={cfg.seed}"])
        print(summary_table(run_training(job)))
        manifest = json.loads((out / "train" / name / "manifest.json").read_text())
        print(f"artifacts: {[a['path'] for a in manifest['artifacts']]} in {out / 'train' / name}")
