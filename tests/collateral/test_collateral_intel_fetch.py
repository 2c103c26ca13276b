"""Intel PCS/PCCS fetcher against a loopback fake serving the vectors' real collateral."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st

from atls.collateral import Collateral, Document
from atls.collateral._sniff import split_certificates
from atls.collateral.fetch import AsyncCollateralFetcher, CollateralFetcher, fetch_intel
from atls.collateral.fetch._pcs_json import PcsJsonError, document_from_pcs_body
from atls.errors import CollateralUnavailableError, ConfigurationError
from atls.testing.fake_pcs import (
    INTEL_VECTOR_SETS,
    FakeResponse,
    FakeVendorServer,
    IntelVector,
    add_intel_vectors,
)

pytestmark = pytest.mark.vectors

TCB = "/tdx/certification/v4/tcb"
QE = "/tdx/certification/v4/qe/identity"
PCKCRL = "/sgx/certification/v4/pckcrl"
ROOTCRL = "/sgx/certification/v4/rootcacrl"


@pytest.fixture
def server() -> Iterator[FakeVendorServer]:
    with FakeVendorServer() as s:
        yield s


def _fetcher(server: FakeVendorServer, **kw: object) -> CollateralFetcher:
    return CollateralFetcher(
        pcs_url=server.base_url,
        kds_url=server.base_url,
        cache=False,
        verify=server.ca_file,
        **kw,  # type: ignore[arg-type]
    )


def _mid(v: IntelVector) -> dt.datetime:
    return v.valid_from + (v.valid_until - v.valid_from) / 2


def _verify_p256(doc: Document) -> None:
    """The extracted body is exactly what Intel signed: the signature verifies with the
    leaf of the issuer chain (ECDSA P-256, SHA-256, raw r||s)."""
    leaf = x509.load_der_x509_certificate(doc.issuer_chain[0])
    r = int.from_bytes(doc.signature[:32], "big")
    s = int.from_bytes(doc.signature[32:], "big")
    pub = leaf.public_key()
    assert isinstance(pub, ec.EllipticCurvePublicKey)
    pub.verify(encode_dss_signature(r, s), doc.body, ec.ECDSA(hashes.SHA256()))


@pytest.mark.parametrize("name", INTEL_VECTOR_SETS)
def test_fetch_intel_returns_the_real_signed_collateral(
    server: FakeVendorServer, vectors: Path, name: str
) -> None:
    v = add_intel_vectors(server, vectors, name)
    with _fetcher(server) as f:
        coll = f.fetch_intel(fmspc=v.fmspc, ca=v.ca, tee=v.tee, pce_id=v.pce_id, at=_mid(v))
    kinds = sorted(d.kind for d in coll.documents)
    assert kinds == sorted([f"{v.tee}-tcb-info", f"{v.tee}-qe-identity"])
    tcb = coll.documents_of(f"{v.tee}-tcb-info")[0]
    qe = coll.documents_of(f"{v.tee}-qe-identity")[0]
    # The body is the exact signed value, cut from the response without re-serializing.
    assert json.loads(tcb.body) == json.loads(v.tcb_info_body)["tcbInfo"]
    assert tcb.body in v.tcb_info_body and qe.body in v.qe_identity_body
    assert tcb.signature == bytes.fromhex(json.loads(v.tcb_info_body)["signature"])
    _verify_p256(tcb)
    _verify_p256(qe)
    # Two CRLs (PCK CA, root CA) and the issuer chains' certificates.
    assert len(coll.crls) == 2
    issuers = {x509.load_der_x509_crl(c).issuer.rfc4514_string() for c in coll.crls}
    assert any("Intel SGX Root CA" in i for i in issuers)
    assert any(f"PCK {v.ca.capitalize()} CA" in i for i in issuers)
    subjects = {
        x509.load_der_x509_certificate(c).subject.rfc4514_string() for c in coll.certificates
    }
    assert any("Intel SGX TCB Signing" in s for s in subjects)
    assert any("Intel SGX Root CA" in s for s in subjects)
    # Four requests, each named in sources.
    assert len(coll.sources) == 4
    assert all(s.startswith(server.base_url) for s in coll.sources)
    assert server.count(f"/{v.tee}/certification/v4/tcb") == 1


def test_exact_bytes_for_the_pcs_response_form(server: FakeVendorServer, vectors: Path) -> None:
    """go-tdx-guest's files are raw PCS response bodies: the document is their substring."""
    v = add_intel_vectors(server, vectors, "go-tdx-guest")
    with _fetcher(server) as f:
        coll = f.fetch_intel_tcb_info(fmspc=v.fmspc, tee="tdx", at=_mid(v))
    (doc,) = coll.documents
    raw = (vectors / "tdx" / "go-tdx-guest" / "sample_tcbInfo_response").read_bytes()
    start = raw.index(b'{"id"')
    assert doc.body == raw[start : start + len(doc.body)]
    assert raw[start + len(doc.body) : start + len(doc.body) + 13] == b',"signature":'
    chain = split_certificates(
        (vectors / "tdx" / "go-tdx-guest" / "tcb_info_issuer_chain.pem").read_bytes()
    )
    assert doc.issuer_chain == tuple(chain)


def test_root_ca_crl_from_pccs_hex_and_from_intel_cdp(
    server: FakeVendorServer, vectors: Path
) -> None:
    v = add_intel_vectors(server, vectors, "zkdcap-tdx")
    with _fetcher(server) as f:
        pccs = f.fetch_intel_root_ca_crl(at=_mid(v))
    cdp_url = f"{server.base_url}/IntelSGXRootCA.der"
    with _fetcher(server, root_ca_crl_url=cdp_url) as f:
        cdp = f.fetch_intel_root_ca_crl(at=_mid(v))
    expected = (vectors / "tdx" / "zkdcap" / "intel_root_ca_crl.der").read_bytes()
    assert pccs.crls == cdp.crls == (expected,)
    assert server.count(ROOTCRL) == 1 and server.count("/IntelSGXRootCA.der") == 1


def test_pck_crl_served_as_pem_is_accepted(server: FakeVendorServer, vectors: Path) -> None:
    v = add_intel_vectors(server, vectors, "go-tdx-guest")
    der = (vectors / "tdx" / "go-tdx-guest" / "pckcrl").read_bytes()
    pem = x509.load_der_x509_crl(der).public_bytes(serialization.Encoding.PEM)
    chain = (vectors / "tdx" / "go-tdx-guest" / "pck_crl_issuer_chain.pem").read_bytes()
    server.enqueue(
        PCKCRL,
        FakeResponse(
            200,
            pem,
            {
                "Content-Type": "application/x-pem-file",
                "SGX-PCK-CRL-Issuer-Chain": urllib.parse.quote(chain.decode(), safe=""),
            },
        ),
    )
    with _fetcher(server) as f:
        coll = f.fetch_intel_pck_crl(ca="platform", at=_mid(v))
    assert coll.crls == (der,)


def test_sgx_tcb_info_v3_header_name_is_accepted(server: FakeVendorServer, vectors: Path) -> None:
    """A v3 PCS/PCCS names the chain header SGX-TCB-Info-Issuer-Chain."""
    v = add_intel_vectors(server, vectors, "dcap-qvl-sgx")
    chain = json.loads((vectors / "sgx" / "dcap-qvl" / "sgx_quote_collateral.json").read_bytes())[
        "tcb_info_issuer_chain"
    ]
    server.enqueue(
        "/sgx/certification/v4/tcb",
        FakeResponse(
            200,
            v.tcb_info_body,
            {
                "Content-Type": "application/json",
                "SGX-TCB-Info-Issuer-Chain": urllib.parse.quote(chain, safe=""),
            },
        ),
    )
    with _fetcher(server) as f:
        coll = f.fetch_intel_tcb_info(fmspc=v.fmspc, tee="sgx", at=_mid(v))
    assert coll.documents[0].kind == "sgx-tcb-info"
    _verify_p256(coll.documents[0])


def test_unknown_fmspc_is_404_not_found(server: FakeVendorServer, vectors: Path) -> None:
    v = add_intel_vectors(server, vectors, "go-tdx-guest")
    with _fetcher(server) as f, pytest.raises(CollateralUnavailableError) as ei:
        f.fetch_intel(fmspc="00112233aabb", ca="platform", tee="tdx", at=_mid(v))
    assert ei.value.code == "collateral.not_found"
    assert server.count(TCB) == 1


def test_bad_arguments_are_configuration_errors_before_any_request(
    server: FakeVendorServer,
) -> None:
    with _fetcher(server) as f:
        for kw in (
            {"fmspc": "50806f00000", "ca": "platform"},
            {"fmspc": "50806f00000z", "ca": "platform"},
            {"fmspc": "50806f000000", "ca": "other"},
            {"fmspc": "50806f000000", "ca": "platform", "tee": "sev"},
            {"fmspc": "50806f000000", "ca": "platform", "pce_id": "00"},
            {"fmspc": "50806f000000", "ca": "platform", "update": "late"},
        ):
            with pytest.raises(ConfigurationError):
                f.fetch_intel(**kw)  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError):
            f.fetch_intel(fmspc="50806f000000", ca="platform", at=dt.datetime(2024, 1, 1))
    assert server.requests == []
    with pytest.raises(ConfigurationError):
        CollateralFetcher(pcs_url="ftp://example", cache=False)


def test_issuer_cn_is_accepted_as_ca_and_bytes_as_fmspc(
    server: FakeVendorServer, vectors: Path
) -> None:
    v = add_intel_vectors(server, vectors, "dcap-qvl-sgx")
    with _fetcher(server) as f:
        coll = f.fetch_intel(
            fmspc=bytes.fromhex(v.fmspc),
            ca="Intel SGX PCK Processor CA",
            tee="sgx",
            pce_id=b"\x00\x00",
            at=_mid(v),
        )
    assert len(coll.documents) == 2


@pytest.mark.parametrize(
    ("path", "response", "code"),
    [
        (
            TCB,
            FakeResponse(200, b"<html>proxy login</html>", {"Content-Type": "text/html"}),
            "collateral.content_type",
        ),
        (QE, FakeResponse(200, b"{}", {}), "collateral.content_type"),
        (
            PCKCRL,
            FakeResponse(200, b"{}", {"Content-Type": "application/json"}),
            "collateral.content_type",
        ),
        (TCB, FakeResponse(500, b"oops"), "collateral.server_error"),
        (TCB, FakeResponse(400, b"", {"Error-Code": "InvalidParameter"}), "collateral.bad_request"),
        (TCB, FakeResponse(403, b""), "collateral.forbidden"),
        (TCB, FakeResponse(302, b"", {"Location": "/nowhere"}), "collateral.not_found"),
    ],
)
def test_wrong_answers_are_refused(
    server: FakeVendorServer, vectors: Path, path: str, response: FakeResponse, code: str
) -> None:
    v = add_intel_vectors(server, vectors, "go-tdx-guest")
    server.enqueue(path, response)
    with _fetcher(server) as f, pytest.raises(CollateralUnavailableError) as ei:
        f.fetch_intel(fmspc=v.fmspc, ca=v.ca, tee="tdx", at=_mid(v))
    assert ei.value.code == code


def test_truncated_body_is_a_network_error(server: FakeVendorServer, vectors: Path) -> None:
    """The server announces the full Content-Length, sends half and closes."""
    v = add_intel_vectors(server, vectors, "go-tdx-guest")
    body = v.tcb_info_body
    chain = (vectors / "tdx" / "go-tdx-guest" / "tcb_info_issuer_chain.pem").read_text()
    headers = {
        "Content-Type": "application/json",
        "TCB-Info-Issuer-Chain": urllib.parse.quote(chain, safe=""),
    }
    server.enqueue(TCB, FakeResponse(200, body, headers, truncate_to=len(body) // 2))
    with _fetcher(server) as f, pytest.raises(CollateralUnavailableError) as ei:
        f.fetch_intel_tcb_info(fmspc=v.fmspc, at=_mid(v))
    assert ei.value.code == "collateral.network"
    # A short but self-consistent body (Content-Length matches) is malformed JSON.
    server.enqueue(TCB, FakeResponse(200, body[: len(body) // 2], headers))
    with _fetcher(server) as f, pytest.raises(CollateralUnavailableError) as ei:
        f.fetch_intel_tcb_info(fmspc=v.fmspc, at=_mid(v))
    assert ei.value.code == "collateral.malformed"


def test_truncated_crl_is_malformed(server: FakeVendorServer, vectors: Path) -> None:
    v = add_intel_vectors(server, vectors, "go-tdx-guest")
    der = (vectors / "tdx" / "go-tdx-guest" / "rootcrl.der").read_bytes()
    server.enqueue(ROOTCRL, FakeResponse(200, der[:-10], {"Content-Type": "application/pkix-crl"}))
    with _fetcher(server) as f, pytest.raises(CollateralUnavailableError) as ei:
        f.fetch_intel_root_ca_crl(at=_mid(v))
    assert ei.value.code == "collateral.malformed"


def test_missing_issuer_chain_header_is_malformed(server: FakeVendorServer, vectors: Path) -> None:
    v = add_intel_vectors(server, vectors, "go-tdx-guest")
    server.enqueue(QE, FakeResponse(200, v.qe_identity_body, {"Content-Type": "application/json"}))
    with _fetcher(server) as f, pytest.raises(CollateralUnavailableError) as ei:
        f.fetch_intel_qe_identity(tee="tdx", at=_mid(v))
    assert ei.value.code == "collateral.malformed"
    assert "SGX-Enclave-Identity-Issuer-Chain" in ei.value.message


def test_answer_for_another_platform_is_a_mismatch(server: FakeVendorServer, vectors: Path) -> None:
    v = add_intel_vectors(server, vectors, "go-tdx-guest")
    chain = (vectors / "tdx" / "go-tdx-guest" / "tcb_info_issuer_chain.pem").read_bytes()
    # The server files FMSPC 50806f000000's TCB info under another FMSPC.
    server.add_intel_tcb_info(
        tee="tdx", fmspc="aabbccddeeff", body=v.tcb_info_body, issuer_chain_pem=chain
    )
    with _fetcher(server) as f:
        with pytest.raises(CollateralUnavailableError) as ei:
            f.fetch_intel_tcb_info(fmspc="aabbccddeeff", at=_mid(v))
        assert ei.value.code == "collateral.mismatch"
        # ... and an SGX TCB info is not a TDX one; a TDX QE identity is not SGX's.
        server.add_intel_tcb_info(
            tee="sgx", fmspc=v.fmspc, body=v.tcb_info_body, issuer_chain_pem=chain
        )
        with pytest.raises(CollateralUnavailableError) as ei:
            f.fetch_intel_tcb_info(fmspc=v.fmspc, tee="sgx", at=_mid(v))
        assert ei.value.code == "collateral.mismatch"
        with pytest.raises(CollateralUnavailableError) as ei:
            f.fetch_intel_tcb_info(fmspc=v.fmspc, pce_id="0001", at=_mid(v))
        assert ei.value.code == "collateral.mismatch"
    # A PCK CRL for the wrong CA
    server.enqueue(
        PCKCRL,
        FakeResponse(
            200,
            (vectors / "sgx" / "zkdcap" / "pck_processor_crl.der").read_bytes(),
            {
                "Content-Type": "application/pkix-crl",
                "SGX-PCK-CRL-Issuer-Chain": urllib.parse.quote(
                    (vectors / "tdx" / "go-tdx-guest" / "pck_crl_issuer_chain.pem").read_text(),
                    safe="",
                ),
            },
        ),
    )
    with _fetcher(server) as f, pytest.raises(CollateralUnavailableError) as ei:
        f.fetch_intel_pck_crl(ca="platform", at=_mid(v))
    assert ei.value.code == "collateral.mismatch"


def test_tls_is_verified(server: FakeVendorServer, vectors: Path) -> None:
    """Without the fake's CA the connection fails: collateral never comes over unverified TLS."""
    v = add_intel_vectors(server, vectors, "go-tdx-guest")
    with (
        CollateralFetcher(pcs_url=server.base_url, cache=False) as f,
        pytest.raises(CollateralUnavailableError) as ei,
    ):
        f.fetch_intel_tcb_info(fmspc=v.fmspc, at=_mid(v))
    assert ei.value.code == "collateral.network"
    import ssl

    loose = ssl.create_default_context()
    loose.check_hostname = False
    loose.verify_mode = ssl.CERT_NONE
    with pytest.raises(ConfigurationError):
        CollateralFetcher(pcs_url=server.base_url, cache=False, verify=loose)
    with pytest.raises(ConfigurationError):
        CollateralFetcher(pcs_url=server.base_url, cache=False, verify="/nonexistent/ca.pem")


def test_module_function_and_ssl_context(server: FakeVendorServer, vectors: Path) -> None:
    v = add_intel_vectors(server, vectors, "dcap-qvl-near")
    coll = fetch_intel(
        fmspc=v.fmspc,
        ca=v.ca,
        tee="tdx",
        pcs_url=server.base_url + "/tdx/certification/v4/",
        cache=False,
        verify=server.client_ssl_context(),
        at=_mid(v),
    )
    assert len(coll.documents) == 2 and len(coll.crls) == 2


async def test_async_fetch_under_trio_matches_sync(server: FakeVendorServer, vectors: Path) -> None:
    v = add_intel_vectors(server, vectors, "dcap-qvl-tdx")
    with _fetcher(server) as f:
        sync = f.fetch_intel(fmspc=v.fmspc, ca=v.ca, tee="tdx", at=_mid(v))
    async with AsyncCollateralFetcher(
        pcs_url=server.base_url, cache=False, verify=server.ca_file
    ) as af:
        got = await af.fetch_intel(fmspc=v.fmspc, ca=v.ca, tee="tdx", at=_mid(v))
    assert got == sync
    assert isinstance(got, Collateral)


# -- the PCS JSON extraction (atls.collateral.intel, wrapped with a kind check) ------------


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"[]",
        b'{"tcbInfo":{}}',
        b'{"signature":"' + b"00" * 64 + b'"}',
        b'{"tcbInfo":[],"signature":"' + b"00" * 64 + b'"}',
        b'{"tcbInfo":{},"signature":"00"}',
        b'{"tcbInfo":{},"signature":"zz"}',
        b'{"tcbInfo":{},"signature":5}',
        b'{"tcbInfo":{},"tcbInfo":{},"signature":"' + b"00" * 64 + b'"}',
        b'{"tcbInfo":{},"signature":"' + b"00" * 64 + b'"} trailing',
        b'{"tcbInfo":{"id":"SGX"},"signature":"' + b"00" * 64 + b'"}',
        b'{"enclaveIdentity":{"id":"TD_QE"},"signature":"' + b"00" * 64 + b'"}',
        b'{"tcbInfo":{"a":NaN},"signature":"' + b"00" * 64 + b'"}',
        b'{"tcbInfo":{} "signature":"' + b"00" * 64 + b'"}',
        b"\xff\xfe",
        b"{" * 100000,
        b'{"tcbInfo":' + b"[" * 100000,
    ],
)
def test_bad_pcs_bodies_are_rejected(body: bytes) -> None:
    with pytest.raises(PcsJsonError):
        document_from_pcs_body(body, kind="tdx-tcb-info", field="tcbInfo")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_only_raise_pcs_json_error(data: bytes) -> None:
    with contextlib.suppress(PcsJsonError):
        document_from_pcs_body(data, kind="tdx-tcb-info", field="tcbInfo")


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.text(max_size=8),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=8),
            lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
            max_leaves=8,
        ),
        max_size=4,
    ),
    st.sampled_from(["", " ", "\n  "]),
)
def test_extracted_body_is_the_exact_source_value(inner: dict[str, object], ws: str) -> None:
    signed = json.dumps({**inner, "id": "TDX"}, separators=(",", ":"), ensure_ascii=False)
    body = f'{{{ws}"tcbInfo"{ws}:{ws}{signed}{ws},"signature":"{"ab" * 64}"{ws}}}'.encode()
    doc = document_from_pcs_body(body, kind="tdx-tcb-info", field="tcbInfo")
    assert doc.body == signed.encode()
    assert doc.signature == b"\xab" * 64
