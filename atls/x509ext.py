"""The native attestation certificate extensions and ``issue_attested_cert()``.

OIDs live under the project's UUID arc ``2.25.33947697624131774356618238494520470118``:

* ``.1`` attestation evidence::

      AttestationEvidence ::= SEQUENCE {
          version   INTEGER (1),
          format    UTF8String,    -- evidence format, e.g. "sev-snp-report", "tdx-quote"
          binding   UTF8String,    -- binding profile, e.g. "atls-v1"
          evidence  OCTET STRING } -- the exact evidence bytes

* ``.2`` stapled collateral (so an offline client can verify)::

      StapledCollateral ::= SEQUENCE {
          version      INTEGER (1),
          certificates SEQUENCE OF OCTET STRING,   -- DER certificates (VCEK, ASK, PCK chain...)
          crls         SEQUENCE OF OCTET STRING,   -- DER CRLs
          documents    SEQUENCE OF Document }
      Document ::= SEQUENCE {
          kind UTF8String, body OCTET STRING, signature OCTET STRING,
          issuerChain SEQUENCE OF OCTET STRING }

Both are non-critical (stock OpenSSL peers reject unknown critical extensions); an atls
client requires ``.1``. Decoding is strict (exact DER, version 1, size caps) and every
failure is an :class:`~atls.errors.EvidenceParseError` with format ``x509ext``.
"""

from __future__ import annotations

import datetime as _dt
import functools
from dataclasses import dataclass

from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from atls.collateral._bundle import Collateral, Document
from atls.errors import EvidenceParseError

__all__ = [
    "ARC",
    "EVIDENCE_OID",
    "MAX_COLLATERAL_EXTENSION",
    "MAX_EVIDENCE_EXTENSION",
    "STAPLED_COLLATERAL_OID",
    "AttestationEvidence",
    "decode_collateral",
    "decode_evidence",
    "encode_collateral",
    "encode_evidence",
    "issue_attested_cert",
    "spki_der",
]

ARC = "2.25.33947697624131774356618238494520470118"
EVIDENCE_OID = x509.ObjectIdentifier(ARC + ".1")
STAPLED_COLLATERAL_OID = x509.ObjectIdentifier(ARC + ".2")

#: Size caps, checked before any decoding.
MAX_EVIDENCE_EXTENSION = 256 * 1024
MAX_COLLATERAL_EXTENSION = 512 * 1024
_MAX_ITEMS = 64
_VERSION = 1


class _Blobs(core.SequenceOf):  # type: ignore[misc]
    _child_spec = core.OctetString


class _Evidence(core.Sequence):  # type: ignore[misc]
    _fields = [  # noqa: RUF012 - asn1crypto's declarative spec
        ("version", core.Integer),
        ("format", core.UTF8String),
        ("binding", core.UTF8String),
        ("evidence", core.OctetString),
    ]


class _Document(core.Sequence):  # type: ignore[misc]
    _fields = [  # noqa: RUF012
        ("kind", core.UTF8String),
        ("body", core.OctetString),
        ("signature", core.OctetString),
        ("issuer_chain", _Blobs),
    ]


class _Documents(core.SequenceOf):  # type: ignore[misc]
    _child_spec = _Document


class _Collateral(core.Sequence):  # type: ignore[misc]
    _fields = [  # noqa: RUF012
        ("version", core.Integer),
        ("certificates", _Blobs),
        ("crls", _Blobs),
        ("documents", _Documents),
    ]


@dataclass(frozen=True)
class AttestationEvidence:
    """The decoded ``.1`` extension."""

    format: str
    binding: str
    evidence: bytes


def _err(msg: str, field: str | None = None) -> EvidenceParseError:
    return EvidenceParseError(msg, format="x509ext", field=field, code="x509ext.parse")


def _strict_load(spec: type[core.Sequence], data: bytes, cap: int, what: str) -> core.Sequence:
    if len(data) > cap:
        raise _err(f"{what} extension is {len(data)} bytes; the cap is {cap}")
    try:
        value = spec.load(data, strict=True)
        value.native  # force full parsing of every field  # noqa: B018
    except (ValueError, TypeError, OverflowError) as e:
        raise _err(f"{what} extension is not valid DER: {e}") from e
    if value.dump(force=True) != data:
        raise _err(f"{what} extension is not in canonical DER")
    return value


def encode_evidence(fmt: str, binding: str, evidence: bytes) -> bytes:
    """The DER of the evidence extension (.1)."""
    return bytes(
        _Evidence(
            {"version": _VERSION, "format": fmt, "binding": binding, "evidence": evidence}
        ).dump()
    )


@functools.lru_cache(maxsize=64)
def decode_evidence(data: bytes) -> AttestationEvidence:
    """Strictly decode the evidence extension (.1): size cap, canonical DER, version 1.

    Memoized on the exact bytes (the result is immutable; errors are not cached): a
    static-mode server sends the same extension on every handshake."""
    v = _strict_load(_Evidence, data, MAX_EVIDENCE_EXTENSION, "evidence")
    if v["version"].native != _VERSION:
        raise EvidenceParseError(
            f"evidence extension version {v['version'].native} is not supported",
            format="x509ext",
            field="version",
            code="x509ext.version",
        )
    return AttestationEvidence(v["format"].native, v["binding"].native, v["evidence"].native)


def encode_collateral(c: Collateral) -> bytes:
    """The DER of the stapled-collateral extension (.2)."""
    return bytes(
        _Collateral(
            {
                "version": _VERSION,
                "certificates": list(c.certificates),
                "crls": list(c.crls),
                "documents": [
                    {
                        "kind": d.kind,
                        "body": d.body,
                        "signature": d.signature,
                        "issuer_chain": list(d.issuer_chain),
                    }
                    for d in c.documents
                ],
            }
        ).dump()
    )


@functools.lru_cache(maxsize=64)
def decode_collateral(data: bytes) -> Collateral:
    """Strictly decode the stapled-collateral extension (.2) into Collateral (memoized on
    the exact bytes, like :func:`decode_evidence`)."""
    v = _strict_load(_Collateral, data, MAX_COLLATERAL_EXTENSION, "stapled collateral")
    if v["version"].native != _VERSION:
        raise EvidenceParseError(
            "stapled collateral version is not supported",
            format="x509ext",
            field="version",
            code="x509ext.version",
        )
    n = v.native
    if max(len(n["certificates"]), len(n["crls"]), len(n["documents"])) > _MAX_ITEMS:
        raise _err("stapled collateral has too many items")
    return Collateral(
        tuple(n["certificates"]),
        tuple(n["crls"]),
        tuple(
            Document(d["kind"], d["body"], d["signature"], tuple(d["issuer_chain"]))
            for d in n["documents"]
        ),
        ("stapled",),
    )


def spki_der(key: ec.EllipticCurvePublicKey | x509.Certificate) -> bytes:
    """DER SubjectPublicKeyInfo of a public key or certificate."""
    pub = key.public_key() if isinstance(key, x509.Certificate) else key
    return pub.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def issue_attested_cert(
    key: ec.EllipticCurvePrivateKey,
    *,
    evidence_format: str,
    evidence: bytes,
    binding: str,
    collateral: Collateral | None = None,
    not_before: _dt.datetime,
    lifetime: _dt.timedelta,
    common_name: str = "atls attested server",
    extra_extensions: tuple[x509.Extension[x509.ExtensionType], ...] = (),
) -> x509.Certificate:
    """A self-signed certificate for ``key`` carrying the evidence (and stapled collateral).

    The caller computed ``evidence`` over the binding of ``spki_der(key.public_key())``.
    """
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + lifetime)
        .add_extension(
            x509.UnrecognizedExtension(
                EVIDENCE_OID, encode_evidence(evidence_format, binding, evidence)
            ),
            critical=False,
        )
    )
    if collateral:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(STAPLED_COLLATERAL_OID, encode_collateral(collateral)),
            critical=False,
        )
    for ext in extra_extensions:
        builder = builder.add_extension(ext.value, critical=ext.critical)
    return builder.sign(key, hashes.SHA256())
