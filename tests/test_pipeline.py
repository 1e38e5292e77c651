"""costnet-run's job end to end on a tiny collection: one line per stage, a short report."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from costnet.config import compose
from costnet.pipeline import run_job


def test_main_job_prints_a_short_report(tmp_path: Path, capsys) -> None:
    cfg = compose("run", [f"out={tmp_path}"])
    cfg.collect = OmegaConf.create({"dense": ["space=dense", "n=60", "measure_peaks=false", "progress=false",
                                              "timing.budget_s=0.01", "timing.retries=2"]})
    cfg.train = OmegaConf.create({"dense": ["op=dense", "protocol=per_device", "baselines=[linear_flops]",
                                            "estimator.max_epochs=2", "tracking.wandb=disabled",
                                            "dataset.disturbed=keep"]})
    run_job(cfg)
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    assert lines[0].startswith("collected dense: 60 rows in ") and lines[0].endswith(" disturbed")
    assert lines[1].startswith("trained dense: 2 models in ")
    report = lines[lines.index("== report"):]
    assert report[1].startswith("rows: 60 timed (dense 60), 0 failed or skipped; disturbed by other work: ")
    header = report[3].split()
    assert header[:3] == ["op", "model", "test"] and "RMSE" in header
    models = {line.split()[1]: [float(v) for v in line.split()[2:]] for line in report[4:6]}
    assert set(models) == {"mlp", "linear_flops"} and all(v[0] > 0 and v[1] > 0 for v in models.values())
    assert report[-2] == f"plots: {tmp_path / 'train' / 'dense' / 'plots'}"
    assert len(lines) < 16  # short: the stages' full summaries went to run.log
    log = (tmp_path / "run.log").read_text()
    assert "== collect dense" in log and "== dataset" in log and "== train dense" in log
