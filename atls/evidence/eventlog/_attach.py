"""Attach an event log to verified TDX evidence: replay it against the quote's RTMRs and,
only if it matches, expose what it says as claims."""

from __future__ import annotations

from typing import Any

from atls.errors import EvidenceParseError, UnsupportedEvidenceError
from atls.evidence._verified import Verified, make_verified
from atls.evidence.eventlog._ccel import parse_ccel
from atls.evidence.eventlog._dstack import dstack_claims, parse_dstack_event_log
from atls.evidence.eventlog._replay import check_replay

__all__ = ["with_event_log"]

_RTMRS = ("rtmr0", "rtmr1", "rtmr2", "rtmr3")


def _sniff(log: bytes) -> str:
    head = log.lstrip()[:1]
    return "dstack" if head in (b"[", b"{") else "ccel"


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
    expected = {}
    for name in _RTMRS:
        value = verified.claims.get(name)
        if not isinstance(value, str):
            raise UnsupportedEvidenceError(
                f"the verified evidence has no {name} claim", code="eventlog.unsupported"
            )
        expected[name] = bytes.fromhex(value)
    extra: dict[str, Any]
    if fmt == "dstack":
        events = parse_dstack_event_log(log)
        check_replay(events, expected)
        extra = dstack_claims(events)
        extra["event_log"] = {"format": "dstack", "events": len(events)}
    elif fmt == "ccel":
        tcg = parse_ccel(log).events
        check_replay(tcg, expected)
        extra = {"event_log": {"format": "ccel", "events": len(tcg)}}
    else:
        raise EvidenceParseError(f"unknown event log format {fmt!r}", format="eventlog")
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
        checks=(*verified.checks, f"event log ({fmt}) replays to rtmr0-3"),
    )
