"""AK certificate chains: an X.509 certificate for the AK, issued (through intermediates) by a
trust anchor (RFC 5280 path validation, reduced to what TPM AK chains use).

Checklist of :func:`verify_ak_chain`::

    1. the leaf parses, is not a CA, and (if it has keyUsage) allows digitalSignature
    2. the leaf's public key equals the AK's public key (SubjectPublicKeyInfo DER)
    3. a path leaf -> intermediates -> anchor is built from the evidence's certificates and
       ``collateral.certificates``; each link: issuer name matches, the signature verifies
       with the issuer's key, the issuer is a CA (basicConstraints) allowed to sign
       certificates (keyUsage keyCertSign if present), pathLenConstraint respected
    4. the path ends in a trust anchor of an accepted vendor (``google``, ``tpm``); the
       anchor is a pinned root or a simulated one (then ``simulated``)
    5. every certificate (and the anchor) is valid at ``at``
    6. no certificate has a critical extension atls does not understand
    7. revocation: for each non-anchor certificate whose issuer published a CRL in
       ``collateral.crls`` (signature by the issuer, valid at ``at``), the serial is not
       listed; certificates without a CRL are reported as unchecked (``ak_cert.crl``)

Verified paths are cached by the SHA-256 of the exact certificates, anchor and CRLs used,
together with the window in which all of them are valid, so a warm verification of the same
AK chain checks no certificate signature.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

from asn1crypto import crl as _asn1_crl
from asn1crypto import parser as _asn1_parser
from asn1crypto import x509 as _asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtensionOID

from atls.collateral._bundle import Collateral
from atls.errors import EvidenceParseError, VerificationError
from atls.trust import Anchor, TrustStore

__all__ = [
    "AK_ANCHOR_VENDORS",
    "GCE_INSTANCE_INFO_OID",
    "AkChain",
    "ChainCache",
    "DEFAULT_CHAIN_CACHE",
    "gce_instance_info",
    "load_certificate",
    "verify_ak_chain",
]

#: Trust-store vendors whose anchors may issue AK certificates.
AK_ANCHOR_VENDORS: tuple[str, ...] = ("google", "tpm")
#: Google Compute Engine instance information in GCE AK/EK certificates.
GCE_INSTANCE_INFO_OID = "1.3.6.1.4.1.11129.2.1.21"
MAX_CHAIN = 8
MAX_CERTIFICATE = 16 * 1024
_UNDERSTOOD_CRITICAL = {
    ExtensionOID.BASIC_CONSTRAINTS.dotted_string,
    ExtensionOID.KEY_USAGE.dotted_string,
    ExtensionOID.EXTENDED_KEY_USAGE.dotted_string,
    ExtensionOID.SUBJECT_ALTERNATIVE_NAME.dotted_string,  # TCG: required when subject is empty
    ExtensionOID.SUBJECT_DIRECTORY_ATTRIBUTES.dotted_string,  # TCG TPM attributes
    ExtensionOID.CERTIFICATE_POLICIES.dotted_string,
}


@dataclass(frozen=True)
class AkChain:
    """A verified AK chain: the anchor, the path (leaf first, anchor excluded)."""

    anchor: Anchor
    path: tuple[x509.Certificate, ...]
    crl_checked: bool
    not_before: datetime
    not_after: datetime
    #: claims about the AK certificate (computed once, cached with the chain)
    claims: Mapping[str, Any] = field(default_factory=dict)

    @property
    def leaf(self) -> x509.Certificate:
        return self.path[0]


@dataclass(frozen=True, eq=False)
class _Cert:
    """A certificate with its raw subject/issuer DER (compared byte-wise; cryptography's
    Name objects warn on the over-long common names of Google's CAs)."""

    cert: x509.Certificate
    der: bytes
    subject: bytes
    issuer: bytes
    label: str


def load_certificate(der: bytes, what: str) -> x509.Certificate:
    """Parse one DER certificate (size-capped) or raise ``tpm.ak_cert.parse``."""
    return _load(der, what).cert


def _load(der: bytes, what: str) -> _Cert:
    if len(der) > MAX_CERTIFICATE:
        raise EvidenceParseError(
            f"{what}: {len(der)} bytes (max {MAX_CERTIFICATE})",
            format="tpm.ak_cert",
            code="tpm.ak_cert.parse",
        )
    try:
        if _asn1_x509.Certificate.load(der).serial_number <= 0:
            # RFC 5280 requires a positive serial; cryptography will soon refuse to load one
            # (AMD's VCEKs, which may share a collateral bundle with TPM chains, use 0)
            raise ValueError("serial number is not positive")
        cert = x509.load_der_x509_certificate(der)
        _ = cert.extensions  # parse them now: malformed extensions are parse errors
        _ = cert.public_key()  # and the key: an unknown or invalid key is a parse error
        a = _asn1_x509.Certificate.load(der)
        subject = a.subject
        issuer = a.issuer
        label = subject.human_friendly or f"serial {cert.serial_number:#x}"
        wrapped = _Cert(cert, bytes(der), subject.dump(), issuer.dump(), label)
    except (
        ValueError,
        TypeError,
        x509.DuplicateExtension,
        x509.InvalidVersion,
        UnsupportedAlgorithm,
    ) as e:
        raise EvidenceParseError(
            f"{what} is not a valid X.509 certificate: {e}",
            format="tpm.ak_cert",
            code="tpm.ak_cert.parse",
        ) from e
    return wrapped


def _spki(key: Any) -> bytes:
    return bytes(
        key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def _ext(cert: x509.Certificate, cls: type[Any]) -> Any:
    try:
        return cert.extensions.get_extension_for_class(cls).value
    except x509.ExtensionNotFound:
        return None


def _check_critical(c: _Cert, what: str) -> None:
    # 6. unknown critical extensions
    for e in c.cert.extensions:
        if e.critical and e.oid.dotted_string not in _UNDERSTOOD_CRITICAL:
            raise VerificationError(
                f"{what} has a critical extension atls does not process ({e.oid.dotted_string})",
                code="tpm.ak_cert.critical_extension",
            )


def _check_validity(c: _Cert, at: datetime, what: str) -> None:
    # 5. validity at the verification time
    cert = c.cert
    if not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
        raise VerificationError(
            f"{what} is not valid at {at.isoformat()} ({cert.not_valid_before_utc.isoformat()}"
            f" .. {cert.not_valid_after_utc.isoformat()})",
            code="tpm.ak_cert.validity",
        )


def _signed_by(c: _Cert, issuer: _Cert) -> bool:
    if c.issuer != issuer.subject:
        return False
    try:
        c.cert.verify_directly_issued_by(issuer.cert)
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


def _check_ca(c: _Cert, below: int, what: str) -> None:
    bc = _ext(c.cert, x509.BasicConstraints)
    if bc is None or not bc.ca:
        raise VerificationError(f"{what} is not a CA certificate", code="tpm.ak_cert.chain")
    if bc.path_length is not None and below > bc.path_length:
        raise VerificationError(
            f"{what} has pathLenConstraint {bc.path_length} but {below} CA certificates follow",
            code="tpm.ak_cert.chain",
        )
    ku = _ext(c.cert, x509.KeyUsage)
    if ku is not None and not ku.key_cert_sign:
        raise VerificationError(
            f"{what} may not sign certificates (keyUsage)", code="tpm.ak_cert.chain"
        )


@dataclass(frozen=True, eq=False)
class _Crl:
    crl: x509.CertificateRevocationList
    der: bytes
    issuer: bytes


def _load_crls(ders: Sequence[bytes]) -> list[_Crl]:
    out: list[_Crl] = []
    for d in ders[:64]:
        try:
            crl = x509.load_der_x509_crl(d)
            issuer = _asn1_crl.CertificateList.load(d)["tbs_cert_list"]["issuer"].dump()
            _ = list(crl)  # parse the revoked entries now, not while checking a serial
        except (ValueError, TypeError, x509.InvalidVersion, UnsupportedAlgorithm):
            continue  # collateral for other platforms may hold anything
        out.append(_Crl(crl, bytes(d), issuer))
    return out


def _crl_for(issuer: _Cert, crls: Sequence[_Crl], at: datetime) -> _Crl | None:
    """The newest CRL of ``issuer`` (signature checked) valid at ``at``; None if the issuer
    has none; ``tpm.ak_cert.crl`` if all of its CRLs are outside their validity."""
    signed: list[_Crl] = []
    for c in crls:
        if c.issuer != issuer.subject:
            continue
        try:
            ok = c.crl.is_signature_valid(issuer.cert.public_key())  # type: ignore[arg-type]
        except (TypeError, ValueError, UnsupportedAlgorithm):
            ok = False
        if ok:
            signed.append(c)
    fresh = [
        c
        for c in signed
        if c.crl.last_update_utc <= at
        and (c.crl.next_update_utc is None or at <= c.crl.next_update_utc)
    ]
    if fresh:
        # the newest one: an older CRL (e.g. one stapled by the peer) cannot hide a revocation
        return max(fresh, key=lambda c: c.crl.last_update_utc)
    if signed:
        raise VerificationError(
            f"the CRLs of {issuer.label!r} are not valid at {at.isoformat()}",
            code="tpm.ak_cert.crl",
        )
    return None


class ChainCache:
    """Verified AK paths keyed by the exact bytes used; bounded LRU, thread-safe."""

    def __init__(self, maxsize: int = 256) -> None:
        self._maxsize = maxsize
        self._lock = threading.Lock()
        self._items: OrderedDict[bytes, AkChain] = OrderedDict()

    def get(self, key: bytes, at: datetime) -> AkChain | None:
        with self._lock:
            hit = self._items.get(key)
            if hit is None:
                return None
            self._items.move_to_end(key)
        return hit if hit.not_before <= at <= hit.not_after else None

    def put(self, key: bytes, chain: AkChain) -> None:
        with self._lock:
            self._items[key] = chain
            self._items.move_to_end(key)
            while len(self._items) > self._maxsize:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


DEFAULT_CHAIN_CACHE = ChainCache()


def _cache_key(groups: Iterable[Iterable[bytes]]) -> bytes:
    h = hashlib.sha256(b"atls tpm ak chain v1\0")
    for group in groups:
        items = list(group)
        h.update(len(items).to_bytes(4, "big"))
        for item in items:
            h.update(hashlib.sha256(item).digest())
    return h.digest()


def verify_ak_chain(
    chain: Sequence[bytes],
    ak_key: Any,
    *,
    trust: TrustStore,
    collateral: Collateral,
    at: datetime,
    vendors: Sequence[str] = AK_ANCHOR_VENDORS,
    cache: ChainCache | None = DEFAULT_CHAIN_CACHE,
) -> AkChain:
    """Verify ``chain`` (AK certificate first, then intermediates, DER) for ``ak_key``.

    See the module docstring for the checklist. Errors: ``tpm.ak_cert.parse``,
    ``tpm.ak_cert.key_mismatch``, ``tpm.ak_cert.usage``, ``tpm.ak_cert.chain``,
    ``tpm.ak_cert.no_anchor``, ``tpm.ak_cert.validity``, ``tpm.ak_cert.critical_extension``,
    ``tpm.ak_cert.revoked``, ``tpm.ak_cert.crl``."""
    if not chain:
        raise VerificationError("no AK certificate", code="tpm.ak_cert.chain")
    if len(chain) > MAX_CHAIN:
        raise VerificationError(
            f"{len(chain)} AK certificates (max {MAX_CHAIN})", code="tpm.ak_cert.chain"
        )
    anchors = [a for v in vendors for a in trust.by_vendor(v)]
    ak_spki = _spki(ak_key)
    key = _cache_key(
        (chain, collateral.certificates, [a.der for a in anchors], collateral.crls, [ak_spki])
    )
    if cache is not None:
        hit = cache.get(key, at)
        if hit is not None:
            return hit
    leaf = _load(chain[0], "AK certificate")
    pool = [_load(d, f"AK chain certificate {i + 1}") for i, d in enumerate(chain[1:])]
    for i, d in enumerate(collateral.certificates[:64]):
        try:
            pool.append(_load(d, f"collateral certificate {i}"))
        except EvidenceParseError:
            continue  # collateral for other platforms may hold anything
    roots = [_load(a.der, f"anchor {a.name}") for a in anchors]
    # 1. the leaf is an end-entity signing certificate
    bc = _ext(leaf.cert, x509.BasicConstraints)
    if bc is not None and bc.ca:
        raise VerificationError("the AK certificate is a CA certificate", code="tpm.ak_cert.usage")
    ku = _ext(leaf.cert, x509.KeyUsage)
    if ku is not None and not ku.digital_signature:
        raise VerificationError(
            "the AK certificate's keyUsage does not allow digitalSignature",
            code="tpm.ak_cert.usage",
        )
    # 2. the certified key is the AK
    if _spki(leaf.cert.public_key()) != ak_spki:
        raise VerificationError(
            "the AK certificate certifies another key than the evidence's AK",
            code="tpm.ak_cert.key_mismatch",
        )
    # 3.-4. build the path up to an anchor
    path = [leaf]
    found: int | None = None
    current = leaf
    while True:
        found = next((i for i, r in enumerate(roots) if _signed_by(current, r)), None)
        if found is not None or len(path) >= MAX_CHAIN:
            break
        nxt = next(
            (
                c
                for c in pool
                if all(c.der != p.der for p in path)
                and c.subject != c.issuer
                and _signed_by(current, c)
            ),
            None,
        )
        if nxt is None:
            break
        path.append(nxt)
        current = nxt
    if found is None:
        raise VerificationError(
            f"the AK certificate chain does not lead to a trusted {'/'.join(vendors)} root "
            f"(stuck at the issuer of {current.label!r})",
            code="tpm.ak_cert.no_anchor",
        )
    anchor, root = anchors[found], roots[found]
    for n, c in enumerate(path[1:], start=1):
        _check_ca(c, n - 1, f"AK chain certificate {c.label!r}")
    _check_ca(root, len(path) - 1, f"anchor {anchor.name}")
    # 5.-6. validity and critical extensions
    for c in [*path, root]:
        what = "the AK certificate" if c is leaf else f"certificate {c.label!r}"
        _check_validity(c, at, what)
        _check_critical(c, what)
    # 7. revocation
    crls = _load_crls(collateral.crls)
    crl_checked = True
    used: list[_Crl] = []
    for c, issuer in zip(path, [*path[1:], root], strict=True):
        crl = _crl_for(issuer, crls, at)
        if crl is None:
            crl_checked = False
            continue
        used.append(crl)
        if crl.crl.get_revoked_certificate_by_serial_number(c.cert.serial_number) is not None:
            raise VerificationError(
                f"certificate {c.label!r} (serial {c.cert.serial_number:#x}) is revoked",
                code="tpm.ak_cert.revoked",
            )
    certs = [c.cert for c in (*path, root)]
    not_after = min(c.not_valid_after_utc for c in certs)
    # a CRL's own window bounds how long the revocation answer holds
    for u in used:
        if u.crl.next_update_utc is not None:
            not_after = min(not_after, u.crl.next_update_utc)
    info: dict[str, Any] = {
        "serial": format(leaf.cert.serial_number, "x"),
        "not_before": leaf.cert.not_valid_before_utc.isoformat(),
        "not_after": leaf.cert.not_valid_after_utc.isoformat(),
        "chain_length": len(path),
        "root": anchor.name,
        "crl_checked": crl_checked,
        "sha256": hashlib.sha256(leaf.der).hexdigest(),
    }
    gce = gce_instance_info(leaf.cert)
    if gce is not None:
        info["gce_instance"] = gce
    result = AkChain(
        anchor,
        tuple(c.cert for c in path),
        crl_checked,
        max([*(c.not_valid_before_utc for c in certs), *(u.crl.last_update_utc for u in used)]),
        not_after,
        MappingProxyType(info),
    )
    if cache is not None:
        cache.put(key, result)
    return result


def _tlvs(data: bytes) -> list[tuple[int, int, bytes]]:
    """(class, tag, contents) of each DER element in ``data``."""
    out: list[tuple[int, int, bytes]] = []
    pos = 0
    while pos < len(data):
        cls, _method, tag, header, contents, trailer = _asn1_parser.parse(data[pos:])
        out.append((cls, tag, contents))
        pos += len(header) + len(contents) + len(trailer)
    return out


def gce_instance_info(cert: x509.Certificate) -> dict[str, Any] | None:
    """Google Compute Engine instance information (zone, project, instance) from an AK
    certificate's extension ``1.3.6.1.4.1.11129.2.1.21``, or None. Malformed -> None (the
    extension is informational; it never decides trust)."""
    try:
        raw = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(GCE_INSTANCE_INFO_OID))
    except x509.ExtensionNotFound:
        return None
    value = raw.value
    if not isinstance(value, x509.UnrecognizedExtension):
        return None
    try:
        cls, _method, tag, _h, body, _t = _asn1_parser.parse(value.value, strict=True)
        if (cls, tag) != (0, 16):
            return None
        items = _tlvs(body)
        kinds = [(c, t) for c, t, _ in items[:5]]
        if kinds != [(0, 12), (0, 2), (0, 12), (0, 2), (0, 12)]:
            return None
        info: dict[str, Any] = {
            "zone": items[0][2].decode("utf-8"),
            "project_number": int.from_bytes(items[1][2], "big", signed=True),
            "project_id": items[2][2].decode("utf-8"),
            "instance_id": int.from_bytes(items[3][2], "big", signed=True),
            "instance_name": items[4][2].decode("utf-8"),
        }
        if len(items) > 5 and items[5][:2] == (2, 0):
            (props,) = _tlvs(items[5][2])
            for pcls, ptag, inner in _tlvs(props[2]):
                if pcls != 2:
                    continue
                ((icls, itag, ival),) = _tlvs(inner)
                if ptag == 0 and (icls, itag) == (0, 2):
                    info["security_version"] = int.from_bytes(ival, "big", signed=True)
                elif ptag == 1 and (icls, itag) == (0, 1) and len(ival) == 1:
                    info["is_production"] = ival != b"\x00"
        return info
    except (ValueError, TypeError, UnicodeDecodeError):
        return None
