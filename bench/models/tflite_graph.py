"""A single-subgraph .tflite model assembled tensor by tensor and op by op (Graph), and written with the
TFLite flatbuffer schema's object API shipped in ``ai_edge_litert`` (``schema_py_generated``) and
``flatbuffers.Builder``: file identifier ``TFL3``, schema version 3, a ``serving_default`` signature, and
constant buffers 16-byte aligned like the converter's; with the operator versions the converter gives."""

from __future__ import annotations

from typing import Any, Final

import flatbuffers
import numpy as np
import numpy.typing as npt
from ai_edge_litert import schema_py_generated as schema

from bench.models.tflite_quant import NUMPY_TYPES, ChannelQuant, Quant

FILE_IDENTIFIER: Final = b"TFL3"
SCHEMA_VERSION: Final = 3
SIGNATURE_KEY: Final = "serving_default"

_BUFFER_ALIGNMENT: Final = 16
_TENSOR_TYPES: Final[dict[str, int]] = {
    "float32": schema.TensorType.FLOAT32,
    "int8": schema.TensorType.INT8,
    "uint8": schema.TensorType.UINT8,
    "int32": schema.TensorType.INT32,
}


class _AlignedBuffer:
    """Stands in for ``schema.BufferT`` in ``ModelT.buffers``; packs its data 16-byte aligned."""

    def __init__(self, data: bytes = b"") -> None:
        self.data = data

    def Pack(self, builder: Any) -> int:  # the name the object API calls
        vector = None
        if self.data:
            builder.Prep(_BUFFER_ALIGNMENT, len(self.data))
            vector = builder.CreateNumpyVector(np.frombuffer(self.data, dtype=np.uint8))
        schema.BufferStart(builder)
        if vector is not None:
            schema.BufferAddData(builder, vector)
        return int(schema.BufferEnd(builder))


_OPTIONS: Final[dict[int, int]] = {
    schema.BuiltinOperator.ADD: schema.BuiltinOptions.AddOptions,
    schema.BuiltinOperator.MUL: schema.BuiltinOptions.MulOptions,
    schema.BuiltinOperator.MEAN: schema.BuiltinOptions.ReducerOptions,
    schema.BuiltinOperator.FULLY_CONNECTED: schema.BuiltinOptions.FullyConnectedOptions,
    schema.BuiltinOperator.SOFTMAX: schema.BuiltinOptions.SoftmaxOptions,
    schema.BuiltinOperator.CONV_2D: schema.BuiltinOptions.Conv2DOptions,
    schema.BuiltinOperator.DEPTHWISE_CONV_2D: schema.BuiltinOptions.DepthwiseConv2DOptions,
    schema.BuiltinOperator.AVERAGE_POOL_2D: schema.BuiltinOptions.Pool2DOptions,
}


def op_version(op: int, dtype: str) -> int:
    """The operator version the converter gives these ops for ``dtype`` (all are in the builtin resolver)."""
    if dtype != "int8":
        return 1
    if op in (schema.BuiltinOperator.CONV_2D, schema.BuiltinOperator.DEPTHWISE_CONV_2D):
        return 3
    return 4 if op == schema.BuiltinOperator.FULLY_CONNECTED else 2


class Graph:
    """Accumulates tensors, constant buffers and operators of a single-subgraph model."""

    def __init__(self) -> None:
        self.tensors: list[Any] = []
        self.buffers: list[_AlignedBuffer] = [_AlignedBuffer()]  # buffer 0: the empty sentinel
        self.opcodes: list[Any] = []
        self.opcode_index: dict[tuple[int, int], int] = {}
        self.operators: list[Any] = []

    def tensor(
        self,
        name: str,
        shape: tuple[int, ...],
        dtype: str,
        quant: Quant | ChannelQuant | None = None,
        data: npt.ArrayLike | None = None,
    ) -> int:
        """Adds a tensor (a constant when ``data`` is given, already in ``dtype``); returns its index."""
        buffer = 0
        if data is not None:
            array = np.ascontiguousarray(data, dtype=NUMPY_TYPES[dtype])
            if array.size != int(np.prod(shape)):
                raise ValueError(f"constant {name!r}: {array.size} values for shape {shape}")
            self.buffers.append(_AlignedBuffer(array.astype(array.dtype.newbyteorder("<")).tobytes()))
            buffer = len(self.buffers) - 1
        tensor = schema.TensorT(
            shape=list(shape),
            type=_TENSOR_TYPES[dtype],
            buffer=buffer,
            name=name,
            quantization=quant.to_schema() if quant is not None else None,
        )
        self.tensors.append(tensor)
        return len(self.tensors) - 1

    def op(self, code: int, version: int, inputs: list[int], outputs: list[int], options: Any) -> None:
        key = (code, version)
        if key not in self.opcode_index:
            self.opcode_index[key] = len(self.opcodes)
            self.opcodes.append(
                schema.OperatorCodeT(
                    deprecatedBuiltinCode=min(code, schema.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES),
                    builtinCode=code,
                    version=version,
                )
            )
        self.operators.append(
            schema.OperatorT(
                opcodeIndex=self.opcode_index[key],
                inputs=inputs,
                outputs=outputs,
                builtinOptionsType=_OPTIONS[code],
                builtinOptions=options,
            )
        )

    def finish(self, inputs: list[int], outputs: list[int], description: str) -> bytes:
        def tensor_map(index: int) -> Any:
            return schema.TensorMapT(name=self.tensors[index].name, tensorIndex=index)

        subgraph = schema.SubGraphT(
            tensors=self.tensors, inputs=inputs, outputs=outputs, operators=self.operators, name="main"
        )
        signature = schema.SignatureDefT(
            inputs=[tensor_map(i) for i in inputs],
            outputs=[tensor_map(i) for i in outputs],
            signatureKey=SIGNATURE_KEY,
            subgraphIndex=0,
        )
        model = schema.ModelT(
            version=SCHEMA_VERSION,
            operatorCodes=self.opcodes,
            subgraphs=[subgraph],
            description=description,
            buffers=self.buffers,
            signatureDefs=[signature],
        )
        builder = flatbuffers.Builder(1024)
        builder.Finish(model.Pack(builder), file_identifier=FILE_IDENTIFIER)
        return bytes(builder.Output())
