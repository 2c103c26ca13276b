"""The simulated Intel hierarchy (atls.testing.tdx): real-format quotes and collateral that the
verifier accepts, every negative knob, status convergence, caching, and dcap-qvl as oracle."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atls.collateral import Collateral, Document
from atls.errors import AttestationError, ConfigurationError, VerificationError
from atls.evidence.tdx import TDX_QUOTE, clear_caches
from atls.testing.tdx import DEFAULT_AT, FakeIntel, TcbLevelSpec
from atls.trust import TrustStore

RD = bytes(range(64))


@pytest.fixture(scope="module")
def fake() -> FakeIntel:
    return FakeIntel()


def verify(fake: FakeIntel, quote: bytes, coll: Collateral | None = None, **kw: object):  # type: ignore[no-untyped-def]
    return TDX_QUOTE.verify(
        quote,
        trust=fake.trust_store(),
        collateral=coll if coll is not None else fake.collateral(),
        at=kw.pop("at", DEFAULT_AT),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


def code_of(fake: FakeIntel, quote: bytes, coll: Collateral | None = None, **kw: object) -> str:
    with pytest.raises(AttestationError) as e:
        verify(fake, quote, coll, **kw)
    return e.value.code


def test_v4_quote_verifies(fake: FakeIntel) -> None:
    v = verify(fake, fake.quote(RD, mr_td=b"\x77" * 48))
    assert v.platform == "tdx" and v.simulated
    assert v.trust_root == "simulated:atls simulated Intel SGX Root CA"
    assert v.tcb_status == "UpToDate" and v.advisory_ids == ()
    assert v.report_data == RD and not v.debug
    assert v.unchecked == ()
    c = v.claims
    assert c["mr_td"] == "77" * 48 and c["quote_version"] == 4
    assert c["fmspc"] == "00806f050000" and c["pce_svn"] == 11 and c["qe_svn"] == 8
    assert c["tee_type"] == 0x81 and c["td_attributes"] == "0000001000000000"
    assert c["sept_ve_disable"] is True and c["tdx_module_tcb_status"] == "UpToDate"
    assert "tee_tcb_svn2" not in c and "td_relaunch_advised" not in c


@pytest.mark.parametrize("body", ["1.0", "1.5"])
def test_v5_quotes_verify(fake: FakeIntel, body: str) -> None:
    v = verify(fake, fake.quote(RD, version=5, body=body))
    assert v.tcb_status == "UpToDate"
    assert v.claims["quote_version"] == 5
    assert v.claims["td_report_version"] == body
    assert ("mr_servicetd" in v.claims) is (body == "1.5")


def test_deterministic_hierarchy() -> None:
    a, b = FakeIntel(), FakeIntel()
    assert a.root_der == b.root_der and a.pck_der == b.pck_der
    assert a.quote(RD) == b.quote(RD)
    assert FakeIntel(seed=b"other").root_der != a.root_der
    # a different platform under the same root
    p = FakeIntel(fmspc=bytes.fromhex("90c06f000000"), pce_svn=13)
    assert p.root_der == a.root_der and p.pck_der != a.pck_der


def test_debug_td_is_reported_not_refused(fake: FakeIntel) -> None:
    v = verify(fake, fake.quote(RD, debug=True))
    assert v.debug and v.claims["debug"] is True
    assert v.tcb_status == "UpToDate"


def test_expired_and_future_collateral(fake: FakeIntel) -> None:
    q = fake.quote(RD)
    assert code_of(fake, q, fake.collateral(expired=True)) == "tdx.collateral.expired"
    early = dt.datetime(2023, 6, 1, tzinfo=dt.UTC)
    assert code_of(fake, q, at=early) == "tdx.collateral.not_yet_valid"
    stale_crl = fake.collateral(crl_next_update=dt.datetime(2024, 2, 1, tzinfo=dt.UTC))
    assert code_of(fake, q, stale_crl) == "tdx.collateral.expired"
    assert code_of(fake, q, at=dt.datetime(2051, 1, 1, tzinfo=dt.UTC)) == "tdx.chain.expired"


def test_no_matching_tcb_level(fake: FakeIntel) -> None:
    q = fake.quote(RD)
    assert code_of(fake, q, fake.collateral(no_matching_level=True)) == "tdx.tcb.no_matching_level"
    # The SGX TCB matches but TEE_TCB_SVN[2] is below the only level: no TDX level.
    only = [TcbLevelSpec(fake.sgx_tcb_components, fake.pce_svn)]
    low = bytes.fromhex("04010600000000000000000000000000")
    assert code_of(fake, fake.quote(RD, tee_tcb_svn=low), fake.collateral(tcb_levels=only)) == (
        "tdx.tcb.no_matching_level"
    )
    # ... while the lower default level makes it OutOfDate.
    assert verify(fake, fake.quote(RD, tee_tcb_svn=low)).tcb_status == "OutOfDate"


def test_revocations(fake: FakeIntel) -> None:
    q = fake.quote(RD)
    assert code_of(fake, q, fake.collateral(revoke_pck=True)) == "tdx.pck.revoked"
    assert code_of(fake, q, fake.collateral(revoke_pck_ca=True)) == "tdx.chain.revoked"


def test_qe_report_binding(fake: FakeIntel) -> None:
    assert code_of(fake, fake.quote(RD, wrong_qe_report_data=True)) == "tdx.qe_report.data_mismatch"


def test_collateral_faults(fake: FakeIntel) -> None:
    q = fake.quote(RD)
    assert code_of(fake, q, fake.collateral(wrong_fmspc=True)) == "tdx.collateral.fmspc_mismatch"
    assert code_of(fake, q, fake.collateral(wrong_crl_issuer=True)) == "tdx.crl.signature"
    assert code_of(fake, q, fake.collateral(tamper_tcb_info=True)) == "tdx.collateral.signature"
    assert code_of(fake, q, fake.collateral(include_root_crl=False)) == (
        "tdx.collateral.missing_root_crl"
    )
    assert code_of(fake, q, fake.collateral(include_pck_crl=False)) == (
        "tdx.collateral.missing_pck_crl"
    )
    assert code_of(fake, q, fake.collateral(tee="sgx")) == "tdx.collateral.missing_tcb_info"
    assert code_of(fake, q, fake.collateral(qe_mrsigner=bytes(32))) == "tdx.qe_identity.mismatch"
    c = fake.collateral()
    no_qe = Collateral(c.certificates, c.crls, c.documents_of("tdx-tcb-info"))
    assert code_of(fake, q, no_qe) == "tdx.collateral.missing_qe_identity"
    # A QE identity of the wrong TEE under the TDX kind.
    sgx_qe = fake.collateral(tee="sgx").documents_of("sgx-qe-identity")[0]
    wrong = Collateral(
        c.certificates,
        c.crls,
        (
            *c.documents_of("tdx-tcb-info"),
            Document("tdx-qe-identity", sgx_qe.body, sgx_qe.signature, sgx_qe.issuer_chain),
        ),
    )
    assert code_of(fake, q, wrong) == "tdx.collateral.wrong_type"
    # Malformed JSON, correctly signed: the parser must refuse it with a typed error.
    qe = c.documents_of("tdx-qe-identity")
    for body in (
        b"{not json",
        b"[]",
        b'{"id":"TDX","version":3}',
        fake.tcb_info_json().replace(b'"pcesvn":11', b'"pcesvn":"11"'),
        fake.tcb_info_json().replace(b'"UpToDate"', b'"Fine"', 1),
        fake.tcb_info_json().replace(b'"fmspc":"00806F050000"', b'"fmspc":"00806F0500"'),
        fake.tcb_info_json().replace(b'"issueDate":"2024-01-01T00:00:00Z"', b'"issueDate":7'),
        b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
        json.dumps({**json.loads(fake.tcb_info_json()), "version": 1}).encode(),
    ):
        bad = fake.signed_document("tdx-tcb-info", body)
        assert code_of(fake, q, Collateral(c.certificates, c.crls, (bad, *qe))) == (
            "tdx.collateral.malformed"
        ), body[:60]
    bad_qe = fake.signed_document("tdx-qe-identity", fake.qe_identity_json()[:-5])
    tcb = c.documents_of("tdx-tcb-info")
    assert code_of(fake, q, Collateral(c.certificates, c.crls, (*tcb, bad_qe))) == (
        "tdx.collateral.malformed"
    )


def test_signing_certificate_from_the_collateral(fake: FakeIntel) -> None:
    """Documents without an issuer chain are checked with the TCB signing certificate found
    among the collateral certificates (PCS JSON files + PEM chain files)."""
    v = verify(fake, fake.quote(RD), fake.collateral(issuer_chains=False))
    assert v.tcb_status == "UpToDate"
    c = fake.collateral(issuer_chains=False)
    no_signer = Collateral((fake.pck_ca_der,), c.crls, c.documents)
    assert code_of(fake, fake.quote(RD), no_signer) == "tdx.collateral.chain"


def test_a_signer_that_is_not_the_tcb_signing_certificate(fake: FakeIntel) -> None:
    """TCB info signed by the PCK CA key (also issued by the root) is refused."""
    c = fake.collateral()
    tcb = c.documents_of("tdx-tcb-info")[0]
    forged = Document("tdx-tcb-info", tcb.body, tcb.signature, (fake.pck_ca_der, fake.root_der))
    coll = Collateral(c.certificates, c.crls, (forged, *c.documents_of("tdx-qe-identity")))
    assert code_of(fake, fake.quote(RD), coll) == "tdx.collateral.chain"


@pytest.mark.parametrize(
    "knobs,status,advisories",
    [
        (
            {"tcb_status": "SWHardeningNeeded", "advisory_ids": ["INTEL-SA-00615"]},
            "SWHardeningNeeded",
            ("INTEL-SA-00615",),
        ),
        (
            {"tcb_status": "ConfigurationAndSWHardeningNeeded"},
            "ConfigurationAndSWHardeningNeeded",
            (),
        ),
        (
            {"qe_tcb_status": "OutOfDate", "qe_advisory_ids": ["INTEL-SA-00999"]},
            "OutOfDate",
            ("INTEL-SA-00999",),
        ),
        (
            {"tcb_status": "ConfigurationNeeded", "qe_tcb_status": "OutOfDate"},
            "OutOfDateConfigurationNeeded",
            (),
        ),
        ({"tcb_status": "SWHardeningNeeded", "qe_tcb_status": "Revoked"}, "Revoked", ()),
        ({"module_tcb_status": "OutOfDate"}, "OutOfDate", ()),
        (
            {"tcb_status": "ConfigurationAndSWHardeningNeeded", "module_tcb_status": "OutOfDate"},
            "OutOfDateConfigurationNeeded",
            (),
        ),
        ({"module_tcb_status": "Revoked"}, "Revoked", ()),
        ({"tcb_status": "Revoked"}, "Revoked", ()),
        (
            {
                "tcb_status": "OutOfDate",
                "advisory_ids": ["INTEL-SA-1", "INTEL-SA-2"],
                "qe_advisory_ids": ["INTEL-SA-2", "INTEL-SA-3"],
            },
            "OutOfDate",
            ("INTEL-SA-1", "INTEL-SA-2", "INTEL-SA-3"),
        ),
    ],
)
def test_status_convergence(
    fake: FakeIntel, knobs: dict[str, object], status: str, advisories: tuple[str, ...]
) -> None:
    """Intel's convergence of the platform TCB level with the TDX module and QE statuses;
    the verifier reports the status, policy decides."""
    v = verify(fake, fake.quote(RD), fake.collateral(**knobs))  # type: ignore[arg-type]
    assert v.tcb_status == status
    assert v.advisory_ids == advisories


def test_tcb_level_selection_uses_the_highest_matching_level(fake: FakeIntel) -> None:
    comps = fake.sgx_tcb_components
    tee = tuple(bytes.fromhex("04010700000000000000000000000000"))
    levels = [
        TcbLevelSpec(tuple(c + 1 for c in comps), 11, tee, "UpToDate"),  # above the platform
        TcbLevelSpec(tuple(comps), 12, tee, "UpToDate"),  # PCESVN above the platform
        TcbLevelSpec(tuple(comps), 11, tee, "SWHardeningNeeded", ("INTEL-SA-00001",)),
        TcbLevelSpec(tuple(0 for _ in comps), 0, tuple(0 for _ in tee), "OutOfDate"),
    ]
    v = verify(fake, fake.quote(RD), fake.collateral(tcb_levels=list(reversed(levels))))
    assert v.tcb_status == "SWHardeningNeeded" and v.advisory_ids == ("INTEL-SA-00001",)
    # TDX components: with module version 1, TEE_TCB_SVN[0..1] are judged by the module.
    low_module = bytes.fromhex("00010700000000000000000000000000")
    v = verify(fake, fake.quote(RD, tee_tcb_svn=low_module))
    assert v.tcb_status == "OutOfDate" and v.claims["tdx_module_tcb_status"] == "OutOfDate"
    assert v.claims["platform_tcb_status"] == "UpToDate"
    # A module identity whose lowest level is above the module's ISVSVN: no module level.
    info = json.loads(fake.tcb_info_json())
    info["tdxModuleIdentities"][0]["tcbLevels"] = info["tdxModuleIdentities"][0]["tcbLevels"][:1]
    c = fake.collateral()
    doc = fake.signed_document("tdx-tcb-info", json.dumps(info).encode())
    coll = Collateral(c.certificates, c.crls, (doc, *c.documents_of("tdx-qe-identity")))
    assert code_of(fake, fake.quote(RD, tee_tcb_svn=low_module), coll) == (
        "tdx.tcb.no_matching_module_level"
    )
    low_tdx = bytes.fromhex("04010600000000000000000000000000")
    v = verify(fake, fake.quote(RD, tee_tcb_svn=low_tdx), fake.collateral(tcb_levels=levels))
    assert v.tcb_status == "OutOfDate"


def test_tdx_module_identity(fake: FakeIntel) -> None:
    assert code_of(fake, fake.quote(RD, mr_signer_seam=b"\x01" * 48)) == "tdx.tcb.module_mismatch"
    assert code_of(fake, fake.quote(RD, seam_attributes=b"\x01" + bytes(7))) == (
        "tdx.tcb.module_mismatch"
    )
    unknown_version = bytes.fromhex("04090700000000000000000000000000")
    assert code_of(fake, fake.quote(RD, tee_tcb_svn=unknown_version)) == "tdx.tcb.module_mismatch"


def test_td_relaunch_advised(fake: FakeIntel) -> None:
    """TD 1.5: out of date only because of the TDX module it was launched with, while
    TEE_TCB_SVN2 (the module now running) is current -> relaunch advised (a claim)."""
    old = bytes.fromhex("03010700000000000000000000000000")
    new = bytes.fromhex("04010700000000000000000000000000")
    coll = fake.collateral()
    v = verify(fake, fake.quote(RD, version=5, tee_tcb_svn=old, tee_tcb_svn2=new), coll)
    assert v.tcb_status == "OutOfDate" and v.claims["td_relaunch_advised"] is True
    v = verify(fake, fake.quote(RD, version=5, tee_tcb_svn=old, tee_tcb_svn2=old), coll)
    assert v.tcb_status == "OutOfDate" and v.claims["td_relaunch_advised"] is False


def test_trust(fake: FakeIntel, vectors_dir_root: TrustStore | None = None) -> None:
    q = fake.quote(RD)
    other = FakeIntel(seed=b"not the same root")
    with pytest.raises(VerificationError) as e:
        TDX_QUOTE.verify(q, trust=other.trust_store(), collateral=fake.collateral(), at=DEFAULT_AT)
    assert e.value.code == "tdx.chain.untrusted_root"
    with pytest.raises(ConfigurationError):
        TrustStore.from_certificates([fake.root_der])  # simulated roots need the opt-in
    with pytest.raises(ConfigurationError) as c:
        TDX_QUOTE.verify(
            q, trust=fake.trust_store(), collateral=fake.collateral(), at=dt.datetime(2025, 1, 1)
        )
    assert c.value.code == "usage.at"


def test_pinned_intel_root_refuses_simulated_quotes(vectors) -> None:  # type: ignore[no-untyped-def]
    fake = FakeIntel()
    trust = TrustStore.from_certificates(
        [(vectors / "tdx/dcap-qvl/TrustedRootCA.der").read_bytes()]
    )
    with pytest.raises(VerificationError) as e:
        TDX_QUOTE.verify(fake.quote(RD), trust=trust, collateral=fake.collateral(), at=DEFAULT_AT)
    assert e.value.code == "tdx.chain.untrusted_root"


def test_allow_missing_collateral_lists_what_was_not_checked(fake: FakeIntel) -> None:
    v = verify(fake, fake.quote(RD), Collateral(), allow_missing_collateral=True)
    assert v.tcb_status is None and v.claims["tcb_status"] is None
    assert set(v.unchecked) == {
        "root_ca_crl",
        "pck_crl",
        "tcb_info",
        "qe_identity",
        "tdx_module_identity",
        "qe_report_identity",
        "tcb_level",
    }
    # Collateral that is given is still checked.
    assert (
        code_of(
            fake, fake.quote(RD), fake.collateral(revoke_pck=True), allow_missing_collateral=True
        )
        == "tdx.pck.revoked"
    )


def test_warm_cache_is_bounded_by_the_validity_window(fake: FakeIntel) -> None:
    clear_caches()
    end = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
    coll = fake.collateral(next_update=end)
    q = fake.quote(RD)
    inside = dt.datetime(2024, 2, 1, tzinfo=dt.UTC)
    assert verify(fake, q, coll, at=inside).tcb_status == "UpToDate"
    assert verify(fake, fake.quote(b"\x01" * 64), coll, at=inside).report_data == b"\x01" * 64
    assert code_of(fake, q, coll, at=end + dt.timedelta(seconds=1)) == "tdx.collateral.expired"
    # the quote signature is checked on every call, cached context or not
    bad = bytearray(q)
    bad[100] ^= 1
    assert code_of(fake, bytes(bad), coll, at=inside) == "tdx.signature"


_FAKE = FakeIntel()
_Q4 = _FAKE.quote(RD)
_Q5 = _FAKE.quote(RD, version=5)


@settings(max_examples=120, deadline=None)
@given(st.sampled_from([_Q4, _Q5]), st.integers(min_value=0), st.integers(1, 255))
def test_any_flipped_byte_in_the_signed_regions_is_rejected(
    quote: bytes, where: int, xor: int
) -> None:
    """Header, body, signature, attestation key, QE report and its signature, QE auth data
    and the PCK chain: flipping any byte makes verification fail with a typed error."""
    pem_at = quote.index(b"-----BEGIN")
    signed_end = len(quote) - 4 - len(_FAKE.pck_chain_pem)  # everything before the PEM chain
    at = where % (signed_end + len(_FAKE.pck_chain_pem) - 1)
    if at >= signed_end:
        at = pem_at + (at - signed_end)
    damaged = bytearray(quote)
    damaged[at] ^= xor
    with pytest.raises(AttestationError):
        TDX_QUOTE.verify(
            bytes(damaged), trust=_FAKE.trust_store(), collateral=_FAKE.collateral(), at=DEFAULT_AT
        )


ORACLE_KNOBS = [
    {},
    {"tcb_status": "SWHardeningNeeded", "advisory_ids": ["INTEL-SA-00615"]},
    {"qe_tcb_status": "OutOfDate"},
    {"module_tcb_status": "OutOfDate"},
    {"tcb_status": "ConfigurationAndSWHardeningNeeded"},
    {"no_matching_level": True},
]


@pytest.mark.parametrize("knobs", ORACLE_KNOBS, ids=[str(k) for k in ORACLE_KNOBS])
@pytest.mark.parametrize("version", [4, 5])
def test_dcap_qvl_agrees_on_simulated_quotes(
    fake: FakeIntel, knobs: dict[str, object], version: int
) -> None:
    dcap_qvl = pytest.importorskip("dcap_qvl")
    q = fake.quote(RD, version=version)
    col = dcap_qvl.QuoteCollateralV3.from_json(fake.dcap_qvl_collateral_json(**knobs))
    now = int(DEFAULT_AT.timestamp())
    try:
        ours = verify(fake, q, fake.collateral(**knobs))  # type: ignore[arg-type]
    except VerificationError as e:
        assert e.code == "tdx.tcb.no_matching_level"
        with pytest.raises(ValueError, match="No matching TCB level"):
            dcap_qvl.verify_with_root_ca(q, col, fake.root_der, now)
        return
    theirs = dcap_qvl.verify_with_root_ca(q, col, fake.root_der, now)
    assert theirs.status == ours.tcb_status
    assert tuple(theirs.advisory_ids) == ours.advisory_ids


def test_cached_results_follow_newer_collateral_in_the_same_bundle(fake: FakeIntel) -> None:
    """A bundle with an old and a newer CRL / TCB info: the newer one is used as soon as it
    is current, even though an earlier verification was cached."""
    clear_caches()
    c = fake.collateral()
    switch = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
    before, after = switch - dt.timedelta(days=1), switch + dt.timedelta(days=1)
    q = fake.quote(RD)
    newer_crl = fake.crl("pck", this_update=switch, revoked=[fake.pck.serial_number])
    bundle = Collateral(c.certificates, (*c.crls, newer_crl), c.documents)
    assert verify(fake, q, bundle, at=before).tcb_status == "UpToDate"
    assert code_of(fake, q, bundle, at=after) == "tdx.pck.revoked"
    newer_tcb = fake.signed_document(
        "tdx-tcb-info", fake.tcb_info_json(issue_date=switch, tcb_status="OutOfDate")
    )
    bundle = Collateral(c.certificates, c.crls, (*c.documents, newer_tcb))
    assert verify(fake, q, bundle, at=before).tcb_status == "UpToDate"
    assert verify(fake, q, bundle, at=after).tcb_status == "OutOfDate"
    assert verify(fake, q, bundle, at=before).tcb_status == "UpToDate"


def test_collateral_bundles_are_bounded(fake: FakeIntel) -> None:
    c = fake.collateral()
    q = fake.quote(RD)
    many_crls = Collateral(c.certificates, c.crls * 40, c.documents)
    assert code_of(fake, q, many_crls) == "tdx.collateral.too_many"
    tcb = c.documents_of("tdx-tcb-info")[0]
    docs = tuple(
        fake.signed_document("tdx-tcb-info", fake.tcb_info_json(tcb_evaluation_data_number=i))
        for i in range(65)
    )
    many_docs = Collateral(c.certificates, c.crls, (*docs, tcb))
    assert code_of(fake, q, many_docs) == "tdx.collateral.too_many"
    # A CRL of an issuer the chain does not have is ignored (and then missing).
    other = FakeIntel(seed=b"another hierarchy")
    foreign = Collateral(c.certificates, (c.crls[0], other.crl("pck")), c.documents)
    assert code_of(fake, q, foreign) == "tdx.crl.signature"  # same name, other key
