"""Intel collateral files (atls.collateral.intel): PCS JSON bodies, dcap-qvl JSON bundles, hex
CRLs; exact signed bytes are kept; malformed files give typed errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import atls.collateral.intel as intel
from atls.collateral import Collateral, collateral_from_bytes, load_collateral
from atls.collateral._bundle import DOCUMENT_SNIFFERS
from atls.errors import ConfigurationError
from atls.testing.tdx import FakeIntel


def test_sniffer_is_registered_once() -> None:
    assert DOCUMENT_SNIFFERS.count(intel.sniff_intel_collateral) == 1


def test_pcs_body_keeps_the_exact_signed_bytes() -> None:
    fake = FakeIntel()
    inner = fake.tcb_info_json()
    sig = "ab" * 64
    body = b'{"tcbInfo": ' + inner + b',\n "signature":"' + sig.encode() + b'"}\n'
    doc = intel.document_from_pcs_body(body, field="tcbInfo")
    assert doc.kind == "tdx-tcb-info" and doc.body == inner
    assert doc.signature == bytes.fromhex(sig)
    c = collateral_from_bytes(body, source="x")
    assert c.documents == (doc,)
    qe = (
        b'{"enclaveIdentity":'
        + fake.qe_identity_json(tee="sgx")
        + b',"signature":"'
        + (b"cd" * 64)
        + b'"}'
    )
    assert intel.document_from_pcs_body(qe, field="enclaveIdentity").kind == "sgx-qe-identity"
    sgx = b'{"tcbInfo":' + fake.tcb_info_json(tee="sgx") + b',"signature":"' + b"00" * 64 + b'"}'
    assert collateral_from_bytes(sgx).documents[0].kind == "sgx-tcb-info"
    with pytest.raises(ConfigurationError):
        intel.document_from_pcs_body(body, field="tcbInfo", kind="sgx-tcb-info")


@pytest.mark.parametrize(
    "body",
    [
        b'{"tcbInfo": {"id": "TDX"}, "signature": "zz"}',
        b'{"tcbInfo": {"id": "TDX"}, "signature": "abcd"}',
        b'{"tcbInfo": {"id": "TDX"}}',
        b'{"tcbInfo": {"id": "XYZ"}, "signature": "' + b"00" * 64 + b'"}',
        b'{"tcbInfo": {"id": "TDX"}, "signature": "' + b"00" * 64 + b'", "tcbInfo": {}}',
        b'{"tcbInfo": [1, 2], "signature": "' + b"00" * 64 + b'"}',
        b'{"tcbInfo": {"id": "TDX"}, "signature": "' + b"00" * 64 + b'"} trailing',
        b'{"tcbInfo": {"id": "TDX"}, "signature": NaN}',
        b'{"tcbInfo": {"id": "TDX" "signature": "00"}',
        b'{"enclaveIdentity": {"id": 7}, "signature": "' + b"00" * 64 + b'"}',
        b'{"tcbInfo": \xff}',
    ],
)
def test_malformed_pcs_json_is_a_configuration_error(body: bytes) -> None:
    with pytest.raises(ConfigurationError) as e:
        collateral_from_bytes(body)
    assert e.value.code == "collateral.intel.malformed"


def test_unrelated_json_and_text_are_not_claimed() -> None:
    assert intel.sniff_intel_collateral(b'{"hello": "world"}') is None
    assert intel.sniff_intel_collateral(b"just some text") is None
    assert intel.sniff_intel_collateral(b"abcd") is None
    assert collateral_from_bytes(b'{"a": 1}') == Collateral()


def test_hex_crl_text() -> None:
    fake = FakeIntel()
    crl = fake.crl("root")
    for text in (
        crl.hex().encode(),
        b"0x" + crl.hex().encode() + b"\n",
        crl.hex().upper().encode(),
    ):
        assert collateral_from_bytes(text).crls == (crl,)
    assert intel.sniff_intel_collateral(b"00" * 40) is None


def test_dcap_qvl_json_round_trip() -> None:
    fake = FakeIntel()
    js = fake.dcap_qvl_collateral_json()
    c = intel.collateral_from_dcap_qvl_json(js)
    orig = fake.collateral()
    assert set(c.crls) == set(orig.crls)
    assert {d.kind for d in c.documents} == {"tdx-tcb-info", "tdx-qe-identity"}
    for kind in ("tdx-tcb-info", "tdx-qe-identity"):
        assert c.documents_of(kind)[0].body == orig.documents_of(kind)[0].body
        assert c.documents_of(kind)[0].signature == orig.documents_of(kind)[0].signature
    assert fake.tcb_signing_der in c.certificates and fake.pck_ca_der in c.certificates
    assert collateral_from_bytes(js.encode()).documents == c.documents


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.pop("tcb_info"),
        lambda d: d.update(tcb_info={"id": "TDX"}),
        lambda d: d.update(tcb_info_signature="zz"),
        lambda d: d.update(root_ca_crl="nothex"),
        lambda d: d.update(pck_crl="3000"),
        lambda d: d.update(qe_identity_issuer_chain="no pem here"),
        lambda d: d.update(qe_identity="{broken"),
    ],
)
def test_malformed_dcap_qvl_json(mutate) -> None:  # type: ignore[no-untyped-def]
    d = json.loads(FakeIntel().dcap_qvl_collateral_json())
    mutate(d)
    with pytest.raises(ConfigurationError) as e:
        collateral_from_bytes(json.dumps(d).encode())
    assert e.value.code == "collateral.intel.malformed"


@pytest.mark.vectors
def test_vector_collateral_files(vectors: Path) -> None:
    g = vectors / "tdx/go-tdx-guest"
    tcb = load_collateral([g / "sample_tcbInfo_response"])
    assert tcb.documents[0].kind == "tdx-tcb-info"
    raw = (g / "sample_tcbInfo_response").read_text()
    assert tcb.documents[0].body.decode() in raw
    assert json.loads(tcb.documents[0].body)["fmspc"] == "50806f000000"
    qe = load_collateral([g / "sample_qeIdentity_response"])
    assert qe.documents[0].kind == "tdx-qe-identity"
    assert load_collateral([g / "rootcrl.der"]).crls
    for d in ("tdx/dcap-qvl", "sgx/dcap-qvl", "tdx/zkdcap", "sgx/zkdcap", "tdx/trustee"):
        found = load_collateral([vectors / d])  # whole directories, sniffed by content
        assert found.documents, d
    sgx = load_collateral([vectors / "sgx/zkdcap/qeidentityv2_sgx.json"])
    assert sgx.documents[0].kind == "sgx-qe-identity"
    both = load_collateral([vectors / "tdx/dcap-qvl/tdx_quote_collateral.json"])
    assert len(both.crls) == 2 and len(both.documents) == 2 and both.certificates
