"""AttestationVerifier reuses a successful authentication of the exact same certificate
(static mode) for a bounded time; everything else is verified in full."""

from __future__ import annotations

import datetime as dt

import pytest
from conftest import MEASUREMENT, HmacAttester, HmacFormat
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from atls import binding
from atls.errors import ConfigurationError, PolicyError, VerificationError
from atls.pipeline import AttestationVerifier
from atls.policy import parse_policy
from atls.trust import TrustStore
from atls.x509ext import issue_attested_cert, spki_der

T0 = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)


class CountingFormat(HmacFormat):
    def __init__(self) -> None:
        self.calls = 0

    def verify(self, evidence, *, trust, collateral, at):
        self.calls += 1
        return super().verify(evidence, trust=trust, collateral=collateral, at=at)


def _cert(nonce: bytes = b"", *, lifetime: dt.timedelta = dt.timedelta(hours=1), **kw) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    rd = binding.atls_v1_report_data(spki_der(key.public_key()), nonce)
    cert = issue_attested_cert(
        key,
        evidence_format="test-hmac",
        evidence=HmacAttester(**kw).attest(rd),
        binding=binding.ATLS_V1,
        not_before=T0 - dt.timedelta(minutes=5),
        lifetime=lifetime,
    )
    return cert.public_bytes(serialization.Encoding.DER)


def _verifier(fmt, *, measurement=MEASUREMENT, **kw) -> AttestationVerifier:
    policy = parse_policy({"version": 1, "snp": {"measurement": measurement.hex()}})
    return AttestationVerifier(policy=policy, trust=TrustStore(), formats=[fmt], fresh=False, **kw)


def test_same_certificate_is_verified_once_within_the_window():
    fmt = CountingFormat()
    av = _verifier(fmt)
    der = _cert()
    for s in (0, 1, 29, 30):
        assert av.verify_certificate(der, nonce=b"", at=T0 + dt.timedelta(seconds=s))
    assert fmt.calls == 1
    # past the window, or earlier than the first verification: verified again
    av.verify_certificate(der, nonce=b"", at=T0 + dt.timedelta(seconds=31))
    assert fmt.calls == 2
    av.verify_certificate(der, nonce=b"", at=T0 - dt.timedelta(seconds=1))
    assert fmt.calls == 3
    # another certificate is another entry
    av.verify_certificate(_cert(), nonce=b"", at=T0)
    assert fmt.calls == 4


def test_reuse_disabled():
    fmt = CountingFormat()
    av = _verifier(fmt, reuse_seconds=0)
    der = _cert()
    av.verify_certificate(der, nonce=b"", at=T0)
    av.verify_certificate(der, nonce=b"", at=T0)
    assert fmt.calls == 2
    with pytest.raises(ConfigurationError):
        _verifier(fmt, reuse_seconds=-1)


def test_failures_are_not_reused_and_policy_runs_every_time():
    fmt = CountingFormat()
    bad = _cert(corrupt_mac=True)
    av = _verifier(fmt)
    for _ in range(2):
        with pytest.raises(VerificationError):
            av.verify_certificate(bad, nonce=b"", at=T0)
    assert fmt.calls == 2
    # a verifier whose policy refuses: refused on every handshake, cached or not
    strict = _verifier(fmt, measurement=bytes(48))
    der = _cert()
    for _ in range(3):
        with pytest.raises(PolicyError):
            strict.verify_certificate(der, nonce=b"", at=T0)


def test_an_expired_certificate_is_refused_even_if_reused():
    fmt = CountingFormat()
    av = _verifier(fmt)
    der = _cert(lifetime=dt.timedelta(minutes=5, seconds=10))  # valid until T0 + 10 s
    av.verify_certificate(der, nonce=b"", at=T0)
    with pytest.raises(VerificationError) as ei:
        av.verify_certificate(der, nonce=b"", at=T0 + dt.timedelta(seconds=20))
    assert ei.value.code == "cert.validity"


def test_fresh_mode_nonces_are_separate_entries():
    fmt = CountingFormat()
    policy = parse_policy({"version": 1, "snp": {"measurement": MEASUREMENT.hex()}})
    av = AttestationVerifier(policy=policy, trust=TrustStore(), formats=[fmt], fresh=True)
    n1, n2 = b"\x01" * 32, b"\x02" * 32
    der = _cert(n1)
    av.verify_certificate(der, nonce=n1, at=T0)
    with pytest.raises(VerificationError) as ei:
        av.verify_certificate(der, nonce=n2, at=T0)  # replayed to another client
    assert ei.value.code == "binding.nonce_mismatch"
    assert fmt.calls == 2


def test_replacing_trust_or_collateral_invalidates_reuse():
    from atls.collateral import Collateral

    fmt = CountingFormat()
    av = _verifier(fmt)
    der = _cert()
    av.verify_certificate(der, nonce=b"", at=T0)
    av.verify_certificate(der, nonce=b"", at=T0)
    assert fmt.calls == 1
    av.trust = TrustStore()  # another store, even an equal one: verified again
    av.verify_certificate(der, nonce=b"", at=T0)
    assert fmt.calls == 2
    av.collateral = Collateral()
    av.verify_certificate(der, nonce=b"", at=T0)
    assert fmt.calls == 3
    av.allow_simulated = True
    av.verify_certificate(der, nonce=b"", at=T0)
    assert fmt.calls == 4
