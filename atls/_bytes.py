"""Bounds-checked little/big-endian reader and writer for evidence parsers.

Every read checks the remaining length first, so a lying length field can never cause a
read past the end or a large allocation: the reader only ever slices its own buffer.
Every error is an :class:`~atls.errors.EvidenceParseError` carrying the offset.
"""

from __future__ import annotations

from atls.errors import EvidenceParseError

__all__ = ["Reader", "Writer"]


class Reader:
    """Sequential reader over immutable bytes. ``fmt`` names the evidence format in errors."""

    __slots__ = ("_buf", "_end", "fmt", "pos")

    def __init__(self, data: bytes, fmt: str, *, start: int = 0, end: int | None = None) -> None:
        self._buf = memoryview(bytes(data))
        self._end = len(data) if end is None else end
        if not 0 <= start <= self._end <= len(data):
            raise EvidenceParseError("bad reader bounds", format=fmt, offset=start)
        self.fmt = fmt
        self.pos = start

    @property
    def remaining(self) -> int:
        return self._end - self.pos

    def error(
        self, message: str, *, field: str | None = None, offset: int | None = None
    ) -> EvidenceParseError:
        return EvidenceParseError(
            message, format=self.fmt, offset=self.pos if offset is None else offset, field=field
        )

    def bytes(self, n: int, field: str | None = None) -> bytes:
        if n < 0 or n > self.remaining:
            raise self.error(f"need {n} bytes, {self.remaining} left", field=field)
        out = bytes(self._buf[self.pos : self.pos + n])
        self.pos += n
        return out

    def skip(self, n: int, field: str | None = None) -> None:
        self.bytes(n, field)

    def zeros(self, n: int, field: str) -> None:
        """Read ``n`` bytes that must all be zero (reserved / must-be-zero fields)."""
        start = self.pos
        b = self.bytes(n, field)
        if any(b):
            raise self.error("reserved bytes are not zero", field=field, offset=start)

    def _uint(self, n: int, order: str, field: str | None) -> int:
        return int.from_bytes(self.bytes(n, field), order)  # type: ignore[arg-type]

    def u8(self, field: str | None = None) -> int:
        return self._uint(1, "little", field)

    def u16(self, field: str | None = None) -> int:
        return self._uint(2, "little", field)

    def u32(self, field: str | None = None) -> int:
        return self._uint(4, "little", field)

    def u64(self, field: str | None = None) -> int:
        return self._uint(8, "little", field)

    def u16be(self, field: str | None = None) -> int:
        return self._uint(2, "big", field)

    def u32be(self, field: str | None = None) -> int:
        return self._uint(4, "big", field)

    def u64be(self, field: str | None = None) -> int:
        return self._uint(8, "big", field)

    def sub(self, n: int, field: str | None = None) -> Reader:
        """A reader over the next ``n`` bytes (offsets stay absolute); advances past them."""
        if n < 0 or n > self.remaining:
            raise self.error(f"length {n} exceeds the {self.remaining} bytes left", field=field)
        r = Reader.__new__(Reader)
        r._buf = self._buf
        r._end = self.pos + n
        r.fmt = self.fmt
        r.pos = self.pos
        self.pos += n
        return r

    def expect_end(self, field: str | None = None) -> None:
        if self.remaining:
            raise self.error(f"{self.remaining} unexpected trailing bytes", field=field)


class Writer:
    """Little-endian writer used by the simulated TEEs and encoders."""

    __slots__ = ("_parts",)

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def raw(self, b: bytes) -> Writer:
        self._parts.append(bytes(b))
        return self

    def u8(self, v: int) -> Writer:
        return self.raw(v.to_bytes(1, "little"))

    def u16(self, v: int) -> Writer:
        return self.raw(v.to_bytes(2, "little"))

    def u32(self, v: int) -> Writer:
        return self.raw(v.to_bytes(4, "little"))

    def u64(self, v: int) -> Writer:
        return self.raw(v.to_bytes(8, "little"))

    def u16be(self, v: int) -> Writer:
        return self.raw(v.to_bytes(2, "big"))

    def u32be(self, v: int) -> Writer:
        return self.raw(v.to_bytes(4, "big"))

    def zeros(self, n: int) -> Writer:
        return self.raw(bytes(n))

    def getvalue(self) -> bytes:
        return b"".join(self._parts)
