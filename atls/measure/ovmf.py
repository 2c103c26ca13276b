"""OVMF/TDVF firmware parsing: the GUIDed footer table, the TDVF descriptor (TDX) and the
SEV metadata (SEV-SNP). measurement-algorithms.md section 2.

All functions take the firmware image as ``bytes`` and raise
:class:`~atls.errors.EvidenceParseError` (codes ``measure.ovmf.*``, ``measure.tdvf.*``,
``measure.sev_metadata.*``) on anything malformed. Sizes are bounded so that a hostile image
cannot make a later measurement loop for long.
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass
from enum import IntEnum

from atls._bytes import Reader
from atls.measure._common import artifact_error

__all__ = [
    "FOOTER_GUID",
    "MAX_SECTION_BYTES",
    "SEV_ES_RESET_BLOCK_GUID",
    "SEV_HASH_TABLE_GUID",
    "SEV_METADATA_GUID",
    "TDX_METADATA_GUID",
    "SevSection",
    "SevSectionType",
    "TdvfSection",
    "TdvfSectionType",
    "footer_table",
    "parse_sev_metadata",
    "parse_tdvf_metadata",
    "sev_es_reset_eip",
    "sev_hashes_table_location",
]

FOOTER_GUID = uuid.UUID("96b582de-1fb2-45f7-baea-a366c55a082d")
TDX_METADATA_GUID = uuid.UUID("e47a6535-984a-4798-865e-4685a7bf8ec2")
SEV_METADATA_GUID = uuid.UUID("dc886566-984a-4798-a75e-5585a7bf67cc")
SEV_ES_RESET_BLOCK_GUID = uuid.UUID("00f771de-1a7e-4fcb-890e-68c77e2fb44e")
SEV_HASH_TABLE_GUID = uuid.UUID("7255371f-3a3b-4b04-927b-1da6efa8d454")

PAGE = 4096
#: Upper bound on the memory one metadata table may describe (sum of its sections). Real
#: images describe a few MiB; the bound keeps measuring a hostile image fast.
MAX_SECTION_BYTES = 256 << 20
#: Upper bound on the number of sections in one table.
MAX_SECTIONS = 64

_OVMF = "measure.ovmf"
_TDVF = "measure.tdvf"
_SEV = "measure.sev_metadata"


def footer_table(fw: bytes) -> dict[uuid.UUID, bytes]:
    """The OVMF GUIDed footer table: ``{guid: payload}``.

    Layout, read backwards from 32 bytes before the end of the image: footer GUID, u16 table
    size (including the 18-byte footer entry), then entries ``[data][u16 size][GUID]``.
    """
    n = len(fw)
    # 1. The footer entry sits right before the 32-byte reset-vector area.
    if n < 32 + 18:
        raise artifact_error(_OVMF, f"image of {n} bytes has no footer table", "no_footer")
    if uuid.UUID(bytes_le=bytes(fw[n - 48 : n - 32])) != FOOTER_GUID:
        raise artifact_error(
            _OVMF, "no OVMF footer GUID before the reset vector", "no_footer", offset=n - 48
        )
    total = int.from_bytes(fw[n - 50 : n - 48], "little")
    end = n - 32
    start = end - total
    # 2. The declared size covers at least the footer entry and stays inside the image.
    if total < 18 or start < 0:
        raise artifact_error(
            _OVMF, f"footer table size {total} is invalid", "footer_size", offset=n - 50
        )
    # 3. Walk the entries from the end towards the start.
    entries: dict[uuid.UUID, bytes] = {}
    pos = end - 18
    while pos > start:
        if pos - start < 18:
            raise artifact_error(_OVMF, "truncated footer entry", "footer_entry", offset=pos)
        g = uuid.UUID(bytes_le=bytes(fw[pos - 16 : pos]))
        size = int.from_bytes(fw[pos - 18 : pos - 16], "little")
        if size < 18 or size > pos - start:
            raise artifact_error(
                _OVMF, f"footer entry {g} has size {size}", "footer_entry", offset=pos - 18
            )
        if g in entries:
            raise artifact_error(_OVMF, f"footer entry {g} appears twice", "footer_entry")
        entries[g] = bytes(fw[pos - size : pos - 18])
        pos -= size
    return entries


def _u32_entry(fw: bytes, g: uuid.UUID, what: str, fmt: str) -> int | None:
    table = footer_table(fw)
    data = table.get(g)
    if data is None:
        return None
    if len(data) < 4:
        raise artifact_error(fmt, f"{what} entry is {len(data)} bytes", "footer_entry")
    return int.from_bytes(data[:4], "little")


def _descriptor_offset(fw: bytes, g: uuid.UUID, what: str, fmt: str) -> int:
    value = _u32_entry(fw, g, what, fmt)
    if value is None:
        raise artifact_error(fmt, f"the firmware has no {what} (footer entry {g})", "absent")
    off = len(fw) - value
    if value == 0 or off < 0:
        raise artifact_error(fmt, f"{what} offset {value:#x} is outside the image", "offset")
    return off


class TdvfSectionType(IntEnum):
    BFV = 0
    CFV = 1
    TD_HOB = 2
    TEMP_MEM = 3
    PERM_MEM = 4
    PAYLOAD = 5
    PAYLOAD_PARAM = 6


#: TDVF section attribute bits.
ATTR_MR_EXTEND = 0x1
ATTR_PAGE_AUG = 0x2


@dataclass(frozen=True)
class TdvfSection:
    """One 32-byte TDVF section descriptor."""

    data_offset: int
    raw_size: int
    gpa: int
    mem_size: int
    type: int
    attributes: int

    @property
    def mr_extend(self) -> bool:
        return bool(self.attributes & ATTR_MR_EXTEND)

    @property
    def page_aug(self) -> bool:
        return bool(self.attributes & ATTR_PAGE_AUG)

    def to_json(self) -> dict[str, int | str]:
        return {
            "data_offset": hex(self.data_offset),
            "raw_size": hex(self.raw_size),
            "gpa": hex(self.gpa),
            "mem_size": hex(self.mem_size),
            "type": self.type,
            "attributes": self.attributes,
        }


def parse_tdvf_metadata(fw: bytes) -> tuple[TdvfSection, ...]:
    """The TDVF sections of a TDX-capable OVMF image, in descriptor order.

    Checks (measurement-algorithms.md 2.2): signature ``"TDVF"``, version 1, the declared length
    equals ``16 + 32 * count``, every ``gpa``/``mem_size`` is 4 KiB aligned,
    ``mem_size >= raw_size``, raw data lies inside the image, a measured (MR_EXTEND) section
    has ``raw_size == mem_size``, known types and attribute bits only, sections do not overlap,
    and the total memory stays under :data:`MAX_SECTION_BYTES`.
    """
    off = _descriptor_offset(fw, TDX_METADATA_GUID, "TDX metadata", _TDVF)
    r = Reader(fw, _TDVF, start=off)
    if r.bytes(4, "signature") != b"TDVF":
        raise artifact_error(_TDVF, "bad TDVF descriptor signature", "signature", offset=off)
    length = r.u32("length")
    version = r.u32("version")
    count = r.u32("count")
    if version != 1:
        raise artifact_error(_TDVF, f"TDVF version {version} is not 1", "version", offset=off + 8)
    if count == 0 or count > MAX_SECTIONS or length != 16 + 32 * count:
        raise artifact_error(
            _TDVF, f"descriptor length {length} does not fit {count} sections", "length", offset=off
        )
    body = r.sub(32 * count, "sections")
    sections: list[TdvfSection] = []
    total = 0
    for i in range(count):
        at = body.pos
        s = TdvfSection(
            data_offset=body.u32("data_offset"),
            raw_size=body.u32("raw_size"),
            gpa=body.u64("gpa"),
            mem_size=body.u64("mem_size"),
            type=body.u32("type"),
            attributes=body.u32("attributes"),
        )
        field = f"sections[{i}]"
        if s.type not in TdvfSectionType.__members__.values():
            raise artifact_error(_TDVF, f"unknown section type {s.type}", "section_type", offset=at)
        if s.attributes & ~(ATTR_MR_EXTEND | ATTR_PAGE_AUG):
            raise artifact_error(
                _TDVF, f"unknown attribute bits {s.attributes:#x}", "attributes", offset=at
            )
        if s.gpa % PAGE or s.mem_size % PAGE or s.mem_size == 0:
            raise artifact_error(
                _TDVF, "gpa/mem_size not 4 KiB aligned", "alignment", offset=at, field=field
            )
        if s.mem_size < s.raw_size or s.data_offset + s.raw_size > len(fw):
            raise artifact_error(
                _TDVF, "raw data outside the image or larger than memory", "size", offset=at,
                field=field,
            )
        if s.mr_extend and s.raw_size != s.mem_size:
            raise artifact_error(
                _TDVF, "measured section must have raw_size == mem_size", "size", offset=at,
                field=field,
            )
        if s.gpa + s.mem_size > 1 << 52:
            raise artifact_error(_TDVF, "section beyond 52-bit GPA space", "gpa", offset=at)
        total += s.mem_size
        if total > MAX_SECTION_BYTES:
            raise artifact_error(_TDVF, "sections describe too much memory", "too_large", offset=at)
        sections.append(s)
    ordered = sorted(sections, key=lambda s: s.gpa)
    for a, b in itertools.pairwise(ordered):
        if a.gpa + a.mem_size > b.gpa:
            raise artifact_error(_TDVF, f"sections at {a.gpa:#x} and {b.gpa:#x} overlap", "overlap")
    return tuple(sections)


class SevSectionType(IntEnum):
    SNP_SEC_MEMORY = 1
    SNP_SECRETS = 2
    CPUID = 3
    SVSM_CAA = 4
    SNP_KERNEL_HASHES = 0x10


@dataclass(frozen=True)
class SevSection:
    """One 12-byte SEV metadata section: ``{u32 gpa, u32 size, u32 type}``."""

    gpa: int
    size: int
    type: SevSectionType

    def to_json(self) -> list[str | int]:
        return [hex(self.gpa), hex(self.size), int(self.type)]


def check_sev_sections(sections: tuple[SevSection, ...], fmt: str = _SEV) -> None:
    """Alignment and size bounds of SEV metadata sections (from an image or a registry)."""
    total = 0
    for i, s in enumerate(sections):
        if s.gpa % PAGE or s.size % PAGE or s.size == 0 or s.gpa + s.size > 1 << 32:
            raise artifact_error(
                fmt, f"section {i} ({s.gpa:#x}+{s.size:#x}) is not page aligned", "alignment",
                field=f"sections[{i}]",
            )
        total += s.size
    if total > MAX_SECTION_BYTES:
        raise artifact_error(fmt, "sections describe too much memory", "too_large")


def parse_sev_metadata(fw: bytes) -> tuple[SevSection, ...]:
    """The SEV metadata sections (``"ASEV"`` descriptor), in file order."""
    off = _descriptor_offset(fw, SEV_METADATA_GUID, "SEV metadata", _SEV)
    r = Reader(fw, _SEV, start=off)
    if r.bytes(4, "signature") != b"ASEV":
        raise artifact_error(_SEV, "bad SEV metadata signature", "signature", offset=off)
    size = r.u32("size")
    version = r.u32("version")
    count = r.u32("count")
    if version != 1:
        raise artifact_error(_SEV, f"SEV metadata version {version} is not 1", "version")
    if count == 0 or count > MAX_SECTIONS or size != 16 + 12 * count:
        raise artifact_error(_SEV, f"size {size} does not fit {count} sections", "length")
    body = r.sub(12 * count, "sections")
    out: list[SevSection] = []
    for _ in range(count):
        at = body.pos
        gpa, sz, typ = body.u32("gpa"), body.u32("size"), body.u32("type")
        try:
            t = SevSectionType(typ)
        except ValueError:
            raise artifact_error(_SEV, f"unknown section type {typ:#x}", "section_type",
                                 offset=at) from None
        out.append(SevSection(gpa, sz, t))
    result = tuple(out)
    check_sev_sections(result)
    return result


def sev_es_reset_eip(fw: bytes) -> int:
    """The SEV-ES AP reset EIP from the footer table (used for every AP's VMSA)."""
    value = _u32_entry(fw, SEV_ES_RESET_BLOCK_GUID, "SEV-ES reset block", _SEV)
    if value is None:
        raise artifact_error(_SEV, "the firmware has no SEV-ES reset block", "no_reset_eip")
    return value


def sev_hashes_table_location(fw: bytes) -> tuple[int, int | None] | None:
    """``(gpa, size)`` of the SEV hashes table, or None when the build has none (gpa 0).

    OVMF stores ``u32 gpa, u32 size``; some builders write only the GPA (size None then)."""
    data = footer_table(fw).get(SEV_HASH_TABLE_GUID)
    if data is None:
        return None
    if len(data) < 4:
        raise artifact_error(_SEV, "SEV hashes table entry is too short", "footer_entry")
    gpa = int.from_bytes(data[:4], "little")
    size = int.from_bytes(data[4:8], "little") if len(data) >= 8 else None
    return None if gpa == 0 else (gpa, size)
