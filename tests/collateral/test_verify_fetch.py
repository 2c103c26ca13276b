"""``atls verify --fetch`` and the issue's "done when" scenario: a client with an empty cache
verifies real evidence through the fake PCS/KDS on loopback, then again with that server
stopped, from the cache alone. No test here touches the internet."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from atls.cli._verify import verify_cmd
from atls.collateral import Collateral
from atls.collateral._sniff import split_certificates
from atls.collateral.cache import CollateralCache
from atls.collateral.fetch import CollateralFetcher, read_collateral_dir, request_for_evidence
from atls.collateral.fetch._evidence import AmdRequest
from atls.pipeline import judge
from atls.policy import Policy
from atls.testing.fake_pcs import FakeVendorServer, add_amd_vectors, add_intel_vectors
from atls.trust import TrustStore

pytestmark = pytest.mark.vectors

TDX_QUOTE = "tdx/dcap-qvl/tdx_quote"
TDX_AT = dt.datetime.fromtimestamp(1752919234, dt.UTC)  # PROVENANCE.md: UpToDate
SNP_REPORT = "snp/ms-tee-attestation-verification/milan_attestation_report.bin"
SNP_AT = dt.datetime(2026, 7, 1, tzinfo=dt.UTC)


@pytest.fixture
def server(vectors: Path) -> Iterator[FakeVendorServer]:
    with FakeVendorServer() as s:
        add_intel_vectors(s, vectors, "dcap-qvl-tdx")
        add_amd_vectors(s, vectors, crl_time=SNP_AT - dt.timedelta(days=1))
        yield s


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No user trust directory or cache leaks in; no fetch URL from the environment."""
    monkeypatch.setenv("ATLS_TRUST_DIR", str(tmp_path / "no-trust-dir"))
    monkeypatch.setenv("ATLS_CACHE_DIR", str(tmp_path / "default-cache"))
    for var in ("ATLS_PCS_URL", "ATLS_KDS_URL", "ATLS_FETCH_CA_BUNDLE"):
        monkeypatch.delenv(var, raising=False)


def _verify(args: list[str], env: dict[str, str] | None = None) -> tuple[int, dict, str]:  # type: ignore[type-arg]
    result = CliRunner(env={"COLUMNS": "300", **(env or {})}).invoke(verify_cmd, args)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    out = json.loads(result.stdout) if result.stdout.strip().startswith("{") else {}
    return result.exit_code, out, result.stderr


def _fetch_args(server: FakeVendorServer, cache: Path, at: dt.datetime) -> list[str]:
    return [
        "--fetch",
        "--pcs-url",
        server.base_url,
        "--kds-url",
        server.base_url,
        "--ca-bundle",
        str(server.ca_file),
        "--cache-dir",
        str(cache),
        "--at",
        at.isoformat(),
        "--json",
    ]


def test_done_when_tdx_quote_empty_cache_then_offline(
    server: FakeVendorServer, vectors: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    quote = str(vectors / TDX_QUOTE)
    # without --fetch the bare quote cannot be verified (no TCB info, QE identity, CRLs)
    code, out, _ = _verify([quote, "--at", TDX_AT.isoformat(), "--json"])
    assert code == 1 and out["authentic"] is False
    assert server.requests == []

    code, out, err = _verify([quote, *_fetch_args(server, cache, TDX_AT)])
    assert code == 0, (out, err)
    assert out["verdict"] == "accepted" and out["tcb_status"] == "UpToDate"
    assert out["trust_root"] == "intel-sgx-root"
    fetched = out["collateral_fetched"]
    assert len(fetched) == 4 and all(u.startswith(server.base_url) for u in fetched)
    assert sorted(r.path for r in server.requests) == sorted(
        [
            "/tdx/certification/v4/tcb",
            "/tdx/certification/v4/qe/identity",
            "/sgx/certification/v4/pckcrl",
            "/sgx/certification/v4/rootcacrl",
        ]
    )
    assert len(list(CollateralCache(cache))) == 4

    server.stop()
    n = len(server.requests)
    code, out, err = _verify([quote, *_fetch_args(server, cache, TDX_AT)])
    assert code == 0, (out, err)
    assert out["tcb_status"] == "UpToDate"
    assert all(s.startswith("cache:") for s in out["collateral_fetched"])
    assert len(server.requests) == n
    # and with neither the server nor a cache the fetch fails, typed, exit 1
    code, out, _ = _verify([quote, *_fetch_args(server, tmp_path / "empty", TDX_AT)])
    assert code == 1 and out["verdict"] == "rejected"
    assert "collateral.network" in [e["code"] for e in out["errors"]]


def test_done_when_snp_report_empty_cache_then_offline(
    server: FakeVendorServer, vectors: Path, tmp_path: Path
) -> None:
    """The VCEK (by CHIP_ID and REPORTED_TCB) and the ASK/ARK chain come from the fake KDS,
    then from the cache. The vectors hold no AMD-signed CRL (the fake's is a stand-in), so
    this client asks KDS for the VCEK and the chain only, and the CRL shows as unchecked;
    the CLI test below shows that the stand-in CRL is fetched and refused."""
    report = (vectors / SNP_REPORT).read_bytes()
    req = request_for_evidence(report)
    assert isinstance(req, AmdRequest) and req.product == "Milan"
    cache = CollateralCache(tmp_path / "cache")

    def fetch() -> Collateral:
        with CollateralFetcher(kds_url=server.base_url, cache=cache, verify=server.ca_file) as f:
            vcek = f.fetch_amd_vcek(
                product=req.product, chip_id=req.chip_id, tcb=req.tcb, at=SNP_AT
            )
            chain = f.fetch_amd_cert_chain(product=req.product, key="vcek", at=SNP_AT)
        return vcek.merged(chain)

    def verify(coll: Collateral) -> None:
        # trust: only AMD roots pinned in code that appear among the fetched certificates
        trust = TrustStore.pinned_among(coll.certificates, source="fetched")
        verdict = judge(report, trust=trust, collateral=coll, at=SNP_AT, policy=Policy.default())
        assert verdict.accepted is not None, verdict.errors
        assert verdict.platform == "snp"
        assert verdict.verified is not None and verdict.verified.trust_root == "amd-ark-milan"
        assert "crl" in verdict.verified.unchecked

    assert list(cache) == []
    online = fetch()
    verify(online)
    assert len(server.requests) == 2 and len(list(cache)) == 2
    server.stop()
    offline = fetch()
    assert offline.certificates == online.certificates
    assert all(s.startswith("cache:") for s in offline.sources)
    assert len(server.requests) == 2
    verify(offline)


def test_verify_fetch_snp_checks_the_fetched_crl(
    server: FakeVendorServer, vectors: Path, tmp_path: Path
) -> None:
    """Through the CLI the whole KDS set is fetched (VCEK, chain, CRL): the stand-in CRL,
    not signed by AMD, is refused online and offline alike (fail closed)."""
    cache = tmp_path / "cache"
    report = str(vectors / SNP_REPORT)
    for _ in ("online", "offline"):
        code, out, err = _verify([report, *_fetch_args(server, cache, SNP_AT)])
        assert code == 1, err
        assert [e["code"] for e in out["errors"]] == ["snp.crl.signature"]
        assert len(out["collateral_fetched"]) == 3
        server.stop()
    assert all(s.startswith("cache:") for s in out["collateral_fetched"])


def test_fetch_only_when_needed_and_env_configuration(
    server: FakeVendorServer, vectors: Path, tmp_path: Path
) -> None:
    quote = str(vectors / TDX_QUOTE)
    # complete collateral given: --fetch makes no request at all
    with CollateralFetcher(pcs_url=server.base_url, cache=False, verify=server.ca_file) as f:
        coll = f.collateral_for_evidence((vectors / TDX_QUOTE).read_bytes(), at=TDX_AT)
    from atls.collateral.fetch import write_collateral_dir

    write_collateral_dir(coll, tmp_path / "given")
    assert read_collateral_dir(tmp_path / "given").documents == coll.documents
    n = len(server.requests)
    code, out, err = _verify(
        [
            quote,
            "--collateral",
            str(tmp_path / "given"),
            *_fetch_args(server, tmp_path / "c", TDX_AT),
        ]
    )
    assert code == 0, err
    assert out["collateral_fetched"] == [] and len(server.requests) == n

    # base URL and CA bundle from the environment
    env = {
        "ATLS_PCS_URL": server.base_url,
        "ATLS_FETCH_CA_BUNDLE": str(server.ca_file),
        "ATLS_CACHE_DIR": str(tmp_path / "env-cache"),
    }
    code, out, err = _verify([quote, "--fetch", "--at", TDX_AT.isoformat(), "--json"], env)
    assert code == 0, err
    assert len(out["collateral_fetched"]) == 4
    assert len(list(CollateralCache(tmp_path / "env-cache"))) == 4


def test_verify_fetch_usage_errors(vectors: Path, tmp_path: Path) -> None:
    quote = str(vectors / TDX_QUOTE)
    code, _, err = _verify([quote, "--pcs-url", "https://127.0.0.1:1"])
    assert code == 2 and "--fetch" in err
    code, _, err = _verify([quote, "--fetch", "--allow-stale-for", "soon"])
    assert code == 2 and "duration" in err
    code, _, err = _verify([quote, "--fetch", "--pcs-url", "ftp://x", "--at", TDX_AT.isoformat()])
    assert code == 2 and "not an http(s) URL" in err
    # evidence that does not say what it needs: a typed error, rejected, no request
    plain = tmp_path / "junk.bin"
    plain.write_bytes(bytes(1184))
    code, out, _ = _verify([str(plain), "--fetch", "--pcs-url", "https://127.0.0.1:1", "--json"])
    assert code == 1
    assert [e["code"] for e in out["errors"]] == [
        "evidence.unknown",
        "collateral.unknown_evidence",
    ]


def test_pinned_roots_come_from_the_fetched_chain(vectors: Path) -> None:
    """The ARK that makes the SNP verdict is one pinned in code, found in the KDS chain."""
    arks = split_certificates((vectors / "snp" / "go-sev-guest" / "ask_ark_milan.pem").read_bytes())
    assert TrustStore.pinned_among(arks, source="t").anchors
