"""dstack: RTMR3 runtime-event digests and replay, and the TD HOB witness of
``measurement.tdx.cbor`` (measurement-algorithms.md 4.2, 7, 10.6; interop-formats.md 3.5).

Parsers take bytes (the JSON text) and raise :class:`~atls.errors.EvidenceParseError` with
codes ``measure.dstack_log.*`` / ``measure.dstack_witness.*``; nothing reads files.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from atls.measure._common import SHA384_ZERO, artifact_error, extend, sha384

__all__ = [
    "RUNTIME_EVENT_TYPE",
    "DstackEvent",
    "Rtmr3Replay",
    "decode_td_hob_witness",
    "parse_dstack_event_log",
    "replay_rtmr3",
    "replay_registers",
    "runtime_event_digest",
    "runtime_event_preimage_v2",
]

#: Event type of dstack runtime events (RTMR3).
RUNTIME_EVENT_TYPE = 0x08000001
_LOG = "measure.dstack_log"
_WIT = "measure.dstack_witness"
_MAX_EVENTS = 10_000


def runtime_event_preimage_v2(name: str, payload: bytes) -> bytes:
    """RFC 8785 canonical JSON of ``{"name", "payload" (lower-case hex), "type"}``."""
    obj = {"name": name, "payload": payload.hex(), "type": RUNTIME_EVENT_TYPE}
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def runtime_event_digest(name: str, payload: bytes, *, version: int = 1) -> bytes:
    """Digest of one runtime event: V1 ``SHA-384(u32le(type) ":" name ":" payload)``, V2
    ``SHA-384(canonical JSON)``."""
    if version == 1:
        return sha384(RUNTIME_EVENT_TYPE.to_bytes(4, "little") + b":" + name.encode() + b":"
                      + payload)
    if version == 2:
        return sha384(runtime_event_preimage_v2(name, payload))
    raise artifact_error(_LOG, f"runtime event version {version}", "version")


@dataclass(frozen=True)
class DstackEvent:
    """One event of a dstack JSON event log (``imr`` is the 0-based RTMR index)."""

    imr: int
    event_type: int
    digest: bytes  # empty when the log was stripped
    name: str
    payload: bytes
    version: int = 1
    preimage: bytes | None = None


def _hex(value: Any, what: str, index: int) -> bytes:
    if not isinstance(value, str):
        raise artifact_error(_LOG, f"{what} is not a hex string", "type", field=f"[{index}]")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise artifact_error(_LOG, f"{what} is not hex", "hex", field=f"[{index}]") from None


def _int(value: Any, what: str, index: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << 32:
        raise artifact_error(_LOG, f"{what} is not a u32", "type", field=f"[{index}]")
    return value


def _event(obj: Any, i: int) -> DstackEvent:
    if not isinstance(obj, dict):
        raise artifact_error(_LOG, "event is not an object", "type", field=f"[{i}]")
    if "imr" not in obj and "event" in obj and "payload" in obj:
        # runtime_events.log line: {"event": name, "payload": base64}
        name, payload = obj["event"], obj["payload"]
        if not isinstance(name, str) or not isinstance(payload, str):
            raise artifact_error(_LOG, "runtime log line fields", "type", field=f"[{i}]")
        try:
            raw = base64.b64decode(payload, validate=True)
        except binascii.Error:
            raise artifact_error(_LOG, "payload is not base64", "base64", field=f"[{i}]") from None
        return DstackEvent(3, RUNTIME_EVENT_TYPE, b"", name, raw)
    name = obj.get("event", "")
    if not isinstance(name, str):
        raise artifact_error(_LOG, "event name is not a string", "type", field=f"[{i}]")
    version = obj.get("version", 1)
    if version not in (1, 2) or isinstance(version, bool):
        raise artifact_error(_LOG, f"event version {version!r}", "version", field=f"[{i}]")
    pre = obj.get("preimage")
    return DstackEvent(
        imr=_int(obj.get("imr"), "imr", i),
        event_type=_int(obj.get("event_type"), "event_type", i),
        digest=_hex(obj.get("digest", ""), "digest", i),
        name=name,
        payload=_hex(obj.get("event_payload", ""), "event_payload", i),
        version=version,
        preimage=None if pre is None else _hex(pre, "preimage", i),
    )


def parse_dstack_event_log(data: bytes) -> list[DstackEvent]:
    """Parse a dstack event log: a JSON ``TdxEvent`` array, a ``GetQuoteResponse`` object whose
    ``event_log`` is that array (or a string holding it), or the guest's
    ``runtime_events.log`` (one ``{"event", "payload": base64}`` object per line)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise artifact_error(_LOG, "event log is not UTF-8", "encoding") from None
    try:
        doc: Any = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        try:
            doc = [json.loads(line) for line in text.splitlines() if line.strip()]
        except (json.JSONDecodeError, RecursionError):
            raise artifact_error(_LOG, "event log is not JSON or JSON lines", "json") from None
    if isinstance(doc, dict):
        if "event_log" not in doc:
            doc = [doc]
        else:
            doc = doc["event_log"]
            if isinstance(doc, str):
                try:
                    doc = json.loads(doc)
                except (json.JSONDecodeError, RecursionError):
                    raise artifact_error(_LOG, "event_log string is not JSON", "json") from None
    if not isinstance(doc, list):
        raise artifact_error(_LOG, "event log is not a list of events", "type")
    if len(doc) > _MAX_EVENTS:
        raise artifact_error(_LOG, f"more than {_MAX_EVENTS} events", "too_large")
    return [_event(e, i) for i, e in enumerate(doc)]


@dataclass(frozen=True)
class Rtmr3Replay:
    rtmr3: bytes
    boot_rtmr3: bytes | None  # the value right after "boot-mr-done", if logged
    events: int


def replay_rtmr3(events: Sequence[DstackEvent]) -> Rtmr3Replay:
    """Replay RTMR3 from the runtime events (imr 3), recomputing every digest.

    1. Every imr-3 event must be a runtime event (type ``0x08000001``).
    2. V2 events: the preimage must equal the canonical JSON.
    3. A logged digest must equal the recomputed one; an empty digest (stripped log) is
       recomputed.
    4. Extend from 48 zero bytes; remember the value after ``boot-mr-done``.
    """
    reg = SHA384_ZERO
    boot: bytes | None = None
    n = 0
    for i, e in enumerate(events):
        if e.imr != 3:
            continue
        if e.event_type != RUNTIME_EVENT_TYPE:
            raise artifact_error(_LOG, f"RTMR3 event of type {e.event_type:#x}", "event_type",
                                 field=f"[{i}]")
        if e.version == 2 and e.preimage != runtime_event_preimage_v2(e.name, e.payload):
            raise artifact_error(_LOG, f"event {e.name!r}: preimage is not canonical",
                                 "preimage", field=f"[{i}]")
        d = runtime_event_digest(e.name, e.payload, version=e.version)
        if e.digest and e.digest != d:
            raise artifact_error(_LOG, f"event {e.name!r}: logged digest does not match its "
                                 "payload", "digest_mismatch", field=f"[{i}]")
        reg = extend(reg, d)
        n += 1
        if e.name == "boot-mr-done" and boot is None:
            boot = reg
    return Rtmr3Replay(reg, boot, n)


def replay_registers(events: Sequence[DstackEvent]) -> dict[int, bytes]:
    """RTMR0-2 replayed from the logged digests and RTMR3 from :func:`replay_rtmr3`.

    RTMR0-2 digests cover bytes not in the log (kernel, ACPI...), so this only checks the
    log's consistency with a quote; it measures nothing.
    """
    regs = {i: SHA384_ZERO for i in range(3)}
    for i, e in enumerate(events):
        if e.imr in regs:
            if len(e.digest) != 48:
                raise artifact_error(_LOG, "boot event without a SHA-384 digest", "digest",
                                     field=f"[{i}]")
            regs[e.imr] = extend(regs[e.imr], e.digest)
        elif e.imr != 3:
            raise artifact_error(_LOG, f"imr {e.imr} out of range", "imr", field=f"[{i}]")
    regs[3] = replay_rtmr3(events).rtmr3
    return regs


def _leb128(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise artifact_error(_WIT, "truncated varint", "truncated", offset=pos)
        if shift > 56:
            raise artifact_error(_WIT, "varint too long", "varint", offset=pos)
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, pos


def decode_td_hob_witness(witness: bytes) -> tuple[int, list[tuple[int, int]]]:
    """dstack's TD HOB witness (LEB128: base page, HOB page delta, range count, then
    ``(start delta, pages)`` per accepted range) -> ``(hob_gpa, [(start, length)])``."""
    base, pos = _leb128(witness, 0)
    hob, pos = _leb128(witness, pos)
    count, pos = _leb128(witness, pos)
    if count > 64:
        raise artifact_error(_WIT, f"{count} ranges", "too_large")
    ranges = []
    for _ in range(count):
        delta, pos = _leb128(witness, pos)
        pages, pos = _leb128(witness, pos)
        ranges.append(((base + delta) * 4096, pages * 4096))
    if pos != len(witness):
        raise artifact_error(_WIT, "trailing bytes", "trailing", offset=pos)
    return (base + hob) * 4096, ranges
