"""dstack's JSON TDX event log (``GetQuote`` ``event_log``, legacy certificate extension ``.1.2``).

Each event is ``{"imr": 0..3, "event_type": u32, "digest": hex, "event": name,
"event_payload": hex, "version"?: 1|2, "preimage"?: hex}``; ``imr`` is the 0-based RTMR
index. Runtime events (type ``0x08000001``, RTMR3) are bound to their name and payload::

    V1: digest = SHA-384(u32le(0x08000001) || ":" || name_utf8 || ":" || payload)
    V2: digest = SHA-384(JCS({"name": name, "payload": hex(payload), "type": 134217729}))
        and "preimage" must be exactly that canonical JSON

A runtime event with an empty digest (certificates carry stripped logs) gets the recomputed
one; a present digest must equal it. Boot events (RTMR0-2) carry opaque digests; their
payloads are descriptive only.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from atls.errors import EvidenceParseError, VerificationError
from atls.evidence.eventlog._algs import ALG_IDS
from atls.evidence.eventlog._tcg import FMT, TcgEvent

__all__ = [
    "BOOT_MR_DONE",
    "IDENTITY_EVENTS",
    "MAX_DSTACK_EVENTS",
    "MAX_DSTACK_LOG",
    "RUNTIME_EVENT_TYPE",
    "DstackEvent",
    "boot_rtmr3",
    "dstack_claims",
    "dstack_to_tcg",
    "encode_dstack_event_log",
    "parse_dstack_event_log",
    "replay_dstack",
    "runtime_event_digest",
    "runtime_event_preimage",
    "verify_dstack_events",
]

RUNTIME_EVENT_TYPE = 0x08000001
BOOT_MR_DONE = "boot-mr-done"
MAX_DSTACK_LOG = 10 << 20  # dstack caps a whole attestation at 10 MiB
MAX_DSTACK_EVENTS = 10_000
# Events that name the workload: each may appear at most once in a log.
IDENTITY_EVENTS = frozenset(
    {
        "system-preparing",
        "app-id",
        "compose-hash",
        "instance-id",
        "boot-mr-done",
        "os-image-hash",
        "key-provider",
        "storage-fs",
        "system-ready",
        "mr-kms",
        "gpu-policy-hash",
    }
)
_HEXDIGITS = frozenset("0123456789abcdefABCDEF")


@dataclass(frozen=True)
class DstackEvent:
    """One event of a dstack log. ``digest`` may be empty (stripped runtime events)."""

    imr: int
    event_type: int
    digest: bytes
    event: str
    payload: bytes
    version: int = 1
    preimage: bytes | None = None

    @property
    def is_runtime(self) -> bool:
        return self.event_type == RUNTIME_EVENT_TYPE


def _err(msg: str, field: str | None = None) -> EvidenceParseError:
    return EvidenceParseError(f"dstack event log: {msg}", format=FMT, field=field)


def _int(obj: Mapping[str, Any], key: str, where: str, lo: int, hi: int) -> int:
    v = obj.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise _err(f"{where}.{key} must be an integer in {lo}..{hi}", key)
    return v


def _hex(obj: Mapping[str, Any], key: str, where: str, *, default: str | None = "") -> bytes:
    v = obj.get(key, default)
    if not isinstance(v, str) or len(v) % 2 or not _HEXDIGITS.issuperset(v):
        raise _err(f"{where}.{key} must be a hex string", key)
    return bytes.fromhex(v)


def _event(obj: Any, i: int) -> DstackEvent:
    where = f"event[{i}]"
    if not isinstance(obj, dict):
        raise _err(f"{where} is not an object")
    imr = _int(obj, "imr", where, 0, 3)
    etype = _int(obj, "event_type", where, 0, 0xFFFFFFFF)
    digest = _hex(obj, "digest", where)
    if len(digest) not in (0, 48):
        raise _err(f"{where}.digest is {len(digest)} bytes (SHA-384 is 48)", "digest")
    name = obj.get("event", "")
    if not isinstance(name, str):
        raise _err(f"{where}.event must be a string", "event")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError as e:
        raise _err(f"{where}.event is not valid Unicode", "event") from e
    payload = _hex(obj, "event_payload", where)
    version = obj.get("version", 1)
    if isinstance(version, bool) or version not in (1, 2):
        raise _err(f"{where}.version must be 1 or 2", "version")
    preimage = _hex(obj, "preimage", where) if "preimage" in obj else None
    return DstackEvent(imr, etype, digest, name, payload, version, preimage)


def parse_dstack_event_log(data: str | bytes | Sequence[Any]) -> tuple[DstackEvent, ...]:
    """Parse a dstack JSON event log: the JSON array, a ``GetQuote`` response object (whose
    ``event_log`` is a JSON string or array), or an already decoded list."""
    items: Any = data
    if isinstance(data, (str, bytes)):
        if len(data) > MAX_DSTACK_LOG:
            raise _err(f"larger than {MAX_DSTACK_LOG} bytes")
        try:
            items = json.loads(data)
        except (ValueError, RecursionError) as e:
            raise _err(f"not JSON: {e}") from e
    if isinstance(items, dict):
        items = items.get("event_log")
        if isinstance(items, str):
            return parse_dstack_event_log(items)
    if not isinstance(items, list):
        raise _err("expected a JSON array of events")
    if len(items) > MAX_DSTACK_EVENTS:
        raise _err(f"more than {MAX_DSTACK_EVENTS} events")
    return tuple(_event(obj, i) for i, obj in enumerate(items))


def encode_dstack_event_log(events: Sequence[DstackEvent]) -> str:
    """The JSON array form (inverse of :func:`parse_dstack_event_log`)."""
    out = []
    for e in events:
        item: dict[str, Any] = {
            "imr": e.imr,
            "event_type": e.event_type,
            "digest": e.digest.hex(),
            "event": e.event,
            "event_payload": e.payload.hex(),
        }
        if e.version != 1:
            item["version"] = e.version
        if e.preimage is not None:
            item["preimage"] = e.preimage.hex()
        out.append(item)
    return json.dumps(out, ensure_ascii=False)


def runtime_event_preimage(name: str, payload: bytes, *, version: int = 1) -> bytes:
    """The bytes whose SHA-384 is a runtime event's digest (V1 or V2, see module doc)."""
    if version == 1:
        return RUNTIME_EVENT_TYPE.to_bytes(4, "little") + b":" + name.encode() + b":" + payload
    if version == 2:
        # RFC 8785 (JCS) of a three-member object: keys already in code-unit order, no
        # whitespace, strings with the minimal JSON escapes (json.dumps gives exactly those).
        doc = {"name": name, "payload": payload.hex(), "type": RUNTIME_EVENT_TYPE}
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
    raise ValueError(f"unknown runtime event version {version}")


def runtime_event_digest(name: str, payload: bytes, *, version: int = 1) -> bytes:
    return hashlib.sha384(runtime_event_preimage(name, payload, version=version)).digest()


def verify_dstack_events(events: Sequence[DstackEvent]) -> tuple[DstackEvent, ...]:
    """Check every runtime event against its name and payload and fill empty digests.

    Returns the events with every digest present. Raises :class:`VerificationError`:
    ``eventlog.dstack.preimage`` (V2 preimage is not the canonical form),
    ``eventlog.dstack.digest_mismatch`` (a given digest differs from the recomputed one),
    ``eventlog.dstack.imr`` (a runtime event outside RTMR3),
    ``eventlog.dstack.missing_digest`` (a boot event without a digest cannot be replayed).
    """
    out: list[DstackEvent] = []
    for i, e in enumerate(events):
        where = f"event[{i}] {e.event!r}"
        if e.is_runtime:
            # 1. runtime events live in RTMR3 only
            if e.imr != 3:
                raise VerificationError(
                    f"{where}: runtime event in RTMR{e.imr}", code="eventlog.dstack.imr"
                )
            # 2. V2: the preimage must be the canonical form of (name, payload, type)
            canonical = runtime_event_preimage(e.event, e.payload, version=e.version)
            if e.version == 2 and (
                e.preimage is None or not hmac.compare_digest(e.preimage, canonical)
            ):
                raise VerificationError(
                    f"{where}: V2 preimage is not the canonical JSON of the event",
                    code="eventlog.dstack.preimage",
                )
            # 3. recompute; an empty digest takes the computed value, a given one must match
            computed = hashlib.sha384(canonical).digest()
            if e.digest and not hmac.compare_digest(e.digest, computed):
                raise VerificationError(
                    f"{where}: digest {e.digest.hex()} is not SHA-384 of its name and payload "
                    f"({computed.hex()})",
                    code="eventlog.dstack.digest_mismatch",
                )
            out.append(replace(e, digest=computed))
        else:
            if not e.digest:
                raise VerificationError(
                    f"{where}: boot event in RTMR{e.imr} without a digest",
                    code="eventlog.dstack.missing_digest",
                )
            out.append(e)
    return tuple(out)


def replay_dstack(events: Sequence[DstackEvent]) -> dict[int, bytes]:
    """Replay into ``{0: RTMR0, ..., 3: RTMR3}`` after :func:`verify_dstack_events`."""
    regs = {i: bytes(48) for i in range(4)}
    for e in verify_dstack_events(events):
        regs[e.imr] = hashlib.sha384(regs[e.imr] + e.digest).digest()
    return regs


def boot_rtmr3(events: Sequence[DstackEvent]) -> bytes:
    """RTMR3 as it was at ``boot-mr-done`` (the replay up to and including that event)."""
    reg = bytes(48)
    for e in verify_dstack_events(events):
        if e.imr != 3:
            continue
        reg = hashlib.sha384(reg + e.digest).digest()
        if e.is_runtime and e.event == BOOT_MR_DONE:
            return reg
    raise VerificationError(f"no {BOOT_MR_DONE!r} event in the log", code="eventlog.dstack.boot")


def dstack_claims(events: Sequence[DstackEvent]) -> dict[str, Any]:
    """Runtime events as claims: ``{"events": {name: payload hex}}``.

    Call this only for a log that replayed to the quote's RTMR3. Identity events
    (:data:`IDENTITY_EVENTS`) must be unique (``eventlog.dstack.duplicate_event``); other
    names that repeat (``init-script-hash``, application events) map to a list of hex
    values in log order.
    """
    claims: dict[str, Any] = {}
    for e in verify_dstack_events(events):
        if not e.is_runtime:
            continue
        value = e.payload.hex()
        if e.event not in claims:
            claims[e.event] = value
            continue
        if e.event in IDENTITY_EVENTS:
            raise VerificationError(
                f"runtime event {e.event!r} appears more than once",
                code="eventlog.dstack.duplicate_event",
            )
        prev = claims[e.event]
        claims[e.event] = [*prev, value] if isinstance(prev, list) else [prev, value]
    return {"events": claims}


def dstack_to_tcg(events: Sequence[DstackEvent]) -> tuple[TcgEvent, ...]:
    """The events as TCG events (CC-MR index = imr + 1, SHA-384 digest, payload as data,
    ``offset`` = position in the dstack log), so the UEFI event checks apply to the boot
    events. Runtime events are verified (and their digests filled) first."""
    sha384 = ALG_IDS["sha384"]
    return tuple(
        TcgEvent(e.imr + 1, e.event_type, ((sha384, e.digest),), e.payload, i)
        for i, e in enumerate(verify_dstack_events(events))
    )
