"""SGX quote v3 verification: real quotes (dcap-qvl, zkdcap, trustee/Occlum) and the
simulated hierarchy."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from atls.collateral import Collateral, load_collateral
from atls.errors import AttestationError, UnsupportedEvidenceError, VerificationError
from atls.evidence.tdx import SGX_QUOTE, TDX_QUOTE
from atls.testing.tdx import DEFAULT_AT, FakeIntel
from atls.trust import TrustStore

RD = b"\x5a" * 64


def ts(v: str | int) -> dt.datetime:
    if isinstance(v, int):
        return dt.datetime.fromtimestamp(v, dt.UTC)
    return dt.datetime.fromisoformat(v.replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def intel_trust(vectors: Path) -> TrustStore:
    return TrustStore.from_certificates([(vectors / "sgx/dcap-qvl/TrustedRootCA.der").read_bytes()])


@pytest.mark.vectors
def test_dcap_qvl_sgx_sample(vectors: Path, intel_trust: TrustStore) -> None:
    """P3 upstream: ConfigurationAndSWHardeningNeeded, [INTEL-SA-00289, INTEL-SA-00615]."""
    quote = (vectors / "sgx/dcap-qvl/sgx_quote").read_bytes()
    coll = load_collateral([vectors / "sgx/dcap-qvl/sgx_quote_collateral.json"])
    v = SGX_QUOTE.verify(quote, trust=intel_trust, collateral=coll, at=ts(1752919277))
    assert v.platform == "sgx"
    assert v.tcb_status == "ConfigurationAndSWHardeningNeeded"
    assert v.advisory_ids == ("INTEL-SA-00289", "INTEL-SA-00615")
    c = v.claims
    assert c["mr_enclave"] == "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb"
    assert c["fmspc"] == "00a067110000" and c["pck_ca"] == "processor"
    assert c["quote_version"] == 3 and c["tee_type"] == 0
    assert c["cpu_svn"] == "0b0b1a18ffff04000000000000000000"
    assert bytes.fromhex(c["report_data"]).rstrip(b"\0") == b"Hello, world!"
    for key in ("mr_signer", "isv_prod_id", "isv_svn", "attributes", "misc_select", "debug"):
        assert key in c
    assert not v.debug
    with pytest.raises(UnsupportedEvidenceError) as e:
        TDX_QUOTE.verify(quote, trust=intel_trust, collateral=coll, at=ts(1752919277))
    assert e.value.code == "tdx.unsupported.tee_type"


@pytest.mark.vectors
@pytest.mark.parametrize(
    "files",
    [
        ("sgx/zkdcap/quote_sgx_00906ed50000.dat.dcap-qvl-collateral.json",),
        tuple(
            "sgx/zkdcap/" + f
            for f in (
                "tcbinfov3_00906ED50000.json",
                "qeidentityv2_sgx.json",
                "tcb_signing_cert.pem",
                "pck_processor_crl.der",
                "intel_root_ca_crl.der",
            )
        ),
    ],
    ids=["dcap-qvl-json", "files"],
)
def test_zkdcap_sgx_sample(files: tuple[str, ...], vectors: Path, intel_trust: TrustStore) -> None:
    """Z2 upstream: TcbSwHardenningNeeded (= SWHardeningNeeded), v3, tee_type 0, FMSPC
    00906ED50000; collector advisories INTEL-SA-00334, INTEL-SA-00615."""
    quote = (vectors / "sgx/zkdcap/quote_sgx_00906ed50000.dat").read_bytes()
    coll = load_collateral([vectors / f for f in files])
    v = SGX_QUOTE.verify(quote, trust=intel_trust, collateral=coll, at=ts(1737458686))
    assert v.tcb_status == "SWHardeningNeeded"
    assert v.advisory_ids == ("INTEL-SA-00334", "INTEL-SA-00615")
    assert v.claims["fmspc"] == "00906ed50000"


@pytest.mark.vectors
def test_sgx_oracle(vectors: Path) -> None:
    dcap_qvl = pytest.importorskip("dcap_qvl")
    for quote, js, now, status in (
        (
            "sgx/dcap-qvl/sgx_quote",
            "sgx/dcap-qvl/sgx_quote_collateral.json",
            1752919277,
            "ConfigurationAndSWHardeningNeeded",
        ),
        (
            "sgx/zkdcap/quote_sgx_00906ed50000.dat",
            "sgx/zkdcap/quote_sgx_00906ed50000.dat.dcap-qvl-collateral.json",
            1737458686,
            "SWHardeningNeeded",
        ),
    ):
        col = dcap_qvl.QuoteCollateralV3.from_json((vectors / js).read_text())
        assert dcap_qvl.verify((vectors / quote).read_bytes(), col, now).status == status


@pytest.mark.vectors
def test_occlum_debug_enclave(vectors: Path, intel_trust: TrustStore) -> None:
    """trustee's Occlum quote: a debug enclave, no collateral in the repository; signatures
    and the PCK chain verify, debug is exposed."""
    import json

    facts = json.loads((vectors / "sgx/EXPECTED_FACTS.json").read_text())
    f = facts["sgx/trustee/occlum_quote.dat"]
    at = dt.datetime.fromisoformat(f["pck"]["not_before"]) + dt.timedelta(days=1)
    v = SGX_QUOTE.verify(
        (vectors / "sgx/trustee/occlum_quote.dat").read_bytes(),
        trust=intel_trust,
        collateral=Collateral(),
        at=at,
        allow_missing_collateral=True,
    )
    assert v.debug and v.claims["debug"] is True
    assert v.tcb_status is None and "tcb_info" in v.unchecked


def test_simulated_sgx_quote() -> None:
    fake = FakeIntel()
    q = fake.sgx_quote(RD, mr_enclave=b"\x01" * 32, mr_signer=b"\x02" * 32, isv_svn=3)
    v = SGX_QUOTE.verify(
        q, trust=fake.trust_store(), collateral=fake.collateral(tee="sgx"), at=DEFAULT_AT
    )
    assert v.tcb_status == "UpToDate" and v.simulated and v.platform == "sgx"
    assert v.claims["mr_enclave"] == "01" * 32 and v.claims["mr_signer"] == "02" * 32
    assert v.claims["isv_svn"] == 3 and v.report_data == RD
    dbg = fake.sgx_quote(RD, debug=True)
    assert SGX_QUOTE.verify(
        dbg, trust=fake.trust_store(), collateral=fake.collateral(tee="sgx"), at=DEFAULT_AT
    ).debug
    # TDX collateral does not verify an SGX quote.
    with pytest.raises(VerificationError) as e:
        SGX_QUOTE.verify(q, trust=fake.trust_store(), collateral=fake.collateral(), at=DEFAULT_AT)
    assert e.value.code == "sgx.collateral.missing_tcb_info"
    cases: tuple[tuple[dict[str, Any], str], ...] = (
        ({"revoke_pck": True}, "sgx.pck.revoked"),
        ({"expired": True}, "sgx.collateral.expired"),
        ({"no_matching_level": True}, "sgx.tcb.no_matching_level"),
    )
    for knobs, code in cases:
        with pytest.raises(AttestationError) as e2:
            SGX_QUOTE.verify(
                q,
                trust=fake.trust_store(),
                at=DEFAULT_AT,
                collateral=fake.collateral(tee="sgx", **knobs),
            )
        assert e2.value.code == code
    with pytest.raises(VerificationError) as e3:
        SGX_QUOTE.verify(
            fake.sgx_quote(RD, wrong_qe_report_data=True),
            trust=fake.trust_store(),
            collateral=fake.collateral(tee="sgx"),
            at=DEFAULT_AT,
        )
    assert e3.value.code == "sgx.qe_report.data_mismatch"
    v = SGX_QUOTE.verify(
        q,
        trust=fake.trust_store(),
        at=DEFAULT_AT,
        collateral=fake.collateral(
            tee="sgx", tcb_status="SWHardeningNeeded", qe_tcb_status="OutOfDate"
        ),
    )
    assert v.tcb_status == "OutOfDate"


def test_simulated_sgx_agrees_with_dcap_qvl() -> None:
    dcap_qvl = pytest.importorskip("dcap_qvl")
    fake = FakeIntel()
    q = fake.sgx_quote(RD)
    now = int(DEFAULT_AT.timestamp())
    all_knobs: tuple[dict[str, Any], ...] = (
        {},
        {"tcb_status": "ConfigurationNeeded", "advisory_ids": ["INTEL-SA-00001"]},
    )
    for knobs in all_knobs:
        col = dcap_qvl.QuoteCollateralV3.from_json(
            fake.dcap_qvl_collateral_json(tee="sgx", **knobs)
        )
        theirs = dcap_qvl.verify_with_root_ca(q, col, fake.root_der, now)
        ours = SGX_QUOTE.verify(
            q,
            trust=fake.trust_store(),
            at=DEFAULT_AT,
            collateral=fake.collateral(tee="sgx", **knobs),
        )
        assert (theirs.status, tuple(theirs.advisory_ids)) == (ours.tcb_status, ours.advisory_ids)
