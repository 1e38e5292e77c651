"""Hardware fingerprints, measured peaks, software versions and the GPU spec catalog."""

from costnet.hardware.catalog import load_catalog, lookup
from costnet.hardware.cpu import cpu_info
from costnet.hardware.cuda import cuda_info
from costnet.hardware.fingerprint import fingerprint
from costnet.hardware.microbench import cached_peaks, measure_peaks
from costnet.hardware.software import software_versions

__all__ = ["cached_peaks", "cpu_info", "cuda_info", "fingerprint", "load_catalog", "lookup", "measure_peaks",
           "software_versions"]
