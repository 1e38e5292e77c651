"""What every command does with bad options: one line naming the bad value, exit status 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from costnet.config import float_option, int_option
from costnet.errors import CostnetError
from tests.conftest import run_main


def test_typed_options() -> None:
    cfg = OmegaConf.create({"n": 3, "big": 1.28e6, "zero": 0, "none": None, "ratio": 0.5, "nested": {"k": 2}})
    assert int_option(cfg, "n") == 3 and int_option(cfg, "big") == 1280000 and int_option(cfg, "nested.k") == 2
    assert int_option(cfg, "zero", minimum=0) == 0 and int_option(cfg, "none", optional=True) is None
    assert float_option(cfg, "ratio") == 0.5 and float_option(cfg, "none", optional=True) is None
    for value, message in [("abc", "n must be a positive integer, got 'abc'"), (0, "got 0"), (1.5, "got 1.5"),
                           (True, "got True"), (None, "got None"), (float("inf"), "got inf")]:
        with pytest.raises(CostnetError, match=message):
            int_option(OmegaConf.create({"n": value}), "n")
    with pytest.raises(CostnetError, match="n must be null or a non-negative integer, got -1"):
        int_option(OmegaConf.create({"n": -1}), "n", minimum=0, optional=True)
    for value in ("abc", 0, -1.0, float("nan"), float("inf"), False):
        with pytest.raises(CostnetError, match=f"ppp must be a positive number, got {value!r}"):
            float_option(OmegaConf.create({"ppp": value}), "ppp")


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "log.csv"
    path.write_text("step,time\n0,0\n10,1\n20,2\n")
    return path


OFFLINE = ["mode=offline", "flops_per_sample=1e9", "bytes_per_sample=1e8", "params=1e6", "dataset_size=1000",
           "epochs=1"]


@pytest.mark.parametrize(("command", "args", "message"), [
    ("collect", ["n=abc"], "n must be a non-negative integer, got 'abc'"),
    ("collect", ["flush_seconds=soon"], "flush_seconds must be a positive number, got 'soon'"),
    ("predict", ["batch_size=abc"], "batch_size must be a positive integer, got 'abc'"),
    ("predict", ["top=-1"], "top must be a non-negative integer, got -1"),
    ("predict", ["ppp_comp=abc"], "ppp_comp must be a positive number, got 'abc'"),
    ("gauge", [*OFFLINE, "batch_size=abc"], "batch_size must be a positive integer, got 'abc'"),
    ("gauge", [*OFFLINE, "ppp=abc"], "ppp must be a positive number, got 'abc'"),
    ("gauge", ["mode=online", "total_steps=100", "window=abc"], "window must be a positive integer, got 'abc'"),
    ("gauge", ["mode=online", "total_steps=100", "band=abc"], "band must be two quantiles, e.g. band=[0.1,0.9]; got 'abc'"),
    ("paleo", ["ppp_comp=abc"], "ppp_comp must be a positive number, got 'abc'"),
    ("paleo", ["batch_size=abc"], "batch_size must be null or a positive integer, got 'abc'"),
])
def test_bad_number_is_one_line(tmp_path: Path, log: Path, command: str, args: list[str], message: str) -> None:
    extra = [f"out={tmp_path / 'out'}"] if command == "collect" else [f"log={log}"] if "mode=online" in args else []
    code, stderr = run_main(command, *args, *extra)
    assert (code, stderr.strip().splitlines()) == (2, [f"costnet: error: {message}"])


@pytest.mark.parametrize(("command", "args", "kind"), [
    ("collect", [], "directory"),
    ("predict", ["network=alexnet", "batch_size=1", "hardware=V100"], "file"),
    ("paleo", [], "file"),
    ("gauge", OFFLINE, "directory"),
    ("evaluate", ["model=no_such_model.safetensors"], "file"),
    ("train", [], "directory"),
    ("sweep", [], "directory"),
    ("run", [], "directory"),
])
def test_out_under_a_file_is_one_line(tmp_path: Path, command: str, args: list[str], kind: str) -> None:
    (tmp_path / "file").write_text("in the way")
    out = tmp_path / "file" / "run"
    code, stderr = run_main(command, *args, f"out={out}")
    assert (code, stderr.strip().splitlines()) == (
        2, [f"costnet: error: output {kind} '{out}' is not writable: Not a directory"])


def test_reproduce_out_under_a_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("in the way")
    out = tmp_path / "file" / "results"
    code, stderr = run_main("reproduce", "--only", "paleo_scaling", "--out", str(out))
    assert (code, stderr.strip().splitlines()) == (
        2, [f"costnet: error: output directory '{out}' is not writable: Not a directory"])


def test_predict_out_that_is_a_directory(tmp_path: Path) -> None:
    code, stderr = run_main("predict", "network=alexnet", "batch_size=1", "hardware=V100", f"out={tmp_path}")
    assert (code, stderr.strip().splitlines()) == (
        2, [f"costnet: error: output file '{tmp_path}' is not writable: Is a directory"])


def test_predict_checks_the_device_before_building_the_model(tmp_path: Path) -> None:
    """A wrong GPU name fails at once, not after a large model is built: the network here
    could not even be built, and the error is the device's."""
    code, stderr = run_main("predict", f"network=hf:{tmp_path / 'absent.json'}", "batch_size=1", "hardware=NoSuchGPU")
    assert code == 2 and "NoSuchGPU" in stderr and "absent.json" not in stderr
