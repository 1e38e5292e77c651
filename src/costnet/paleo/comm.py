"""Communication time of gradient exchange in data-parallel training (PALEO Sec. 3.2).

PALEO models a transfer of ``|D|`` bytes over a link of bandwidth ``B`` as taking
``|D| / B`` (Qi, Sparks & Talwalkar, "Paleo: A Performance Model for Deep Neural
Networks", ICLR 2017, Sec. 3.2), scaled by the platform percent of peak for
communication, ``PPP_comm``.  Per scheme, with ``K`` workers:

* ``one_to_all``: a master receives every worker's gradient and sends the update back,
  bottlenecked by its one link: ``2 (K - 1) |D| / B`` (PALEO Sec. 3.2, OneToAll).
* ``tree_allreduce``: reduce up a binary tree then broadcast down it, each of the
  ``ceil(log2 K)`` levels moving ``|D|``: ``2 ceil(log2 K) |D| / B`` (PALEO Sec. 3.2).
* ``butterfly_allreduce``: ``ceil(log2 K)`` exchange rounds, all pairs in parallel, each
  moving ``|D|``: ``ceil(log2 K) |D| / B`` (PALEO Sec. 3.2).
* ``ring_allreduce``: reduce-scatter then all-gather over a ring, ``2 (K - 1)`` steps
  of ``|D| / K``: ``2 (K - 1) / K * |D| / B``, bandwidth-optimal and approaching
  ``2 |D| / B`` as ``K`` grows (Patarasuk & Yuan, JPDC 2009; Thakur, Rabenseifner &
  Gropp, IJHPCA 2005).  Not in PALEO; latency terms are ignored as PALEO does.
"""

from __future__ import annotations

import math

from costnet.errors import CostnetError

SCHEMES: tuple[str, ...] = ("one_to_all", "tree_allreduce", "butterfly_allreduce", "ring_allreduce")


def _link_volumes(scheme: str, workers: int) -> float:
    """How many multiples of ``|D|`` cross the bottleneck link, one after the other."""
    levels = math.ceil(math.log2(workers))
    if scheme == "one_to_all":
        return 2.0 * (workers - 1)
    if scheme == "tree_allreduce":
        return 2.0 * levels
    if scheme == "butterfly_allreduce":
        return float(levels)
    return 2.0 * (workers - 1) / workers  # ring_allreduce


def comm_time_ms(
    scheme: str, size_bytes: float, workers: int, bandwidth_gbs: float, ppp: float = 1.0
) -> float:
    """Time in ms to all-reduce ``size_bytes`` over ``workers`` at ``bandwidth_gbs`` GB/s.

    ``ppp`` is PALEO's platform percent of peak for communication (0 < ppp <= 1 in
    practice): the achieved fraction of the link bandwidth.  One worker needs no
    communication, so its time is 0.
    """
    if scheme not in SCHEMES:
        raise CostnetError(f"unknown communication scheme {scheme!r}; known: {', '.join(SCHEMES)}")
    if isinstance(workers, bool) or int(workers) != workers or workers < 1:
        raise CostnetError(f"workers must be a positive integer, got {workers!r}")
    for name, value in (("size_bytes", size_bytes), ("bandwidth_gbs", bandwidth_gbs), ("ppp", ppp)):
        if not math.isfinite(value) or value <= 0:
            raise CostnetError(f"{name} must be positive, got {value!r}")
    if workers == 1:
        return 0.0
    seconds = _link_volumes(scheme, int(workers)) * size_bytes / (bandwidth_gbs * 1e9 * ppp)
    return seconds * 1e3
