"""dstack VersionedAttestation codecs: SCALE V0 round trip, msgpack V1 (both byte forms,
V2 event fields), and arbitrary input raising only typed parse errors."""

from __future__ import annotations

import contextlib

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atls.errors import EvidenceParseError, UnsupportedEvidenceError
from atls.interop.dstack import (
    DstackAttestation,
    TdxEvent,
    decode_attestation,
    encode_attestation_v0,
    unwrap_extension,
    wrap_extension,
)

_events = st.lists(
    st.builds(
        TdxEvent,
        st.integers(0, 2**32 - 1),
        st.integers(0, 2**32 - 1),
        st.binary(max_size=48),
        st.text(max_size=20),
        st.binary(max_size=80),
    ),
    max_size=5,
)


@settings(max_examples=200, deadline=None)
@given(
    st.binary(max_size=300),
    _events,
    st.lists(st.tuples(st.text(max_size=12), st.binary(max_size=40)), max_size=4),
    st.binary(min_size=64, max_size=64),
    st.text(max_size=60),
)
def test_v0_round_trip(quote, events, runtime, report_data, config):
    att = DstackAttestation(0, "tdx", quote, tuple(events), tuple(runtime), report_data, config)
    data = encode_attestation_v0(att)
    assert decode_attestation(data) == att
    assert unwrap_extension(wrap_extension(data)) == data


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_raise_only_parse_errors(data):
    for blob in (data, b"\x00" + data, b"\x00\x00" + data, b"\x83" + data):
        with contextlib.suppress(EvidenceParseError, UnsupportedEvidenceError):
            decode_attestation(blob)


_mp = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 300) | st.text(max_size=8) | st.binary(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "version",
                    "platform",
                    "stack",
                    "kind",
                    "data",
                    "quote",
                    "event_log",
                    "imr",
                    "event_type",
                    "digest",
                    "event",
                    "event_payload",
                    "report_data",
                    "runtime_events",
                    "payload",
                    "config",
                    "preimage",
                ]
            ),
            inner,
            max_size=5,
        )
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(_mp)
def test_arbitrary_msgpack_raises_only_parse_errors(obj):
    for kind in ("tdx", "sev-snp"):
        blobs = [
            {"version": 1, "platform": obj, "stack": obj},
            {"version": 1, "platform": {"kind": kind, "data": obj}, "stack": {"data": obj}},
        ]
        if isinstance(obj, dict):
            blobs.append(
                {
                    "version": 1,
                    "platform": {"kind": kind, "data": {**obj, "event_log": [obj]}},
                    "stack": {"data": {**obj, "runtime_events": [obj]}},
                }
            )
        for doc in blobs:
            with contextlib.suppress(EvidenceParseError, UnsupportedEvidenceError):
                decode_attestation(msgpack.packb(doc))


def test_v1_msgpack_accepts_both_byte_forms_and_v2_event_fields():
    doc = {
        "version": 1,
        "platform": {
            "kind": "tdx",
            "data": {
                "quote": list(b"QUOTE"),  # an array of small integers
                "event_log": [
                    {
                        "imr": 3,
                        "event_type": 0x08000001,
                        "digest": b"",
                        "event": "app-id",
                        "event_payload": b"\x01\x02",
                        "version": 2,
                        "preimage": b"{}",
                    }
                ],
            },
        },
        "stack": {
            "kind": "dstack",
            "data": {"report_data": bytes(64), "runtime_events": [], "config": "{}"},
        },
    }
    att = decode_attestation(msgpack.packb(doc))
    assert att.version == 1 and att.quote == b"QUOTE"
    (ev,) = att.event_log
    assert (ev.version, ev.preimage, ev.event_payload) == (2, b"{}", b"\x01\x02")
    doc["platform"]["data"]["event_log"][0]["version"] = 3
    with pytest.raises(EvidenceParseError):
        decode_attestation(msgpack.packb(doc))
    doc["platform"]["data"]["event_log"][0]["imr"] = "3"
    with pytest.raises(EvidenceParseError):
        decode_attestation(msgpack.packb(doc))


@pytest.mark.parametrize(
    "kind,pdata,sdata",
    [
        ("tdx", {"quote": b"", "event_log": 5}, {}),
        ("sev-snp", {"report": b"", "cert_chain": 3}, {}),
        ("tdx", {"quote": b""}, {"runtime_events": 7}),
        ("tdx", {"quote": b""}, {"config": 7}),
        ("sev-snp", {"report": b"", "mr_config": ["x"]}, {}),
    ],
)
def test_v1_wrong_container_types_are_parse_errors(kind, pdata, sdata):
    doc = {
        "version": 1,
        "platform": {"kind": kind, "data": pdata},
        "stack": {"data": {"report_data": bytes(64), **sdata}},
    }
    with pytest.raises(EvidenceParseError):
        decode_attestation(msgpack.packb(doc))
