"""PE/COFF Authenticode digest (as edk2 measures images) and QEMU's Linux setup-header patch.

measurement-algorithms.md section 5. The kernel measured into RTMR1 is the bzImage *as served
by QEMU*: QEMU <= 10.1 patches the boot-protocol setup header even for TDX guests (the patched
bytes depend on the initrd size, the RAM size and the command line), QEMU >= 10.2 serves the
file unchanged to confidential guests.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from atls._bytes import Reader
from atls.measure._common import artifact_error, config_error

__all__ = [
    "PeLayout",
    "authenticode_digest",
    "parse_pe",
    "qemu_patch_kernel",
]

_PE = "measure.pe"
_KERNEL = "measure.kernel"
_MAX_SECTIONS = 96  # the PE/COFF limit


@dataclass(frozen=True)
class PeLayout:
    """The parts of a PE image that Authenticode needs (all offsets are file offsets)."""

    checksum_offset: int
    cert_dir_offset: int | None  # None when the image has no Certificate Table entry
    cert_size: int
    size_of_headers: int
    sections: tuple[tuple[int, int], ...]  # (PointerToRawData, SizeOfRawData), sorted


def parse_pe(image: bytes) -> PeLayout:
    """Parse the headers Authenticode uses; every offset is bounds-checked."""
    n = len(image)
    r = Reader(image, _PE)
    # 1. DOS header: "MZ", e_lfanew at 0x3C.
    if r.bytes(2, "e_magic") != b"MZ":
        raise artifact_error(_PE, "no MZ signature: not a PE image", "not_pe", offset=0)
    r.pos = 0x3C
    pe = r.u32("e_lfanew")
    if pe + 4 > n or image[pe : pe + 4] != b"PE\0\0":
        raise artifact_error(_PE, "no PE signature at e_lfanew", "not_pe", offset=pe)
    r = Reader(image, _PE, start=pe + 4)
    # 2. COFF header.
    r.skip(2, "machine")
    nsections = r.u16("NumberOfSections")
    r.skip(12, "coff")
    opt_size = r.u16("SizeOfOptionalHeader")
    r.skip(2, "characteristics")
    opt = r.pos
    if nsections > _MAX_SECTIONS:
        raise artifact_error(_PE, f"{nsections} sections", "sections", offset=pe + 6)
    # 3. Optional header: magic selects PE32 / PE32+.
    magic = r.u16("magic")
    if magic == 0x10B:
        rva_count_at, dirs_at = opt + 92, opt + 96
    elif magic == 0x20B:
        rva_count_at, dirs_at = opt + 108, opt + 112
    else:
        raise artifact_error(_PE, f"optional header magic {magic:#x}", "magic", offset=opt)
    if opt_size < dirs_at - opt or opt + opt_size > n:
        raise artifact_error(_PE, "optional header too short", "optional_header", offset=opt)
    r.pos = opt + 60
    size_of_headers = r.u32("SizeOfHeaders")
    r.pos = rva_count_at
    rva_count = r.u32("NumberOfRvaAndSizes")
    cert_dir: int | None = None
    cert_off = cert_size = 0
    if rva_count > 4:
        cert_dir = dirs_at + 4 * 8
        if cert_dir + 8 > opt + opt_size:
            raise artifact_error(_PE, "data directory outside the optional header",
                                 "optional_header", offset=cert_dir)
        r.pos = cert_dir
        cert_off = r.u32("CertificateTable.offset")
        cert_size = r.u32("CertificateTable.size")
        if cert_size and (cert_off + cert_size > n or cert_off < size_of_headers):
            raise artifact_error(_PE, "certificate table outside the image", "cert_table",
                                 offset=cert_dir)
    checksum = opt + 64
    if not (checksum + 4 <= size_of_headers <= n) or (
        cert_dir is not None and cert_dir + 8 > size_of_headers
    ):
        raise artifact_error(_PE, f"SizeOfHeaders {size_of_headers:#x} is inconsistent",
                             "headers", offset=opt + 60)
    # 4. Section table.
    table = opt + opt_size
    if table + 40 * nsections > n:
        raise artifact_error(_PE, "section table outside the image", "sections", offset=table)
    secs = []
    for i in range(nsections):
        s = Reader(image, _PE, start=table + 40 * i + 16)
        size, ptr = s.u32("SizeOfRawData"), s.u32("PointerToRawData")
        if size == 0:
            continue
        if ptr + size > n:
            raise artifact_error(_PE, f"section {i} raw data outside the image", "sections",
                                 offset=table + 40 * i)
        secs.append((ptr, size))
    secs.sort()
    return PeLayout(checksum, cert_dir, cert_size, size_of_headers, tuple(secs))


def authenticode_digest(image: bytes, algorithm: str = "sha384") -> bytes:
    """PE/COFF Authenticode digest (edk2 ``HashPeImage``: no padding to 8 bytes)."""
    lay = parse_pe(image)
    mv = memoryview(image)
    h = hashlib.new(algorithm)
    # 1. Headers up to the CheckSum, skip it.
    h.update(mv[: lay.checksum_offset])
    # 2. Up to the Certificate Table entry, skip it, up to SizeOfHeaders.
    if lay.cert_dir_offset is None:
        h.update(mv[lay.checksum_offset + 4 : lay.size_of_headers])
    else:
        h.update(mv[lay.checksum_offset + 4 : lay.cert_dir_offset])
        h.update(mv[lay.cert_dir_offset + 8 : lay.size_of_headers])
    # 3. Sections with raw data, by PointerToRawData.
    hashed = lay.size_of_headers
    for ptr, size in lay.sections:
        h.update(mv[ptr : ptr + size])
        hashed += size
    # 4. Trailing data before the certificate table.
    end = len(image) - lay.cert_size
    if len(image) > hashed:
        if end < hashed:
            raise artifact_error(_PE, "certificate table overlaps hashed data", "cert_table")
        h.update(mv[hashed:end])
    return h.digest()


_HDRS = 0x53726448  # "HdrS"
_ACPI_DATA_SIZE = 0x28000
_LOWMEM_SPLIT = 0xB000_0000


def _video_mode(cmdline: str) -> int | None:
    i = cmdline.find("vga=")
    if i < 0:
        return None
    v = cmdline[i + 4 :]
    for name, mode in (("normal", 0xFFFF), ("ext", 0xFFFE), ("ask", 0xFFFD)):
        if v.startswith(name):
            return mode
    m = re.match(r"(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)(?=$| )", v)
    if not m:
        raise config_error("QEMU rejects this 'vga=' kernel parameter", "cmdline")
    text = m.group(1)
    if text[:2] in ("0x", "0X"):
        value = int(text[2:], 16)
    elif text.startswith("0"):
        value = int(text, 8)
    else:
        value = int(text, 10)
    if value > 0xFFFFFFFF:
        raise config_error("QEMU rejects this 'vga=' kernel parameter", "cmdline")
    return value & 0xFFFF


def qemu_patch_kernel(
    kernel: bytes, *, initrd_size: int | None, memory_size: int, cmdline: str = ""
) -> bytes:
    """The bzImage as QEMU <= 10.1 serves it to the firmware (``x86_load_linux``).

    ``initrd_size`` is None without ``-initrd``. ``memory_size`` is the guest RAM in bytes;
    ``cmdline`` is the ``-append`` string (it matters only for ``vga=`` and ancient kernels).
    """
    if memory_size <= 0:
        raise config_error("memory size must be positive", "memory")
    if len(kernel) < 0x240:
        raise artifact_error(_KERNEL, "kernel shorter than a setup header", "not_bzimage")
    if int.from_bytes(kernel[0x202:0x206], "little") != _HDRS:
        # QEMU treats the file as protocol 0 and serves it unchanged, but cannot load an
        # initrd for it.
        if initrd_size is not None:
            raise config_error("QEMU cannot load an initrd for a kernel without a "
                               "Linux boot-protocol header", "initrd")
        return kernel
    h = bytearray(kernel[:0x240])
    protocol = int.from_bytes(h[0x206:0x208], "little")
    cmdline_size = (len(cmdline.encode()) + 16) & ~15
    # 1. Load addresses.
    if protocol < 0x200 or not h[0x211] & 0x01 or protocol < 0x202:
        real, cmdline_addr = 0x90000, 0x9A000 - cmdline_size
    else:
        real, cmdline_addr = 0x10000, 0x20000
    # 2. Highest initrd address.
    xloadflags = int.from_bytes(h[0x236:0x238], "little")
    if protocol >= 0x20C and xloadflags & 0x2:
        initrd_max = 0xFFFFFFFF
    elif protocol >= 0x203:
        initrd_max = int.from_bytes(h[0x22C:0x230], "little")
    else:
        initrd_max = 0x37FFFFFF
    lowmem = 0x8000_0000 if memory_size >= _LOWMEM_SPLIT else _LOWMEM_SPLIT
    below_4g = min(memory_size, lowmem)
    if initrd_max >= below_4g - _ACPI_DATA_SIZE:
        initrd_max = below_4g - _ACPI_DATA_SIZE - 1
    # 3. Command line pointer.
    if protocol >= 0x202:
        h[0x228:0x22C] = cmdline_addr.to_bytes(4, "little")
    else:
        h[0x20:0x22] = (0xA33F).to_bytes(2, "little")
        h[0x22:0x24] = (cmdline_addr - real).to_bytes(2, "little")
    # 4. vga= parameter.
    mode = _video_mode(cmdline)
    if mode is not None:
        h[0x1FA:0x1FC] = mode.to_bytes(2, "little")
    # 5. Loader type and heap.
    if protocol >= 0x200:
        h[0x210] = 0xB0
    if protocol >= 0x201:
        h[0x211] |= 0x80
        h[0x224:0x226] = ((cmdline_addr - real - 0x200) & 0xFFFF).to_bytes(2, "little")
    # 6. initrd address and size.
    if initrd_size is not None:
        if protocol < 0x200:
            raise config_error("kernel too old to load an initrd", "initrd")
        if initrd_size < 0 or initrd_size >= initrd_max:
            raise config_error(
                f"initrd of {initrd_size} bytes does not fit below {initrd_max:#x}", "initrd"
            )
        h[0x218:0x21C] = ((initrd_max - initrd_size) & ~0xFFF).to_bytes(4, "little")
        h[0x21C:0x220] = initrd_size.to_bytes(4, "little")
    # 7. QEMU serves setup (with the patched header) followed by the rest of the file.
    setup_sects = kernel[0x1F1] or 4
    if (setup_sects + 1) * 512 > len(kernel):
        raise artifact_error(_KERNEL, "setup size exceeds the kernel", "setup_size",
                             offset=0x1F1)
    return bytes(h) + kernel[0x240:]
