"""Read networks in PALEO's JSON net-spec format (TalwalkarLab/paleo, nets/README.md).

A spec is ``{"name": ..., "layers": {layer_name: {"type": ..., "parents": [...], ...}}}``.
Layer types and their keys, as PALEO reads them (paleo/graph.py):

* ``Input``: ``tensor`` ``[N, H, W, C]`` (or ``[N, D]``); no parents.
* ``Convolution``: ``filter`` ``[k_h, k_w, C_in, C_out]`` (``C_in`` may be -1: taken from the
  input), ``strides`` ``[1, s_h, s_w, 1]``, ``padding`` ``"SAME"``/``"VALID"`` or ``[p_h, p_w]``;
  ``activation_fn`` and ``normalizer_fn`` are accepted and, as in PALEO (which leaves bias
  and activation out of its estimates), not costed. ``groups`` (ours) splits the filters.
* ``Pooling`` (max) and ``AvgPool``: ``ksize`` ``[1, k_h, k_w, 1]``, ``strides``, ``padding``.
* ``InnerProduct``: ``num_outputs``; the input is flattened.
* ``Dropout`` (``dropout_keep_prob``), ``Softmax`` (optional ``num_classes``),
  ``Concatenate`` (``dim``, an NHWC axis, 3 for channels), ``Elementwise`` (sum of parents).
* Ours, for layers PALEO leaves inside ``activation_fn``/``normalizer_fn``: ``Activation``
  (alias ``ReLU``), ``BatchNorm``, ``LRN``.
* ``Block``: a namespace of ``layers``; their ids are ``block/layer``, parents inside name
  siblings, an empty ``parents`` inherits the block's, and the block's name stands for
  ``block/<endpoint>`` outside it (this is how PALEO writes Inception modules).

PALEO's ``ModelParallel`` blocks describe model parallelism and are rejected: this model
covers data parallelism. The batch is the Input's ``N`` unless ``batch`` is given.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from costnet.errors import CostnetError
from costnet.files import read_text
from costnet.paleo import layers as L
from costnet.paleo.presets import Costs, load_costs, paleo_dir


@dataclass(frozen=True)
class Net:
    """A network: its layers in topological order and the batch its spec declares."""

    name: str
    batch: int
    layers: tuple[L.Layer, ...]

    @property
    def params(self) -> int:
        """Learnable parameters (weights and biases)."""
        return sum(layer.params for layer in self.layers)

    @property
    def has_branches(self) -> bool:
        """Whether some layer feeds several others (parallel branches, e.g. Inception)."""
        children: dict[str, int] = {}
        for layer in self.layers:
            for parent in layer.parents:
                children[parent] = children.get(parent, 0) + 1
        return any(count > 1 for count in children.values())


def shipped_nets() -> dict[str, Path]:
    """The net specs shipped in conf/paleo/nets/, by name."""
    return {p.stem: p for p in sorted((paleo_dir() / "nets").glob("*.json"))}


def resolve_net(name_or_path: str | Path) -> Path:
    """A spec file: ``name_or_path`` if it is a file, else a shipped net of that name."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    shipped = shipped_nets()
    key = str(name_or_path).lower().replace("-", "_")
    if key in shipped:
        return shipped[key]
    raise CostnetError(f"net {str(name_or_path)!r} is neither a file nor a shipped net; shipped: {', '.join(shipped)}")


def load_net(name_or_path: str | Path, batch: int | None = None, costs: Costs | None = None) -> Net:
    """Parse a PALEO net spec given as a path or a shipped name."""
    path = resolve_net(name_or_path)
    try:
        spec = json.loads(read_text(path, "net spec"))
    except json.JSONDecodeError as exc:
        raise CostnetError(f"net spec {str(path)!r} is not valid JSON: {exc}") from exc
    return parse_spec(spec, batch=batch, costs=costs, source=str(path))


# ----------------------------------------------------------------- validation helpers


class _Entry:
    """One flattened layer entry, with messages that name it."""

    def __init__(self, name: str, params: dict[str, Any], parents: list[str], source: str) -> None:
        self.name, self.params, self.parents, self.source = name, params, parents, source

    def fail(self, message: str) -> CostnetError:
        return CostnetError(f"net spec {self.source}: layer {self.name!r}: {message}")

    def get(self, key: str, default: Any = None) -> Any:
        return self.params.get(key, default)

    def require(self, key: str) -> Any:
        if key not in self.params:
            raise self.fail(f"missing key {key!r} (type {self.params.get('type')!r})")
        return self.params[key]

    def ints(self, key: str, length: int, allow: Sequence[int] = ()) -> list[int]:
        value = self.require(key)
        ok = (isinstance(value, list) and len(value) == length
              and all(isinstance(v, int) and not isinstance(v, bool) and (v > 0 or v in allow) for v in value))
        if not ok:
            raise self.fail(f"{key} must be a list of {length} positive integers, got {value!r}")
        return value

    def positive(self, key: str) -> int:
        value = self.require(key)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise self.fail(f"{key} must be a positive integer, got {value!r}")
        return value

    def window(self, key: str) -> tuple[int, int]:
        value = self.ints(key, 4)
        if value[0] != 1 or value[3] != 1:
            raise self.fail(f"{key} must be [1, h, w, 1] (batch and channel entries 1), got {value!r}")
        return value[1], value[2]

    def padding(self) -> str | tuple[int, int]:
        value = self.require("padding")
        if value in ("SAME", "VALID"):
            return value
        if (isinstance(value, list) and len(value) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)):
            return value[0], value[1]
        raise self.fail(f"padding must be \"SAME\", \"VALID\" or [pad_h, pad_w], got {value!r}")


def _flatten(spec: Any, source: str) -> list[_Entry]:
    """Layer entries with block namespaces resolved, in spec order (PALEO graph._create_graph)."""
    if not isinstance(spec, dict) or not isinstance(spec.get("layers"), dict) or not spec["layers"]:
        raise CostnetError(f"net spec {source}: needs a non-empty \"layers\" mapping at the top level")
    endpoints: dict[str, str] = {}
    for name, params in spec["layers"].items():
        if isinstance(params, dict) and params.get("type") == "Block" and "endpoint" in params:
            endpoints[name] = f"{name}/{params['endpoint']}"

    def check(name: str, params: Any) -> list[str]:
        if not isinstance(params, dict):
            raise CostnetError(f"net spec {source}: layer {name!r} must be a mapping, got {params!r}")
        parents = params.get("parents")
        if not isinstance(parents, list) or not all(isinstance(p, str) for p in parents):
            raise CostnetError(f"net spec {source}: layer {name!r}: parents must be a list of names, got {parents!r}")
        if not isinstance(params.get("type"), str):
            raise CostnetError(f"net spec {source}: layer {name!r}: missing or non-string key 'type'")
        return parents

    entries: list[_Entry] = []
    for name, params in spec["layers"].items():
        parents = [endpoints.get(p, p) for p in check(name, params)]
        if params["type"] == "ModelParallel":
            raise CostnetError(f"net spec {source}: layer {name!r}: type 'ModelParallel' (model parallelism) "
                               "is not supported; this PALEO model covers data parallelism")
        if params["type"] != "Block":
            entries.append(_Entry(name, params, parents, source))
            continue
        inner = params.get("layers")
        if not isinstance(inner, dict) or not inner:
            raise CostnetError(f"net spec {source}: block {name!r}: needs a non-empty \"layers\" mapping")
        if "endpoint" in params and params["endpoint"] not in inner:
            raise CostnetError(f"net spec {source}: block {name!r}: endpoint {params['endpoint']!r} is not one "
                               "of its layers")
        for sub, sub_params in inner.items():
            sub_parents = check(f"{name}/{sub}", sub_params)
            if sub_params["type"] in ("Block", "ModelParallel"):
                raise CostnetError(f"net spec {source}: layer {name}/{sub!r}: blocks cannot be nested")
            resolved = [f"{name}/{p}" for p in sub_parents] if sub_parents else parents
            entries.append(_Entry(f"{name}/{sub}", sub_params, resolved, source))
    return entries


def _topological(entries: list[_Entry], source: str) -> list[_Entry]:
    by_name: dict[str, _Entry] = {}
    for entry in entries:
        if entry.name in by_name:
            raise entry.fail("duplicate layer name")
        by_name[entry.name] = entry
    for entry in entries:
        for parent in entry.parents:
            if parent not in by_name:
                raise entry.fail(f"parent {parent!r} is not a layer of the spec")
    order: list[_Entry] = []
    done: set[str] = set()
    pending = list(entries)
    while pending:
        ready = [e for e in pending if all(p in done for p in e.parents)]
        if not ready:
            raise CostnetError(f"net spec {source}: the parents of {', '.join(repr(e.name) for e in pending)} "
                               "form a cycle")
        for entry in ready:
            order.append(entry)
            done.add(entry.name)
        pending = [e for e in pending if e.name not in done]
    return order


# ----------------------------------------------------------------- layer construction


def _build(entry: _Entry, inputs: list[L.Shape], feeds_on_input: bool, costs: Costs) -> L.Layer:
    kind, name, parents = entry.params["type"], entry.name, entry.parents
    if kind == "Input":
        return L.input_layer(name, tuple(entry.get("tensor")[1:]))
    if not inputs:
        raise entry.fail(f"type {kind!r} needs at least one parent")
    first = inputs[0]
    single = kind not in ("Concatenate", "Elementwise")
    if single and len(inputs) != 1:
        raise entry.fail(f"type {kind!r} takes one parent, got {len(inputs)}: {parents}")
    data_grad = not feeds_on_input
    if kind == "Convolution":
        kh, kw, cin, cout = entry.ints("filter", 4, allow=(-1,))
        groups = entry.get("groups", 1)
        if not isinstance(groups, int) or isinstance(groups, bool) or groups < 1:
            raise entry.fail(f"groups must be a positive integer, got {groups!r}")
        if len(first) != 3:
            raise entry.fail(f"a Convolution needs an (H, W, C) input, got per-sample shape {list(first)}")
        if cin == -1:
            cin = first[2] // groups
        if cin * groups != first[2]:
            raise entry.fail(f"filter {entry.get('filter')!r} reads {cin * groups} channels but its input "
                             f"{parents[0]!r} has {first[2]}")
        return L.conv2d(name, parents, first, (kh, kw), cout, entry.window("strides"), entry.padding(),
                        groups=groups, data_grad=data_grad)
    if kind in ("Pooling", "AvgPool"):
        return L.pool2d(name, parents, first, entry.window("ksize"), entry.window("strides"), entry.padding(),
                        costs, "avg" if kind == "AvgPool" else "max")
    if kind == "InnerProduct":
        return L.inner_product(name, parents, first, entry.positive("num_outputs"), data_grad=data_grad)
    if kind == "Dropout":
        keep = entry.get("dropout_keep_prob", 0.5)
        if not isinstance(keep, (int, float)) or isinstance(keep, bool) or not 0 < keep <= 1:
            raise entry.fail(f"dropout_keep_prob must be in (0, 1], got {keep!r}")
        return L.pointwise(name, parents, inputs, first, "dropout", costs, data_grad=data_grad)
    if kind == "Softmax":
        classes = entry.positive("num_classes") if "num_classes" in entry.params else L.elements(first)
        if classes != L.elements(first):
            raise entry.fail(f"num_classes {classes} differs from the {L.elements(first)} outputs of {parents[0]!r}")
        return L.pointwise(name, parents, inputs, (classes,), "softmax", costs, data_grad=data_grad)
    if kind in ("Activation", "ReLU"):
        return L.pointwise(name, parents, inputs, first, "activation", costs, data_grad=data_grad)
    if kind == "BatchNorm":
        return L.pointwise(name, parents, inputs, first, "batch_norm", costs, params=2 * first[-1],
                           data_grad=data_grad)
    if kind == "LRN":
        return L.pointwise(name, parents, inputs, first, "lrn", costs, data_grad=data_grad)
    if kind == "Elementwise":
        if any(shape != first for shape in inputs):
            raise entry.fail(f"Elementwise inputs must share a shape, got {[list(s) for s in inputs]}")
        return L.pointwise(name, parents, inputs, first, "add", costs, data_grad=data_grad)
    if kind == "Concatenate":
        dim = entry.require("dim")
        if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
            raise entry.fail(f"dim must be an NHWC axis >= 1 (3 for channels), got {dim!r}")
        return L.concat(name, parents, inputs, dim - 1)
    raise entry.fail(f"unknown type {kind!r}; known: Input, Convolution, Pooling, AvgPool, InnerProduct, Dropout, "
                     "Softmax, Concatenate, Elementwise, Activation, ReLU, BatchNorm, LRN, Block")


def parse_spec(spec: Any, batch: int | None = None, costs: Costs | None = None, source: str = "<spec>") -> Net:
    """A Net from a parsed PALEO spec (see the module docstring for the format)."""
    costs = costs or load_costs()
    order = _topological(_flatten(spec, source), source)
    shapes: dict[str, L.Shape] = {}
    types: dict[str, str] = {}
    built: list[L.Layer] = []
    spec_batch: int | None = None
    for entry in order:
        if entry.params["type"] == "Input":
            if entry.parents:
                raise entry.fail(f"an Input takes no parents, got {entry.parents}")
            tensor = entry.require("tensor")
            if not isinstance(tensor, list) or len(tensor) not in (2, 4):
                raise entry.fail(f"tensor must be [N, H, W, C] or [N, D], got {tensor!r}")
            entry.ints("tensor", len(tensor))
            if spec_batch is not None and tensor[0] != spec_batch:
                raise entry.fail(f"batch {tensor[0]} differs from another Input's {spec_batch}")
            spec_batch = tensor[0]
        layer = _build(entry, [shapes[p] for p in entry.parents],
                       bool(entry.parents) and all(types[p] == "Input" for p in entry.parents), costs)
        shapes[entry.name], types[entry.name] = layer.output, entry.params["type"]
        built.append(layer)
    if spec_batch is None:
        raise CostnetError(f"net spec {source}: has no Input layer")
    if batch is not None and (not isinstance(batch, int) or batch < 1):
        raise CostnetError(f"batch size must be a positive integer, got {batch!r}")
    name = spec.get("name", Path(source).stem) if isinstance(spec, dict) else source
    return Net(str(name), batch or spec_batch, tuple(built))
