"""The classic network zoo: architecture, FLOPs, traceability and errors."""

from __future__ import annotations

import sys
import types

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from costnet.errors import CostnetError
from costnet.networks.inception import Inception3
from costnet.networks.zoo import NETWORKS, build_network, example_input

# torchvision's published parameter counts; Inception-v3 without its auxiliary classifier:
# 27,161,264 - (768*128 + 2*128 + 128*768*25 + 2*768 + 768*1000 + 1000) = 27,161,264 - 3,326,696.
PARAMETERS = {
    "alexnet": 61_100_840,
    "vgg16": 138_357_544,
    "resnet18": 11_689_512,
    "resnet50": 25_557_032,
    "inception_v3": 23_834_568,
    # 4 (512x512 + 512) projections, 2 layer norms (2 x 512), 512x2048 + 2048 and 2048x512 + 512
    "transformer_block": 3_152_384,
}
# Forward multiply-accumulates at batch 1 (torchvision's published "GFLOPS", which count MACs);
# the transformer's are 128 tokens x (4 x 512^2 + 2 x 512 x 2048) plus 2 x 128^2 x 512 for attention.
GMACS = {
    "alexnet": 0.71,
    "vgg16": 15.47,
    "resnet18": 1.81,
    "resnet50": 4.09,
    "inception_v3": 5.71,
    "transformer_block": 0.4194304,
}


def meta_network(name: str) -> tuple[nn.Module, torch.Tensor]:
    """The network and a batch-1 input on the meta device (shapes only, no arithmetic)."""
    with torch.device("meta"):
        return build_network(name, "costnet")[0], example_input(name, 1)


def test_networks_are_listed() -> None:
    assert NETWORKS == ("alexnet", "vgg16", "resnet18", "resnet50", "inception_v3", "transformer_block")


@pytest.mark.parametrize("name", NETWORKS)
def test_parameter_counts_match_torchvision(name: str) -> None:
    module, _ = meta_network(name)
    assert sum(p.numel() for p in module.parameters()) == PARAMETERS[name]


@pytest.mark.parametrize("name", NETWORKS)
def test_output_shape_and_forward_flops(name: str) -> None:
    module, x = meta_network(name)
    counter = FlopCounterMode(display=False)
    with counter:
        out = module.eval()(x)
    expected = x.shape if name == "transformer_block" else (1, 1000)
    assert tuple(out.shape) == tuple(expected)
    # FlopCounterMode counts 2 FLOPs per multiply-accumulate (convolutions, dense layers, attention)
    assert counter.get_total_flops() / 2e9 == pytest.approx(GMACS[name], rel=0.01)


@pytest.mark.parametrize("name", NETWORKS)
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_networks_trace_with_fx(name: str, mode: str) -> None:
    module, x = meta_network(name)
    module.train(mode == "train")
    graph = torch.fx.symbolic_trace(module)
    assert tuple(graph(x).shape) == tuple(module(x).shape)
    assert sum(node.op == "call_module" for node in graph.graph.nodes) > 0


def test_input_shapes() -> None:
    assert build_network("resnet50", "costnet")[1] == (3, 224, 224)
    assert example_input("inception_v3", 2).shape == (2, 3, 299, 299)
    assert example_input("transformer_block", 3).shape == (3, 128, 512)
    assert example_input("alexnet", 1).dtype == torch.float32


@pytest.mark.parametrize("name", ["resnet18", "transformer_block"])
def test_trace_matches_eager_and_trains(name: str) -> None:
    torch.manual_seed(0)
    module, _ = build_network(name, "costnet")
    x = example_input(name, 2)
    graph = torch.fx.symbolic_trace(module)
    with torch.no_grad():
        module.eval()
        torch.testing.assert_close(graph(x), module(x))
    module.train()
    module(x).square().mean().backward()
    assert all(p.grad is not None for p in module.parameters())


def test_transformer_block_is_built_from_separate_ops() -> None:
    module, x = meta_network("transformer_block")
    graph = torch.fx.symbolic_trace(module)
    kinds = {type(m) for m in module.modules()}
    assert {nn.Linear, nn.LayerNorm, nn.GELU, nn.Dropout} <= kinds and nn.MultiheadAttention not in kinds
    assert sum(isinstance(m, nn.Linear) for m in module.modules()) == 6
    targets = {node.target for node in graph.graph.nodes if node.op == "call_function"}
    assert torch.nn.functional.scaled_dot_product_attention in targets
    assert graph(x).shape == x.shape


def test_inception_auxiliary_classifier() -> None:
    with torch.device("meta"):
        module = Inception3(aux_logits=True)
        x = torch.randn(2, 3, 299, 299)
    assert sum(p.numel() for p in module.parameters()) == 27_161_264
    logits, aux = module.train()(x)
    assert logits.shape == aux.shape == (2, 1000)
    assert module.eval()(x).shape == (2, 1000)


def test_unknown_network_is_a_clear_error() -> None:
    for call in (lambda: build_network("resnet101"), lambda: example_input("resnet101", 1)):
        with pytest.raises(CostnetError, match="'resnet101'") as info:
            call()
        assert all(name in str(info.value) for name in NETWORKS)
    with pytest.raises(CostnetError, match="'keras'"):
        build_network("resnet18", "keras")
    with pytest.raises(CostnetError, match="batch_size"):
        example_input("resnet18", 0)


def test_sources_without_torchvision(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torchvision", None)
    monkeypatch.setitem(sys.modules, "torchvision.models", None)
    with pytest.raises(CostnetError, match="torchvision is not importable"):
        build_network("resnet18", "torchvision")
    with pytest.raises(CostnetError, match="does not define"):
        build_network("transformer_block", "torchvision")
    with torch.device("meta"):
        module, _ = build_network("resnet18")
    assert type(module).__module__ == "costnet.networks.resnet"


def test_auto_prefers_torchvision(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake_inception_v3(**kwargs: object) -> nn.Module:
        calls.append(kwargs)
        return nn.Identity()

    models = types.ModuleType("torchvision.models")
    models.inception_v3 = fake_inception_v3  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torchvision", types.ModuleType("torchvision"))
    monkeypatch.setitem(sys.modules, "torchvision.models", models)
    for source in ("auto", "torchvision"):
        module, shape = build_network("inception_v3", source)
        assert isinstance(module, nn.Identity) and shape == (3, 299, 299)
    assert calls == [{"weights": None, "aux_logits": False, "init_weights": True}] * 2
    with torch.device("meta"):
        assert isinstance(build_network("inception_v3", "costnet")[0], Inception3)
        assert build_network("transformer_block")[0].__class__.__name__ == "TransformerBlock"
