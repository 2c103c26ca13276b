"""dstack's JSON runtime event log: real GetQuote fixtures (replay equals the quote's RTMRs)
and the runtime-event digest rules (interop-formats.md 3.5, measurement-algorithms.md 7)."""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atls.errors import EvidenceParseError, UnsupportedEvidenceError, VerificationError
from atls.evidence.eventlog import (
    RUNTIME_EVENT_TYPE,
    DstackEvent,
    boot_rtmr3,
    check_replay,
    dstack_claims,
    dstack_to_tcg,
    encode_dstack_event_log,
    event_data_verified,
    parse_dstack_event_log,
    replay_dstack,
    runtime_event_digest,
    runtime_event_preimage,
    verify_dstack_events,
)

FIXTURES = ["tdx/dstack/quote-report.json", "tdx/dstack/tdx-lite-getquote.json"]
EXPECTED_KEYS = {
    "tdx/dstack/quote-report.json": "dstack_tdx_full",
    "tdx/dstack/tdx-lite-getquote.json": "dstack_tdx_lite",
}


def _fixture(vectors: Path, rel: str) -> tuple[dict[str, Any], tuple[DstackEvent, ...]]:
    doc = json.loads((vectors / rel).read_text())
    return doc, parse_dstack_event_log(doc["event_log"])


def _quote_rtmrs(quote: bytes) -> dict[str, bytes]:
    # v4 body: RTMR0 at byte 376 (interop-formats.md section 0)
    assert int.from_bytes(quote[:2], "little") == 4
    return {f"rtmr{i}": quote[376 + 48 * i : 424 + 48 * i] for i in range(4)}


@pytest.mark.vectors
@pytest.mark.parametrize("rel", FIXTURES)
def test_fixture_replays_to_the_quote(vectors: Path, rel: str) -> None:
    doc, events = _fixture(vectors, rel)
    quote = bytes.fromhex(doc["quote"])
    rtmrs = _quote_rtmrs(quote)
    # three independent statements of the RTMRs agree: quote bytes, EXPECTED_FACTS, expected.json
    facts = json.loads((vectors / "tdx/EXPECTED_FACTS.json").read_text())[
        rel.replace(".json", ".quote.bin")
    ]
    expected = json.loads((vectors / "measure/expected.json").read_text())[EXPECTED_KEYS[rel]]
    for i in range(4):
        assert rtmrs[f"rtmr{i}"].hex() == facts[f"rt_mr{i}"] == expected["quote"][f"rtmr{i}"]
    replayed = replay_dstack(events)
    assert {f"rtmr{i}": v for i, v in replayed.items()} == rtmrs
    check_replay(events, rtmrs)
    # the measure/ copy is the same fixture
    assert (vectors / rel.replace("tdx/", "measure/")).read_text() == (vectors / rel).read_text()


@pytest.mark.vectors
def test_full_log_runtime_digests_are_the_v1_rule(vectors: Path) -> None:
    # collector check: every RTMR3 digest equals SHA-384(u32le(type) ":" event ":" payload)
    _, events = _fixture(vectors, "tdx/dstack/quote-report.json")
    runtime = [e for e in events if e.imr == 3]
    assert len(runtime) == 8 and all(e.digest for e in runtime)
    for e in runtime:
        pre = e.event_type.to_bytes(4, "little") + b":" + e.event.encode() + b":" + e.payload
        assert hashlib.sha384(pre).digest() == e.digest
    assert verify_dstack_events(events) == events  # nothing to fill in
    names = [e.event for e in runtime]
    assert names == [
        "system-preparing",
        "app-id",
        "compose-hash",
        "instance-id",
        "boot-mr-done",
        "key-provider",
        "system-ready",
        "LIUM_MINER_HOTKEY",
    ]


@pytest.mark.vectors
def test_lite_log_has_empty_runtime_digests_that_are_recomputed(vectors: Path) -> None:
    doc, events = _fixture(vectors, "tdx/dstack/tdx-lite-getquote.json")
    runtime = [e for e in events if e.imr == 3]
    assert runtime and all(e.digest == b"" for e in runtime)
    filled = verify_dstack_events(events)
    assert all(len(e.digest) == 48 for e in filled)
    # replay of the recomputed digests alone gives the quote's RTMR3
    reg = bytes(48)
    for e in runtime:
        reg = hashlib.sha384(reg + runtime_event_digest(e.event, e.payload)).digest()
    assert reg == _quote_rtmrs(bytes.fromhex(doc["quote"]))["rtmr3"]


@pytest.mark.vectors
@pytest.mark.parametrize("rel", FIXTURES)
def test_claims(vectors: Path, rel: str) -> None:
    _doc, events = _fixture(vectors, rel)
    claims = dstack_claims(events)["events"]
    compose = bytes.fromhex(claims["compose-hash"])
    assert len(compose) == 32
    # default app_id = compose_hash[0:20] (interop-formats.md 3.7)
    assert claims["app-id"] == compose[:20].hex()
    assert len(bytes.fromhex(claims["instance-id"])) == 20
    provider = json.loads(bytes.fromhex(claims["key-provider"]))
    assert set(provider) == {"name", "id"}
    assert claims["boot-mr-done"] == "" and claims["system-ready"] == ""
    json.dumps(claims)  # JSON-compatible


@pytest.mark.vectors
def test_lite_compose_hash_is_bound_by_mrconfigid(vectors: Path) -> None:
    # dstack-0.6.0: MRCONFIGID = 0x01 || compose_hash || 0^15 (quote body offset 232)
    doc, events = _fixture(vectors, "tdx/dstack/tdx-lite-getquote.json")
    quote = bytes.fromhex(doc["quote"])
    mrconfigid = quote[232:280]
    compose = bytes.fromhex(dstack_claims(events)["events"]["compose-hash"])
    assert mrconfigid == b"\x01" + compose + bytes(15)
    assert dstack_claims(events)["events"]["os-image-hash"]


@pytest.mark.vectors
def test_boot_rtmr3_stops_at_boot_mr_done(vectors: Path) -> None:
    _, events = _fixture(vectors, "tdx/dstack/quote-report.json")
    reg = bytes(48)
    for e in events:
        if e.imr == 3:
            reg = hashlib.sha384(reg + e.digest).digest()
            if e.event == "boot-mr-done":
                break
    assert boot_rtmr3(events) == reg
    assert boot_rtmr3(events) != replay_dstack(events)[3]
    with pytest.raises(VerificationError) as ei:
        boot_rtmr3([e for e in events if e.event != "boot-mr-done"])
    assert ei.value.code == "eventlog.dstack.boot"


@pytest.mark.vectors
def test_tampered_payload_is_rejected(vectors: Path) -> None:
    # full log: a changed payload no longer matches its digest
    _, events = _fixture(vectors, "tdx/dstack/quote-report.json")
    i = next(i for i, e in enumerate(events) if e.event == "compose-hash")
    bad = list(events)
    bad[i] = DstackEvent(3, RUNTIME_EVENT_TYPE, events[i].digest, "compose-hash", bytes(32))
    with pytest.raises(VerificationError) as ei:
        replay_dstack(bad)
    assert ei.value.code == "eventlog.dstack.digest_mismatch"
    # lite log (no digests): the change shows as an RTMR3 mismatch against the quote
    doc, lite = _fixture(vectors, "tdx/dstack/tdx-lite-getquote.json")
    rtmrs = _quote_rtmrs(bytes.fromhex(doc["quote"]))
    j = next(i for i, e in enumerate(lite) if e.event == "compose-hash")
    bad = list(lite)
    bad[j] = DstackEvent(3, RUNTIME_EVENT_TYPE, b"", "compose-hash", bytes(32))
    with pytest.raises(VerificationError, match="rtmr3") as ei:
        check_replay(bad, rtmrs)
    assert ei.value.code == "eventlog.replay_mismatch"
    assert "rtmr0" not in str(ei.value)
    # dropping an event, or reordering two, changes RTMR3 too
    with pytest.raises(VerificationError, match="rtmr3"):
        check_replay([e for k, e in enumerate(lite) if k != j], rtmrs)
    swapped = list(lite)
    swapped[j], swapped[j + 1] = swapped[j + 1], swapped[j]
    with pytest.raises(VerificationError, match="rtmr3"):
        check_replay(swapped, rtmrs)


@pytest.mark.vectors
def test_boot_events_as_tcg_events(vectors: Path) -> None:
    # the full log carries payloads: separators and EFI actions match their digests
    _, events = _fixture(vectors, "tdx/dstack/quote-report.json")
    tcg = dstack_to_tcg(events)
    checked = [event_data_verified(e, "sha384") for e in tcg if e.index <= 3]
    assert checked.count(True) >= 5 and False not in checked
    sep = [e for e in tcg if e.type_name == "EV_SEPARATOR"]
    assert [e.index for e in sep] == [1, 2]  # RTMR0 and RTMR1 as CC-MR indices


def test_missing_boot_digest_cannot_be_replayed() -> None:
    ev = DstackEvent(0, 4, b"", "", b"\x00" * 4)
    with pytest.raises(VerificationError) as ei:
        replay_dstack([ev])
    assert ei.value.code == "eventlog.dstack.missing_digest"


def test_runtime_event_outside_rtmr3_is_rejected() -> None:
    ev = DstackEvent(2, RUNTIME_EVENT_TYPE, b"", "compose-hash", b"x")
    with pytest.raises(VerificationError) as ei:
        replay_dstack([ev])
    assert ei.value.code == "eventlog.dstack.imr"


def test_duplicate_identity_event_is_rejected_but_app_events_repeat() -> None:
    mk = lambda name, p: DstackEvent(3, RUNTIME_EVENT_TYPE, b"", name, p)  # noqa: E731
    with pytest.raises(VerificationError) as ei:
        dstack_claims([mk("compose-hash", b"a"), mk("compose-hash", b"b")])
    assert ei.value.code == "eventlog.dstack.duplicate_event"
    claims = dstack_claims([mk("init-script-hash", b"\x01"), mk("init-script-hash", b"\x02")])
    assert claims == {"events": {"init-script-hash": ["01", "02"]}}


def test_v1_digest_layout() -> None:
    # the type is 4 raw little-endian bytes, not decimal text
    assert runtime_event_preimage("app-id", b"\xab") == b"\x01\x00\x00\x08:app-id:\xab"
    assert (
        runtime_event_digest("app-id", b"\xab")
        == hashlib.sha384(b"\x01\x00\x00\x08:app-id:\xab").digest()
    )


def test_v2_events() -> None:
    # RFC 8785 form of {"name", "payload" (lowercase hex), "type"}
    pre = b'{"name":"compose-hash","payload":"abcd","type":134217729}'
    assert runtime_event_preimage("compose-hash", b"\xab\xcd", version=2) == pre
    good = DstackEvent(3, RUNTIME_EVENT_TYPE, b"", "compose-hash", b"\xab\xcd", 2, pre)
    (filled,) = verify_dstack_events([good])
    assert filled.digest == hashlib.sha384(pre).digest()
    # the preimage must be exactly the canonical form (whitespace, key order, hex case)
    for other in (
        b'{"name": "compose-hash","payload":"abcd","type":134217729}',
        b'{"payload":"abcd","name":"compose-hash","type":134217729}',
        b'{"name":"compose-hash","payload":"ABCD","type":134217729}',
    ):
        ev = DstackEvent(3, RUNTIME_EVENT_TYPE, b"", "compose-hash", b"\xab\xcd", 2, other)
        with pytest.raises(VerificationError) as ei:
            verify_dstack_events([ev])
        assert ei.value.code == "eventlog.dstack.preimage"
    with pytest.raises(VerificationError):
        verify_dstack_events([DstackEvent(3, RUNTIME_EVENT_TYPE, b"", "x", b"", 2, None)])
    # a V2 digest computed with the V1 rule is a mismatch
    v1 = runtime_event_digest("compose-hash", b"\xab\xcd")
    ev = DstackEvent(3, RUNTIME_EVENT_TYPE, v1, "compose-hash", b"\xab\xcd", 2, pre)
    with pytest.raises(VerificationError) as ei:
        verify_dstack_events([ev])
    assert ei.value.code == "eventlog.dstack.digest_mismatch"
    # control characters are escaped as JCS requires
    assert runtime_event_preimage('a"\n\x01', b"", version=2).startswith(
        b'{"name":"a\\"\\n\\u0001"'
    )


def test_parse_forms_and_round_trip() -> None:
    events = (
        DstackEvent(0, 4, bytes(range(48)), "", b"\x00\x00\x00\x00"),
        DstackEvent(3, RUNTIME_EVENT_TYPE, b"", "app-id", b"\x01\x02"),
        DstackEvent(3, RUNTIME_EVENT_TYPE, b"", "x", b"", 2, b"{}"),
    )
    text = encode_dstack_event_log(events)
    assert parse_dstack_event_log(text) == events
    assert parse_dstack_event_log(text.encode()) == events
    assert parse_dstack_event_log(json.loads(text)) == events
    # GetQuote response: event_log is a JSON string
    assert parse_dstack_event_log(json.dumps({"quote": "", "event_log": text})) == events


@pytest.mark.parametrize(
    "doc",
    [
        "not json",
        "{}",
        '{"event_log": 5}',
        "[1]",
        '[{"imr": 4, "event_type": 1}]',
        '[{"imr": true, "event_type": 1}]',
        '[{"imr": 0, "event_type": -1}]',
        '[{"imr": 0, "event_type": 4294967296}]',
        '[{"imr": 0, "event_type": 1, "digest": "abc"}]',
        '[{"imr": 0, "event_type": 1, "digest": "ab cd"}]',
        '[{"imr": 0, "event_type": 1, "digest": "abcd"}]',
        '[{"imr": 0, "event_type": 1, "event_payload": "0x00"}]',
        '[{"imr": 0, "event_type": 1, "event": 5}]',
        '[{"imr": 0, "event_type": 1, "event": "\\ud800"}]',
        '[{"imr": 0, "event_type": 1, "version": 3}]',
        '[{"imr": 0, "event_type": 1, "preimage": null}]',
        "[" * 100_000 + "]" * 100_000,
    ],
)
def test_malformed_logs(doc: str) -> None:
    with pytest.raises(EvidenceParseError) as ei:
        parse_dstack_event_log(doc)
    assert ei.value.code == "eventlog.parse"


def test_size_caps() -> None:
    with pytest.raises(EvidenceParseError):
        parse_dstack_event_log(b" " * (10 << 20) + b"[]")
    many = json.dumps([{"imr": 0, "event_type": 1}] * 10_001)
    with pytest.raises(EvidenceParseError, match="more than"):
        parse_dstack_event_log(many)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4)
    ),
    max_leaves=20,
)
_event_like = st.fixed_dictionaries(
    {},
    optional={
        "imr": st.integers(-1, 5) | st.booleans() | st.text(max_size=3),
        "event_type": st.integers(-1, 2**33) | st.none(),
        "digest": st.text("0123456789abcdefXY ", max_size=100),
        "event": st.text(max_size=10) | st.integers(),
        "event_payload": st.text("0123456789abcdef", max_size=10) | st.none(),
        "version": st.integers(0, 3) | st.booleans(),
        "preimage": st.text("0123456789abcdef", max_size=10),
    },
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(_json, st.lists(_event_like, max_size=5)))
def test_arbitrary_json_raises_only_parse_errors(doc: Any) -> None:
    text = json.dumps(doc)
    try:
        events = parse_dstack_event_log(text)
    except EvidenceParseError:
        return
    # what parses replays or fails with a typed verification error, never crashes
    try:
        replay_dstack(events)
        dstack_claims(events)
    except (VerificationError, UnsupportedEvidenceError):
        pass


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200))
def test_arbitrary_bytes_raise_only_parse_errors(data: bytes | str) -> None:
    with contextlib.suppress(EvidenceParseError):
        parse_dstack_event_log(data)
