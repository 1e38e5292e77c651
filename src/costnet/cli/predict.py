"""``costnet-predict``: per-layer and whole-network time of a network (conf/predict.yaml): a classic
one, a Hugging Face config (``network=hf:PATH.json``) or the user's ``module:factory``."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

from omegaconf import DictConfig

from costnet.cli.common import bracket_lists, path_list, run_hydra
from costnet.config import float_option, int_option
from costnet.data.store import atomic_write_bytes, ensure_writable
from costnet.networks.api import predict_model
from costnet.networks.estimate import CLIPPED, Setting, hardware_features, load_models, network_time
from costnet.networks.build import build

COLUMNS = ["name", "op", "out_shape", "source", "flops", "time_ms", "share"]


def _task(cfg: DictConfig) -> None:
    setting = Setting(str(cfg.mode), str(cfg.optimizer), str(cfg.dtype), float_option(cfg, "ppp_comp"),
                      float_option(cfg, "ppp_mem"), bool(cfg.compute_floor), cfg.kernel_gap_ms, cfg.pass_ratio)
    batch_size, dataset_size = int_option(cfg, "batch_size"), int_option(cfg, "dataset_size")
    top = int_option(cfg, "top", minimum=0)
    if cfg.out:
        ensure_writable(Path(str(cfg.out)), file=True)
    # the device and the models first: a bad name fails at once, before a large model is built
    hardware_features(str(cfg.hardware), Path(str(cfg.hardware_specs)) if cfg.hardware_specs else None)
    models = load_models(path_list(cfg.model), str(cfg.hardware))
    module, example = build(str(cfg.network), batch_size, int_option(cfg, "seq_len"))
    result = predict_model(module, example, str(cfg.hardware), models=models,
                           hardware_specs=cfg.hardware_specs or None, method=str(cfg.method), **asdict(setting))
    table, hardware = result.layers, result.hardware
    modeled = sorted(set(table.loc[table["source"].str.startswith("model"), "op"].astype(str)))
    total = network_time(table, batch_size, dataset_size)
    shown = table[table["kind"] != "free"].sort_values("time_ms", ascending=False)
    shown = shown.head(top) if top > 0 else shown
    print(shown[COLUMNS].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    uncovered = table[table["kind"] == "analytical"]
    if len(uncovered):
        print(f"\n{len(uncovered)} layers no op covers, estimated analytically: "
              + ", ".join(sorted(set(uncovered["op"].astype(str)))))
    if clipped := sorted(set(table.loc[table["source"].str.contains(CLIPPED, regex=False), "op"].astype(str))):
        print(f"\n{cfg.hardware} lies beyond the GPUs the models of {', '.join(clipped)} were trained on (see "
              "source): their networks see it clipped into that range, their bounds use its own specs")
    print(f"\n{cfg.network} {cfg.mode} batch {cfg.batch_size} on {cfg.hardware}: "
          f"{total.batch_ms:.4g} ms per batch, {total.epoch_s:.4g} s per epoch of {total.batches_per_epoch} batches; "
          f"{100 * total.modeled_share:.1f} % of the time from trained models "
          f"({', '.join(modeled) or 'none'})")
    if cfg.out:
        result = {"network": str(cfg.network), "batch_size": batch_size, "seq_len": int(cfg.seq_len),
                  "hardware": str(cfg.hardware), "device": hardware["device"],
                  "mode": str(cfg.mode), "batch_ms": total.batch_ms, "epoch_s": total.epoch_s,
                  "batches_per_epoch": total.batches_per_epoch, "modeled_share": total.modeled_share,
                  "layers": json.loads(table[COLUMNS + ["kind", "approx"]].to_json(orient="records"))}
        atomic_write_bytes(Path(str(cfg.out)), json.dumps(result, indent=2).encode())


def main() -> None:
    sys.argv[1:] = bracket_lists(sys.argv[1:], ("model",))  # model=RUN_A,RUN_B as issue 15 writes it
    run_hydra("predict", _task)


if __name__ == "__main__":
    main()
