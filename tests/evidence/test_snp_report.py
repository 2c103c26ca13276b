"""SEV-SNP report parser: layout, strictness, version handling, property tests."""

from __future__ import annotations

import contextlib
import hashlib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atls.errors import EvidenceParseError, UnsupportedEvidenceError
from atls.evidence.snp import (
    REPORT_SIZE,
    SNP_REPORT,
    TcbVersion,
    collateral_inputs,
    parse_report,
    product_from_cpuid,
)
from atls.testing.snp import FakeAmd


@pytest.fixture(scope="module")
def milan() -> FakeAmd:
    return FakeAmd("Milan")


@pytest.fixture(scope="module")
def turin() -> FakeAmd:
    return FakeAmd("Turin")


def _patch(raw: bytes, offset: int, value: bytes) -> bytes:
    return raw[:offset] + value + raw[offset + len(value) :]


def test_layout_of_a_built_report(milan: FakeAmd) -> None:
    rd = bytes(range(64))
    meas = hashlib.sha384(b"m").digest()
    host = hashlib.sha256(b"h").digest()
    raw = milan.report(
        rd, measurement=meas, host_data=host, vmpl=2, guest_svn=7, family_id=b"F" * 16,
        image_id=b"I" * 16, id_key_digest=b"k" * 48, author_key_digest=b"a" * 48,
        author_key_en=True, report_id_ma=b"m" * 32, platform_info=0x25,
    )  # fmt: skip
    assert len(raw) == REPORT_SIZE == 1184
    r = parse_report(raw)
    # Offsets of the ABI table, read directly from the bytes.
    assert raw[0x50:0x90] == rd == r.report_data
    assert raw[0x90:0xC0] == meas == r.measurement
    assert raw[0xC0:0xE0] == host == r.host_data
    assert raw[0x1A0:0x1E0] == milan.chip_id == r.chip_id
    assert int.from_bytes(raw[0x30:0x34], "little") == 2 == r.vmpl
    assert r.version == 3 and r.guest_svn == 7 and r.signature_algo == 1
    assert r.family_id == b"F" * 16 and r.image_id == b"I" * 16
    assert r.id_key_digest == b"k" * 48 and r.author_key_digest == b"a" * 48
    assert r.author_key_en and not r.mask_chip_key and r.signing_key_name == "vcek"
    assert r.report_id_ma == b"m" * 32 and r.platform_info == 0x25
    assert (r.cpuid_fam_id, r.cpuid_mod_id, r.cpuid_step) == (0x19, 0x01, 0x01)
    assert r.cpuid_product == "Milan"
    assert r.launch_mit_vector is None and r.current_mit_vector is None
    assert r.signed_bytes == raw[:0x2A0]
    tcb = r.tcb("reported_tcb", "Milan")
    assert tcb.as_dict() == milan.tcb
    # Milan layout: bootloader byte 0, tee 1, snp 6, microcode 7.
    assert raw[0x180:0x188] == bytes([4, 0, 0, 0, 0, 0, 23, 213])
    assert (r.current_major, r.current_minor, r.current_build) == (1, 55, 40)
    # R and S: 72 little-endian bytes each, only the low 48 used.
    assert raw[0x2A0 + 48 : 0x2A0 + 72] == bytes(24)
    assert r.signature_r == int.from_bytes(raw[0x2A0 : 0x2A0 + 72], "little")
    assert r.signature_s == int.from_bytes(raw[0x2E8 : 0x2E8 + 72], "little")
    claims = r.claims("Milan")
    assert claims["reported_tcb"] == milan.tcb
    assert claims["reported_tcb_raw"] == raw[0x180:0x188].hex()
    assert claims["platform_info_smt_en"] and claims["platform_info_ecc_en"]
    assert not claims["platform_info_tsme_en"]


def test_turin_tcb_layout_and_v5_fields(turin: FakeAmd) -> None:
    raw = turin.report(b"t", launch_mit_vector=5, current_mit_vector=7)
    r = parse_report(raw)
    assert r.version == 5 and r.cpuid_product == "Turin"
    assert (r.launch_mit_vector, r.current_mit_vector) == (5, 7)
    # Turin layout: fmc byte 0, bootloader 1, tee 2, snp 3, microcode 7.
    assert raw[0x180:0x188] == bytes([1, 1, 1, 4, 0, 0, 0, 81])
    assert r.tcb("reported_tcb", "Turin").as_dict() == turin.tcb
    assert turin.chip_id[8:] == bytes(56)


def test_version_2_has_no_cpuid(milan: FakeAmd) -> None:
    r = parse_report(milan.report(version=2))
    assert r.version == 2 and r.cpuid_fam_id is None and r.cpuid_product is None
    claims = r.claims(None)
    assert "reported_tcb" not in claims and "cpuid_fam_id" not in claims
    assert claims["reported_tcb_raw"] == r.raw[0x180:0x188].hex()


def test_tcb_version_encode_decode() -> None:
    for product, comps in (
        ("Milan", {"bootloader": 3, "tee": 0, "snp": 8, "microcode": 115}),
        ("Genoa", {"bootloader": 10, "tee": 1, "snp": 23, "microcode": 84}),
        ("Turin", {"bootloader": 1, "tee": 1, "snp": 4, "microcode": 81, "fmc": 1}),
    ):
        raw = TcbVersion.encode(product, **comps)
        assert TcbVersion.decode(raw, product).as_dict() == comps
    # The value go-sev-guest prints for its Milan sample (bl 2, snp 5, ucode 68).
    assert (
        TcbVersion.encode("Milan", bootloader=2, tee=0, snp=5, microcode=68) == 0x4405000000000002
    )
    with pytest.raises(ValueError):
        TcbVersion.decode(0, "Venice")
    with pytest.raises(ValueError):
        TcbVersion.encode("Milan", bootloader=1, tee=0, snp=0, microcode=0, fmc=1)


@pytest.mark.parametrize(
    ("family", "model", "product"),
    [
        (0x19, 0x01, "Milan"),
        (0x19, 0x00, "Milan"),
        (0x19, 0x11, "Genoa"),
        (0x19, 0xA0, "Genoa"),
        (0x1A, 0x02, "Turin"),
        (0x1A, 0x11, "Turin"),
        (0x1A, 0x50, None),
        (0x17, 0x31, None),
    ],
)
def test_product_from_cpuid(family: int, model: int, product: str | None) -> None:
    assert product_from_cpuid(family, model) == product


@pytest.mark.parametrize("size", [0, 3, 4, 1183, 1185, 1240, 4096])
def test_wrong_size_is_a_parse_error(milan: FakeAmd, size: int) -> None:
    raw = (milan.report() * 4)[:size]
    with pytest.raises(EvidenceParseError) as e:
        parse_report(raw)
    assert e.value.code == "snp.parse"


@pytest.mark.parametrize("version", [0, 1, 4, 6, 0xFFFFFFFF])
def test_unknown_versions_are_unsupported(milan: FakeAmd, version: int) -> None:
    raw = _patch(milan.report(), 0, version.to_bytes(4, "little"))
    with pytest.raises(UnsupportedEvidenceError) as e:
        parse_report(raw)
    assert e.value.code == "snp.unsupported.version"


@pytest.mark.parametrize("algo", [0, 2, 0x100])
def test_unknown_signature_algorithm_is_unsupported(milan: FakeAmd, algo: int) -> None:
    raw = _patch(milan.report(), 0x34, algo.to_bytes(4, "little"))
    with pytest.raises(UnsupportedEvidenceError) as e:
        parse_report(raw)
    assert e.value.code == "snp.unsupported.signature_algo"


@pytest.mark.parametrize(
    ("offset", "value", "field"),
    [
        (0x08, (0x30000 & ~(1 << 17)).to_bytes(8, "little"), "policy"),  # bit 17 must be 1
        (0x08, (0x30000 | 1 << 26).to_bytes(8, "little"), "policy"),  # bits 63:26 reserved
        (0x08, (0x30000 | 1 << 63).to_bytes(8, "little"), "policy"),
        (0x48, (1 << 5).to_bytes(4, "little"), "signing_key"),  # bits 31:5 reserved
        (0x48, (2 << 2).to_bytes(4, "little"), "signing_key"),  # SIGNING_KEY 2..6 reserved
        (0x48, (6 << 2).to_bytes(4, "little"), "signing_key"),
        (0x4C, b"\x01", "reserved_0x4c"),
        (0x18B, b"\x01", "reserved_0x18b"),
        (0x19F, b"\x80", "reserved_0x18b"),
        (0x1EB, b"\x01", "reserved_0x1eb"),
        (0x1EF, b"\x01", "reserved_0x1ef"),
        (0x1F8, b"\x01", "reserved_0x1f8"),  # v3: the mitigation vectors are reserved
        (0x29F, b"\x01", "reserved_0x1f8"),
        (0x2A0 + 48, b"\x01", "signature_r"),  # R is zero-extended
        (0x2E8 + 71, b"\x01", "signature_s"),
        (0x330, b"\x01", "signature_reserved"),
        (0x49F, b"\x01", "signature_reserved"),
    ],
)
def test_reserved_fields_must_be_zero(
    milan: FakeAmd, offset: int, value: bytes, field: str
) -> None:
    raw = _patch(milan.report(), offset, value)
    with pytest.raises(EvidenceParseError) as e:
        parse_report(raw)
    assert e.value.code == "snp.parse"
    assert e.value.field == field
    assert e.value.offset is not None and e.value.offset <= offset


def test_version_2_reserves_the_cpuid_bytes(milan: FakeAmd) -> None:
    raw = _patch(milan.report(version=2), 0x188, b"\x19")
    with pytest.raises(EvidenceParseError) as e:
        parse_report(raw)
    assert e.value.field == "reserved_0x188"


def test_version_5_reserves_after_the_mitigation_vectors(turin: FakeAmd) -> None:
    raw = turin.report()
    assert parse_report(_patch(raw, 0x1F8, b"\x01")).launch_mit_vector == 1
    with pytest.raises(EvidenceParseError) as e:
        parse_report(_patch(raw, 0x208, b"\x01"))
    assert e.value.field == "reserved_0x208"


def test_signing_key_none_parses(milan: FakeAmd) -> None:
    r = parse_report(milan.report(signing_key="none", mask_chip_key=True))
    assert r.signing_key_name == "none" and r.mask_chip_key


def test_policy_bits_are_exposed(milan: FakeAmd) -> None:
    r = parse_report(milan.report(debug=True, migrate_ma=True, smt=False))
    assert r.debug and r.migrate_ma_allowed and not r.smt_allowed
    c = r.claims("Milan")
    assert c["policy"] == r.policy == 0x30000 & ~(1 << 16) | 1 << 18 | 1 << 19
    assert c["policy_debug"] is True and c["policy_migrate_ma"] is True
    assert c["policy_smt"] is False and c["policy_single_socket"] is False


def test_sniff(milan: FakeAmd) -> None:
    raw = milan.report()
    assert SNP_REPORT.sniff(raw)
    assert SNP_REPORT.name == "sev-snp-report" and SNP_REPORT.platform == "snp"
    assert not SNP_REPORT.sniff(raw[:-1])
    assert not SNP_REPORT.sniff(bytes(REPORT_SIZE))
    assert not SNP_REPORT.sniff(_patch(raw, 0x34, b"\x02"))
    assert not SNP_REPORT.sniff(b"\x04\x00\x02\x00\x81\x00\x00\x00" + bytes(1176))  # TDX quote


def test_collateral_inputs(milan: FakeAmd, turin: FakeAmd) -> None:
    got = collateral_inputs(turin.report())
    assert got == {
        "product": "Turin",
        "signing_key": "vcek",
        "chip_id": turin.chip_id.hex(),
        "reported_tcb": turin.tcb,
        "reported_tcb_raw": bytes([1, 1, 1, 4, 0, 0, 0, 81]).hex(),
    }
    v2 = collateral_inputs(milan.report(version=2))
    assert v2 is not None and v2["product"] is None and v2["reported_tcb"] is None
    assert collateral_inputs(b"not a report") is None


# --- property tests ---------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2 * REPORT_SIZE))
def test_random_bytes_raise_only_parse_errors(data: bytes) -> None:
    with contextlib.suppress(EvidenceParseError, UnsupportedEvidenceError):
        parse_report(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.binary(min_size=REPORT_SIZE, max_size=REPORT_SIZE),
    st.sampled_from([2, 3, 5]),
    st.booleans(),
)
def test_random_reports_of_a_known_version_raise_only_parse_errors(
    data: bytes, version: int, plausible: bool
) -> None:
    raw = version.to_bytes(4, "little") + data[4:]
    if plausible:  # get past the early checks so the later fields are exercised
        raw = _patch(raw, 0x08, (0x30000).to_bytes(8, "little"))
        raw = _patch(raw, 0x34, (1).to_bytes(4, "little"))
        raw = _patch(raw, 0x48, bytes(8))
    try:
        r = parse_report(raw)
    except (EvidenceParseError, UnsupportedEvidenceError):
        return
    assert r.raw == raw


@pytest.fixture(scope="module")
def base_report(milan: FakeAmd) -> bytes:
    return milan.report()


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.integers(0, REPORT_SIZE - 1), st.integers(1, 255))
def test_mutated_reports_parse_or_raise_parse_errors(
    base_report: bytes, offset: int, mask: int
) -> None:
    raw = _patch(base_report, offset, bytes([base_report[offset] ^ mask]))
    with contextlib.suppress(EvidenceParseError, UnsupportedEvidenceError):
        parse_report(raw)


_FIELDS = st.fixed_dictionaries(
    {
        "report_data": st.binary(max_size=64),
        "measurement": st.binary(min_size=48, max_size=48),
        "host_data": st.binary(min_size=32, max_size=32),
        "vmpl": st.integers(0, 3),
        "guest_svn": st.integers(0, 2**32 - 1),
        "version": st.sampled_from([2, 3, 5]),
        "debug": st.booleans(),
        "smt": st.booleans(),
        "migrate_ma": st.booleans(),
        "reported_tcb": st.fixed_dictionaries(
            {
                "bootloader": st.integers(0, 255),
                "tee": st.integers(0, 255),
                "snp": st.integers(0, 255),
                "microcode": st.integers(0, 255),
            }
        ),
    }
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(_FIELDS)
def test_parse_of_serialize_round_trips(milan: FakeAmd, fields: dict[str, Any]) -> None:
    raw = milan.report(**fields)
    r = parse_report(raw)
    assert r.raw == raw
    assert r.report_data == bytes(fields["report_data"]).ljust(64, b"\0")
    assert r.measurement == fields["measurement"] and r.host_data == fields["host_data"]
    assert r.vmpl == fields["vmpl"] and r.guest_svn == fields["guest_svn"]
    assert r.version == fields["version"]
    assert r.debug is fields["debug"] and r.smt_allowed is fields["smt"]
    assert r.migrate_ma_allowed is fields["migrate_ma"]
    assert r.tcb("reported_tcb", "Milan").as_dict() == fields["reported_tcb"]
