"""``atls.trust.fetch``: vendor roots downloaded and accepted only when pinned."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from atls.collateral._sniff import split_certificates
from atls.testing.fake_pcs import FakeResponse, FakeVendorServer, add_amd_vectors
from atls.trust import TrustStore
from atls.trust.fetch import fetch_trust_anchors, list_trust

pytestmark = pytest.mark.vectors


@pytest.fixture
def server(vectors: Path) -> Iterator[FakeVendorServer]:
    with FakeVendorServer() as s:
        add_amd_vectors(s, vectors)
        s.set_intel_root_ca((vectors / "sgx" / "dcap-qvl" / "TrustedRootCA.der").read_bytes())
        yield s


def _fetch(server: FakeVendorServer, trust_dir: Path, **kw: object) -> list:  # type: ignore[type-arg]
    return fetch_trust_anchors(
        trust_dir,
        kds_url=server.base_url,
        intel_root_url=f"{server.base_url}/Intel_SGX_Provisioning_Certification_RootCA.pem",
        verify=server.ca_file,
        **kw,  # type: ignore[arg-type]
    )


def _self_signed(cn: str) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


def test_fetch_all_roots_into_a_trust_directory(server: FakeVendorServer, tmp_path: Path) -> None:
    results = _fetch(server, tmp_path)
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    names = [r.name for r in results]
    assert names == [
        "intel-sgx-root",
        "amd-ark-milan", "amd-ask-milan", "amd-asvk-milan",
        "amd-ark-genoa", "amd-ask-genoa", "amd-asvk-genoa",
        "amd-ark-turin", "amd-ask-turin", "amd-asvk-turin",
    ]  # fmt: skip
    anchors = {r.name for r in results if r.anchor is not None}
    assert anchors == {"intel-sgx-root", "amd-ark-milan", "amd-ark-genoa", "amd-ark-turin"}
    # The directory loads exactly as verifiers load it: pinned roots, intermediates ignored.
    store = TrustStore.from_directory(tmp_path)
    assert sorted(a.name for a in store.anchors) == sorted(anchors)
    assert {a.vendor for a in store.anchors} == {"intel", "amd"}
    # Each file names where it came from.
    text = (tmp_path / "amd-ark-genoa.pem").read_text()
    assert f"# source: {server.base_url}/vcek/v1/Genoa/cert_chain" in text
    listing = list_trust(tmp_path)
    roles = {i.name: i.role for i in listing}
    assert roles["amd-ark-milan"] == "anchor" and roles["SEV-Milan"] == "intermediate"
    assert roles["SEV-VLEK-Turin"] == "intermediate"
    ask = next(i for i in listing if i.name == "SEV-Genoa")
    assert ask.vendor == "amd" and ask.origin == f"{server.base_url}/vcek/v1/Genoa/cert_chain"
    intel = next(i for i in listing if i.name == "intel-sgx-root")
    assert intel.sha256 == "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3"
    assert intel.origin is not None and intel.origin.endswith("RootCA.pem")
    # Nothing half-written is left behind.
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_unpinned_root_is_refused_and_not_written(server: FakeVendorServer, tmp_path: Path) -> None:
    rogue = _self_signed("Intel SGX Root CA")
    server.enqueue(
        "/Intel_SGX_Provisioning_Certification_RootCA.pem",
        FakeResponse(200, rogue, {"Content-Type": "application/pkix-cert"}),
    )
    results = _fetch(server, tmp_path, amd_products=())
    (r,) = results
    assert not r.ok and r.error is not None and r.error.code == "trust.unpinned"
    assert list(tmp_path.iterdir()) == []


def test_pinned_root_in_the_wrong_slot_is_refused(
    server: FakeVendorServer, tmp_path: Path, vectors: Path
) -> None:
    ark_milan = split_certificates(
        (vectors / "snp" / "go-sev-guest" / "ask_ark_milan.pem").read_bytes()
    )[1]
    server.enqueue(
        "/Intel_SGX_Provisioning_Certification_RootCA.pem",
        FakeResponse(200, ark_milan, {"Content-Type": "application/pkix-cert"}),
    )
    (r,) = _fetch(server, tmp_path, amd_products=())
    assert r.error is not None and r.error.code == "trust.wrong_root"
    assert list(tmp_path.iterdir()) == []


def test_ask_with_a_bad_signature_is_refused(
    server: FakeVendorServer, tmp_path: Path, vectors: Path
) -> None:
    ask, ark = split_certificates(
        (vectors / "snp" / "go-sev-guest" / "ask_ark_milan.pem").read_bytes()
    )
    bad_ask = ask[:-1] + bytes([ask[-1] ^ 1])  # last byte of the RSA-PSS signature
    pem = b"".join(
        x509.load_der_x509_certificate(d).public_bytes(serialization.Encoding.PEM)
        for d in (bad_ask, ark)
    )
    server.enqueue("/vcek/v1/Milan/cert_chain", FakeResponse(200, pem, {}))
    results = _fetch(server, tmp_path, intel=False, amd_products=["Milan"], include_vlek=False)
    (r,) = results
    assert r.error is not None and r.error.code == "trust.chain"
    assert list(tmp_path.iterdir()) == []


def test_a_failed_item_does_not_stop_the_others(server: FakeVendorServer, tmp_path: Path) -> None:
    server.enqueue("/vcek/v1/Genoa/cert_chain", FakeResponse(404, b"Not Found"))
    results = _fetch(server, tmp_path, intel=False)
    failed = [r for r in results if not r.ok]
    assert [(r.name, r.error.code) for r in failed if r.error] == [
        ("amd-ark-genoa", "collateral.not_found")
    ]
    store = TrustStore.from_directory(tmp_path)
    assert sorted(a.name for a in store.anchors) == ["amd-ark-milan", "amd-ark-turin"]


def test_planted_unpinned_root_makes_list_fail(server: FakeVendorServer, tmp_path: Path) -> None:
    _fetch(server, tmp_path, amd_products=["Turin"])
    (tmp_path / "extra.der").write_bytes(_self_signed("someone"))
    from atls.errors import ConfigurationError

    with pytest.raises(ConfigurationError) as ei:
        list_trust(tmp_path)
    assert ei.value.code == "trust.unpinned"
