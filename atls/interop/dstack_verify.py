"""Verify dstack RA-TLS certificates and evidence; issue dstack-compatible certificates.

Verification of a dstack TDX attestation (:func:`verify_dstack_tdx`), in order:

1. The attestation is for Intel TDX (other dstack platforms: ``UnsupportedEvidenceError``).
2. Binding: ``report_data == SHA-512("ratls-cert:" || SPKI)`` for the certificate's key
   (when verifying a certificate; key-only binding, no freshness).
3. The TDX quote verifies with the DCAP verifier (trust, collateral and time are arguments);
   simulated roots only with ``allow_simulated``.
4. The quote's signed REPORTDATA equals the attestation's ``report_data``.
5. Not a debug TD (``TD_ATTRIBUTES`` bit 0) unless the policy's ``[tdx] allow_debug``;
   ``MRSIGNERSEAM`` is zero (Intel's TDX module); TD 1.5: ``MRSERVICETD`` is zero.
6. The event log: imr in 0..3; runtime events verified and their (stripped) digests
   recomputed; the log's runtime events equal the attestation's ``runtime_events``.
7. RTMR3 replayed from the log equals the quote's RTMR3.
8. Runtime events become ``claims["events"]`` (``compose-hash``, ``app-id``,
   ``instance-id``, ``key-provider``, ``os-image-hash``...; payload hex), which the policy's
   ``[tdx] events`` rule pins.

What is *not* attested is reported under ``issuer_asserted`` (never under claims): the
``vm_config`` string of the attestation and the app-id (``.3``), usage (``.4``) and
app-info (``.9``) certificate extensions, which only the KMS-issued chain vouches for.
RTMR0-2 are not replayed (certificates carry stripped logs); pin ``mr_td``/``rtmr0-2``.

Error codes: ``dstack.binding``, ``dstack.report_data``, ``dstack.debug``,
``dstack.mr_signer_seam``, ``dstack.mr_servicetd``, ``dstack.rtmr3_mismatch``,
``dstack.runtime_events``, ``dstack.event_log``, ``dstack.event_log_missing``,
``dstack.platform``, ``cert.no_evidence``, ``cert.validity``, plus those of the TDX verifier
and the event-log checks (``eventlog.dstack.*``).
"""

from __future__ import annotations

import datetime as _dt
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import msgpack
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from atls.collateral import Collateral
from atls.errors import (
    AttesterError,
    EvidenceParseError,
    UnsupportedEvidenceError,
    VerificationError,
)
from atls.evidence import Verified
from atls.evidence.eventlog import (
    RUNTIME_EVENT_TYPE,
    DstackEvent,
    parse_dstack_event_log,
    replay_dstack,
    verify_dstack_events,
    with_dstack_events,
)
from atls.evidence.tdx import TDX_QUOTE, parse_quote
from atls.interop._profile import ProfileBase
from atls.interop.dstack import (
    OID_APP_ID,
    OID_APP_INFO,
    OID_ATTESTATION,
    OID_EVENT_LOG,
    OID_QUOTE,
    OID_USAGE,
    DstackAttestation,
    TdxEvent,
    decode_attestation,
    dstack_report_data,
    encode_attestation_v0,
    unwrap_extension,
    wrap_extension,
)
from atls.pipeline import parse_certificate
from atls.policy import Accepted, Policy
from atls.trust import TrustStore
from atls.x509ext import spki_der

__all__ = [
    "DstackAccepted",
    "DstackEvidence",
    "DstackIssuance",
    "DstackVerifier",
    "attestation_from_get_quote",
    "evaluate_with_events",
    "verify_dstack_tdx",
]

BINDING = "dstack"
_ZERO48 = bytes(48)
NOTE_RTMR012 = (
    "dstack: RTMR0-2 are not replayed from the (stripped) event log; pin mr_td and rtmr0-2"
)
NOTE_KEY_ONLY = "dstack: key-only binding (no client nonce): no per-connection freshness"
NOTE_ISSUER = (
    "dstack: issuer_asserted values (vm_config, app-id/usage/app-info extensions) are not "
    "attested and the certificate chain to the KMS root is not checked"
)


@dataclass(frozen=True)
class DstackEvidence:
    """A verified dstack TDX attestation: the verified quote, the replayed runtime events
    and what is merely asserted."""

    verified: Verified
    attestation: DstackAttestation
    issuer_asserted: Mapping[str, Any]
    checks: tuple[str, ...]
    unchecked: tuple[str, ...]

    @property
    def events(self) -> Mapping[str, Any]:
        """The replayed runtime events (``verified.claims["events"]``)."""
        return MappingProxyType(dict(self.verified.claims["events"]))


@dataclass(frozen=True)
class DstackAccepted(Accepted):
    """:class:`~atls.policy.Accepted` plus the replayed dstack events (attested: they replay
    to the quote's RTMR3) and the issuer-asserted values (not attested)."""

    issuer_asserted: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def events(self) -> Mapping[str, Any]:
        """The replayed runtime events (part of the verified claims)."""
        return MappingProxyType(dict(self.verified.claims.get("events", {})))

    def to_json(self) -> dict[str, Any]:
        out = super().to_json()
        out["issuer_asserted"] = dict(self.issuer_asserted)
        return out


def _to_dstack_events(events: Sequence[TdxEvent]) -> tuple[DstackEvent, ...]:
    out = []
    for i, e in enumerate(events):
        if not 0 <= e.imr <= 3:
            raise EvidenceParseError(
                f"event[{i}] imr {e.imr} is not an RTMR index (0..3)",
                format="dstack",
                field="imr",
                code="dstack.event_log",
            )
        if len(e.digest) not in (0, 48):
            raise EvidenceParseError(
                f"event[{i}] digest is {len(e.digest)} bytes (SHA-384 is 48)",
                format="dstack",
                field="digest",
                code="dstack.event_log",
            )
        out.append(
            DstackEvent(
                e.imr, e.event_type, e.digest, e.event, e.event_payload, e.version, e.preimage
            )
        )
    return tuple(out)


def _json_safe(v: Any, depth: int = 0) -> Any:
    if depth > 16:
        return repr(v)
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, dict):
        return {str(k): _json_safe(x, depth + 1) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x, depth + 1) for x in v]
    if v is None or isinstance(v, (str, int, float, bool)):
        return v
    return repr(v)


def _vm_config(config: str) -> Any:
    try:
        return json.loads(config) if config else None
    except ValueError:
        return config


def attestation_from_get_quote(doc: str | bytes | Mapping[str, Any]) -> DstackAttestation:
    """A dstack guest-agent ``GetQuote`` response (``quote`` hex, ``event_log`` JSON,
    ``report_data`` hex, optional ``vm_config``) as a TDX :class:`DstackAttestation`."""
    obj: Any = doc
    if isinstance(doc, (str, bytes)):
        if len(doc) > 10 << 20:
            raise EvidenceParseError("GetQuote response larger than 10 MiB", format="dstack")
        try:
            obj = json.loads(doc)
        except (ValueError, RecursionError) as e:
            raise EvidenceParseError(f"GetQuote response is not JSON: {e}", format="dstack") from e
    if not isinstance(obj, Mapping):
        raise EvidenceParseError("GetQuote response must be a JSON object", format="dstack")

    def hexfield(key: str) -> bytes:
        v = obj.get(key)
        try:
            if not isinstance(v, str):
                raise ValueError(key)
            return bytes.fromhex(v.removeprefix("0x"))
        except ValueError:
            raise EvidenceParseError(
                f"GetQuote {key} must be a hex string", format="dstack", field=key
            ) from None

    quote = hexfield("quote")
    report_data = hexfield("report_data")
    if len(report_data) != 64:
        raise EvidenceParseError(
            "report_data must be 64 bytes", format="dstack", field="report_data"
        )
    events = parse_dstack_event_log(obj.get("event_log", "[]"))
    cfg = obj.get("vm_config", "")
    return DstackAttestation(
        0,
        "tdx",
        quote,
        tuple(
            TdxEvent(e.imr, e.event_type, e.digest, e.event, e.payload, e.version, e.preimage)
            for e in events
        ),
        report_data=report_data,
        config=cfg if isinstance(cfg, str) else json.dumps(cfg),
    )


def verify_dstack_tdx(
    att: DstackAttestation,
    *,
    trust: TrustStore,
    collateral: Collateral,
    at: _dt.datetime,
    allow_simulated: bool = False,
    allow_debug: bool = False,
    allow_missing_collateral: bool = False,
    expected_report_data: bytes | None = None,
) -> DstackEvidence:
    """Verify a decoded dstack TDX attestation (steps in the module docstring).

    ``expected_report_data``: what ``report_data`` must be (the certificate binding);
    None when verifying bare evidence, where ``report_data`` is reported, not bound.
    ``allow_missing_collateral`` (dangerous) is passed to the DCAP verifier; what it skips is
    listed in ``unchecked``.
    """
    checks: list[str] = []
    unchecked: list[str] = [NOTE_RTMR012]
    # 1. platform
    if att.platform != "tdx":
        raise UnsupportedEvidenceError(
            f"dstack {att.platform} attestations are not supported (TDX only)",
            code="dstack.platform",
        )
    # 2. binding of the attestation's report_data (to the certificate key)
    if expected_report_data is not None:
        if not hmac.compare_digest(att.report_data, expected_report_data):
            raise VerificationError(
                'dstack report_data is not SHA-512("ratls-cert:" || SPKI) of this certificate',
                code="dstack.binding",
            )
        checks.append("binding:ratls-cert")
    else:
        unchecked.append("dstack: report_data is not bound to a key here (bare evidence)")
    # 3. the quote (DCAP: PCK chain, collateral, QE, signature, TCB)
    verified = TDX_QUOTE.verify(
        att.quote,
        trust=trust,
        collateral=collateral,
        at=at,
        allow_missing_collateral=allow_missing_collateral,
    )
    if verified.simulated and not allow_simulated:
        raise VerificationError(
            f"evidence is signed by the simulated root {verified.trust_root!r}; "
            "simulated evidence is trusted only with allow_simulated=True",
            code="simulated",
        )
    checks.append("tdx_quote")
    # 4. the signed REPORTDATA is the attestation's report_data
    if not hmac.compare_digest(verified.report_data, att.report_data):
        raise VerificationError(
            "the quote's REPORTDATA differs from the attestation's report_data",
            code="dstack.report_data",
        )
    checks.append("quote_report_data")
    # 5. hardware bits (never derived claims)
    c = verified.claims
    if verified.debug and not allow_debug:
        raise VerificationError("the TD is a debug TD (TD_ATTRIBUTES bit 0)", code="dstack.debug")
    if c.get("mr_signer_seam") != _ZERO48.hex():
        raise VerificationError(
            "MRSIGNERSEAM is not zero (not Intel's TDX module)", code="dstack.mr_signer_seam"
        )
    if "mr_servicetd" in c and c["mr_servicetd"] != _ZERO48.hex():
        raise VerificationError("MRSERVICETD is not zero", code="dstack.mr_servicetd")
    checks.append("td_attributes")
    # 6. the event log: runtime events verified, digests recomputed
    events = _to_dstack_events(att.event_log)
    log_runtime = [(e.event, e.payload) for e in events if e.event_type == RUNTIME_EVENT_TYPE]
    if att.runtime_events:
        if not log_runtime:
            events = events + tuple(
                DstackEvent(3, RUNTIME_EVENT_TYPE, b"", n, p) for n, p in att.runtime_events
            )
        elif log_runtime != list(att.runtime_events):
            raise VerificationError(
                "the attestation's runtime_events differ from the event log's RTMR3 events",
                code="dstack.runtime_events",
            )
    # 7-8. RTMR3 replayed from the log (digests recomputed from the payloads) equals the
    # quote's; the runtime events then become claims of the verified quote
    try:
        verified = with_dstack_events(verified, events, registers=("rtmr3",))
    except VerificationError as e:
        if e.code != "eventlog.replay_mismatch":
            raise
        raise VerificationError(
            f"RTMR3 replayed from the event log differs from the quote's: {e.message}",
            code="dstack.rtmr3_mismatch",
        ) from e
    checks.append("rtmr3_replay")
    asserted: dict[str, Any] = {}
    if att.config:
        asserted["vm_config"] = _vm_config(att.config)
    return DstackEvidence(
        verified=verified,
        attestation=att,
        issuer_asserted=MappingProxyType(asserted),
        checks=tuple(checks),
        unchecked=tuple(unchecked),
    )


def evaluate_with_events(
    policy: Policy,
    verified: Verified,
    *,
    binding: str,
    issuer_asserted: Mapping[str, Any] | None = None,
    unchecked: Sequence[str] = (),
) -> DstackAccepted:
    """Evaluate ``policy`` over the verified quote, whose claims carry the replayed runtime
    events (:func:`~atls.evidence.eventlog.with_dstack_events`; the ``[tdx] events`` rule is
    the policy's own), keeping the issuer-asserted values and notes beside it."""
    accepted = policy.evaluate(verified, binding=binding)
    notes = [*accepted.unchecked, *(u for u in unchecked if u not in accepted.unchecked)]
    return DstackAccepted(
        accepted.verified,
        accepted.policy,
        accepted.binding,
        tuple(notes),
        issuer_asserted=MappingProxyType(dict(issuer_asserted or {})),
    )


def _issuer_extensions(get: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    raw = get(OID_APP_ID)
    if raw is not None:
        out["app_id"] = unwrap_extension(raw).hex()
    raw = get(OID_USAGE)
    if raw is not None:
        out["usage"] = unwrap_extension(raw).decode("utf-8", "replace")
    raw = get(OID_APP_INFO)
    if raw is not None:
        payload = unwrap_extension(raw)
        try:
            out["app_info"] = _json_safe(
                msgpack.unpackb(payload, raw=False, strict_map_key=False, max_array_len=4096)
            )
        except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError):
            out["app_info"] = {"undecoded": payload.hex()}
    return out


class DstackVerifier(ProfileBase):
    """The client side: verify a dstack RA-TLS server certificate (TDX).

    Reads ``.8`` (``VersionedAttestation`` V0/V1) or, without it, the legacy ``.1`` quote +
    ``.2`` event log; never merges the two. Checks the certificate's validity at ``at`` with
    the verifier's clock, then :func:`verify_dstack_tdx` with the ``ratls-cert`` binding,
    then the policy (``[tdx]``, with ``events`` pinned against the replayed RTMR3 events).
    dstack sends no nonce: the binding is key-only (reported in ``unchecked``).
    """

    nonce_size = 0

    def server_name(self, nonce: bytes) -> str | None:
        return None

    def verify_certificate(
        self, cert_der: bytes, *, nonce: bytes, at: _dt.datetime, chain: tuple[bytes, ...] = ()
    ) -> DstackAccepted:
        # 1. parse the leaf; valid now by our clock (dstack's own readers skip this)
        parsed = parse_certificate(cert_der)
        self._check_validity(parsed, at)

        def get(oid: str) -> bytes | None:
            return parsed.extension(x509.ObjectIdentifier(oid))

        # 2. one format by fixed precedence: .8, else legacy .1 + .2
        unchecked: list[str] = [NOTE_KEY_ONLY]
        raw = get(OID_ATTESTATION)
        if raw is not None:
            att = decode_attestation(unwrap_extension(raw))
            if get(OID_QUOTE) is not None or get(OID_EVENT_LOG) is not None:
                unchecked.append("dstack: legacy .1/.2 extensions ignored (.8 takes precedence)")
        elif get(OID_QUOTE) is not None:
            quote = unwrap_extension(get(OID_QUOTE) or b"")
            log_raw = get(OID_EVENT_LOG)
            if log_raw is None:
                raise VerificationError(
                    "legacy dstack certificate has a quote but no event log (.2): RTMR3 "
                    "cannot be replayed",
                    code="dstack.event_log_missing",
                )
            log = parse_dstack_event_log(unwrap_extension(log_raw))
            att = DstackAttestation(
                0,
                "tdx",
                quote,
                tuple(
                    TdxEvent(
                        e.imr, e.event_type, e.digest, e.event, e.payload, e.version, e.preimage
                    )
                    for e in log
                ),
                report_data=parse_quote(quote).report_data,
            )
        else:
            raise VerificationError(
                "no dstack attestation extension (.8 or .1/.2)", code="cert.no_evidence"
            )
        # 3-8. binding, quote, hardware bits, event log, RTMR3
        rules = self.policy.platforms.get("tdx")
        result = verify_dstack_tdx(
            att,
            trust=self.trust,
            collateral=self.collateral,
            at=at,
            allow_simulated=self.allow_simulated,
            allow_debug=bool(rules is not None and rules.allow_debug),
            expected_report_data=dstack_report_data(parsed.spki),
        )
        asserted = dict(result.issuer_asserted)
        asserted.update(_issuer_extensions(get))
        if asserted:
            unchecked.append(NOTE_ISSUER)
        # 9. the policy
        return evaluate_with_events(
            self.policy,
            result.verified,
            binding=BINDING,
            issuer_asserted=asserted,
            unchecked=[*result.unchecked, *unchecked],
        )


class DstackIssuance:
    """The server side: certificates a dstack reader accepts.

    ``report_data = SHA-512("ratls-cert:" || SPKI)``; extension ``.8`` = SCALE V0
    ``DstackTdx`` with the quote, the (stripped-form) event log and the runtime events; with
    ``legacy=True`` also ``.1``/``.2`` for readers that only know those (dstack's Go SDK).
    The quote's RTMR3 must be the replay of ``runtime_events`` (configure the attester with
    :attr:`rtmr3`); a mismatch is refused here rather than issued.
    ``issue_invalid_certificates_for_testing=True`` skips that refusal and the binding
    check: it exists only to build certificates for negative tests and must never be set on
    a server.
    """

    name = "dstack"

    def __init__(
        self,
        *,
        runtime_events: Sequence[tuple[str, bytes]],
        boot_events: Sequence[DstackEvent] = (),
        config: str = "",
        legacy: bool = False,
        common_name: str = "dstack ra-tls",
        issue_invalid_certificates_for_testing: bool = False,
    ) -> None:
        if any(e.imr == 3 for e in boot_events):
            raise ValueError("boot_events are RTMR0-2 events; RTMR3 holds runtime events")
        self.runtime_events = tuple((str(n), bytes(p)) for n, p in runtime_events)
        self.boot_events = tuple(boot_events)
        self.config = config
        self.legacy = legacy
        self.common_name = common_name
        self.check = not issue_invalid_certificates_for_testing
        self._log = verify_dstack_events(
            (
                *self.boot_events,
                *(DstackEvent(3, RUNTIME_EVENT_TYPE, b"", n, p) for n, p in self.runtime_events),
            )
        )

    @property
    def rtmr3(self) -> bytes:
        """The RTMR3 the runtime events replay to (what the TD's quote must show)."""
        return replay_dstack(self._log)[3]

    def decode_nonce(self, server_name: str | None) -> bytes | None:
        return None  # dstack clients send no nonce

    def report_data(self, spki_der: bytes, nonce: bytes) -> bytes:
        return dstack_report_data(spki_der)

    def _events(self) -> tuple[TdxEvent, ...]:
        # boot events keep their digests; runtime digests are cleared (dstack's stripping)
        return tuple(
            TdxEvent(
                e.imr,
                e.event_type,
                b"" if e.event_type == RUNTIME_EVENT_TYPE else e.digest,
                e.event,
                e.payload,
            )
            for e in self._log
        )

    def certificate(
        self,
        key: ec.EllipticCurvePrivateKey,
        evidence_format: str,
        evidence: bytes,
        collateral: Collateral,
        *,
        not_before: _dt.datetime,
        lifetime: _dt.timedelta,
    ) -> x509.Certificate:
        if evidence_format != "tdx-quote":
            raise AttesterError(
                f"dstack certificates carry TDX quotes, not {evidence_format}",
                code="dstack.unsupported",
            )
        report_data = self.report_data(spki_der(key.public_key()), b"")
        quote = parse_quote(evidence)
        if self.check and quote.report_data != dstack_report_data(spki_der(key.public_key())):
            raise AttesterError(
                "the quote does not carry this key's ratls-cert report_data",
                code="dstack.binding",
            )
        body_rtmr3 = getattr(quote.body, "rtmr", None)
        if self.check and (body_rtmr3 is None or body_rtmr3[3] != self.rtmr3):
            raise AttesterError(
                "the quote's RTMR3 is not the replay of the runtime events", code="dstack.rtmr3"
            )
        att = DstackAttestation(
            0, "tdx", evidence, self._events(), self.runtime_events, report_data, self.config
        )
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.common_name)])
        b = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_before + lifetime)
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, False, False, False, False),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.UnrecognizedExtension(
                    x509.ObjectIdentifier(OID_ATTESTATION),
                    wrap_extension(encode_attestation_v0(att)),
                ),
                critical=False,
            )
        )
        if self.legacy:
            log = json.dumps([e.to_json() for e in self._events()]).encode()
            b = b.add_extension(
                x509.UnrecognizedExtension(
                    x509.ObjectIdentifier(OID_QUOTE), wrap_extension(evidence)
                ),
                critical=False,
            ).add_extension(
                x509.UnrecognizedExtension(
                    x509.ObjectIdentifier(OID_EVENT_LOG), wrap_extension(log)
                ),
                critical=False,
            )
        return b.sign(key, hashes.SHA256())
