"""Register decoding: every type, byte and word order, scale and offset, and bad input."""

from __future__ import annotations

import struct

import pytest

from drivers.modbus.registers import ByteOrder, DataType, DecodeError, Point, RegisterMap, Table


def words(fmt: str, value: float, byte_order: str = "big", word_order: str = "big") -> list[int]:
    """Registers as a device would send them, built with struct (independent of the decoder)."""
    data = struct.pack(">" + fmt, value)
    chunks = [data[i : i + 2] for i in range(0, len(data), 2)]
    if word_order == "little":
        chunks.reverse()
    return [int.from_bytes(c, "big" if byte_order == "big" else "little") for c in chunks]


CASES = [
    (DataType.INT16, "h", -1234),
    (DataType.UINT16, "H", 65000),
    (DataType.INT32, "i", -2_000_000_000),
    (DataType.UINT32, "I", 4_000_000_000),
    (DataType.FLOAT32, "f", 3.5),
    (DataType.FLOAT64, "d", -12345.6789),
]


@pytest.mark.parametrize(("datatype", "fmt", "value"), CASES)
@pytest.mark.parametrize("byte_order", ["big", "little"])
@pytest.mark.parametrize("word_order", ["big", "little"])
def test_decodes_every_type_in_every_order(
    datatype: DataType, fmt: str, value: float, byte_order: str, word_order: str
) -> None:
    point = Point("x", Table.HOLDING, 0, datatype, ByteOrder(byte_order), ByteOrder(word_order))
    assert point.count == struct.calcsize(fmt) // 2
    assert point.decode(words(fmt, value, byte_order, word_order)) == pytest.approx(value)


def test_word_order_matters_for_32_bit_values() -> None:
    big = Point("x", Table.HOLDING, 0, DataType.UINT32)
    swapped = Point("x", Table.HOLDING, 0, DataType.UINT32, word_order=ByteOrder.LITTLE)
    assert big.decode([0x0001, 0x0002]) == 0x00010002
    assert swapped.decode([0x0001, 0x0002]) == 0x00020001


def test_scale_and_offset_give_engineering_units() -> None:
    point = Point("p", Table.INPUT, 0, DataType.INT16, scale=0.1, offset=-40.0, unit="degC")
    assert point.decode([625]) == pytest.approx(22.5)
    assert point.decode(words("h", -10)) == pytest.approx(-41.0)


def test_bits_decode_to_zero_or_one() -> None:
    coil = Point("run", Table.COIL, 7, DataType.BOOL)
    assert coil.count == 1
    assert coil.decode([True]) == 1.0
    assert coil.decode([False]) == 0.0


def test_wrong_register_count_is_a_clear_error() -> None:
    point = Point("t", Table.INPUT, 0, DataType.FLOAT32)
    with pytest.raises(DecodeError, match="t: expected 2 register"):
        point.decode([1])


def test_a_value_that_is_not_a_16_bit_word_is_refused() -> None:
    with pytest.raises(DecodeError, match="not a 16-bit word"):
        Point("t", Table.INPUT, 0).decode([70000])


def test_register_map_refuses_duplicates_and_overlaps() -> None:
    with pytest.raises(ValueError, match="'a' is defined twice"):
        RegisterMap.of([Point("a", Table.INPUT, 0), Point("a", Table.INPUT, 5)])
    with pytest.raises(ValueError, match="'b' overlaps 'a' in the holding table at address 1"):
        RegisterMap.of([Point("a", Table.HOLDING, 0, DataType.FLOAT32), Point("b", Table.HOLDING, 1)])
    # the same address in two different tables is two different registers
    RegisterMap.of([Point("a", Table.HOLDING, 0), Point("b", Table.INPUT, 0)])


def test_strings_read_two_characters_a_register() -> None:
    name = Point("serial", Table.HOLDING, 0, DataType.STRING, length=4)
    assert name.count == 4 and not name.is_waveform and not name.is_plain
    words = [int.from_bytes(b"PX-2207\0"[i : i + 2], "big") for i in range(0, 8, 2)]
    assert name.decode(words) == "PX-2207"
    swapped = Point("serial", Table.HOLDING, 0, DataType.STRING, byte_order=ByteOrder.LITTLE, length=4)
    assert (
        swapped.decode([int.from_bytes(b"PX-2207 "[i : i + 2], "little") for i in range(0, 8, 2)])
        == "PX-2207"
    )
    with pytest.raises(DecodeError):
        name.decode([0x10000, 0, 0, 0])


def test_waveforms_decode_to_samples_in_engineering_units() -> None:
    samples = [-1.5, 0.25, 3.0]
    int_wave = Point("vib", Table.INPUT, 0, DataType.INT16, scale=0.001, length=3)
    assert int_wave.is_waveform and int_wave.count == 3
    words = [w for s in samples for w in struct_words("h", round(s / 0.001))]
    assert list(int_wave.decode_samples(words)) == pytest.approx(samples)
    float_wave = Point("vib", Table.INPUT, 0, DataType.FLOAT32, word_order=ByteOrder.LITTLE, length=3)
    assert float_wave.count == 6
    words = [w for s in samples for w in reversed(struct_words("f", s))]
    assert list(float_wave.decode_samples(words)) == pytest.approx(samples)
    with pytest.raises(DecodeError, match="expected 6 registers"):
        float_wave.decode_samples(words[:5])
    with pytest.raises(DecodeError, match="not a 16-bit word"):
        int_wave.decode_samples([1, -2, 3])


def struct_words(fmt: str, value: float) -> list[int]:
    return words(fmt, value)
