"""with_event_log: an event log becomes claims only after it replays to a verified quote's
RTMR0..3 (real dstack GetQuote response, real CCEL on a simulated quote)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atls.collateral import load_collateral
from atls.errors import AtlsError, PolicyError, UnsupportedEvidenceError, VerificationError
from atls.evidence.eventlog import parse_ccel, replay_rtmrs, with_event_log
from atls.evidence.tdx import TDX_QUOTE
from atls.policy import parse_policy
from atls.testing.snp import FakeAmd
from atls.testing.tdx import DEFAULT_AT, FakeIntel
from atls.trust import TrustStore

D1_AT = dt.datetime(2026, 2, 18, 10, 58, 52, tzinfo=dt.UTC)
P2 = "tdx/dcap-qvl/tdx_quote_outdated_collateral.json"


def _d1(vectors: Path):
    doc = (vectors / "tdx/dstack/quote-report.json").read_bytes()
    intel = TrustStore.from_certificates(
        [(vectors / "tdx/dcap-qvl/TrustedRootCA.der").read_bytes()]
    )
    quote = bytes.fromhex(json.loads(doc)["quote"])
    v = TDX_QUOTE.verify(quote, trust=intel, collateral=load_collateral([vectors / P2]), at=D1_AT)
    return v, doc


def test_dstack_log_events_become_policy_claims(vectors: Path) -> None:
    v, doc = _d1(vectors)
    assert "events" not in v.claims
    v2 = with_event_log(v, doc)
    events = v2.claims["events"]
    assert {"app-id", "compose-hash", "instance-id", "key-provider"} <= set(events)
    assert v2.claims["event_log"] == {"format": "dstack", "events": 28}
    assert v2.tcb_status == v.tcb_status and v2.trust_root == v.trust_root
    # the policy pins the compose hash
    good = parse_policy({"version": 1, "tdx": {"events": {"compose-hash": events["compose-hash"]}}})
    good.evaluate(v2)
    bad = parse_policy({"version": 1, "tdx": {"events": {"compose-hash": "00" * 32}}})
    with pytest.raises(PolicyError) as ei:
        bad.evaluate(v2)
    assert ei.value.violations[0].rule == "events.compose-hash"


def test_a_tampered_dstack_log_is_refused(vectors: Path) -> None:
    v, doc = _d1(vectors)
    log = json.loads(json.loads(doc)["event_log"])
    runtime = next(e for e in log if e["event"] == "compose-hash")
    runtime["event_payload"] = "00" * 32
    with pytest.raises(VerificationError):
        with_event_log(v, json.dumps(log).encode())
    # a boot event whose digest changed no longer replays to RTMR0-2
    log = json.loads(json.loads(doc)["event_log"])
    boot = next(e for e in log if e["imr"] == 1)
    boot["digest"] = "11" * 48
    with pytest.raises(VerificationError) as ei:
        with_event_log(v, json.dumps(log).encode())
    assert ei.value.code == "eventlog.replay_mismatch"


def test_ccel_on_a_quote_with_its_rtmrs(vectors: Path) -> None:
    area = (vectors / "tdx/go-tdx-guest/ccel/ccel_data.dat").read_bytes()
    rtmrs = replay_rtmrs(parse_ccel(area).events)
    intel = FakeIntel()
    quote = intel.quote(b"\x01" * 64, rtmr=[rtmrs[i] for i in range(4)])
    v = TDX_QUOTE.verify(
        quote, trust=intel.trust_store(), collateral=intel.collateral(), at=DEFAULT_AT
    )
    v2 = with_event_log(v, area)
    assert v2.claims["event_log"]["format"] == "ccel"
    assert v2.checks[-1] == "event log (ccel) replays to rtmr0, rtmr1, rtmr2, rtmr3"
    other = intel.quote(b"\x01" * 64)  # default RTMRs: the log does not replay to them
    v3 = TDX_QUOTE.verify(
        other, trust=intel.trust_store(), collateral=intel.collateral(), at=DEFAULT_AT
    )
    with pytest.raises(VerificationError) as ei:
        with_event_log(v3, area)
    assert ei.value.code == "eventlog.replay_mismatch"


def test_only_tdx_evidence_takes_an_rtmr_log() -> None:
    amd = FakeAmd()
    from atls.evidence.snp import SNP_REPORT

    v = SNP_REPORT.verify(
        amd.report(bytes(64)), trust=amd.trust_store(), collateral=amd.collateral(),
        at=DEFAULT_AT,
    )  # fmt: skip
    with pytest.raises(UnsupportedEvidenceError):
        with_event_log(v, b"[]")


def _simulated_tdx():
    intel = FakeIntel()
    return TDX_QUOTE.verify(
        intel.quote(bytes(64)), trust=intel.trust_store(), collateral=intel.collateral(),
        at=DEFAULT_AT,
    )  # fmt: skip


_VERIFIED_TDX = None


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2048), st.sampled_from(["auto", "dstack", "ccel"]))
def test_random_logs_raise_only_typed_errors(log: bytes, fmt: str) -> None:
    global _VERIFIED_TDX
    if _VERIFIED_TDX is None:
        _VERIFIED_TDX = _simulated_tdx()
    # nothing random replays to the quote's RTMRs; malformed input is a typed error
    with pytest.raises(AtlsError):
        with_event_log(_VERIFIED_TDX, log, log_format=fmt)
