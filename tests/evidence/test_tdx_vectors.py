"""Real TDX quotes and collateral (shared test vectors, see PROVENANCE.md): every case gives the
recorded verdict and TCB status; dcap-qvl (PyPI) is the oracle where its JSON form exists."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pytest

from atls.collateral import Collateral, load_collateral
from atls.collateral._sniff import split_certificates
from atls.collateral.intel import document_from_pcs_body, to_dcap_qvl_json
from atls.errors import AttestationError, EvidenceParseError, VerificationError
from atls.evidence.tdx import TDX_QUOTE, clear_caches
from atls.trust import TrustStore

pytestmark = pytest.mark.vectors

GTG = "tdx/go-tdx-guest/"
GTG_COLLATERAL = tuple(
    GTG + f
    for f in (
        "pckcrl",
        "pck_crl_issuer_chain.pem",
        "rootcrl.der",
        "sample_tcbInfo_response",
        "tcb_info_issuer_chain.pem",
        "sample_qeIdentity_response",
        "qe_identity_issuer_chain.pem",
    )
)
ZK_FILES = tuple(
    "tdx/zkdcap/" + f
    for f in (
        "tcbinfov3_00806f050000.json",
        "qeidentityv2_tdx.json",
        "tcb_signing_cert.pem",
        "pck_platform_crl.der",
        "intel_root_ca_crl.der",
    )
)
P1_JSON = "tdx/dcap-qvl/tdx_quote_collateral.json"
P2_JSON = "tdx/dcap-qvl/tdx_quote_outdated_collateral.json"
Z1_JSON = "tdx/zkdcap/quote_tdx_00806f050000.dat.dcap-qvl-collateral.json"


def ts(v: str | int) -> dt.datetime:
    if isinstance(v, int):
        return dt.datetime.fromtimestamp(v, dt.UTC)
    return dt.datetime.fromisoformat(v.replace("Z", "+00:00"))


@dataclass(frozen=True)
class Case:
    id: str
    quote: str
    collateral: tuple[str, ...]
    at: str | int
    status: str | None = None  # expected TCB status (verified)
    advisories: tuple[str, ...] = ()
    error: str | None = None  # expected error code (rejected)
    debug: bool = False
    sept_ve_disable: bool = True


CASES = [
    # dcap-qvl P1: upstream UpToDate at 1752919234.
    Case("P1", "tdx/dcap-qvl/tdx_quote", (P1_JSON,), 1752919234, "UpToDate"),
    # P2: only with a TCB override upstream; without it the collector records no matching level.
    Case(
        "P2",
        "tdx/dcap-qvl/tdx_quote_outdated",
        (P2_JSON,),
        1774003274,
        error="tdx.tcb.no_matching_level",
    ),
    # P4 (NEAR gas quote): collector UpToDate at 2025-10-02T07:03:50Z.
    Case(
        "P4",
        "tdx/dcap-qvl/near_quote.bin",
        ("tdx/dcap-qvl/near_quote_collateral.json",),
        "2025-10-02T07:03:50Z",
        "UpToDate",
    ),
    # P5: stale platform vs 2025 TCB info -> no matching level (both quotes).
    Case(
        "P5-tappd",
        "tdx/dcap-qvl/quote-from-tappd.bin",
        (P1_JSON,),
        1752919234,
        error="tdx.tcb.no_matching_level",
    ),
    Case(
        "P5-cli",
        "tdx/dcap-qvl/tdx-quote.bin",
        (P1_JSON,),
        1752919234,
        error="tdx.tcb.no_matching_level",
    ),
    # zkdcap Z1: upstream TcbOutOfDate; collector OutOfDate with three advisories.
    Case(
        "Z1-json",
        "tdx/zkdcap/quote_tdx_00806f050000.dat",
        (Z1_JSON,),
        1737467060,
        "OutOfDate",
        ("INTEL-SA-00960", "INTEL-SA-00982", "INTEL-SA-00986"),
    ),
    Case(
        "Z1-files",
        "tdx/zkdcap/quote_tdx_00806f050000.dat",
        ZK_FILES,
        1737467060,
        "OutOfDate",
        ("INTEL-SA-00960", "INTEL-SA-00982", "INTEL-SA-00986"),
    ),
    # go-tdx-guest G1 with the PCS mock collateral: "no matching TCB level found".
    Case(
        "G1",
        GTG + "tdx_prod_quote_SPR_E4.dat",
        GTG_COLLATERAL,
        "2023-07-01T01:00:00Z",
        error="tdx.tcb.no_matching_level",
    ),
    # G2 (v5 / TD 1.5) cross-paired with P2's collateral: UpToDate.
    Case("G2", GTG + "quote_v5_sample.dat", (P2_JSON,), 1774003274, "UpToDate"),
    # G3 (GCE COS-113) cross-paired with Z1's collateral: UpToDate.
    Case("G3", GTG + "ccel/cos-113-tdx-quote.dat", (Z1_JSON,), "2025-01-21T13:44:20Z", "UpToDate"),
    # trustee tdx_quote_4: a debug TD (dcap-qvl refuses it by policy; we expose debug).
    Case(
        "trustee-4",
        "tdx/trustee/tdx_quote_4.dat",
        GTG_COLLATERAL,
        "2023-07-01T01:00:00Z",
        "UpToDate",
        debug=True,
    ),
    # trustee tdx_quote_5 with P2's collateral: no matching level.
    Case(
        "trustee-5",
        "tdx/trustee/tdx_quote_5.dat",
        (P2_JSON,),
        1774003274,
        error="tdx.tcb.no_matching_level",
    ),
    # Azure TD quotes with Z1's collateral: crypto and TCB fine, SEPT_VE_DISABLE off
    # (dcap-qvl's policy refuses that; we expose sept_ve_disable=False).
    Case(
        "azure-trustee",
        "tdx/trustee/az-tdx-vtpm/td-quote.bin",
        (Z1_JSON,),
        1737467060,
        "OutOfDate",
        ("INTEL-SA-00960", "INTEL-SA-00982", "INTEL-SA-00986"),
        sept_ve_disable=False,
    ),
    Case(
        "azure-zkdcap",
        "tdx/zkdcap/quote_v4.dat",
        (Z1_JSON,),
        1737467060,
        "UpToDate",
        sept_ve_disable=False,
    ),
    # dstack D1 with P2's collateral: UpToDate; dstack ra-tls tdx_quote with P1's: no level.
    Case("D1", "tdx/dstack/quote-report.quote.bin", (P2_JSON,), "2026-02-18T10:58:52Z", "UpToDate"),
    Case(
        "dstack-ratls",
        "tdx/dstack/tdx_quote",
        (P1_JSON,),
        1752919234,
        error="tdx.tcb.no_matching_level",
    ),
]


@pytest.fixture(scope="module")
def intel_trust(vectors: Path) -> TrustStore:
    return TrustStore.from_certificates([(vectors / "tdx/dcap-qvl/TrustedRootCA.der").read_bytes()])


def _collateral(vectors: Path, files: tuple[str, ...]) -> Collateral:
    return load_collateral([vectors / f for f in files])


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_recorded_verdicts(case: Case, vectors: Path, intel_trust: TrustStore) -> None:
    quote = (vectors / case.quote).read_bytes()
    coll = _collateral(vectors, case.collateral)
    clear_caches()
    for _cold_then_warm in range(2):
        if case.error is not None:
            with pytest.raises(VerificationError) as e:
                TDX_QUOTE.verify(quote, trust=intel_trust, collateral=coll, at=ts(case.at))
            assert e.value.code == case.error
            continue
        v = TDX_QUOTE.verify(quote, trust=intel_trust, collateral=coll, at=ts(case.at))
        assert v.tcb_status == case.status
        assert v.advisory_ids == case.advisories
        assert v.claims["tcb_status"] == case.status
        assert v.debug is case.debug and v.claims["debug"] is case.debug
        assert v.claims["sept_ve_disable"] is case.sept_ve_disable
        assert v.trust_root == "intel-sgx-root" and not v.simulated
        assert v.unchecked == ()
        assert v.platform == "tdx"
        assert v.report_data.hex() == v.claims["report_data"]


# dcap-qvl's built-in policy refuses debug TDs and SEPT_VE_DISABLE=0; those are compared in
# test_dcap_qvl_refuses_what_we_expose below.
ORACLE_CASES = [c for c in CASES if len(c.collateral) == 1 and not c.debug and c.sept_ve_disable]


@pytest.mark.parametrize("case", ORACLE_CASES, ids=[c.id for c in ORACLE_CASES])
def test_agrees_with_dcap_qvl(case: Case, vectors: Path, intel_trust: TrustStore) -> None:
    """dcap-qvl's verdict, status and advisories equal ours."""
    dcap_qvl = pytest.importorskip("dcap_qvl")
    quote = (vectors / case.quote).read_bytes()
    col = dcap_qvl.QuoteCollateralV3.from_json((vectors / case.collateral[0]).read_text())
    now = int(ts(case.at).timestamp())
    if case.error is not None:
        with pytest.raises(ValueError, match="No matching TCB level"):
            dcap_qvl.verify(quote, col, now)
        return
    r = dcap_qvl.verify(quote, col, now)
    assert r.status == case.status
    assert tuple(r.advisory_ids) == case.advisories


def test_dcap_qvl_refuses_what_we_expose(vectors: Path) -> None:
    """The Azure TDs (SEPT_VE_DISABLE off) verify for us with sept_ve_disable=False; dcap-qvl
    refuses them by policy. Policy (not the verifier) decides in atls."""
    dcap_qvl = pytest.importorskip("dcap_qvl")
    col = dcap_qvl.QuoteCollateralV3.from_json((vectors / Z1_JSON).read_text())
    for name in ("tdx/trustee/az-tdx-vtpm/td-quote.bin", "tdx/zkdcap/quote_v4.dat"):
        with pytest.raises(ValueError, match="SEPT_VE_DISABLE"):
            dcap_qvl.verify((vectors / name).read_bytes(), col, 1737467060)


def test_go_tdx_guest_collateral_as_dcap_qvl_json(vectors: Path, intel_trust: TrustStore) -> None:
    """The PCS mock collateral, repackaged for dcap-qvl, gives dcap-qvl's and our verdict."""
    dcap_qvl = pytest.importorskip("dcap_qvl")
    g = vectors / GTG

    def chain(name: str) -> tuple[bytes, ...]:
        return tuple(split_certificates((g / name).read_bytes()))

    tcb = document_from_pcs_body(
        (g / "sample_tcbInfo_response").read_bytes(),
        field="tcbInfo",
        issuer_chain=chain("tcb_info_issuer_chain.pem"),
    )
    qe = document_from_pcs_body(
        (g / "sample_qeIdentity_response").read_bytes(),
        field="enclaveIdentity",
        issuer_chain=chain("qe_identity_issuer_chain.pem"),
    )
    js = to_dcap_qvl_json(
        tcb_info=tcb,
        qe_identity=qe,
        root_ca_crl=(g / "rootcrl.der").read_bytes(),
        pck_crl=(g / "pckcrl").read_bytes(),
        pck_crl_issuer_chain=chain("pck_crl_issuer_chain.pem"),
    )
    at = ts("2023-07-01T01:00:00Z")
    quote = (g / "tdx_prod_quote_SPR_E4.dat").read_bytes()
    with pytest.raises(ValueError, match="No matching TCB level"):
        dcap_qvl.verify(quote, dcap_qvl.QuoteCollateralV3.from_json(js), int(at.timestamp()))
    from atls.collateral.intel import collateral_from_dcap_qvl_json

    with pytest.raises(VerificationError) as e:
        TDX_QUOTE.verify(
            quote, trust=intel_trust, collateral=collateral_from_dcap_qvl_json(js), at=at
        )
    assert e.value.code == "tdx.tcb.no_matching_level"


def _facts_quotes(vectors: Path) -> list[tuple[str, dt.datetime]]:
    import json

    facts = json.loads((vectors / "tdx/EXPECTED_FACTS.json").read_text())
    return [
        (name, dt.datetime.fromisoformat(f["pck"]["not_before"]) + dt.timedelta(days=1))
        for name, f in facts.items()
    ]


def test_every_quote_verifies_without_collateral_when_allowed(
    vectors: Path, intel_trust: TrustStore
) -> None:
    """Quote signature, QE report signature and binding, and PCK chain to the pinned root for
    every TDX quote (go-tdx-guest, secretvm-verify... upstream: signatures and chains
    verify). Strict mode refuses the missing collateral."""
    for name, at in _facts_quotes(vectors):
        quote = (vectors / name).read_bytes()
        v = TDX_QUOTE.verify(
            quote, trust=intel_trust, collateral=Collateral(), at=at, allow_missing_collateral=True
        )
        assert v.tcb_status is None
        assert {"tcb_info", "qe_identity", "root_ca_crl", "pck_crl", "tcb_level"} <= set(
            v.unchecked
        )
        assert {"quote_signature", "qe_report_signature", "qe_report_data", "pck_chain"} <= set(
            v.checks
        )
        with pytest.raises(VerificationError) as e:
            TDX_QUOTE.verify(quote, trust=intel_trust, collateral=Collateral(), at=at)
        assert e.value.code == "tdx.collateral.missing_root_crl"


def test_go_tdx_guest_times(vectors: Path, intel_trust: TrustStore) -> None:
    """G1 upstream: verifies without collateral at 2023-07-01T01:00Z; at 2053 the PCK
    certificate has expired. G2 (v5) verifies at 2026-02-03T01:00Z."""
    q1 = (vectors / GTG / "tdx_prod_quote_SPR_E4.dat").read_bytes()
    kw = {"trust": intel_trust, "collateral": Collateral(), "allow_missing_collateral": True}
    TDX_QUOTE.verify(q1, at=ts("2023-07-01T01:00:00Z"), **kw)  # type: ignore[arg-type]
    with pytest.raises(VerificationError) as e:
        TDX_QUOTE.verify(q1, at=ts("2053-07-01T01:00:00Z"), **kw)  # type: ignore[arg-type]
    assert e.value.code == "tdx.chain.expired"
    assert "2029-09-20" in e.value.message
    q2 = (vectors / GTG / "quote_v5_sample.dat").read_bytes()
    v = TDX_QUOTE.verify(q2, at=ts("2026-02-03T01:00:00Z"), **kw)  # type: ignore[arg-type]
    assert v.claims["td_report_version"] == "1.5"
    assert v.claims["fmspc"] == "90c06f000000" and v.claims["qe_svn"] == 7


def test_go_tdx_guest_pck_extension_claims(vectors: Path, intel_trust: TrustStore) -> None:
    q1 = (vectors / GTG / "tdx_prod_quote_SPR_E4.dat").read_bytes()
    v = TDX_QUOTE.verify(
        q1,
        trust=intel_trust,
        collateral=Collateral(),
        at=ts("2023-07-01T01:00:00Z"),
        allow_missing_collateral=True,
    )
    c = v.claims
    assert c["fmspc"] == "50806f000000" and c["pce_id"] == "0000" and c["pce_svn"] == 11
    assert c["pck_cpu_svn"] == "03030202020100020000000000000000"
    assert c["pck_ca"] == "platform"
    assert c["qe_svn"] == 4
    assert c["tee_tcb_svn"] == "03000400000000000000000000000000"


def test_go_tdx_guest_collateral_expiry(vectors: Path, intel_trust: TrustStore) -> None:
    """The mock collateral verifies on 2023-07-01 (the TCB level does not match) and is
    rejected as expired after its nextUpdate (upstream: 'tcbInfo has expired')."""
    q = (vectors / "tdx/trustee/tdx_quote_4.dat").read_bytes()  # same FMSPC, matches a level
    coll = _collateral(vectors, GTG_COLLATERAL)
    assert TDX_QUOTE.verify(q, trust=intel_trust, collateral=coll, at=ts("2023-07-01T01:00:00Z"))
    with pytest.raises(VerificationError) as e:
        TDX_QUOTE.verify(q, trust=intel_trust, collateral=coll, at=ts("2023-08-01T00:00:00Z"))
    assert e.value.code == "tdx.collateral.expired"


GTG_FLIPS = [
    # offset, new byte, upstream failure
    (0x00, 3, "quote format not supported"),
    (0x278, 0x10, "size of certificate data"),
    (0x1343, 0x32, "PCK cert chain invalid"),
    (0x1329, 0x32, "root cert signature failure"),
    (0xF5F, 0x32, "intermediate CA signature failure"),
    (0xB77, 0x32, "PCK leaf signature failure"),
    (0x1E, 0x32, "quote signature"),
    (0x3C, 0x32, "quote signature"),
]


@pytest.mark.parametrize("offset,value,why", GTG_FLIPS, ids=[w for _, _, w in GTG_FLIPS])
def test_go_tdx_guest_byte_flips_are_rejected(
    offset: int, value: int, why: str, vectors: Path, intel_trust: TrustStore
) -> None:
    raw = bytearray((vectors / GTG / "tdx_prod_quote_SPR_E4.dat").read_bytes())
    assert raw[offset] != value
    raw[offset] = value
    with pytest.raises(AttestationError) as e:
        TDX_QUOTE.verify(
            bytes(raw),
            trust=intel_trust,
            collateral=Collateral(),
            at=ts("2023-07-01T01:00:00Z"),
            allow_missing_collateral=True,
        )
    if offset in (0x1E, 0x3C):
        assert e.value.code == "tdx.signature"
    if offset == 0x278:
        assert isinstance(e.value, EvidenceParseError)


def test_dcap_qvl_p1_negatives(vectors: Path, intel_trust: TrustStore) -> None:
    """Collector negatives of P1: flipped byte 0x3C, three days late, before the issue."""
    quote = (vectors / "tdx/dcap-qvl/tdx_quote").read_bytes()
    coll = _collateral(vectors, (P1_JSON,))
    at = ts(1752919234)
    flipped = bytearray(quote)
    flipped[0x3C] ^= 0x01
    with pytest.raises(VerificationError) as e:
        TDX_QUOTE.verify(bytes(flipped), trust=intel_trust, collateral=coll, at=at)
    assert e.value.code == "tdx.signature"
    with pytest.raises(VerificationError) as e:
        TDX_QUOTE.verify(quote, trust=intel_trust, collateral=coll, at=at + dt.timedelta(days=3))
    assert e.value.code == "tdx.collateral.expired"
    with pytest.raises(VerificationError) as e:
        TDX_QUOTE.verify(quote, trust=intel_trust, collateral=coll, at=ts("2025-06-19T10:13:20Z"))
    assert e.value.code == "tdx.collateral.not_yet_valid"
    # The window edges: dcap-qvl's upstream instant (nextUpdate - 1 s) and the window start.
    TDX_QUOTE.verify(quote, trust=intel_trust, collateral=coll, at=ts("2025-06-19T10:32:27Z"))


@pytest.mark.parametrize("offset", [640, 636, 184])
def test_secretvm_flips_are_rejected(offset: int, vectors: Path, intel_trust: TrustStore) -> None:
    """secretvm-verify upstream: flipping byte 640 or 636, or an MRTD byte (184), makes the
    quote unauthentic."""
    raw = bytearray((vectors / "tdx/secretvm-verify/tdx_cpu_docker_check_quote.bin").read_bytes())
    at = ts("2026-02-01T00:00:00Z")
    kw = {"trust": intel_trust, "collateral": Collateral(), "allow_missing_collateral": True}
    TDX_QUOTE.verify(bytes(raw), at=at, **kw)  # type: ignore[arg-type]
    raw[offset] ^= 0xFF
    with pytest.raises(AttestationError):
        TDX_QUOTE.verify(bytes(raw), at=at, **kw)  # type: ignore[arg-type]


def test_real_quote_is_refused_without_the_intel_root(vectors: Path) -> None:
    from atls.testing.tdx import FakeIntel

    quote = (vectors / "tdx/dcap-qvl/tdx_quote").read_bytes()
    coll = _collateral(vectors, (P1_JSON,))
    with pytest.raises(VerificationError) as e:
        TDX_QUOTE.verify(quote, trust=TrustStore(), collateral=coll, at=ts(1752919234))
    assert e.value.code == "tdx.chain.no_anchor"
    with pytest.raises(VerificationError) as e:
        TDX_QUOTE.verify(quote, trust=FakeIntel().trust_store(), collateral=coll, at=ts(1752919234))
    assert e.value.code == "tdx.chain.untrusted_root"


def test_v5_claims(vectors: Path, intel_trust: TrustStore) -> None:
    v = TDX_QUOTE.verify(
        (vectors / GTG / "quote_v5_sample.dat").read_bytes(),
        trust=intel_trust,
        collateral=_collateral(vectors, (P2_JSON,)),
        at=ts(1774003274),
    )
    c = v.claims
    assert c["quote_version"] == 5 and c["td_report_version"] == "1.5"
    assert c["tee_tcb_svn2"].startswith("0d010400") and c["mr_servicetd"] == "00" * 48
    assert c["mr_td"] == (
        "7348651a34b2d2d3462822e3a750ec6110125f36757c78480bbfc69cc0d21fb0"
        "01a1ced3ee19747dda8f750c3bc8f876"
    )
    assert c["td_relaunch_advised"] is False
    for key in (
        "mr_td",
        "rtmr0",
        "rtmr1",
        "rtmr2",
        "rtmr3",
        "report_data",
        "td_attributes",
        "debug",
        "sept_ve_disable",
        "xfam",
        "mr_seam",
        "mr_signer_seam",
        "seam_attributes",
        "mr_config_id",
        "mr_owner",
        "mr_owner_config",
        "tee_tcb_svn",
        "quote_version",
        "tee_type",
        "fmspc",
        "pce_id",
        "qe_svn",
        "pce_svn",
        "tcb_status",
        "advisory_ids",
    ):
        assert key in c, key
    assert v.to_json()["claims"] == dict(c)
