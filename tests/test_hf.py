"""Whole models from Hugging Face configs and user factories: built on the meta device, every
call mapped (never dropped), GPUs from spec-sheet files, and costnet-predict end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from costnet.errors import CostnetError
from costnet.features.hardware import spec_sheet_hardware
from costnet.networks.build import build
from costnet.networks.extract import extract_layers, trace_calls
from tests.conftest import run_main

pytest.importorskip("transformers")

LAYERS, WIDTH, VOCAB = 2, 64, 1000
TINY_GPT2 = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_layer": LAYERS, "n_embd": WIDTH,
             "n_head": 4, "n_positions": 128, "vocab_size": VOCAB, "activation_function": "gelu_new"}
SHEET = {"gpu": "Made-up GPU 9000", "gpu_short": "MU9", "dev_mem_gb": 24, "mem_bw_gbps": 900, "num_sm": 60,
         "cores_per_sm": 128, "freq_mhz": 1500, "fp32_peak_gflops": 23040, "l2_cache_mb": 32}


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny_gpt2.json"
    path.write_text(json.dumps(TINY_GPT2))
    return path


@pytest.fixture
def sheets(tmp_path: Path) -> Path:
    path = tmp_path / "devices.json"
    path.write_text(json.dumps([SHEET]))
    return path


def test_a_config_builds_on_the_meta_device_without_allocating(tiny: Path) -> None:
    module, ids = build(f"hf:{tiny}", 3, 16)
    params = list(module.parameters())
    assert params and all(p.is_meta for p in params) and ids.is_meta and tuple(ids.shape) == (3, 16)


def test_every_call_of_a_transformer_is_mapped_and_none_dropped(tiny: Path) -> None:
    """Per block: 4 linear layers (GPT-2's Conv1D), 2 matrix products and a softmax in eager
    attention, 2 layer norms and a GELU; plus embeddings, a final norm and the LM head."""
    module, ids = build(f"hf:{tiny}", 2, 16)
    calls, _ = trace_calls(module, ids)
    layers = extract_layers(module, ids)
    assert len(layers) == len(calls)  # one row per traced call: nothing dropped
    assert set(layers["kind"]) <= {"layer", "free", "analytical"}
    ops = layers[layers["kind"] == "layer"].groupby("op").size().to_dict()
    assert ops["dense"] == 4 * LAYERS + 1 and ops["matmul"] == 2 * LAYERS and ops["softmax"] == LAYERS
    assert ops["layernorm"] == 2 * LAYERS + 1 and ops["embedding"] == 2
    gelu = layers[(layers["op"] == "elementwise") & (layers["fn"] == "gelu")]
    assert len(gelu) == LAYERS and gelu["approx"].str.contains("NewGELUActivation").all()
    dense = layers[layers["op"] == "dense"].set_index("name")
    head = dense.filter(like="lm_head", axis=0).iloc[0]
    assert (head["batch"], head["in_features"], head["out_features"]) == (2 * 16, WIDTH, VOCAB)
    qkv = dense.filter(like="c_attn", axis=0).iloc[0]
    assert (qkv["in_features"], qkv["out_features"]) == (WIDTH, 3 * WIDTH)  # Conv1D's (in, out) weight
    scores = layers[layers["op"] == "matmul"].iloc[0]
    assert (scores["batch"], scores["m"], scores["k"], scores["n"]) == (2 * 4, 16, WIDTH // 4, 16)


@pytest.mark.parametrize("content, message", [
    ("{not json", "is not JSON"),
    (json.dumps({"n_layer": 2}), "has no model_type"),
    (json.dumps({"model_type": "no-such-model"}), "has no model_type 'no-such-model'$"),
    (json.dumps({"model_type": "gtp2"}), r"has no model_type 'gtp2' \(did you mean gpt2"),
    (json.dumps({**TINY_GPT2, "auto_map": {"AutoModel": "evil.Model"}}), "names remote code"),
])
def test_bad_configs_get_one_clear_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(content)
    with pytest.raises(CostnetError, match=message):
        build(f"hf:{path}", 1, 8)


def test_sequence_longer_than_the_models_positions_is_refused(tiny: Path) -> None:
    with pytest.raises(CostnetError, match="seq_len=129 exceeds the 128 positions"):
        build(f"hf:{tiny}", 1, 129)


def tiny_factory(batch_size: int, seq_len: int) -> tuple[nn.Module, torch.Tensor]:
    """A user's model for ``network=tests.test_hf:tiny_factory``."""
    return nn.Sequential(nn.Linear(seq_len, 32), nn.ReLU(), nn.Linear(32, 4)), torch.zeros(batch_size, seq_len)


def test_a_users_factory_is_built_on_the_meta_device() -> None:
    module, x = build("tests.test_hf:tiny_factory", 5, 12)
    assert all(p.is_meta for p in module.parameters()) and x.is_meta
    ops = extract_layers(module, x).groupby("op").size().to_dict()
    assert ops == {"dense": 2, "elementwise": 1}
    with pytest.raises(CostnetError, match="cannot import 'nothing'"):
        build("tests.test_hf:nothing", 1, 1)


def test_a_gpu_from_a_spec_sheet_by_either_name(sheets: Path) -> None:
    by_name, by_short = spec_sheet_hardware(sheets, "Made-up GPU 9000"), spec_sheet_hardware(sheets, "MU9")
    assert by_name == by_short and by_name["device"] == "MU9"
    assert by_name["hw_peak_gflops"] == 23040 and by_name["hw_sm_count"] == 60 and by_name["hw_l2_mb"] == 32
    with pytest.raises(CostnetError, match=r"has no GPU 'H100'; it has \['Made-up GPU 9000'\]"):
        spec_sheet_hardware(sheets, "H100")


def test_predict_a_config_on_a_gpu_of_a_spec_sheet(tiny: Path, sheets: Path, tmp_path: Path) -> None:
    out = tmp_path / "step.json"
    code, err = run_main("predict", f"network=hf:{tiny}", "batch_size=2", "seq_len=16", "mode=forward",
                         "hardware='Made-up GPU 9000'", f"hardware_specs={sheets}", f"out={out}")
    assert code == 0, err
    result = json.loads(out.read_text())
    assert result["batch_ms"] > 0 and result["device"] == "MU9" and result["seq_len"] == 16
    assert sum(layer["time_ms"] for layer in result["layers"]) == pytest.approx(result["batch_ms"])
    code, err = run_main("predict", f"network=hf:{tiny}", "hardware=MU9", f"hardware_specs={sheets}",
                         "mode=backward", f"out={tmp_path / 'bad.json'}")
    assert code != 0 and "mode must be one of" in err


class _Routed(nn.Module):
    """Reads a tensor value to choose its path, as mixture-of-experts routing does."""

    def __init__(self) -> None:
        super().__init__()
        self.expert = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.expert(x) if bool(x.sum() > 0) else x


def test_a_meta_model_that_needs_tensor_values_gets_one_clear_error() -> None:
    with torch.device("meta"):
        module, x = _Routed(), torch.zeros(2, 4)
    with pytest.raises(CostnetError, match="cannot extract the layers of _Routed on the meta device"):
        extract_layers(module, x)


def test_predict_model_through_the_python_api(tiny: Path, sheets: Path) -> None:
    """costnet.predict_model on a model the user built on the meta device: the total is the sum
    of the per-call times, and forward_backward costs more than forward."""
    import costnet

    module, ids = build(f"hf:{tiny}", 2, 16)
    ahead = costnet.predict_model(module, ids, "MU9", hardware_specs=sheets)
    both = costnet.predict_model(module, ids, "MU9", hardware_specs=sheets, mode="forward_backward")
    assert ahead.batch_ms == pytest.approx(ahead.layers["time_ms"].sum()) and ahead.hardware["device"] == "MU9"
    assert both.batch_ms > ahead.batch_ms > 0


TINY_SWITCH = {"model_type": "switch_transformers", "architectures": ["SwitchTransformersForConditionalGeneration"],
               "d_model": 32, "d_ff": 64, "d_kv": 8, "num_heads": 4, "num_layers": 2, "num_decoder_layers": 2,
               "num_experts": 4, "expert_capacity": 3, "encoder_sparse_step": 2, "decoder_sparse_step": 2,
               "num_sparse_encoder_layers": 1, "num_sparse_decoder_layers": 1, "vocab_size": 100,
               "relative_attention_num_buckets": 8, "relative_attention_max_distance": 16}


@pytest.mark.parametrize("seq_len, per_expert", [(4, 2), (16, 6)])
def test_experts_get_even_shares_of_the_tokens_up_to_their_capacity(tmp_path: Path, seq_len: int,
                                                                     per_expert: int) -> None:
    """Switch Transformer on the meta device: its expert routing cannot run on shape-only
    tensors, so each of the 4 experts gets ceil(2 x seq_len / 4) tokens, at most the capacity
    of 3 per sequence (6 for 2 sequences); nothing is left patched afterwards."""
    from costnet.networks.moe import expert_tokens

    assert expert_tokens(8, 4) == 2 and expert_tokens(32, 4, sequences=2, capacity=3) == 6
    assert expert_tokens(10, 4, top_k=2) == 5 and expert_tokens(10, 4, capacity=3) == 3  # no sequences: no cap
    path = tmp_path / "switch.json"
    path.write_text(json.dumps(TINY_SWITCH))
    module, ids = build(f"hf:{path}", 2, seq_len)
    layers = extract_layers(module, ids)
    experts = layers[(layers["op"] == "dense") & layers["name"].str.contains(r"experts\.expert_\d\.w[io]")]
    assert len(experts) == 2 * 4 * 2  # (encoder + decoder sparse layer) x 4 experts x (wi, wo)
    assert (experts["batch"] == per_expert).all()
    norms = layers[layers["module"] == "SwitchTransformersLayerNorm"]
    assert len(norms) and (norms["op"] == "layernorm").all() and norms["approx"].str.contains("RMS norm").all()
    assert not any("forward" in vars(m) for m in module.modules())  # the routing is the model's own again


def test_bracket_lists_reads_a_bare_comma_list_as_a_list() -> None:
    from costnet.cli.common import bracket_lists

    assert bracket_lists(["model=a,b", "out=x,y", "model=[c,d]"], ("model",)) == ["model=[a,b]", "out=x,y", "model=[c,d]"]
    assert bracket_lists(["model='a,b'", "model=one"], ("model",)) == ["model='a,b'", "model=one"]
    assert bracket_lists(["++model=a,b"], ("model",)) == ["++model=[a,b]"]
    assert bracket_lists(["-m", "model=a,b"], ("model",)) == ["-m", "model=a,b"]  # a sweep under --multirun


def test_predict_takes_run_directories_as_issue_15_writes_them(tiny: Path, sheets: Path, tmp_path: Path) -> None:
    """``model=RUN_A,RUN_B`` (no brackets): both runs' op models time their layers."""
    import pandas as pd

    data = tmp_path / "ops"
    data.mkdir()
    (data / "devices.json").write_text(json.dumps([SHEET]))
    shapes = [dict(b=b, m=m, n=n, k=k) for b in (1, 4) for m in (16, 64) for n in (32, 64) for k in (16, 128)]
    for op in ("linear", "bmm"):
        pd.DataFrame([{"gpu": SHEET["gpu"], "op": op, **s, "latency_ms": 1e-8 * s["b"] * s["m"] * s["n"] * s["k"] + 0.01,
                       "dtype": "float32"} for s in shapes]).to_parquet(data / f"{op}.parquet")
    runs = []
    for op in ("linear", "bmm"):
        runs.append(tmp_path / f"run_{op}")
        code, err = run_main("train", "dataset=neusight2025", f"dataset.path={data}", f"op={op}", "protocol=joint",
                             "estimator=linear_flops", "baselines=[]", f"out={runs[-1]}", "plots=false",
                             "tracking.wandb=disabled")
        assert code == 0, err[-2000:]
    out = tmp_path / "step.json"
    code, err = run_main("predict", f"network=hf:{tiny}", "batch_size=2", "seq_len=16", "mode=forward",
                         "hardware=MU9", f"hardware_specs={sheets}", f"model={runs[0]},{runs[1]}", f"out={out}")
    assert code == 0, err[-2000:]
    layers = json.loads(out.read_text())["layers"]
    assert {"dense", "matmul"} <= {layer["op"] for layer in layers if layer["source"].startswith("model")}
