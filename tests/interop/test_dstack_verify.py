"""dstack RA-TLS: issuance and verification with a simulated TDX attester, every rejection
class, and the TLS path (no application data reaches a rejected server)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import pytest
import trio
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from atls.attest import SimulatedAttester
from atls.errors import (
    EvidenceParseError,
    PolicyError,
    UnsupportedEvidenceError,
    VerificationError,
)
from atls.interop.dstack import (
    OID_APP_ID,
    OID_APP_INFO,
    OID_ATTESTATION,
    OID_EVENT_LOG,
    OID_QUOTE,
    DstackAttestation,
    TdxEvent,
    decode_attestation,
    dstack_report_data,
    encode_attestation_v0,
    unwrap_extension,
    wrap_extension,
)
from atls.interop.dstack_verify import DstackIssuance, DstackVerifier
from atls.policy import parse_policy
from atls.testing.tdx import DEFAULT_AT, FakeIntel
from atls.tls import AttestedCredentials
from atls.tls.trio import AttestedStream, open_attested_stream, serve_attested
from atls.x509ext import spki_der

COMPOSE = hashlib.sha256(b"services: {agent: {image: agent:1}}").digest()
APP_ID = COMPOSE[:20]
OS_IMAGE = hashlib.sha256(b"dstack-0.5.3").digest()
RUNTIME = [
    ("system-preparing", b""),
    ("app-id", APP_ID),
    ("compose-hash", COMPOSE),
    ("instance-id", b"\x07" * 20),
    ("boot-mr-done", b""),
    ("os-image-hash", OS_IMAGE),
    ("key-provider", b'{"name":"kms","id":"3059"}'),
    ("system-ready", b""),
]
BOOT_RTMRS = (b"\x21" * 48, b"\x22" * 48, b"\x23" * 48)
CONFIG = json.dumps({"os_image_hash": OS_IMAGE.hex(), "cpu_count": 2})
POLICY = parse_policy(
    {
        "version": 1,
        "name": "agent",
        "tdx": {
            "mr_td": "11" * 48,
            "events": {"compose-hash": COMPOSE.hex(), "os-image-hash": OS_IMAGE.hex()},
        },
    }
)
INTEL = FakeIntel()


INVALID = {"issue_invalid_certificates_for_testing": True}


def issuance(**kw) -> DstackIssuance:
    return DstackIssuance(runtime_events=RUNTIME, config=CONFIG, **kw)


def attester(iss: DstackIssuance, **knobs) -> SimulatedAttester:
    rtmr = knobs.pop("rtmr", (*BOOT_RTMRS, iss.rtmr3))
    return SimulatedAttester("tdx", hierarchy=INTEL, rtmr=rtmr, **knobs)


def verifier(policy=POLICY, *, allow_simulated=True) -> DstackVerifier:
    return DstackVerifier(
        policy=policy,
        trust=INTEL.trust_store(),
        collateral=INTEL.collateral(),
        allow_simulated=allow_simulated,
    )


def mint(iss: DstackIssuance, **knobs) -> bytes:
    creds = AttestedCredentials(attester(iss, **knobs), profile=iss, clock=lambda: DEFAULT_AT)
    return creds.static().certificate.public_bytes(Encoding.DER)


def cert_with(extensions: dict[str, bytes], key=None) -> tuple[bytes, ec.EllipticCurvePrivateKey]:
    key = key or ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hand-made")])
    b = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(DEFAULT_AT - dt.timedelta(hours=1))
        .not_valid_after(DEFAULT_AT + dt.timedelta(hours=1))
    )
    for oid, value in extensions.items():
        b = b.add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), value), critical=False
        )
    return b.sign(key, hashes.SHA256()).public_bytes(Encoding.DER), key


def hand_made(quote_knobs=None, *, runtime=RUNTIME, att_runtime=None, rd=None) -> bytes:
    """A certificate whose .8 attestation is built here (bypassing the issuance checks)."""
    iss = DstackIssuance(runtime_events=runtime)
    key = ec.generate_private_key(ec.SECP256R1())
    report_data = dstack_report_data(spki_der(key.public_key())) if rd is None else rd
    knobs = {"rtmr": (*BOOT_RTMRS, iss.rtmr3), **(quote_knobs or {})}
    quote = INTEL.quote(report_data, **knobs)
    att = DstackAttestation(
        0,
        "tdx",
        quote,
        iss._events(),
        tuple(runtime if att_runtime is None else att_runtime),
        dstack_report_data(spki_der(key.public_key())),
        CONFIG,
    )
    der, _ = cert_with({OID_ATTESTATION: wrap_extension(encode_attestation_v0(att))}, key)
    return der


def test_issued_certificate_verifies_and_exposes_events():
    der = mint(issuance())
    acc = verifier().verify_certificate(der, nonce=b"", at=DEFAULT_AT)
    assert acc.binding == "dstack"
    assert acc.platform == "tdx"
    ev = acc.claims["events"]
    assert ev["compose-hash"] == COMPOSE.hex()
    assert ev["app-id"] == APP_ID.hex()
    assert ev["instance-id"] == "07" * 20
    assert ev["os-image-hash"] == OS_IMAGE.hex()
    assert bytes.fromhex(ev["key-provider"]) == b'{"name":"kms","id":"3059"}'
    # vm_config is not attested: reported apart, never among the claims
    assert acc.issuer_asserted["vm_config"]["cpu_count"] == 2
    assert "vm_config" not in acc.claims
    out = acc.to_json()
    assert out["claims"]["events"]["compose-hash"] == COMPOSE.hex()
    assert out["issuer_asserted"]["vm_config"]["os_image_hash"] == OS_IMAGE.hex()
    assert any("key-only" in u for u in out["unchecked"])
    assert not any("pins none" in u for u in out["unchecked"])


def test_issued_extension_is_scale_v0_with_stripped_runtime_digests():
    der = mint(issuance())
    cert = x509.load_der_x509_certificate(der)
    ext = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(OID_ATTESTATION))
    assert not ext.critical
    payload = unwrap_extension(ext.value.value)
    assert payload[:2] == b"\x00\x00"  # V0, DstackTdx
    att = decode_attestation(payload)
    assert att.report_data == dstack_report_data(spki_der(cert))
    assert [(e.event, e.event_payload) for e in att.event_log] == RUNTIME
    assert all(e.digest == b"" and e.imr == 3 for e in att.event_log)
    assert list(att.runtime_events) == RUNTIME
    assert encode_attestation_v0(att) == payload


def test_legacy_extensions_alone_verify():
    der = mint(issuance(legacy=True))
    cert = x509.load_der_x509_certificate(der)
    exts = {
        e.oid.dotted_string: e.value.value
        for e in cert.extensions
        if isinstance(e.value, x509.UnrecognizedExtension)
    }
    assert set(exts) == {OID_ATTESTATION, OID_QUOTE, OID_EVENT_LOG}
    # a certificate for the same key with only .1 + .2 (what dstack's Go SDK reads)
    spki = spki_der(cert)
    quote = unwrap_extension(exts[OID_QUOTE])
    assert quote[568:632] == dstack_report_data(spki)
    # .8 takes precedence; the legacy pair is not merged in
    acc = verifier().verify_certificate(der, nonce=b"", at=DEFAULT_AT)
    assert any("legacy" in u for u in acc.unchecked)
    # the legacy pair moved to a certificate for another key fails on the binding
    legacy_only = {OID_QUOTE: exts[OID_QUOTE], OID_EVENT_LOG: exts[OID_EVENT_LOG]}
    other, _ = cert_with(legacy_only)
    with pytest.raises(VerificationError) as e:
        verifier().verify_certificate(other, nonce=b"", at=DEFAULT_AT)
    assert e.value.code == "dstack.binding"


def test_legacy_only_certificate_for_its_own_key():
    iss = issuance()
    key = ec.generate_private_key(ec.SECP256R1())
    rd = dstack_report_data(spki_der(key.public_key()))
    quote = INTEL.quote(rd, rtmr=(*BOOT_RTMRS, iss.rtmr3))
    log = json.dumps([e.to_json() for e in iss._events()]).encode()
    der, _ = cert_with({OID_QUOTE: wrap_extension(quote), OID_EVENT_LOG: wrap_extension(log)}, key)
    acc = verifier().verify_certificate(der, nonce=b"", at=DEFAULT_AT)
    assert acc.claims["events"]["compose-hash"] == COMPOSE.hex()
    # a quote without its event log cannot be replayed
    der, _ = cert_with({OID_QUOTE: wrap_extension(quote)}, key)
    with pytest.raises(VerificationError) as e:
        verifier().verify_certificate(der, nonce=b"", at=DEFAULT_AT)
    assert e.value.code == "dstack.event_log_missing"


def test_issuer_extensions_are_reported_apart():
    import msgpack

    iss = issuance()
    key = ec.generate_private_key(ec.SECP256R1())
    rd = dstack_report_data(spki_der(key.public_key()))
    quote = INTEL.quote(rd, rtmr=(*BOOT_RTMRS, iss.rtmr3))
    att = DstackAttestation(0, "tdx", quote, iss._events(), tuple(RUNTIME), rd, "")
    der, _ = cert_with(
        {
            OID_ATTESTATION: wrap_extension(encode_attestation_v0(att)),
            OID_APP_ID: wrap_extension(b"\xaa" * 20),
            OID_APP_INFO: wrap_extension(msgpack.packb({"app_name": "evil", "x": b"\x01"})),
        },
        key,
    )
    acc = verifier().verify_certificate(der, nonce=b"", at=DEFAULT_AT)
    assert acc.issuer_asserted["app_id"] == "aa" * 20
    assert acc.issuer_asserted["app_info"] == {"app_name": "evil", "x": "01"}
    # the attested app-id is the one from the replayed log, not the extension's
    assert acc.claims["events"]["app-id"] == APP_ID.hex()
    assert "app_id" not in acc.claims


def test_hand_made_reference_certificate_verifies():
    acc = verifier().verify_certificate(hand_made(), nonce=b"", at=DEFAULT_AT)
    assert acc.claims["events"]["compose-hash"] == COMPOSE.hex()


class OtherKeyBinding(DstackIssuance):
    def report_data(self, spki_der: bytes, nonce: bytes) -> bytes:
        return dstack_report_data(b"not this key" + spki_der)


BAD = [
    (
        "wrong binding",
        lambda: mint(OtherKeyBinding(runtime_events=RUNTIME, **INVALID)),
        VerificationError,
        "dstack.binding",
    ),
    (
        "quote REPORTDATA differs",
        lambda: hand_made(rd=bytes(64)),
        VerificationError,
        "dstack.report_data",
    ),
    ("debug TD", lambda: mint(issuance(), debug=True), VerificationError, "dstack.debug"),
    (
        "RTMR3 mismatch",
        lambda: mint(issuance(**INVALID), rtmr=(*BOOT_RTMRS, b"\x99" * 48)),
        VerificationError,
        "dstack.rtmr3_mismatch",
    ),
    (
        "runtime_events differ from the log",
        lambda: hand_made(att_runtime=[*RUNTIME[:-1], ("system-ready", b"x")]),
        VerificationError,
        "dstack.runtime_events",
    ),
    (
        "duplicate identity event",
        lambda: hand_made(runtime=[*RUNTIME, ("compose-hash", b"\x00" * 32)]),
        VerificationError,
        "eventlog.dstack.duplicate_event",
    ),
]


@pytest.mark.parametrize("name,make,exc,code", BAD, ids=[b[0] for b in BAD])
def test_rejections(name, make, exc, code):
    with pytest.raises(exc) as e:
        verifier().verify_certificate(make(), nonce=b"", at=DEFAULT_AT)
    assert e.value.code == code


def test_mr_signer_seam_must_be_zero():
    from atls.collateral import Collateral
    from atls.interop.dstack_verify import verify_dstack_tdx

    der = hand_made({"mr_signer_seam": b"\x01" * 48})
    # with collateral the DCAP TDX-module identity check already refuses it ...
    with pytest.raises(VerificationError) as e:
        verifier().verify_certificate(der, nonce=b"", at=DEFAULT_AT)
    assert e.value.code == "tdx.tcb.module_mismatch"
    # ... and without (dangerous allow_missing_collateral) dstack's own rule still does
    cert = x509.load_der_x509_certificate(der)
    ext = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(OID_ATTESTATION))
    att = decode_attestation(unwrap_extension(ext.value.value))
    with pytest.raises(VerificationError) as e:
        verify_dstack_tdx(
            att,
            trust=INTEL.trust_store(),
            collateral=Collateral(),
            at=DEFAULT_AT,
            allow_simulated=True,
            allow_missing_collateral=True,
        )
    assert e.value.code == "dstack.mr_signer_seam"


def test_policy_pins_the_replayed_events():
    der = mint(issuance())
    wrong = parse_policy(
        {"version": 1, "tdx": {"mr_td": "22" * 48, "events": {"compose-hash": "00" * 32}}}
    )
    with pytest.raises(PolicyError) as e:
        verifier(wrong).verify_certificate(der, nonce=b"", at=DEFAULT_AT)
    rules = {v.rule for v in e.value.violations}
    assert rules == {"mr_td", "events.compose-hash"}  # every violation, both layers
    missing = parse_policy({"version": 1, "tdx": {"events": {"gpu-policy-hash": "00"}}})
    with pytest.raises(PolicyError) as e:
        verifier(missing).verify_certificate(der, nonce=b"", at=DEFAULT_AT)
    assert e.value.violations[0].actual == "event not present"


def test_debug_allowed_only_by_a_named_policy_option():
    der = mint(issuance(), debug=True)
    lax = parse_policy({"version": 1, "tdx": {"allow_debug": True, "mr_td": "11" * 48}})
    acc = verifier(lax).verify_certificate(der, nonce=b"", at=DEFAULT_AT)
    assert acc.verified.debug


def test_simulated_roots_need_the_opt_in_and_validity_is_our_clock():
    der = mint(issuance())
    with pytest.raises(VerificationError) as e:
        verifier(allow_simulated=False).verify_certificate(der, nonce=b"", at=DEFAULT_AT)
    assert e.value.code == "simulated"
    with pytest.raises(VerificationError) as e:
        verifier().verify_certificate(der, nonce=b"", at=DEFAULT_AT + dt.timedelta(days=2))
    assert e.value.code == "cert.validity"


def test_no_extension_and_foreign_platforms():
    der, _ = cert_with({})
    with pytest.raises(VerificationError) as e:
        verifier().verify_certificate(der, nonce=b"", at=DEFAULT_AT)
    assert e.value.code == "cert.no_evidence"
    snp = DstackAttestation(0, "sev-snp", bytes(1184), report_data=bytes(64))
    # only TDX attestations are emitted; an SNP one is refused by the verifier
    from atls.interop.dstack_verify import verify_dstack_tdx

    with pytest.raises(UnsupportedEvidenceError):
        verify_dstack_tdx(
            snp, trust=INTEL.trust_store(), collateral=INTEL.collateral(), at=DEFAULT_AT
        )
    bad_imr = DstackAttestation(
        0, "tdx", b"", (TdxEvent(9, 1, b"", "x", b""),), report_data=bytes(64)
    )
    with pytest.raises(EvidenceParseError):
        from atls.interop.dstack_verify import _to_dstack_events

        _to_dstack_events(bad_imr.event_log)


def test_issuance_refuses_inconsistent_evidence():
    from atls.errors import AttesterError

    iss = issuance()
    with pytest.raises(AttesterError) as e:
        mint(iss, rtmr=(*BOOT_RTMRS, bytes(48)))
    assert e.value.code == "dstack.rtmr3"
    with pytest.raises(AttesterError) as e:
        mint(OtherKeyBinding(runtime_events=RUNTIME))
    assert e.value.code == "dstack.binding"


# --- over TLS: a dstack client and an atls server in dstack mode ---------------------------


class Recorder:
    def __init__(self):
        self.received = b""
        self.handled = 0

    async def __call__(self, stream: AttestedStream) -> None:
        self.handled += 1
        while data := await stream.receive_some():
            self.received += data
            await stream.send_all(data)


async def _serve(nursery, credentials, rec) -> int:
    listeners = await nursery.start(
        lambda task_status: serve_attested(
            rec, 0, credentials=credentials, host="127.0.0.1", task_status=task_status
        )
    )
    return listeners[0].socket.getsockname()[1]


def _creds(iss, **knobs):
    return AttestedCredentials(attester(iss, **knobs), profile=iss, clock=lambda: DEFAULT_AT)


async def test_tls_end_to_end():
    rec = Recorder()
    async with trio.open_nursery() as n:
        port = await _serve(n, _creds(issuance()), rec)
        s = await open_attested_stream(
            "127.0.0.1", port, verifier=verifier(), clock=lambda: DEFAULT_AT
        )
        async with s:
            assert s.attestation is not None
            assert s.attestation.claims["events"]["compose-hash"] == COMPOSE.hex()
            await s.send_all(b"model weights")
            assert await s.receive_some() == b"model weights"
        n.cancel_scope.cancel()
    assert rec.received == b"model weights"


TLS_BAD = [
    (
        "wrong binding",
        lambda: OtherKeyBinding(runtime_events=RUNTIME, **INVALID),
        {},
        None,
        "dstack.binding",
    ),
    ("debug TD", issuance, {"debug": True}, None, "dstack.debug"),
    (
        "RTMR3 mismatch",
        lambda: issuance(**INVALID),
        {"rtmr": (*BOOT_RTMRS, b"\x99" * 48)},
        None,
        "dstack.rtmr3_mismatch",
    ),
    (
        "event payload vs policy",
        issuance,
        {},
        parse_policy({"version": 1, "tdx": {"events": {"compose-hash": "ab" * 32}}}),
        "policy",
    ),
]


@pytest.mark.parametrize("name,make,knobs,policy,code", TLS_BAD, ids=[b[0] for b in TLS_BAD])
async def test_tls_rejections_send_no_application_data(name, make, knobs, policy, code):
    rec = Recorder()
    async with trio.open_nursery() as n:
        port = await _serve(n, _creds(make(), **knobs), rec)
        with pytest.raises((VerificationError, PolicyError)) as e:
            await open_attested_stream(
                "127.0.0.1",
                port,
                verifier=verifier(policy or POLICY),
                clock=lambda: DEFAULT_AT,
            )
        assert e.value.code == code
        await trio.sleep(0.05)
        n.cancel_scope.cancel()
    assert rec.handled == 0 and rec.received == b""
