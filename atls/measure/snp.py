"""AMD SEV-SNP launch measurement (measurement-algorithms.md section 9).

The launch digest is a chain of SHA-384 updates over 112-byte PAGE_INFO records (SNP ABI,
SNP_LAUNCH_UPDATE): the OVMF image pages, the SEV metadata sections, the SEV hashes table
(kernel/initrd/command-line SHA-256, QEMU ``kernel-hashes=on``) and one VMSA page per vCPU.

:class:`SnpLaunchInputs` holds what the measurement depends on in the form registries publish
(OVMF pre-hash, sections, reset EIP, hashes-table GPA, kernel/initrd/cmdline digests), so a value
can be reproduced with or without the firmware file; :func:`snp_inputs_from_ovmf` fills it from
an image.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

from atls.measure._common import config_error, guid, require_digest, sha256, sha384
from atls.measure.ovmf import (
    PAGE,
    SevSection,
    SevSectionType,
    check_sev_sections,
    parse_sev_metadata,
    sev_es_reset_eip,
    sev_hashes_table_location,
)

__all__ = [
    "VCPU_SIGNATURES",
    "SevHashes",
    "SnpLaunchInputs",
    "VmmType",
    "cpu_signature",
    "ovmf_prehash",
    "sections_from_json",
    "sev_hashes_page",
    "sev_hashes_table",
    "snp_inputs_from_ovmf",
    "snp_measurement",
    "vcpu_signature",
    "vmsa_page",
]

Progress = Callable[[int], None]

PAGE_NORMAL = 1
PAGE_VMSA = 2
PAGE_ZERO = 3
PAGE_UNMEASURED = 4
PAGE_SECRETS = 5
PAGE_CPUID = 6

VMSA_GPA = 0x0000_FFFF_FFFF_F000
BSP_EIP = 0xFFFF_FFF0
_MAX_VCPUS = 512


class VmmType(Enum):
    """The VMM that builds the VMSAs (their contents and the CPUID placement differ)."""

    QEMU = "QEMU"
    EC2 = "ec2"
    GCE = "gce"

    @classmethod
    def parse(cls, name: str) -> VmmType:
        for v in cls:
            if v.value.lower() == name.lower():
                return v
        raise config_error(f"unknown VMM type {name!r} (QEMU, ec2, gce)", "vmm_type")


def cpu_signature(family: int, model: int, stepping: int) -> int:
    """CPUID Fn0000_0001_EAX for a family/model/stepping (AMD CPUID specification)."""
    if not (0 <= family <= 0xFF + 0xF and 0 <= model <= 0xFF and 0 <= stepping <= 0xF):
        raise config_error("vCPU family/model/stepping out of range", "vcpu_type")
    fam_lo, fam_hi = (0xF, family - 0xF) if family > 0xF else (family, 0)
    return (fam_hi << 20) | ((model >> 4) << 16) | (fam_lo << 8) | ((model & 0xF) << 4) | stepping


_EPYC = cpu_signature(23, 1, 2)
_ROME = cpu_signature(23, 49, 0)
_MILAN = cpu_signature(25, 1, 1)
_GENOA = cpu_signature(25, 17, 0)
_TURIN = cpu_signature(26, 0, 0)

#: QEMU CPU model names (as sev-snp-measure spells them) -> CPUID signature (VMSA RDX).
VCPU_SIGNATURES: dict[str, int] = {
    "EPYC": _EPYC,
    "EPYC-v1": _EPYC,
    "EPYC-v2": _EPYC,
    "EPYC-IBPB": _EPYC,
    "EPYC-v3": _EPYC,
    "EPYC-v4": _EPYC,
    "EPYC-Rome": _ROME,
    "EPYC-Rome-v1": _ROME,
    "EPYC-Rome-v2": _ROME,
    "EPYC-Rome-v3": _ROME,
    "EPYC-Milan": _MILAN,
    "EPYC-Milan-v1": _MILAN,
    "EPYC-Milan-v2": _MILAN,
    "EPYC-Genoa": _GENOA,
    "EPYC-Genoa-v1": _GENOA,
    "EPYC-Turin": _TURIN,
}


def vcpu_signature(vcpu_type: str) -> int:
    try:
        return VCPU_SIGNATURES[vcpu_type]
    except KeyError:
        raise config_error(
            f"unknown vCPU type {vcpu_type!r} (one of {', '.join(VCPU_SIGNATURES)})", "vcpu_type"
        ) from None


class _Gctx:
    """The launch digest and its PAGE_INFO update."""

    def __init__(self, seed: bytes = bytes(48)) -> None:
        self.ld = seed

    def update(self, page_type: int, gpa: int, contents: bytes) -> None:
        info = (
            self.ld
            + contents
            + (0x70).to_bytes(2, "little")
            + bytes([page_type, 0, 0, 0, 0, 0])
            + gpa.to_bytes(8, "little")
        )
        self.ld = hashlib.sha384(info).digest()

    def pages(self, page_type: int, gpa: int, size: int) -> None:
        for off in range(0, size, PAGE):
            self.update(page_type, gpa + off, bytes(48))

    def normal(self, gpa: int, data: bytes, progress: Progress | None = None) -> None:
        mv = memoryview(data)
        for off in range(0, len(data), PAGE):
            self.update(PAGE_NORMAL, gpa + off, hashlib.sha384(mv[off : off + PAGE]).digest())
            if progress is not None:
                progress(PAGE)


def ovmf_prehash(fw: bytes, *, progress: Progress | None = None) -> bytes:
    """The launch digest after the OVMF pages (what registries call ``ovmf_hash``)."""
    if not fw or len(fw) % PAGE or len(fw) > 1 << 28:
        raise config_error(f"OVMF image of {len(fw)} bytes is not a page multiple", "firmware")
    g = _Gctx()
    g.normal((1 << 32) - len(fw), fw, progress)
    return g.ld


@dataclass(frozen=True)
class SevHashes:
    """SHA-256 digests placed in QEMU's SEV hashes table."""

    cmdline_sha256: bytes
    initrd_sha256: bytes
    kernel_sha256: bytes

    @classmethod
    def from_artifacts(cls, kernel: bytes, initrd: bytes | None, cmdline: str) -> SevHashes:
        """``cmdline`` hashed with its NUL, a missing initrd as the empty string; the kernel
        unpatched (QEMU does not patch the setup header for SEV guests)."""
        return cls(sha256(cmdline.encode() + b"\0"), sha256(initrd or b""), sha256(kernel))


_HT_GUID = "9438d606-4f22-4cc9-b479-a793d411fd21"
_HT_CMDLINE = "97d02dd8-bd20-4c94-aa78-e7714d36ab2a"
_HT_INITRD = "44baf731-3a2f-4bd7-9af1-41e29169781d"
_HT_KERNEL = "4de79437-abd2-427f-b835-d5b172d2045b"


def sev_hashes_table(h: SevHashes) -> bytes:
    """QEMU's SEV hashes table (168 bytes) zero-padded to 176."""
    for d in (h.cmdline_sha256, h.initrd_sha256, h.kernel_sha256):
        require_digest(d, 32, "SEV hashes table digest")

    def entry(g: str, d: bytes) -> bytes:
        return guid(g) + (50).to_bytes(2, "little") + d

    table = (
        guid(_HT_GUID)
        + (168).to_bytes(2, "little")
        + entry(_HT_CMDLINE, h.cmdline_sha256)
        + entry(_HT_INITRD, h.initrd_sha256)
        + entry(_HT_KERNEL, h.kernel_sha256)
    )
    return table.ljust(176, b"\0")


def sev_hashes_page(h: SevHashes, table_gpa: int) -> bytes:
    """The 4 KiB page holding the hashes table at ``table_gpa & 0xfff``."""
    off = table_gpa & 0xFFF
    t = sev_hashes_table(h)
    if off + len(t) > PAGE:
        raise config_error("SEV hashes table crosses a page boundary", "hashes_table")
    return bytes(off) + t + bytes(PAGE - off - len(t))


def _seg(selector: int, attrib: int, limit: int, base: int) -> bytes:
    return (
        selector.to_bytes(2, "little")
        + attrib.to_bytes(2, "little")
        + limit.to_bytes(4, "little")
        + base.to_bytes(8, "little")
    )


def vmsa_page(eip: int, sev_features: int, vcpu_sig: int, vmm: VmmType = VmmType.QEMU) -> bytes:
    """The initial VMSA (SEV-ES save area) of one vCPU as the VMM builds it."""
    g_pat = 0x0007_0406_0007_0406
    cs_attr, ss_attr, tr_attr = 0x9B, 0x93, 0x8B
    rdx, mxcsr, fcw = vcpu_sig, 0x1F80, 0x37F
    if vmm is VmmType.EC2:
        cs_attr = 0x9A if eip == BSP_EIP else 0x9B
        ss_attr, tr_attr = 0x92, 0x83
        rdx, mxcsr, fcw = 0x600, 0, 0
    elif vmm is VmmType.GCE:
        g_pat = 0x0007_0106
        rdx, mxcsr, fcw = 0x600, 0, 0
    v = bytearray(PAGE)

    def put(off: int, value: int, size: int) -> None:
        v[off : off + size] = value.to_bytes(size, "little")

    v[0x00:0x10] = _seg(0, 0x93, 0xFFFF, 0)  # ES
    v[0x10:0x20] = _seg(0xF000, cs_attr, 0xFFFF, eip & 0xFFFF0000)  # CS
    v[0x20:0x30] = _seg(0, ss_attr, 0xFFFF, 0)  # SS
    v[0x30:0x40] = _seg(0, 0x93, 0xFFFF, 0)  # DS
    v[0x40:0x50] = _seg(0, 0x93, 0xFFFF, 0)  # FS
    v[0x50:0x60] = _seg(0, 0x93, 0xFFFF, 0)  # GS
    v[0x60:0x70] = _seg(0, 0, 0xFFFF, 0)  # GDTR
    v[0x70:0x80] = _seg(0, 0x82, 0xFFFF, 0)  # LDTR
    v[0x80:0x90] = _seg(0, 0, 0xFFFF, 0)  # IDTR
    v[0x90:0xA0] = _seg(0, tr_attr, 0xFFFF, 0)  # TR
    put(0xD0, 0x1000, 8)  # EFER.SVME
    put(0x148, 0x40, 8)  # CR4.MCE
    put(0x158, 0x10, 8)  # CR0.ET
    put(0x160, 0x400, 8)  # DR7
    put(0x168, 0xFFFF0FF0, 8)  # DR6
    put(0x170, 0x2, 8)  # RFLAGS
    put(0x178, eip & 0xFFFF, 8)  # RIP
    put(0x268, g_pat, 8)  # G_PAT
    put(0x310, rdx, 8)  # RDX = CPUID signature
    put(0x3B0, sev_features, 8)  # SEV_FEATURES
    put(0x3E8, 0x1, 8)  # XCR0
    put(0x408, mxcsr, 4)  # MXCSR
    put(0x410, fcw, 2)  # x87 FCW
    return bytes(v)


@dataclass(frozen=True)
class SnpLaunchInputs:
    """Everything the SNP launch digest depends on besides the vCPU/VMM configuration."""

    ovmf_hash: bytes  # launch digest after the OVMF pages (:func:`ovmf_prehash`)
    sections: tuple[SevSection, ...]
    sev_es_reset_eip: int
    sev_hashes_table_gpa: int | None = None  # None: the firmware has no kernel-hashes support
    hashes: SevHashes | None = None  # None: no -kernel


def snp_inputs_from_ovmf(
    fw: bytes,
    *,
    hashes: SevHashes | None = None,
    ovmf_hash: bytes | None = None,
    progress: Progress | None = None,
) -> SnpLaunchInputs:
    """Launch inputs from an OVMF image (footer table, SEV metadata, page pre-hash).

    ``ovmf_hash``: a precomputed pre-hash to use instead of hashing the image's pages."""
    sections = parse_sev_metadata(fw)
    loc = sev_hashes_table_location(fw)
    return SnpLaunchInputs(
        ovmf_hash=ovmf_prehash(fw, progress=progress) if ovmf_hash is None
        else require_digest(ovmf_hash, 48, "OVMF hash"),
        sections=sections,
        sev_es_reset_eip=sev_es_reset_eip(fw),
        sev_hashes_table_gpa=None if loc is None else loc[0],
        hashes=hashes,
    )


def snp_measurement(
    inputs: SnpLaunchInputs,
    *,
    vcpus: int,
    vcpu_sig: int,
    guest_features: int = 0x1,
    vmm: VmmType = VmmType.QEMU,
) -> bytes:
    """The 48-byte SNP MEASUREMENT (launch digest) QEMU/EC2/GCE produce for these inputs."""
    # 1. Parameters.
    if not 1 <= vcpus <= _MAX_VCPUS:
        raise config_error(f"vCPU count {vcpus} out of range 1..{_MAX_VCPUS}", "vcpus")
    if not 0 <= guest_features < 1 << 64:
        raise config_error("guest features must fit in 64 bits", "guest_features")
    if not 0 <= vcpu_sig < 1 << 32:
        raise config_error("vCPU signature must fit in 32 bits", "vcpu_type")
    check_sev_sections(inputs.sections, "measure.sev_metadata")
    has_kh = any(s.type == SevSectionType.SNP_KERNEL_HASHES for s in inputs.sections)
    if inputs.hashes is not None:
        if not has_kh:
            raise config_error(
                "a kernel was given but the firmware has no SNP_KERNEL_HASHES section "
                "(measured direct boot needs an AmdSevX64 build)",
                "no_kernel_hashes",
            )
        if inputs.sev_hashes_table_gpa is None:
            raise config_error("the firmware gives no SEV hashes table GPA", "no_kernel_hashes")
    # 2. OVMF pages (pre-hash).
    g = _Gctx(require_digest(inputs.ovmf_hash, 48, "OVMF hash"))
    # 3. Metadata sections in file order (EC2 moves CPUID pages after all others).
    for s in inputs.sections:
        if s.type in (SevSectionType.SNP_SEC_MEMORY, SevSectionType.SVSM_CAA):
            unmeasured = vmm is VmmType.GCE and s.type == SevSectionType.SNP_SEC_MEMORY
            g.pages(PAGE_UNMEASURED if unmeasured else PAGE_ZERO, s.gpa, s.size)
        elif s.type == SevSectionType.SNP_SECRETS:
            g.pages(PAGE_SECRETS, s.gpa, s.size)
        elif s.type == SevSectionType.CPUID:
            if vmm is not VmmType.EC2:
                g.pages(PAGE_CPUID, s.gpa, s.size)
        elif s.type == SevSectionType.SNP_KERNEL_HASHES:
            if inputs.hashes is not None and inputs.sev_hashes_table_gpa is not None:
                page = sev_hashes_page(inputs.hashes, inputs.sev_hashes_table_gpa)
                if s.size != PAGE:
                    raise config_error("SNP_KERNEL_HASHES section is not one page", "hashes_table")
                g.update(PAGE_NORMAL, s.gpa, sha384(page))
            else:
                g.pages(PAGE_ZERO, s.gpa, s.size)
    if vmm is VmmType.EC2:
        for s in inputs.sections:
            if s.type == SevSectionType.CPUID:
                g.pages(PAGE_CPUID, s.gpa, s.size)
    # 4. One VMSA per vCPU: the BSP starts at the reset vector, APs at the SEV-ES reset EIP.
    bsp = sha384(vmsa_page(BSP_EIP, guest_features, vcpu_sig, vmm))
    ap = sha384(vmsa_page(inputs.sev_es_reset_eip, guest_features, vcpu_sig, vmm))
    for i in range(vcpus):
        g.update(PAGE_VMSA, VMSA_GPA, bsp if i == 0 else ap)
    return g.ld


def sections_from_json(items: Sequence[dict[str, int]]) -> tuple[SevSection, ...]:
    """Sections from the registry form ``[{"gpa": ..., "size": ..., "section_type": ...}]``."""
    out = []
    for i, it in enumerate(items):
        try:
            out.append(SevSection(int(it["gpa"]), int(it["size"]),
                                  SevSectionType(int(it["section_type"]))))
        except (KeyError, TypeError, ValueError) as e:
            raise config_error(f"bad SEV section {i}: {e}", "sections") from e
    result = tuple(out)
    check_sev_sections(result, "measure.sev_metadata")
    return result
