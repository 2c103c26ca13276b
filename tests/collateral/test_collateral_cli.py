"""``atls collateral fetch/show`` and ``atls trust fetch/list``, plus fetch-then-verify."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from atls.cli.collateral import collateral_group, parse_duration
from atls.cli.trust import trust_group
from atls.collateral import Collateral, load_collateral
from atls.collateral._sniff import split_certificates
from atls.collateral.fetch import (
    AmdRequest,
    CollateralFetcher,
    SnpTcb,
    collateral_for_evidence,
    read_collateral_dir,
    request_for_evidence,
    write_collateral_dir,
)
from atls.errors import ConfigurationError, UnsupportedEvidenceError, VerificationError
from atls.testing.fake_pcs import FakeVendorServer, add_amd_vectors, add_intel_vectors
from atls.trust import TrustStore

pytestmark = pytest.mark.vectors


@pytest.fixture
def server() -> Iterator[FakeVendorServer]:
    with FakeVendorServer() as s:
        yield s


def _run(group: object, args: list[str]) -> tuple[int, str, str]:
    result = CliRunner(env={"COLUMNS": "300"}).invoke(group, args)  # type: ignore[arg-type]
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_fetch_for_evidence_out_and_show(
    server: FakeVendorServer, vectors: Path, tmp_path: Path
) -> None:
    v = add_intel_vectors(server, vectors, "go-tdx-guest")
    quote = vectors / "tdx" / "go-tdx-guest" / "tdx_prod_quote_SPR_E4.dat"
    out = tmp_path / "out"
    at = "2023-07-01T01:00:00Z"
    common = ["--pcs-url", server.base_url, "--ca-bundle", str(server.ca_file), "--at", at]
    code, stdout, stderr = _run(
        collateral_group,
        [
            "fetch",
            "--for",
            str(quote),
            "--out",
            str(out),
            "--cache-dir",
            str(tmp_path / "c"),
            *common,
            "--json",
        ],
    )
    assert code == 0, stderr
    got = json.loads(stdout)
    assert got["ok"] is True
    kinds = sorted(i["name"] for i in got["items"] if i["type"] == "document")
    assert kinds == ["tdx-qe-identity", "tdx-tcb-info"]
    assert all(i["status"] == "valid" for i in got["items"])
    assert len(got["sources"]) == 4
    assert (out / "MANIFEST.json").is_file()
    # show reads back exactly what fetch wrote
    code, stdout, _ = _run(collateral_group, ["show", str(out), "--at", at, "--json"])
    assert code == 0
    assert json.loads(stdout)["items"] == got["items"]
    # after the TCB info's nextUpdate it is shown as expired
    code, stdout, _ = _run(collateral_group, ["show", str(out), "--at", "2023-08-01T00:00:00Z"])
    assert code == 0 and "EXPIRED" in stdout
    # the same evidence again: served from the cache, the server is not asked
    n = len(server.requests)
    code, stdout, _ = _run(
        collateral_group,
        ["fetch", "--for", str(quote), "--cache-dir", str(tmp_path / "c"), *common, "--json"],
    )
    assert code == 0 and len(server.requests) == n
    assert all(s.startswith("cache:") for s in json.loads(stdout)["sources"])
    assert v.fmspc == "50806f000000"


def test_directory_round_trip_keeps_documents_and_chains(
    server: FakeVendorServer, vectors: Path, tmp_path: Path
) -> None:
    v = add_intel_vectors(server, vectors, "dcap-qvl-tdx")
    at = v.valid_from + dt.timedelta(days=1)
    with CollateralFetcher(pcs_url=server.base_url, cache=False, verify=server.ca_file) as f:
        coll = f.fetch_intel(fmspc=v.fmspc, ca=v.ca, tee="tdx", at=at)
    write_collateral_dir(coll, tmp_path)
    back = read_collateral_dir(tmp_path)
    assert (back.certificates, back.crls, back.documents) == (
        coll.certificates,
        coll.crls,
        coll.documents,
    )
    assert back.sources == coll.sources
    # The generic loader reads the same files (documents without the header's chain link).
    generic = load_collateral([tmp_path])
    assert set(generic.crls) == set(coll.crls)
    assert {d.body for d in generic.documents} == {d.body for d in coll.documents}
    # Writing again replaces the previous set.
    write_collateral_dir(coll, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["MANIFEST.json", "certificates.pem", "crl-1-intel-sgx-pck-platform-ca.der",
         "crl-2-intel-sgx-root-ca.der", "tdx-qe-identity.issuer-chain.pem",
         "tdx-qe-identity.json", "tdx-tcb-info.issuer-chain.pem", "tdx-tcb-info.json"]
    )  # fmt: skip


def test_fetch_amd_by_explicit_arguments(
    server: FakeVendorServer, vectors: Path, tmp_path: Path
) -> None:
    at = dt.datetime(2026, 7, 1, tzinfo=dt.UTC)
    amd = add_amd_vectors(server, vectors, crl_time=at - dt.timedelta(days=1))
    turin = next(a for a in amd if a.source.endswith("turin_vcek.pem"))
    common = ["--kds-url", server.base_url, "--ca-bundle", str(server.ca_file), "--no-cache"]
    code, stdout, stderr = _run(
        collateral_group,
        ["fetch", "--product", "turin", "--chip-id", turin.hwid, "--tcb", "0101010400000051",
         "--at", at.isoformat(), "--out", str(tmp_path), *common, "--json"],
    )  # fmt: skip
    assert code == 0, stderr
    names = [i["name"] for i in json.loads(stdout)["items"] if i["type"] == "certificate"]
    assert names == ["SEV-VCEK", "SEV-Turin", "ARK-Turin"]
    assert read_collateral_dir(tmp_path).certificates[0] == turin.der
    code, stdout, stderr = _run(
        collateral_group,
        ["fetch", "--product", "Milan", "--vlek", "--at", at.isoformat(), *common],
    )
    assert code == 0, stderr
    assert "SEV-VLEK-Milan" in stdout


def test_fetch_exit_codes(server: FakeVendorServer, vectors: Path, tmp_path: Path) -> None:
    add_intel_vectors(server, vectors, "go-tdx-guest")
    common = ["--pcs-url", server.base_url, "--ca-bundle", str(server.ca_file), "--no-cache"]
    # unknown platform: unavailable (1)
    code, stdout, _ = _run(
        collateral_group,
        ["fetch", "--fmspc", "00112233aabb", "--ca", "platform", *common, "--json"],
    )
    assert code == 1 and json.loads(stdout)["error"]["code"] == "collateral.not_found"
    # expired collateral without an allowance: unavailable; with one: done, and loud
    args = ["fetch", "--fmspc", "50806f000000", "--ca", "platform", *common]
    code, _, stderr = _run(collateral_group, [*args, "--at", "2023-09-01T00:00:00Z"])
    assert code == 1 and "collateral.expired" in stderr
    code, stdout, stderr = _run(
        collateral_group, [*args, "--at", "2023-09-01T00:00:00Z", "--allow-stale-for", "60d"]
    )
    assert code == 0 and "STALE" in stderr and "source: stale:" in stdout
    # usage errors (2)
    for bad in (
        ["fetch", *common],
        ["fetch", "--fmspc", "50806f000000", *common],
        ["fetch", "--product", "Milan", *common],
        ["fetch", "--fmspc", "xyz", "--ca", "platform", *common],
        [
            "fetch",
            "--fmspc",
            "50806f000000",
            "--ca",
            "platform",
            "--allow-stale-for",
            "soon",
            *common,
        ],
        ["fetch", "--for", str(tmp_path / "missing"), *common],
    ):
        assert _run(collateral_group, bad)[0] == 2, bad
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x07" * 100)
    code, _, stderr = _run(collateral_group, ["fetch", "--for", str(junk), *common])
    assert code == 2 and "cannot tell what collateral" in stderr
    assert _run(collateral_group, ["show", str(tmp_path / "nothing")])[0] == 2


def test_parse_duration() -> None:
    assert parse_duration("90") == dt.timedelta(seconds=90)
    assert parse_duration("15m") == dt.timedelta(minutes=15)
    assert parse_duration("1.5h") == dt.timedelta(minutes=90)
    assert parse_duration("7d") == dt.timedelta(days=7)
    assert parse_duration("2w") == dt.timedelta(days=14)
    with pytest.raises(ConfigurationError):
        parse_duration("-1d")


def test_trust_fetch_and_list(server: FakeVendorServer, vectors: Path, tmp_path: Path) -> None:
    add_amd_vectors(server, vectors)
    server.set_intel_root_ca((vectors / "tdx" / "dcap-qvl" / "TrustedRootCA.der").read_bytes())
    args = [
        "fetch",
        "--trust-dir", str(tmp_path),
        "--kds-url", server.base_url,
        "--intel-root-url", f"{server.base_url}/Intel_SGX_Provisioning_Certification_RootCA.der",
        "--ca-bundle", str(server.ca_file),
    ]  # fmt: skip
    code, stdout, stderr = _run(trust_group, [*args, "--json"])
    assert code == 0, stderr
    results = json.loads(stdout)["results"]
    assert sum(r["anchor"] for r in results) == 4 and all(r["error"] is None for r in results)
    code, stdout, _ = _run(trust_group, ["list", "--trust-dir", str(tmp_path), "--json"])
    assert code == 0
    items = json.loads(stdout)["items"]
    anchors = {i["name"]: i for i in items if i["role"] == "anchor"}
    assert set(anchors) == {"intel-sgx-root", "amd-ark-milan", "amd-ark-genoa", "amd-ark-turin"}
    assert anchors["amd-ark-turin"]["origin"] == f"{server.base_url}/vcek/v1/Turin/cert_chain"
    code, stdout, _ = _run(trust_group, ["list", "--trust-dir", str(tmp_path)])
    assert code == 0 and "amd-ark-genoa" in stdout
    # a KDS outage for one product: exit 1, the rest still fetched
    server.stop()
    code, stdout, _ = _run(trust_group, [*args, "--no-intel", "--product", "Milan"])
    assert code == 1 and "FAILED" in stdout
    assert _run(trust_group, ["list", "--trust-dir", str(tmp_path / "none")])[0] == 2


# -- fetch, then verify with what was fetched ---------------------------------------------


@pytest.mark.parametrize(
    ("name", "quote", "at", "status", "advisories"),
    [
        ("dcap-qvl-tdx", "tdx/dcap-qvl/tdx_quote", 1752919234, "UpToDate", ()),
        (
            "zkdcap-tdx",
            "tdx/zkdcap/quote_tdx_00806f050000.dat",
            1737467060,
            "OutOfDate",
            ("INTEL-SA-00960", "INTEL-SA-00982", "INTEL-SA-00986"),
        ),
        (
            "dcap-qvl-sgx",
            "sgx/dcap-qvl/sgx_quote",
            1752919277,
            "ConfigurationAndSWHardeningNeeded",
            ("INTEL-SA-00289", "INTEL-SA-00615"),
        ),
    ],
)
def test_fetched_collateral_verifies_the_quote(
    server: FakeVendorServer,
    vectors: Path,
    name: str,
    quote: str,
    at: int,
    status: str,
    advisories: tuple[str, ...],
) -> None:
    """Upstream verdicts (PROVENANCE.md) reproduced with collateral fetched from the fake."""
    import atls.evidence.tdx as tdx

    add_intel_vectors(server, vectors, name)
    when = dt.datetime.fromtimestamp(at, dt.UTC)
    evidence = (vectors / quote).read_bytes()
    coll = collateral_for_evidence(
        evidence, pcs_url=server.base_url, cache=False, verify=server.ca_file, at=when
    )
    trust = TrustStore.from_certificates(
        [(vectors / "tdx" / "dcap-qvl" / "TrustedRootCA.der").read_bytes()]
    )
    fmt = tdx.SGX_QUOTE if name.endswith("sgx") else tdx.TDX_QUOTE
    verified = fmt.verify(evidence, trust=trust, collateral=coll, at=when)
    assert verified.tcb_status == status
    assert tuple(verified.advisory_ids) == advisories


def test_request_for_evidence(vectors: Path) -> None:
    req = request_for_evidence(
        (vectors / "sgx" / "zkdcap" / "quote_sgx_00906ed50000.dat").read_bytes()
    )
    assert (req.tee, req.fmspc, req.ca) == ("sgx", "00906ed50000", "processor")  # type: ignore[union-attr]
    with pytest.raises(UnsupportedEvidenceError):
        request_for_evidence(b"\x00" * 1184)


@pytest.mark.parametrize(
    ("report", "root"),
    [
        ("snp/ms-tee-attestation-verification/milan_attestation_report.bin", "amd-ark-milan"),
        ("snp/ms-tee-attestation-verification/genoa_attestation_report.bin", "amd-ark-genoa"),
        ("snp/ms-tee-attestation-verification/turin_attestation_report.bin", "amd-ark-turin"),
        ("snp/dstack/sev_snp_report.bin", "amd-ark-milan"),
    ],
)
def test_fetched_vcek_verifies_the_snp_report(
    server: FakeVendorServer, vectors: Path, report: str, root: str
) -> None:
    """The VCEK and ASK fetched for a real report verify it; the fake's stand-in CRL (not
    signed by AMD) is refused by the verifier, as it must be."""
    import atls.evidence.snp as snp

    at = dt.datetime(2026, 7, 1, tzinfo=dt.UTC)
    add_amd_vectors(server, vectors, crl_time=at - dt.timedelta(days=1))
    evidence = (vectors / report).read_bytes()
    coll = collateral_for_evidence(
        evidence, kds_url=server.base_url, cache=False, verify=server.ca_file, at=at
    )
    assert len(coll.certificates) == 3 and len(coll.crls) == 1
    arks = [
        split_certificates((vectors / "snp" / "go-sev-guest" / f).read_bytes())[1]
        for f in ("ask_ark_milan.pem", "ask_ark_genoa.pem", "ask_ark_turin_vcek.pem")
    ]
    trust = TrustStore.from_certificates(arks)
    verified = snp.SNP_REPORT.verify(
        evidence, trust=trust, collateral=Collateral(certificates=coll.certificates), at=at
    )
    assert verified.trust_root == root
    with pytest.raises(VerificationError) as ei:
        snp.SNP_REPORT.verify(evidence, trust=trust, collateral=coll, at=at)
    assert ei.value.code == "snp.crl.signature"


def test_snp_requests_for_evidence(vectors: Path) -> None:
    vlek = request_for_evidence((vectors / "snp" / "trustee" / "test-vlek-report.bin").read_bytes())
    assert isinstance(vlek, AmdRequest) and (vlek.product, vlek.key) == ("Milan", "vlek")
    turin = request_for_evidence(
        (
            vectors / "snp" / "ms-tee-attestation-verification" / "turin_attestation_report.bin"
        ).read_bytes()
    )
    assert isinstance(turin, AmdRequest)
    assert turin.tcb == SnpTcb(bootloader=1, tee=1, snp=4, microcode=81, fmc=1)
    # A version 2 report does not name its product: the caller must.
    with pytest.raises(UnsupportedEvidenceError) as ei:
        request_for_evidence((vectors / "snp" / "go-sev-guest" / "attestation.bin").read_bytes())
    assert ei.value.code == "collateral.snp_product_unknown"


def test_cli_fetch_for_snp_report(server: FakeVendorServer, vectors: Path, tmp_path: Path) -> None:
    at = dt.datetime(2026, 7, 1, tzinfo=dt.UTC)
    add_amd_vectors(server, vectors, crl_time=at - dt.timedelta(days=1))
    report = vectors / "snp" / "trustee" / "test-vlek-report.bin"
    code, stdout, stderr = _run(
        collateral_group,
        ["fetch", "--for", str(report), "--kds-url", server.base_url, "--ca-bundle",
         str(server.ca_file), "--no-cache", "--at", at.isoformat(), "--json"],
    )  # fmt: skip
    assert code == 0, stderr
    names = [i["name"] for i in json.loads(stdout)["items"] if i["type"] == "certificate"]
    assert names == ["SEV-VLEK-Milan", "ARK-Milan"]
