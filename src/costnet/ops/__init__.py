"""Layer types costnet can sample, build and time, by name."""

from costnet.errors import CostnetError
from costnet.ops.base import Elements, Op, Params, output_size
from costnet.ops.conv import Conv2d, Depthwise
from costnet.ops.dense import Dense
from costnet.ops.elementwise import Dropout, Elementwise, Softmax
from costnet.ops.embedding import Embedding
from costnet.ops.matmul import Attention, Matmul
from costnet.ops.norm import BatchNorm2d
from costnet.ops.pool import AdaptivePool2d, Pool2d
from costnet.ops.sequence import LayerNorm, Lstm

OPS: dict[str, Op] = {op.name: op for op in
                      (Conv2d(), Depthwise(), Dense(), Pool2d(), Matmul(), Attention(), LayerNorm(), Lstm(),
                       BatchNorm2d(), Elementwise(), Dropout(), Softmax(), AdaptivePool2d(), Embedding())}


def get_op(name: str) -> Op:
    """The op called ``name``; the error lists the known ones."""
    if name not in OPS:
        raise CostnetError(f"unknown op {name!r}: choose from {sorted(OPS)}")
    return OPS[name]


__all__ = ["OPS", "Elements", "Op", "Params", "get_op", "output_size"]
