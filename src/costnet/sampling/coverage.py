"""Which layers fall outside the space a cost model was trained on.

A model trained on a space only interpolates inside it: a network layer with a
parameter beyond the space's range (an activation of 64 x 224 x 224 elements
where the space stops at 64 x 112 x 112) is an extrapolation, and its error is
unknown. :func:`outside` names, for each layer row, the parameters that lie
outside a :class:`~costnet.sampling.space.Space`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from costnet.ops.base import channel_cap
from costnet.ops.params import Choice
from costnet.sampling.space import Space


def _columns(space: Space, name: str) -> list[str]:
    """The layer columns a space parameter draws: itself, or ``channels`` -> channels_in/out
    (channels_in alone where the op multiplies it into channels_out by a ``multiplier``)."""
    if name in space.op.columns:
        return [name]
    derived = "multiplier" in space.params.values
    return [c for c in space.op.columns if c.startswith(f"{name}_") and not (derived and c == "channels_out")]


def outside(space: Space, rows: pd.DataFrame) -> pd.Series:
    """For each row of ``rows`` (one op's config columns), ``"; "``-joined reasons it lies
    outside ``space`` (empty where it is inside): an integer beyond its range (a listed set
    counts as the range of its values: the model interpolates between them), a channel count
    above the space's ``channel_budget / size`` cap, or a choice the space never draws."""
    reasons = [[] for _ in range(len(rows))]

    def flag(mask: np.ndarray, text: pd.Series) -> None:
        for i in np.flatnonzero(mask):
            reasons[i].append(str(text.iloc[i]))

    for name, dist in space.params.values.items():
        for col in _columns(space, name):
            if col not in rows:
                continue
            if isinstance(dist, Choice):
                values = rows[col]
                flag(~values.isin(dist.values).to_numpy() & values.notna().to_numpy(),
                     col + " " + values.astype(str) + f" not in {list(dist.values)}")
                continue
            low, high = dist.low, dist.high
            values = pd.to_numeric(rows[col], errors="coerce")
            flag(((values < low) | (values > high)).to_numpy(),
                 col + " " + values.map("{:g}".format) + f" outside [{low}, {high}]")
    budget = space.params.settings.get("channel_budget")
    if budget is not None and "size" in rows:
        cap = rows["size"].map(lambda s: channel_cap(budget, int(s)) if pd.notna(s) else np.inf)
        for col in (c for c in _columns(space, "channels") if c in rows):
            values = pd.to_numeric(rows[col], errors="coerce")
            flag((values > cap).to_numpy(), col + " " + values.map("{:g}".format) + " above the cap "
                 + cap.map("{:g}".format) + f" (channel_budget {budget:g} / size)")
    return pd.Series(["; ".join(r) for r in reasons], index=rows.index, dtype=object)
