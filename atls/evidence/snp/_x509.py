"""Certificates and CRLs of the AMD SEV-SNP PKI, parsed with asn1crypto (pure; no I/O).

AMD VCEK and VLEK certificates carry serial number 0, which ``cryptography`` deprecates and
will refuse to load. So the structure is parsed with asn1crypto, the exact signed bytes
(``tbsCertificate`` / ``tbsCertList``) are cut out of the received DER with a small TLV
walker (never re-encoded), and signatures are checked with ``cryptography`` primitives.

The AMD PKI (VCEK/KDS specification 57230) signs every certificate and CRL with RSASSA-PSS,
SHA-384, MGF1-SHA-384, salt length 48: ARK (self-signed) -> ASK or ASVK -> VCEK or VLEK.
The VCEK/VLEK key is ECDSA P-384. Names are compared byte for byte.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from asn1crypto import core as _core
from asn1crypto import crl as _crl
from asn1crypto import x509 as _x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from atls.errors import VerificationError

__all__ = [
    "AMD_OID_ARC",
    "AMD_OIDS",
    "PSS_SHA384",
    "AmdCert",
    "AmdCrl",
    "p384_key",
    "parse_cert",
    "parse_crl",
    "verify_pss",
]

_PARSE_ERRORS = (ValueError, TypeError, KeyError, IndexError, OverflowError, AttributeError)

#: AMD's arc for the VCEK/VLEK extensions (KDS specification 57230, "VCEK Certificate").
AMD_OID_ARC = "1.3.6.1.4.1.3704.1"
AMD_OIDS: dict[str, str] = {
    f"{AMD_OID_ARC}.1": "struct_version",
    f"{AMD_OID_ARC}.2": "product_name",
    f"{AMD_OID_ARC}.3.1": "bootloader",
    f"{AMD_OID_ARC}.3.2": "tee",
    f"{AMD_OID_ARC}.3.3": "snp",
    f"{AMD_OID_ARC}.3.4": "spl_4",
    f"{AMD_OID_ARC}.3.5": "spl_5",
    f"{AMD_OID_ARC}.3.6": "spl_6",
    f"{AMD_OID_ARC}.3.7": "spl_7",
    f"{AMD_OID_ARC}.3.8": "microcode",
    f"{AMD_OID_ARC}.3.9": "fmc",
    f"{AMD_OID_ARC}.4": "hw_id",
    f"{AMD_OID_ARC}.5": "csp_id",
}
_AMD_INTS = frozenset(
    {"struct_version", "bootloader", "tee", "snp", "spl_4", "spl_5", "spl_6", "spl_7"}
    | {"microcode", "fmc"}
)
_AMD_STRINGS = frozenset({"product_name", "csp_id"})

# Extensions whose meaning the chain checks implement (anything else critical is refused).
_BASIC_CONSTRAINTS = "2.5.29.19"
_KEY_USAGE = "2.5.29.15"
_UNDERSTOOD = frozenset(
    {_BASIC_CONSTRAINTS, _KEY_USAGE, "2.5.29.14", "2.5.29.35", "2.5.29.31", *AMD_OIDS}
)
_CRL_UNDERSTOOD = frozenset({"2.5.29.20", "2.5.29.35"})  # CRL number, authority key id

#: The only signature scheme of the AMD PKI.
PSS_SHA384 = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)
_MIN_RSA_BITS = 2048


def _tlv(buf: bytes, pos: int, limit: int) -> tuple[int, int, int]:
    """(tag, content start, end) of the DER TLV at ``pos``; ValueError if malformed."""
    if pos + 2 > limit:
        raise ValueError("truncated DER")
    tag = buf[pos]
    if tag & 0x1F == 0x1F:
        raise ValueError("high-tag-number DER is not used here")
    n = buf[pos + 1]
    pos += 2
    if n < 0x80:
        length = n
    else:
        k = n & 0x7F
        if k == 0 or k > 4 or pos + k > limit:
            raise ValueError("bad DER length")
        length = int.from_bytes(buf[pos : pos + k], "big")
        if length < 0x80 or buf[pos] == 0:
            raise ValueError("non-minimal DER length")
        pos += k
    end = pos + length
    if end > limit:
        raise ValueError("DER length past the end")
    return tag, pos, end


def _signed_part(der: bytes) -> bytes:
    """The first element (tbsCertificate / tbsCertList) of a signed SEQUENCE, as received."""
    tag, start, end = _tlv(der, 0, len(der))
    if tag != 0x30 or end != len(der):
        raise ValueError("not one DER SEQUENCE")
    tag, _, tbs_end = _tlv(der, start, end)
    if tag != 0x30:
        raise ValueError("the signed part is not a SEQUENCE")
    return der[start:tbs_end]


def _pss_params_ok(alg: Any) -> bool:
    """True if ``alg`` (a SignedDigestAlgorithm) is RSASSA-PSS SHA-384/MGF1-SHA-384/salt 48."""
    if alg["algorithm"].native != "rsassa_pss":
        return False
    p = alg["parameters"]
    mgf = p["mask_gen_algorithm"]
    return bool(
        p["hash_algorithm"]["algorithm"].native == "sha384"
        and mgf["algorithm"].native == "mgf1"
        and mgf["parameters"]["algorithm"].native == "sha384"
        and p["salt_length"].native == 48
        and p["trailer_field"].native == "trailer_field_bc"
    )


def _cn(name: Any) -> str:
    for rdn in name.chosen:
        for atv in rdn:
            if atv["type"].native == "common_name":
                v = atv["value"].native
                return v if isinstance(v, str) else ""
    return ""


def _utc(v: Any) -> datetime:
    if not isinstance(v, datetime):
        raise ValueError("not a time")
    return v if v.tzinfo else v.replace(tzinfo=UTC)


def _decode_amd(name: str, raw: bytes) -> int | str | bytes:
    if name in _AMD_INTS:
        v = _core.Integer.load(raw, strict=True).native
        if not isinstance(v, int) or not 0 <= v <= 0xFF:
            raise ValueError(f"{name} is not an integer 0..255")
        return v
    if name in _AMD_STRINGS:
        if not raw or raw[0] != 0x16:
            raise ValueError(f"{name} is not an IA5String")
        s = _core.IA5String.load(raw, strict=True).native
        if not isinstance(s, str):
            raise ValueError(f"{name} is not a string")
        return s
    # hw_id: KDS puts the raw bytes in extnValue (no OCTET STRING tag); accept the tagged form.
    if len(raw) in (8, 64):
        return raw
    octets = _core.OctetString.load(raw, strict=True).native
    if not isinstance(octets, bytes) or len(octets) not in (8, 64):
        raise ValueError("hwID is neither 64 nor 8 bytes")
    return octets


@dataclass(frozen=True, slots=True, eq=False)
class AmdCert:
    """The fields of one certificate that the chain checks use (parsed, not verified)."""

    der: bytes
    sha256: bytes
    tbs: bytes
    signature: bytes
    pss: bool
    serial: int
    subject: bytes
    issuer: bytes
    subject_cn: str
    issuer_cn: str
    not_before: datetime
    not_after: datetime
    public_key: Any  # rsa.RSAPublicKey | ec.EllipticCurvePublicKey | None
    key_error: str
    is_ca: bool
    key_usage: frozenset[str] | None
    unknown_critical: tuple[str, ...]
    amd: dict[str, int | str | bytes] = field(default_factory=dict)
    amd_error: str = ""

    @property
    def self_issued(self) -> bool:
        return self.subject == self.issuer

    def describe(self) -> str:
        return f"{self.subject_cn or '?'} (sha256 {self.sha256.hex()[:16]})"


def parse_cert(der: bytes) -> AmdCert:
    """Parse one DER certificate strictly (no trailing bytes); ValueError if malformed."""
    der = bytes(der)
    try:
        tbs_bytes = _signed_part(der)
        cert = _x509.Certificate.load(der, strict=True)
        tbs = cert["tbs_certificate"]
        alg = cert["signature_algorithm"]
        pss = _pss_params_ok(alg) and tbs["signature"].dump() == alg.dump()
        validity = tbs["validity"]
        not_before = _utc(validity["not_before"].native)
        not_after = _utc(validity["not_after"].native)
        serial = tbs["serial_number"].native
        if not isinstance(serial, int):
            raise ValueError("serial number is not an integer")
        signature = cert["signature_value"].native
        if not isinstance(signature, bytes):
            raise ValueError("signature is not a byte string")
        is_ca = False
        key_usage: frozenset[str] | None = None
        unknown_critical: list[str] = []
        amd: dict[str, int | str | bytes] = {}
        amd_error = ""
        seen: set[str] = set()
        for ext in tbs["extensions"]:
            oid = ext["extn_id"].dotted
            if oid in seen:
                raise ValueError(f"duplicate extension {oid}")
            seen.add(oid)
            if ext["critical"].native and oid not in _UNDERSTOOD:
                unknown_critical.append(oid)
            if oid == _BASIC_CONSTRAINTS:
                is_ca = bool(ext["extn_value"].parsed["ca"].native)
            elif oid == _KEY_USAGE:
                key_usage = frozenset(ext["extn_value"].parsed.native)
            elif oid in AMD_OIDS:
                name = AMD_OIDS[oid]
                try:
                    amd[name] = _decode_amd(name, ext["extn_value"].contents)
                except _PARSE_ERRORS as e:
                    amd_error = amd_error or f"extension {name} ({oid}): {e}"
        spki = tbs["subject_public_key_info"].dump()
        public_key: Any = None
        key_error = ""
        try:
            public_key = serialization.load_der_public_key(spki)
        except (ValueError, UnsupportedAlgorithm) as e:
            key_error = str(e) or type(e).__name__
        return AmdCert(
            der=der,
            sha256=hashlib.sha256(der).digest(),
            tbs=tbs_bytes,
            signature=signature,
            pss=pss,
            serial=serial,
            subject=tbs["subject"].dump(),
            issuer=tbs["issuer"].dump(),
            subject_cn=_cn(tbs["subject"]),
            issuer_cn=_cn(tbs["issuer"]),
            not_before=not_before,
            not_after=not_after,
            public_key=public_key,
            key_error=key_error,
            is_ca=is_ca,
            key_usage=key_usage,
            unknown_critical=tuple(unknown_critical),
            amd=amd,
            amd_error=amd_error,
        )
    except _PARSE_ERRORS as e:
        raise ValueError(f"not a well-formed DER certificate: {e}") from e


@dataclass(frozen=True, slots=True, eq=False)
class AmdCrl:
    """The fields of one CRL (parsed, not verified)."""

    der: bytes
    sha256: bytes
    tbs: bytes
    signature: bytes
    pss: bool
    issuer: bytes
    issuer_cn: str
    this_update: datetime
    next_update: datetime | None
    revoked: frozenset[int]
    unknown_critical: tuple[str, ...]


def parse_crl(der: bytes) -> AmdCrl:
    """Parse one DER CRL strictly; ValueError if malformed."""
    der = bytes(der)
    try:
        tbs_bytes = _signed_part(der)
        crl = _crl.CertificateList.load(der, strict=True)
        tbs = crl["tbs_cert_list"]
        alg = crl["signature_algorithm"]
        pss = _pss_params_ok(alg) and tbs["signature"].dump() == alg.dump()
        nu = tbs["next_update"].native
        revoked: set[int] = set()
        unknown: list[str] = []
        for entry in tbs["revoked_certificates"]:
            serial = entry["user_certificate"].native
            if not isinstance(serial, int):
                raise ValueError("revoked serial is not an integer")
            revoked.add(serial)
            for ext in entry["crl_entry_extensions"]:
                if ext["critical"].native:
                    unknown.append(ext["extn_id"].dotted)
        for ext in tbs["crl_extensions"]:
            if ext["critical"].native and ext["extn_id"].dotted not in _CRL_UNDERSTOOD:
                unknown.append(ext["extn_id"].dotted)
        signature = crl["signature"].native
        if not isinstance(signature, bytes):
            raise ValueError("signature is not a byte string")
        return AmdCrl(
            der=der,
            sha256=hashlib.sha256(der).digest(),
            tbs=tbs_bytes,
            signature=signature,
            pss=pss,
            issuer=tbs["issuer"].dump(),
            issuer_cn=_cn(tbs["issuer"]),
            this_update=_utc(tbs["this_update"].native),
            next_update=None if nu is None else _utc(nu),
            revoked=frozenset(revoked),
            unknown_critical=tuple(unknown),
        )
    except _PARSE_ERRORS as e:
        raise ValueError(f"not a well-formed DER CRL: {e}") from e


def verify_pss(
    issuer: AmdCert, tbs: bytes, signature: bytes, pss: bool, *, what: str, code: str
) -> None:
    """Check an AMD PKI signature (RSASSA-PSS SHA-384, salt 48) by ``issuer``'s RSA key
    over the exact signed bytes ``tbs``; raise :class:`VerificationError` with ``code``."""
    if not pss:
        raise VerificationError(
            f"{what} is not signed with RSASSA-PSS SHA-384 (MGF1-SHA-384, salt 48)", code=code
        )
    key = issuer.public_key
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size < _MIN_RSA_BITS:
        raise VerificationError(
            f"{what}: the issuer {issuer.describe()} has no RSA key of at least "
            f"{_MIN_RSA_BITS} bits",
            code=code,
        )
    try:
        key.verify(signature, tbs, PSS_SHA384, hashes.SHA384())
    except InvalidSignature as e:
        raise VerificationError(
            f"{what}: signature does not verify with the key of {issuer.describe()}", code=code
        ) from e


def p384_key(cert: AmdCert, *, what: str, code: str) -> ec.EllipticCurvePublicKey:
    key = cert.public_key
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP384R1):
        raise VerificationError(f"{what} {cert.describe()} has no ECDSA P-384 key", code=code)
    return key
