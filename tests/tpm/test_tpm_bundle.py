"""The tpm-quote-bundle CBOR codec: canonical, strict, capped."""

from __future__ import annotations

import contextlib

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atls.errors import EvidenceParseError, UnsupportedEvidenceError
from atls.evidence.tpm import (
    MAX_BUNDLE,
    TPM_QUOTE,
    TpmEvidence,
    decode_bundle,
    encode_bundle,
    looks_like_bundle,
)
from atls.testing.tpm import FakeTpm

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TPM = FakeTpm()
TPM.measure(0, b"firmware")
TPM.ima_measure("/bin/true", b"true")
BUNDLE = TPM.bundle(b"\x42" * 32, pcrs=range(11), ak_certs=[b"\x30\x03\x02\x01\x01"])


def _map() -> dict[str, object]:
    m = cbor2.loads(BUNDLE)
    assert isinstance(m, dict)
    return m


def test_round_trip_and_layout() -> None:
    ev = decode_bundle(BUNDLE)
    assert ev.version == 1 and ev.ak_public == TPM.ak_public
    assert set(ev.pcrs) == {"sha256"} and sorted(ev.pcrs["sha256"]) == list(range(11))
    assert ev.event_log and ev.ima_log and ev.ak_certs == (b"\x30\x03\x02\x01\x01",)
    assert encode_bundle(ev) == BUNDLE
    # canonical order puts "v" first: that is what sniffing looks for
    assert BUNDLE[1:4] == b"\x61v\x01" and looks_like_bundle(BUNDLE)
    assert TPM_QUOTE.sniff(BUNDLE)
    assert set(_map()) == {"v", "attest", "sig", "ak", "pcrs", "akcerts", "tcglog", "imalog"}


def test_optional_fields_are_absent_not_empty() -> None:
    ev = decode_bundle(TPM.bundle(b"n", event_log=None, ima_log=None, ak_certs=()))
    assert ev.event_log is None and ev.ima_log is None and ev.ak_certs == ()
    assert set(cbor2.loads(encode_bundle(ev))) == {"v", "attest", "sig", "ak", "pcrs"}


def _bad(m: object, canonical: bool = True) -> bytes:
    return cbor2.dumps(m, canonical=canonical)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda m: m.update(extra=b""), "unknown keys"),
        (lambda m: m.pop("sig"), "missing keys"),
        (lambda m: m.update(v=True), "unsigned integer"),
        (lambda m: m.update(attest="text"), "byte string"),
        (lambda m: m.update(attest=b""), "empty"),
        (lambda m: m.update(pcrs={"md5": {0: bytes(16)}}), "PCR bank"),
        (lambda m: m.update(pcrs={"sha256": {0: bytes(20)}}), "must be 32 bytes"),
        (lambda m: m.update(pcrs={"sha256": {64: bytes(32)}}), "PCR index"),
        (lambda m: m.update(pcrs={"sha256": {"0": bytes(32)}}), "PCR index"),
        (lambda m: m.update(pcrs={"sha256": {}}), "non-empty"),
        (lambda m: m.update(akcerts=[]), "1..8"),
        (lambda m: m.update(akcerts=[b"x"] * 9), "1..8"),
        (lambda m: m.update(akcerts=[b""]), "DER"),
        (lambda m: m.update(tcglog=b"x" * ((1 << 20) + 1)), "max"),
    ],
)
def test_structural_errors(change: object, match: str) -> None:
    m = _map()
    change(m)  # type: ignore[operator]
    with pytest.raises(EvidenceParseError, match=match) as ei:
        decode_bundle(_bad(m))
    assert ei.value.code == "tpm.bundle.parse"


def test_unknown_version_is_unsupported() -> None:
    m = _map()
    m["v"] = 2
    with pytest.raises(UnsupportedEvidenceError) as ei:
        decode_bundle(_bad(m))
    assert ei.value.code == "tpm.bundle.version"


def test_non_canonical_encodings_are_rejected() -> None:
    m = _map()
    # keys out of canonical order
    reordered = dict(reversed(list(m.items())))
    with pytest.raises(EvidenceParseError, match="canonical"):
        decode_bundle(cbor2.dumps(reordered))
    # a duplicated key (cbor2 would silently keep the last one)
    dup = bytearray(BUNDLE)
    dup[0] += 1
    dup += b"\x61v\x01"
    with pytest.raises(EvidenceParseError):
        decode_bundle(bytes(dup))
    # a non-minimal integer for the version (0x18 0x01 instead of 0x01)
    with pytest.raises(EvidenceParseError, match="canonical"):
        decode_bundle(BUNDLE[:3] + b"\x18\x01" + BUNDLE[4:])
    # a semantic tag around a byte string
    m2 = _map()
    m2["attest"] = cbor2.CBORTag(24, m2["attest"])
    with pytest.raises(EvidenceParseError):
        decode_bundle(_bad(m2))
    # trailing bytes after the map
    with pytest.raises(EvidenceParseError):
        decode_bundle(BUNDLE + b"\x00")


def test_size_caps_before_decoding() -> None:
    with pytest.raises(EvidenceParseError, match="max"):
        decode_bundle(b"\xa5" + bytes(MAX_BUNDLE))
    # a byte string header that claims 2^62 bytes does not allocate them
    with pytest.raises(EvidenceParseError):
        decode_bundle(b"\xa5\x61v\x01\x66attest\x5b" + (1 << 62).to_bytes(8, "big"))


def test_sniff_rejects_other_evidence() -> None:
    assert not TPM_QUOTE.sniff(b"\x02\x00\x00\x00" + bytes(1180))  # an SNP report header
    assert not TPM_QUOTE.sniff(b"")
    assert not TPM_QUOTE.sniff(cbor2.dumps({"v": 1}, canonical=True))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600))
def test_random_bytes_raise_only_parse_errors(data: bytes) -> None:
    with contextlib.suppress(EvidenceParseError, UnsupportedEvidenceError):
        decode_bundle(data)
    assert TPM_QUOTE.sniff(data) in (True, False)


@FAST
@given(st.integers(0, len(BUNDLE) - 1), st.integers(1, 255))
def test_flipped_bytes_parse_or_fail_typed(pos: int, xor: int) -> None:
    data = BUNDLE[:pos] + bytes([BUNDLE[pos] ^ xor]) + BUNDLE[pos + 1 :]
    with contextlib.suppress(EvidenceParseError, UnsupportedEvidenceError):
        decode_bundle(data)


@FAST
@given(
    st.dictionaries(
        st.sampled_from(["sha1", "sha256", "sha384"]),
        st.dictionaries(st.integers(0, 63), st.binary(min_size=1, max_size=1), min_size=1),
        min_size=1,
    ),
    st.binary(min_size=1, max_size=64),
    st.one_of(st.none(), st.binary(min_size=1, max_size=64)),
)
def test_encode_decode_round_trip(
    shape: dict[str, dict[int, bytes]], attest: bytes, log: bytes | None
) -> None:
    size = {"sha1": 20, "sha256": 32, "sha384": 48}
    pcrs = {b: {i: v * size[b] for i, v in vals.items()} for b, vals in shape.items()}
    ev = TpmEvidence(attest, b"sig", b"ak", pcrs, (), log, None)
    raw = encode_bundle(ev)
    back = decode_bundle(raw)
    assert back == ev and encode_bundle(back) == raw
