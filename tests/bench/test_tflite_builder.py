"""The in-memory .tflite builders produce models LiteRT loads and runs, with the documented numbers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from bench.models import tflite_builder as tb
from bench.models.tflite_graph import SIGNATURE_KEY

DTYPES: list[tb.DType] = ["float32", "int8", "uint8"]
NUMPY_DTYPES = {"float32": np.float32, "int8": np.int8, "uint8": np.uint8}
LIMITS = {"int8": (-128, 127), "uint8": (0, 255)}


def load(model: bytes, *, plain_cpu: bool = False) -> Any:
    """An allocated interpreter; ``plain_cpu`` uses the builtin kernels without the XNNPACK delegate."""
    resolver = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES if plain_cpu else OpResolverType.AUTO
    interpreter = Interpreter(model_content=model, experimental_op_resolver_type=resolver)
    interpreter.allocate_tensors()
    return interpreter


def run(interpreter: Any, raw: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Feeds ``raw`` (already in the input dtype) and returns a copy of the raw output."""
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], raw)
    interpreter.invoke()
    return np.array(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]))


def to_input(interpreter: Any, real: npt.NDArray[np.float64]) -> npt.NDArray[Any]:
    """Quantizes real values with the input's reported parameters, as an inference engine would."""
    detail = interpreter.get_input_details()[0]
    dtype = np.dtype(detail["dtype"])
    scale: float = detail["quantization"][0]
    zero_point: int = detail["quantization"][1]
    if dtype == np.float32:
        return real.astype(np.float32)
    lo, hi = LIMITS[dtype.name]
    return np.clip(np.round(real / scale) + zero_point, lo, hi).astype(dtype)


def dequantize(raw: npt.NDArray[Any], quantization: tuple[float, int]) -> npt.NDArray[np.float64]:
    scale, zero_point = quantization
    if raw.dtype == np.float32:
        return raw.astype(np.float64)
    return (raw.astype(np.float64) - zero_point) * scale


def tensor_quantization(interpreter: Any, name: str) -> tuple[float, int]:
    [detail] = [d for d in interpreter.get_tensor_details() if d["name"] == name]
    return tuple(detail["quantization"])


def check_io(interpreter: Any, dtype: str, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> None:
    [inp] = interpreter.get_input_details()
    [out] = interpreter.get_output_details()
    assert tuple(inp["shape"]) == in_shape
    assert tuple(out["shape"]) == out_shape
    assert inp["dtype"] == NUMPY_DTYPES[dtype]
    assert out["dtype"] == NUMPY_DTYPES[dtype]
    for detail in (inp, out):
        scale, zero_point = detail["quantization"]
        params = detail["quantization_parameters"]
        if dtype == "float32":
            assert (scale, zero_point) == (0.0, 0)
            assert params["scales"].size == 0
        else:
            assert scale > 0.0
            assert LIMITS[dtype][0] <= zero_point <= LIMITS[dtype][1]
            assert params["scales"].tolist() == pytest.approx([scale])
            assert params["zero_points"].tolist() == [zero_point]


def test_file_identifier_version_and_aligned_buffers() -> None:
    data = tb.image_classifier(4, 4, 3, 3, "int8")
    assert data[4:8] == b"TFL3"
    assert schema.Model.ModelBufferHasIdentifier(data, 0)
    model = schema.Model.GetRootAs(data, 0)
    assert model.Version() == 3
    base = np.frombuffer(data, dtype=np.uint8).__array_interface__["data"][0]
    constants = [model.Buffers(i).DataAsNumpy() for i in range(model.BuffersLength())]
    constants = [c for c in constants if not isinstance(c, int)]  # buffers without data give 0
    assert len(constants) == 3  # axes, weights, bias
    for constant in constants:
        assert (constant.__array_interface__["data"][0] - base) % 16 == 0


@pytest.mark.parametrize("plain_cpu", [False, True], ids=["xnnpack", "plain-cpu"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("shape", "scale", "bias", "input_range"),
    [((1, 4), 2.0, 1.0, (-1.0, 1.0)), ((2, 3, 5), -0.5, 0.25, (0.0, 4.0)), ((1, 8), 3.0, -2.0, (-2.0, 0.5))],
)
def test_affine_model(
    dtype: tb.DType,
    shape: tuple[int, ...],
    scale: float,
    bias: float,
    input_range: tuple[float, float],
    plain_cpu: bool,
) -> None:
    model = tb.affine_model(shape, scale, bias, dtype, input_range=input_range)
    interpreter = load(model, plain_cpu=plain_cpu)
    check_io(interpreter, dtype, shape, shape)
    x = np.linspace(*input_range, num=int(np.prod(shape))).reshape(shape)
    raw = to_input(interpreter, x)
    y = dequantize(run(interpreter, raw), interpreter.get_output_details()[0]["quantization"])
    x_seen = dequantize(raw, interpreter.get_input_details()[0]["quantization"])
    if dtype == "float32":
        np.testing.assert_allclose(y, x * scale + bias, rtol=1e-6, atol=1e-6)
    else:
        # The input is quantized by the caller; the model adds rounding of the product and of the sum.
        step = tensor_quantization(interpreter, "scaled")[0] + tensor_quantization(interpreter, "output")[0]
        np.testing.assert_allclose(y, x_seen * scale + bias, rtol=0, atol=step)
        in_step = interpreter.get_input_details()[0]["quantization"][0]
        np.testing.assert_allclose(y, x * scale + bias, rtol=0, atol=step + abs(scale) * in_step)


@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_affine_quantized_constants_are_exact(dtype: tb.DType) -> None:
    interpreter = load(tb.affine_model((1, 2), -1.5, 0.75, dtype))
    for name, value in (("scale", -1.5), ("bias", 0.75)):
        [detail] = [d for d in interpreter.get_tensor_details() if d["name"] == name]
        real = dequantize(interpreter.get_tensor(detail["index"]), detail["quantization"])
        assert real.tolist() == pytest.approx([value], rel=1e-6)


# (channels, classes, pixel colour, expected class) following tb.classifier_weights' rule
COLOUR_CASES = [
    (3, 3, (1.0, 0.0, 0.0), 0),
    (3, 3, (0.1, 0.8, 0.2), 1),
    (3, 3, (0.2, 0.3, 0.9), 2),
    (3, 6, (0.9, 0.1, 0.1), 0),
    (3, 6, (0.0, 1.0, 1.0), 3),  # cyan: least red
    (3, 6, (1.0, 0.0, 1.0), 4),  # magenta: least green
    (3, 6, (1.0, 1.0, 0.0), 5),  # yellow: least blue
    (1, 2, (0.9,), 0),  # bright
    (1, 2, (0.2,), 1),  # dark
    (4, 4, (0.1, 0.2, 0.3, 0.9), 3),
]


def reference_probabilities(
    image: npt.NDArray[np.float64], classes: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """The float computation the model encodes: softmax(W . mean colour + b); also the logits."""
    weights, bias = tb.classifier_weights(image.shape[-1], classes)
    logits = weights.astype(np.float64) @ image.mean(axis=(0, 1, 2)) + bias
    exp = np.exp(logits - logits.max())
    return exp / exp.sum(), logits


def textured(colour: tuple[float, ...], height: int, width: int) -> npt.NDArray[np.float64]:
    """A [1, H, W, C] image of ``colour`` with +-0.1 deterministic zero-mean texture, on 1/255 steps."""
    rng = np.random.default_rng(len(colour) * 1000 + height * 10 + width)
    base = np.broadcast_to(np.asarray(colour), (1, height, width, len(colour)))
    noise = rng.uniform(-0.1, 0.1, size=base.shape)
    noise -= noise.mean(axis=(1, 2), keepdims=True)
    return np.round(np.clip(base + noise, 0.0, 1.0) * 255.0) / 255.0


@pytest.mark.parametrize("plain_cpu", [False, True], ids=["xnnpack", "plain-cpu"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("channels", "classes", "colour", "expected"), COLOUR_CASES)
def test_image_classifier(
    dtype: tb.DType, channels: int, classes: int, colour: tuple[float, ...], expected: int, plain_cpu: bool
) -> None:
    height, width = 6, 10
    interpreter = load(tb.image_classifier(height, width, channels, classes, dtype), plain_cpu=plain_cpu)
    check_io(interpreter, dtype, (1, height, width, channels), (1, classes))
    if dtype != "float32":
        # Input maps raw pixels to [0, 1]; softmax output is fixed by TFLite's kernel.
        assert interpreter.get_input_details()[0]["quantization"][0] == pytest.approx(1 / 255)
        expected_out = (1 / 256, 0 if dtype == "uint8" else -128)
        assert interpreter.get_output_details()[0]["quantization"] == pytest.approx(expected_out)
    solid = np.round(np.broadcast_to(np.asarray(colour), (1, height, width, channels)) * 255.0) / 255.0
    for image in (textured(colour, height, width), solid):
        raw_in = to_input(interpreter, image)
        if dtype == "uint8":
            np.testing.assert_array_equal(raw_in, np.round(image * 255))
        elif dtype == "int8":
            np.testing.assert_array_equal(raw_in, np.round(image * 255) - 128)
        probs = dequantize(run(interpreter, raw_in), interpreter.get_output_details()[0]["quantization"])
        assert probs.shape == (1, classes)
        assert probs.sum() == pytest.approx(1.0, abs=1e-5 if dtype == "float32" else classes / 256)
        assert int(np.argmax(probs)) == expected
        reference, logits = reference_probabilities(image, classes)
        assert int(np.argmax(logits)) == expected  # the case itself follows the documented rule
        np.testing.assert_allclose(probs[0], reference, atol=1e-5 if dtype == "float32" else 0.02)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "make",
    [
        lambda dtype: (tb.affine_model((2, 6), 1.25, -0.5, dtype), (-1.0, 1.0), 1),
        lambda dtype: (tb.image_classifier(16, 12, 3, 6, dtype), (0.0, 1.0), 5),
        lambda dtype: (tb.image_classifier(7, 9, 1, 2, dtype), (0.0, 1.0), 5),
    ],
    ids=["affine", "classifier-rgb", "classifier-grey"],
)
def test_xnnpack_matches_plain_cpu(dtype: tb.DType, make: Any) -> None:
    """Same results with and without the XNNPACK delegate.

    Quantized, XNNPACK's MEAN rounds exactly where the builtin kernel's fixed-point mean can be one step
    off; through the FC (about half a logit step) and softmax that becomes a few 1/256 steps of probability.
    """
    model, (lo, hi), max_steps = make(dtype)
    default, plain = load(model), load(model, plain_cpu=True)
    # The default resolver hands the whole graph to XNNPACK, so the two really run different kernels.
    assert "DELEGATE" in [op["op_name"] for op in default._get_ops_details()]
    assert "DELEGATE" not in [op["op_name"] for op in plain._get_ops_details()]
    rng = np.random.default_rng(7)
    for _ in range(5):
        real = rng.uniform(lo, hi, size=default.get_input_details()[0]["shape"])
        raw = to_input(default, real)
        out_default, out_plain = run(default, raw), run(plain, raw)
        assert out_default.dtype == out_plain.dtype
        if dtype == "float32":
            np.testing.assert_allclose(out_default, out_plain, rtol=1e-5, atol=1e-6)
        else:
            diff = np.abs(out_default.astype(np.int32) - out_plain.astype(np.int32))
            assert int(diff.max()) <= max_steps


def test_write_and_load_from_path(tmp_path: Path) -> None:
    data = tb.image_classifier(4, 4, 3, 3, "uint8")
    path = tb.write(tmp_path / "models" / "tiny.tflite", data)
    assert path.read_bytes() == data
    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    runner = interpreter.get_signature_runner(SIGNATURE_KEY)
    image = np.zeros((1, 4, 4, 3), dtype=np.uint8)
    image[..., 2] = 255
    probs = runner(input=image)["output"]
    assert int(np.argmax(probs)) == 2


@pytest.mark.parametrize(
    "build",
    [
        lambda: tb.affine_model(dtype="int16"),  # type: ignore[arg-type]
        lambda: tb.image_classifier(4, 4, 3, 3, "float16"),  # type: ignore[arg-type]
        lambda: tb.affine_model(shape=(1, 0)),
        lambda: tb.affine_model(input_range=(1.0, 1.0)),
        lambda: tb.image_classifier(4, 4, 0, 3),
    ],
)
def test_rejects_bad_arguments(build: Any) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        build()
