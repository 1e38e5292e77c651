"""Hugging Face models from their configuration files, built on the meta device.

``network=hf:PATH.json`` names a ``config.json`` of the Hugging Face layout. The file is read
as JSON only: no code it names is imported (``auto_map`` entries, which point at remote code,
are refused), no weights are downloaded, and the model is built on the meta device, so a
13-billion-parameter config allocates nothing. Attention is built in its ``eager`` form, whose
matrix products, scaling, masking and softmax are separate calls that costnet's per-op models
(matmul, elementwise, softmax) cover; the fused SDPA kernel is one op no dataset here times.

Needs the optional extra ``pip install -e .[hf]`` (transformers).
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

from costnet.errors import CostnetError
from costnet.files import read_text

PREFIX = "hf:"


def _transformers() -> ModuleType:
    try:
        import transformers
    except ImportError as exc:
        raise CostnetError("network=hf:... needs Hugging Face transformers: pip install -e '.[hf]'") from exc
    return transformers


def read_config(path: Path) -> Any:
    """The ``PretrainedConfig`` a JSON file describes; a CostnetError names what is wrong."""
    transformers = _transformers()
    text = read_text(path, "Hugging Face config")
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise CostnetError(f"Hugging Face config {str(path)!r} is not JSON: {exc}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("model_type"), str):
        raise CostnetError(f"Hugging Face config {str(path)!r} has no model_type (a config.json of a "
                           "Hugging Face model names one, e.g. \"gpt2\" or \"bert\")")
    if "auto_map" in raw:
        raise CostnetError(f"Hugging Face config {str(path)!r} names remote code (auto_map); costnet never runs "
                           "code a config points at: use a model type transformers ships")
    model_type = raw.pop("model_type")
    if model_type not in transformers.CONFIG_MAPPING:  # its own error lists every type, hundreds
        close = difflib.get_close_matches(model_type, list(transformers.CONFIG_MAPPING.keys()), n=3)
        raise CostnetError(f"Hugging Face config {str(path)!r}: transformers {transformers.__version__} has no "
                           f"model_type {model_type!r}" + (f" (did you mean {', '.join(close)}?)" if close else ""))
    try:
        config = transformers.AutoConfig.for_model(model_type, **raw)
    except (ValueError, KeyError, TypeError) as exc:
        raise CostnetError(f"Hugging Face config {str(path)!r}: model_type {model_type!r}: {exc}") from exc
    config.use_cache = False  # one step over the whole sequence, no key/value cache
    return config


def _model_class(config: Any) -> Any:
    """The config's first ``architectures`` entry when transformers ships that model class,
    else the bare model (``AutoModel``)."""
    transformers = _transformers()
    for name in getattr(config, "architectures", None) or []:
        found = getattr(transformers, str(name), None)
        if isinstance(found, type) and issubclass(found, transformers.PreTrainedModel):
            return found
    return transformers.AutoModel


class _Step(nn.Module):
    """Calls the model on token ids by keyword (an encoder-decoder gets them as decoder ids too)."""

    def __init__(self, model: nn.Module, encoder_decoder: bool) -> None:
        super().__init__()
        self.model, self.encoder_decoder = model, encoder_decoder
        self.display_name = type(model).__name__  # what error messages call it

    def forward(self, ids: torch.Tensor) -> Any:
        if self.encoder_decoder:
            return self.model(input_ids=ids, decoder_input_ids=ids)
        return self.model(input_ids=ids)


def build(path: Path, batch_size: int, seq_len: int, device: str | torch.device = "meta",
          dtype: torch.dtype = torch.float32) -> tuple[nn.Module, torch.Tensor]:
    """The model of the config at ``path`` in ``dtype`` on ``device`` (the meta device: shapes
    only; another device: randomly initialized weights, to time it there), and random token ids
    of shape (batch_size, seq_len) to call it with (costnet.networks.build.build checks both are
    >= 1). The dtype is always explicit: transformers 5 would otherwise build in the config's
    ``torch_dtype`` (neusight2025's Switch config says bfloat16, though its workloads ran fp32)."""
    config = read_config(path)
    limit = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    if limit and seq_len > int(limit):
        raise CostnetError(f"seq_len={seq_len} exceeds the {int(limit)} positions of {str(path)!r}")
    cls = _model_class(config)
    try:
        with torch.device(device):
            model = cls._from_config(config, attn_implementation="eager", dtype=dtype)
    except Exception as exc:  # transformers raises many kinds on configs it cannot build
        raise CostnetError(f"transformers cannot build {cls.__name__} from {str(path)!r}: {exc}") from exc
    model.eval()
    # random ids: a mixture of experts routes real-looking tokens evenly, identical ones to one expert
    ids = torch.randint(int(getattr(config, "vocab_size", None) or 2), (batch_size, seq_len), device=device)
    return _Step(model, bool(getattr(config, "is_encoder_decoder", False))), ids
