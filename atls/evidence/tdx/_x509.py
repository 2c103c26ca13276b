"""Certificate and CRL checks for the Intel SGX PKI (pure; time is an argument).

Signatures are checked over the exact signed bytes (``tbsCertificate`` / ``tbsCertList``
cut out of the received DER, never re-encoded) with ECDSA P-256 / SHA-256, the only
algorithm of the Intel SGX PKI. Issuer and subject names are compared byte for byte, as
Intel's QVL does.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.x509.oid import SignatureAlgorithmOID

from atls.errors import EvidenceParseError, VerificationError
from atls.evidence.tdx._cache import WindowCache
from atls.evidence.tdx._der import (
    DerError,
    certificate_parts,
    crl_parts,
    encode_oid,
    extensions_map,
    name_common_name,
)

__all__ = [
    "ECDSA_SHA256",
    "Cert",
    "CrlInfo",
    "check_validity",
    "describe_name",
    "clear_issued",
    "clear_parsed",
    "load_cert",
    "select_crl",
    "verify_issued_by",
    "verify_raw_signature",
]

ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
_SIG_OID = SignatureAlgorithmOID.ECDSA_WITH_SHA256
_BASIC_CONSTRAINTS = encode_oid("2.5.29.19")
_LO = datetime.min.replace(tzinfo=UTC)
_HI = datetime.max.replace(tzinfo=UTC)
_TICK = timedelta(microseconds=1)
#: Bound on the CRLs a (possibly peer-stapled) collateral bundle can make the verifier parse.
MAX_CRLS = 64


class Cert:
    """A parsed certificate with the exact encodings the checks need (immutable)."""

    __slots__ = (
        "_exts",
        "_key",
        "cert",
        "cn",
        "der",
        "ext_end",
        "ext_start",
        "issuer",
        "not_after",
        "not_before",
        "serial",
        "serial_der",
        "signature",
        "signature_oid",
        "subject",
        "tbs",
    )

    def __init__(
        self,
        der: bytes,
        cert: x509.Certificate,
        tbs: bytes,
        issuer: bytes,
        subject: bytes,
        ext_start: int,
        ext_end: int,
        not_before: datetime,
        not_after: datetime,
        cn: str,
    ) -> None:
        self.der = der
        self.cert = cert
        # Decoded once (cryptography builds a new object on every access).
        self.serial: int = cert.serial_number
        self.serial_der: bytes | None = _der_integer(self.serial) if self.serial > 0 else None
        self.signature: bytes = cert.signature
        self.signature_oid: x509.ObjectIdentifier = cert.signature_algorithm_oid
        self.tbs = tbs
        self.issuer = issuer
        self.subject = subject
        self.ext_start = ext_start
        self.ext_end = ext_end
        self.not_before = not_before
        self.not_after = not_after
        self.cn = cn
        self._key: ec.EllipticCurvePublicKey | None = None
        self._exts: dict[bytes, bytes] | None = None

    @property
    def common_name(self) -> str:
        return self.cn

    def extension(self, oid: bytes) -> bytes | None:
        """The extnValue of extension ``oid`` (raw OID bytes); DerError if malformed."""
        if self._exts is None:
            self._exts = (
                extensions_map(self.der, self.ext_start, self.ext_end) if self.ext_end else {}
            )
        return self._exts.get(oid)

    def is_ca(self) -> bool:
        """BasicConstraints cA is TRUE."""
        v = self.extension(_BASIC_CONSTRAINTS)
        # SEQUENCE { cA BOOLEAN DEFAULT FALSE, pathLen INTEGER OPTIONAL }
        return v is not None and len(v) >= 5 and v[0] == 0x30 and v[2:5] == b"\x01\x01\xff"

    def public_key(self, *, what: str, code: str) -> ec.EllipticCurvePublicKey:
        if self._key is not None:
            return self._key
        try:
            key = self.cert.public_key()
        except ValueError as e:
            raise VerificationError(f"{what}: unusable public key: {e}", code=code) from e
        if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(
            key.curve, ec.SECP256R1
        ):
            raise VerificationError(f"{what}: public key is not ECDSA P-256", code=code)
        self._key = key
        return key


def _der_integer(n: int) -> bytes:
    """The DER encoding (tag, minimal length, minimal content) of a positive INTEGER."""
    content = n.to_bytes(n.bit_length() // 8 + 1, "big")
    size = len(content)
    if size < 0x80:
        return bytes((0x02, size)) + content
    size_bytes = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes((0x02, 0x80 | len(size_bytes))) + size_bytes + content


_CERTS_LOCK = threading.Lock()
_CERTS: OrderedDict[bytes, Cert] = OrderedDict()


def load_cert(der: bytes, *, fmt: str, what: str, in_quote: bool) -> Cert:
    """Parse a DER certificate. One inside the quote that does not parse is a parse error
    of the quote; one in the collateral is a verification error. Parses are memoised by
    the exact DER (parsing is deterministic; nothing is verified here)."""
    with _CERTS_LOCK:
        hit = _CERTS.get(der)
    if hit is not None:
        return hit
    try:
        cert = x509.load_der_x509_certificate(der)
        tbs, issuer, subject, es, ee = certificate_parts(der)
        nb, na = cert.not_valid_before_utc, cert.not_valid_after_utc
        cn = name_common_name(subject)
        # Cert decodes the fields cryptography decodes lazily, so that nothing later raises.
        c = Cert(der, cert, tbs, issuer, subject, es, ee, nb, na, cn)
    except (ValueError, DerError) as e:
        if in_quote:
            raise EvidenceParseError(
                f"{what} is not a valid DER certificate: {e}",
                format=fmt,
                field="pck_chain",
                code=f"{fmt}.parse.pck_chain",
            ) from e
        raise VerificationError(
            f"{what} is not a valid DER certificate: {e}", code=f"{fmt}.collateral.malformed"
        ) from e
    with _CERTS_LOCK:
        _CERTS[der] = c
        while len(_CERTS) > 128:
            _CERTS.popitem(last=False)
    return c


def clear_issued() -> None:
    _ISSUED.clear()


def clear_parsed() -> None:
    with _CERTS_LOCK:
        _CERTS.clear()


def describe_name(name: bytes) -> str:
    """A DER Name for messages: its common name, or a hex prefix (never raises)."""
    try:
        cn = name_common_name(name)
    except DerError:
        cn = ""
    return cn or name[:24].hex()


def check_validity(cert: Cert, at: datetime, *, fmt: str, what: str, area: str) -> None:
    """``notBefore <= at <= notAfter`` (codes ``<fmt>.<area>.not_yet_valid|expired``)."""
    if at < cert.not_before:
        raise VerificationError(
            f"{what} is not valid before {cert.not_before.isoformat()} "
            f"(verification time {at.isoformat()})",
            code=f"{fmt}.{area}.not_yet_valid",
        )
    if at > cert.not_after:
        raise VerificationError(
            f"{what} expired at {cert.not_after.isoformat()} (verification time {at.isoformat()})",
            code=f"{fmt}.{area}.expired",
        )


# Certificate signatures that verified, by the exact (child DER, issuer DER).
_ISSUED: WindowCache[bool] = WindowCache("verified-certificate-signatures", 256)


def verify_issued_by(
    child: Cert,
    issuer: Cert,
    issuer_key: ec.EllipticCurvePublicKey,
    *,
    what: str,
    code: str,
    at: datetime,
) -> None:
    """Issuer name (bytes), ecdsa-with-SHA256, and the signature over the received TBS."""
    if child.issuer != issuer.subject:
        raise VerificationError(
            f"{what} is issued by {describe_name(child.issuer)!r}, not by "
            f"{describe_name(issuer.subject)!r}",
            code=code,
        )
    key = (child.der, issuer.der)
    if _ISSUED.get(key, at):
        return
    if child.signature_oid != _SIG_OID:
        raise VerificationError(f"{what} is not signed with ecdsa-with-SHA256", code=code)
    try:
        issuer_key.verify(child.signature, child.tbs, ECDSA_SHA256)
    except InvalidSignature as e:
        raise VerificationError(f"{what}: signature does not verify", code=code) from e
    _ISSUED.put(key, True, _LO, _HI)


def verify_raw_signature(
    key: ec.EllipticCurvePublicKey, sig: bytes, data: bytes, *, what: str, code: str
) -> None:
    """Intel's raw ``r || s`` (32 bytes each, big-endian) ECDSA P-256 / SHA-256 signature."""
    if len(sig) != 64:
        raise VerificationError(f"{what}: signature is {len(sig)} bytes, not 64", code=code)
    r = int.from_bytes(sig[:32], "big")
    s = int.from_bytes(sig[32:], "big")
    if r == 0 or s == 0:
        raise VerificationError(f"{what}: signature does not verify", code=code)
    try:
        key.verify(utils.encode_dss_signature(r, s), data, ECDSA_SHA256)
    except InvalidSignature as e:
        raise VerificationError(f"{what}: signature does not verify", code=code) from e


class CrlInfo(NamedTuple):
    """A CRL whose signature was verified by its issuer."""

    der: bytes
    crl: x509.CertificateRevocationList
    this_update: datetime
    next_update: datetime

    def is_revoked(self, cert: Cert, *, fmt: str) -> bool:
        # An entry revoking a positive serial holds its minimal DER INTEGER byte for byte
        # (cryptography loads only DER CRLs and compares exactly these bytes), so if the CRL
        # does not contain them nothing in it revokes the certificate: skip the entry walk.
        if cert.serial_der is not None and cert.serial_der not in self.der:
            return False
        try:
            entry = self.crl.get_revoked_certificate_by_serial_number(cert.serial)
        except ValueError as e:
            raise VerificationError(
                f"malformed revoked-certificate entries: {e}", code=f"{fmt}.crl.malformed"
            ) from e
        return entry is not None


class _LoadedCrl(NamedTuple):
    """A CRL loaded by cryptography, with the fields it decodes lazily decoded once."""

    crl: x509.CertificateRevocationList
    signature_oid: x509.ObjectIdentifier
    signature: bytes
    this_update: datetime
    next_update: datetime | None


class _ParsedCrl(NamedTuple):
    tbs: bytes
    issuer: bytes
    loaded: _LoadedCrl | None  # None: not loaded yet (its issuer was not wanted so far)


_PARSED_CRLS: WindowCache[_ParsedCrl] = WindowCache("parsed-crls", 64)
_VERIFIED_CRLS: WindowCache[CrlInfo] = WindowCache("verified-crls", 64)


def _parse_crl(der: bytes, issuer_name: bytes, at: datetime) -> _ParsedCrl | None:
    """The parsed CRL if it is issued by ``issuer_name`` (raw DER), else None (also when it
    is malformed). Its structure is cut once per DER; cryptography loads only wanted CRLs."""
    parsed = _PARSED_CRLS.get(der, at)
    if parsed is None:
        try:
            tbs, issuer = crl_parts(der)
        except DerError:
            return None
        parsed = _ParsedCrl(tbs, issuer, None)
        _PARSED_CRLS.put(der, parsed, _LO, _HI)
    if parsed.issuer != issuer_name:
        return None
    if parsed.loaded is None:
        try:
            crl = x509.load_der_x509_crl(der)
            loaded = _LoadedCrl(
                crl,
                crl.signature_algorithm_oid,
                crl.signature,
                crl.last_update_utc,
                crl.next_update_utc,
            )
        except ValueError:
            return None
        parsed = parsed._replace(loaded=loaded)
        _PARSED_CRLS.put(der, parsed, _LO, _HI)
    return parsed


def _verify_crl(
    der: bytes,
    parsed: _ParsedCrl,
    issuer: Cert,
    issuer_key: ec.EllipticCurvePublicKey,
    *,
    fmt: str,
    what: str,
    at: datetime,
) -> CrlInfo:
    key = (der, issuer.der)
    hit = _VERIFIED_CRLS.get(key, at)
    if hit is not None:
        return hit
    crl = parsed.loaded
    assert crl is not None  # loaded by _parse_crl for a wanted issuer
    if crl.signature_oid != _SIG_OID:
        raise VerificationError(
            f"{what} is not signed with ecdsa-with-SHA256", code=f"{fmt}.crl.signature"
        )
    try:
        issuer_key.verify(crl.signature, parsed.tbs, ECDSA_SHA256)
    except InvalidSignature as e:
        raise VerificationError(
            f"{what}: signature does not verify with its issuer's key",
            code=f"{fmt}.crl.signature",
        ) from e
    if crl.next_update is None:
        raise VerificationError(f"{what} has no nextUpdate", code=f"{fmt}.crl.malformed")
    info = CrlInfo(der, crl.crl, crl.this_update, crl.next_update)
    _VERIFIED_CRLS.put(key, info, _LO, _HI)
    return info


def select_crl(
    crls: tuple[bytes, ...],
    issuer: Cert,
    issuer_key: ec.EllipticCurvePublicKey,
    at: datetime,
    *,
    fmt: str,
    what: str,
    missing_code: str,
    optional: bool = False,
) -> tuple[CrlInfo, datetime] | None:
    """The CRL issued by ``issuer`` that is current at ``at`` (latest thisUpdate wins).

    CRLs of other issuers are ignored; a CRL naming ``issuer`` whose signature fails is an
    error (``<fmt>.crl.signature``); if none is current the error says expired / not yet valid.
    With ``optional=True`` a missing CRL gives None instead of an error.

    Returns the CRL and the last instant at which it remains the choice: its nextUpdate, or
    just before a newer CRL of the same issuer becomes current (for caching by window).
    """
    if len(crls) > MAX_CRLS:
        raise VerificationError(
            f"{len(crls)} CRLs in the collateral (at most {MAX_CRLS})",
            code=f"{fmt}.collateral.too_many",
        )
    candidates: list[CrlInfo] = []
    for der in crls:
        parsed = _parse_crl(der, issuer.subject, at)
        if parsed is None:
            continue
        candidates.append(_verify_crl(der, parsed, issuer, issuer_key, fmt=fmt, what=what, at=at))
    if not candidates:
        if optional:
            return None
        raise VerificationError(
            f"no {what} in the collateral (a CRL issued by "
            f"{describe_name(issuer.subject)!r} is required)",
            code=missing_code,
        )
    current = [c for c in candidates if c.this_update <= at <= c.next_update]
    if not current:
        c = max(candidates, key=lambda c: c.this_update)
        if at < c.this_update:
            raise VerificationError(
                f"{what} is not valid before {c.this_update.isoformat()} "
                f"(verification time {at.isoformat()})",
                code=f"{fmt}.collateral.not_yet_valid",
            )
        raise VerificationError(
            f"{what} expired at {c.next_update.isoformat()} (verification time {at.isoformat()})",
            code=f"{fmt}.collateral.expired",
        )
    chosen = max(current, key=lambda c: c.this_update)
    until = chosen.next_update
    for c in candidates:
        if c.this_update > chosen.this_update:
            until = min(until, c.this_update - _TICK)
    return chosen, until
