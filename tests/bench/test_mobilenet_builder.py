"""The MobileNetV2-like benchmark model loads and runs in LiteRT and has MobileNetV2's shape and size."""

from __future__ import annotations

from collections import Counter
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from bench.models.mobilenet_builder import MobileNetDType, mobilenet_v2_like
from bench.models.mobilenet_network import make_divisible
from bench.models.tflite_graph import op_version

MOBILENET_V2_PARAMS = 3_504_872  # Keras MobileNetV2(alpha=1.0, classes=1000) trainable parameters
OPS = schema.BuiltinOperator
# 50 block convs (block 0 has no expansion) + stem + head; ADD wherever a block keeps its shape
EXPECTED_OPS = {
    OPS.CONV_2D: 35,
    OPS.DEPTHWISE_CONV_2D: 17,
    OPS.ADD: 10,
    OPS.MEAN: 1,
    OPS.FULLY_CONNECTED: 1,
    OPS.SOFTMAX: 1,
}
EXPECTED_VERSIONS: dict[str, dict[int, int]] = {
    "float32": dict.fromkeys(EXPECTED_OPS, 1),
    "int8": {
        OPS.CONV_2D: 3,
        OPS.DEPTHWISE_CONV_2D: 3,
        OPS.ADD: 2,
        OPS.MEAN: 2,
        OPS.FULLY_CONNECTED: 4,
        OPS.SOFTMAX: 2,
    },
}


@cache
def model(size: int, dtype: MobileNetDType, classes: int = 1000) -> bytes:
    return mobilenet_v2_like(size=size, classes=classes, dtype=dtype)


@cache
def parsed(size: int, dtype: MobileNetDType) -> Any:
    return schema.ModelT.InitFromPackedBuf(model(size, dtype), 0)


def load(data: bytes, *, plain_cpu: bool = False, threads: int = 2) -> Any:
    resolver = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES if plain_cpu else OpResolverType.AUTO
    interpreter = Interpreter(model_content=data, num_threads=threads, experimental_op_resolver_type=resolver)
    interpreter.allocate_tensors()
    return interpreter


def probabilities(interpreter: Any, real: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Quantizes ``real`` with the input's parameters (if int8), invokes, returns dequantized output."""
    [inp], [out] = interpreter.get_input_details(), interpreter.get_output_details()
    if inp["dtype"] == np.int8:
        scale, zero_point = inp["quantization"]
        raw = np.clip(np.round(real / scale) + zero_point, -128, 127).astype(np.int8)
    else:
        raw = real.astype(np.float32)
    interpreter.set_tensor(inp["index"], raw)
    interpreter.invoke()
    y = np.array(interpreter.get_tensor(out["index"]), dtype=np.float64)
    if out["dtype"] == np.int8:
        out_scale: float = out["quantization"][0]
        out_zero: int = out["quantization"][1]
        y = (y - out_zero) * out_scale
    return y


def random_image(size: int, seed: int) -> npt.NDArray[np.float64]:
    return np.random.default_rng(seed).uniform(-1.0, 1.0, size=(1, size, size, 3))


@pytest.mark.parametrize("dtype", ["float32", "int8"])
@pytest.mark.parametrize("size", [224, 96])
def test_loads_and_runs(size: int, dtype: MobileNetDType) -> None:
    interpreter = load(model(size, dtype))
    [inp], [out] = interpreter.get_input_details(), interpreter.get_output_details()
    assert tuple(inp["shape"]) == (1, size, size, 3)
    assert tuple(out["shape"]) == (1, 1000)
    assert inp["dtype"] == out["dtype"] == (np.float32 if dtype == "float32" else np.int8)
    for seed in range(2):
        probs = probabilities(interpreter, random_image(size, seed))
        assert probs.shape == (1, 1000)
        assert not np.isnan(probs).any()
        assert probs.min() >= 0.0
        # int8: 1000 probabilities on 1/256 steps; the many tiny ones round to 0
        assert probs.sum() == pytest.approx(1.0, abs=1e-4 if dtype == "float32" else 0.08)


def test_parameter_count_matches_mobilenet_v2() -> None:
    counts = {}
    for dtype in ("float32", "int8"):
        m = parsed(224, dtype)
        subgraph = m.subgraphs[0]
        params = 0
        for tensor in subgraph.tensors:
            name = tensor.name.decode()
            if tensor.buffer == 0:
                continue
            data = m.buffers[tensor.buffer].data
            itemsize = {schema.TensorType.FLOAT32: 4, schema.TensorType.INT32: 4, schema.TensorType.INT8: 1}
            assert len(data) == itemsize[tensor.type] * int(np.prod(tensor.shape)), name
            if name.endswith(("/weights", "/bias")):
                params += len(data) // itemsize[tensor.type]
        counts[dtype] = params
    assert counts["float32"] == counts["int8"]
    assert abs(counts["float32"] - MOBILENET_V2_PARAMS) <= 0.1 * MOBILENET_V2_PARAMS
    # float weights are 4 bytes each, int8 weights 1 (int32 biases 4)
    assert len(model(224, "float32")) > 4 * MOBILENET_V2_PARAMS * 0.9
    assert len(model(224, "int8")) < 0.4 * len(model(224, "float32"))


@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_architecture_ops_and_options(dtype: MobileNetDType) -> None:
    m = parsed(224, dtype)
    assert m.version == 3
    [subgraph] = m.subgraphs
    codes = [
        (m.operatorCodes[op.opcodeIndex].builtinCode, m.operatorCodes[op.opcodeIndex].version)
        for op in subgraph.operators
    ]
    assert Counter(code for code, _ in codes) == EXPECTED_OPS
    assert {code: version for code, version in codes} == EXPECTED_VERSIONS[dtype]
    assert codes[0][0] == OPS.CONV_2D
    assert [code for code, _ in codes[-3:]] == [OPS.MEAN, OPS.FULLY_CONNECTED, OPS.SOFTMAX]
    tensors = subgraph.tensors
    strides = []
    for op, (code, _) in zip(subgraph.operators, codes, strict=True):
        options = op.builtinOptions
        if code in (OPS.CONV_2D, OPS.DEPTHWISE_CONV_2D):
            assert options.padding == schema.Padding.SAME
            assert options.strideW == options.strideH
            filter_shape = list(tensors[op.inputs[1]].shape)
            if code == OPS.DEPTHWISE_CONV_2D:
                assert options.depthMultiplier == 1
                assert options.fusedActivationFunction == schema.ActivationFunctionType.RELU6
                assert filter_shape[:3] == [1, 3, 3]
                strides.append(options.strideW)
            name = tensors[op.outputs[0]].name.decode()
            linear = name.endswith("/project")
            expected = schema.ActivationFunctionType.NONE if linear else schema.ActivationFunctionType.RELU6
            assert options.fusedActivationFunction == expected, name
        elif code == OPS.MEAN:
            assert options.keepDims is False
            assert tensors[op.inputs[0]].shape.tolist() == [1, 7, 7, 1280]
        elif code == OPS.SOFTMAX:
            assert options.beta == 1.0
    assert strides == [1, 2, 1, 2, 1, 1, 2, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1]


def test_int8_quantization_parameters() -> None:
    m = parsed(224, "int8")
    tensors = m.subgraphs[0].tensors
    codes = [m.operatorCodes[op.opcodeIndex].builtinCode for op in m.subgraphs[0].operators]
    for op, code in zip(m.subgraphs[0].operators, codes, strict=True):
        x, w, b = (tensors[i] for i in op.inputs) if len(op.inputs) == 3 else (None, None, None)
        y = tensors[op.outputs[0]]
        assert y.type == schema.TensorType.INT8
        assert len(y.quantization.scale) == 1
        if code not in (OPS.CONV_2D, OPS.DEPTHWISE_CONV_2D, OPS.FULLY_CONNECTED):
            continue
        assert x is not None and w is not None and b is not None
        assert w.type == schema.TensorType.INT8
        assert b.type == schema.TensorType.INT32
        channels = w.shape[0] if code != OPS.DEPTHWISE_CONV_2D else w.shape[3]
        if code == OPS.FULLY_CONNECTED:
            assert len(w.quantization.scale) == 1
        else:
            assert w.quantization.quantizedDimension == (3 if code == OPS.DEPTHWISE_CONV_2D else 0)
            assert len(w.quantization.scale) == channels
            assert b.quantization.quantizedDimension == 0
        assert list(w.quantization.zeroPoint) == [0] * len(w.quantization.scale)
        expected_bias = np.float32(x.quantization.scale[0]) * np.asarray(w.quantization.scale, np.float32)
        np.testing.assert_allclose(b.quantization.scale, expected_bias, rtol=1e-6)
        assert len(b.quantization.scale) == len(w.quantization.scale)
    [output] = [t for t in tensors if t.name == b"output"]
    assert (output.quantization.scale[0], output.quantization.zeroPoint[0]) == (1 / 256, -128)


def test_int8_tracks_float_and_xnnpack_matches_plain_cpu() -> None:
    size = 96
    float_model, int8_model = model(size, "float32", 10), model(size, "int8", 10)
    fast, plain, quantized = load(float_model), load(float_model, plain_cpu=True), load(int8_model)
    assert "DELEGATE" in [op["op_name"] for op in fast._get_ops_details()]
    for seed in range(3):
        image = random_image(size, seed)
        reference = probabilities(fast, image)
        np.testing.assert_allclose(probabilities(plain, image), reference, atol=1e-5)
        probs = probabilities(quantized, image)
        assert probs.sum() == pytest.approx(1.0, abs=10 / 256)
        # 55 quantized layers: probabilities within a few percent, same winning class
        np.testing.assert_allclose(probs, reference, atol=0.15)
        assert int(np.argmax(probs)) == int(np.argmax(reference))


def test_deterministic_and_seeded() -> None:
    assert mobilenet_v2_like(32, 10, seed=3) == mobilenet_v2_like(32, 10, seed=3)
    assert mobilenet_v2_like(32, 10, seed=3) != mobilenet_v2_like(32, 10, seed=4)
    assert mobilenet_v2_like(32, 10, dtype="int8") == mobilenet_v2_like(32, 10, dtype="int8")


@pytest.mark.parametrize(("alpha", "channels"), [(0.35, (16, 8, 112, 1280)), (1.4, (48, 24, 448, 1792))])
def test_width_multiplier(alpha: float, channels: tuple[int, int, int, int]) -> None:
    stem, first, last, head = channels
    assert (make_divisible(32 * alpha), make_divisible(16 * alpha), make_divisible(320 * alpha)) == (
        stem,
        first,
        last,
    )
    data = mobilenet_v2_like(64, 10, alpha=alpha, dtype="int8")
    m = schema.ModelT.InitFromPackedBuf(data, 0)
    shapes = {t.name.decode(): t.shape.tolist() for t in m.subgraphs[0].tensors}
    assert shapes["stem"] == [1, 32, 32, stem]
    assert shapes["block0/project"] == [1, 32, 32, first]
    assert shapes["block16/project"] == [1, 2, 2, last]
    assert shapes["head"] == [1, 2, 2, head]
    probs = probabilities(load(data), random_image(64, 0))
    assert probs.shape == (1, 10)
    assert probs.sum() == pytest.approx(1.0, abs=10 / 256)


@pytest.mark.parametrize(
    "build",
    [
        lambda: mobilenet_v2_like(dtype="uint8"),  # type: ignore[arg-type]
        lambda: mobilenet_v2_like(size=0),
        lambda: mobilenet_v2_like(classes=0),
        lambda: mobilenet_v2_like(alpha=0.0),
    ],
)
def test_rejects_bad_arguments(build: Any) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        build()


def test_builder_helpers_unchanged() -> None:
    """The generic additions to tflite_graph keep the existing op versions."""
    assert op_version(OPS.FULLY_CONNECTED, "int8") == 4
    assert op_version(OPS.MEAN, "int8") == 2
    assert op_version(OPS.CONV_2D, "int8") == 3
    assert op_version(OPS.CONV_2D, "float32") == 1
