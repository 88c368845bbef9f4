"""Is a model file what it says it is? Checked before any runtime is handed the file.

A truncated or corrupt ``.tflite`` makes LiteRT segfault (the caller then sees "exit -11: no
output"), so its flatbuffer is walked here first: the ``TFL3`` identifier at bytes 4..8, the
root table and its vtable inside the file, and every weight buffer (inline data vector or
external offset + size) ending inside the file -- the part a truncation cuts off. An ``.onnx``
goes through ``onnx.checker``.
"""

from __future__ import annotations

import struct
from pathlib import Path

from edgecompress.errors import BenchError

TFLITE_IDENTIFIER = b"TFL3"
# Model table fields (tensorflow/lite/schema/schema.fbs): 2 = subgraphs, 4 = buffers; and the
# vectors of tables every interpreter walks: operator_codes, subgraphs, metadata, signatures.
_MODEL_SUBGRAPHS, _MODEL_BUFFERS = 2, 4
_MODEL_TABLE_VECTORS = (1, 2, 6, 7)
# SubGraph fields: 0 = tensors, 3 = operators (tables); 1 = inputs, 2 = outputs (int32).
_SUBGRAPH_TABLE_VECTORS, _SUBGRAPH_INT_VECTORS = (0, 3), (1, 2)
# Buffer table fields: 0 = data [ubyte], 1 = offset (ulong), 2 = size (ulong).
_BUFFER_DATA, _BUFFER_OFFSET, _BUFFER_SIZE = 0, 1, 2


class _Flatbuffer:
    """Just enough of the flatbuffer wire format to bounds-check a TFLite file."""

    def __init__(self, buf: bytes, where: str) -> None:
        self.buf, self.where = buf, where

    def bad(self, what: str) -> BenchError:
        return BenchError(f"{self.where}: not a valid .tflite file ({what}); is it truncated or corrupt? Export it again")

    def u32(self, pos: int) -> int:
        if pos < 0 or pos + 4 > len(self.buf):
            raise self.bad(f"offset {pos} is past the end of the {len(self.buf)}-byte file")
        return int(struct.unpack_from("<I", self.buf, pos)[0])

    def u16(self, pos: int) -> int:
        if pos < 0 or pos + 2 > len(self.buf):
            raise self.bad(f"offset {pos} is past the end of the {len(self.buf)}-byte file")
        return int(struct.unpack_from("<H", self.buf, pos)[0])

    def u64(self, pos: int) -> int:
        if pos < 0 or pos + 8 > len(self.buf):
            raise self.bad(f"offset {pos} is past the end of the {len(self.buf)}-byte file")
        return int(struct.unpack_from("<Q", self.buf, pos)[0])

    def field(self, table: int, index: int) -> int | None:
        """Absolute position of a table field, or None when the field is absent."""
        if table < 0 or table + 4 > len(self.buf):
            raise self.bad(f"a table at offset {table} is past the end of the {len(self.buf)}-byte file")
        vtable = table - struct.unpack_from("<i", self.buf, table)[0]
        vsize = self.u16(vtable)
        slot = 4 + 2 * index
        if slot + 2 > vsize:
            return None
        off = self.u16(vtable + slot)
        return table + off if off else None

    def vector(self, pos: int) -> tuple[int, int]:
        """(start of elements, length) of the vector referenced at ``pos``."""
        start = pos + self.u32(pos)
        n = self.u32(start)
        return start + 4, n

    def table_at(self, pos: int) -> int:
        return pos + self.u32(pos)

    def tables(self, table: int, index: int) -> list[int]:
        """Positions of the tables in a vector-of-tables field, each checked to lie in the file."""
        pos = self.field(table, index)
        if pos is None:
            return []
        first, n = self.vector(pos)
        if first + 4 * n > len(self.buf):
            raise self.bad(f"a vector of {n} entries runs past the end of the {len(self.buf)}-byte file")
        out = [self.table_at(first + 4 * i) for i in range(n)]
        for t in out:
            self.field(t, 0)  # reads the table's vtable: out of range -> bad()
        return out

    def ints(self, table: int, index: int) -> None:
        pos = self.field(table, index)
        if pos is not None:
            first, n = self.vector(pos)
            if first + 4 * n > len(self.buf):
                raise self.bad(f"a vector of {n} ints runs past the end of the {len(self.buf)}-byte file")


def check_tflite(path: Path) -> None:
    buf = path.read_bytes()
    fb = _Flatbuffer(buf, str(path))
    if len(buf) < 16:
        raise fb.bad(f"only {len(buf)} bytes")
    if buf[4:8] != TFLITE_IDENTIFIER:
        raise BenchError(f"{path}: not a .tflite file (bytes 4..8 are {buf[4:8]!r}, expected {TFLITE_IDENTIFIER!r})")
    model = fb.table_at(0)
    for index in _MODEL_TABLE_VECTORS:
        fb.tables(model, index)
    subgraphs = fb.tables(model, _MODEL_SUBGRAPHS)
    if not subgraphs:
        raise fb.bad("it has no subgraph")
    for sub in subgraphs:
        for index in _SUBGRAPH_TABLE_VECTORS:
            fb.tables(sub, index)
        for index in _SUBGRAPH_INT_VECTORS:
            fb.ints(sub, index)
    buffers = fb.field(model, _MODEL_BUFFERS)
    if buffers is None:
        return
    first, count = fb.vector(buffers)
    if first + 4 * count > len(buf):
        raise fb.bad(f"its {count} buffers run past the end of the {len(buf)}-byte file")
    for i in range(count):
        table = fb.table_at(first + 4 * i)
        data = fb.field(table, _BUFFER_DATA)
        if data is not None:
            start, n = fb.vector(data)
            if start + n > len(buf):
                raise fb.bad(f"buffer {i} ({n} bytes) runs past the end of the {len(buf)}-byte file")
        offset, size = fb.field(table, _BUFFER_OFFSET), fb.field(table, _BUFFER_SIZE)
        if offset is not None and size is not None and fb.u64(offset) + fb.u64(size) > len(buf):
            raise fb.bad(f"buffer {i} ends at byte {fb.u64(offset) + fb.u64(size)} of a {len(buf)}-byte file")


def check_onnx(path: Path) -> None:
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
        onnx.checker.check_model(model)
    except Exception as exc:  # noqa: BLE001 - protobuf and checker raise many types; all mean "bad file"
        detail = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise BenchError(f"{path}: not a valid .onnx file ({detail}); is it truncated or corrupt? Export it again") from None


def check_model_file(path: Path, fmt: str) -> None:
    """One-line BenchError unless ``path`` is a structurally sound model of format ``fmt``."""
    try:
        if fmt == "tflite":
            check_tflite(path)
        elif fmt == "onnx":
            check_onnx(path)
    except OSError as exc:
        raise BenchError(f"{path}: cannot read the model file ({exc.strerror or exc})") from None
