"""parse -> verify -> bind -> evaluate, over a registry of evidence formats.

:class:`AttestationVerifier` is what a TLS client holds: given the peer's certificate
(DER), the client nonce and the time, it returns :class:`~atls.policy.Accepted` or raises
an :class:`~atls.errors.AttestationError`. It does no I/O: trust anchors, collateral and
time are inputs, and the TLS layer sees only this object (it knows no platform).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from atls import binding as _binding
from atls.collateral._bundle import Collateral
from atls.errors import (
    AtlsError,
    AttestationError,
    ConfigurationError,
    EvidenceParseError,
    UnsupportedEvidenceError,
    VerificationError,
)
from atls.evidence import EvidenceFormat, Verified
from atls.policy import Accepted, Policy
from atls.trust import TrustStore
from atls.x509ext import (
    EVIDENCE_OID,
    STAPLED_COLLATERAL_OID,
    decode_collateral,
    decode_evidence,
)

__all__ = [
    "AttestationVerifier",
    "Verdict",
    "judge",
    "CertificateVerifier",
    "ParsedCertificate",
    "builtin_formats",
    "check_leaf",
    "parse_certificate",
    "verify_evidence",
]

MAX_CERTIFICATE = 1 << 20


class CertificateVerifier(Protocol):
    """What the TLS layer calls on the peer's leaf certificate (native or interop profile)."""

    def verify_certificate(
        self, cert_der: bytes, *, nonce: bytes, at: _dt.datetime, chain: tuple[bytes, ...] = ()
    ) -> Accepted | None:
        """Accepted (None only for non-attested baselines) or raise AttestationError.

        ``cert_der`` is the peer's leaf; ``chain`` any further certificates it sent (the
        native profile ignores them: trust comes from the evidence, never from a CA)."""
        ...

    def server_name(self, nonce: bytes) -> str | None:
        """The SNI the client sends for ``nonce`` (None: send none)."""
        ...

    @property
    def nonce_size(self) -> int:
        """0 for key-only binding (no nonce sent), else the nonce length in bytes."""
        ...


def builtin_formats(policy: Policy | None = None) -> dict[str, EvidenceFormat]:
    """The evidence formats atls ships, by the name the extension carries.

    With a ``policy`` whose ``[tpm]`` section lists ``ak_name`` values, the TPM format trusts
    exactly those attestation keys (besides AK certificate chains to the trust store): an AK
    pin is relying-party configuration, never something the peer can send."""
    from atls.evidence.snp import SNP_REPORT
    from atls.evidence.tdx import SGX_QUOTE, TDX_QUOTE
    from atls.evidence.tpm import TPM_QUOTE, TpmQuoteFormat

    tpm: EvidenceFormat = TPM_QUOTE
    rules = policy.platforms.get("tpm") if policy is not None else None
    if rules is not None and rules.values.get("ak_name"):
        tpm = TpmQuoteFormat(
            pinned_ak_names=[bytes.fromhex(n) for n in sorted(rules.values["ak_name"])]
        )
    return {f.name: f for f in (SNP_REPORT, TDX_QUOTE, SGX_QUOTE, tpm)}


@dataclass(frozen=True)
class ParsedCertificate:
    certificate: x509.Certificate
    spki: bytes
    extensions: Mapping[str, bytes]

    def extension(self, oid: x509.ObjectIdentifier) -> bytes | None:
        return self.extensions.get(oid.dotted_string)


def _spki_of(cert_der: bytes) -> bytes:
    """The SubjectPublicKeyInfo DER of a certificate, exactly as received."""
    return bytes(
        asn1_x509.Certificate.load(cert_der)["tbs_certificate"]["subject_public_key_info"].dump()
    )


def parse_certificate(cert_der: bytes) -> ParsedCertificate:
    """Parse a leaf certificate (size-capped); its SPKI is taken exactly as received."""
    if len(cert_der) > MAX_CERTIFICATE:
        raise EvidenceParseError("certificate too large", format="certificate", code="cert.parse")
    try:
        cert = x509.load_der_x509_certificate(cert_der)
        exts: dict[str, bytes] = {}
        for ext in cert.extensions:  # raises DuplicateExtension on a repeated OID
            if isinstance(ext.value, x509.UnrecognizedExtension):
                exts[ext.oid.dotted_string] = ext.value.value
        # the SPKI exactly as received (never a re-encoding of a parsed key)
        spki = asn1_x509.Certificate.load(cert_der)["tbs_certificate"][
            "subject_public_key_info"
        ].dump()
    except (ValueError, TypeError, x509.DuplicateExtension) as e:
        raise EvidenceParseError(
            f"not a valid X.509 certificate: {e}", format="certificate", code="cert.parse"
        ) from e
    return ParsedCertificate(cert, spki, exts)


def check_leaf(parsed: ParsedCertificate, at: _dt.datetime) -> None:
    """The leaf is self-issued, its self-signature verifies (OpenSSL does not check it), and
    it is valid at ``at``."""
    cert = parsed.certificate
    if cert.issuer != cert.subject:
        raise VerificationError("peer certificate is not self-issued", code="cert.not_self_issued")
    pub = cert.public_key()
    if not isinstance(pub, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey, ed25519.Ed25519PublicKey)):
        raise UnsupportedEvidenceError("unsupported leaf key type", code="cert.key_type")
    try:
        cert.verify_directly_issued_by(cert)
    except (InvalidSignature, ValueError, TypeError) as e:
        raise VerificationError(
            "peer certificate's self-signature is invalid", code="cert.signature"
        ) from e
    if not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
        raise VerificationError(
            f"peer certificate is not valid at {at.isoformat()} "
            f"({cert.not_valid_before_utc.isoformat()} .. {cert.not_valid_after_utc.isoformat()})",
            code="cert.validity",
        )


def verify_evidence(
    fmt: EvidenceFormat,
    evidence: bytes,
    *,
    trust: TrustStore,
    collateral: Collateral,
    at: _dt.datetime,
    allow_simulated: bool = False,
) -> Verified:
    """Run one format's verifier and refuse simulated evidence without the opt-in."""
    verified = fmt.verify(evidence, trust=trust, collateral=collateral, at=at)
    if verified.simulated and not allow_simulated:
        raise VerificationError(
            f"evidence is signed by the simulated root {verified.trust_root!r}; "
            "simulated evidence is trusted only with allow_simulated=True",
            code="simulated",
        )
    return verified


class _AuthenticationCache:
    """Successful authentications of exact certificate bytes (and nonce), for a bounded time.

    A static-mode server presents the same certificate to every client, so re-verifying its
    evidence on each handshake repeats identical work. An entry is reused only for the same
    certificate DER and nonce, verified against the very same trust store, collateral and
    formats (compared by identity), for at most ``ttl`` seconds after it was verified, never
    for a verification time before that, and only while the certificate itself is valid;
    failures are never cached, and the policy is evaluated on every use.
    """

    def __init__(self, ttl: float, size: int = 256) -> None:
        self.ttl = _dt.timedelta(seconds=ttl)
        self.size = size
        self._entries: OrderedDict[tuple[bytes, bytes], _CacheEntry] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(cert_der: bytes, nonce: bytes) -> tuple[bytes, bytes]:
        return hashlib.sha256(cert_der).digest(), bytes(nonce)

    def get(
        self, key: tuple[bytes, bytes], at: _dt.datetime, context: tuple[object, ...]
    ) -> tuple[Verified, str] | None:
        with self._lock:
            e = self._entries.get(key)
            if e is None:
                return None
            fresh = e.verified_at <= at <= e.verified_at + self.ttl
            if not (
                fresh
                and e.not_before <= at <= e.not_after
                and len(e.context) == len(context)
                and all(a is b for a, b in zip(e.context, context, strict=True))
            ):
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return e.verified, e.binding

    def put(
        self,
        key: tuple[bytes, bytes],
        at: _dt.datetime,
        context: tuple[object, ...],
        cert: x509.Certificate,
        verified: Verified,
        binding: str,
    ) -> None:
        with self._lock:
            self._entries[key] = _CacheEntry(
                at, cert.not_valid_before_utc, cert.not_valid_after_utc, context, verified, binding
            )
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)


@dataclass(frozen=True)
class _CacheEntry:
    verified_at: _dt.datetime
    not_before: _dt.datetime
    not_after: _dt.datetime
    context: tuple[object, ...]
    verified: Verified
    binding: str


class AttestationVerifier:
    """The native (``atls-v1``) certificate verifier.

    Fresh mode (``fresh=True``): the client sends a 32-byte nonce and requires the evidence
    to commit to it. Static mode: key-only binding, no nonce.

    ``reuse_seconds``: a successful authentication of the exact same certificate bytes and
    nonce is reused for this long (default 30 s; 0 disables), which is what makes static
    mode cheap: the server presents one certificate to every client. Fresh-mode nonces are
    never repeated, so fresh mode always verifies in full. The policy is evaluated on every
    handshake, and the certificate's own validity period is checked on every reuse.
    """

    def __init__(
        self,
        *,
        policy: Policy,
        trust: TrustStore,
        collateral: Collateral | None = None,
        fresh: bool = True,
        formats: Mapping[str, EvidenceFormat] | Iterable[EvidenceFormat] | None = None,
        allow_simulated: bool = False,
        reuse_seconds: float = 30.0,
    ) -> None:
        if reuse_seconds < 0:
            raise ConfigurationError("reuse_seconds must be >= 0", code="usage.reuse_seconds")
        self._cache = _AuthenticationCache(reuse_seconds) if reuse_seconds > 0 else None
        self.policy = policy
        self.trust = trust
        self.collateral = collateral or Collateral()
        self.fresh = fresh
        if formats is None:
            self.formats: Mapping[str, EvidenceFormat] = builtin_formats(policy)
        elif isinstance(formats, Mapping):
            self.formats = dict(formats)
        else:
            self.formats = {f.name: f for f in formats}
        self.allow_simulated = allow_simulated

    @property
    def nonce_size(self) -> int:
        return _binding.NONCE_SIZE if self.fresh else 0

    def server_name(self, nonce: bytes) -> str | None:
        from atls.tls._sni import encode_nonce_sni

        return encode_nonce_sni(nonce) if nonce else None

    def verify_certificate(
        self, cert_der: bytes, *, nonce: bytes, at: _dt.datetime, chain: tuple[bytes, ...] = ()
    ) -> Accepted:
        cache = self._cache
        hit = None
        # what an authentication depends on besides the bytes (attributes may be replaced)
        context = (self.trust, self.collateral, self.formats, self.allow_simulated, self.fresh)
        if cache is not None:
            key = cache.key(cert_der, nonce)
            hit = cache.get(key, at, context)
        if hit is None:
            verified, binding = self.authenticate_certificate(cert_der, nonce=nonce, at=at)
            if cache is not None:
                cert = x509.load_der_x509_certificate(cert_der)
                cache.put(key, at, context, cert, verified, binding)
        else:
            verified, binding = hit
        # 6. the policy judges the verified claims
        return self.policy.evaluate(verified, binding=binding)

    def authenticate_certificate(
        self, cert_der: bytes, *, nonce: bytes, at: _dt.datetime
    ) -> tuple[Verified, str]:
        """Steps 1-5 (everything but the policy): the verified evidence and binding name."""
        # 1. parse the leaf; it is self-issued, self-signed and valid now
        parsed = parse_certificate(cert_der)
        check_leaf(parsed, at)
        # 2. the evidence extension is required; stapled collateral is optional
        raw = parsed.extension(EVIDENCE_OID)
        if raw is None:
            raise VerificationError(
                "peer certificate carries no attestation evidence extension",
                code="cert.no_evidence",
            )
        ext = decode_evidence(raw)
        stapled_raw = parsed.extension(STAPLED_COLLATERAL_OID)
        collateral = self.collateral
        if stapled_raw is not None:
            collateral = collateral.merged(decode_collateral(stapled_raw))
        # 3. the format and the binding profile are known
        fmt = self.formats.get(ext.format)
        if fmt is None:
            raise UnsupportedEvidenceError(
                f"evidence format {ext.format!r} is not supported (known: {sorted(self.formats)})",
                code="evidence.format",
            )
        if ext.binding != _binding.ATLS_V1:
            raise UnsupportedEvidenceError(
                f"binding profile {ext.binding!r} is not supported by the native verifier",
                code="binding.profile",
            )
        # 4. cryptographic verification of the evidence (chain, signature, TCB)
        verified = verify_evidence(
            fmt,
            ext.evidence,
            trust=self.trust,
            collateral=collateral,
            at=at,
            allow_simulated=self.allow_simulated,
        )
        # 5. the evidence commits to this certificate's key (and our nonce)
        if self.fresh and len(nonce) != _binding.NONCE_SIZE:
            raise VerificationError("fresh mode needs a 32-byte client nonce", code="binding.nonce")
        _binding.check_atls_v1(verified.report_data, parsed.spki, nonce if self.fresh else b"")
        return verified, ext.binding


@dataclass
class Verdict:
    """The outcome of judging one piece of evidence, in the ``atls verify --json`` shape."""

    platform: str | None
    verified: Verified | None = None
    accepted: Accepted | None = None
    errors: list[AtlsError] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def authentic(self) -> bool:
        return self.verified is not None

    def to_json(self) -> dict[str, Any]:
        v = self.verified
        unchecked = list(self.accepted.unchecked if self.accepted else v.unchecked if v else [])
        unchecked += self.notes
        return {
            "verdict": "accepted" if self.accepted is not None else "rejected",
            "platform": self.platform,
            "authentic": self.authentic,
            "simulated": v.simulated if v else None,
            "trust_root": v.trust_root if v else None,
            "tcb_status": v.tcb_status if v else None,
            "advisory_ids": list(v.advisory_ids) if v else [],
            "claims": dict(v.claims) if v else {},
            "unchecked": unchecked,
            "errors": [e.to_json() for e in self.errors],
        }


def _sniff(data: bytes, formats: Mapping[str, EvidenceFormat], platform: str) -> EvidenceFormat:
    candidates = [
        f for f in formats.values() if platform in ("auto", f.platform, f.name) and f.sniff(data)
    ]
    if not candidates:
        raise UnsupportedEvidenceError(
            f"no evidence format ({platform}) recognises this input", code="evidence.unknown"
        )
    return candidates[0]


def judge(
    data: bytes,
    *,
    trust: TrustStore,
    collateral: Collateral,
    at: _dt.datetime,
    policy: Policy,
    platform: str = "auto",
    allow_simulated: bool = False,
    nonce: bytes = b"",
    formats: Mapping[str, EvidenceFormat] | None = None,
    event_log: bytes | None = None,
) -> Verdict:
    """Verify raw evidence or an attested certificate (DER) and evaluate the policy.

    ``event_log`` (TDX: a dstack JSON log or a CCEL) must replay to the verified RTMRs;
    its facts then join the claims (:func:`atls.evidence.eventlog.with_event_log`).
    Never raises an :class:`AttestationError`: failures are collected in the verdict.
    """
    formats = builtin_formats(policy) if formats is None else formats
    verdict = Verdict(platform=None if platform == "auto" else platform)
    binding = ""
    try:
        if _looks_like_certificate(data):
            av = AttestationVerifier(
                policy=policy,
                trust=trust,
                collateral=collateral,
                fresh=bool(nonce),
                formats=formats,
                allow_simulated=allow_simulated,
            )
            verified, binding = av.authenticate_certificate(data, nonce=nonce, at=at)
        else:
            fmt = _sniff(data, formats, platform)
            verdict.platform = fmt.platform
            verified = verify_evidence(
                fmt,
                data,
                trust=trust,
                collateral=collateral,
                at=at,
                allow_simulated=allow_simulated,
            )
        verdict.platform = verified.platform
        verdict.verified = verified
        if event_log is not None:
            from atls.evidence.eventlog import with_event_log

            verified = with_event_log(verified, event_log)
            verdict.verified = verified
        verdict.accepted = policy.evaluate(verified, binding=binding)
        if not binding:
            verdict.notes.append(
                "binding: raw evidence is not bound to a TLS key here; report_data is shown "
                "as a claim only"
            )
    except AttestationError as e:
        verdict.errors.append(e)
    return verdict


def _looks_like_certificate(data: bytes) -> bool:
    if not data.startswith(b"\x30"):
        return False
    try:
        x509.load_der_x509_certificate(data)
    except ValueError:
        return False
    return True
