"""A simulated TPM 2.0 that signs real-format quotes, a fake AK certificate authority, and a
helper that runs a real ``swtpm`` for tests.

* :class:`FakeTpmCa` - a simulated AK root (ECDSA P-256, self-signed; subject CN
  :data:`ROOT_CN`, O = the simulated marker, OU = ``tpm``) and an intermediate "AK CA" that
  issues AK certificates (:meth:`FakeTpmCa.issue_ak_cert`) for any AK public key - a fake
  TPM's or a real swtpm's (what a privacy CA does after credential activation). Also CRLs.
* :class:`FakeTpm` - a software TPM: an AK (ECC P-256/ECDSA-SHA256 by default, or
  RSA-2048 RSASSA/RSAPSS-SHA256), PCR banks sha1/sha256/sha384 (PCR 17-22 start at all-ones
  as on a PC Client TPM), a TCG crypto-agile event log of what it measured
  (:meth:`FakeTpm.measure`), an IMA list (:meth:`FakeTpm.ima_measure`), and
  :meth:`FakeTpm.quote` / :meth:`FakeTpm.bundle` producing TPMS_ATTEST + TPMT_SIGNATURE
  and ``tpm-quote-bundle`` evidence. It also satisfies the attester interface
  (``format_name``, ``attest(report_data)``, ``collateral()``).
* :class:`Swtpm` / :func:`swtpm_fixture` - start ``swtpm socket --tpm2`` on loopback with a
  free port pair and a temporary state directory; stop it by PID.

Deterministic: the CA keys, ECC AKs and every ECDSA signature (RFC 6979) derive from
``seed``, so two processes with the same seed agree on the simulated root and on an ECC AK's
Name. RSA AKs are generated once per process (cached), so their Names differ across
processes.

Knobs of :meth:`FakeTpm.bundle` for negative cases: ``wrong_signer``, ``magic``,
``attest_type``, ``extra_data``, ``qualified_signer``, ``reported_pcrs`` (values reported
instead of the quoted ones), ``omit_pcrs``, ``extra_pcrs``, ``signature_hash``,
``ak_certs``, ``ak_parents``, ``event_log``, ``ima_log``. Knobs of :class:`FakeTpm`:
``attributes``, ``name_alg``, ``scheme``, ``parents`` (Names of ancestor keys: the AK is then
a child key, as under an SRK, instead of a primary of the owner hierarchy). Knobs of
:meth:`FakeTpmCa.issue_ak_cert`: ``expired``, ``ca``, ``key_usage``, ``critical_unknown``,
``issuer`` (``"ca"``, ``"root"`` or ``"rogue"``).

Nothing here is trusted unless a trust store explicitly allows simulated roots.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from atls import binding
from atls.collateral._bundle import Collateral
from atls.evidence.eventlog import (
    ALG_IDS,
    ImaEntry,
    SpecIdEvent,
    TcgEvent,
    TcgLog,
    encode_ima_binary,
    encode_tcg_log,
    hash_bank,
    ima_template_data,
)
from atls.evidence.tpm import (
    ALG_ECC,
    ALG_ECDSA,
    ALG_NULL,
    ALG_RSA,
    ALG_RSAPSS,
    ALG_RSASSA,
    ALG_SHA256,
    ATTEST_QUOTE,
    TPM_GENERATED_VALUE,
    ClockInfo,
    PcrSelection,
    TpmsAttest,
    TpmtPublic,
    TpmtSignature,
    bundle_from_parts,
    encode_attest,
    encode_public,
    encode_signature,
    hash_alg,
    hash_name,
    hash_size,
)
from atls.trust import TrustStore
from atls.trust._store import SIMULATED_MARKER

__all__ = [
    "DEFAULT_AT",
    "DEFAULT_ATTRIBUTES",
    "DEFAULT_SEED",
    "ROOT_CN",
    "FakeTpm",
    "FakeTpmCa",
    "Swtpm",
    "swtpm_fixture",
    "swtpm_unavailable_reason",
    "tpm2_pytss_unavailable_reason",
]

#: A verification time inside every default validity window.
DEFAULT_AT = datetime(2025, 6, 1, tzinfo=UTC)
DEFAULT_SEED = b"atls.testing.tpm/v1"
ROOT_CN = "atls simulated TPM AK Root CA"
CA_CN = "atls simulated TPM AK CA"
#: fixedTPM | fixedParent | sensitiveDataOrigin | userWithAuth | restricted | sign (0x50072)
DEFAULT_ATTRIBUTES = 0x00050072
_NOT_BEFORE = datetime(2023, 1, 1, tzinfo=UTC)
_NOT_AFTER = datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC)
_AK_NOT_BEFORE = datetime(2024, 1, 1, tzinfo=UTC)
_EXPIRED = (datetime(2020, 1, 1, tzinfo=UTC), datetime(2024, 1, 1, tzinfo=UTC))
_P256_ORDER = int("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", 16)
_OWNER_HIERARCHY = (0x40000001).to_bytes(4, "big")
_SIGN = ec.ECDSA(hashes.SHA256(), deterministic_signing=True)
_EV_NO_ACTION = 0x3


def _ec_key(seed: bytes, label: str) -> ec.EllipticCurvePrivateKey:
    d = int.from_bytes(hashlib.sha512(seed + b"/" + label.encode()).digest(), "big")
    return ec.derive_private_key(d % (_P256_ORDER - 1) + 1, ec.SECP256R1())


def _serial(seed: bytes, label: str) -> int:
    return int.from_bytes(hashlib.sha256(seed + b"/serial/" + label.encode()).digest()[:16], "big")


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, SIMULATED_MARKER),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "tpm"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _ca_cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    serial: int,
    path_length: int | None,
) -> x509.Certificate:
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(_NOT_BEFORE)
        .not_valid_after(_NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(issuer_key, hashes.SHA256(), ecdsa_deterministic=True)
    )


class FakeTpmCa:
    """A simulated AK certificate authority: root -> AK CA -> AK certificates."""

    def __init__(self, seed: bytes = DEFAULT_SEED) -> None:
        self.seed = seed
        self.root_key = _ec_key(seed, "root")
        self.ca_key = _ec_key(seed, "ak-ca")
        self.rogue_key = _ec_key(seed, "rogue-ca")
        self.root = _ca_cert(
            ROOT_CN, self.root_key, ROOT_CN, self.root_key, _serial(seed, "root"), None
        )
        self.ca = _ca_cert(CA_CN, self.ca_key, ROOT_CN, self.root_key, _serial(seed, "ca"), 0)
        # same name as the AK CA, another key: a chain through it must not verify
        self.rogue = _ca_cert(
            CA_CN, self.rogue_key, CA_CN, self.rogue_key, _serial(seed, "rogue"), 0
        )

    @property
    def root_der(self) -> bytes:
        return self.root.public_bytes(serialization.Encoding.DER)

    @property
    def ca_der(self) -> bytes:
        return self.ca.public_bytes(serialization.Encoding.DER)

    @property
    def anchor_name(self) -> str:
        return f"simulated:{ROOT_CN}"

    def trust_store(self) -> TrustStore:
        """A trust store (``allow_simulated=True``) holding only the simulated AK root."""
        return TrustStore.from_certificates([self.root_der], allow_simulated=True)

    def issue_ak_cert(
        self,
        ak_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey,
        *,
        label: str = "ak",
        expired: bool = False,
        ca: bool = False,
        key_usage: bool = True,
        critical_unknown: bool = False,
        issuer: Literal["ca", "root", "rogue"] = "ca",
    ) -> bytes:
        """An AK certificate (DER) for ``ak_key``, TCG-style: empty subject, critical SAN."""
        signer, issuer_cert = {
            "ca": (self.ca_key, self.ca),
            "root": (self.root_key, self.root),
            "rogue": (self.rogue_key, self.rogue),
        }[issuer]
        nb, na = _EXPIRED if expired else (_AK_NOT_BEFORE, _NOT_AFTER)
        serial = _serial(self.seed, f"ak-cert/{label}/{_spki_hex(ak_key)}/{expired}/{issuer}")
        b = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(issuer_cert.subject)
            .public_key(ak_key)
            .serial_number(serial)
            .not_valid_before(nb)
            .not_valid_after(na)
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DirectoryName(
                            x509.Name(
                                [x509.NameAttribute(NameOID.COMMON_NAME, f"atls fake TPM {label}")]
                            )
                        )
                    ]
                ),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage([x509.ObjectIdentifier("2.23.133.8.3")]), critical=False
            )
        )
        if key_usage:
            b = b.add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
        if critical_unknown:
            b = b.add_extension(
                x509.UnrecognizedExtension(
                    x509.ObjectIdentifier("1.3.6.1.4.1.55555.1"), b"\x05\x00"
                ),
                critical=True,
            )
        cert = b.sign(signer, hashes.SHA256(), ecdsa_deterministic=True)
        return cert.public_bytes(serialization.Encoding.DER)

    def crl(
        self,
        revoked: Sequence[int] = (),
        *,
        issuer: Literal["ca", "root"] = "ca",
        expired: bool = False,
        this_update: datetime | None = None,
    ) -> bytes:
        """A CRL (DER) of the AK CA (or the root) revoking ``revoked`` serial numbers."""
        key, cert = (self.ca_key, self.ca) if issuer == "ca" else (self.root_key, self.root)
        this = this_update or datetime(2024, 1, 1, tzinfo=UTC)
        nxt = datetime(2024, 6, 1, tzinfo=UTC) if expired else _NOT_AFTER
        b = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(cert.subject)
            .last_update(this)
            .next_update(nxt)
        )
        for s in revoked:
            b = b.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(s).revocation_date(this).build()
            )
        return b.sign(key, hashes.SHA256(), ecdsa_deterministic=True).public_bytes(
            serialization.Encoding.DER
        )

    def collateral(self) -> Collateral:
        """The AK CA certificate as collateral (an alternative to carrying it in the bundle)."""
        return Collateral(certificates=(self.ca_der,))


def _spki_hex(key: Any) -> str:
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()[:16]


_RSA_CACHE: dict[tuple[bytes, str], rsa.RSAPrivateKey] = {}
_RSA_LOCK = threading.Lock()


def _rsa_key(seed: bytes, label: str) -> rsa.RSAPrivateKey:
    with _RSA_LOCK:
        key = _RSA_CACHE.get((seed, label))
        if key is None:
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            _RSA_CACHE[(seed, label)] = key
        return key


_BANKS = ("sha1", "sha256", "sha384")


class FakeTpm:
    """A software TPM (see the module docstring). Thread-safe."""

    format_name = "tpm-quote-bundle"

    def __init__(
        self,
        *,
        seed: bytes = DEFAULT_SEED,
        key: Literal["ecc", "rsa"] = "ecc",
        scheme: Literal["ecdsa", "rsassa", "rsapss"] | None = None,
        attributes: int = DEFAULT_ATTRIBUTES,
        name_alg: str = "sha256",
        label: str = "ak",
        ca: FakeTpmCa | None = None,
        pcrs: Sequence[int] = tuple(range(8)),
        bank: str = "sha256",
        ak_certificate: bool = True,
        auth_policy: bytes = b"",
        parents: Sequence[bytes] = (),
    ) -> None:
        self.seed = seed
        self.ca = ca
        self.default_pcrs = tuple(pcrs)
        self.default_bank = bank
        self._lock = threading.Lock()
        self._clock = 1_000_000
        self.events: list[TcgEvent] = []
        self.ima_entries: list[ImaEntry] = []
        self.pcrs: dict[str, list[bytes]] = {
            b: [(b"\xff" if 17 <= i <= 22 else b"\x00") * hash_size(hash_alg(b)) for i in range(24)]
            for b in _BANKS
        }
        nalg = hash_alg(name_alg)
        if scheme is not None and (key == "ecc") != (scheme == "ecdsa"):
            raise ValueError(f"scheme {scheme!r} does not suit a {key} key")
        if key == "ecc":
            self.key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = _ec_key(seed, f"ak/{label}")
            pub = self.key.public_key()
            assert isinstance(pub, ec.EllipticCurvePublicKey)
            nums = pub.public_numbers()
            self.public = TpmtPublic(
                ALG_ECC,
                nalg,
                attributes,
                auth_policy,
                ALG_NULL,
                ALG_ECDSA,
                ALG_SHA256,
                curve=0x0003,
                ecc_x=nums.x.to_bytes(32, "big"),
                ecc_y=nums.y.to_bytes(32, "big"),
            )
        else:
            self.key = _rsa_key(seed, f"ak/{label}")
            rpub = self.key.public_key()
            assert isinstance(rpub, rsa.RSAPublicKey)
            sch = ALG_RSAPSS if scheme == "rsapss" else ALG_RSASSA
            self.public = TpmtPublic(
                ALG_RSA,
                nalg,
                attributes,
                auth_policy,
                ALG_NULL,
                sch,
                ALG_SHA256,
                rsa_bits=2048,
                rsa_exponent=0,
                unique=rpub.public_numbers().n.to_bytes(256, "big"),
            )
        self.tpmt_public = encode_public(self.public, tpm2b_framed=False)
        self.ak_public = encode_public(self.public, tpm2b_framed=True)
        self.ak_name = nalg.to_bytes(2, "big") + hashlib.new(name_alg, self.tpmt_public).digest()
        # Qualified Name: a primary of the owner hierarchy, or a child of ``parents``
        self.parents = tuple(parents)
        qn = _OWNER_HIERARCHY
        for n in (*self.parents, self.ak_name):
            qn = n[:2] + hashlib.new(hash_name(int.from_bytes(n[:2], "big")), qn + n).digest()
        self.qualified_name = qn
        self.ak_certs: tuple[bytes, ...] = ()
        if ca is not None and ak_certificate:
            self.ak_certs = (ca.issue_ak_cert(self.key.public_key(), label=label), ca.ca_der)
        self.wrong_key = (
            _ec_key(seed, f"wrong/{label}") if key == "ecc" else _rsa_key(seed, f"wrong/{label}")
        )

    # --- PCRs and logs -------------------------------------------------------------------

    def extend(self, index: int, digests: Mapping[str, bytes]) -> None:
        """PCR_Extend: ``PCR[bank][index] = H(PCR || digest)`` for each given bank."""
        with self._lock:
            for bank, d in digests.items():
                self.pcrs[bank][index] = hash_bank(bank, self.pcrs[bank][index] + d)

    def measure(self, index: int, data: bytes, event_type: int = 0xD) -> TcgEvent:
        """Measure ``data`` into PCR ``index`` in every bank and log it (default EV_IPL)."""
        event = TcgEvent.measure(index, event_type, data, _BANKS)
        self.log_event(event)
        return event

    def log_event(self, event: TcgEvent, *, extend: bool = True) -> None:
        """Append ``event`` to the log and (unless ``extend=False``) extend its digests."""
        if extend and event.event_type != _EV_NO_ACTION:
            self.extend(event.index, {b: event.digest(b) or b"" for b in event.banks})
        with self._lock:
            self.events.append(event)

    def replay_log(self, events: Sequence[TcgEvent]) -> None:
        """Extend the PCRs as a platform that produced ``events`` would have (a StartupLocality
        event sets PCR0's initial value, as TPM2_Startup at that locality does). The events
        are not added to :meth:`event_log`: pass the original log bytes to :meth:`bundle`."""
        for e in events:
            if e.event_type == _EV_NO_ACTION:
                if e.index == 0 and e.data[:16] == b"StartupLocality\x00" and len(e.data) == 17:
                    with self._lock:
                        for b in _BANKS:
                            size = len(self.pcrs[b][0])
                            self.pcrs[b][0] = bytes(size - 1) + e.data[16:]
                continue
            self.extend(e.index, {b: d for b in e.banks if b in _BANKS and (d := e.digest(b))})

    def event_log(self) -> bytes:
        """The TCG crypto-agile log of everything measured so far."""
        spec = SpecIdEvent(0, 0, 2, 0, 2, tuple((ALG_IDS[b], len(self.pcrs[b][0])) for b in _BANKS))
        return encode_tcg_log(TcgLog(spec, tuple(self.events)))

    def ima_measure(self, path: str, content: bytes, *, pcr: int = 10) -> ImaEntry:
        """An ``ima-ng`` measurement of a file: logs it and extends ``pcr`` in every bank."""
        td = ima_template_data(
            "ima-ng", algorithm="sha256", file_hash=hashlib.sha256(content).digest(), path=path
        )
        entry = ImaEntry(
            pcr,
            hashlib.sha1(td).digest(),  # noqa: S324 - the IMA template hash is SHA-1
            "ima-ng",
            td,
            "sha256",
            hashlib.sha256(content).digest(),
            path,
        )
        self.extend(pcr, {b: hash_bank(b, td) for b in _BANKS})
        with self._lock:
            self.ima_entries.append(entry)
        return entry

    def ima_log(self) -> bytes:
        return encode_ima_binary(self.ima_entries)

    # --- quotes --------------------------------------------------------------------------

    def _sign(self, message: bytes, hash_name: str, *, wrong: bool) -> TpmtSignature:
        key = self.wrong_key if wrong else self.key
        h = {
            "sha1": hashes.SHA1(),  # noqa: S303 - TPMs sign with SHA-1 too
            "sha256": hashes.SHA256(),
            "sha384": hashes.SHA384(),
            "sha512": hashes.SHA512(),
        }[hash_name]
        alg = hash_alg(hash_name)
        if isinstance(key, ec.EllipticCurvePrivateKey):
            der = key.sign(message, ec.ECDSA(h, deterministic_signing=True))
            r, s = decode_dss_signature(der)
            return TpmtSignature(ALG_ECDSA, alg, r=r.to_bytes(32, "big"), s=s.to_bytes(32, "big"))
        if self.public.scheme == ALG_RSAPSS:
            sig = key.sign(message, padding.PSS(padding.MGF1(h), h.digest_size), h)
            return TpmtSignature(ALG_RSAPSS, alg, signature=sig)
        return TpmtSignature(ALG_RSASSA, alg, signature=key.sign(message, padding.PKCS1v15(), h))

    def quote(
        self,
        extra_data: bytes,
        *,
        pcrs: Sequence[int] | None = None,
        banks: Sequence[str] | None = None,
        magic: int = TPM_GENERATED_VALUE,
        attest_type: int = ATTEST_QUOTE,
        qualified_signer: bytes | None = None,
        signature_hash: str | None = None,
        wrong_signer: bool = False,
    ) -> tuple[bytes, bytes, dict[str, dict[int, bytes]]]:
        """TPM2_Quote: (TPMS_ATTEST, TPMT_SIGNATURE, the quoted PCR values)."""
        sel_pcrs = tuple(sorted(self.default_pcrs if pcrs is None else pcrs))
        sel_banks = tuple(banks or (self.default_bank,))
        hname = signature_hash or "sha256"
        with self._lock:
            values = {b: {i: self.pcrs[b][i] for i in sel_pcrs} for b in sel_banks}
            self._clock += 1000
            clock = self._clock
        h = hashlib.new(hname)
        for b in sel_banks:
            for i in sel_pcrs:
                h.update(values[b][i])
        attest = TpmsAttest(
            attest_type,
            self.qualified_name if qualified_signer is None else qualified_signer,
            extra_data,
            ClockInfo(clock, 1, 0, True),
            0x2023_0415_0001_0000,
            tuple(PcrSelection(hash_alg(b), 3, sel_pcrs) for b in sel_banks),
            h.digest(),
        )
        raw = encode_attest(attest, magic=magic)
        sig = self._sign(raw, hname, wrong=wrong_signer)
        return raw, encode_signature(sig), values

    def bundle(
        self,
        extra_data: bytes,
        *,
        pcrs: Sequence[int] | None = None,
        banks: Sequence[str] | None = None,
        ak_certs: Sequence[bytes] | None = None,
        event_log: bytes | Literal[True] | None = True,
        ima_log: bytes | Literal[True] | None = True,
        reported_pcrs: Mapping[str, Mapping[int, bytes]] | None = None,
        omit_pcrs: Sequence[tuple[str, int]] = (),
        extra_pcrs: Mapping[str, Mapping[int, bytes]] | None = None,
        ak_public: bytes | None = None,
        ak_parents: Sequence[bytes] | None = None,
        **quote_knobs: Any,
    ) -> bytes:
        """A ``tpm-quote-bundle`` over ``extra_data`` (qualifying data, used as is).

        ``event_log``/``ima_log``: True attaches what was measured (nothing if nothing was),
        None attaches nothing, bytes attach those bytes. ``ak_certs`` defaults to the chain
        issued by ``ca``."""
        attest, sig, values = self.quote(extra_data, pcrs=pcrs, banks=banks, **quote_knobs)
        shown: dict[str, dict[int, bytes]] = {b: dict(v) for b, v in values.items()}
        for b, vals in (reported_pcrs or {}).items():
            shown.setdefault(b, {}).update(vals)
        for b, i in omit_pcrs:
            shown[b].pop(i, None)
        for b, vals in (extra_pcrs or {}).items():
            shown.setdefault(b, {}).update(vals)
        tcg = self.event_log() if event_log is True and self.events else event_log
        ima = self.ima_log() if ima_log is True and self.ima_entries else ima_log
        return bundle_from_parts(
            attest=attest,
            signature=sig,
            ak_public=self.ak_public if ak_public is None else ak_public,
            pcrs={b: v for b, v in shown.items() if v},
            ak_certs=self.ak_certs if ak_certs is None else ak_certs,
            event_log=tcg if isinstance(tcg, bytes) else None,
            ima_log=ima if isinstance(ima, bytes) else None,
            ak_parents=self.parents if ak_parents is None else ak_parents,
        )

    # --- the attester interface ----------------------------------------------------------

    def attest(self, report_data: bytes) -> bytes:
        """Evidence over ``report_data`` reduced to the AK nameAlg's digest size."""
        qd = binding.tpm_qualifying_data(report_data, hash_size(self.public.name_alg))
        return self.bundle(qd)

    def collateral(self) -> Collateral:
        return Collateral()

    def trust_store(self) -> TrustStore:
        if self.ca is None:
            raise ValueError("this FakeTpm has no CA; pin its AK Name instead")
        return self.ca.trust_store()


# --- swtpm ---------------------------------------------------------------------------------


def swtpm_unavailable_reason() -> str | None:
    """Why a real swtpm cannot be started here (None if it can)."""
    if shutil.which("swtpm") is None:
        return "swtpm is not installed (Debian: apt-get install swtpm swtpm-tools)"
    return None


def tpm2_pytss_unavailable_reason() -> str | None:
    """Why tpm2-pytss cannot be used here (None if it can)."""
    try:
        import tpm2_pytss  # noqa: F401
    except ImportError as e:
        return f"tpm2-pytss is not importable ({e}); pip install tpm2-pytss (needs libtss2-dev)"
    return None


def _free_port_pair() -> int:
    for _ in range(50):
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            port = int(a.getsockname()[1])
            if port >= 65535:
                continue
            with socket.socket() as b:
                try:
                    b.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
            return port
    raise OSError("no free pair of loopback ports")


class Swtpm:
    """A running ``swtpm socket --tpm2`` on 127.0.0.1 (server port P, control port P+1).

    Use as a context manager or call :meth:`stop`; the process is stopped by its PID and
    the temporary state directory removed. ``tcti`` is the TCTI string for tpm2-tss /
    tpm2-pytss / tpm2-tools (``swtpm:host=127.0.0.1,port=P``)."""

    def __init__(
        self, process: subprocess.Popen[bytes], port: int, state: Path, owns_state: bool
    ) -> None:
        self.process = process
        self.port = port
        self.ctrl_port = port + 1
        self.state_dir = state
        self._owns_state = owns_state

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def tcti(self) -> str:
        return f"swtpm:host=127.0.0.1,port={self.port}"

    @classmethod
    def start(cls, *, state_dir: Path | None = None, timeout: float = 10.0) -> Swtpm:
        reason = swtpm_unavailable_reason()
        if reason is not None:
            raise RuntimeError(reason)
        binary = shutil.which("swtpm")
        assert binary is not None
        owns = state_dir is None
        state = Path(tempfile.mkdtemp(prefix="atls-swtpm-")) if state_dir is None else state_dir
        last = ""
        for _ in range(5):
            port = _free_port_pair()
            cmd = [
                binary, "socket", "--tpm2",
                "--server", f"type=tcp,port={port},bindaddr=127.0.0.1",
                "--ctrl", f"type=tcp,port={port + 1},bindaddr=127.0.0.1",
                "--tpmstate", f"dir={state}",
                "--flags", "not-need-init,startup-clear",
            ]  # fmt: skip
            proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    last = (proc.stderr.read() if proc.stderr else b"").decode(errors="replace")
                    break
                try:
                    with socket.create_connection(("127.0.0.1", port + 1), timeout=0.2):
                        return cls(proc, port, state, owns)
                except OSError:
                    time.sleep(0.02)
            else:
                _stop(proc)
                last = "did not start listening in time"
        if owns:
            shutil.rmtree(state, ignore_errors=True)
        raise RuntimeError(f"swtpm failed to start: {last.strip()}")

    def extend(self, index: int, digests: Mapping[str, bytes]) -> None:
        """TPM2_PCR_Extend of PCR ``index`` with ``{bank: digest}`` (needs tpm2-pytss)."""
        from tpm2_pytss import ESAPI
        from tpm2_pytss.constants import ESYS_TR, TPM2_ALG
        from tpm2_pytss.types import TPML_DIGEST_VALUES, TPMT_HA, TPMU_HA

        values = TPML_DIGEST_VALUES(
            [
                TPMT_HA(hashAlg=getattr(TPM2_ALG, b.upper()), digest=TPMU_HA(**{b: d}))
                for b, d in digests.items()
            ]
        )
        esapi = ESAPI(self.tcti)
        try:
            esapi.pcr_extend(getattr(ESYS_TR, f"PCR{index}"), values)
        finally:
            esapi.close()

    def replay_events(self, events: Sequence[TcgEvent]) -> None:
        """Extend every measured event of a TCG log into this TPM (EV_NO_ACTION skipped;
        a StartupLocality event cannot be reproduced over this TCTI)."""
        for e in events:
            if e.event_type == _EV_NO_ACTION:
                continue
            self.extend(e.index, {b: d for b in e.banks if (d := e.digest(b)) is not None})

    def stop(self) -> None:
        _stop(self.process)
        if self.process.stderr is not None:
            self.process.stderr.close()
        if self._owns_state:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self) -> Swtpm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


def swtpm_fixture(
    scope: Literal["function", "module", "session"] = "module", *, need_pytss: bool = True
) -> Callable[[], Iterator[Swtpm]]:
    """A pytest fixture that yields a running :class:`Swtpm` (stopped at teardown).

    Skips with the reason when swtpm (or, with ``need_pytss``, tpm2-pytss) is missing,
    except under CI (``$CI`` set), where it fails instead. Usage in a test module::

        swtpm = swtpm_fixture()
    """
    import pytest

    @pytest.fixture(scope=scope)
    def swtpm() -> Iterator[Swtpm]:
        reason = swtpm_unavailable_reason() or (
            tpm2_pytss_unavailable_reason() if need_pytss else None
        )
        if reason is not None:
            if os.environ.get("CI"):
                pytest.fail(f"CI must run the swtpm tests: {reason}")
            pytest.skip(reason)
        with Swtpm.start() as s:
            yield s

    return swtpm
