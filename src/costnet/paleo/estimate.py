"""One PALEO estimate end to end: a net on a device and link, for a list of worker counts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from costnet.paleo.comm import SCHEMES
from costnet.paleo.model import Platform, layer_table, pass_times
from costnet.paleo.presets import get_device, get_link
from costnet.paleo.scaling import scaling_table
from costnet.paleo.spec import Net, load_net


def estimate(net: str | Net, device: str, link: str, workers: Sequence[int], scaling: str = "weak",
             batch_size: int | None = None, ppp_comp: float = 1.0, ppp_comm: float = 1.0,
             ppp_memory: float | None = None) -> dict[str, Any]:
    """PALEO's estimate as a JSON-ready dict.

    ``forward_ms``, ``backward_ms`` and ``update_ms`` are one worker's times at
    ``batch_size`` (the net spec's batch by default); ``comm_ms``, ``step_ms`` and
    ``speedup`` map each communication scheme to one value per worker count;
    ``scaling`` holds the full table and ``layers`` the per-layer R/C/W times. Nets with
    parallel branches also get ``parallel_bounds_ms``: each pass between perfect
    concurrency of the branches (critical path) and none (the sum, the default value).
    """
    spec = net if isinstance(net, Net) else load_net(net, batch=batch_size)
    batch = batch_size or spec.batch
    dev, lnk = get_device(device), get_link(link)
    platform = Platform(dev, ppp_comp, ppp_memory)
    one = pass_times(spec, batch, platform)
    table = scaling_table(spec, platform, lnk, workers, scaling, batch, ppp_comm)
    result: dict[str, Any] = {
        "net": spec.name, "device": dev.key, "link": lnk.key, "batch_size": batch, "scaling": scaling,
        "workers": table["workers"].tolist(), "ppp_comp": ppp_comp, "ppp_comm": ppp_comm,
        "ppp_memory": platform.memory_efficiency, "params": spec.params,
        "forward_ms": one.forward_ms, "backward_ms": one.backward_ms, "update_ms": one.update_ms,
        "comm_ms": {s: table[f"comm_ms_{s}"].tolist() for s in SCHEMES},
        "step_ms": {s: table[f"step_ms_{s}"].tolist() for s in SCHEMES},
        "speedup": {s: table[f"speedup_{s}"].tolist() for s in SCHEMES},
        "scaling_table": table.to_dict(orient="records"),
        "layers": layer_table(spec, batch, platform).to_dict(orient="records"),
    }
    if spec.has_branches:
        result["parallel_bounds_ms"] = {"forward": [one.forward_lower_ms, one.forward_ms],
                                        "backward": [one.backward_lower_ms, one.backward_ms]}
    return result


def summary_text(result: dict[str, Any]) -> str:
    """A readable report of an ``estimate`` result."""
    head = (f"PALEO: {result['net']} on {result['device']} over {result['link']}, batch {result['batch_size']}, "
            f"{result['scaling']} scaling, PPP comp {result['ppp_comp']:g} / memory {result['ppp_memory']:g} / "
            f"comm {result['ppp_comm']:g}, {result['params']:,} parameters")
    passes = (f"forward {result['forward_ms']:.2f} ms, backward {result['backward_ms']:.2f} ms, "
              f"update {result['update_ms']:.2f} ms")
    lines = [head, passes]
    if "parallel_bounds_ms" in result:
        fwd, bwd = result["parallel_bounds_ms"]["forward"], result["parallel_bounds_ms"]["backward"]
        lines.append(f"parallel branches: forward {fwd[0]:.2f}-{fwd[1]:.2f} ms, backward {bwd[0]:.2f}-{bwd[1]:.2f} ms "
                     "(concurrent-sequential; the sequential sum is used)")
    table = pd.DataFrame(result["scaling_table"])
    shown = table[["workers", "per_worker_batch", "compute_ms"]].copy()
    for scheme in SCHEMES:
        shown[f"{scheme} comm"] = table[f"comm_ms_{scheme}"]
        shown[f"{scheme} x"] = table[f"speedup_{scheme}"]
    lines.append(shown.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    lines.append("comm in ms per step; x = speedup in throughput over one worker")
    return "\n".join(lines)
