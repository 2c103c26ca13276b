"""The ACPI CCEL table (Confidential Computing Event Log) and TDX CCEL logs.

CCEL table (ACPI 6.5 section 5.2.34, 56 bytes, little-endian)::

    36-byte ACPI header: "CCEL" | u32 length | u8 revision | u8 checksum | 6 OEMID
                         | 8 OEM table ID | u32 OEM revision | u32 creator ID | u32 creator rev
    u8 CC type (1 = SEV, 2 = TDX) | u8 CC subtype | u16 reserved
    u64 LAML (log area minimum length) | u64 LASA (log area start address)

The log area holds a crypto-agile TCG log (SHA-384 only in TDVF) whose event index is the
CC-MR index: 0 = MRTD, 1..4 = RTMR0..3 (measurement-algorithms.md 10.3).
"""

from __future__ import annotations

from dataclasses import dataclass

from atls._bytes import Reader, Writer
from atls.errors import EvidenceParseError, UnsupportedEvidenceError
from atls.evidence.eventlog._algs import EV_NO_ACTION
from atls.evidence.eventlog._replay import rtmr_for_mr_index
from atls.evidence.eventlog._tcg import FMT, TcgLog, parse_tcg_log

__all__ = [
    "CCEL_SIGNATURE",
    "CCEL_TABLE_SIZE",
    "CC_TYPE_SEV",
    "CC_TYPE_TDX",
    "CcelTable",
    "encode_ccel_table",
    "parse_ccel",
    "parse_ccel_table",
]

CCEL_SIGNATURE = b"CCEL"
CCEL_TABLE_SIZE = 56
CC_TYPE_SEV = 1
CC_TYPE_TDX = 2


@dataclass(frozen=True)
class CcelTable:
    revision: int
    oem_id: bytes
    oem_table_id: bytes
    oem_revision: int
    creator_id: bytes
    creator_revision: int
    cc_type: int
    cc_subtype: int
    laml: int
    lasa: int


def parse_ccel_table(data: bytes) -> CcelTable:
    """Parse and check the 56-byte ACPI CCEL table (signature, length, checksum)."""
    r = Reader(data, FMT)
    # 1. ACPI header: signature and the length field must both say CCEL / 56 bytes
    if r.bytes(4, "signature") != CCEL_SIGNATURE:
        raise EvidenceParseError("not a CCEL table", format=FMT, offset=0, field="signature")
    length = r.u32("length")
    if length != CCEL_TABLE_SIZE or len(data) != CCEL_TABLE_SIZE:
        raise EvidenceParseError(
            f"CCEL table length field {length}, {len(data)} bytes given (must be 56)",
            format=FMT,
            offset=4,
            field="length",
        )
    # 2. ACPI checksum: all bytes of the table sum to zero mod 256
    if sum(data) & 0xFF:
        raise EvidenceParseError(
            "CCEL table checksum does not sum to zero", format=FMT, offset=9, field="checksum"
        )
    revision = r.u8("revision")
    r.u8("checksum")
    oem_id = r.bytes(6, "oem_id")
    oem_table_id = r.bytes(8, "oem_table_id")
    oem_revision = r.u32("oem_revision")
    creator_id = r.bytes(4, "creator_id")
    creator_revision = r.u32("creator_revision")
    # 3. CC fields; the reserved word must be zero
    cc_type = r.u8("cc_type")
    cc_subtype = r.u8("cc_subtype")
    r.zeros(2, "reserved")
    laml = r.u64("laml")
    lasa = r.u64("lasa")
    r.expect_end()
    return CcelTable(
        revision,
        oem_id,
        oem_table_id,
        oem_revision,
        creator_id,
        creator_revision,
        cc_type,
        cc_subtype,
        laml,
        lasa,
    )


def encode_ccel_table(t: CcelTable) -> bytes:
    """Serialize a table with a correct checksum."""
    w = Writer().raw(CCEL_SIGNATURE).u32(CCEL_TABLE_SIZE).u8(t.revision).u8(0)
    w.raw(t.oem_id).raw(t.oem_table_id).u32(t.oem_revision).raw(t.creator_id)
    w.u32(t.creator_revision).u8(t.cc_type).u8(t.cc_subtype).u16(0).u64(t.laml).u64(t.lasa)
    body = bytearray(w.getvalue())
    if len(body) != CCEL_TABLE_SIZE:
        raise ValueError("OEM fields have the wrong sizes")
    body[9] = (-sum(body)) & 0xFF
    return bytes(body)


def parse_ccel(log_area: bytes, *, table: bytes | None = None) -> TcgLog:
    """Parse a TDX CCEL log area (optionally with its ACPI table).

    With ``table``: the table must describe a TDX log and the area must fit in LAML bytes.
    Every measured event must target an RTMR (CC-MR index 1..4).
    """
    if table is not None:
        t = parse_ccel_table(table)
        if t.cc_type != CC_TYPE_TDX:
            raise UnsupportedEvidenceError(
                f"CCEL of CC type {t.cc_type} (only TDX = 2 is supported)",
                code="eventlog.unsupported",
            )
        if len(log_area) > t.laml:
            raise EvidenceParseError(
                f"log area of {len(log_area)} bytes exceeds LAML {t.laml}",
                format=FMT,
                field="laml",
            )
    log = parse_tcg_log(log_area)
    if log.spec_id is None:
        raise EvidenceParseError("a CCEL must be a crypto-agile log", format=FMT, offset=0)
    for e in log.events:  # every measured event must map to an RTMR
        if e.event_type != EV_NO_ACTION:
            rtmr_for_mr_index(e.index)
    return log
