"""Hardware fingerprint, device catalog, software versions and cached micro-benchmarks."""

from __future__ import annotations

import importlib
import re
import sys
import types
from pathlib import Path

import pytest
import torch

from costnet.errors import CostnetError
from costnet.features.hardware import from_catalog
from costnet.hardware import (cached_peaks, cuda_info, fingerprint, load_catalog, lookup,
                              software_versions)
from costnet.hardware.catalog import catalog_file
from costnet.hardware import microbench

# The submodule, not the function costnet.hardware exports under the same name.
fingerprint_module = importlib.import_module("costnet.hardware.fingerprint")
DEVICES = {"V100", "P100", "GTX1080Ti", "M60", "K80", "K40", "T4", "A100", "L4", "H100", "H200",
           "TitanX", "K20", "K20X", "M40", "GTX780Ti", "GT750M", "i7-5930K"}
# PALEO's presets (TalwalkarLab/paleo paleo/device.py): peak GFLOP/s and memory GB/s as PALEO has them.
PALEO = {"TitanX": (6144, 336.5), "K20": (3520, 208), "K20X": (3935, 250), "GTX780Ti": (5040, 336),
         "GT750M": (722.7, 80), "i7-5930K": (289, 68)}
# Justus et al. 2018, table of GPUs: cores, boost MHz, memory GB, memory type, GB/s, bus.
PAPER = {
    "V100": (5120, 1455, 16, "HBM2", 900, "NVLink"),
    "P100": (3584, 1303, 16, "HBM2", 732, "PCIe"),
    "GTX1080Ti": (3584, 1582, 11, "GDDR5X", 484, "PCIe"),
    "M60": (4096, 1178, 16, "GDDR5", 320, "PCIe"),
    "K80": (2496, 875, 12, "GDDR5", 240, "PCIe"),
    "K40": (2880, 875, 12, "GDDR5", 288, "PCIe"),
}
FIELDS = ("cuda_cores", "boost_clock_mhz", "memory_gb", "memory_type", "memory_bandwidth_gbs", "interconnect")
CPU_KEYS = {"hardware_id", "kind", "name", "vendor", "physical_cores", "logical_cores", "threads",
            "max_frequency_mhz", "avx2", "avx512f", "avx512_bf16", "amx_tile", "l1d_bytes", "l2_bytes",
            "l3_bytes", "memory_bytes", "catalog_name", "measured_peak_gflops", "measured_bandwidth_gbs"}


def test_catalog_has_every_device() -> None:
    catalog = load_catalog()
    assert set(catalog) == DEVICES
    for entry in catalog.values():
        assert entry["sources"] and entry["notes"]


@pytest.mark.parametrize("name", sorted(PALEO))
def test_paleo_devices_carry_paleos_values(name: str) -> None:
    entry = load_catalog()[name]
    assert (entry["peak_fp32_gflops"], entry["memory_bandwidth_gbs"]) == PALEO[name]
    assert any("paleo/device.py" in source for source in entry["sources"])


def test_a_cpu_entry_has_cores_and_its_features() -> None:
    entry = lookup("CPU_I7")
    assert entry["kind"] == "cpu" and "cuda_cores" not in entry
    features = from_catalog(entry)
    assert features["hw_cores"] == 6 and features["hw_memory_gb"] == 0 and features["hw_interconnect"] == "host"
    assert from_catalog(lookup("K20"))["hw_cores"] == 2496


@pytest.mark.parametrize("name", sorted(PAPER))
def test_paper_gpus_carry_the_papers_values(name: str) -> None:
    entry = load_catalog()[name]
    assert tuple(entry[f] for f in FIELDS) == PAPER[name]
    assert entry["peak_fp32_gflops"] == pytest.approx(2 * entry["cuda_cores"] * entry["boost_clock_mhz"] / 1e3,
                                                      abs=0.1)
    assert any("Justus" in source for source in entry["sources"])


@pytest.mark.parametrize(("device_name", "expected"), [
    ("Tesla V100-SXM2-16GB", "V100"), ("NVIDIA H100 80GB HBM3", "H100"), ("v100", "V100"),
    ("Tesla K40m", "K40"), ("NVIDIA GeForce GTX 1080 Ti", "GTX1080Ti"), ("NVIDIA L4", "L4"),
    ("titan_x", "TitanX"), ("Titan X", "TitanX"), ("TITAN_X", "TitanX"), ("GeForce GTX TITAN X", "TitanX"),
    ("Tesla K20c", "K20"), ("Tesla K20Xm", "K20X"), ("GEFORCE_780_TI", "GTX780Ti"), ("GEFORCE_750_M", "GT750M"),
    ("Tesla M40 24GB", "M40"), ("CPU_I7", "i7-5930K"),
])
def test_lookup_by_key_or_alias(device_name: str, expected: str) -> None:
    assert lookup(device_name)["name"] == expected


@pytest.mark.parametrize("device_name", ["Imaginary GPU 9000", "NVIDIA L40S", "NVIDIA TITAN X (Pascal)"])
def test_lookup_unknown_names_the_name(device_name: str) -> None:
    with pytest.raises(CostnetError, match=re.escape(device_name)):
        lookup(device_name)


@pytest.mark.parametrize(("text", "field"), [
    ("name: BAD\ncuda_cores: -1\n", "cuda_cores"),
    ("name: BAD\ncuda_cores: 10\nboost_clock_mhz: 1000\nmemory_gb: 1\nmemory_bandwidth_gbs: 10\n", "peak_fp32_gflops"),
    ("name: OTHER\n", "name"),
    ("name: BAD\nkind: tpu\n", "kind"),
    ("name: BAD\nkind: cpu\ncuda_cores: 6\nboost_clock_mhz: 3700\nmemory_bandwidth_gbs: 68\n", "cores"),
    ("name: BAD\nkind: cpu\ncores: 6\nboost_clock_mhz: 3700\nmemory_bandwidth_gbs: 68\n", "peak_fp32_gflops"),
])
def test_malformed_catalog_names_file_and_field(tmp_path: Path, text: str, field: str) -> None:
    (tmp_path / "hardware_catalog").mkdir()
    (tmp_path / "hardware_catalog" / "BAD.yaml").write_text(text)
    with pytest.raises(CostnetError, match=rf"BAD\.yaml.*'{field}'"):
        load_catalog(tmp_path)


def test_a_name_in_two_catalog_files_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "hardware_catalog").mkdir()
    for name in ("A", "B"):
        (tmp_path / "hardware_catalog" / f"{name}.yaml").write_text(
            f"name: {name}\naliases: [Same One]\ncuda_cores: 1\nboost_clock_mhz: 1\nmemory_gb: 1\n"
            "memory_bandwidth_gbs: 1\npeak_fp32_gflops: 1\n")
    with pytest.raises(CostnetError, match=r"B\.yaml.*'aliases' repeats a name of 'A'"):
        load_catalog(tmp_path)


def test_catalog_file_is_the_looked_up_entrys() -> None:
    assert catalog_file("titan_x").name == "TitanX.yaml" and catalog_file("titan_x").is_file()


def test_cpu_fingerprint(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_cuda(device: torch.device) -> dict:
        raise AssertionError("cuda_info called for a CPU")

    monkeypatch.setattr(fingerprint_module, "cuda_info", no_cuda)
    record = fingerprint("cpu", 2, measure=False)
    assert CPU_KEYS <= set(record)
    assert record["kind"] == "cpu" and record["threads"] == 2
    if record["physical_cores"] is not None:
        assert 1 <= record["physical_cores"] <= record["logical_cores"]
    assert record["hardware_id"].startswith("cpu-") and "-2t-" in record["hardware_id"]
    assert fingerprint(torch.device("cpu"), 2, measure=False)["hardware_id"] == record["hardware_id"]
    assert fingerprint("cpu", 1, measure=False)["hardware_id"] != record["hardware_id"]


@pytest.mark.parametrize("device", ["tpu", "not a device"])
def test_fingerprint_rejects_unknown_devices(device: str) -> None:
    with pytest.raises(CostnetError, match=device):
        fingerprint(device, 1, measure=False)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_fingerprint_cuda_without_cuda() -> None:
    with pytest.raises(CostnetError, match="CUDA is not available"):
        fingerprint("cuda", 1, measure=False)


def _fake_props(monkeypatch: pytest.MonkeyPatch) -> None:
    props = types.SimpleNamespace(name="NVIDIA H100 80GB HBM3", multi_processor_count=132,
                                  total_memory=85_000_000_000, major=9, minor=0, L2_cache_size=50 << 20,
                                  clock_rate=1_980_000, memory_clock_rate=2_619_000, memory_bus_width=5120,
                                  uuid="1234")
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: props)


def test_cuda_info_without_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_props(monkeypatch)
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml -> ImportError
    info = cuda_info(torch.device("cuda", 0))
    assert info["compute_capability"] == "9.0" and info["max_sm_clock_mhz"] is None
    # 2 x 2619 MHz x 5120 bits / 8 (cudaDeviceProp reports the clock in kHz)
    assert info["theoretical_bandwidth_gbs"] == pytest.approx(3352.32)


def test_cuda_info_with_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_props(monkeypatch)
    clocks = {"sm": 1980, "mem": 2619}
    nvml = types.SimpleNamespace(
        NVML_CLOCK_SM="sm", NVML_CLOCK_MEM="mem", nvmlInit=lambda: None, nvmlShutdown=lambda: None,
        nvmlDeviceGetHandleByUUID=lambda uuid: uuid, nvmlDeviceGetMaxClockInfo=lambda h, kind: clocks[kind],
        nvmlDeviceGetMaxPcieLinkGeneration=lambda h: 5, nvmlDeviceGetMaxPcieLinkWidth=lambda h: 16)
    monkeypatch.setitem(sys.modules, "pynvml", nvml)  # no nvmlDeviceGetMemoryBusWidth: old bindings
    info = cuda_info(torch.device("cuda", 0))
    assert (info["max_sm_clock_mhz"], info["pcie_generation"], info["memory_bus_width_bits"]) == (1980, 5, 5120)

    def broken() -> None:
        raise RuntimeError("NVML Shared Library Not Found")

    monkeypatch.setattr(nvml, "nvmlInit", broken)
    assert cuda_info(torch.device("cuda", 0))["max_sm_clock_mhz"] is None


def test_software_versions() -> None:
    versions = software_versions()
    assert versions["torch_version"] == torch.__version__
    assert versions["python_version"] == ".".join(map(str, sys.version_info[:3]))
    if "Math Kernel Library" in torch.__config__.show():
        assert versions["mkl_version"] and versions["mkl_version"][0].isdigit()


def test_peaks_are_measured_once_and_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    threads = torch.get_num_threads()
    peaks = cached_peaks(torch.device("cpu"), 1, tmp_path)
    assert torch.get_num_threads() == threads
    assert peaks["measured_peak_gflops"] > 0 and peaks["measured_bandwidth_gbs"] > 0
    assert len(list((tmp_path / "hardware").glob("*.json"))) == 1

    def no_measuring(*args: object, **kwargs: object) -> dict:
        raise AssertionError("measured again despite the cache")

    monkeypatch.setattr(microbench, "measure_peaks", no_measuring)
    assert cached_peaks(torch.device("cpu"), 1, tmp_path) == peaks
    record = fingerprint("cpu", 1, cache_dir=tmp_path)
    assert (record["measured_peak_gflops"], record["measured_bandwidth_gbs"]) == tuple(peaks.values())


def test_damaged_cache_is_measured_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = {"measured_peak_gflops": 1.0, "measured_bandwidth_gbs": 2.0}
    monkeypatch.setattr(microbench, "measure_peaks", lambda device: dict(fake))
    cached_peaks(torch.device("cpu"), 1, tmp_path)
    (path,) = (tmp_path / "hardware").glob("*.json")
    path.write_text("{not json")
    assert cached_peaks(torch.device("cpu"), 1, tmp_path) == fake


def test_gemm_peak_is_the_faster_of_matmul_and_1x1_convolution(monkeypatch: pytest.MonkeyPatch) -> None:
    """MKL's matmul and oneDNN's convolution run the same GEMM at different rates on some CPUs:
    the peak is the better one (here the stand-in clock makes the convolution twice as fast)."""
    monkeypatch.setitem(microbench.MATMUL_N, "cpu", 64)
    seen: list[str] = []

    class Clock:
        def time_block(self, fn, n: int) -> float:
            before = len(seen)
            fn()
            return 1.0 if len(seen) > before else 2.0  # the convolution (counted below) takes 1 s

    real_conv = torch.nn.functional.conv2d

    def conv(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        seen.append("conv")
        assert x.shape == (1, 64, 8, 8) and w.shape == (64, 64, 1, 1)
        return real_conv(x, w)

    monkeypatch.setattr(torch.nn.functional, "conv2d", conv)
    assert microbench._gemm_gflops(torch.device("cpu"), torch.float32, Clock()) == pytest.approx(2 * 64**3 / 1e9)
    assert seen


def test_peaks_of_an_older_probe_are_measured_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(microbench, "measure_peaks", lambda device: {"measured_peak_gflops": 1.0,
                                                                     "measured_bandwidth_gbs": 2.0})
    cached_peaks(torch.device("cpu"), 1, tmp_path)
    monkeypatch.setattr(microbench, "PROBE", microbench.PROBE + 1)
    monkeypatch.setattr(microbench, "measure_peaks", lambda device: {"measured_peak_gflops": 3.0,
                                                                     "measured_bandwidth_gbs": 4.0})
    assert cached_peaks(torch.device("cpu"), 1, tmp_path)["measured_peak_gflops"] == 3.0
    assert len(list((tmp_path / "hardware").glob("*.json"))) == 2
