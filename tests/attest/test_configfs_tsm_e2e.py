"""End to end: evidence produced through the configfs-tsm attester (against the in-memory
kernel, with reports signed by the simulated vendor hierarchies) verifies with the real
verifiers, using the collateral the attester hands out."""

from __future__ import annotations

import pytest

from atls.attest.configfs_tsm import ConfigfsTsmAttester
from atls.errors import VerificationError
from atls.testing.fake_tsm import FakeTsm

RD = bytes(range(64, 128))


def test_tdx_quote_through_configfs_verifies() -> None:
    import atls.testing.tdx as tdx_testing
    from atls.evidence.tdx import TDX_QUOTE

    intel = tdx_testing.FakeIntel()
    fake = FakeTsm.tdx(intel)
    att = ConfigfsTsmAttester(ops=fake, expected_provider="tdx_guest")
    quote = att.attest(RD)
    assert att.format_name == TDX_QUOTE.name
    assert att.collateral().certificates == ()
    verified = TDX_QUOTE.verify(
        quote, trust=intel.trust_store(), collateral=intel.collateral(), at=tdx_testing.DEFAULT_AT
    )
    assert verified.report_data == RD
    assert verified.simulated is True
    assert fake.live == []
    # The quote is over exactly what the attester wrote: another REPORT_DATA's quote differs.
    assert att.attest(bytes(64)) != quote


@pytest.mark.parametrize("body", ["1.0", "1.5"])
def test_tdx_quote_v5_through_configfs_verifies(body: str) -> None:
    import atls.testing.tdx as tdx_testing
    from atls.evidence.tdx import TDX_QUOTE

    intel = tdx_testing.FakeIntel()
    fake = FakeTsm(provider="tdx_guest", generator=lambda rd: intel.quote(rd, version=5, body=body))
    quote = ConfigfsTsmAttester(ops=fake).attest(RD)  # the REPORT_DATA echo check passed
    verified = TDX_QUOTE.verify(
        quote, trust=intel.trust_store(), collateral=intel.collateral(), at=tdx_testing.DEFAULT_AT
    )
    assert verified.report_data == RD


@pytest.mark.parametrize(("signing_key", "privlevel"), [("vcek", None), ("vcek", 2), ("vlek", 1)])
def test_snp_report_through_configfs_verifies_with_auxblob_collateral(
    signing_key: str, privlevel: int | None
) -> None:
    import atls.testing.snp as snp_testing
    from atls.attest.configfs_tsm import GUID_ARK, GUID_ASK, GUID_CRL, GUID_VCEK, GUID_VLEK
    from atls.evidence.snp import SNP_REPORT

    amd = snp_testing.FakeAmd(signing_key=signing_key)
    fake = FakeTsm.snp(amd)
    att = ConfigfsTsmAttester(ops=fake, expected_provider="sev_guest", privlevel=privlevel)
    report = att.attest(RD)
    assert att.format_name == SNP_REPORT.name
    collateral = att.collateral()  # parsed from the auxblob certificate table
    leaf = GUID_VLEK if signing_key == "vlek" else GUID_VCEK
    assert att.cert_table is not None
    assert [e.guid for e in att.cert_table.entries] == [leaf, GUID_ASK, GUID_ARK, GUID_CRL]
    hierarchy = amd.collateral()
    assert collateral.certificates == hierarchy.certificates  # leaf, ASK/ASVK, ARK
    assert collateral.crls == hierarchy.crls[:1]
    at = snp_testing.DEFAULT_AT
    verified = SNP_REPORT.verify(report, trust=amd.trust_store(), collateral=collateral, at=at)
    assert verified.report_data == RD
    assert verified.simulated is True
    assert verified.claims["vmpl"] == (privlevel or 0)  # the VMPL written to privlevel
    assert verified.claims["signing_key"].lower() == signing_key
    assert fake.live == []
    # A flipped bit in the signed report is rejected by the verifier.
    bad = bytearray(report)
    bad[0x50] ^= 1
    with pytest.raises(VerificationError):
        SNP_REPORT.verify(bytes(bad), trust=amd.trust_store(), collateral=collateral, at=at)
