"""Intel TDX registers from build artifacts: MRTD and RTMR0-2 (measurement-algorithms.md 3-6).

Everything takes bytes and ints; nothing reads files. The register values depend on inputs
that are not in the image (QEMU version, RAM, vCPUs, ACPI tables): they are explicit
parameters, never guessed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from atls.measure._common import (
    config_error,
    guid,
    replay,
    require_digest,
    sha384,
)
from atls.measure.acpi import AcpiDigests
from atls.measure.ovmf import PAGE, TdvfSection, TdvfSectionType

__all__ = [
    "ACTION_CALLING_EFI_APP",
    "ACTION_EXIT_BOOT_SERVICES",
    "ACTION_EXIT_BOOT_SERVICES_OK",
    "PageOrder",
    "Rtmr0Events",
    "SECURE_BOOT_VARIABLES",
    "boot0000_uiapp",
    "cfv_digest",
    "cmdline_digest",
    "firmware_cmdline",
    "mrtd",
    "rtmr0",
    "rtmr1",
    "rtmr1_events",
    "rtmr2",
    "rtmr2_events",
    "separator_digest",
    "td_hob",
    "td_hob_from_sections",
    "uefi_variable_data",
]

PageOrder = Literal["two-pass", "single-pass"]
Progress = Callable[[int], None]

_PAGE_ADD = b"MEM.PAGE.ADD".ljust(16, b"\0")
_MR_EXTEND = b"MR.EXTEND".ljust(16, b"\0")
_TAIL = bytes(104)
_CHUNK = 256


# --------------------------------------------------------------------------- MRTD


def mrtd(
    fw: bytes,
    sections: Sequence[TdvfSection],
    *,
    page_order: PageOrder,
    progress: Progress | None = None,
) -> bytes:
    """MRTD: one running SHA-384 over the MEM.PAGE.ADD / MR.EXTEND records of the sections.

    ``page_order`` is the only VMM dependency: ``"two-pass"`` (QEMU 8.x TDX fork: all pages of a
    section added, then extended) or ``"single-pass"`` (QEMU >= 9 with upstream KVM: add and
    extend page by page). ``progress`` is called with the number of content bytes hashed.
    """
    if page_order not in ("two-pass", "single-pass"):
        raise config_error(f"page order {page_order!r}: use two-pass or single-pass", "page_order")
    h = hashlib.sha384()
    mv = memoryview(fw)

    def add(gpa: int) -> None:
        h.update(_PAGE_ADD + gpa.to_bytes(8, "little") + _TAIL)

    def extend_page(s: TdvfSection, p: int) -> None:
        base = s.gpa + PAGE * p
        data = s.data_offset + PAGE * p
        for c in range(0, PAGE, _CHUNK):
            h.update(_MR_EXTEND + (base + c).to_bytes(8, "little") + _TAIL)
            h.update(mv[data + c : data + c + _CHUNK])
        if progress is not None:
            progress(PAGE)

    for s in sections:
        if s.mr_extend and s.data_offset + s.mem_size > len(fw):
            raise config_error("measured section lies outside the firmware", "firmware")
        pages = s.mem_size // PAGE
        if page_order == "two-pass":
            if not s.page_aug:
                for p in range(pages):
                    add(s.gpa + PAGE * p)
            if s.mr_extend:
                for p in range(pages):
                    extend_page(s, p)
        else:
            for p in range(pages):
                if not s.page_aug:
                    add(s.gpa + PAGE * p)
                if s.mr_extend:
                    extend_page(s, p)
    return h.digest()


# --------------------------------------------------------------------------- TD HOB

_GIB = 1 << 30
_LOWMEM_SPLIT = 0xB000_0000
_RES_SYSTEM_MEMORY = 0
_RES_UNACCEPTED = 7


def td_hob(hob_gpa: int, accepted: Sequence[tuple[int, int]], memory_size: int) -> bytes:
    """The TD HOB list QEMU hands to TDVF, as hashed for RTMR0's first event.

    ``accepted`` = ``(start, length)`` ranges of the TD_HOB and TempMem sections. The result is
    the PHIT HOB followed by one resource HOB per range over ``[0, RAM)`` (accepted ranges of
    type 0, gaps of type 7, RAM above 2816 MiB split at 2 GiB / 4 GiB); the trailing
    END_OF_HOB_LIST is not part of the hashed bytes.
    """
    if memory_size <= 0 or memory_size % PAGE:
        raise config_error(f"memory size {memory_size} is not a positive page multiple", "memory")
    ranges: list[tuple[int, int, int]] = []
    cursor = 0
    for start, length in sorted(accepted):
        if start < cursor or length <= 0:
            raise config_error("accepted TD HOB ranges overlap or are empty", "td_hob")
        if start > cursor:
            ranges.append((cursor, start - cursor, _RES_UNACCEPTED))
        ranges.append((start, length, _RES_SYSTEM_MEMORY))
        cursor = start + length
    low_end = memory_size if memory_size < _LOWMEM_SPLIT else 2 * _GIB
    if cursor >= low_end:
        raise config_error(
            f"memory size {memory_size:#x} does not exceed the firmware's accepted memory "
            f"(ends at {cursor:#x})",
            "memory_too_small",
        )
    ranges.append((cursor, low_end - cursor, _RES_UNACCEPTED))
    if memory_size >= _LOWMEM_SPLIT:
        ranges.append((4 * _GIB, memory_size - 2 * _GIB, _RES_UNACCEPTED))
    n = len(ranges)
    end_of_list = hob_gpa + 56 + 48 * n + 8
    out = bytearray()
    # PHIT HOB: type 1, length 56, version 9, boot mode 0, four zero u64, EfiEndOfHobList.
    out += (1).to_bytes(2, "little") + (56).to_bytes(2, "little") + bytes(4)
    out += (9).to_bytes(4, "little") + bytes(4) + bytes(32) + end_of_list.to_bytes(8, "little")
    for start, length, kind in ranges:
        out += (3).to_bytes(2, "little") + (48).to_bytes(2, "little") + bytes(4) + bytes(16)
        out += kind.to_bytes(4, "little") + (7).to_bytes(4, "little")
        out += start.to_bytes(8, "little") + length.to_bytes(8, "little")
    return bytes(out)


def td_hob_from_sections(sections: Sequence[TdvfSection], memory_size: int) -> bytes:
    """:func:`td_hob` for a firmware's TDVF layout (TD_HOB and TempMem sections)."""
    hobs = [s for s in sections if s.type == TdvfSectionType.TD_HOB]
    if len(hobs) != 1:
        raise config_error(f"firmware has {len(hobs)} TD_HOB sections, need 1", "td_hob")
    accepted = [
        (s.gpa, s.mem_size)
        for s in sections
        if s.type in (TdvfSectionType.TD_HOB, TdvfSectionType.TEMP_MEM)
    ]
    return td_hob(hobs[0].gpa, accepted, memory_size)


# --------------------------------------------------------------------------- RTMR0

EFI_GLOBAL_VARIABLE = "8be4df61-93ca-11d2-aa0d-00e098032b8c"
EFI_IMAGE_SECURITY_DATABASE = "d719b2cb-3d3a-4596-a3bc-dad00e67656f"
#: The five secure-boot variables measured as EV_EFI_VARIABLE_DRIVER_CONFIG, in order.
SECURE_BOOT_VARIABLES: tuple[tuple[str, str], ...] = (
    ("SecureBoot", EFI_GLOBAL_VARIABLE),
    ("PK", EFI_GLOBAL_VARIABLE),
    ("KEK", EFI_GLOBAL_VARIABLE),
    ("db", EFI_IMAGE_SECURITY_DATABASE),
    ("dbx", EFI_IMAGE_SECURITY_DATABASE),
)
_FV_MAIN = "7cb8bdc9-f8eb-4f34-aaea-3ee4af6516a1"
_UIAPP = "462caa21-7614-4503-836e-8ab6f4662331"


def uefi_variable_data(name: str, vendor_guid: str, data: bytes = b"") -> bytes:
    """``UEFI_VARIABLE_DATA``: GUID, u64 name length (UTF-16 units), u64 data length, name, data."""
    n = name.encode("utf-16-le")
    return (
        guid(vendor_guid)
        + (len(n) // 2).to_bytes(8, "little")
        + len(data).to_bytes(8, "little")
        + n
        + data
    )


def separator_digest() -> bytes:
    """EV_SEPARATOR: SHA-384 of four zero bytes."""
    return sha384(bytes(4))


def boot0000_uiapp() -> bytes:
    """The EFI_LOAD_OPTION of OVMF's Boot0000 (UiApp) that edk2 <= stable202502 measures."""
    fv = b"\x04\x07" + (20).to_bytes(2, "little") + guid(_FV_MAIN)
    ff = b"\x04\x06" + (20).to_bytes(2, "little") + guid(_UIAPP)
    end = b"\x7f\xff\x04\x00"
    path = fv + ff + end
    return (
        (0x109).to_bytes(4, "little")
        + len(path).to_bytes(2, "little")
        + "UiApp\0".encode("utf-16-le")
        + path
    )


def cfv_digest(fw: bytes, sections: Sequence[TdvfSection]) -> bytes:
    """SHA-384 of the configuration firmware volume (the CFV section's raw bytes)."""
    cfvs = [s for s in sections if s.type == TdvfSectionType.CFV]
    if len(cfvs) != 1:
        raise config_error(f"firmware has {len(cfvs)} CFV sections, need 1", "cfv")
    s = cfvs[0]
    return sha384(fw[s.data_offset : s.data_offset + s.raw_size])


@dataclass(frozen=True)
class Rtmr0Events:
    """The RTMR0 event digests of OVMF/TDVF (edk2 <= stable202502, direct kernel boot).

    ``secure_boot`` defaults to the five variables with empty data (secure boot off).
    ``extra_separator`` adds the second EV_SEPARATOR some builds log after Boot0000.
    """

    td_hob: bytes
    cfv: bytes
    acpi: AcpiDigests
    secure_boot: tuple[bytes, ...] = field(
        default_factory=lambda: tuple(
            sha384(uefi_variable_data(n, g)) for n, g in SECURE_BOOT_VARIABLES
        )
    )
    boot_order: bytes = field(default_factory=lambda: sha384(b"\0\0"))
    boot0000: bytes = field(default_factory=lambda: sha384(boot0000_uiapp()))
    extra_separator: bool = False

    def digests(self) -> list[bytes]:
        for name, d in (("td_hob", self.td_hob), ("cfv", self.cfv)):
            require_digest(d, 48, f"RTMR0 {name} digest")
        for d in (*self.acpi.as_list(), *self.secure_boot, self.boot_order, self.boot0000):
            require_digest(d, 48, "RTMR0 event digest")
        out = [self.td_hob, self.cfv, *self.secure_boot, separator_digest(),
               *self.acpi.as_list(), self.boot_order, self.boot0000]
        if self.extra_separator:
            out.append(separator_digest())
        return out


def rtmr0(events: Rtmr0Events) -> bytes:
    return replay(events.digests())


# --------------------------------------------------------------------------- RTMR1 / RTMR2

ACTION_CALLING_EFI_APP = b"Calling EFI Application from Boot Option"
ACTION_EXIT_BOOT_SERVICES = b"Exit Boot Services Invocation"
ACTION_EXIT_BOOT_SERVICES_OK = b"Exit Boot Services Returned with Success"


def rtmr1_events(kernel_authenticode: bytes) -> list[bytes]:
    """RTMR1 for direct kernel boot: the kernel's Authenticode, then four constant events."""
    require_digest(kernel_authenticode, 48, "kernel Authenticode digest")
    return [
        kernel_authenticode,
        sha384(ACTION_CALLING_EFI_APP),
        separator_digest(),
        sha384(ACTION_EXIT_BOOT_SERVICES),
        sha384(ACTION_EXIT_BOOT_SERVICES_OK),
    ]


def rtmr1(kernel_authenticode: bytes) -> bytes:
    return replay(rtmr1_events(kernel_authenticode))


InitrdArg = Literal["append", "prepend", "none"]


def firmware_cmdline(append: str, *, has_initrd: bool, initrd_arg: InitrdArg = "append") -> str:
    """The command line the firmware measures.

    With an initrd, edk2's X86QemuLoadImageLib (OvmfPkgX64, IntelTdxX64) appends
    ``" initrd=initrd"`` to the ``-append`` string (``initrd_arg="append"``, the default);
    GenericQemuLoadImageLib prefixes ``"initrd=initrd "`` (``"prepend"``); ``"none"`` measures
    the string as given (callers that already included it).
    """
    if not has_initrd or initrd_arg == "none":
        return append
    if initrd_arg == "append":
        return append + " initrd=initrd"
    if initrd_arg == "prepend":
        return "initrd=initrd " + append
    raise config_error(f"initrd_arg {initrd_arg!r}: use append, prepend or none", "initrd_arg")


def cmdline_digest(cmdline: str) -> bytes:
    """SHA-384 of the UTF-16LE command line with its NUL terminator (RTMR2 event 1)."""
    return sha384(cmdline.encode("utf-16-le") + b"\0\0")


def rtmr2_events(cmdline_sha384: bytes, initrd_sha384: bytes | None) -> list[bytes]:
    """RTMR2: the LoadOptions event, then the initrd event when there is an initrd."""
    require_digest(cmdline_sha384, 48, "command line digest")
    out = [cmdline_sha384]
    if initrd_sha384 is not None:
        out.append(require_digest(initrd_sha384, 48, "initrd digest"))
    return out


def rtmr2(cmdline_sha384: bytes, initrd_sha384: bytes | None) -> bytes:
    return replay(rtmr2_events(cmdline_sha384, initrd_sha384))
