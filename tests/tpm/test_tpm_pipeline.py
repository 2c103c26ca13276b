"""TPM evidence through the native pipeline: certificate extension -> verify -> atls-v1
binding -> policy, with the simulated TPM and with a real swtpm."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from atls import binding
from atls.errors import PolicyError, VerificationError
from atls.evidence.tpm import TpmQuoteFormat, parse_rattestation_conf
from atls.pipeline import AttestationVerifier
from atls.policy import Policy, parse_policy
from atls.testing.tpm import DEFAULT_AT, FakeTpm, FakeTpmCa, Swtpm, swtpm_fixture
from atls.trust import TrustStore
from atls.x509ext import issue_attested_cert, spki_der

CA = FakeTpmCa()
NONCE = b"\x44" * 32


def _cert(attester: object, nonce: bytes = NONCE) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    rd = binding.atls_v1_report_data(spki_der(key.public_key()), nonce)
    evidence = attester.attest(rd)  # type: ignore[attr-defined]
    cert = issue_attested_cert(
        key,
        evidence_format="tpm-quote-bundle",
        evidence=evidence,
        binding=binding.ATLS_V1,
        not_before=DEFAULT_AT - timedelta(hours=1),
        lifetime=timedelta(hours=2),
    )
    return cert.public_bytes(serialization.Encoding.DER)


def _policy(tpm: FakeTpm, **over: str) -> Policy:
    pcrs = {str(i): tpm.pcrs["sha256"][i].hex() for i in range(8)}
    pcrs.update(over)
    return parse_policy({"version": 1, "tpm": {"pcrs": {"sha256": pcrs}}})


def test_simulated_tpm_certificate_is_accepted_and_bound() -> None:
    tpm = FakeTpm(ca=CA)
    tpm.measure(4, b"kernel", 0xD)
    av = AttestationVerifier(policy=_policy(tpm), trust=CA.trust_store(), allow_simulated=True)
    der = _cert(tpm)
    accepted = av.verify_certificate(der, nonce=NONCE, at=DEFAULT_AT)
    assert accepted.platform == "tpm" and accepted.verified.simulated
    # the same certificate for another client nonce: the binding fails
    with pytest.raises(VerificationError) as ei:
        av.verify_certificate(der, nonce=b"\x45" * 32, at=DEFAULT_AT)
    assert ei.value.code == "binding.nonce_mismatch"
    # simulated evidence needs the opt-in
    strict = AttestationVerifier(policy=_policy(tpm), trust=CA.trust_store())
    with pytest.raises(VerificationError) as ei:
        strict.verify_certificate(der, nonce=NONCE, at=DEFAULT_AT)
    assert ei.value.code == "simulated"
    # a PCR the policy does not expect
    other = _policy(tpm, **{"4": "00" * 32})
    av2 = AttestationVerifier(policy=other, trust=CA.trust_store(), allow_simulated=True)
    with pytest.raises(PolicyError) as pe:
        av2.verify_certificate(der, nonce=NONCE, at=DEFAULT_AT)
    assert [v.rule for v in pe.value.violations] == ["pcrs.sha256.4"]


def test_rattestation_conf_as_policy_values() -> None:
    # GyroidOS-style expected values -> the policy's [tpm] pcrs table
    tpm = FakeTpm(label="gyroid")
    tpm.measure(11, b"container c0", 0xD)
    lines = [
        f'pcr_values {{ number: {i} value: "0X{tpm.pcrs["sha256"][i].hex().upper()}" }}'
        for i in range(12)
    ]
    cfg = parse_rattestation_conf('name: "g" kmod_sign_cert: "k.pem"\n' + "\n".join(lines))
    expected = cfg.expected_pcrs_hex()
    policy = parse_policy({"version": 1, "tpm": {"pcrs": dict(expected)}})
    fmt = TpmQuoteFormat(pinned_ak_names=[tpm.ak_name])
    tpm_att = FakeTpm(label="gyroid", pcrs=cfg.selected_pcrs())  # BASIC: PCR 0..11
    tpm_att.measure(11, b"container c0", 0xD)
    av = AttestationVerifier(policy=policy, trust=TrustStore(), formats=[fmt])
    accepted = av.verify_certificate(_cert(tpm_att), nonce=NONCE, at=DEFAULT_AT)
    assert accepted.verified.trust_root == "pinned-ak"
    # without the pin the same certificate is rejected: the AK is not trusted
    av_unpinned = AttestationVerifier(policy=policy, trust=TrustStore())
    with pytest.raises(VerificationError) as ei:
        av_unpinned.verify_certificate(_cert(tpm_att), nonce=NONCE, at=DEFAULT_AT)
    assert ei.value.code == "tpm.ak.untrusted"


swtpm = swtpm_fixture("function")


def test_real_tpm_certificate_through_the_pipeline(swtpm: Swtpm) -> None:
    from atls.attest.tpm import TpmAttester

    with TpmAttester(swtpm.tcti, pcrs=range(8)) as a:
        policy = parse_policy(
            {"version": 1, "tpm": {"pcrs": {"sha256": {str(i): "00" * 32 for i in range(8)}}}}
        )
        av = AttestationVerifier(
            policy=policy, trust=TrustStore(), formats=[TpmQuoteFormat(pinned_ak_names=[a.ak_name])]
        )
        accepted = av.verify_certificate(_cert(a), nonce=NONCE, at=DEFAULT_AT)
        assert accepted.claims["ak_name"] == a.ak_name.hex()


def test_policy_ak_name_pins_the_attestation_key() -> None:
    # `[tpm] ak_name` in the policy is the relying party's AK pin: no formats= needed
    tpm = FakeTpm(label="pinned-by-policy")
    pcrs = {str(i): tpm.pcrs["sha256"][i].hex() for i in range(8)}
    policy = parse_policy(
        {"version": 1, "tpm": {"ak_name": tpm.ak_name.hex(), "pcrs": {"sha256": pcrs}}}
    )
    av = AttestationVerifier(policy=policy, trust=TrustStore())
    accepted = av.verify_certificate(_cert(tpm), nonce=NONCE, at=DEFAULT_AT)
    assert accepted.verified.trust_root == "pinned-ak"
    # another TPM whose AK the policy does not pin is not trusted
    other = FakeTpm(label="someone else")
    with pytest.raises(VerificationError) as ei:
        av.verify_certificate(_cert(other), nonce=NONCE, at=DEFAULT_AT)
    assert ei.value.code == "tpm.ak.untrusted"


@pytest.mark.parametrize("name", ["00", "000b" + "11" * 31, "0099" + "11" * 32])
def test_policy_ak_name_must_be_a_tpm_name(name: str) -> None:
    from atls.errors import ConfigurationError

    with pytest.raises(ConfigurationError) as ei:
        parse_policy({"version": 1, "tpm": {"ak_name": name}})
    assert ei.value.code == "policy.invalid"
