"""The SEV-SNP ATTESTATION_REPORT structure (AMD SEV-SNP Firmware ABI specification, 56860,
table "ATTESTATION_REPORT Structure"), report versions 2, 3 and 5.

The report is exactly 1184 (0x4A0) bytes. Bytes ``[0, 0x2A0)`` are signed; the signature at
0x2A0 is ECDSA P-384 with SHA-384, ``R`` and ``S`` each 72 bytes little-endian, zero-extended
(only the low 48 bytes may be non-zero), followed by reserved bytes up to 0x4A0.

============  ======  =====================================================================
offset        size    field
============  ======  =====================================================================
0x000         4       VERSION (2, 3 or 5)
0x004         4       GUEST_SVN
0x008         8       POLICY (guest policy, see :class:`GuestPolicy` bits below)
0x010         16      FAMILY_ID
0x020         16      IMAGE_ID
0x030         4       VMPL
0x034         4       SIGNATURE_ALGO (1 = ECDSA P-384 with SHA-384)
0x038         8       CURRENT_TCB
0x040         8       PLATFORM_INFO
0x048         4       bit 0 AUTHOR_KEY_EN, bit 1 MASK_CHIP_KEY, bits 4:2 SIGNING_KEY
                      (0 VCEK, 1 VLEK, 7 none; 2-6 reserved), bits 31:5 reserved
0x04C         4       reserved (must be zero)
0x050         64      REPORT_DATA
0x090         48      MEASUREMENT
0x0C0         32      HOST_DATA
0x0E0         48      ID_KEY_DIGEST
0x110         48      AUTHOR_KEY_DIGEST
0x140         32      REPORT_ID
0x160         32      REPORT_ID_MA
0x180         8       REPORTED_TCB
0x188         1/1/1   v3+: CPUID_FAM_ID, CPUID_MOD_ID, CPUID_STEP (v2: reserved)
0x18B..0x1A0          reserved (must be zero)
0x1A0         64      CHIP_ID
0x1E0         8       COMMITTED_TCB
0x1E8         1/1/1   CURRENT_BUILD, CURRENT_MINOR, CURRENT_MAJOR; 0x1EB reserved
0x1EC         1/1/1   COMMITTED_BUILD, COMMITTED_MINOR, COMMITTED_MAJOR; 0x1EF reserved
0x1F0         8       LAUNCH_TCB
0x1F8         8       v5: LAUNCH_MIT_VECTOR (v2/v3: reserved)
0x200         8       v5: CURRENT_MIT_VECTOR (v2/v3: reserved)
0x208..0x2A0          reserved (must be zero)
0x2A0         512     SIGNATURE: R (72), S (72), reserved (368)
============  ======  =====================================================================

A TCB_VERSION is 8 bytes whose layout depends on the product: Milan and Genoa put the boot
loader SPL in byte 0, TEE in 1, SNP in 6 and microcode in 7 (2..5 reserved); Turin puts the
FMC SPL in byte 0, boot loader in 1, TEE in 2, SNP in 3 and microcode in 7 (4..6 reserved).
Version 2 reports do not say which product produced them (no CPUID fields), so their TCB
components are decoded only once the certificate chain has named the product.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from atls._bytes import Reader
from atls.errors import EvidenceParseError, UnsupportedEvidenceError

__all__ = [
    "FORMAT",
    "PRODUCTS",
    "REPORT_SIZE",
    "SIGNATURE_ALGO_ECDSA_P384_SHA384",
    "SIGNATURE_OFFSET",
    "SIGNED_SIZE",
    "SIGNING_KEY_NAMES",
    "SUPPORTED_VERSIONS",
    "SnpReport",
    "TcbVersion",
    "decode_platform_info",
    "decode_policy",
    "parse_report",
    "product_from_cpuid",
]

#: Error ``format`` (and code prefix) of every SNP error.
FORMAT = "snp"
REPORT_SIZE = 0x4A0
SIGNATURE_OFFSET = 0x2A0
#: The signature covers bytes [0, SIGNED_SIZE).
SIGNED_SIZE = SIGNATURE_OFFSET
SUPPORTED_VERSIONS = frozenset({2, 3, 5})
SIGNATURE_ALGO_ECDSA_P384_SHA384 = 1
PRODUCTS = ("Milan", "Genoa", "Turin")

#: SIGNING_KEY values (bits 4:2 of the word at 0x48).
SIGNING_KEY_NAMES = {0: "vcek", 1: "vlek", 7: "none"}

# Guest policy bits (ABI spec, table "Guest Policy Structure").
_POLICY_SMT = 16
_POLICY_RESERVED_ONE = 17
_POLICY_MIGRATE_MA = 18
_POLICY_DEBUG = 19
_POLICY_SINGLE_SOCKET = 20
_POLICY_CXL_ALLOW = 21
_POLICY_MEM_AES_256_XTS = 22
_POLICY_RAPL_DIS = 23
_POLICY_CIPHERTEXT_HIDING = 24
_POLICY_PAGE_SWAP_DISABLE = 25
_POLICY_KNOWN_BITS = 26  # bits 63:26 are reserved, must be zero

# PLATFORM_INFO bits (ABI spec, table "PLATFORM_INFO Field").
_PLATFORM_INFO_BITS = (
    (0, "smt_en"),
    (1, "tsme_en"),
    (2, "ecc_en"),
    (3, "rapl_dis"),
    (4, "ciphertext_hiding_en"),
    (5, "alias_check_complete"),
    (7, "tio_en"),
)


def product_from_cpuid(family: int, model: int) -> str | None:
    """The SEV-SNP product named by CPUID family/model (the report's CPUID_FAM_ID and
    CPUID_MOD_ID, i.e. extended family + family and extended model + model), or None.

    Family 19h: models 00h-0Fh Milan, 10h-1Fh and A0h-AFh Genoa (incl. Bergamo/Siena).
    Family 1Ah: models 00h-11h Turin.
    """
    if family == 0x19:
        if 0x00 <= model <= 0x0F:
            return "Milan"
        if 0x10 <= model <= 0x1F or 0xA0 <= model <= 0xAF:
            return "Genoa"
    elif family == 0x1A and 0x00 <= model <= 0x11:
        return "Turin"
    return None


@dataclass(frozen=True, slots=True)
class TcbVersion:
    """A decoded TCB_VERSION. ``fmc`` is set for Turin only; ``raw`` is the u64 value."""

    raw: int
    bootloader: int
    tee: int
    snp: int
    microcode: int
    fmc: int | None = None
    #: The bytes the product's layout reserves (must be zero in a well-formed value).
    reserved: bytes = b""

    @classmethod
    def decode(cls, raw: int, product: str) -> TcbVersion:
        b = raw.to_bytes(8, "little")
        if product == "Turin":
            return cls(raw, b[1], b[2], b[3], b[7], fmc=b[0], reserved=b[4:7])
        if product in ("Milan", "Genoa"):
            return cls(raw, b[0], b[1], b[6], b[7], reserved=b[2:6])
        raise ValueError(f"unknown SEV-SNP product {product!r}")

    @classmethod
    def encode(
        cls,
        product: str,
        *,
        bootloader: int,
        tee: int,
        snp: int,
        microcode: int,
        fmc: int | None = None,
    ) -> int:
        """The u64 TCB_VERSION for these components in ``product``'s layout."""
        parts = (bootloader, tee, snp, microcode, fmc or 0)
        if any(not 0 <= p <= 0xFF for p in parts):
            raise ValueError("TCB components are bytes (0..255)")
        b = bytearray(8)
        if product == "Turin":
            b[0], b[1], b[2], b[3], b[7] = fmc or 0, bootloader, tee, snp, microcode
        elif product in ("Milan", "Genoa"):
            if fmc:
                raise ValueError(f"a {product} TCB has no FMC component")
            b[0], b[1], b[6], b[7] = bootloader, tee, snp, microcode
        else:
            raise ValueError(f"unknown SEV-SNP product {product!r}")
        return int.from_bytes(b, "little")

    def as_dict(self) -> dict[str, int]:
        d = {
            "bootloader": self.bootloader,
            "tee": self.tee,
            "snp": self.snp,
            "microcode": self.microcode,
        }
        if self.fmc is not None:
            d["fmc"] = self.fmc
        return d


def decode_policy(policy: int) -> dict[str, Any]:
    """The guest policy as claims (``policy_*`` names after the ABI spec's bit names)."""

    def bit(n: int) -> bool:
        return bool(policy >> n & 1)

    return {
        "policy": policy,
        "policy_abi_minor": policy & 0xFF,
        "policy_abi_major": policy >> 8 & 0xFF,
        "policy_smt": bit(_POLICY_SMT),
        "policy_migrate_ma": bit(_POLICY_MIGRATE_MA),
        "policy_debug": bit(_POLICY_DEBUG),
        "policy_single_socket": bit(_POLICY_SINGLE_SOCKET),
        "policy_cxl_allow": bit(_POLICY_CXL_ALLOW),
        "policy_mem_aes_256_xts": bit(_POLICY_MEM_AES_256_XTS),
        "policy_rapl_dis": bit(_POLICY_RAPL_DIS),
        "policy_ciphertext_hiding": bit(_POLICY_CIPHERTEXT_HIDING),
        "policy_page_swap_disable": bit(_POLICY_PAGE_SWAP_DISABLE),
    }


def decode_platform_info(info: int) -> dict[str, bool]:
    """The PLATFORM_INFO bits the ABI spec names (unknown bits stay in the raw value)."""
    return {f"platform_info_{name}": bool(info >> n & 1) for n, name in _PLATFORM_INFO_BITS}


@dataclass(frozen=True, slots=True)
class SnpReport:
    """A parsed (unverified) attestation report. ``raw`` is the exact 1184 bytes received."""

    raw: bytes
    version: int
    guest_svn: int
    policy: int
    family_id: bytes
    image_id: bytes
    vmpl: int
    signature_algo: int
    current_tcb: int
    platform_info: int
    author_key_en: bool
    mask_chip_key: bool
    signing_key: int
    report_data: bytes
    measurement: bytes
    host_data: bytes
    id_key_digest: bytes
    author_key_digest: bytes
    report_id: bytes
    report_id_ma: bytes
    reported_tcb: int
    cpuid_fam_id: int | None
    cpuid_mod_id: int | None
    cpuid_step: int | None
    chip_id: bytes
    committed_tcb: int
    current_build: int
    current_minor: int
    current_major: int
    committed_build: int
    committed_minor: int
    committed_major: int
    launch_tcb: int
    launch_mit_vector: int | None
    current_mit_vector: int | None
    signature_r: int
    signature_s: int

    @property
    def signed_bytes(self) -> bytes:
        """The exact bytes the signature covers: ``raw[0:0x2A0]``."""
        return self.raw[:SIGNED_SIZE]

    @property
    def signing_key_name(self) -> str:
        return SIGNING_KEY_NAMES[self.signing_key]

    @property
    def debug(self) -> bool:
        """Guest policy bit 19: the hypervisor may debug (read and write) guest memory."""
        return bool(self.policy >> _POLICY_DEBUG & 1)

    @property
    def smt_allowed(self) -> bool:
        return bool(self.policy >> _POLICY_SMT & 1)

    @property
    def migrate_ma_allowed(self) -> bool:
        return bool(self.policy >> _POLICY_MIGRATE_MA & 1)

    @property
    def cpuid_product(self) -> str | None:
        """The product named by the CPUID fields (v3+); None for v2 or an unknown CPU."""
        if self.cpuid_fam_id is None or self.cpuid_mod_id is None:
            return None
        return product_from_cpuid(self.cpuid_fam_id, self.cpuid_mod_id)

    def tcb(self, field: str, product: str) -> TcbVersion:
        """Decode one TCB field (``current_tcb``, ``reported_tcb``, ``committed_tcb``,
        ``launch_tcb``) in ``product``'s layout."""
        if field not in ("current_tcb", "reported_tcb", "committed_tcb", "launch_tcb"):
            raise ValueError(f"{field!r} is not a TCB field")
        raw = getattr(self, field)
        assert isinstance(raw, int)
        return TcbVersion.decode(raw, product)

    def claims(self, product: str | None) -> dict[str, Any]:
        """Every field as JSON-compatible claims named as in the ABI spec. TCB fields are
        decoded with ``product``; ``*_tcb_raw`` are the 8 bytes as found in the report (hex),
        the only TCB form when ``product`` is None (a v2 report on its own)."""
        c: dict[str, Any] = {
            "version": self.version,
            "guest_svn": self.guest_svn,
            **decode_policy(self.policy),
            "family_id": self.family_id.hex(),
            "image_id": self.image_id.hex(),
            "vmpl": self.vmpl,
            "signature_algo": self.signature_algo,
            "platform_info": self.platform_info,
            **decode_platform_info(self.platform_info),
            "author_key_en": self.author_key_en,
            "mask_chip_key": self.mask_chip_key,
            "signing_key": self.signing_key_name,
            "report_data": self.report_data.hex(),
            "measurement": self.measurement.hex(),
            "host_data": self.host_data.hex(),
            "id_key_digest": self.id_key_digest.hex(),
            "author_key_digest": self.author_key_digest.hex(),
            "report_id": self.report_id.hex(),
            "report_id_ma": self.report_id_ma.hex(),
            "chip_id": self.chip_id.hex(),
            "current_build": self.current_build,
            "current_minor": self.current_minor,
            "current_major": self.current_major,
            "committed_build": self.committed_build,
            "committed_minor": self.committed_minor,
            "committed_major": self.committed_major,
        }
        for name in ("current_tcb", "reported_tcb", "committed_tcb", "launch_tcb"):
            raw = getattr(self, name)
            c[f"{name}_raw"] = raw.to_bytes(8, "little").hex()
            if product is not None:
                c[name] = TcbVersion.decode(raw, product).as_dict()
        if self.cpuid_fam_id is not None:
            c["cpuid_fam_id"] = self.cpuid_fam_id
            c["cpuid_mod_id"] = self.cpuid_mod_id
            c["cpuid_step"] = self.cpuid_step
        if self.launch_mit_vector is not None:
            c["launch_mit_vector"] = self.launch_mit_vector
            c["current_mit_vector"] = self.current_mit_vector
        if product is not None:
            c["product"] = product
        return c


def _unsupported(msg: str, code: str) -> UnsupportedEvidenceError:
    return UnsupportedEvidenceError(f"{FORMAT}: {msg}", code=f"{FORMAT}.unsupported.{code}")


def parse_report(data: bytes) -> SnpReport:
    """Parse a raw 1184-byte SEV-SNP attestation report (no verification).

    Raises :class:`EvidenceParseError` (code ``snp.parse``) for a wrong size or a non-zero
    reserved/must-be-zero field, and :class:`UnsupportedEvidenceError` for a report
    version other than 2, 3, 5 (``snp.unsupported.version``) or a signature algorithm other
    than ECDSA P-384/SHA-384 (``snp.unsupported.signature_algo``).
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError("an SNP report is bytes")
    data = bytes(data)
    # 1. Size: the report is exactly 0x4A0 bytes (the raw ABI form, nothing around it).
    if len(data) != REPORT_SIZE:
        raise EvidenceParseError(
            f"an attestation report is {REPORT_SIZE} bytes, got {len(data)}",
            format=FORMAT,
            offset=min(len(data), REPORT_SIZE),
            field="report",
        )
    r = Reader(data, FORMAT)
    # 2. VERSION: 2 (ABI <= 1.54), 3 (1.55, CPUID fields), 5 (1.57+, mitigation vectors).
    version = r.u32("version")
    if version not in SUPPORTED_VERSIONS:
        raise _unsupported(f"attestation report version {version} (supported: 2, 3, 5)", "version")
    guest_svn = r.u32("guest_svn")
    # 3. POLICY: bit 17 is reserved and must be one, bits 63:26 reserved and must be zero.
    policy_at = r.pos
    policy = r.u64("policy")
    if not policy >> _POLICY_RESERVED_ONE & 1:
        raise r.error("POLICY bit 17 (reserved) must be 1", field="policy", offset=policy_at)
    if policy >> _POLICY_KNOWN_BITS:
        raise r.error("POLICY bits 63:26 are reserved", field="policy", offset=policy_at)
    family_id = r.bytes(16, "family_id")
    image_id = r.bytes(16, "image_id")
    vmpl = r.u32("vmpl")
    # 4. SIGNATURE_ALGO: only 1 (ECDSA P-384 with SHA-384) is defined.
    algo = r.u32("signature_algo")
    if algo != SIGNATURE_ALGO_ECDSA_P384_SHA384:
        raise _unsupported(f"signature algorithm {algo} (only 1, ECDSA P-384)", "signature_algo")
    current_tcb = r.u64("current_tcb")
    platform_info = r.u64("platform_info")
    # 5. Signer info at 0x48: bits 31:5 reserved; SIGNING_KEY values 2..6 reserved.
    info_at = r.pos
    info = r.u32("signing_key")
    if info >> 5:
        raise r.error(
            "bits 31:5 of the signer info are reserved", field="signing_key", offset=info_at
        )
    signing_key = info >> 2 & 7
    if signing_key not in SIGNING_KEY_NAMES:
        raise r.error(f"SIGNING_KEY {signing_key} is reserved", field="signing_key", offset=info_at)
    r.zeros(4, "reserved_0x4c")
    report_data = r.bytes(64, "report_data")
    measurement = r.bytes(48, "measurement")
    host_data = r.bytes(32, "host_data")
    id_key_digest = r.bytes(48, "id_key_digest")
    author_key_digest = r.bytes(48, "author_key_digest")
    report_id = r.bytes(32, "report_id")
    report_id_ma = r.bytes(32, "report_id_ma")
    reported_tcb = r.u64("reported_tcb")
    # 6. CPUID family/model/stepping exist from version 3 on; before that they are reserved.
    cpuid: tuple[int, int, int] | tuple[None, None, None] = (None, None, None)
    if version >= 3:
        cpuid = (r.u8("cpuid_fam_id"), r.u8("cpuid_mod_id"), r.u8("cpuid_step"))
        r.zeros(0x1A0 - 0x18B, "reserved_0x18b")
    else:
        r.zeros(0x1A0 - 0x188, "reserved_0x188")
    chip_id = r.bytes(64, "chip_id")
    committed_tcb = r.u64("committed_tcb")
    current_build, current_minor, current_major = r.u8(), r.u8(), r.u8()
    r.zeros(1, "reserved_0x1eb")
    committed_build, committed_minor, committed_major = r.u8(), r.u8(), r.u8()
    r.zeros(1, "reserved_0x1ef")
    launch_tcb = r.u64("launch_tcb")
    # 7. Mitigation vectors exist from version 5 on; the rest up to 0x2A0 is reserved.
    mit: tuple[int, int] | tuple[None, None] = (None, None)
    if version >= 5:
        mit = (r.u64("launch_mit_vector"), r.u64("current_mit_vector"))
        r.zeros(SIGNATURE_OFFSET - 0x208, "reserved_0x208")
    else:
        r.zeros(SIGNATURE_OFFSET - 0x1F8, "reserved_0x1f8")
    # 8. Signature: R and S are 72-byte little-endian, zero-extended from 48 bytes.
    sig_r = r.bytes(48, "signature_r")
    r.zeros(24, "signature_r")
    sig_s = r.bytes(48, "signature_s")
    r.zeros(24, "signature_s")
    r.zeros(REPORT_SIZE - 0x330, "signature_reserved")
    r.expect_end("report")
    return SnpReport(
        raw=data,
        version=version,
        guest_svn=guest_svn,
        policy=policy,
        family_id=family_id,
        image_id=image_id,
        vmpl=vmpl,
        signature_algo=algo,
        current_tcb=current_tcb,
        platform_info=platform_info,
        author_key_en=bool(info & 1),
        mask_chip_key=bool(info & 2),
        signing_key=signing_key,
        report_data=report_data,
        measurement=measurement,
        host_data=host_data,
        id_key_digest=id_key_digest,
        author_key_digest=author_key_digest,
        report_id=report_id,
        report_id_ma=report_id_ma,
        reported_tcb=reported_tcb,
        cpuid_fam_id=cpuid[0],
        cpuid_mod_id=cpuid[1],
        cpuid_step=cpuid[2],
        chip_id=chip_id,
        committed_tcb=committed_tcb,
        current_build=current_build,
        current_minor=current_minor,
        current_major=current_major,
        committed_build=committed_build,
        committed_minor=committed_minor,
        committed_major=committed_major,
        launch_tcb=launch_tcb,
        launch_mit_vector=mit[0],
        current_mit_vector=mit[1],
        signature_r=int.from_bytes(sig_r, "little"),
        signature_s=int.from_bytes(sig_s, "little"),
    )
