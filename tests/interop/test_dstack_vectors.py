"""Real dstack evidence from the shared vectors (tdx/dstack, PROVENANCE.md "Dstack-TEE/dstack"):
the quote verifies, its REPORTDATA is the attestation's report_data, RTMR3 replays from the
event log (recomputing stripped digests), and the facts the provenance records come out."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from atls.collateral import load_collateral
from atls.errors import VerificationError
from atls.evidence.tdx import clear_caches
from atls.interop.dstack import TdxEvent, decode_attestation
from atls.interop.dstack_verify import attestation_from_get_quote, verify_dstack_tdx
from atls.trust import TrustStore

pytestmark = pytest.mark.vectors

P2_COLLATERAL = "tdx/dcap-qvl/tdx_quote_outdated_collateral.json"
D1_AT = dt.datetime(2026, 2, 18, 10, 58, 52, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def intel(vectors: Path) -> TrustStore:
    return TrustStore.from_certificates([(vectors / "tdx/dcap-qvl/TrustedRootCA.der").read_bytes()])


def test_d1_full_getquote_verifies_up_to_date(vectors: Path, intel: TrustStore) -> None:
    att = attestation_from_get_quote((vectors / "tdx/dstack/quote-report.json").read_text())
    clear_caches()
    res = verify_dstack_tdx(
        att, trust=intel, collateral=load_collateral([vectors / P2_COLLATERAL]), at=D1_AT
    )
    v = res.verified
    assert v.tcb_status == "UpToDate"  # provenance: cross-paired with P2's collateral
    assert v.report_data[:2] == b"\x12\x34" and not any(v.report_data[2:])
    assert set(res.events) >= {
        "system-preparing",
        "app-id",
        "compose-hash",
        "instance-id",
        "boot-mr-done",
        "key-provider",
        "system-ready",
        "LIUM_MINER_HOTKEY",
    }
    key_provider = json.loads(bytes.fromhex(res.events["key-provider"]))
    assert key_provider["name"] == "local-sgx"  # this host used the local SGX key provider
    vm = res.issuer_asserted["vm_config"]
    assert vm["os_image_hash"] == (
        "14ad42d0270b444eaeb53918a5a94d9b17eec7a817cd336173b17c5327541c67"
    )
    assert "os_image_hash" not in v.claims  # vm_config is never a claim
    assert "rtmr3_replay" in res.checks and "quote_report_data" in res.checks


def test_d1_outside_the_collateral_window_is_refused(vectors: Path, intel: TrustStore) -> None:
    att = attestation_from_get_quote((vectors / "tdx/dstack/quote-report.json").read_text())
    with pytest.raises(VerificationError):
        verify_dstack_tdx(
            att,
            trust=intel,
            collateral=load_collateral([vectors / P2_COLLATERAL]),
            at=D1_AT + dt.timedelta(days=60),
        )


def test_d1_tampered_runtime_payload_breaks_rtmr3(vectors: Path, intel: TrustStore) -> None:
    att = attestation_from_get_quote((vectors / "tdx/dstack/quote-report.json").read_text())
    events = list(att.event_log)
    i = next(k for k, e in enumerate(events) if e.event == "compose-hash")
    e = events[i]
    # the payload changes and its digest is stripped (recomputed), as in a forged log
    events[i] = TdxEvent(e.imr, e.event_type, b"", e.event, bytes(len(e.event_payload)))
    forged = type(att)(0, "tdx", att.quote, tuple(events), report_data=att.report_data)
    with pytest.raises(VerificationError) as err:
        verify_dstack_tdx(
            forged, trust=intel, collateral=load_collateral([vectors / P2_COLLATERAL]), at=D1_AT
        )
    assert err.value.code == "dstack.rtmr3_mismatch"
    # and with the old digest kept, the event itself no longer matches it
    events[i] = TdxEvent(e.imr, e.event_type, e.digest, e.event, bytes(len(e.event_payload)))
    forged = type(att)(0, "tdx", att.quote, tuple(events), report_data=att.report_data)
    with pytest.raises(VerificationError) as err:
        verify_dstack_tdx(
            forged, trust=intel, collateral=load_collateral([vectors / P2_COLLATERAL]), at=D1_AT
        )
    assert err.value.code == "eventlog.dstack.digest_mismatch"


def _no_collateral_at(quote: bytes) -> dt.datetime:
    from atls.evidence.tdx import collateral_inputs

    assert collateral_inputs(quote) is not None
    return dt.datetime(2026, 6, 1, tzinfo=dt.UTC)  # inside the PCK chain's validity


@pytest.mark.parametrize(
    "source",
    ["tdx-lite-attestation.json", "simulator-attestation.bin", "guest-agent-attestation.bin"],
)
def test_scale_attestations_replay_rtmr3(vectors: Path, intel: TrustStore, source: str) -> None:
    raw = (vectors / "tdx/dstack" / source).read_bytes()
    if source.endswith(".json"):
        raw = bytes.fromhex(json.loads(raw)["attestation"])
    att = decode_attestation(raw)
    assert att.version == 0 and att.platform == "tdx"
    # no collateral of the quote's date is in the vectors: the quote, QE report and PCK chain
    # are verified, TCB status is not (and is reported so)
    res = verify_dstack_tdx(
        att,
        trust=intel,
        collateral=load_collateral([]),
        at=_no_collateral_at(att.quote),
        allow_missing_collateral=True,
    )
    assert res.verified.tcb_status is None
    assert "tcb_level" in res.verified.unchecked
    assert "rtmr3_replay" in res.checks
    ev = res.events
    assert ev["compose-hash"] and ev["app-id"] and ev["os-image-hash"]
    # dstack images of this era put 0x01 || compose-hash into MRCONFIGID
    mr_config_id = bytes.fromhex(res.verified.claims["mr_config_id"])
    assert mr_config_id == b"\x01" + bytes.fromhex(ev["compose-hash"]) + bytes(15)
    if source.endswith(".json"):
        # provenance D2: the lite fixture's vm_config names this OS image
        assert res.issuer_asserted["vm_config"]["os_image_hash"] == (
            "e6f5cfec20c02e7b97baa213d0f718020b55e040172d90ccbcb946d56c8b09db"
        )
        # stripped: every runtime digest was cleared and recomputed
        assert all(not e.digest for e in att.event_log if e.imr == 3)
