"""TPM 2.0 structures used in quotes (TCG TPM 2.0 Library, Part 2: Structures), big-endian.

=====================  ==========================================================================
structure              encoding
=====================  ==========================================================================
``TPMS_ATTEST``        u32 magic (``0xFF544347``) | u16 type (``0x8018`` quote) |
                       TPM2B_NAME qualifiedSigner | TPM2B_DATA extraData |
                       TPMS_CLOCK_INFO (u64 clock, u32 resetCount, u32 restartCount, u8 safe) |
                       u64 firmwareVersion | TPMS_QUOTE_INFO
``TPMS_QUOTE_INFO``    TPML_PCR_SELECTION pcrSelect | TPM2B_DIGEST pcrDigest
``TPML_PCR_SELECTION`` u32 count | count x (u16 hash | u8 sizeofSelect | bitmap)
``TPMT_SIGNATURE``     u16 sigAlg | u16 hash | RSASSA/RSAPSS: TPM2B sig; ECDSA: TPM2B r, TPM2B s
``TPMT_PUBLIC``        u16 type | u16 nameAlg | u32 objectAttributes | TPM2B authPolicy |
                       parameters | unique
``TPM2B_PUBLIC``       u16 size | TPMT_PUBLIC
=====================  ==========================================================================

Every parser reads through :class:`atls._bytes.Reader`, so no length field can make it read
past its input or allocate more than the input; every size has the bound that the TPM
specification gives it (``sizeof(TPMU_NAME)`` for names, the largest digest for digests...),
and every structure must be consumed exactly. Parsed objects keep the exact bytes they came
from (``raw``), because signatures and Names are computed over received bytes, never over a
re-encoding. The ``encode_*`` functions exist for the simulated TPM and round-trip tests.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from atls._bytes import Reader
from atls.errors import EvidenceParseError, UnsupportedEvidenceError

__all__ = [
    "ALG_ECC",
    "ALG_ECDSA",
    "ALG_NULL",
    "ALG_RSA",
    "ALG_RSAPSS",
    "ALG_RSASSA",
    "ATTEST_QUOTE",
    "ATTR_ADMIN_WITH_POLICY",
    "ATTR_DECRYPT",
    "ATTR_FIXED_PARENT",
    "ATTR_FIXED_TPM",
    "ATTR_NO_DA",
    "ATTR_RESTRICTED",
    "ATTR_SENSITIVE_DATA_ORIGIN",
    "ATTR_SIGN",
    "ATTR_USER_WITH_AUTH",
    "AK_REQUIRED_ATTRIBUTES",
    "ATTR_RESERVED",
    "CURVES",
    "HASH_ALGS",
    "HIERARCHIES",
    "TPM_GENERATED_VALUE",
    "ClockInfo",
    "PcrSelection",
    "TpmsAttest",
    "TpmtPublic",
    "TpmtSignature",
    "attribute_names",
    "encode_attest",
    "encode_pcr_selection",
    "encode_public",
    "encode_signature",
    "hash_alg",
    "hash_name",
    "hash_size",
    "parse_attest",
    "parse_name",
    "parse_public",
    "parse_signature",
    "qualified_name_hierarchy",
    "tpm2b",
]

# TPM_ALG_ID values (Part 2, table "TPM_ALG_ID Constants")
ALG_RSA = 0x0001
ALG_SHA1 = 0x0004
ALG_HMAC = 0x0005
ALG_AES = 0x0006
ALG_KEYEDHASH = 0x0008
ALG_XOR = 0x000A
ALG_SHA256 = 0x000B
ALG_SHA384 = 0x000C
ALG_SHA512 = 0x000D
ALG_NULL = 0x0010
ALG_SM3_256 = 0x0012
ALG_SM4 = 0x0013
ALG_RSASSA = 0x0014
ALG_RSAES = 0x0015
ALG_RSAPSS = 0x0016
ALG_OAEP = 0x0017
ALG_ECDSA = 0x0018
ALG_ECDH = 0x0019
ALG_ECDAA = 0x001A
ALG_SM2 = 0x001B
ALG_ECSCHNORR = 0x001C
ALG_ECMQV = 0x001D
ALG_KDF1_SP800_56A = 0x0020
ALG_KDF2 = 0x0021
ALG_KDF1_SP800_108 = 0x0022
ALG_ECC = 0x0023
ALG_SYMCIPHER = 0x0025
ALG_CAMELLIA = 0x0026
ALG_CTR = 0x0040
ALG_OFB = 0x0041
ALG_CBC = 0x0042
ALG_CFB = 0x0043
ALG_ECB = 0x0044

#: TPM_GENERATED_VALUE: every TPMS_ATTEST the TPM signs starts with it.
TPM_GENERATED_VALUE = 0xFF544347
#: TPM_ST_ATTEST_* structure tags.
ATTEST_CERTIFY = 0x8017
ATTEST_QUOTE = 0x8018
_ATTEST_TYPES = {
    0x8014: "nv",
    0x8015: "command_audit",
    0x8016: "session_audit",
    ATTEST_CERTIFY: "certify",
    ATTEST_QUOTE: "quote",
    0x801A: "time",
    0x801F: "creation",
    0x801C: "nv_digest",
}

# TPMA_OBJECT bits
ATTR_FIXED_TPM = 0x00000002
ATTR_ST_CLEAR = 0x00000004
ATTR_FIXED_PARENT = 0x00000010
ATTR_SENSITIVE_DATA_ORIGIN = 0x00000020
ATTR_USER_WITH_AUTH = 0x00000040
ATTR_ADMIN_WITH_POLICY = 0x00000080
ATTR_NO_DA = 0x00000400
ATTR_ENCRYPTED_DUPLICATION = 0x00000800
ATTR_RESTRICTED = 0x00010000
ATTR_DECRYPT = 0x00020000
ATTR_SIGN = 0x00040000
ATTR_X509_SIGN = 0x00080000
_ATTR_NAMES = (
    (ATTR_FIXED_TPM, "fixedTPM"),
    (ATTR_ST_CLEAR, "stClear"),
    (ATTR_FIXED_PARENT, "fixedParent"),
    (ATTR_SENSITIVE_DATA_ORIGIN, "sensitiveDataOrigin"),
    (ATTR_USER_WITH_AUTH, "userWithAuth"),
    (ATTR_ADMIN_WITH_POLICY, "adminWithPolicy"),
    (ATTR_NO_DA, "noDA"),
    (ATTR_ENCRYPTED_DUPLICATION, "encryptedDuplication"),
    (ATTR_RESTRICTED, "restricted"),
    (ATTR_DECRYPT, "decrypt"),
    (ATTR_SIGN, "sign"),
    (ATTR_X509_SIGN, "x509sign"),
)
#: TPMA_OBJECT bits that must be zero (bits 0, 3, 8, 9, 12-15, 20-31).
ATTR_RESERVED = 0xFFF0F309
#: An attestation key must have all of these (and not ``decrypt``).
AK_REQUIRED_ATTRIBUTES = (
    ATTR_RESTRICTED | ATTR_SIGN | ATTR_FIXED_TPM | ATTR_FIXED_PARENT | ATTR_SENSITIVE_DATA_ORIGIN
)

#: Hash algorithms: TPM_ALG_ID -> (name, digest size, cryptography hash class).
HASH_ALGS: dict[int, tuple[str, int, type[hashes.HashAlgorithm]]] = {
    ALG_SHA1: ("sha1", 20, hashes.SHA1),
    ALG_SHA256: ("sha256", 32, hashes.SHA256),
    ALG_SHA384: ("sha384", 48, hashes.SHA384),
    ALG_SHA512: ("sha512", 64, hashes.SHA512),
}
_HASH_BY_NAME = {v[0]: k for k, v in HASH_ALGS.items()}
# digests the TPM may carry that atls cannot compute (sizes only, for parsing names)
_OTHER_DIGEST_SIZES = {ALG_SM3_256: 32, 0x0027: 32, 0x0028: 48, 0x0029: 64}
_MAX_DIGEST = 64

#: TPM_ECC_CURVE -> (name, coordinate size, cryptography curve class).
CURVES: dict[int, tuple[str, int, type[ec.EllipticCurve]]] = {
    0x0003: ("nist-p256", 32, ec.SECP256R1),
    0x0004: ("nist-p384", 48, ec.SECP384R1),
    0x0005: ("nist-p521", 66, ec.SECP521R1),
}
_SIG_NAMES = {ALG_RSASSA: "rsassa", ALG_RSAPSS: "rsapss", ALG_ECDSA: "ecdsa"}
_OTHER_SIG = {ALG_HMAC: "hmac", ALG_ECDAA: "ecdaa", ALG_SM2: "sm2", ALG_ECSCHNORR: "ecschnorr"}

# Bounds from Part 2 (MAX_RSA_KEY_BYTES for 4096-bit keys, MAX_ECC_KEY_BYTES for P-521)
MAX_RSA_BYTES = 512
MAX_ECC_BYTES = 66
MAX_NAME = 2 + _MAX_DIGEST  # sizeof(TPMU_NAME)
MAX_DATA = 2 + _MAX_DIGEST  # TPM2B_DATA holds sizeof(TPMT_HA)
MAX_PCR_SELECT = 8  # PCR_SELECT_MAX bytes per bank (64 PCRs; real TPMs have 24)
MAX_BANKS = 16  # HASH_COUNT upper bound
MAX_ATTEST = 1024
MAX_PUBLIC = 1024


def hash_name(alg: int) -> str:
    """``sha256`` for 0x000B; ``alg_0x....`` for unknown ids."""
    known = HASH_ALGS.get(alg)
    return known[0] if known else f"alg_0x{alg:04x}"


def hash_alg(name: str) -> int:
    """The TPM_ALG_ID of a hash (``sha1``, ``sha256``, ``sha384``, ``sha512``)."""
    alg = _HASH_BY_NAME.get(name)
    if alg is None:
        raise UnsupportedEvidenceError(
            f"unsupported TPM hash {name!r} (supported: {sorted(_HASH_BY_NAME)})",
            code="tpm.hash",
        )
    return alg


def hash_size(alg: int) -> int:
    known = HASH_ALGS.get(alg)
    if known is None:
        raise UnsupportedEvidenceError(f"unsupported TPM hash {alg:#06x}", code="tpm.hash")
    return known[1]


#: Hierarchy handles a primary key's Qualified Name starts from.
HIERARCHIES = {
    0x40000001: "owner",
    0x4000000B: "endorsement",
    0x4000000C: "platform",
    0x40000007: "null",
}


def qualified_name_hierarchy(
    qualified: bytes, name: bytes, parents: Sequence[bytes] = ()
) -> str | None:
    """The hierarchy from which ``qualified`` (a TPMS_ATTEST qualifiedSigner) derives for a
    key with ``name`` whose ancestors (primary first) have the Names ``parents``:
    ``QN(P1) = alg || H(handle || Name(P1))``, ``QN(child) = alg || H(QN(parent) || Name)``
    (Part 1, "Qualified Name"). None if no hierarchy yields ``qualified``."""
    chain = [*parents, name]
    for handle, hierarchy in HIERARCHIES.items():
        qn = handle.to_bytes(4, "big")
        for n in chain:
            alg = int.from_bytes(n[:2], "big")
            known = HASH_ALGS.get(alg)
            if known is None or len(n) != 2 + known[1]:
                return None
            qn = n[:2] + hashlib.new(known[0], qn + n).digest()
        if qn == qualified:
            return hierarchy
    return None


def attribute_names(attributes: int) -> list[str]:
    return [name for bit, name in _ATTR_NAMES if attributes & bit]


def tpm2b(data: bytes) -> bytes:
    """``u16 size || data`` (TPM2B framing)."""
    if len(data) > 0xFFFF:
        raise ValueError("TPM2B payload longer than 65535 bytes")
    return len(data).to_bytes(2, "big") + data


def _tpm2b(r: Reader, limit: int, field: str) -> bytes:
    start = r.pos
    n = r.u16be(field)
    if n > limit:
        raise r.error(f"size {n} exceeds the limit of {limit}", field=field, offset=start)
    return r.bytes(n, field)


def _digest_size_any(alg: int) -> int | None:
    known = HASH_ALGS.get(alg)
    if known is not None:
        return known[1]
    return _OTHER_DIGEST_SIZES.get(alg)


def parse_name(name: bytes, *, fmt: str = "tpm.attest", field: str = "name") -> tuple[int, bytes]:
    """Split a TPM2B_NAME payload into (nameAlg, digest). A 4-byte name is a handle and is
    returned as (0, handle bytes); an empty name as (ALG_NULL, b"")."""
    if not name:
        return ALG_NULL, b""
    if len(name) == 4:
        return 0, name
    if len(name) < 2:
        raise EvidenceParseError("name of 1 byte", format=fmt, field=field)
    alg = int.from_bytes(name[:2], "big")
    size = _digest_size_any(alg)
    if size is None:
        raise EvidenceParseError(f"name uses unknown hash {alg:#06x}", format=fmt, field=field)
    if len(name) != 2 + size:
        raise EvidenceParseError(
            f"name of {len(name)} bytes for hash {alg:#06x} (expected {2 + size})",
            format=fmt,
            field=field,
        )
    return alg, name[2:]


# --- PCR selection ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PcrSelection:
    """One TPMS_PCR_SELECTION: a bank and its selected PCR indices (ascending)."""

    hash_alg: int
    size_of_select: int
    indices: tuple[int, ...]

    @property
    def bank(self) -> str:
        return hash_name(self.hash_alg)


def _pcr_selection(r: Reader) -> tuple[PcrSelection, ...]:
    start = r.pos
    count = r.u32be("pcrSelect.count")
    if count > MAX_BANKS:
        raise r.error(
            f"{count} PCR banks selected (max {MAX_BANKS})", field="pcrSelect.count", offset=start
        )
    out: list[PcrSelection] = []
    for i in range(count):
        alg = r.u16be(f"pcrSelect[{i}].hash")
        at = r.pos
        size = r.u8(f"pcrSelect[{i}].sizeofSelect")
        if size > MAX_PCR_SELECT:
            raise r.error(
                f"sizeofSelect {size} (max {MAX_PCR_SELECT})",
                field=f"pcrSelect[{i}].sizeofSelect",
                offset=at,
            )
        bitmap = r.bytes(size, f"pcrSelect[{i}].pcrSelect")
        indices = tuple(n for n in range(size * 8) if bitmap[n // 8] & (1 << (n % 8)))
        out.append(PcrSelection(alg, size, indices))
    return tuple(out)


def encode_pcr_selection(selections: tuple[PcrSelection, ...] | list[PcrSelection]) -> bytes:
    out = bytearray(len(selections).to_bytes(4, "big"))
    for s in selections:
        bitmap = bytearray(s.size_of_select)
        for n in s.indices:
            bitmap[n // 8] |= 1 << (n % 8)
        out += s.hash_alg.to_bytes(2, "big") + bytes([s.size_of_select]) + bitmap
    return bytes(out)


# --- TPMS_ATTEST -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ClockInfo:
    clock: int
    reset_count: int
    restart_count: int
    safe: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "clock": self.clock,
            "reset_count": self.reset_count,
            "restart_count": self.restart_count,
            "safe": self.safe,
        }


@dataclass(frozen=True)
class TpmsAttest:
    """A parsed quote. ``raw`` is the exact TPMS_ATTEST the signature covers."""

    type: int
    qualified_signer: bytes
    extra_data: bytes
    clock_info: ClockInfo
    firmware_version: int
    pcr_select: tuple[PcrSelection, ...]
    pcr_digest: bytes
    raw: bytes = field(repr=False, compare=False, default=b"")


def parse_attest(data: bytes) -> TpmsAttest:
    """Parse a quote's TPMS_ATTEST (or a TPM2B_ATTEST around one: a leading u16 equal to the
    rest's length followed by the magic is stripped).

    Errors: :class:`EvidenceParseError` (``tpm.attest.parse``, ``tpm.attest.magic``);
    :class:`UnsupportedEvidenceError` (``tpm.attest.type``) for a TPMS_ATTEST that is not a
    quote."""
    fmt = "tpm.attest"
    buf = bytes(data)
    if len(buf) > MAX_ATTEST + 2:
        raise EvidenceParseError(f"{len(buf)} bytes (max {MAX_ATTEST})", format=fmt, offset=0)
    if (
        len(buf) >= 6
        and int.from_bytes(buf[:2], "big") == len(buf) - 2
        and int.from_bytes(buf[2:6], "big") == TPM_GENERATED_VALUE
    ):
        buf = buf[2:]
    r = Reader(buf, fmt)
    # 1. magic: TPM_GENERATED_VALUE proves the TPM built the structure (a restricted key
    #    refuses to sign external data that starts with it)
    magic = r.u32be("magic")
    if magic != TPM_GENERATED_VALUE:
        raise EvidenceParseError(
            f"magic {magic:#010x} is not TPM_GENERATED_VALUE",
            format=fmt,
            offset=0,
            field="magic",
            code="tpm.attest.magic",
        )
    # 2. type: only TPM_ST_ATTEST_QUOTE
    at = r.pos
    typ = r.u16be("type")
    if typ != ATTEST_QUOTE:
        what = _ATTEST_TYPES.get(typ)
        if what is None:
            raise EvidenceParseError(
                f"unknown attestation type {typ:#06x}", format=fmt, offset=at, field="type"
            )
        raise UnsupportedEvidenceError(
            f"TPMS_ATTEST of type {what} ({typ:#06x}); only quotes (0x8018) are supported",
            code="tpm.attest.type",
        )
    at = r.pos
    signer = _tpm2b(r, MAX_NAME, "qualifiedSigner")
    parse_name(signer, field="qualifiedSigner")
    extra = _tpm2b(r, MAX_DATA, "extraData")
    clock = r.u64be("clockInfo.clock")
    reset = r.u32be("clockInfo.resetCount")
    restart = r.u32be("clockInfo.restartCount")
    at = r.pos
    safe = r.u8("clockInfo.safe")
    if safe not in (0, 1):
        raise r.error(f"clockInfo.safe is {safe} (TPMI_YES_NO)", field="clockInfo.safe", offset=at)
    fw = r.u64be("firmwareVersion")
    sel = _pcr_selection(r)
    digest = _tpm2b(r, _MAX_DIGEST, "pcrDigest")
    r.expect_end("TPMS_ATTEST")
    return TpmsAttest(
        ATTEST_QUOTE,
        signer,
        extra,
        ClockInfo(clock, reset, restart, bool(safe)),
        fw,
        sel,
        digest,
        buf,
    )


def encode_attest(a: TpmsAttest, *, magic: int = TPM_GENERATED_VALUE) -> bytes:
    """TPMS_ATTEST bytes for ``a`` (the simulated TPM; ``magic`` is a knob for tests)."""
    c = a.clock_info
    return b"".join(
        (
            magic.to_bytes(4, "big"),
            a.type.to_bytes(2, "big"),
            tpm2b(a.qualified_signer),
            tpm2b(a.extra_data),
            c.clock.to_bytes(8, "big"),
            c.reset_count.to_bytes(4, "big"),
            c.restart_count.to_bytes(4, "big"),
            bytes([1 if c.safe else 0]),
            a.firmware_version.to_bytes(8, "big"),
            encode_pcr_selection(a.pcr_select),
            tpm2b(a.pcr_digest),
        )
    )


# --- TPMT_SIGNATURE --------------------------------------------------------------------------


@dataclass(frozen=True)
class TpmtSignature:
    """``sig_alg`` RSASSA/RSAPSS (``signature``) or ECDSA (``r``, ``s``), with ``hash_alg``."""

    sig_alg: int
    hash_alg: int
    signature: bytes = b""
    r: bytes = b""
    s: bytes = b""

    @property
    def scheme(self) -> str:
        return _SIG_NAMES.get(self.sig_alg, f"alg_0x{self.sig_alg:04x}")


def parse_signature(data: bytes) -> TpmtSignature:
    """Parse a TPMT_SIGNATURE (RSASSA, RSAPSS or ECDSA). Errors: ``tpm.signature.parse``;
    :class:`UnsupportedEvidenceError` ``tpm.signature.alg`` for other schemes."""
    fmt = "tpm.signature"
    r = Reader(bytes(data), fmt)
    alg = r.u16be("sigAlg")
    if alg not in _SIG_NAMES:
        if alg in _OTHER_SIG:
            raise UnsupportedEvidenceError(
                f"signature scheme {_OTHER_SIG[alg]} is not supported (RSASSA, RSAPSS, ECDSA)",
                code="tpm.signature.alg",
            )
        raise EvidenceParseError(
            f"unknown signature algorithm {alg:#06x}", format=fmt, offset=0, field="sigAlg"
        )
    at = r.pos
    h = r.u16be("hash")
    if _digest_size_any(h) is None:
        raise EvidenceParseError(f"unknown hash {h:#06x}", format=fmt, offset=at, field="hash")
    if alg in (ALG_RSASSA, ALG_RSAPSS):
        sig = _tpm2b(r, MAX_RSA_BYTES, "sig")
        r.expect_end("TPMT_SIGNATURE")
        return TpmtSignature(alg, h, signature=sig)
    sr = _tpm2b(r, MAX_ECC_BYTES, "signatureR")
    ss = _tpm2b(r, MAX_ECC_BYTES, "signatureS")
    r.expect_end("TPMT_SIGNATURE")
    return TpmtSignature(alg, h, r=sr, s=ss)


def encode_signature(s: TpmtSignature) -> bytes:
    head = s.sig_alg.to_bytes(2, "big") + s.hash_alg.to_bytes(2, "big")
    if s.sig_alg == ALG_ECDSA:
        return head + tpm2b(s.r) + tpm2b(s.s)
    return head + tpm2b(s.signature)


# --- TPMT_PUBLIC -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TpmtPublic:
    """A parsed public area. ``raw`` is the exact TPMT_PUBLIC (what the Name hashes).

    RSA keys: ``rsa_bits``, ``rsa_exponent`` (0 means 65537), ``unique`` = modulus.
    ECC keys: ``curve``, ``ecc_x``, ``ecc_y``; ``kdf``/``kdf_hash``. ``scheme`` and
    ``scheme_hash`` are the key's signing scheme (ALG_NULL if none); ``symmetric`` the
    algorithm of its symmetric definition (ALG_NULL for signing keys)."""

    type: int
    name_alg: int
    attributes: int
    auth_policy: bytes
    symmetric: int
    scheme: int
    scheme_hash: int
    rsa_bits: int = 0
    rsa_exponent: int = 0
    unique: bytes = b""
    curve: int = 0
    ecc_x: bytes = b""
    ecc_y: bytes = b""
    kdf: int = ALG_NULL
    kdf_hash: int = ALG_NULL
    symmetric_bits: int = 0
    symmetric_mode: int = 0
    ecdaa_count: int = 0
    raw: bytes = field(repr=False, compare=False, default=b"")

    @property
    def key_type(self) -> str:
        if self.type == ALG_RSA:
            return f"rsa-{self.rsa_bits}"
        return f"ecc-{CURVES[self.curve][0]}" if self.curve in CURVES else "ecc"

    def name(self) -> bytes:
        """The Name: ``u16 nameAlg || H_nameAlg(TPMT_PUBLIC)`` over the received bytes."""
        alg = HASH_ALGS.get(self.name_alg)
        if alg is None:
            raise UnsupportedEvidenceError(
                f"AK nameAlg {self.name_alg:#06x} is not supported", code="tpm.hash"
            )
        return self.name_alg.to_bytes(2, "big") + hashlib.new(alg[0], self.raw).digest()

    def public_key(self) -> rsa.RSAPublicKey | ec.EllipticCurvePublicKey:
        """The key as a cryptography object; :class:`EvidenceParseError` (``tpm.ak.key``) if
        the numbers do not form a valid key."""
        try:
            if self.type == ALG_RSA:
                n = int.from_bytes(self.unique, "big")
                if len(self.unique) * 8 != self.rsa_bits or n.bit_length() != self.rsa_bits:
                    raise ValueError(
                        f"modulus of {n.bit_length()} bits for a {self.rsa_bits}-bit key"
                    )
                e = self.rsa_exponent or 65537
                return rsa.RSAPublicNumbers(e, n).public_key()
            if self.curve not in CURVES:
                raise UnsupportedEvidenceError(
                    f"ECC curve {self.curve:#06x} is not supported (NIST P-256/384/521)",
                    code="tpm.ak.curve",
                )
            name, size, curve = CURVES[self.curve]
            if len(self.ecc_x) > size or len(self.ecc_y) > size:
                raise ValueError(f"coordinates longer than {size} bytes for {name}")
            point = b"\x04" + self.ecc_x.rjust(size, b"\0") + self.ecc_y.rjust(size, b"\0")
            return ec.EllipticCurvePublicKey.from_encoded_point(curve(), point)
        except ValueError as e:
            raise EvidenceParseError(
                f"public area does not hold a valid key: {e}",
                format="tpm.public",
                field="unique",
                code="tpm.ak.key",
            ) from e


def _sym_def(r: Reader) -> tuple[int, int, int]:
    at = r.pos
    alg = r.u16be("symmetric.algorithm")
    if alg == ALG_NULL:
        return alg, 0, 0
    if alg not in (ALG_AES, ALG_SM4, ALG_CAMELLIA):
        raise r.error(f"symmetric algorithm {alg:#06x}", field="symmetric", offset=at)
    bits = r.u16be("symmetric.keyBits")
    mode = r.u16be("symmetric.mode")
    return alg, bits, mode


def _scheme(r: Reader, allowed: dict[int, int], what: str) -> tuple[int, int, int]:
    """(scheme, hash, ecdaa count). ``allowed`` maps scheme -> number of u16 detail fields."""
    at = r.pos
    scheme = r.u16be(f"{what}.scheme")
    if scheme == ALG_NULL:
        return scheme, ALG_NULL, 0
    if scheme not in allowed:
        raise r.error(f"{what} scheme {scheme:#06x}", field=f"{what}.scheme", offset=at)
    details = allowed[scheme]
    h = r.u16be(f"{what}.hashAlg") if details >= 1 else ALG_NULL
    count = r.u16be(f"{what}.count") if details >= 2 else 0
    return scheme, h, count


_RSA_SCHEMES = {ALG_RSASSA: 1, ALG_RSAPSS: 1, ALG_OAEP: 1, ALG_RSAES: 0}
_ECC_SCHEMES = {ALG_ECDSA: 1, ALG_ECDH: 1, ALG_SM2: 1, ALG_ECSCHNORR: 1, ALG_ECMQV: 1, ALG_ECDAA: 2}
_KDF_SCHEMES = {ALG_KDF1_SP800_56A: 1, ALG_KDF2: 1, ALG_KDF1_SP800_108: 1, 0x0007: 1}


def parse_public(data: bytes, *, tpm2b_framed: bool = True) -> TpmtPublic:
    """Parse a TPM2B_PUBLIC (``tpm2b_framed=True``: u16 size that must equal the rest) or a
    bare TPMT_PUBLIC. Only RSA and ECC keys are accepted (an AK is asymmetric).

    Errors: ``tpm.public.parse``; :class:`UnsupportedEvidenceError` ``tpm.ak.type`` for
    keyed-hash / symmetric objects."""
    fmt = "tpm.public"
    buf = bytes(data)
    if len(buf) > MAX_PUBLIC + 2:
        raise EvidenceParseError(f"{len(buf)} bytes (max {MAX_PUBLIC})", format=fmt, offset=0)
    if tpm2b_framed:
        outer = Reader(buf, fmt)
        n = outer.u16be("size")
        if n != outer.remaining:
            raise EvidenceParseError(
                f"TPM2B_PUBLIC size {n} but {outer.remaining} bytes follow",
                format=fmt,
                offset=0,
                field="size",
            )
        buf = buf[2:]
    r = Reader(buf, fmt)
    typ = r.u16be("type")
    if typ not in (ALG_RSA, ALG_ECC):
        if typ in (ALG_KEYEDHASH, ALG_SYMCIPHER):
            raise UnsupportedEvidenceError(
                f"public area of type {typ:#06x} is not an asymmetric key", code="tpm.ak.type"
            )
        raise EvidenceParseError(
            f"unknown object type {typ:#06x}", format=fmt, offset=0, field="type"
        )
    at = r.pos
    name_alg = r.u16be("nameAlg")
    if _digest_size_any(name_alg) is None:
        raise r.error(f"unknown nameAlg {name_alg:#06x}", field="nameAlg", offset=at)
    at = r.pos
    attrs = r.u32be("objectAttributes")
    if attrs & ATTR_RESERVED:
        raise r.error(
            f"reserved objectAttributes bits set ({attrs & ATTR_RESERVED:#010x})",
            field="objectAttributes",
            offset=at,
        )
    policy = _tpm2b(r, _MAX_DIGEST, "authPolicy")
    sym, sym_bits, sym_mode = _sym_def(r)
    if typ == ALG_RSA:
        scheme, sh, _ = _scheme(r, _RSA_SCHEMES, "scheme")
        at = r.pos
        bits = r.u16be("keyBits")
        if bits not in (1024, 2048, 3072, 4096):
            raise r.error(f"RSA keyBits {bits}", field="keyBits", offset=at)
        exponent = r.u32be("exponent")
        modulus = _tpm2b(r, MAX_RSA_BYTES, "unique.rsa")
        r.expect_end("TPMT_PUBLIC")
        return TpmtPublic(
            typ,
            name_alg,
            attrs,
            policy,
            sym,
            scheme,
            sh,
            rsa_bits=bits,
            rsa_exponent=exponent,
            unique=modulus,
            symmetric_bits=sym_bits,
            symmetric_mode=sym_mode,
            raw=buf,
        )
    scheme, sh, count = _scheme(r, _ECC_SCHEMES, "scheme")
    at = r.pos
    curve = r.u16be("curveID")
    if curve not in CURVES and not 0x0001 <= curve <= 0x0040:
        raise r.error(f"unknown curve {curve:#06x}", field="curveID", offset=at)
    kdf, kdf_hash, _ = _scheme(r, _KDF_SCHEMES, "kdf")
    x = _tpm2b(r, MAX_ECC_BYTES, "unique.x")
    y = _tpm2b(r, MAX_ECC_BYTES, "unique.y")
    r.expect_end("TPMT_PUBLIC")
    return TpmtPublic(
        typ,
        name_alg,
        attrs,
        policy,
        sym,
        scheme,
        sh,
        curve=curve,
        ecc_x=x,
        ecc_y=y,
        kdf=kdf,
        kdf_hash=kdf_hash,
        symmetric_bits=sym_bits,
        symmetric_mode=sym_mode,
        ecdaa_count=count,
        raw=buf,
    )


def encode_public(p: TpmtPublic, *, tpm2b_framed: bool = True) -> bytes:
    """TPMT_PUBLIC (or TPM2B_PUBLIC) bytes for ``p``."""
    out = bytearray()
    out += p.type.to_bytes(2, "big") + p.name_alg.to_bytes(2, "big")
    out += p.attributes.to_bytes(4, "big") + tpm2b(p.auth_policy)
    out += p.symmetric.to_bytes(2, "big")
    if p.symmetric != ALG_NULL:
        out += p.symmetric_bits.to_bytes(2, "big") + p.symmetric_mode.to_bytes(2, "big")
    out += p.scheme.to_bytes(2, "big")
    schemes = _RSA_SCHEMES if p.type == ALG_RSA else _ECC_SCHEMES
    if p.scheme != ALG_NULL:
        if schemes.get(p.scheme, 0) >= 1:
            out += p.scheme_hash.to_bytes(2, "big")
        if schemes.get(p.scheme, 0) >= 2:
            out += p.ecdaa_count.to_bytes(2, "big")
    if p.type == ALG_RSA:
        out += p.rsa_bits.to_bytes(2, "big") + p.rsa_exponent.to_bytes(4, "big")
        out += tpm2b(p.unique)
    else:
        out += p.curve.to_bytes(2, "big") + p.kdf.to_bytes(2, "big")
        if p.kdf != ALG_NULL:
            out += p.kdf_hash.to_bytes(2, "big")
        out += tpm2b(p.ecc_x) + tpm2b(p.ecc_y)
    return tpm2b(bytes(out)) if tpm2b_framed else bytes(out)
