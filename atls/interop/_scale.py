"""A bounded SCALE (parity-scale-codec) reader and writer: just the shapes dstack uses."""

from __future__ import annotations

from atls._bytes import Reader, Writer

__all__ = ["ScaleReader", "scale_compact"]

#: No single SCALE vector in a dstack attestation may exceed this (the whole is <= 10 MiB).
MAX_LEN = 10 << 20


class ScaleReader:
    def __init__(self, data: bytes, fmt: str = "dstack") -> None:
        self.r = Reader(data, fmt)

    def compact(self, field: str) -> int:
        b0 = self.r.u8(field)
        mode = b0 & 3
        if mode == 0:
            return b0 >> 2
        if mode == 1:
            return (b0 | self.r.u8(field) << 8) >> 2
        if mode == 2:
            rest = self.r.bytes(3, field)
            return int.from_bytes(bytes([b0]) + rest, "little") >> 2
        n = (b0 >> 2) + 4
        if n > 8:
            raise self.r.error("compact integer wider than 64 bits", field=field)
        return int.from_bytes(self.r.bytes(n, field), "little")

    def length(self, field: str) -> int:
        n = self.compact(field)
        if n > MAX_LEN or n > self.r.remaining:
            raise self.r.error(f"length {n} exceeds the data left", field=field)
        return n

    def vec_u8(self, field: str) -> bytes:
        return self.r.bytes(self.length(field), field)

    def string(self, field: str) -> str:
        raw = self.vec_u8(field)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise self.r.error("string is not UTF-8", field=field) from None

    def count(self, field: str, min_item_size: int = 1) -> int:
        """A vector's item count, bounded by what the remaining bytes could hold."""
        n = self.compact(field)
        if n * min_item_size > self.r.remaining:
            raise self.r.error(f"{n} items cannot fit in the data left", field=field)
        return n


def scale_compact(w: Writer, n: int) -> Writer:
    if n < 1 << 6:
        return w.u8(n << 2)
    if n < 1 << 14:
        return w.u16((n << 2) | 1)
    if n < 1 << 30:
        return w.u32((n << 2) | 2)
    raw = n.to_bytes((n.bit_length() + 7) // 8, "little")
    return w.u8(((len(raw) - 4) << 2) | 3).raw(raw)
