import contextlib
import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

from atls.collateral import Collateral, Document
from atls.errors import EvidenceParseError
from atls.x509ext import (
    EVIDENCE_OID,
    MAX_EVIDENCE_EXTENSION,
    STAPLED_COLLATERAL_OID,
    decode_collateral,
    decode_evidence,
    encode_collateral,
    encode_evidence,
    issue_attested_cert,
)


def test_evidence_round_trip():
    raw = encode_evidence("sev-snp-report", "atls-v1", b"\x00\x01" * 600)
    ext = decode_evidence(raw)
    assert (ext.format, ext.binding, ext.evidence) == (
        "sev-snp-report",
        "atls-v1",
        b"\x00\x01" * 600,
    )


def test_collateral_round_trip():
    c = Collateral((b"cert",), (b"crl",), (Document("tdx-tcb-info", b"{}", b"sig", (b"c1",)),))
    back = decode_collateral(encode_collateral(c))
    assert back.certificates == c.certificates
    assert back.crls == c.crls
    assert back.documents == c.documents


def test_unknown_version_is_rejected():
    raw = bytearray(encode_evidence("f", "b", b"e"))
    # SEQUENCE { INTEGER 1 ... }: the version byte is at offset 4
    assert raw[2:5] == b"\x02\x01\x01"
    raw[4] = 2
    with pytest.raises(EvidenceParseError) as e:
        decode_evidence(bytes(raw))
    assert e.value.code == "x509ext.version"


def test_oversized_extension_is_rejected_before_decoding():
    with pytest.raises(EvidenceParseError, match="cap"):
        decode_evidence(b"\x30" + b"\x00" * MAX_EVIDENCE_EXTENSION)


def test_non_canonical_der_is_rejected():
    good = encode_evidence("f", "b", b"e")
    # long-form length encoding of the outer SEQUENCE is valid BER, not DER
    body = good[2:]
    bad = b"\x30\x81" + bytes([len(body)]) + body
    with pytest.raises(EvidenceParseError):
        decode_evidence(bad)


@given(st.binary(max_size=300))
def test_random_bytes_raise_only_parse_errors(data):
    for fn in (decode_evidence, decode_collateral):
        with contextlib.suppress(EvidenceParseError):
            fn(data)


@given(st.text(max_size=20), st.text(max_size=20), st.binary(max_size=200))
def test_round_trip_property(fmt, binding, evidence):
    ext = decode_evidence(encode_evidence(fmt, binding, evidence))
    assert (ext.format, ext.binding, ext.evidence) == (fmt, binding, evidence)


def test_issued_certificate_carries_non_critical_extensions():
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = issue_attested_cert(
        key,
        evidence_format="f",
        evidence=b"ev",
        binding="atls-v1",
        collateral=Collateral((b"x",)),
        not_before=now,
        lifetime=dt.timedelta(minutes=5),
    )
    ev = cert.extensions.get_extension_for_oid(EVIDENCE_OID)
    st_ = cert.extensions.get_extension_for_oid(STAPLED_COLLATERAL_OID)
    assert not ev.critical and not st_.critical
    assert isinstance(ev.value, x509.UnrecognizedExtension)
    assert decode_evidence(ev.value.value).evidence == b"ev"
    assert cert.issuer == cert.subject
    cert.verify_directly_issued_by(cert)
