"""The SNP extended-report certificate table (configfs-tsm auxblob): parser and encoder."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atls.attest.configfs_tsm import (
    CERT_TABLE_ENTRY_SIZE,
    GUID_ARK,
    GUID_ASK,
    GUID_CRL,
    GUID_VCEK,
    GUID_VLEK,
    CertTable,
    CertTableEntry,
    build_cert_table,
    parse_cert_table,
)
from atls.errors import EvidenceParseError
from atls.testing.fake_tsm import snp_cert_entries


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(
    cn: str, key: ec.EllipticCurvePrivateKey, issuer: str, signer: ec.EllipticCurvePrivateKey
) -> bytes:
    now = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(signer, hashes.SHA256())
        .public_bytes(serialization.Encoding.DER)
    )


@pytest.fixture(scope="module")
def chain() -> dict[str, bytes]:
    ark_k, ask_k, leaf_k = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(_name("ARK-Test"))
        .last_update(dt.datetime(2025, 1, 1, tzinfo=dt.UTC))
        .next_update(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
        .sign(ark_k, hashes.SHA256())
        .public_bytes(serialization.Encoding.DER)
    )
    return {
        "ark": _cert("ARK-Test", ark_k, "ARK-Test", ark_k),
        "ask": _cert("SEV-Test", ask_k, "ARK-Test", ark_k),
        "vcek": _cert("SEV-VCEK", leaf_k, "SEV-Test", ask_k),
        "vlek": _cert("SEV-VLEK", leaf_k, "SEV-Test", ask_k),
        "crl": crl,
    }


def _entry(guid: uuid.UUID | bytes, offset: int, length: int) -> bytes:
    g = guid.bytes if isinstance(guid, uuid.UUID) else guid
    return g + offset.to_bytes(4, "little") + length.to_bytes(4, "little")


TERMINATOR = bytes(CERT_TABLE_ENTRY_SIZE)


# -- wire format ---------------------------------------------------------------------------


def test_guid_wire_bytes_are_pinned() -> None:
    """The GUIDs go on the wire in the order their text is written (uuid_parse), not in the
    mixed-endian UEFI order: pinned here independently of the encoder."""
    blob = build_cert_table([(GUID_VCEK, b"\x30\x00")])
    assert blob[:16] == bytes.fromhex("63da758de6644564adc5f4b93be8accd")
    assert blob[16:20] == (48).to_bytes(4, "little")  # one entry + terminator
    assert blob[20:24] == (2).to_bytes(4, "little")
    assert blob[24:48] == TERMINATOR
    assert blob[48:] == b"\x30\x00"
    assert GUID_VLEK.bytes == bytes.fromhex("a8074bc2a25a483eaae639c045a0b8a1")
    assert GUID_ASK.bytes == bytes.fromhex("4ab7b379bbac4fe4a02f05aef327c782")
    assert GUID_ARK.bytes == bytes.fromhex("c0b406a4a803495297433fb6014cd0ae")
    assert GUID_CRL.bytes == bytes.fromhex("92f81bc358114d3d97ffd19f88dc67ea")


def test_round_trip_and_collateral_order(chain: dict[str, bytes]) -> None:
    entries = [
        (GUID_ARK, chain["ark"]),
        (GUID_CRL, chain["crl"]),
        (GUID_ASK, chain["ask"]),
        (GUID_VCEK, chain["vcek"]),
    ]
    table = parse_cert_table(build_cert_table(entries))
    assert table.entries == tuple(CertTableEntry(g, d) for g, d in entries)
    assert [e.name for e in table.entries] == ["ark", "crl", "ask", "vcek"]
    assert table.get(GUID_ASK) == chain["ask"]
    assert table.get(GUID_VLEK) is None
    coll = table.collateral()
    assert coll.certificates == (chain["vcek"], chain["ask"], chain["ark"])
    assert coll.crls == (chain["crl"],)


def test_vlek_table(chain: dict[str, bytes]) -> None:
    entries = snp_cert_entries([chain["ark"], chain["vlek"], chain["ask"]])
    assert [g for g, _ in entries] == [GUID_VLEK, GUID_ASK, GUID_ARK]
    table = parse_cert_table(build_cert_table(entries))
    assert table.collateral().certificates == (chain["vlek"], chain["ask"], chain["ark"])


def test_host_layout_with_padding_and_shared_offsets(chain: dict[str, bytes]) -> None:
    """A host may leave gaps and pad the blob (the kernel copies up to max(offset+length))."""
    vcek, ask = chain["vcek"], chain["ask"]
    start = 3 * CERT_TABLE_ENTRY_SIZE + 100
    blob = (
        _entry(GUID_ASK, start + len(vcek) + 7, len(ask))
        + _entry(GUID_VCEK, start, len(vcek))
        + TERMINATOR
        + bytes(100)
        + vcek
        + bytes(7)
        + ask
        + bytes(4096)
    )
    table = parse_cert_table(blob)
    assert table.collateral().certificates == (vcek, ask)


def test_unknown_guid_is_kept_but_not_collateral(chain: dict[str, bytes]) -> None:
    other = uuid.UUID("11111111-2222-3333-4444-555555555555")
    table = parse_cert_table(
        build_cert_table([(other, b"vendor data, not DER"), (GUID_VCEK, chain["vcek"])])
    )
    assert table.unknown == (CertTableEntry(other, b"vendor data, not DER"),)
    assert table.collateral().certificates == (chain["vcek"],)


def test_empty() -> None:
    assert parse_cert_table(b"") == CertTable()
    assert parse_cert_table(TERMINATOR) == CertTable()
    assert parse_cert_table(TERMINATOR + bytes(100)) == CertTable()
    assert build_cert_table([]) == b""
    assert parse_cert_table(b"").collateral().certificates == ()


def test_real_amd_certificates(vectors: Path, chain: dict[str, bytes]) -> None:
    """The Milan VCEK/ASK/ARK from the vectors: DER-checked with asn1crypto (a VCEK's serial
    is 0), placed by chain shape, and carried unchanged."""
    from atls.collateral import load_collateral

    base = vectors / "snp" / "virtee-sev"
    vcek = (base / "vcek_milan.der").read_bytes()
    ask_ark = load_collateral(
        [base / "builtin" / "milan" / "ask.pem", base / "builtin" / "milan" / "ark.pem"]
    )
    ask, ark = ask_ark.certificates
    entries = snp_cert_entries([ark, vcek, ask])
    assert entries == [(GUID_VCEK, vcek), (GUID_ASK, ask), (GUID_ARK, ark)]
    table = parse_cert_table(build_cert_table(entries))
    assert table.collateral().certificates == (vcek, ask, ark)


# -- malformed tables ------------------------------------------------------------------------


def _bad(blob: bytes) -> EvidenceParseError:
    with pytest.raises(EvidenceParseError) as ei:
        parse_cert_table(blob)
    assert ei.value.format == "snp-cert-table"
    assert ei.value.code == "snp-cert-table.parse"
    return ei.value


def test_missing_terminator(chain: dict[str, bytes]) -> None:
    e = _bad(_entry(GUID_VCEK, 24, 10) + bytes(10))
    assert e.offset == 24
    e = _bad(b"\x01" * 23)
    assert (e.field, e.offset) == ("length", 20)


def test_truncated_table(chain: dict[str, bytes]) -> None:
    blob = build_cert_table([(GUID_VCEK, chain["vcek"])])
    _bad(blob[:-1])  # data cut short
    _bad(blob[:30])  # terminator cut short


def test_offset_into_header(chain: dict[str, bytes]) -> None:
    vcek = chain["vcek"]
    e = _bad(_entry(GUID_VCEK, 24, len(vcek)) + TERMINATOR + vcek)
    assert (e.field, e.offset) == ("offset", 16)


def test_past_end(chain: dict[str, bytes]) -> None:
    e = _bad(_entry(GUID_VCEK, 48, 0xFFFFFFFF) + TERMINATOR + chain["vcek"])
    assert e.field == "length"
    _bad(_entry(GUID_VCEK, 0xFFFFFFFF, 0xFFFFFFFF) + TERMINATOR)


def test_zero_length_entry() -> None:
    assert _bad(_entry(GUID_VCEK, 48, 0) + TERMINATOR).field == "length"


def test_duplicate_guid(chain: dict[str, bytes]) -> None:
    v = chain["vcek"]
    blob = _entry(GUID_VCEK, 72, len(v)) + _entry(GUID_VCEK, 72, len(v)) + TERMINATOR + v
    e = _bad(blob)
    assert (e.field, e.offset) == ("guid", 24)


def test_null_guid_entry(chain: dict[str, bytes]) -> None:
    assert _bad(_entry(bytes(16), 48, 1) + TERMINATOR + b"x").field == "guid"


def test_known_guid_with_junk(chain: dict[str, bytes]) -> None:
    e = _bad(build_cert_table([(GUID_ASK, b"\x30\x03\x02\x01\x00")]))
    assert e.field == "ask"
    assert e.offset == 48
    # A certificate under the CRL GUID, a CRL under a certificate GUID.
    assert _bad(build_cert_table([(GUID_CRL, chain["vcek"])])).field == "crl"
    assert _bad(build_cert_table([(GUID_ARK, chain["crl"])])).field == "ark"
    # A certificate with trailing garbage is not exactly one DER certificate.
    assert _bad(build_cert_table([(GUID_VCEK, chain["vcek"] + b"\x00")])).field == "vcek"


def test_check_der_can_be_skipped() -> None:
    blob = build_cert_table([(GUID_VCEK, b"opaque")])
    assert parse_cert_table(blob, check_der=False).get(GUID_VCEK) == b"opaque"


# -- properties ------------------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_raise_only_parse_errors(data: bytes) -> None:
    try:
        table = parse_cert_table(data)
    except EvidenceParseError:
        return
    for e in table.entries:
        assert e.data and e.data in data


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.uuids(), st.binary(min_size=1, max_size=64)),
        max_size=6,
        unique_by=lambda t: t[0],
    ).filter(lambda es: all(g.int != 0 for g, _ in es))
)
def test_build_parse_round_trip(entries: list[tuple[uuid.UUID, bytes]]) -> None:
    table = parse_cert_table(build_cert_table(entries), check_der=False)
    assert [(e.guid, e.data) for e in table.entries] == entries


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(pos=st.integers(min_value=0), bit=st.integers(min_value=0, max_value=7))
def test_any_flipped_bit_is_rejected_or_still_consistent(
    chain: dict[str, bytes], pos: int, bit: int
) -> None:
    """The table is not signed (the certificates are, and the verifier checks them), so a
    flipped bit need not be rejected; but it must give a typed error or a table whose every
    entry lies inside the blob — never a crash."""
    blob = bytearray(build_cert_table([(GUID_VCEK, chain["vcek"]), (GUID_ASK, chain["ask"])]))
    blob[pos % len(blob)] ^= 1 << bit
    try:
        table = parse_cert_table(bytes(blob))
    except EvidenceParseError:
        return
    for e in table.entries:
        assert e.data in bytes(blob)


def test_flipped_bit_in_the_table_header_is_caught(chain: dict[str, bytes]) -> None:
    """Every single-bit change to the offsets or lengths of a tight table is rejected (or the
    changed entry no longer parses as DER)."""
    entries = [(GUID_VCEK, chain["vcek"]), (GUID_ASK, chain["ask"])]
    blob = build_cert_table(entries)
    for i in range(2):
        for off in range(i * 24 + 16, i * 24 + 24):
            for bit in range(8):
                mutated = bytearray(blob)
                mutated[off] ^= 1 << bit
                with pytest.raises(EvidenceParseError):
                    parse_cert_table(bytes(mutated))
