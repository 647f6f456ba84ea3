"""fp16 ONNX graphs: weights and activations in fp16, input and output kept fp32 so callers never change.

It lives in the runtime because a GPU session converts an fp32 export on the fly when no ``model.fp16.onnx`` is
there; the exporter uses the same function to write that file.
"""

from __future__ import annotations

from typing import Any

from fastnst.utils.errors import BackendError


def convert_fp16(proto: Any) -> Any:
    """fp16 weights and activations, fp32 input and output (a new ModelProto)."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    converted = convert_float_to_float16(proto, keep_io_types=True, disable_shape_infer=False)
    _sort_topologically(converted.graph)  # the converter appends the input casts after their consumers
    return converted


def _sort_topologically(graph: Any) -> None:
    """Reorder ``graph.node`` so every node comes after the producers of its inputs (onnx.checker requires it)."""
    ready = {value.name for value in graph.input} | {init.name for init in graph.initializer} | {""}
    pending = list(graph.node)
    ordered = []
    while pending:
        remaining = []
        for node in pending:
            if all(name in ready for name in node.input):
                ordered.append(node)
                ready.update(node.output)
            else:
                remaining.append(node)
        if len(remaining) == len(pending):
            raise BackendError("the fp16 graph has a cycle or a missing input; cannot order it")
        pending = remaining
    copies = [type(node)() for node in ordered]
    for copy, node in zip(copies, ordered, strict=False):
        copy.CopyFrom(node)
    del graph.node[:]
    graph.node.extend(copies)
