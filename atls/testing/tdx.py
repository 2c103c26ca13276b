"""A simulated Intel SGX/TDX hierarchy that signs real-format DCAP quotes and collateral.

:class:`FakeIntel` holds a fake Intel SGX Root CA (subject O = the simulated marker,
OU = ``intel``), a PCK Platform (or Processor) CA, a PCK certificate carrying the Intel SGX
extension (FMSPC, PCE-ID, TCB component SVNs, PCESVN, CPUSVN), an Intel SGX TCB Signing
certificate, signed TCB info and QE identity JSON, CRLs, a QE report and an attestation key.

* :meth:`FakeIntel.quote` - a TDX quote v4 (TD 1.0) or v5 (TD 1.0 / TD 1.5 body);
* :meth:`FakeIntel.sgx_quote` - an SGX quote v3;
* :meth:`FakeIntel.collateral` - the matching :class:`~atls.collateral.Collateral`;
* :meth:`FakeIntel.trust_store` - a ``TrustStore(allow_simulated=True)`` with the fake root;
* :meth:`FakeIntel.dcap_qvl_collateral_json` - the same collateral in dcap-qvl's JSON form.

Everything is deterministic: keys derive from ``seed`` and signatures are RFC 6979, so two
processes with the same seed build byte-identical roots (a client and a server started
separately agree on the simulated root). Keys, certificates, collateral and QE reports are
cached per hierarchy, so tests stay fast.

Knobs for negative cases: ``quote(debug=True, wrong_qe_report_data=True, ...)``;
``collateral(expired=True, no_matching_level=True, revoke_pck=True, tcb_status=...,
qe_tcb_status=..., module_tcb_status=..., wrong_fmspc=True, wrong_crl_issuer=True,
tamper_tcb_info=True, include_root_crl=False, include_pck_crl=False)``.

Nothing here is trusted unless a trust store explicitly allows simulated roots.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from atls._bytes import Writer
from atls.collateral._bundle import Collateral, Document
from atls.trust import TrustStore
from atls.trust._store import SIMULATED_MARKER

__all__ = [
    "DEFAULT_AT",
    "FAKE_QE_MRSIGNER",
    "ROOT_CN",
    "FakeIntel",
    "TcbLevelSpec",
    "sgx_extension",
]

#: A verification time inside every default validity window of the fake hierarchy.
DEFAULT_AT = datetime(2025, 6, 1, tzinfo=UTC)
ROOT_CN = "atls simulated Intel SGX Root CA"
_SGX_OID = "1.2.840.113741.1.13.1"
_INTEL_QE_VENDOR_ID = bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")
_P256_ORDER = int("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", 16)
_CERT_NOT_BEFORE = datetime(2023, 1, 1, tzinfo=UTC)
_CERT_NOT_AFTER = datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC)
_ISSUE = datetime(2024, 1, 1, tzinfo=UTC)
_NEXT = datetime(2049, 12, 31, tzinfo=UTC)
_ECDSA = ec.ECDSA(hashes.SHA256(), deterministic_signing=True)
FAKE_QE_MRSIGNER = hashlib.sha256(b"atls simulated quoting enclave signer").digest()
_QE_ATTRIBUTES = bytes.fromhex("11000000000000000000000000000000")
_DEFAULT_SGX_SVNS = (7, 7, 2, 2, 3, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0)
_DEFAULT_TEE_TCB_SVN = bytes.fromhex("04010700000000000000000000000000")
_SEPT_VE_DISABLE = (1 << 28).to_bytes(8, "little")
_SGX_TCB_TYPES = (
    ("BIOS", "Early Microcode Update"),
    ("OS/VMM", "SGX Late Microcode Update"),
    ("OS/VMM", "TXT SINIT"),
    ("BIOS", ""),
    ("BIOS", ""),
    ("BIOS", ""),
    ("", ""),
    ("OS/VMM", "SEAMLDR ACM"),
)


def _tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    ln = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(ln)]) + ln + content


def _oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    out = bytearray([40 * arcs[0] + arcs[1]])
    for a in arcs[2:]:
        chunk = [a & 0x7F]
        a >>= 7
        while a:
            chunk.append(0x80 | (a & 0x7F))
            a >>= 7
        out += bytes(reversed(chunk))
    return _tlv(0x06, bytes(out))


def _int(v: int, tag: int = 0x02) -> bytes:
    n = max(1, (v.bit_length() + 8) // 8)
    return _tlv(tag, v.to_bytes(n, "big", signed=True))


def _pair(oid: str, value: bytes) -> bytes:
    return _tlv(0x30, _oid(oid) + value)


def sgx_extension(
    *,
    ppid: bytes,
    tcb_components: Sequence[int],
    pce_svn: int,
    cpu_svn: bytes,
    pce_id: bytes,
    fmspc: bytes,
    sgx_type: int,
    platform: bool,
) -> bytes:
    """DER of the Intel SGX PCK certificate extension."""
    p = _SGX_OID
    tcb = b"".join(_pair(f"{p}.2.{i + 1}", _int(v)) for i, v in enumerate(tcb_components))
    tcb += _pair(f"{p}.2.17", _int(pce_svn)) + _pair(f"{p}.2.18", _tlv(0x04, cpu_svn))
    body = (
        _pair(f"{p}.1", _tlv(0x04, ppid))
        + _pair(f"{p}.2", _tlv(0x30, tcb))
        + _pair(f"{p}.3", _tlv(0x04, pce_id))
        + _pair(f"{p}.4", _tlv(0x04, fmspc))
        + _pair(f"{p}.5", _int(sgx_type, 0x0A))
    )
    if platform:
        conf = b"".join(_pair(f"{p}.7.{i}", _tlv(0x01, b"\x00")) for i in (1, 2, 3))
        body += _pair(f"{p}.6", _tlv(0x04, bytes(16))) + _pair(f"{p}.7", _tlv(0x30, conf))
    return _tlv(0x30, body)


def _key(seed: bytes, label: str) -> ec.EllipticCurvePrivateKey:
    d = int.from_bytes(hashlib.sha512(seed + b"/" + label.encode()).digest(), "big")
    return ec.derive_private_key(d % (_P256_ORDER - 1) + 1, ec.SECP256R1())


def _serial(seed: bytes, label: str) -> int:
    return (
        int.from_bytes(hashlib.sha256(seed + b"/serial/" + label.encode()).digest()[:16], "big") | 1
    )


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, SIMULATED_MARKER),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "intel"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _cert(
    *,
    subject: x509.Name,
    issuer: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    signer: ec.EllipticCurvePrivateKey,
    serial: int,
    ca: bool,
    path_len: int | None = None,
    extra: Sequence[x509.ExtensionType] = (),
    not_before: datetime = _CERT_NOT_BEFORE,
    not_after: datetime = _CERT_NOT_AFTER,
) -> x509.Certificate:
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_len), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                content_commitment=not ca,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    for ext in extra:
        b = b.add_extension(ext, critical=False)
    return b.sign(signer, hashes.SHA256(), ecdsa_deterministic=True)


def _raw_sig(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    r, s = decode_dss_signature(key.sign(data, _ECDSA))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def _ts(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _der(c: x509.Certificate) -> bytes:
    return c.public_bytes(serialization.Encoding.DER)


@dataclass(frozen=True)
class TcbLevelSpec:
    """One TCB level of the fake TCB info (SVNs, status, advisories)."""

    sgx_svns: tuple[int, ...]
    pce_svn: int
    tdx_svns: tuple[int, ...] = tuple(_DEFAULT_TEE_TCB_SVN)
    status: str = "UpToDate"
    advisory_ids: tuple[str, ...] = ()
    tcb_date: str = "2024-03-13T00:00:00Z"


@dataclass
class _Keys:
    root: ec.EllipticCurvePrivateKey
    ca: ec.EllipticCurvePrivateKey
    pck: ec.EllipticCurvePrivateKey
    tcb: ec.EllipticCurvePrivateKey
    att: ec.EllipticCurvePrivateKey
    other_ca: ec.EllipticCurvePrivateKey


_LOCK = threading.Lock()
_KEYS: dict[bytes, _Keys] = {}


def _keys(seed: bytes) -> _Keys:
    with _LOCK:
        k = _KEYS.get(seed)
        if k is None:
            k = _Keys(
                root=_key(seed, "root"),
                ca=_key(seed, "pck-ca"),
                pck=_key(seed, "pck"),
                tcb=_key(seed, "tcb-signing"),
                att=_key(seed, "attestation"),
                other_ca=_key(seed, "unrelated-ca"),
            )
            _KEYS[seed] = k
        return k


def _pem_chain(certs: Sequence[x509.Certificate]) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs) + b"\x00"


class FakeIntel:
    """A simulated Intel SGX PKI and one simulated TDX/SGX platform (see module docstring).

    Platform parameters (FMSPC, PCE-ID, PCK CA kind, TCB component SVNs, PCESVN, QE ISVSVN)
    go into the PCK certificate and QE report; the keys and the root depend on ``seed`` only.
    """

    def __init__(
        self,
        *,
        seed: bytes = b"atls.testing.tdx/v1",
        fmspc: bytes = bytes.fromhex("00806f050000"),
        pce_id: bytes = b"\x00\x00",
        ca: str = "platform",
        sgx_tcb_components: Sequence[int] = _DEFAULT_SGX_SVNS,
        pce_svn: int = 11,
        sgx_type: int = 0,
        qe_svn: int = 8,
        ppid: bytes = bytes(range(16)),
    ) -> None:
        self.seed = seed
        self.fmspc = fmspc
        self.pce_id = pce_id
        self.ca = ca
        self.sgx_tcb_components = tuple(sgx_tcb_components)
        self.pce_svn = pce_svn
        self.sgx_type = sgx_type
        self.qe_svn = qe_svn
        self.ppid = ppid
        self._cache: dict[Any, Any] = {}
        if self.ca not in ("platform", "processor"):
            raise ValueError("ca must be 'platform' or 'processor'")
        if len(self.sgx_tcb_components) != 16 or len(self.fmspc) != 6 or len(self.pce_id) != 2:
            raise ValueError("16 TCB components, a 6-byte FMSPC and a 2-byte PCE-ID")
        k = _keys(self.seed)
        self._k = k
        root_name = _name(ROOT_CN)
        self.root = _cert(
            subject=root_name,
            issuer=root_name,
            key=k.root,
            signer=k.root,
            serial=_serial(self.seed, "root"),
            ca=True,
            path_len=1,
        )
        ca_cn = f"Intel SGX PCK {self.ca.capitalize()} CA"
        self.pck_ca = _cert(
            subject=_name(ca_cn),
            issuer=root_name,
            key=k.ca,
            signer=k.root,
            serial=_serial(self.seed, "pck-ca"),
            ca=True,
            path_len=0,
        )
        ext = sgx_extension(
            ppid=self.ppid,
            tcb_components=self.sgx_tcb_components,
            pce_svn=self.pce_svn,
            cpu_svn=bytes(self.sgx_tcb_components),
            pce_id=self.pce_id,
            fmspc=self.fmspc,
            sgx_type=self.sgx_type,
            platform=self.ca == "platform",
        )
        pck_label = "pck/" + hashlib.sha256(ext).hexdigest()
        self.pck = _cert(
            subject=_name("Intel SGX PCK Certificate"),
            issuer=_name(ca_cn),
            key=k.pck,
            signer=k.ca,
            serial=_serial(self.seed, pck_label),
            ca=False,
            extra=[x509.UnrecognizedExtension(x509.ObjectIdentifier(_SGX_OID), ext)],
        )
        self.tcb_signing = _cert(
            subject=_name("Intel SGX TCB Signing"),
            issuer=root_name,
            key=k.tcb,
            signer=k.root,
            serial=_serial(self.seed, "tcb-signing"),
            ca=False,
        )
        self.root_der = _der(self.root)
        self.pck_ca_der = _der(self.pck_ca)
        self.pck_der = _der(self.pck)
        self.tcb_signing_der = _der(self.tcb_signing)
        self.attestation_public_key = k.att.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )[1:]
        self.pck_chain_pem = _pem_chain([self.pck, self.pck_ca, self.root])

    # -- trust -----------------------------------------------------------------------

    @property
    def anchor_name(self) -> str:
        return f"simulated:{ROOT_CN}"

    def trust_store(self) -> TrustStore:
        """A trust store holding the fake root (``allow_simulated=True``)."""
        return TrustStore.from_certificates([self.root_der], allow_simulated=True)

    # -- QE report and quotes ----------------------------------------------------------

    def _qe_cert_data(self, *, tdx: bool, wrong_report_data: bool) -> bytes:
        key = ("qe", tdx, wrong_report_data)
        hit = self._cache.get(key)
        if hit is not None:
            assert isinstance(hit, bytes)
            return hit
        auth = hashlib.sha256(self.seed + b"/qe-auth").digest()
        report_data = hashlib.sha256(self.attestation_public_key + auth).digest() + bytes(32)
        if wrong_report_data:
            report_data = hashlib.sha256(b"not the attestation key" + auth).digest() + bytes(32)
        w = Writer()
        w.raw(bytes(self.sgx_tcb_components)).u32(0).zeros(12).zeros(16)  # cpusvn..extprodid
        w.raw(_QE_ATTRIBUTES)
        w.raw(hashlib.sha256(self.seed + b"/qe-mrenclave").digest()).zeros(32)
        w.raw(FAKE_QE_MRSIGNER).zeros(32).zeros(64)  # mrsigner, reserved3, config_id
        w.u16(2 if tdx else 1).u16(self.qe_svn).u16(0).zeros(42).zeros(16)
        w.raw(report_data)
        qe_report = w.getvalue()
        assert len(qe_report) == 384
        pem = self.pck_chain_pem
        out = (
            Writer()
            .raw(qe_report)
            .raw(_raw_sig(self._k.pck, qe_report))
            .u16(len(auth))
            .raw(auth)
            .u16(5)
            .u32(len(pem))
            .raw(pem)
            .getvalue()
        )
        self._cache[key] = out
        return out

    def quote(
        self,
        report_data: bytes,
        *,
        version: int = 4,
        body: str | None = None,
        td_attributes: bytes | None = None,
        debug: bool = False,
        sept_ve_disable: bool = True,
        mr_td: bytes = b"\x11" * 48,
        rtmr: Sequence[bytes] = (b"\x21" * 48, b"\x22" * 48, b"\x23" * 48, bytes(48)),
        mr_seam: bytes = b"\x31" * 48,
        mr_signer_seam: bytes = bytes(48),
        seam_attributes: bytes = bytes(8),
        xfam: bytes = bytes.fromhex("e702060000000000"),
        mr_config_id: bytes = bytes(48),
        mr_owner: bytes = bytes(48),
        mr_owner_config: bytes = bytes(48),
        tee_tcb_svn: bytes = _DEFAULT_TEE_TCB_SVN,
        tee_tcb_svn2: bytes | None = None,
        mr_servicetd: bytes = bytes(48),
        user_data: bytes = bytes(20),
        wrong_qe_report_data: bool = False,
        trailing: bytes = b"",
    ) -> bytes:
        """A TDX quote over ``report_data`` (64 bytes). ``version`` 4 (TD 1.0 body) or 5
        (``body="1.5"`` by default, or ``"1.0"``). ``td_attributes`` overrides ``debug`` and
        ``sept_ve_disable``. ``trailing`` is appended after the signature data."""
        if len(report_data) != 64:
            raise ValueError("report_data must be 64 bytes")
        if version not in (4, 5):
            raise ValueError("version must be 4 or 5")
        body = body or ("1.5" if version == 5 else "1.0")
        if body not in ("1.0", "1.5") or (version == 4 and body != "1.0"):
            raise ValueError("body must be '1.0' (v4, v5) or '1.5' (v5)")
        if len(rtmr) != 4:
            raise ValueError("four RTMRs")
        if td_attributes is None:
            v = int.from_bytes(_SEPT_VE_DISABLE, "little") if sept_ve_disable else 0
            td_attributes = (v | (1 if debug else 0)).to_bytes(8, "little")
        b = Writer()
        b.raw(tee_tcb_svn).raw(mr_seam).raw(mr_signer_seam).raw(seam_attributes)
        b.raw(td_attributes).raw(xfam).raw(mr_td).raw(mr_config_id).raw(mr_owner)
        b.raw(mr_owner_config)
        for r in rtmr:
            b.raw(r)
        b.raw(report_data)
        if body == "1.5":
            b.raw(tee_tcb_svn2 if tee_tcb_svn2 is not None else tee_tcb_svn).raw(mr_servicetd)
        body_bytes = b.getvalue()
        expected = 648 if body == "1.5" else 584
        if len(body_bytes) != expected:
            raise ValueError("a TD report field has the wrong length")
        head = (
            Writer()
            .u16(version)
            .u16(2)
            .u32(0x81)
            .u16(0)
            .u16(0)
            .raw(_INTEL_QE_VENDOR_ID)
            .raw(user_data)
            .getvalue()
        )
        if len(head) != 48:
            raise ValueError("user_data must be 20 bytes")
        if version == 5:
            head += Writer().u16(3 if body == "1.5" else 2).u32(len(body_bytes)).getvalue()
        signed = head + body_bytes
        inner = self._qe_cert_data(tdx=True, wrong_report_data=wrong_qe_report_data)
        sig_data = (
            Writer()
            .raw(_raw_sig(self._k.att, signed))
            .raw(self.attestation_public_key)
            .u16(6)
            .u32(len(inner))
            .raw(inner)
            .getvalue()
        )
        return signed + Writer().u32(len(sig_data)).getvalue() + sig_data + trailing

    def sgx_quote(
        self,
        report_data: bytes,
        *,
        mr_enclave: bytes = b"\x41" * 32,
        mr_signer: bytes = b"\x42" * 32,
        isv_prod_id: int = 1,
        isv_svn: int = 1,
        attributes: bytes | None = None,
        debug: bool = False,
        misc_select: int = 0,
        cpu_svn: bytes | None = None,
        wrong_qe_report_data: bool = False,
        trailing: bytes = b"",
    ) -> bytes:
        """An SGX quote v3 over ``report_data`` (64 bytes)."""
        if len(report_data) != 64:
            raise ValueError("report_data must be 64 bytes")
        if attributes is None:
            attributes = (
                bytes([0x05 | (0x02 if debug else 0)])
                + bytes(7)
                + bytes.fromhex("e700000000000000")
            )
        w = Writer()
        w.raw(cpu_svn or bytes(self.sgx_tcb_components)).u32(misc_select).zeros(12).zeros(16)
        w.raw(attributes).raw(mr_enclave).zeros(32).raw(mr_signer).zeros(32).zeros(64)
        w.u16(isv_prod_id).u16(isv_svn).u16(0).zeros(42).zeros(16).raw(report_data)
        body = w.getvalue()
        if len(body) != 384:
            raise ValueError("an enclave report field has the wrong length")
        head = (
            Writer()
            .u16(3)
            .u16(2)
            .u32(0)
            .u16(self.qe_svn)
            .u16(self.pce_svn)
            .raw(_INTEL_QE_VENDOR_ID)
            .zeros(20)
            .getvalue()
        )
        signed = head + body
        inner = self._qe_cert_data(tdx=False, wrong_report_data=wrong_qe_report_data)
        sig_data = (
            Writer()
            .raw(_raw_sig(self._k.att, signed))
            .raw(self.attestation_public_key)
            .raw(inner)
            .getvalue()
        )
        return signed + Writer().u32(len(sig_data)).getvalue() + sig_data + trailing

    # -- collateral ----------------------------------------------------------------------

    def _levels(
        self,
        *,
        tcb_status: str,
        advisory_ids: tuple[str, ...],
        no_matching_level: bool,
        tee_tcb_svn: bytes,
    ) -> list[TcbLevelSpec]:
        comps = tuple(self.sgx_tcb_components)
        if no_matching_level:
            comps = tuple(v + 1 if i == 0 else v for i, v in enumerate(comps))
        tdx_svns = tuple(tee_tcb_svn)
        return [
            TcbLevelSpec(comps, self.pce_svn, tdx_svns, tcb_status, advisory_ids),
            TcbLevelSpec(
                tuple(0 for _ in comps) if not no_matching_level else comps,
                0 if not no_matching_level else self.pce_svn + 1,
                tuple(0 for _ in tdx_svns),
                "OutOfDate",
                ("INTEL-SA-00000",),
                "2018-01-04T00:00:00Z",
            ),
        ]

    def tcb_info_json(
        self,
        *,
        tee: str = "tdx",
        issue_date: datetime = _ISSUE,
        next_update: datetime = _NEXT,
        tcb_levels: Sequence[TcbLevelSpec] | None = None,
        tcb_status: str = "UpToDate",
        advisory_ids: Sequence[str] = (),
        no_matching_level: bool = False,
        module_tcb_status: str = "UpToDate",
        tee_tcb_svn: bytes = _DEFAULT_TEE_TCB_SVN,
        fmspc: bytes | None = None,
        tcb_evaluation_data_number: int = 17,
    ) -> bytes:
        """The exact bytes of a signed-format ``tcbInfo`` object (TDX or SGX, v3)."""
        tdx = tee == "tdx"
        levels = (
            list(tcb_levels)
            if tcb_levels is not None
            else self._levels(
                tcb_status=tcb_status,
                advisory_ids=tuple(advisory_ids),
                no_matching_level=no_matching_level,
                tee_tcb_svn=tee_tcb_svn,
            )
        )

        def comps(svns: Sequence[int], sgx: bool) -> list[dict[str, Any]]:
            out: list[dict[str, Any]] = []
            for i, s in enumerate(svns):
                c: dict[str, Any] = {"svn": s}
                if sgx and i < len(_SGX_TCB_TYPES):
                    cat, typ = _SGX_TCB_TYPES[i]
                    if cat:
                        c["category"] = cat
                    if typ:
                        c["type"] = typ
                out.append(c)
            return out

        info: dict[str, Any] = {
            "id": "TDX" if tdx else "SGX",
            "version": 3,
            "issueDate": _ts(issue_date),
            "nextUpdate": _ts(next_update),
            "fmspc": (fmspc or self.fmspc).hex().upper(),
            "pceId": self.pce_id.hex().upper(),
            "tcbType": 0,
            "tcbEvaluationDataNumber": tcb_evaluation_data_number,
        }
        if tdx:
            zero = {
                "mrsigner": "00" * 48,
                "attributes": "0000000000000000",
                "attributesMask": "FFFFFFFFFFFFFFFF",
            }
            info["tdxModule"] = zero
            info["tdxModuleIdentities"] = [
                {
                    "id": f"TDX_{tee_tcb_svn[1]:02X}" if tee_tcb_svn[1] else "TDX_01",
                    **zero,
                    "tcbLevels": [
                        {
                            "tcb": {"isvsvn": tee_tcb_svn[0]},
                            "tcbDate": "2024-03-13T00:00:00Z",
                            "tcbStatus": module_tcb_status,
                        },
                        {
                            "tcb": {"isvsvn": 0},
                            "tcbDate": "2018-01-04T00:00:00Z",
                            "tcbStatus": "OutOfDate",
                        },
                    ],
                }
            ]
        info["tcbLevels"] = []
        for lv in levels:
            tcb: dict[str, Any] = {
                "sgxtcbcomponents": comps(lv.sgx_svns, True),
                "pcesvn": lv.pce_svn,
            }
            if tdx:
                tcb["tdxtcbcomponents"] = comps(lv.tdx_svns, False)
            entry: dict[str, Any] = {"tcb": tcb, "tcbDate": lv.tcb_date, "tcbStatus": lv.status}
            if lv.advisory_ids:
                entry["advisoryIDs"] = list(lv.advisory_ids)
            info["tcbLevels"].append(entry)
        return json.dumps(info, separators=(",", ":")).encode()

    def qe_identity_json(
        self,
        *,
        tee: str = "tdx",
        issue_date: datetime = _ISSUE,
        next_update: datetime = _NEXT,
        qe_tcb_status: str = "UpToDate",
        qe_advisory_ids: Sequence[str] = (),
        mrsigner: bytes = FAKE_QE_MRSIGNER,
    ) -> bytes:
        """The exact bytes of a signed-format ``enclaveIdentity`` object."""
        top: dict[str, Any] = {
            "tcb": {"isvsvn": self.qe_svn},
            "tcbDate": "2024-03-13T00:00:00Z",
            "tcbStatus": qe_tcb_status,
        }
        if qe_advisory_ids:
            top["advisoryIDs"] = list(qe_advisory_ids)
        ident = {
            "id": "TD_QE" if tee == "tdx" else "QE",
            "version": 2,
            "issueDate": _ts(issue_date),
            "nextUpdate": _ts(next_update),
            "tcbEvaluationDataNumber": 17,
            "miscselect": "00000000",
            "miscselectMask": "FFFFFFFF",
            "attributes": "11000000000000000000000000000000",
            "attributesMask": "FBFFFFFFFFFFFFFF0000000000000000",
            "mrsigner": mrsigner.hex().upper(),
            "isvprodid": 2 if tee == "tdx" else 1,
            "tcbLevels": [
                top,
                {"tcb": {"isvsvn": 0}, "tcbDate": "2018-01-04T00:00:00Z", "tcbStatus": "OutOfDate"},
            ],
        }
        return json.dumps(ident, separators=(",", ":")).encode()

    def crl(
        self,
        which: str,
        *,
        this_update: datetime = _ISSUE,
        next_update: datetime = _NEXT,
        revoked: Sequence[int] = (),
        wrong_issuer: bool = False,
    ) -> bytes:
        """A DER CRL: ``which`` = ``"root"`` (root CA CRL) or ``"pck"`` (PCK CA CRL).
        ``wrong_issuer`` signs it by an unrelated CA of the same name."""
        k = self._k
        issuer = self.root.subject if which == "root" else self.pck_ca.subject
        signer = k.root if which == "root" else k.ca
        if wrong_issuer:
            signer = k.other_ca
        b = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(issuer)
            .last_update(this_update)
            .next_update(next_update)
            .add_extension(x509.CRLNumber(1), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()),
                critical=False,
            )
        )
        for serial in revoked:
            b = b.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(serial)
                .revocation_date(this_update)
                .build()
            )
        crl = b.sign(signer, hashes.SHA256(), ecdsa_deterministic=True)
        return crl.public_bytes(serialization.Encoding.DER)

    def collateral(
        self,
        *,
        tee: str = "tdx",
        issue_date: datetime = _ISSUE,
        next_update: datetime = _NEXT,
        expired: bool = False,
        crl_this_update: datetime = _ISSUE,
        crl_next_update: datetime = _NEXT,
        tcb_levels: Sequence[TcbLevelSpec] | None = None,
        tcb_status: str = "UpToDate",
        advisory_ids: Sequence[str] = (),
        no_matching_level: bool = False,
        module_tcb_status: str = "UpToDate",
        tee_tcb_svn: bytes = _DEFAULT_TEE_TCB_SVN,
        qe_tcb_status: str = "UpToDate",
        qe_advisory_ids: Sequence[str] = (),
        qe_mrsigner: bytes = FAKE_QE_MRSIGNER,
        revoke_pck: bool = False,
        revoke_pck_ca: bool = False,
        wrong_fmspc: bool = False,
        wrong_crl_issuer: bool = False,
        tamper_tcb_info: bool = False,
        include_root_crl: bool = True,
        include_pck_crl: bool = True,
        issuer_chains: bool = True,
    ) -> Collateral:
        """Collateral for this platform. ``expired=True`` moves the TCB info and QE identity
        window to January 2023 (CRLs stay current); see the module docstring for the rest."""
        knobs = (
            tee,
            issue_date,
            next_update,
            expired,
            crl_this_update,
            crl_next_update,
            tuple(tcb_levels) if tcb_levels is not None else None,
            tcb_status,
            tuple(advisory_ids),
            no_matching_level,
            module_tcb_status,
            tee_tcb_svn,
            qe_tcb_status,
            tuple(qe_advisory_ids),
            qe_mrsigner,
            revoke_pck,
            revoke_pck_ca,
            wrong_fmspc,
            wrong_crl_issuer,
            tamper_tcb_info,
            include_root_crl,
            include_pck_crl,
            issuer_chains,
        )
        key = ("collateral", knobs)
        hit = self._cache.get(key)
        if hit is not None:
            assert isinstance(hit, Collateral)
            return hit
        if expired:
            issue_date = datetime(2023, 1, 1, tzinfo=UTC)
            next_update = issue_date + timedelta(days=30)
        tcb_body = self.tcb_info_json(
            tee=tee,
            issue_date=issue_date,
            next_update=next_update,
            tcb_levels=tcb_levels,
            tcb_status=tcb_status,
            advisory_ids=advisory_ids,
            no_matching_level=no_matching_level,
            module_tcb_status=module_tcb_status,
            tee_tcb_svn=tee_tcb_svn,
            fmspc=bytes.fromhex("ffffffffffff") if wrong_fmspc else None,
        )
        tcb_sig = _raw_sig(self._k.tcb, tcb_body)
        if tamper_tcb_info:
            tcb_body = tcb_body.replace(b'"tcbType":0', b'"tcbType":1')
        qe_body = self.qe_identity_json(
            tee=tee,
            issue_date=issue_date,
            next_update=next_update,
            qe_tcb_status=qe_tcb_status,
            qe_advisory_ids=qe_advisory_ids,
            mrsigner=qe_mrsigner,
        )
        chain = (self.tcb_signing_der, self.root_der) if issuer_chains else ()
        docs = (
            Document(f"{tee}-tcb-info", tcb_body, tcb_sig, chain),
            Document(f"{tee}-qe-identity", qe_body, _raw_sig(self._k.tcb, qe_body), chain),
        )
        crls = []
        if include_root_crl:
            crls.append(
                self.crl(
                    "root",
                    this_update=crl_this_update,
                    next_update=crl_next_update,
                    revoked=[self.pck_ca.serial_number] if revoke_pck_ca else [],
                )
            )
        if include_pck_crl:
            crls.append(
                self.crl(
                    "pck",
                    this_update=crl_this_update,
                    next_update=crl_next_update,
                    revoked=[self.pck.serial_number] if revoke_pck else [],
                    wrong_issuer=wrong_crl_issuer,
                )
            )
        certs = (self.pck_ca_der,) if issuer_chains else (self.tcb_signing_der, self.pck_ca_der)
        out = Collateral(certificates=certs, crls=tuple(crls), documents=docs)
        self._cache[key] = out
        return out

    def signed_document(self, kind: str, body: bytes, *, issuer_chain: bool = True) -> Document:
        """``body`` signed by the fake TCB signing key as a Document of ``kind`` (to build
        collateral the knobs do not cover, including well-signed malformed JSON)."""
        chain = (self.tcb_signing_der, self.root_der) if issuer_chain else ()
        return Document(kind, body, _raw_sig(self._k.tcb, body), chain)

    def dcap_qvl_collateral_json(self, **knobs: Any) -> str:
        """:meth:`collateral` (same knobs) in dcap-qvl's ``QuoteCollateralV3`` JSON form."""
        from atls.collateral.intel import to_dcap_qvl_json

        knobs.setdefault("issuer_chains", True)
        c = self.collateral(**knobs)
        tee = knobs.get("tee", "tdx")
        (tcb,) = c.documents_of(f"{tee}-tcb-info")
        (qe,) = c.documents_of(f"{tee}-qe-identity")
        root_crl, pck_crl = c.crls
        return to_dcap_qvl_json(
            tcb_info=tcb,
            qe_identity=qe,
            root_ca_crl=root_crl,
            pck_crl=pck_crl,
            pck_crl_issuer_chain=(self.pck_ca_der, self.root_der),
        )
