"""TCG PC Client event logs: crypto-agile (TCG_PCR_EVENT2) and legacy SHA-1 (TCG_PCClientPCREvent).

Layout (TCG PC Client Platform Firmware Profile, section 10; all integers little-endian)::

    first record (legacy header format):
        u32 pcrIndex | u32 eventType | 20-byte SHA-1 digest | u32 eventSize | event
    if the first event is TCG_EfiSpecIDEvent ("Spec ID Event03\\0") the log is crypto-agile:
        u32 pcrIndex | u32 eventType | u32 digestCount
        | digestCount x {u16 algorithmId | digest[size from the Spec ID table]}
        | u32 eventSize | event
    otherwise every record has the legacy format (SHA-1 only).

The end of the log is the end of the data, or padding: the rest of the buffer is all ``0xFF``
or all ``0x00`` (CCEL areas are filled so). Every length is checked against the bytes that
are left before anything is read, so a lying size can never cause a large allocation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from atls._bytes import Reader, Writer
from atls.errors import EvidenceParseError, UnsupportedEvidenceError
from atls.evidence.eventlog._algs import (
    ALG_IDS,
    ALG_NAMES,
    ALG_SIZES,
    EV_NO_ACTION,
    event_type_name,
    hash_bank,
)

__all__ = [
    "FMT",
    "MAX_EVENTS",
    "SPEC_ID_SIGNATURE",
    "SpecIdEvent",
    "TcgEvent",
    "TcgLog",
    "encode_tcg_log",
    "parse_tcg_log",
]

FMT = "eventlog"
SPEC_ID_SIGNATURE = b"Spec ID Event03\x00"
_SHA1 = ALG_IDS["sha1"]
_MAX_DIGEST = 64  # the largest digest of any registered TPM hash (SHA-512, SHA3-512)
MAX_EVENTS = 100_000  # real firmware logs hold hundreds of events


@dataclass(frozen=True)
class TcgEvent:
    """One measured (or EV_NO_ACTION) event.

    ``index`` is the PCR index, or the CC-MR index in a CCEL (1..4 = RTMR0..3).
    ``digests`` are ``(TPM_ALG_ID, digest)`` pairs in log order. ``data`` is the event
    data exactly as logged. ``offset`` is where the record starts in the log.
    """

    index: int
    event_type: int
    digests: tuple[tuple[int, bytes], ...]
    data: bytes
    offset: int = field(default=0, compare=False)

    @property
    def type_name(self) -> str:
        return event_type_name(self.event_type)

    @property
    def banks(self) -> tuple[str, ...]:
        return tuple(ALG_NAMES.get(a, f"alg_0x{a:04x}") for a, _ in self.digests)

    def digest(self, bank: str) -> bytes | None:
        """This event's digest for ``bank`` (``sha256``...), or None if it carries none."""
        alg = ALG_IDS.get(bank)
        for a, d in self.digests:
            if a == alg:
                return d
        return None

    @classmethod
    def measure(
        cls, index: int, event_type: int, data: bytes, banks: Sequence[str] = ("sha256",)
    ) -> TcgEvent:
        """An event whose digests are ``H_bank(data)`` (for building logs in tests/tools)."""
        return cls(index, event_type, tuple((ALG_IDS[b], hash_bank(b, data)) for b in banks), data)


@dataclass(frozen=True)
class SpecIdEvent:
    """TCG_EfiSpecIDEvent: the header of a crypto-agile log."""

    platform_class: int
    spec_version_minor: int
    spec_version_major: int
    spec_errata: int
    uintn_size: int
    algorithms: tuple[tuple[int, int], ...]  # (TPM_ALG_ID, digest size)
    vendor_info: bytes = b""

    @property
    def banks(self) -> tuple[str, ...]:
        return tuple(ALG_NAMES.get(a, f"alg_0x{a:04x}") for a, _ in self.algorithms)


@dataclass(frozen=True)
class TcgLog:
    """A parsed log. ``spec_id`` is None for a legacy SHA-1 log; ``header`` is the Spec ID
    record of a crypto-agile log (not part of ``events``) and ``header_index`` its index
    (0 in TPM logs, 1 in TDVF's CCEL). ``padding`` counts the fill bytes after the last
    record."""

    spec_id: SpecIdEvent | None
    events: tuple[TcgEvent, ...]
    header_index: int = 0
    header: TcgEvent | None = field(default=None, compare=False)
    padding: int = field(default=0, compare=False)

    @property
    def crypto_agile(self) -> bool:
        return self.spec_id is not None

    @property
    def banks(self) -> tuple[str, ...]:
        """The banks every event carries (``("sha1",)`` for a legacy log)."""
        return self.spec_id.banks if self.spec_id is not None else ("sha1",)


def _err(msg: str, offset: int | None = None, field: str | None = None) -> EvidenceParseError:
    return EvidenceParseError(msg, format=FMT, offset=offset, field=field)


def _legacy_record(r: Reader) -> TcgEvent:
    start = r.pos
    index = r.u32("pcrIndex")
    etype = r.u32("eventType")
    digest = r.bytes(20, "digest")
    size = r.u32("eventSize")
    data = r.bytes(size, "event")
    return TcgEvent(index, etype, ((_SHA1, digest),), data, start)


def _agile_record(r: Reader, sizes: dict[int, int]) -> TcgEvent:
    start = r.pos
    index = r.u32("pcrIndex")
    etype = r.u32("eventType")
    count_at = r.pos
    count = r.u32("digestCount")
    # Every record carries one digest per algorithm of the Spec ID table: this also bounds
    # the loop below whatever the count field says.
    if count != len(sizes):
        raise _err(
            f"digestCount {count} but the Spec ID event declares {len(sizes)} algorithms",
            count_at,
            "digestCount",
        )
    digests: list[tuple[int, bytes]] = []
    for _ in range(count):
        alg_at = r.pos
        alg = r.u16("algorithmId")
        size = sizes.get(alg)
        if size is None:
            raise _err(f"algorithm 0x{alg:04x} is not in the Spec ID table", alg_at, "algorithmId")
        if any(a == alg for a, _ in digests):
            raise _err(f"algorithm 0x{alg:04x} appears twice", alg_at, "algorithmId")
        digests.append((alg, r.bytes(size, "digest")))
    size = r.u32("eventSize")
    data = r.bytes(size, "event")
    return TcgEvent(index, etype, tuple(digests), data, start)


def _spec_id(buf: bytes, header: TcgEvent, data_at: int) -> SpecIdEvent:
    # (TPM logs put it in PCR 0, TDVF's CCEL in CC-MR 1: the index is not checked.)
    if header.event_type != EV_NO_ACTION:
        raise _err("the Spec ID event must be EV_NO_ACTION", header.offset, "header")
    if any(header.digests[0][1]):
        raise _err("the Spec ID event's SHA-1 digest must be zero", header.offset, "header")
    s = Reader(buf, FMT, start=data_at, end=data_at + len(header.data))
    s.skip(16, "signature")
    platform_class = s.u32("platformClass")
    minor = s.u8("specVersionMinor")
    major = s.u8("specVersionMajor")
    errata = s.u8("specErrata")
    uintn_at = s.pos
    uintn = s.u8("uintnSize")
    if uintn not in (1, 2):
        raise _err(f"uintnSize {uintn} is neither 1 nor 2", uintn_at, "uintnSize")
    n_at = s.pos
    n = s.u32("numberOfAlgorithms")
    if n == 0 or n * 4 > s.remaining:
        raise _err(f"numberOfAlgorithms {n} does not fit the event", n_at, "numberOfAlgorithms")
    algs: list[tuple[int, int]] = []
    for _ in range(n):
        at = s.pos
        alg = s.u16("algorithmId")
        size = s.u16("digestSize")
        known = ALG_SIZES.get(alg)
        if known is not None and size != known:
            raise _err(f"digest size {size} for algorithm 0x{alg:04x} (must be {known})", at)
        if not 1 <= size <= _MAX_DIGEST:
            raise _err(f"digest size {size} for algorithm 0x{alg:04x}", at, "digestSize")
        if any(a == alg for a, _ in algs):
            raise _err(f"algorithm 0x{alg:04x} declared twice", at, "algorithmId")
        algs.append((alg, size))
    vendor_size = s.u8("vendorInfoSize")
    vendor = s.bytes(vendor_size, "vendorInfo")
    s.expect_end("TCG_EfiSpecIDEvent")
    if major != 2:
        raise UnsupportedEvidenceError(
            f"Spec ID event version {major}.{minor} (crypto-agile logs are 2.x)",
            code="eventlog.unsupported",
        )
    return SpecIdEvent(platform_class, minor, major, errata, uintn, tuple(algs), vendor)


def _fill_start(buf: bytes) -> int:
    """Where the trailing fill begins: from there on every byte is 0xFF, or every byte is
    0x00 (computed once, so checking each record boundary costs nothing)."""
    return min(len(buf.rstrip(b"\xff")), len(buf.rstrip(b"\x00")))


def parse_tcg_log(data: bytes, *, allow_padding: bool = True) -> TcgLog:
    """Parse a TCG PC Client event log (TPM ``binary_bios_measurements`` or a CCEL area).

    ``allow_padding=False`` rejects fill bytes after the last record. Errors:
    :class:`EvidenceParseError` (code ``eventlog.parse``) for malformed logs,
    :class:`UnsupportedEvidenceError` for a Spec ID version other than 2.
    """
    buf = bytes(data)
    if not buf:
        raise _err("empty event log", 0)
    fill_at = _fill_start(buf)
    if fill_at == 0:
        raise _err("the event log holds only padding", 0)
    r = Reader(buf, FMT)
    first = _legacy_record(r)
    events: list[TcgEvent] = []
    spec: SpecIdEvent | None = None
    header: TcgEvent | None = None
    sizes: dict[int, int] = {}
    if first.data[:16] == SPEC_ID_SIGNATURE:
        header = first
        spec = _spec_id(buf, first, r.pos - len(first.data))
        sizes = dict(spec.algorithms)
    else:
        events.append(first)
    padding = 0
    while r.remaining:
        if len(events) >= MAX_EVENTS:
            raise _err(f"more than {MAX_EVENTS} events", r.pos)
        if r.pos >= fill_at:
            if not allow_padding:
                raise _err(f"{r.remaining} bytes of padding after the last event", r.pos)
            padding = r.remaining
            break
        events.append(_agile_record(r, sizes) if spec is not None else _legacy_record(r))
    return TcgLog(spec, tuple(events), header.index if header else 0, header, padding)


def _encode_spec_id(spec: SpecIdEvent) -> bytes:
    w = Writer().raw(SPEC_ID_SIGNATURE).u32(spec.platform_class)
    w.u8(spec.spec_version_minor).u8(spec.spec_version_major).u8(spec.spec_errata)
    w.u8(spec.uintn_size).u32(len(spec.algorithms))
    for alg, size in spec.algorithms:
        w.u16(alg).u16(size)
    return w.u8(len(spec.vendor_info)).raw(spec.vendor_info).getvalue()


def _encode_events(events: Iterable[TcgEvent], agile: bool) -> bytes:
    w = Writer()
    for e in events:
        w.u32(e.index).u32(e.event_type)
        if agile:
            w.u32(len(e.digests))
            for alg, d in e.digests:
                w.u16(alg).raw(d)
        else:
            if len(e.digests) != 1 or e.digests[0][0] != _SHA1 or len(e.digests[0][1]) != 20:
                raise ValueError("a legacy log event carries exactly one SHA-1 digest")
            w.raw(e.digests[0][1])
        w.u32(len(e.data)).raw(e.data)
    return w.getvalue()


def encode_tcg_log(log: TcgLog, *, padding: int = 0, fill: int = 0xFF) -> bytes:
    """Serialize ``log`` (the inverse of :func:`parse_tcg_log`), optionally padded."""
    out = b""
    if log.spec_id is not None:
        spec_data = _encode_spec_id(log.spec_id)
        out = _encode_events(
            [TcgEvent(log.header_index, EV_NO_ACTION, ((_SHA1, bytes(20)),), spec_data)],
            agile=False,
        )
    out += _encode_events(log.events, agile=log.spec_id is not None)
    return out + bytes([fill]) * padding
