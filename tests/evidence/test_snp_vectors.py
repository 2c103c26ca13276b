"""Real SEV-SNP reports from the shared test vectors: every report with its VCEK/VLEK and
chain verifies under the pinned AMD roots, with the expected claims; tampered copies fail.

Sources (see PROVENANCE.md): google/go-sev-guest, virtee/sev, confidential-containers/trustee
(raw reports, Azure HCL reports, VLEK, a JSON-serialised report), microsoft/
TEE-Attestation-Verification (Milan, Genoa, Turin), dstack; SecretVM and Cocos reports have
no VCEK in their repositories and are parse-only.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atls._bytes import Writer
from atls.collateral import Collateral
from atls.collateral._sniff import split_pem
from atls.errors import AttestationError, VerificationError
from atls.evidence import Verified
from atls.evidence.snp import SNP_REPORT, ChainCache, parse_cert, parse_report, verify_report
from atls.trust import TrustStore

pytestmark = pytest.mark.vectors


def _certs(data: bytes) -> list[bytes]:
    """DER certificates of a PEM bundle or a single DER file (without loading them in
    ``cryptography``, which warns about the VCEK's serial number 0)."""
    pems = split_pem(data)
    if pems:
        return [d for label, d in pems if label == "CERTIFICATE"]
    return [data]


def _b64(text: str) -> bytes:
    s = "".join(text.split())
    return base64.b64decode(
        s + "=" * (-len(s) % 4), altchars=b"-_" if "-" in s or "_" in s else None
    )


@dataclass(frozen=True)
class Case:
    """One real report: where it is, what verifies it, when."""

    name: str
    facts_key: str | None  # key in snp/EXPECTED_FACTS.json
    product: str
    key: str
    at: datetime


def _at(s: str) -> datetime:
    return datetime.fromisoformat(s).replace(tzinfo=UTC)


_AZ = "snp/trustee/az-snp-vtpm"
_MS = "snp/ms-tee-attestation-verification"
CASES = [
    Case("go-sev-guest", "snp/go-sev-guest/attestation.bin", "Milan", "vcek",
         _at("2022-09-24T01:00:00")),
    Case("virtee-milan", "snp/virtee-sev/report_milan.hex", "Milan", "vcek", _at("2024-01-01")),
    Case("trustee-vcek", "snp/trustee/test-report.bin", "Milan", "vcek", _at("2024-01-01")),
    Case("trustee-vlek", "snp/trustee/test-vlek-report.bin", "Milan", "vlek", _at("2025-06-01")),
    Case("trustee-az-hcl", f"{_AZ}/hcl-report.bin[0x20:0x4c0]", "Milan", "vcek",
         _at("2024-01-01")),
    Case("trustee-az-v0", f"{_AZ}/evidence-v0.json:.hcl_report[0x20:0x4c0]", "Milan", "vcek",
         _at("2026-01-01")),
    Case("trustee-az-v1", f"{_AZ}/evidence-v1.json:.hcl_report[0x20:0x4c0]", "Milan", "vcek",
         _at("2026-01-01")),
    Case("trustee-az-v2", f"{_AZ}/evidence-v2.json:.hcl_report[0x20:0x4c0]", "Milan", "vcek",
         _at("2026-01-01")),
    Case("trustee-az-genoa", f"{_AZ}/evidence-genoa.json:.hcl_report[0x20:0x4c0]", "Genoa",
         "vcek", _at("2026-01-01")),
    Case("trustee-e2e-json", None, "Genoa", "vcek", _at("2026-01-01")),
    Case("dstack", "snp/dstack/sev_snp_report.bin", "Milan", "vcek", _at("2026-07-01")),
    Case("ms-milan", f"{_MS}/milan_attestation_report.bin", "Milan", "vcek", _at("2026-03-01")),
    Case("ms-genoa", f"{_MS}/genoa_attestation_report.bin", "Genoa", "vcek", _at("2026-03-01")),
    Case("ms-turin", f"{_MS}/turin_attestation_report.bin", "Turin", "vcek", _at("2026-03-01")),
]  # fmt: skip


def _serialise_trustee_json(r: dict[str, Any]) -> bytes:
    """Rebuild the raw ABI report from trustee's JSON form (field by field; reserved bytes
    zero). Its signature verifying proves the rebuild byte-exact."""

    def tcb(t: dict[str, Any]) -> bytes:  # Genoa/Milan layout (the JSON says fmc: null)
        assert t["fmc"] is None
        return bytes([t["bootloader"], t["tee"], 0, 0, 0, 0, t["snp"], t["microcode"]])

    def ver(v: dict[str, int]) -> bytes:
        return bytes([v["build"], v["minor"], v["major"], 0])

    w = Writer()
    w.u32(r["version"]).u32(r["guest_svn"]).u64(r["policy"]).raw(bytes(r["family_id"]))
    w.raw(bytes(r["image_id"])).u32(r["vmpl"]).u32(r["sig_algo"]).raw(tcb(r["current_tcb"]))
    w.u64(r["plat_info"]).u32(r["key_info"]).zeros(4).raw(bytes(r["report_data"]))
    w.raw(bytes(r["measurement"])).raw(bytes(r["host_data"])).raw(bytes(r["id_key_digest"]))
    w.raw(bytes(r["author_key_digest"])).raw(bytes(r["report_id"])).raw(bytes(r["report_id_ma"]))
    w.raw(tcb(r["reported_tcb"])).u8(r["cpuid_fam_id"]).u8(r["cpuid_mod_id"]).u8(r["cpuid_step"])
    w.zeros(0x1A0 - 0x18B).raw(bytes(r["chip_id"])).raw(tcb(r["committed_tcb"]))
    w.raw(ver(r["current"])).raw(ver(r["committed"])).raw(tcb(r["launch_tcb"]))
    w.zeros(0x2A0 - 0x1F8).raw(bytes(r["signature"]["r"])).raw(bytes(r["signature"]["s"]))
    w.zeros(0x4A0 - 0x330)
    return w.getvalue()


class Vectors:
    """Loads reports and their collateral from the shared vector folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.snp = root / "snp"
        self.facts: dict[str, dict[str, Any]] = json.loads(
            (self.snp / "EXPECTED_FACTS.json").read_text()
        )
        arks = [_certs((self.snp / f"virtee-sev/builtin/{p}/ark.pem").read_bytes())[0]
                for p in ("milan", "genoa", "turin")]  # fmt: skip
        self.trust = TrustStore.from_certificates(arks)

    def read(self, rel: str) -> bytes:
        return (self.snp / rel).read_bytes()

    def certs(self, *rels: str) -> list[bytes]:
        out: list[bytes] = []
        for rel in rels:
            out += _certs(self.read(rel))
        return out

    def _az_json(self, name: str) -> tuple[bytes, bytes]:
        d = json.loads(self.read(f"trustee/az-snp-vtpm/{name}"))
        hcl = bytes(d["report"]) if "report" in d else _b64(d["hcl_report"])
        vcek = d["vcek"]
        vcek_der = _certs(vcek.encode())[0] if "BEGIN" in vcek else _b64(vcek)
        return hcl[0x20:0x4C0], vcek_der

    def load(self, case: Case) -> tuple[bytes, Collateral]:
        """(raw report, collateral holding its VCEK/VLEK and ASK/ASVK)."""
        n = case.name
        ask_ark = {"Milan": "go-sev-guest/ask_ark_milan.pem",
                   "Genoa": "go-sev-guest/ask_ark_genoa.pem"}  # fmt: skip
        if n == "go-sev-guest":
            raw, certs = (
                self.read("go-sev-guest/attestation.bin"),
                self.certs("go-sev-guest/vcek.testcer", "go-sev-guest/ask_ark_milan.pem"),
            )
        elif n == "virtee-milan":
            raw = bytes.fromhex(self.read("virtee-sev/report_milan.hex").decode().strip())
            certs = self.certs("virtee-sev/vcek_milan.der", "virtee-sev/builtin/milan/ask.pem")
        elif n == "trustee-vcek":
            raw = self.read("trustee/test-report.bin")
            certs = self.certs("trustee/test-vcek.der", "trustee/milan_ask_ark_asvk.pem")
        elif n == "trustee-vlek":
            raw = self.read("trustee/test-vlek-report.bin")
            certs = self.certs("trustee/test-vlek.der", "trustee/milan_ask_ark_asvk.pem")
        elif n == "trustee-az-hcl":
            raw = self.read("trustee/az-snp-vtpm/hcl-report.bin")[0x20:0x4C0]
            certs = self.certs("trustee/az-snp-vtpm/vcek.pem")  # VCEK + ASK + ARK
        elif n.startswith("trustee-az-"):
            name = {"v0": "evidence-v0.json", "v1": "evidence-v1.json", "v2": "evidence-v2.json",
                    "genoa": "evidence-genoa.json"}[n.removeprefix("trustee-az-")]  # fmt: skip
            raw, vcek = self._az_json(name)
            certs = [vcek, *self.certs(ask_ark[case.product])]
        elif n == "trustee-e2e-json":
            d = json.loads(self.read("trustee/e2e-evidence.json"))
            raw = _serialise_trustee_json(d["attestation_report"])
            vceks = [bytes(c["data"]) for c in d["cert_chain"] if c["cert_type"] == "VCEK"]
            certs = [*vceks, *self.certs(ask_ark["Genoa"])]
        elif n == "dstack":
            raw = self.read("dstack/sev_snp_report.bin")
            certs = self.certs("dstack/sev_snp_vcek.pem", "dstack/sev_snp_ask.pem")
        elif n.startswith("ms-"):
            p = n.removeprefix("ms-")
            d = "ms-tee-attestation-verification"
            raw = self.read(f"{d}/{p}_attestation_report.bin")
            certs = self.certs(f"{d}/{p}_vcek.pem", f"{d}/{p}_ask.pem")
        else:  # pragma: no cover
            raise KeyError(n)
        return raw, Collateral(tuple(certs))


@pytest.fixture(scope="module")
def vec(vectors: Path) -> Vectors:
    return Vectors(vectors)


def _verify(
    vec: Vectors,
    case: Case,
    raw: bytes | None = None,
    collateral: Collateral | None = None,
    *,
    cache: ChainCache | None = None,
    **kw: Any,
) -> Verified:
    r, c = vec.load(case)
    return SNP_REPORT.verify(
        r if raw is None else raw,
        trust=kw.pop("trust", vec.trust),
        collateral=c if collateral is None else collateral,
        at=kw.pop("at", case.at),
        cache=cache,
        **kw,
    )


def _code(vec: Vectors, case: Case, raw: bytes | None = None,
          collateral: Collateral | None = None, **kw: Any) -> str:  # fmt: skip
    with pytest.raises(AttestationError) as e:
        _verify(vec, case, raw, collateral, **kw)
    return e.value.code


BY_NAME = {c.name: c for c in CASES}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_real_report_verifies(vec: Vectors, case: Case) -> None:
    v = _verify(vec, case)
    assert v.platform == "snp" and v.simulated is False
    assert v.trust_root == f"amd-ark-{case.product.lower()}"
    assert v.claims["product"] == case.product and v.claims["signing_key"] == case.key
    assert v.unchecked == ("crl",)  # the vectors hold no AMD CRL
    assert v.report_data.hex() == v.claims["report_data"]
    assert v.debug is v.claims["policy_debug"]
    if case.facts_key is None:
        return
    f = vec.facts[case.facts_key]
    assert f["sig_ok"] is True
    c = v.claims
    for key in ("version", "guest_svn", "policy", "vmpl", "platform_info", "report_data",
                "measurement", "host_data", "id_key_digest", "author_key_digest", "report_id",
                "chip_id", "current_major", "current_minor", "current_build"):  # fmt: skip
        assert c[key] == f[key], key
    assert c["signature_algo"] == f["sig_algo"]
    for key in ("reported_tcb", "current_tcb", "committed_tcb", "launch_tcb"):
        assert c[f"{key}_raw"] == f[key], key
    parts = {"bl": "bootloader", "ucode": "microcode"}
    assert c["reported_tcb"] == {parts.get(k, k): n for k, n in f["reported_tcb_parts"].items()}
    assert c["policy_debug"] is f["debug"] and c["policy_smt"] is f["smt"]
    assert c["signing_key"] == {0: "vcek", 1: "vlek"}[f["signing_key"]]
    for key in ("cpuid_fam_id", "cpuid_mod_id", "cpuid_step"):
        assert c.get(key) == f.get(key), key
    assert c[f"{case.key}_product_name"] == f["vek_ext"]["productName"]


def test_upstream_assertions(vec: Vectors) -> None:
    # go-sev-guest tools/check/check_test.go
    c = _verify(vec, BY_NAME["go-sev-guest"]).claims
    assert c["report_data"] == "0102030405" + "00" * 59
    assert c["report_id"] == "8edc638e1857c555d21f6b11bda3c8b1b5a09dba4852b4c8ee7aa2f16f22cc0a"
    assert c["report_id_ma"] == "ff" * 32
    assert c["measurement"] == (
        "b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b"
        "6bdf8a9ece31a5a608eb0cf2e4872b01"
    )
    assert c["policy"] == 0xB0000 and c["policy_debug"] and c["policy_smt"]
    assert c["family_id"] == c["image_id"] == "00" * 16 and c["host_data"] == "00" * 32
    assert c["vmpl"] == 0 and c["platform_info"] == 1
    assert (c["current_major"], c["current_minor"]) == (1, 49)
    assert c["reported_tcb"] == {"bootloader": 2, "tee": 0, "snp": 5, "microcode": 68}
    assert c["vcek_product_name"] == "Milan-B0"
    # dstack-attest tests/sev_snp_verify.rs and README
    c = _verify(vec, BY_NAME["dstack"]).claims
    assert bytes.fromhex(c["report_data"]) == b"attest-test-fixture-2026".ljust(64, b"\0")
    assert c["measurement"].startswith("7f51e17f72a04d5422cb2c00998166536019a217")
    assert c["host_data"] == "783f0057820acb99249af56cc3b07b4e8d80f65183167cba9cf437bb680f742f"
    assert c["chip_id"].startswith("38d174589d2dff97")
    # trustee VLEK: AWS, VMPL 1, CHIP_ID zeroed, bl4/snp24/ucode217.
    v = _verify(vec, BY_NAME["trustee-vlek"])
    assert v.claims["vmpl"] == 1 and v.claims["chip_id"] == "00" * 64
    assert v.claims["csp_id"] == "CN=cc-us-east-2.amazonaws.com"
    assert v.claims["reported_tcb"] == {"bootloader": 4, "tee": 0, "snp": 24, "microcode": 217}
    # TEE-Attestation-Verification: Turin v5, fmc1/bl1/tee1/snp4/ucode81, 8-byte chip id.
    c = _verify(vec, BY_NAME["ms-turin"]).claims
    assert c["version"] == 5 and (c["cpuid_fam_id"], c["cpuid_mod_id"]) == (0x1A, 0x02)
    assert c["reported_tcb"] == {"fmc": 1, "bootloader": 1, "tee": 1, "snp": 4, "microcode": 81}
    assert c["chip_id"] == "59790fb1c39f35c1" + "00" * 56
    assert "launch_mit_vector" in c
    # trustee test-report: guest_svn 4, policy 0x3001f.
    c = _verify(vec, BY_NAME["trustee-vcek"]).claims
    assert c["guest_svn"] == 4 and c["policy"] == 0x3001F
    # trustee e2e JSON: Genoa-family CPU model 0xA0 (the Genoa VCEK chain).
    c = _verify(vec, BY_NAME["trustee-e2e-json"]).claims
    assert (c["cpuid_fam_id"], c["cpuid_mod_id"]) == (0x19, 0xA0) and c["product"] == "Genoa"


def test_trust_from_every_bundled_ark(vec: Vectors) -> None:
    """The ARKs of trustee's and go-sev-guest's bundles are the pinned roots too."""
    ders: list[bytes] = []
    for rel in (
        "trustee/milan_ask_ark_asvk.pem",
        "trustee/genoa_ask_ark_asvk.pem",
        "trustee/turin_ask_ark_asvk.pem",
        "go-sev-guest/ask_ark_turin_vcek.pem",
    ):
        ders += [d for d in vec.certs(rel) if parse_cert(d).self_issued]
    trust = TrustStore.from_certificates(dict.fromkeys(ders))
    assert {a.name for a in trust.anchors} == {"amd-ark-milan", "amd-ark-genoa", "amd-ark-turin"}
    for name in ("ms-milan", "ms-genoa", "ms-turin", "trustee-vlek"):
        assert _verify(vec, BY_NAME[name], trust=trust).trust_root.startswith("amd-ark-")


def test_turin_and_vlek_chains_from_go_sev_guest(vec: Vectors) -> None:
    case = BY_NAME["ms-turin"]
    raw, _ = vec.load(case)
    d = "ms-tee-attestation-verification"
    c = Collateral(tuple(vec.certs(f"{d}/turin_vcek.pem", "go-sev-guest/ask_ark_turin_vcek.pem")))
    assert _verify(vec, case, raw, c).claims["product"] == "Turin"
    case = BY_NAME["trustee-vlek"]
    raw, _ = vec.load(case)
    c = Collateral(tuple(vec.certs("trustee/test-vlek.der", "go-sev-guest/milanvlek.testcer")))
    assert _verify(vec, case, raw, c).claims["signing_key"] == "vlek"


# --- parse-only reports ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "loader"),
    [
        ("snp/secretvm-verify/amd_cpu_quote.txt", "b64"),
        ("snp/secretvm-verify/amd_cpu_docker_check_quote.txt", "b64"),
        ("snp/cocos/attestation.bin[0:1184]", "cocos"),
    ],
)
def test_parse_only_reports(vec: Vectors, key: str, loader: str) -> None:
    if loader == "b64":
        raw = _b64(vec.read(key.removeprefix("snp/")).decode())
    else:
        full = vec.read("cocos/attestation.bin")
        assert len(full) == 1240
        with pytest.raises(AttestationError):  # the raw format is exactly 1184 bytes
            parse_report(full)
        raw = full[:1184]
    f = vec.facts[key]
    r = parse_report(raw)
    product = r.cpuid_product
    c = r.claims(product)
    assert c["version"] == f["version"] and c["vmpl"] == f["vmpl"] and c["policy"] == f["policy"]
    assert c["measurement"] == f["measurement"] and c["chip_id"] == f["chip_id"]
    assert c["reported_tcb_raw"] == f["reported_tcb"]
    assert c["policy_debug"] is f["debug"] is False
    if loader == "b64":  # SecretVM upstream: version 3, VMPL 1, Genoa, debug off
        assert (r.version, r.vmpl, product) == (3, 1, "Genoa")
        assert c["reported_tcb"] == {"bootloader": 9, "tee": 0, "snp": 23, "microcode": 72}
    else:  # Cocos: v2, VMPL 2, policy 0x30000
        assert (r.version, r.vmpl, r.policy) == (2, 2, 0x30000)


def test_secretvm_reports_need_their_vcek(vec: Vectors) -> None:
    raw = _b64(vec.read("secretvm-verify/amd_cpu_quote.txt").decode())
    with pytest.raises(VerificationError) as e:
        SNP_REPORT.verify(raw, trust=vec.trust, collateral=Collateral(), at=_at("2026-01-01"))
    assert e.value.code == "snp.collateral.missing_vcek"


# --- negatives (upstream tests and more) -------------------------------------------------------


def _flip(raw: bytes, offset: int, mask: int = 0x01) -> bytes:
    b = bytearray(raw)
    b[offset] ^= mask
    return bytes(b)


def test_upstream_negatives(vec: Vectors) -> None:
    ms, trustee, virtee = BY_NAME["ms-milan"], BY_NAME["trustee-vcek"], BY_NAME["virtee-milan"]
    raw_ms, col_ms = vec.load(ms)
    raw_tr, col_tr = vec.load(trustee)
    raw_vi, col_vi = vec.load(virtee)
    # TEE-Attestation-Verification: report byte 100 ^= 0xff -> signature error.
    assert _code(vec, ms, _flip(raw_ms, 100, 0xFF)) == "snp.signature"
    # ... reported_tcb byte 0 ^= 0xff -> boot loader TCB mismatch.
    with pytest.raises(VerificationError, match="bootloader") as e:
        _verify(vec, ms, _flip(raw_ms, 0x180, 0xFF))
    assert e.value.code == "snp.vcek.tcb_mismatch"
    # ... chip_id byte flip -> TCB/chip ID mismatch.
    assert _code(vec, ms, _flip(raw_ms, 0x1A0 + 5)) == "snp.vcek.chip_id_mismatch"
    # ... Milan with the Genoa ASK -> chain error.
    genoa_ask = vec.certs("ms-tee-attestation-verification/genoa_ask.pem")
    c = Collateral((col_ms.certificates[0], *genoa_ask))
    assert _code(vec, ms, collateral=c) == "snp.collateral.missing_ask"
    # ... ASK given as the VCEK -> no endorsement key.
    assert _code(vec, ms, collateral=Collateral(col_ms.certificates[1:])) == (
        "snp.collateral.missing_vcek"
    )
    # ... no Milan root ("ASK as ARK" cannot even be loaded: the trust store pins roots).
    genoa_only = TrustStore([a for a in vec.trust.anchors if a.name == "amd-ark-genoa"])
    assert _code(vec, ms, trust=genoa_only) == "snp.chain.untrusted_root"
    # trustee: byte 42 += 1 -> signature; byte 384 (reported_tcb) += 1 -> TCB check.
    bumped = bytearray(raw_tr)
    bumped[42] = (bumped[42] + 1) % 256
    assert _code(vec, trustee, bytes(bumped)) == "snp.signature"
    bumped = bytearray(raw_tr)
    bumped[384] = (bumped[384] + 1) % 256
    assert _code(vec, trustee, bytes(bumped)) == "snp.vcek.tcb_mismatch"
    # ... VCEK byte 42 += 1 -> chain verification fails.
    vcek = bytearray(col_tr.certificates[0])
    vcek[42] = (vcek[42] + 1) % 256
    c = Collateral((bytes(vcek), *col_tr.certificates[1:]))
    assert _code(vec, trustee, collateral=c) in (
        "snp.chain.signature",
        "snp.collateral.missing_vcek",
    )
    # ... the ASVK instead of the ASK -> fails.
    asvk = [d for d in vec.certs("trustee/milan_ask_ark_asvk.pem") if b"SEV-VLEK" in d]
    c = Collateral((col_tr.certificates[0], *asvk))
    assert _code(vec, trustee, collateral=c) == "snp.collateral.missing_ask"
    # virtee: VCEK byte 40 ^= 0xff -> chain fails; report byte 21 ^= 0x80 -> fails.
    vcek = bytearray(col_vi.certificates[0])
    vcek[40] ^= 0xFF
    c = Collateral((bytes(vcek), *col_vi.certificates[1:]))
    with pytest.raises(AttestationError):
        _verify(vec, virtee, collateral=c)
    assert _code(vec, virtee, _flip(raw_vi, 21, 0x80)) == "snp.signature"


def test_wrong_vcek(vec: Vectors) -> None:
    # Two Milan chips at the same TCB (bl3/tee0/snp8/ucode115): trustee's VCEK for virtee's report.
    virtee = BY_NAME["virtee-milan"]
    _, col_tr = vec.load(BY_NAME["trustee-vcek"])
    assert _code(vec, virtee, collateral=col_tr) == "snp.vcek.chip_id_mismatch"
    # Another chip and TCB: the TCB is compared first.
    _, col_ds = vec.load(BY_NAME["dstack"])
    assert _code(vec, BY_NAME["ms-milan"], collateral=col_ds) == "snp.vcek.tcb_mismatch"
    # A VCEK of another product: named as such.
    _, col_genoa = vec.load(BY_NAME["ms-genoa"])
    assert _code(vec, BY_NAME["ms-milan"], collateral=col_genoa) == "snp.product"


def test_wrong_ask(vec: Vectors) -> None:
    # Real data has no second key under an ASK's name (the fake hierarchy covers that case:
    # snp.chain.signature); here, an ASK of another product for the Turin VCEK.
    case = BY_NAME["ms-turin"]
    _, col = vec.load(case)
    c = Collateral((col.certificates[0], *vec.certs("virtee-sev/builtin/milan/ask.pem")))
    assert _code(vec, case, collateral=c) == "snp.collateral.missing_ask"
    # The Genoa ASK (a real RSA key, other name) never signs a Milan VCEK.
    ms = BY_NAME["ms-milan"]
    _, col = vec.load(ms)
    genoa_ask = vec.certs("virtee-sev/builtin/genoa/ask.pem")
    assert _code(vec, ms, collateral=Collateral((col.certificates[0], *genoa_ask))) == (
        "snp.collateral.missing_ask"
    )


def test_wrong_product(vec: Vectors) -> None:
    assert _code(vec, BY_NAME["ms-milan"], product="Genoa") == "snp.product"
    assert _code(vec, BY_NAME["ms-turin"], product="Milan") == "snp.product"
    # v2 report (no CPUID): the chain's product is compared.
    assert _code(vec, BY_NAME["go-sev-guest"], product="Genoa") == "snp.product"
    assert _verify(vec, BY_NAME["go-sev-guest"], product="Milan").claims["product"] == "Milan"


def test_validity_windows(vec: Vectors) -> None:
    vlek = BY_NAME["trustee-vlek"]  # VLEK valid 2024-12-10 .. 2025-12-10
    assert _code(vec, vlek, at=_at("2026-01-01")) == "snp.chain.expired"
    assert _code(vec, vlek, at=_at("2024-12-01")) == "snp.chain.not_yet_valid"
    ms = BY_NAME["ms-milan"]  # VCEK valid from 2026-02-05
    assert _code(vec, ms, at=_at("2026-02-01")) == "snp.chain.not_yet_valid"
    # The ASK/ARK expire in 2045.
    assert _code(vec, ms, at=_at("2046-01-01")) == "snp.chain.expired"


def test_vlek_report_needs_the_vlek(vec: Vectors) -> None:
    vlek = BY_NAME["trustee-vlek"]
    _, col = vec.load(BY_NAME["trustee-vcek"])
    assert _code(vec, vlek, collateral=col) == "snp.collateral.missing_vlek"


def test_chain_cache_on_real_vectors(vec: Vectors) -> None:
    cache = ChainCache()
    endorsement_keys = set()
    for case in CASES:
        a = _verify(vec, case, cache=cache)
        b = _verify(vec, case, cache=cache)
        c = _verify(vec, case, cache=None)
        assert a.to_json() == b.to_json() == c.to_json()
        endorsement_keys.add(vec.load(case)[1].certificates[0])
    # One chain verification per distinct VCEK/VLEK (Azure v0 and v1 share one), hits after.
    assert cache.misses == len(endorsement_keys) < len(CASES)
    assert cache.hits + cache.misses == 2 * len(CASES)
    # Warm, but outside the VLEK's window: the precise error, not the cached success.
    assert _code(vec, BY_NAME["trustee-vlek"], at=_at("2026-01-01"), cache=cache) == (
        "snp.chain.expired"
    )


def test_every_flipped_byte_of_a_real_report_is_rejected(vec: Vectors) -> None:
    """Exhaustive over the signed region of one real report (warm chain: one ECDSA each)."""
    case = BY_NAME["ms-genoa"]
    raw, col = vec.load(case)
    cache = ChainCache()
    _verify(vec, case, cache=cache)
    codes: set[str] = set()
    for offset in range(0x2A0):
        with pytest.raises(AttestationError) as e:
            _verify(vec, case, _flip(raw, offset), col, cache=cache)
        codes.add(e.value.code)
    assert "snp.signature" in codes and codes <= {
        "snp.signature",
        "snp.parse",
        "snp.unsupported.version",
        "snp.unsupported.signature_algo",
        "snp.unsupported.product",
        "snp.product",
        "snp.vcek.tcb_mismatch",
        "snp.vcek.chip_id_mismatch",
        "snp.collateral.missing_vlek",
        "snp.unsigned",
    }


@pytest.fixture(scope="module")
def warm(vec: Vectors) -> tuple[Case, ChainCache]:
    cache = ChainCache()
    case = BY_NAME["trustee-vlek"]
    _verify(vec, case, cache=cache)
    return case, cache


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(offset=st.integers(0, 0x29F), mask=st.integers(1, 255))
def test_any_flipped_signed_byte_is_rejected(
    vec: Vectors, warm: tuple[Case, ChainCache], offset: int, mask: int
) -> None:
    case, cache = warm
    raw, col = vec.load(case)
    with pytest.raises(AttestationError):
        _verify(vec, case, _flip(raw, offset, mask), col, cache=cache)


def test_verify_report_takes_a_parsed_report(vec: Vectors) -> None:
    case = BY_NAME["ms-turin"]
    raw, col = vec.load(case)
    v = verify_report(parse_report(raw), trust=vec.trust, collateral=col, at=case.at)
    assert v.claims["product"] == "Turin"
    assert v.claims["reported_tcb"]["fmc"] == 1
    assert v.checks[-1] == "report_signature"


def test_same_reports_in_other_containers(vec: Vectors) -> None:
    """dstack's SCALE attestation and its JSON fixture carry the same signed report; trustee's
    vcek-genoa.pem is the VCEK of the Azure Genoa evidence."""
    report = vec.read("dstack/sev_snp_report.bin")
    scale = vec.read("dstack/sev_snp_attestation.bin")
    assert scale[:4] == bytes.fromhex("00038112") and scale[4:1188] == report
    fixture = json.loads(vec.read("dstack/sev-snp-attestation.json"))
    assert bytes.fromhex(fixture["attestation"])[4:1188] == report
    case = BY_NAME["trustee-az-genoa"]
    raw, col = vec.load(case)
    vcek = vec.certs("trustee/az-snp-vtpm/vcek-genoa.pem")
    c = Collateral((*vcek, *col.certificates[1:]))
    assert _verify(vec, case, raw, c).claims["product"] == "Genoa"


def test_hwid_encodings(vec: Vectors) -> None:
    """trustee's parse-only VCEKs: hwID as raw extnValue bytes and as a tagged OCTET STRING."""
    legacy = parse_cert(vec.read("trustee/test-vcek-invalid-legacy.der"))
    new = parse_cert(vec.read("trustee/test-vcek-invalid-new.der"))
    assert legacy.amd["hw_id"] == new.amd["hw_id"] == bytes(range(64))
    assert legacy.serial == new.serial == 0
