"""DCAP quote parsing: real quotes against the collector's facts, the simulated quotes'
round trip, strict bounds, and property tests (random or damaged bytes give typed errors)."""

from __future__ import annotations

import contextlib
import json
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atls.errors import EvidenceParseError, UnsupportedEvidenceError
from atls.evidence.tdx import (
    SGX_QUOTE,
    TDX_QUOTE,
    EnclaveReport,
    TdReport,
    parse_pem_chain,
    parse_quote,
)
from atls.testing.tdx import FakeIntel

REPORT_DATA = bytes(range(64))


@pytest.fixture(scope="module")
def fake() -> FakeIntel:
    return FakeIntel()


def _facts(vectors: Path, platform: str) -> dict[str, Any]:
    facts: dict[str, Any] = json.loads((vectors / platform / "EXPECTED_FACTS.json").read_text())
    return facts


@pytest.mark.vectors
def test_every_tdx_vector_quote_parses_to_the_collected_facts(vectors: Path) -> None:
    facts = _facts(vectors, "tdx")
    assert len(facts) >= 20
    for name, f in facts.items():
        q = parse_quote((vectors / name).read_bytes())
        body = q.body
        assert isinstance(body, TdReport), name
        assert q.header.version == f["version"], name
        assert f"{q.header.tee_type:#x}" == f["tee_type"], name
        assert q.header.att_key_type == f["att_key_type"], name
        assert q.header.qe_svn == f["qe_svn"] and q.header.pce_svn == f["pce_svn"], name
        assert q.trailing == f["trailing_bytes"], name
        assert body.mr_td.hex() == f["mr_td"], name
        for i in range(4):
            assert body.rtmr[i].hex() == f[f"rt_mr{i}"], name
        for field in (
            "report_data",
            "td_attributes",
            "xfam",
            "tee_tcb_svn",
            "mr_seam",
            "mr_signer_seam",
            "seam_attributes",
            "mr_config_id",
            "mr_owner",
            "mr_owner_config",
        ):
            assert getattr(body, field).hex() == f[field], (name, field)
        assert body.debug == f["td_debug"], name
        assert ("TD15" if body.tee_tcb_svn2 is not None else "TD10") == f["body_type"], name
        assert q.qe_report.isv_svn == f["qe_isv_svn"], name
        assert q.qe_report.mr_signer.hex() == f["qe_mr_signer"], name
        assert q.qe_report.mr_enclave.hex() == f["qe_mr_enclave"], name
        assert f["cert_types"] == [6, 5], name
        assert len(parse_pem_chain(q.cert_data)) == f["chain_len"], name
        assert TDX_QUOTE.sniff((vectors / name).read_bytes()), name
        assert not SGX_QUOTE.sniff((vectors / name).read_bytes()), name


@pytest.mark.vectors
def test_every_sgx_vector_quote_parses(vectors: Path) -> None:
    facts = _facts(vectors, "sgx")
    assert facts
    for name, f in facts.items():
        data = (vectors / name).read_bytes()
        q = parse_quote(data)
        assert isinstance(q.body, EnclaveReport), name
        assert q.header.version == 3
        assert SGX_QUOTE.sniff(data) and not TDX_QUOTE.sniff(data)
        flat = json.dumps(f)
        assert q.body.mr_enclave.hex() in flat, name
        assert q.body.report_data.hex() in flat, name


@pytest.mark.vectors
def test_dcap_qvl_sample_sgx_quote_fields(vectors: Path) -> None:
    """P3: upstream asserts header v3, att key type 2, tee_type 0, qe_svn 10, pce_svn 15,
    MRENCLAVE and report CPUSVN; REPORTDATA is 'Hello, world!' zero-padded."""
    q = parse_quote((vectors / "sgx/dcap-qvl/sgx_quote").read_bytes())
    assert (q.header.version, q.header.att_key_type, q.header.tee_type) == (3, 2, 0)
    assert (q.header.qe_svn, q.header.pce_svn) == (10, 15)
    assert isinstance(q.body, EnclaveReport)
    assert q.body.mr_enclave.hex() == (
        "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb"
    )
    assert q.body.cpu_svn.hex() == "0b0b1a18ffff04000000000000000000"
    assert q.body.report_data == b"Hello, world!".ljust(64, b"\0")


def test_simulated_quotes_round_trip(fake: FakeIntel) -> None:
    rtmr = (b"\x01" * 48, b"\x02" * 48, b"\x03" * 48, b"\x04" * 48)
    for version, body_kind in ((4, "1.0"), (5, "1.0"), (5, "1.5")):
        raw = fake.quote(
            REPORT_DATA,
            version=version,
            body=body_kind,
            mr_td=b"\xaa" * 48,
            rtmr=rtmr,
            tee_tcb_svn=bytes.fromhex("05010800000000000000000000000000"),
            tee_tcb_svn2=bytes.fromhex("06010800000000000000000000000000"),
            mr_servicetd=b"\x55" * 48,
            trailing=bytes(99),
        )
        q = parse_quote(raw)
        assert isinstance(q.body, TdReport)
        assert q.header.version == version
        assert q.body_type == (3 if body_kind == "1.5" else 2)
        assert q.body.report_data == REPORT_DATA
        assert q.body.mr_td == b"\xaa" * 48
        assert q.body.rtmr == rtmr
        assert q.body.tee_tcb_svn[0] == 5
        assert q.trailing == 99
        assert q.attestation_key == fake.attestation_public_key
        if body_kind == "1.5":
            assert q.body.tee_tcb_svn2 is not None and q.body.tee_tcb_svn2[0] == 6
            assert q.body.mr_servicetd == b"\x55" * 48
        else:
            assert q.body.tee_tcb_svn2 is None and q.body.mr_servicetd is None
        assert parse_pem_chain(q.cert_data) == (fake.pck_der, fake.pck_ca_der, fake.root_der)
    sq = parse_quote(fake.sgx_quote(REPORT_DATA, mr_enclave=b"\x07" * 32, isv_svn=9))
    assert isinstance(sq.body, EnclaveReport)
    assert (sq.body.mr_enclave, sq.body.isv_svn) == (b"\x07" * 32, 9)
    assert sq.header.qe_svn == fake.qe_svn and sq.header.pce_svn == fake.pce_svn


def test_td_attribute_bits(fake: FakeIntel) -> None:
    q = parse_quote(fake.quote(REPORT_DATA, debug=True, sept_ve_disable=False))
    assert isinstance(q.body, TdReport)
    assert q.body.debug and not q.body.sept_ve_disable
    q = parse_quote(fake.quote(REPORT_DATA))
    assert isinstance(q.body, TdReport)
    assert not q.body.debug and q.body.sept_ve_disable


def test_truncation_at_every_length_is_a_parse_error(fake: FakeIntel) -> None:
    for raw in (
        fake.quote(REPORT_DATA),
        fake.quote(REPORT_DATA, version=5),
        fake.sgx_quote(REPORT_DATA),
    ):
        for n in range(0, len(raw), 7):
            with pytest.raises(EvidenceParseError):
                parse_quote(raw[:n])
        parse_quote(raw)


def _set_u32(raw: bytes, off: int, value: int) -> bytes:
    return raw[:off] + struct.pack("<I", value) + raw[off + 4 :]


def test_lying_length_fields(fake: FakeIntel) -> None:
    raw = fake.quote(REPORT_DATA)
    sig_len_at = 48 + 584
    (sig_len,) = struct.unpack_from("<I", raw, sig_len_at)
    # Too long, absurd, too short: never a read past the end, never a large allocation.
    for bad in (sig_len + 1, 0xFFFFFFFF, 0x7FFFFFFF, sig_len - 1, 0, 127):
        with pytest.raises(EvidenceParseError):
            parse_quote(_set_u32(raw, sig_len_at, bad))
    # The outer certification data size (type 6) must fill the signature data exactly.
    outer_size_at = sig_len_at + 4 + 128 + 2
    (outer,) = struct.unpack_from("<I", raw, outer_size_at)
    for bad in (outer + 1, outer - 1, 0xFFFFFFFF, 0):
        with pytest.raises(EvidenceParseError):
            parse_quote(_set_u32(raw, outer_size_at, bad))
    # QE auth data size.
    auth_at = outer_size_at + 4 + 384 + 64
    for bad in (0xFFFF, 33, 31):
        with pytest.raises(EvidenceParseError):
            parse_quote(raw[:auth_at] + struct.pack("<H", bad) + raw[auth_at + 2 :])
    # The inner (PEM chain) certification data size.
    inner_at = auth_at + 2 + 32 + 2
    (inner,) = struct.unpack_from("<I", raw, inner_at)
    for bad in (inner + 1, inner - 1, 0xFFFFFFFF):
        with pytest.raises(EvidenceParseError):
            parse_quote(_set_u32(raw, inner_at, bad))


def test_v5_body_descriptor_is_checked(fake: FakeIntel) -> None:
    raw = fake.quote(REPORT_DATA, version=5)
    with pytest.raises(EvidenceParseError) as e:
        parse_quote(raw[:50] + struct.pack("<I", 584) + raw[54:])
    assert e.value.field == "body_size"
    with pytest.raises(UnsupportedEvidenceError) as u:
        parse_quote(raw[:48] + struct.pack("<H", 4) + raw[50:])
    assert u.value.code == "tdx.unsupported.body_type"
    with pytest.raises(UnsupportedEvidenceError):
        parse_quote(raw[:48] + struct.pack("<H", 1) + raw[50:])


def test_unsupported_header_values(fake: FakeIntel) -> None:
    raw = fake.quote(REPORT_DATA)
    cases = {
        struct.pack("<H", 3): "sgx.unsupported.version",  # v3 with a TDX TEE type
        struct.pack("<H", 6): "tdx.unsupported.version",
    }
    for patch, code in cases.items():
        with pytest.raises(UnsupportedEvidenceError) as e:
            parse_quote(patch + raw[2:])
        # v3 + tee 0x81 is reported by the TEE-type rule of the quote version
        assert e.value.code in (code, "tdx.unsupported.version")
    with pytest.raises(UnsupportedEvidenceError) as e:
        parse_quote(raw[:2] + struct.pack("<H", 3) + raw[4:])
    assert e.value.code == "tdx.unsupported.att_key_type"
    with pytest.raises(UnsupportedEvidenceError) as e:
        parse_quote(raw[:4] + struct.pack("<I", 0x42) + raw[8:])
    assert e.value.code == "tdx.unsupported.tee_type"


def test_certification_data_types(fake: FakeIntel) -> None:
    raw = fake.quote(REPORT_DATA)
    outer_type_at = 48 + 584 + 4 + 128
    with pytest.raises(UnsupportedEvidenceError) as e:
        parse_quote(raw[:outer_type_at] + struct.pack("<H", 5) + raw[outer_type_at + 2 :])
    assert e.value.code == "tdx.unsupported.cert_data_type"
    inner_type_at = outer_type_at + 6 + 384 + 64 + 2 + 32
    with pytest.raises(UnsupportedEvidenceError) as e:
        parse_quote(raw[:inner_type_at] + struct.pack("<H", 3) + raw[inner_type_at + 2 :])
    assert e.value.code == "tdx.unsupported.cert_data_type"


def test_oversized_input_is_refused_before_parsing() -> None:
    with pytest.raises(EvidenceParseError) as e:
        parse_quote(b"\x04" + bytes(300 * 1024))
    assert e.value.code == "tdx.parse.too_large"


def test_pem_chain_is_strict(fake: FakeIntel) -> None:
    pem = fake.pck_chain_pem
    assert len(parse_pem_chain(pem)) == 3
    assert len(parse_pem_chain(pem + b"\0\0\n")) == 3
    for bad in (
        b"",
        b"junk" + pem,
        pem.replace(b"\0", b"junk"),
        pem.replace(b"-----END CERTIFICATE-----", b"", 1),
        pem.replace(b"MII", b"M!I", 1),
        pem * 3,
    ):
        with pytest.raises(EvidenceParseError) as e:
            parse_pem_chain(bad)
        assert e.value.code == "tdx.parse.pck_chain"


def test_sniff() -> None:
    fake = FakeIntel()
    assert TDX_QUOTE.sniff(fake.quote(REPORT_DATA)) and TDX_QUOTE.sniff(
        fake.quote(REPORT_DATA, version=5)
    )
    assert not TDX_QUOTE.sniff(fake.sgx_quote(REPORT_DATA))
    assert SGX_QUOTE.sniff(fake.sgx_quote(REPORT_DATA))
    assert not TDX_QUOTE.sniff(b"") and not SGX_QUOTE.sniff(bytes(1184))
    assert (TDX_QUOTE.name, TDX_QUOTE.platform) == ("tdx-quote", "tdx")
    assert (SGX_QUOTE.name, SGX_QUOTE.platform) == ("sgx-quote", "sgx")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=6000))
def test_random_bytes_raise_only_parse_or_unsupported(data: bytes) -> None:
    with contextlib.suppress(EvidenceParseError, UnsupportedEvidenceError):
        parse_quote(data)


_SIM = FakeIntel()
_SIM_QUOTES = (
    _SIM.quote(REPORT_DATA),
    _SIM.quote(REPORT_DATA, version=5),
    _SIM.sgx_quote(REPORT_DATA),
)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(_SIM_QUOTES),
    st.integers(min_value=0, max_value=10_000),
    st.binary(min_size=1, max_size=8),
)
def test_damaged_quotes_raise_only_parse_or_unsupported(
    raw: bytes, where: int, junk: bytes
) -> None:
    """Overwrite, insert or cut anywhere: parsing returns or raises a typed error only."""
    at = where % len(raw)
    for damaged in (
        raw[:at] + junk + raw[at + len(junk) :],
        raw[:at] + junk + raw[at:],
        raw[:at] + raw[at + len(junk) :],
    ):
        with contextlib.suppress(EvidenceParseError, UnsupportedEvidenceError):
            parse_quote(damaged)


_PCK_EXT = None


def _pck_extension() -> bytes:
    from atls.evidence.tdx._x509 import load_cert

    ext = load_cert(_SIM.pck_der, fmt="tdx", what="PCK", in_quote=True).extension(
        bytes.fromhex("2a864886f84d010d01")
    )
    assert ext is not None
    return ext


def test_sgx_extension_of_the_simulated_pck() -> None:
    from atls.evidence.tdx import parse_sgx_extension

    ext = parse_sgx_extension(_pck_extension())
    assert ext.fmspc == _SIM.fmspc and ext.pce_id == _SIM.pce_id
    assert ext.tcb_components == _SIM.sgx_tcb_components and ext.pce_svn == _SIM.pce_svn
    assert ext.ppid == _SIM.ppid and ext.sgx_type == 0
    assert ext.dynamic_platform is False and ext.platform_instance_id == bytes(16)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0), st.binary(min_size=1, max_size=4), st.booleans())
def test_damaged_sgx_extension_raises_value_error_only(where: int, junk: bytes, cut: bool) -> None:
    from atls.evidence.tdx import parse_sgx_extension

    ext = _pck_extension()
    at = where % len(ext)
    damaged = ext[:at] + (b"" if cut else junk) + ext[at + len(junk) :]
    with contextlib.suppress(ValueError):
        parse_sgx_extension(damaged)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_der_helpers_raise_der_error_only(data: bytes) -> None:
    from atls.evidence.tdx._der import DerError, certificate_parts, crl_parts, name_common_name

    for f in (certificate_parts, crl_parts, name_common_name):
        with contextlib.suppress(DerError):
            f(data)


_JSON_LEAVES = st.none() | st.booleans() | st.integers() | st.text(max_size=20)
_JSON = st.recursive(
    _JSON_LEAVES,
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["tcb", "qe"]),
    st.lists(st.integers(min_value=0, max_value=50), min_size=1, max_size=4),
    _JSON,
)
def test_collateral_json_parsers_raise_value_error_only(
    kind: str, path: list[int], value: object
) -> None:
    """Replace any member of a valid TCB info / QE identity with arbitrary JSON: the parser
    returns a model or raises ValueError, nothing else."""
    import json as _json

    from atls.evidence.tdx import parse_qe_identity, parse_tcb_info

    doc = _json.loads(_SIM.tcb_info_json() if kind == "tcb" else _SIM.qe_identity_json())
    node: Any = doc
    for depth, index in enumerate(path):
        keys: list[Any] = sorted(node) if isinstance(node, dict) else list(range(len(node)))
        if not keys:
            break
        k = keys[index % len(keys)]
        child = node[k]
        if depth == len(path) - 1 or not isinstance(child, (dict, list)) or not child:
            node[k] = value
            break
        node = child
    body = _json.dumps(doc).encode()
    with contextlib.suppress(ValueError):
        (parse_tcb_info if kind == "tcb" else parse_qe_identity)(body)
