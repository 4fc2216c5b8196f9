"""Modbus clients driven by declarative register maps."""

from drivers.modbus.planner import Block, plan_reads
from drivers.modbus.registers import ByteOrder, DataType, Point, RegisterMap, Table

__all__ = ["Block", "ByteOrder", "DataType", "Point", "RegisterMap", "Table", "plan_reads"]
