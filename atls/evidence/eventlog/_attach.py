"""Attach an event log to verified TDX evidence: replay it against the quote's RTMRs and,
only if it matches, expose what it says as claims."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from atls.errors import EvidenceParseError, UnsupportedEvidenceError
from atls.evidence._verified import Verified, make_verified
from atls.evidence.eventlog._ccel import parse_ccel
from atls.evidence.eventlog._dstack import (
    DstackEvent,
    dstack_claims,
    parse_dstack_event_log,
    verify_dstack_events,
)
from atls.evidence.eventlog._replay import check_replay

__all__ = ["with_dstack_events", "with_event_log"]

_RTMRS = ("rtmr0", "rtmr1", "rtmr2", "rtmr3")


def _sniff(log: bytes) -> str:
    head = log.lstrip()[:1]
    return "dstack" if head in (b"[", b"{") else "ccel"


def _expected(verified: Verified, registers: Sequence[str]) -> dict[str, bytes]:
    if verified.platform != "tdx":
        raise UnsupportedEvidenceError(
            f"an RTMR event log belongs to TDX evidence, not {verified.platform}",
            code="eventlog.unsupported",
        )
    expected = {}
    for name in registers:
        value = verified.claims.get(name)
        if name not in _RTMRS or not isinstance(value, str):
            raise UnsupportedEvidenceError(
                f"the verified evidence has no {name} claim", code="eventlog.unsupported"
            )
        expected[name] = bytes.fromhex(value)
    return expected


def _extended(verified: Verified, extra: dict[str, Any], check: str) -> Verified:
    claims = dict(verified.claims)
    if "events" in claims or "event_log" in claims:
        raise UnsupportedEvidenceError(
            "the evidence already carries event-log claims", code="eventlog.unsupported"
        )
    claims.update(extra)
    return make_verified(
        platform=verified.platform,
        claims=claims,
        report_data=verified.report_data,
        trust_root=verified.trust_root,
        simulated=verified.simulated,
        debug=verified.debug,
        tcb_status=verified.tcb_status,
        advisory_ids=verified.advisory_ids,
        unchecked=verified.unchecked,
        checks=(*verified.checks, check),
    )


def with_dstack_events(
    verified: Verified, events: Sequence[DstackEvent], *, registers: Sequence[str] = _RTMRS
) -> Verified:
    """``verified`` (a TDX quote) plus dstack's runtime events as ``claims["events"]``
    (``{name: payload hex}``), after the events (runtime digests recomputed from their
    payloads) replayed to the quote's ``registers``. dstack certificates carry logs whose
    RTMR0-2 part may be incomplete: their verifier passes ``registers=("rtmr3",)`` and pins
    RTMR0-2 by value instead."""
    expected = _expected(verified, registers)
    events = verify_dstack_events(events)
    check_replay(events, expected)
    extra = dstack_claims(events)
    extra["event_log"] = {"format": "dstack", "events": len(events)}
    return _extended(verified, extra, f"event log (dstack) replays to {', '.join(registers)}")


def with_event_log(verified: Verified, log: bytes, *, log_format: str = "auto") -> Verified:
    """``verified`` (a TDX quote) plus the facts of ``log``, after the log replayed exactly
    to the quote's RTMR0..3.

    ``log_format``: ``dstack`` (dstack's JSON log, or a GetQuote response holding it),
    ``ccel`` (the TCG log of the CCEL ACPI table), or ``auto``. A dstack log's runtime events
    become ``claims["events"]`` (``{name: payload hex}``, matched by the policy's
    ``[tdx] events``); a CCEL adds the number of events replayed. Raises
    :class:`~atls.errors.VerificationError` (``eventlog.replay_mismatch``) when the log does
    not replay to the quote, and parse errors for a malformed log."""
    if verified.platform != "tdx":
        raise UnsupportedEvidenceError(
            f"an RTMR event log belongs to TDX evidence, not {verified.platform}",
            code="eventlog.unsupported",
        )
    fmt = _sniff(log) if log_format == "auto" else log_format
    if fmt == "dstack":
        return with_dstack_events(verified, parse_dstack_event_log(log))
    if fmt != "ccel":
        raise EvidenceParseError(f"unknown event log format {fmt!r}", format="eventlog")
    expected = _expected(verified, _RTMRS)
    tcg = parse_ccel(log).events
    check_replay(tcg, expected)
    return _extended(
        verified,
        {"event_log": {"format": "ccel", "events": len(tcg)}},
        "event log (ccel) replays to rtmr0, rtmr1, rtmr2, rtmr3",
    )
