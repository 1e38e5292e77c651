"""Mixture-of-experts layers traced on shapes only: balanced routing.

Which expert a token goes to depends on the router's values, which meta and fake tensors do
not have, so an expert block cannot run as written (``nonzero``, ``where`` over the routing
mask). While shapes are traced, a block with a ``router`` and ``experts`` (a ModuleDict or
ModuleList of expert MLPs, as transformers' Switch Transformer writes them; experts fused
into stacked weights, as transformers 5's Mixtral, are not covered) routes evenly instead:
each expert gets ceil(tokens x top_k / experts) tokens, at most ``expert_capacity`` per
sequence where the router has one (Switch Transformer drops tokens
beyond it: Fedus et al. 2022, section 2.2). Even routing is what a router that has not learnt
to prefer experts does on average, and the cost of unbalanced routing is not modelled.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn


def expert_tokens(tokens: int, experts: int, top_k: int = 1, sequences: int | None = None,
                  capacity: int | None = None) -> int:
    """Tokens each expert processes under even routing: ceil(tokens x top_k / experts), capped
    at ``capacity`` tokens per sequence (``sequences`` of them) where a capacity is set."""
    per = math.ceil(tokens * top_k / experts)
    if capacity and sequences:
        per = min(per, sequences * int(capacity))
    return per


def _members(experts: nn.Module) -> list[nn.Module]:
    if isinstance(experts, nn.ModuleDict):
        return list(experts.values())
    return list(experts) if isinstance(experts, nn.ModuleList) else []


@contextmanager
def balanced_routing(module: nn.Module) -> Iterator[int]:
    """Within the block, every expert block of ``module`` routes evenly (module docstring);
    yields how many blocks were changed. Everything is put back on exit."""
    patched: list[tuple[nn.Module, Any]] = []
    for block in module.modules():
        router, experts = getattr(block, "router", None), getattr(block, "experts", None)
        members = _members(experts) if isinstance(experts, nn.Module) else []
        if not isinstance(router, nn.Module) or not members:
            continue
        seen: dict[str, torch.Size] = {}

        def remember(_: nn.Module, args: tuple, seen: dict[str, torch.Size] = seen) -> None:
            if args and isinstance(args[0], torch.Tensor):
                seen["input"] = args[0].shape  # (batch, sequence, hidden) before the experts flatten it

        def even(hidden: torch.Tensor, *routing: Any, members: list[nn.Module] = members, router: nn.Module = router,
                 seen: dict[str, torch.Size] = seen, **_: Any) -> torch.Tensor:
            shape = seen.get("input")
            per = expert_tokens(hidden.shape[0], len(members), int(getattr(router, "top_k", 1) or 1),
                                int(shape[0]) if shape is not None and len(shape) == 3 else None,
                                getattr(router, "expert_capacity", None))
            rows = torch.arange(per, device=hidden.device)
            weights = next((r for r in routing if isinstance(r, torch.Tensor) and r.dim() >= 1
                            and r.shape[0] == hidden.shape[0] and r.shape[-1] == 1), None)
            out = torch.zeros_like(hidden)
            for expert in members:
                part = expert(hidden[:per])
                if weights is not None:
                    part = part * weights[:per]
                out = out.index_add(0, rows, part.to(hidden.dtype))
            return out

        patched.append((experts, block.register_forward_pre_hook(remember)))
        experts.forward = even  # an instance attribute: nn.Module.__call__ finds it before the class's
    try:
        yield len(patched)
    finally:
        for experts, hook in patched:
            del experts.forward
            hook.remove()
