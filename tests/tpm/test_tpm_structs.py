"""TPM 2.0 structure parsers: TPMS_ATTEST, TPMT_SIGNATURE, TPM2B_PUBLIC / TPMT_PUBLIC.

Property tests: random bytes raise only EvidenceParseError / UnsupportedEvidenceError;
parse(encode(x)) == x; strict bounds (trailing bytes, lying sizes, over-long fields)."""

from __future__ import annotations

import contextlib
import hashlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atls.errors import EvidenceParseError, UnsupportedEvidenceError
from atls.evidence.tpm import (
    ALG_ECC,
    ALG_ECDSA,
    ALG_NULL,
    ALG_RSA,
    ALG_RSAPSS,
    ALG_RSASSA,
    ALG_SHA1,
    ALG_SHA256,
    ALG_SHA384,
    ATTEST_QUOTE,
    ATTR_RESERVED,
    TPM_GENERATED_VALUE,
    ClockInfo,
    PcrSelection,
    TpmsAttest,
    TpmtPublic,
    TpmtSignature,
    attribute_names,
    encode_attest,
    encode_public,
    encode_signature,
    parse_attest,
    parse_public,
    parse_signature,
)
from atls.testing.tpm import DEFAULT_ATTRIBUTES, FakeTpm

PARSE_ERRORS = (EvidenceParseError, UnsupportedEvidenceError)
FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _attest(extra: bytes = b"\x01" * 32, sel: tuple[int, ...] = (0, 1, 16)) -> TpmsAttest:
    return TpmsAttest(
        ATTEST_QUOTE,
        ALG_SHA256.to_bytes(2, "big") + bytes(range(32)),
        extra,
        ClockInfo(123456, 7, 2, True),
        0x0001000200030004,
        (PcrSelection(ALG_SHA256, 3, sel),),
        hashlib.sha256(b"x").digest(),
    )


def test_attest_layout_and_size() -> None:
    # measurement-algorithms.md 11.1: SHA-256 Name, one 3-byte selection, 32-byte digest,
    # 32-byte nonce -> 145 bytes
    raw = encode_attest(_attest())
    assert len(raw) == 113 + 32 == 145
    assert raw[:4] == b"\xff\x54\x43\x47" and raw[4:6] == b"\x80\x18"
    a = parse_attest(raw)
    assert a == _attest() and a.raw == raw
    assert a.pcr_select[0].indices == (0, 1, 16) and a.pcr_select[0].bank == "sha256"


def test_tpm2b_attest_framing_is_stripped() -> None:
    raw = encode_attest(_attest())
    framed = len(raw).to_bytes(2, "big") + raw
    assert parse_attest(framed).raw == raw


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda b: b"\x00" + b[1:], "tpm.attest.magic"),
        (lambda b: b + b"\x00", "tpm.attest.parse"),  # trailing byte
        (lambda b: b[:-1], "tpm.attest.parse"),  # truncated
        (lambda b: b[:4] + b"\x99\x99" + b[6:], "tpm.attest.parse"),  # unknown type
    ],
)
def test_attest_strictness(mutate: object, code: str) -> None:
    raw = encode_attest(_attest())
    with pytest.raises(EvidenceParseError) as ei:
        parse_attest(mutate(raw))  # type: ignore[operator]
    assert ei.value.code == code


def test_certify_is_unsupported_not_a_quote() -> None:
    a = _attest()
    raw = encode_attest(
        TpmsAttest(
            0x8017,
            *[
                getattr(a, f)
                for f in (
                    "qualified_signer",
                    "extra_data",
                    "clock_info",
                    "firmware_version",
                    "pcr_select",
                    "pcr_digest",
                )
            ],
        )
    )
    with pytest.raises(UnsupportedEvidenceError) as ei:
        parse_attest(raw)
    assert ei.value.code == "tpm.attest.type"


def test_attest_bounds() -> None:
    # extraData longer than sizeof(TPMT_HA) (66)
    with pytest.raises(EvidenceParseError, match="exceeds"):
        parse_attest(encode_attest(_attest(extra=bytes(67))))
    # clockInfo.safe must be 0 or 1
    raw = bytearray(encode_attest(_attest()))
    safe_at = 4 + 2 + 2 + 34 + 2 + 32 + 16
    assert raw[safe_at] == 1
    raw[safe_at] = 2
    with pytest.raises(EvidenceParseError, match="safe"):
        parse_attest(bytes(raw))
    # a PCR selection bitmap longer than 8 bytes
    big = encode_attest(_attest())
    bad = big.replace(b"\x00\x0b\x03\x03\x00\x01", b"\x00\x0b\x09\x03\x00\x01")
    with pytest.raises(EvidenceParseError):
        parse_attest(bad)


def test_qualified_signer_name_size_must_match_its_hash() -> None:
    a = _attest()
    bad = TpmsAttest(
        ATTEST_QUOTE,
        ALG_SHA256.to_bytes(2, "big") + bytes(20),
        a.extra_data,
        a.clock_info,
        a.firmware_version,
        a.pcr_select,
        a.pcr_digest,
    )
    with pytest.raises(EvidenceParseError, match="name of 22 bytes"):
        parse_attest(encode_attest(bad))


def test_signatures_round_trip_and_reject_unknown() -> None:
    for s in (
        TpmtSignature(ALG_RSASSA, ALG_SHA256, signature=bytes(256)),
        TpmtSignature(ALG_RSAPSS, ALG_SHA384, signature=bytes(384)),
        TpmtSignature(ALG_ECDSA, ALG_SHA256, r=b"\x01" * 32, s=b"\x02" * 32),
    ):
        raw = encode_signature(s)
        assert parse_signature(raw) == s
        with pytest.raises(EvidenceParseError):
            parse_signature(raw + b"\x00")
    # RSASSA-SHA256 with a 2048-bit key: 262 bytes (11.3)
    assert len(encode_signature(TpmtSignature(ALG_RSASSA, ALG_SHA256, signature=bytes(256)))) == 262
    assert (
        len(encode_signature(TpmtSignature(ALG_ECDSA, ALG_SHA256, r=bytes(32), s=bytes(32)))) == 72
    )
    with pytest.raises(UnsupportedEvidenceError) as ei:
        parse_signature(b"\x00\x05\x00\x0b\x00\x00")  # HMAC
    assert ei.value.code == "tpm.signature.alg"
    with pytest.raises(EvidenceParseError):
        parse_signature(b"\x00\x10\x00\x0b\x00\x00")  # NULL
    with pytest.raises(EvidenceParseError, match="exceeds"):
        parse_signature(b"\x00\x14\x00\x0b\x02\x01" + bytes(513))  # > MAX_RSA_KEY_BYTES


def test_public_area_sizes_and_names() -> None:
    ecc = FakeTpm(key="ecc")
    # 11.4: ECC P-256 AK with empty authPolicy -> TPM2B_PUBLIC of 90 bytes
    assert len(ecc.ak_public) == 90
    p = parse_public(ecc.ak_public)
    assert p.type == ALG_ECC and p.curve == 0x0003 and p.scheme == ALG_ECDSA
    assert p.raw == ecc.tpmt_public and p.attributes == DEFAULT_ATTRIBUTES
    # 11.5: Name = nameAlg || H(TPMT_PUBLIC); the size prefix is not hashed
    assert p.name() == b"\x00\x0b" + hashlib.sha256(ecc.tpmt_public).digest()
    assert parse_public(ecc.tpmt_public, tpm2b_framed=False) == p
    rsa = FakeTpm(key="rsa")
    assert len(rsa.tpmt_public) == 280  # RSA-2048 AK, empty authPolicy
    assert parse_public(rsa.ak_public).key_type == "rsa-2048"
    assert attribute_names(0x00050072) == [
        "fixedTPM",
        "fixedParent",
        "sensitiveDataOrigin",
        "userWithAuth",
        "restricted",
        "sign",
    ]


def test_public_strictness() -> None:
    ecc = FakeTpm(key="ecc")
    with pytest.raises(EvidenceParseError, match="size"):
        parse_public(ecc.ak_public + b"\x00")  # TPM2B size lies
    with pytest.raises(EvidenceParseError):
        parse_public(ecc.tpmt_public + b"\x00", tpm2b_framed=False)  # trailing byte
    keyed = b"\x00\x08" + ecc.tpmt_public[2:]
    with pytest.raises(UnsupportedEvidenceError) as ei:
        parse_public(keyed, tpm2b_framed=False)
    assert ei.value.code == "tpm.ak.type"
    # a point that is not on the curve parses but is not a key
    p = parse_public(ecc.ak_public)
    off = TpmtPublic(
        p.type,
        p.name_alg,
        p.attributes,
        p.auth_policy,
        p.symmetric,
        p.scheme,
        p.scheme_hash,
        curve=p.curve,
        ecc_x=p.ecc_x,
        ecc_y=bytes(32),
    )
    bad = parse_public(encode_public(off))
    with pytest.raises(EvidenceParseError) as ei2:
        bad.public_key()
    assert ei2.value.code == "tpm.ak.key"


def test_reserved_attribute_bits_are_rejected() -> None:
    ecc = FakeTpm(key="ecc")
    raw = bytearray(ecc.ak_public)
    raw[6] |= 0x01  # objectAttributes bit 24 (reserved)
    with pytest.raises(EvidenceParseError, match="reserved"):
        parse_public(bytes(raw))


def test_rsa_exponent_zero_means_65537() -> None:
    rsa = FakeTpm(key="rsa")
    p = parse_public(rsa.ak_public)
    assert p.rsa_exponent == 0
    assert p.public_key().public_numbers().e == 65537  # type: ignore[union-attr]


# --- property tests ---------------------------------------------------------------------------


@FAST
@given(st.binary(max_size=400))
def test_random_bytes_never_crash_the_parsers(data: bytes) -> None:
    for parse in (parse_attest, parse_signature, parse_public):
        with contextlib.suppress(*PARSE_ERRORS):
            parse(data)
    with contextlib.suppress(*PARSE_ERRORS):
        parse_public(data, tpm2b_framed=False)


def _mutations(base: bytes) -> st.SearchStrategy[bytes]:
    return st.tuples(st.integers(0, len(base) - 1), st.integers(1, 255)).map(
        lambda t: base[: t[0]] + bytes([base[t[0]] ^ t[1]]) + base[t[0] + 1 :]
    )


_ATTEST = encode_attest(_attest())


@FAST
@given(_mutations(_ATTEST))
def test_mutated_attest_parses_or_raises_a_parse_error(data: bytes) -> None:
    with contextlib.suppress(*PARSE_ERRORS):
        parse_attest(data)


hashes_ = st.sampled_from([ALG_SHA1, ALG_SHA256, ALG_SHA384])


@st.composite
def attests(draw: st.DrawFn) -> TpmsAttest:
    h = draw(hashes_)
    size = {ALG_SHA1: 20, ALG_SHA256: 32, ALG_SHA384: 48}[h]
    banks = draw(st.lists(hashes_, min_size=0, max_size=3, unique=True))
    sels = tuple(
        PcrSelection(b, 3, tuple(sorted(draw(st.sets(st.integers(0, 23), max_size=24)))))
        for b in banks
    )
    return TpmsAttest(
        ATTEST_QUOTE,
        h.to_bytes(2, "big") + draw(st.binary(min_size=size, max_size=size)),
        draw(st.binary(max_size=64)),
        ClockInfo(
            draw(st.integers(0, 2**64 - 1)),
            draw(st.integers(0, 2**32 - 1)),
            draw(st.integers(0, 2**32 - 1)),
            draw(st.booleans()),
        ),
        draw(st.integers(0, 2**64 - 1)),
        sels,
        draw(st.binary(min_size=size, max_size=size)),
    )


@FAST
@given(attests())
def test_attest_round_trip(a: TpmsAttest) -> None:
    raw = encode_attest(a)
    assert parse_attest(raw) == a
    assert encode_attest(parse_attest(raw)) == raw


@st.composite
def publics(draw: st.DrawFn) -> TpmtPublic:
    attrs = draw(st.integers(0, 2**32 - 1)) & ~ATTR_RESERVED
    policy = draw(st.binary(max_size=64))
    if draw(st.booleans()):
        rscheme = draw(st.sampled_from([ALG_RSASSA, ALG_RSAPSS, ALG_NULL]))
        return TpmtPublic(
            ALG_RSA,
            ALG_SHA256,
            attrs,
            policy,
            ALG_NULL,
            rscheme,
            ALG_SHA256 if rscheme != ALG_NULL else ALG_NULL,
            rsa_bits=2048,
            rsa_exponent=draw(st.sampled_from([0, 65537, 3])),
            unique=draw(st.binary(min_size=256, max_size=256)),
        )
    scheme = draw(st.sampled_from([ALG_ECDSA, ALG_NULL]))
    return TpmtPublic(
        ALG_ECC,
        ALG_SHA256,
        attrs,
        policy,
        ALG_NULL,
        scheme,
        ALG_SHA256 if scheme != ALG_NULL else ALG_NULL,
        curve=0x0003,
        ecc_x=draw(st.binary(max_size=32)),
        ecc_y=draw(st.binary(max_size=32)),
    )


@FAST
@given(publics())
def test_public_round_trip(p: TpmtPublic) -> None:
    raw = encode_public(p)
    assert parse_public(raw) == p
    assert parse_public(raw).name() == b"\x00\x0b" + hashlib.sha256(raw[2:]).digest()


def test_vector_ak_publics_parse(vectors: object) -> None:
    from pathlib import Path

    v = Path(str(vectors))
    gce = parse_public(
        (v / "tpm/go-tpm-tools/gce-cos-85-no-nonce/ak_pub.tpmt").read_bytes(), tpm2b_framed=False
    )
    assert gce.attributes == 0x00050072 and gce.key_type == "rsa-2048"
    assert (gce.scheme, gce.scheme_hash) == (ALG_RSASSA, ALG_SHA256)
    win = parse_public(
        (v / "tpm/go-attestation/windows_gcp_shielded_vm.ak_pub.tpmt").read_bytes(),
        tpm2b_framed=False,
    )
    assert (win.scheme, win.scheme_hash) == (ALG_RSASSA, ALG_SHA1) and win.auth_policy
    assert len(encode_public(gce, tpm2b_framed=False)) == 280
    assert encode_public(gce, tpm2b_framed=False) == gce.raw
    assert TPM_GENERATED_VALUE == 0xFF544347
