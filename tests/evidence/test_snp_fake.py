"""SNP verification against the fake AMD hierarchy: every product and key, every knob."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

import pytest
from asn1crypto import x509 as asn1_x509
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atls.collateral import Collateral
from atls.errors import (
    AttestationError,
    ConfigurationError,
    UnsupportedEvidenceError,
    VerificationError,
)
from atls.evidence import Verified
from atls.evidence.snp import (
    SNP_REPORT,
    ChainCache,
    parse_cert,
    parse_crl,
    parse_report,
    verify_report,
)
from atls.testing.snp import DEFAULT_AT, FakeAmd
from atls.trust import TrustStore
from atls.trust._store import SIMULATED_MARKER

AT = DEFAULT_AT


@pytest.fixture(scope="module")
def milan() -> FakeAmd:
    return FakeAmd("Milan")


@pytest.fixture(scope="module")
def milan_vlek() -> FakeAmd:
    return FakeAmd("Milan", signing_key="vlek")


def _verify(
    fake: FakeAmd, raw: bytes, collateral: Collateral | None = None, **kw: object
) -> Verified:
    return SNP_REPORT.verify(
        raw,
        trust=fake.trust_store(),
        collateral=fake.collateral() if collateral is None else collateral,
        at=kw.pop("at", AT),  # type: ignore[arg-type]
        cache=kw.pop("cache", None),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


def _code(fake: FakeAmd, raw: bytes, collateral: Collateral | None = None, **kw: object) -> str:
    with pytest.raises(AttestationError) as e:
        _verify(fake, raw, collateral, **kw)
    return e.value.code


@pytest.mark.parametrize("product", ["Milan", "Genoa", "Turin"])
@pytest.mark.parametrize("key", ["vcek", "vlek"])
def test_every_product_and_key_verifies(product: str, key: str) -> None:
    fake = FakeAmd(product, signing_key=key)  # type: ignore[arg-type]
    rd = bytes(range(64))
    v = _verify(fake, fake.report(rd, host_data=b"h" * 32))
    assert v.platform == "snp"
    assert v.simulated is True and v.trust_root == f"simulated:ARK-{product}"
    assert v.report_data == rd and v.claims["report_data"] == rd.hex()
    assert v.claims["product"] == product and v.claims["signing_key"] == key
    assert v.claims["reported_tcb"] == fake.tcb
    assert v.claims["current_tcb"] == v.claims["committed_tcb"] == v.claims["launch_tcb"]
    assert ("fmc" in v.claims["reported_tcb"]) is (product == "Turin")
    assert v.claims["host_data"] == (b"h" * 32).hex()
    assert v.claims["chip_id"] == (bytes(64) if key == "vlek" else fake.chip_id).hex()
    assert v.debug is False and v.claims["policy_debug"] is False
    assert v.tcb_status is None and v.unchecked == ()
    assert "crl" in v.checks and "report_signature" in v.checks
    assert ("vcek_hwid" in v.checks) is (key == "vcek")
    if key == "vlek":
        assert v.claims["csp_id"] == fake.csp_id


@pytest.mark.parametrize("version", [2, 3, 5])
def test_every_report_version_verifies(milan: FakeAmd, version: int) -> None:
    v = _verify(milan, milan.report(version=version))
    assert v.claims["version"] == version
    assert ("cpuid_fam_id" in v.claims) is (version >= 3)
    assert ("launch_mit_vector" in v.claims) is (version >= 5)
    # v2 names no product: the chain does (and the TCB is still decoded).
    assert v.claims["product"] == "Milan" and v.claims["reported_tcb"] == milan.tcb


def test_required_claim_keys(milan: FakeAmd) -> None:
    v = _verify(milan, milan.report())
    for key in (
        "version", "guest_svn", "policy", "policy_debug", "policy_migrate_ma", "policy_smt",
        "family_id", "image_id", "vmpl", "signature_algo", "current_tcb", "reported_tcb",
        "committed_tcb", "launch_tcb", "platform_info", "measurement", "host_data",
        "id_key_digest", "author_key_digest", "report_data", "report_id", "report_id_ma",
        "chip_id", "product", "signing_key", "cpuid_fam_id", "cpuid_mod_id", "cpuid_step",
    ):  # fmt: skip
        assert key in v.claims, key
    assert isinstance(v.claims["policy"], int) and isinstance(v.claims["policy_smt"], bool)
    assert set(v.claims["reported_tcb"]) == {"bootloader", "tee", "snp", "microcode"}
    import json

    json.dumps(v.to_json())  # JSON-compatible


def test_debug_bit(milan: FakeAmd) -> None:
    v = _verify(milan, milan.report(debug=True, migrate_ma=True))
    assert v.debug is True and v.claims["policy_debug"] is True
    assert v.claims["policy_migrate_ma"] is True
    v = _verify(milan, milan.report(smt=False))
    assert v.claims["policy_smt"] is False and v.debug is False


def test_wrong_signer_key(milan: FakeAmd) -> None:
    assert _code(milan, milan.report(wrong_signer=True)) == "snp.signature"


def test_expired_vcek(milan: FakeAmd) -> None:
    assert _code(milan, milan.report(), milan.collateral(expired_vcek=True)) == "snp.chain.expired"


def test_not_yet_valid(milan: FakeAmd) -> None:
    early = datetime(2023, 6, 1, tzinfo=UTC)  # ARK/ASK valid, VCEK not yet
    assert _code(milan, milan.report(), at=early) == "snp.chain.not_yet_valid"


def test_vcek_tcb_mismatch(milan: FakeAmd) -> None:
    raw = milan.report()
    other = dict(milan.tcb, snp=milan.tcb["snp"] + 1)
    assert _code(milan, raw, milan.collateral(vcek_tcb=other)) == "snp.vcek.tcb_mismatch"
    assert _code(milan, milan.report(reported_tcb=other)) == "snp.vcek.tcb_mismatch"
    with pytest.raises(VerificationError, match="snp 24 in the certificate, 23 in REPORTED_TCB"):
        _verify(milan, milan.report(reported_tcb=milan.tcb), milan.collateral(vcek_tcb=other))


def test_reserved_tcb_bytes_must_be_zero(milan: FakeAmd) -> None:
    raw_tcb = int.from_bytes(bytes([4, 0, 1, 0, 0, 0, 23, 213]), "little")  # byte 2 reserved
    assert _code(milan, milan.report(reported_tcb=raw_tcb)) == "snp.vcek.tcb_mismatch"


def test_turin_fmc_mismatch() -> None:
    turin = FakeAmd("Turin")
    other = dict(turin.tcb, fmc=turin.tcb["fmc"] + 1)
    with pytest.raises(VerificationError, match="fmc") as e:
        _verify(turin, turin.report(), turin.collateral(vcek_tcb=other))
    assert e.value.code == "snp.vcek.tcb_mismatch"


def test_wrong_chip_id(milan: FakeAmd) -> None:
    raw = milan.report(chip_id=b"\x42" * 64)
    assert _code(milan, raw) == "snp.vcek.chip_id_mismatch"
    other = milan.collateral(vcek_chip_id=b"\x43" * 64)
    assert _code(milan, milan.report(), other) == "snp.vcek.chip_id_mismatch"
    with pytest.raises(VerificationError, match="masked") as e:
        _verify(milan, milan.report(chip_id=bytes(64)))
    assert e.value.code == "snp.vcek.chip_id_mismatch"


def test_turin_chip_id_beyond_8_bytes_must_be_zero() -> None:
    turin = FakeAmd("Turin")
    raw = turin.report(chip_id=turin.chip_id[:8] + b"\x01" + bytes(55))
    assert _code(turin, raw) == "snp.vcek.chip_id_mismatch"


def test_vlek_ignores_chip_id(milan_vlek: FakeAmd) -> None:
    v = _verify(milan_vlek, milan_vlek.report(chip_id=b"\x42" * 64))
    assert v.claims["chip_id"] == (b"\x42" * 64).hex()


def test_wrong_ask(milan: FakeAmd, milan_vlek: FakeAmd) -> None:
    assert _code(milan, milan.report(), milan.collateral(wrong_ask=True)) == "snp.chain.signature"
    raw = milan_vlek.report()
    assert _code(milan_vlek, raw, milan_vlek.collateral(wrong_ask=True)) == "snp.chain.signature"


def test_missing_certificates(milan: FakeAmd, milan_vlek: FakeAmd) -> None:
    raw = milan.report()
    assert _code(milan, raw, milan.collateral(include_ask=False)) == "snp.collateral.missing_ask"
    assert _code(milan, raw, milan.collateral(include_vcek=False)) == "snp.collateral.missing_vcek"
    assert _code(milan, raw, Collateral()) == "snp.collateral.missing_vcek"
    vraw = milan_vlek.report()
    c = milan_vlek.collateral(include_ask=False)
    assert _code(milan_vlek, vraw, c) == "snp.collateral.missing_asvk"
    # A VLEK-signed report needs a VLEK, not the VCEK of the same chip.
    assert _code(milan, milan.report(signing_key="vlek")) == "snp.collateral.missing_vlek"
    # VCEK + ASVK: the ASK (SEV-Milan) is missing.
    mixed = Collateral((milan.vek_der, milan_vlek.ask_der, milan.ark_der))
    assert _code(milan, raw, mixed) == "snp.collateral.missing_ask"


def test_unsigned_report(milan: FakeAmd) -> None:
    assert _code(milan, milan.report(signing_key="none", mask_chip_key=True)) == "snp.unsigned"


def test_revoked(milan: FakeAmd, milan_vlek: FakeAmd) -> None:
    raw = milan.report()
    assert _code(milan, raw, milan.collateral(revoke="ask")) == "snp.chain.revoked"
    assert _code(milan, raw, milan.collateral(revoke="vcek")) == "snp.chain.revoked"
    vraw = milan_vlek.report()
    assert _code(milan_vlek, vraw, milan_vlek.collateral(revoke="ask")) == "snp.chain.revoked"
    assert _code(milan_vlek, vraw, milan_vlek.collateral(revoke="vcek")) == "snp.chain.revoked"


def test_crl_absent_is_listed_unchecked(milan: FakeAmd) -> None:
    v = _verify(milan, milan.report(), milan.collateral(crl=False))
    assert v.unchecked == ("crl",) and "crl" not in v.checks


def test_expired_crl(milan: FakeAmd) -> None:
    c = milan.collateral(crl_expired=True)
    assert _code(milan, milan.report(), c) == "snp.crl.expired"


def test_crl_not_yet_valid(milan: FakeAmd) -> None:
    crl = milan.crl(this_update=datetime(2025, 7, 1, tzinfo=UTC))
    c = Collateral((milan.vek_der, milan.ask_der), (crl,))
    assert _code(milan, milan.report(), c) == "snp.crl.not_yet_valid"


def test_crl_of_another_hierarchy_is_refused(milan: FakeAmd) -> None:
    other = FakeAmd("Milan", seed=b"another seed")
    # Same issuer name (ARK-Milan, simulated), other key: a forged CRL must not pass.
    c = Collateral((milan.vek_der, milan.ask_der), (other.crl(),))
    assert _code(milan, milan.report(), c) == "snp.crl.signature"


def test_wrong_product_from_cpuid(milan: FakeAmd) -> None:
    assert _code(milan, milan.report(cpuid=(0x19, 0x11, 0x01))) == "snp.product"
    assert _code(milan, milan.report(cpuid=(0x1A, 0x02, 0x00))) == "snp.product"
    with pytest.raises(UnsupportedEvidenceError) as e:
        _verify(milan, milan.report(cpuid=(0x1A, 0x50, 0x00)))
    assert e.value.code == "snp.unsupported.product"


def test_expected_product_argument(milan: FakeAmd) -> None:
    assert _verify(milan, milan.report(), product="Milan").claims["product"] == "Milan"
    assert _verify(milan, milan.report(), product="milan-B0").claims["product"] == "Milan"
    assert _code(milan, milan.report(), product="Genoa") == "snp.product"
    # A v2 report names no product: the chain's product is compared.
    assert _code(milan, milan.report(version=2), product="Turin") == "snp.product"
    with pytest.raises(ConfigurationError) as e:
        _verify(milan, milan.report(), product="Venice")
    assert e.value.code == "usage.product"


def test_chain_of_another_product_is_refused() -> None:
    milan, genoa = FakeAmd("Milan"), FakeAmd("Genoa")
    raw = milan.report(version=2)
    trust = milan.trust_store().merged(genoa.trust_store())
    # Milan report (v2: no CPUID) with a Genoa VCEK: the hwID/TCB are Genoa's, so mismatch.
    c = Collateral((genoa.vek_der, genoa.ask_der))
    with pytest.raises(VerificationError) as e:
        verify_report(raw, trust=trust, collateral=c, at=AT)
    assert e.value.code in ("snp.vcek.tcb_mismatch", "snp.vcek.chip_id_mismatch")
    # Milan v3 report (CPUID Milan) with a Genoa VCEK: the product mismatch is named.
    with pytest.raises(VerificationError) as e:
        verify_report(milan.report(), trust=trust, collateral=c, at=AT)
    assert e.value.code == "snp.product"


def test_trust(milan: FakeAmd) -> None:
    raw = milan.report()
    # No AMD anchor at all.
    with pytest.raises(VerificationError) as e:
        verify_report(raw, trust=TrustStore(), collateral=milan.collateral(), at=AT)
    assert e.value.code == "snp.chain.no_anchor"
    # Another product's root only.
    with pytest.raises(VerificationError) as e:
        verify_report(
            raw, trust=FakeAmd("Genoa").trust_store(), collateral=milan.collateral(), at=AT
        )
    assert e.value.code == "snp.chain.untrusted_root"
    # The same names under another seed: other keys, the signatures do not verify.
    other = FakeAmd("Milan", seed=b"another seed")
    with pytest.raises(VerificationError) as e:
        verify_report(raw, trust=other.trust_store(), collateral=milan.collateral(), at=AT)
    assert e.value.code == "snp.chain.signature"
    # Both roots trusted: the right one is found.
    both = other.trust_store().merged(milan.trust_store())
    assert verify_report(raw, trust=both, collateral=milan.collateral(), at=AT).simulated
    # A simulated root is only held by a store that allows it.
    with pytest.raises(ConfigurationError):
        TrustStore.from_certificates([milan.ark_der])


def test_the_ark_in_the_collateral_is_not_trusted(milan: FakeAmd) -> None:
    other = FakeAmd("Milan", seed=b"another seed")
    c = other.collateral()  # carries its own ARK: irrelevant, trust comes from the store
    with pytest.raises(VerificationError) as e:
        verify_report(other.report(), trust=milan.trust_store(), collateral=c, at=AT)
    assert e.value.code == "snp.chain.signature"


def test_time_must_be_aware(milan: FakeAmd) -> None:
    with pytest.raises(ConfigurationError) as e:
        _verify(milan, milan.report(), at=datetime(2025, 6, 1))
    assert e.value.code == "usage.at"


def test_malformed_collateral_entries_are_skipped(milan: FakeAmd) -> None:
    c = milan.collateral()
    junk = Collateral((b"\x30\x03\x02\x01\x00", *c.certificates), (b"junk", *c.crls))
    assert _verify(milan, milan.report(), junk).claims["product"] == "Milan"
    with pytest.raises(VerificationError, match="malformed") as e:
        _verify(milan, milan.report(), Collateral((b"junk",)))
    assert e.value.code == "snp.collateral.missing_vcek"


def test_several_vceks_the_matching_one_is_used(milan: FakeAmd) -> None:
    stale = milan.collateral(vcek_tcb=dict(milan.tcb, microcode=1)).certificates[0]
    c = Collateral((stale, milan.vek_der, milan.ask_der))
    assert _verify(milan, milan.report(), c).claims["reported_tcb"] == milan.tcb
    expired = milan.collateral(expired_vcek=True).certificates[0]
    c = Collateral((expired, milan.vek_der, milan.ask_der))
    assert _verify(milan, milan.report(), c).claims["product"] == "Milan"


def test_a_parsed_report_is_verified_from_its_bytes(milan: FakeAmd) -> None:
    import dataclasses

    r = parse_report(milan.report())
    forged = dataclasses.replace(r, measurement=b"\x00" * 48, vmpl=0)
    v = verify_report(forged, trust=milan.trust_store(), collateral=milan.collateral(), at=AT)
    assert v.claims["measurement"] == r.measurement.hex()


# --- the fake hierarchy itself --------------------------------------------------------------


def test_certificates_look_like_amds(milan: FakeAmd, milan_vlek: FakeAmd) -> None:
    vcek = parse_cert(milan.vek_der)
    assert vcek.serial == 0 and vcek.subject_cn == "SEV-VCEK" and vcek.issuer_cn == "SEV-Milan"
    assert vcek.pss and not vcek.is_ca
    assert vcek.amd["hw_id"] == milan.chip_id and vcek.amd["product_name"] == "Milan-B0"
    assert {k: vcek.amd[k] for k in milan.tcb} == milan.tcb
    # Raw hwID bytes in extnValue, as KDS issues them.
    c = asn1_x509.Certificate.load(milan.vek_der)
    hw = [e for e in c["tbs_certificate"]["extensions"] if e["extn_id"].dotted.endswith(".1.4")]
    assert hw[0]["extn_value"].contents == milan.chip_id
    ark = parse_cert(milan.ark_der)
    assert ark.self_issued and ark.is_ca and ark.subject_cn == "ARK-Milan"
    orgs = c["tbs_certificate"]["issuer"].native["organization_name"]
    assert orgs == SIMULATED_MARKER
    vlek = parse_cert(milan_vlek.vek_der)
    assert vlek.subject_cn == "SEV-VLEK" and vlek.issuer_cn == "SEV-VLEK-Milan"
    assert "hw_id" not in vlek.amd and vlek.amd["csp_id"] == milan_vlek.csp_id
    turin = parse_cert(FakeAmd("Turin").vek_der)
    assert turin.amd["struct_version"] == 1 and len(turin.amd["hw_id"]) == 8  # type: ignore[arg-type]
    crl = parse_crl(milan.crl(revoked=(5,)))
    assert crl.pss and crl.issuer == ark.subject and crl.revoked == {5}


def test_deterministic(milan: FakeAmd) -> None:
    again = FakeAmd("Milan")
    assert again.ark_der == milan.ark_der and again.vek_der == milan.vek_der
    assert again.report(b"x") == milan.report(b"x")
    other = FakeAmd("Milan", seed=b"another seed")
    assert other.ark_der != milan.ark_der and other.chip_id != milan.chip_id


def test_simulated_attester_uses_the_fake() -> None:
    from atls.attest.simulated import SimulatedAttester

    a = SimulatedAttester("snp", measurement=b"\x07" * 48)
    raw = a.attest(b"r" * 64)
    v = SNP_REPORT.verify(raw, trust=a.trust_store(), collateral=a.collateral(), at=AT)
    assert v.claims["measurement"] == (b"\x07" * 48).hex() and v.report_data == b"r" * 64


# --- cache -------------------------------------------------------------------------------------


def test_results_are_the_same_with_and_without_a_cache(milan: FakeAmd) -> None:
    cache = ChainCache()
    raw = milan.report(b"c")
    a = _verify(milan, raw, cache=cache)
    b = _verify(milan, raw, cache=cache)
    c = _verify(milan, raw, cache=None)
    assert a.to_json() == b.to_json() == c.to_json() and a.checks == b.checks == c.checks
    assert (cache.misses, cache.hits, len(cache)) == (1, 1, 1)
    # A new report under the known VCEK: one more hit, the chain is not re-verified.
    _verify(milan, milan.report(b"d"), cache=cache)
    assert cache.hits == 2
    # The report signature is checked on every call, warm or not.
    with pytest.raises(VerificationError) as e:
        _verify(milan, milan.report(wrong_signer=True), cache=cache)
    assert e.value.code == "snp.signature"


def test_cache_never_hides_a_failure(milan: FakeAmd) -> None:
    cache = ChainCache()
    raw = milan.report()
    _verify(milan, raw, cache=cache)
    # Revocation: the CRL set is part of the key.
    with pytest.raises(VerificationError) as e:
        _verify(milan, raw, milan.collateral(revoke="ask"), cache=cache)
    assert e.value.code == "snp.chain.revoked"
    # Time outside the chain's window: everything is checked again.
    with pytest.raises(VerificationError) as e:
        _verify(milan, raw, cache=cache, at=datetime(2050, 1, 1, tzinfo=UTC))
    assert e.value.code in ("snp.chain.expired", "snp.crl.expired")
    with pytest.raises(VerificationError) as e:
        _verify(milan, raw, cache=cache, at=datetime(2023, 6, 1, tzinfo=UTC))
    assert e.value.code == "snp.chain.not_yet_valid"
    # A different ASK (same name) is a different key.
    with pytest.raises(VerificationError) as e:
        _verify(milan, raw, milan.collateral(wrong_ask=True), cache=cache)
    assert e.value.code == "snp.chain.signature"
    # The trust store is consulted before the cache.
    with pytest.raises(VerificationError) as e:
        verify_report(raw, trust=TrustStore(), collateral=milan.collateral(), at=AT, cache=cache)
    assert e.value.code == "snp.chain.no_anchor"


def test_cache_is_bounded(milan: FakeAmd) -> None:
    cache = ChainCache(maxsize=2, parsed_maxsize=4)
    for tcb_snp in (1, 2, 3, 4):
        tcb = dict(milan.tcb, snp=tcb_snp)
        c = milan.collateral(vcek_tcb=tcb)
        _verify(milan, milan.report(reported_tcb=tcb), c, cache=cache)
    assert len(cache) == 2
    cache.clear()
    assert len(cache) == 0 and cache.hits == 0
    with pytest.raises(ValueError):
        ChainCache(maxsize=0)


def test_window_is_bounded_by_the_crl(milan: FakeAmd) -> None:
    cache = ChainCache()
    crl = milan.crl(next_update=AT + timedelta(days=1))
    c = Collateral((milan.vek_der, milan.ask_der), (crl,))
    _verify(milan, milan.report(), c, cache=cache)
    with pytest.raises(VerificationError) as e:
        _verify(milan, milan.report(), c, cache=cache, at=AT + timedelta(days=2))
    assert e.value.code == "snp.crl.expired"


# --- every flipped byte of the signed region is rejected ---------------------------------------


DEFAULT_CACHE_FOR_FLIPS = ChainCache()


@pytest.fixture(scope="module")
def signed_report(milan: FakeAmd) -> bytes:
    return milan.report(b"flip", host_data=b"\x11" * 32)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.integers(0, 0x29F), st.integers(1, 255))
def test_any_flipped_signed_byte_is_rejected(
    milan: FakeAmd, signed_report: bytes, offset: int, mask: int
) -> None:
    raw = bytearray(signed_report)
    raw[offset] ^= mask
    with pytest.raises(AttestationError):
        _verify(milan, bytes(raw), cache=DEFAULT_CACHE_FOR_FLIPS)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.integers(0x2A0, 0x2A0 + 0x90 - 1), st.integers(1, 255))
def test_any_flipped_signature_byte_is_rejected(
    milan: FakeAmd, signed_report: bytes, offset: int, mask: int
) -> None:
    raw = bytearray(signed_report)
    raw[offset] ^= mask
    with pytest.raises(AttestationError) as e:
        _verify(milan, bytes(raw), cache=DEFAULT_CACHE_FOR_FLIPS)
    assert e.value.code in ("snp.signature", "snp.parse")


@pytest.fixture(scope="module")
def milan_inputs(milan: FakeAmd) -> tuple[TrustStore, Collateral]:
    return milan.trust_store(), milan.collateral()


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(min_size=1184, max_size=1184), st.booleans())
def test_random_evidence_raises_only_attestation_errors(
    milan_inputs: tuple[TrustStore, Collateral], data: bytes, plausible: bool
) -> None:
    if plausible:  # a supported version, algorithm and policy: reach the later checks
        data = b"\x03\x00\x00\x00" + data[4:8] + (0x30000).to_bytes(8, "little") + data[16:]
        data = data[:0x34] + b"\x01\x00\x00\x00" + data[0x38:0x48] + bytes(8) + data[0x50:]
    trust, collateral = milan_inputs
    with pytest.raises(AttestationError):
        SNP_REPORT.verify(data, trust=trust, collateral=collateral, at=AT)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.integers(0, 1400), st.integers(1, 255), st.sampled_from(["vek", "ask"]))
def test_mutated_certificates_raise_only_attestation_errors(
    milan: FakeAmd, offset: int, mask: int, which: str
) -> None:
    vek, ask = bytearray(milan.vek_der), bytearray(milan.ask_der)
    target = vek if which == "vek" else ask
    offset %= len(target)
    target[offset] ^= mask
    c = Collateral((bytes(vek), bytes(ask)))
    try:
        _verify(milan, milan.report(), c, cache=DEFAULT_CACHE_FOR_FLIPS)
    except AttestationError:
        return
    pytest.fail(f"mutated {which} byte {offset} ^ {mask:#x} still verified")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2048))
def test_certificate_and_crl_parsers_raise_only_value_errors(data: bytes) -> None:
    for parse in (parse_cert, parse_crl):
        with contextlib.suppress(ValueError):
            parse(data)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.integers(0, 2000), st.integers(1, 255), st.booleans())
def test_mutated_der_parses_or_raises_value_error(
    milan: FakeAmd, offset: int, mask: int, crl: bool
) -> None:
    der = bytearray(milan.crl(revoked=(7,)) if crl else milan.vek_der)
    der[offset % len(der)] ^= mask
    with contextlib.suppress(ValueError):
        (parse_crl if crl else parse_cert)(bytes(der))
